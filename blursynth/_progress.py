"""Progress bars: one constructor for every long loop, silent under ``--quiet``, sparse in a log.

A bar redrawn ten times a second suits a terminal (and a notebook's widget); in a batch job's log (Slurm, a pipe, ``nohup``)
every redraw is kept, joined by carriage returns, and an hour's run leaves tens of thousands of
copies of the bar. So where stderr is not a terminal the bar redraws every
:data:`LOG_INTERVAL` seconds, unless ``TQDM_MININTERVAL`` says otherwise.
"""

from __future__ import annotations

import os
import sys

#: Seconds between redraws where stderr is not a terminal.
LOG_INTERVAL = 30.0

_quiet = False  # set by a command's --quiet (quiet_option), for every bar it draws


def set_quiet(quiet: bool) -> None:
    """Draw no bar (``True``) until set back: a command's ``--quiet``."""
    global _quiet
    _quiet = bool(quiet)


def _to_terminal(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a replaced stream without isatty, or closed
        return False


def progress_bar(iterable=None, *, total=None, desc: str, unit: str, initial: int = 0, enabled: bool = True):
    """A tqdm bar on stderr (a notebook's widget in Jupyter); disabled when ``enabled`` is False or
    under ``--quiet``.

    Examples
    --------
    >>> bar = progress_bar(total=3, desc="demo", unit="pair", enabled=False)
    >>> bar.update(3)
    >>> bar.close()
    """
    from tqdm.auto import tqdm

    options = {}
    widget = any(cls.__name__ == "tqdm_notebook" for cls in tqdm.__mro__)  # Jupyter's stderr is no TTY
    if not widget and not _to_terminal(sys.stderr) and "TQDM_MININTERVAL" not in os.environ:
        # maxinterval too: tqdm's monitor thread otherwise redraws a bar idle for 10 s.
        options["mininterval"] = options["maxinterval"] = LOG_INTERVAL
    return tqdm(iterable=iterable, total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                disable=_quiet or not enabled, **options)
