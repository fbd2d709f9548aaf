"""The cyclic garbage collector held off while a command starts, and back on when its work does.

A command's start-up is imports (Numba, NumPy, pyarrow, SciPy's linear algebra through Numba's
target): hundreds of thousands of objects made and kept, which the collector walks again and
again as they pile up: about 0.08 s of a 0.7 s start-up here, in two full passes over
everything imported so far, none of it garbage. :func:`hold_for_startup` (the ``blursynth``
command, as it starts) turns the collector off; :func:`startup_over` (where a command's
long work begins: a dataset write, a pool's fork, a training or evaluation loop) frees the
garbage start-up left where the work can spare the pass, moves everything else made so far out
of the collector's sight (``gc.freeze``: start-up objects live as long as the process) and turns
it back on. Frozen objects are also never written by a collection in a
forked worker, so the pages it shares with this process stay shared.

A library caller's process is left alone: only the command holds the collector, and
:func:`startup_over` undoes only its own hold. A short command that ends without reaching
long work ends with the collector off, as its garbage is freed with the process anyway.
"""

from __future__ import annotations

import gc

_held = False


def hold_for_startup() -> None:
    """Turn the cyclic garbage collector off until :func:`startup_over` (if it is on)."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def startup_over(collect: bool = True) -> None:
    """Freeze what start-up made and turn the collector back on, if :func:`hold_for_startup`
    turned it off; otherwise nothing. Call it where a command's long work begins.

    ``collect``: first free the cyclic garbage start-up left (a full pass over everything
    imported: about 25 ms), which a freeze would keep for the whole run; a training run's
    start-up leaves a few thousand such objects (functions, cells, frames, which may hold
    arrays). False where the work is a pair writer's and its first pair is waited for: a
    ``blur`` run's start-up left 23 unreachable objects, not worth the pass."""
    global _held
    if _held:
        _held = False
        if collect:
            gc.collect()
        gc.freeze()
        gc.enable()
