"""The run folder both trainers write: names, checkpoint checks, metrics, run.json, sample sheets.

Each trainer describes its run with a :class:`RunKind` (its format name and version, the names
its folder holds, its own messages); the reading, checking and writing are done here once.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInputError

CHECKPOINT = "checkpoint.pt"
RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
#: Checkpoint formats, so each trainer can name the other's files when it is handed one.
DEBLURGAN_FORMAT = "blursynth-deblurgan"
BGAN_FORMAT = "blursynth-bgan"


@dataclass(frozen=True)
class RunKind:
    """One trainer's run folder: what it holds and what its checkpoint must say.

    Messages are format strings; ``{path}`` is what the user gave, ``{file}`` the checkpoint
    file, ``{format}``/``{version}`` what the file says and ``{expected}`` this blursynth's
    version; ``{out}`` and ``{name}`` in ``not_a_run``.

    Attributes
    ----------
    format, version : str, int
        Written into every checkpoint and checked on reading.
    names : tuple of str
        The files and folders the run writes (besides hidden and ``*.log``/``*.out`` files).
    missing, unreadable : str
        No checkpoint at ``path``; a file torch cannot read (``{error}``: the exception type).
    other_formats : dict
        Format name -> message, for checkpoints of another kind this blursynth knows.
    wrong_format, wrong_version : str
    needs_resume, other_recipe : str
        ``--out`` holds a run and ``--resume`` was not given; the checkpoint's recipe differs
        from this run's at ``{key}`` (``{was}``, ``{now}``: the two values).
    is_dataset, is_file, not_a_run : str
        ``--out`` is a dataset folder; is a file; is a folder holding ``{name}`` (quoted), not a
        name of the run.
    """

    format: str
    version: int
    names: tuple
    missing: str
    unreadable: str
    wrong_format: str
    wrong_version: str
    needs_resume: str
    other_recipe: str
    is_dataset: str
    is_file: str
    not_a_run: str
    other_formats: dict = field(default_factory=dict)

    def owns(self, name: str) -> bool:
        """Whether ``name`` may be in a run folder of this kind: the run's own files, hidden
        files (temporary files of atomic writes, .DS_Store) and logs (``*.log``, ``*.out``:
        ``train ... > run/train.log``)."""
        from ..dataset.outputs import hidden_or_log

        return name in self.names or hidden_or_log(name)

    @property
    def output(self):
        """The :class:`blursynth.dataset.outputs.OutputKind` that claims a folder for a run."""
        from ..dataset.outputs import OutputKind

        return OutputKind(what="run", is_file=self.is_file, foreign=self.not_a_run,
                          own=self.owns)


def load_torch_file(path, *, file_name: str, missing: str, unreadable: str):
    """``torch.load`` (weights only, on the CPU) of ``path`` or of ``path/file_name``.

    Parameters
    ----------
    path : str or Path
        A run folder holding ``file_name``, or the file itself.
    file_name : str
    missing, unreadable : str
        One-line messages for a missing file and for one torch cannot read;
        ``{path}`` and ``{file}`` are filled in (``{error}``: the exception's
        type, for ``unreadable``).

    Returns
    -------
    file : Path
    obj : object

    Raises
    ------
    BadInputError
    """
    import torch

    file = Path(path)
    if file.is_dir():
        file = file / file_name
    if not file.is_file():
        raise BadInputError(missing.format(path=path, file=file))
    try:
        return file, torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not its own
        message = unreadable.format(path=path, file=file, error=type(exc).__name__)
        raise BadInputError(message) from None


def load_checkpoint(path, kind: RunKind) -> dict:
    """Read a run's checkpoint (``path`` is the run folder or the file), checking that it is of
    ``kind``'s format and version.

    Raises
    ------
    BadInputError
        Missing, corrupt, another kind of file, or a version this blursynth does not read.
    """
    file, ckpt = load_torch_file(path, file_name=CHECKPOINT, missing=kind.missing,
                                 unreadable=kind.unreadable)
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt != kind.format:
        message = kind.other_formats.get(fmt, kind.wrong_format)
        raise BadInputError(message.format(path=path, file=file, format=fmt))
    if ckpt.get("version") != kind.version:
        raise BadInputError(kind.wrong_version.format(path=path, file=file,
                                                      version=ckpt.get("version"),
                                                      expected=kind.version))
    return ckpt


def open_run_folder(out, kind: RunKind):
    """The checkpoint in ``--out`` (None for a new run), refusing a folder that is not a run of
    ``kind``: a dataset, a file, or a folder holding anything but the run's own names.

    A run stopped before its first checkpoint leaves only names of its own; anything else is
    someone's folder, which a run must not write into. Nothing is written.
    """
    from ..dataset.outputs import claim
    from ..dataset.schema import MANIFEST, PROGRESS

    out = Path(out)
    if any((out / name).exists() for name in (MANIFEST, PROGRESS)):
        # Training into a dataset would mix a checkpoint into its shards (and, with the input
        # the same folder, into the data being read).
        raise BadInputError(kind.is_dataset.format(out=out))
    if (out / CHECKPOINT).exists():
        return load_checkpoint(out, kind)  # another kind of run is named as such
    # Nothing is made here: under torchrun every rank checks, and none writes before all have
    # joined the process group.
    claim(out, kind.output, create=False)
    return None


def require_resume(out, kind: RunKind, resume: bool) -> None:
    """Refuse to train into a run folder that holds a checkpoint unless ``--resume`` was given."""
    if not resume:
        raise BadInputError(kind.needs_resume.format(out=out))


def check_recipe(ckpt: dict, recipe: dict, out, kind: RunKind) -> None:
    """Refuse to resume a checkpoint whose recipe (the settings a resumed run must share)
    differs from this run's; the message names the first key that differs."""
    was = ckpt.get("recipe", {})
    diff = [k for k in recipe if was.get(k) != recipe[k]]
    if diff:
        k = diff[0]
        raise BadInputError(kind.other_recipe.format(file=Path(out) / CHECKPOINT, key=k,
                                                     was=repr(was.get(k)), now=repr(recipe[k])))


def write_run_json(path, meta: dict) -> None:
    """``run.json``: ``meta`` and the torch and Python versions that made the run."""
    import torch

    from ..dataset.outputs import atomic_write_text

    meta = dict(meta, torch=torch.__version__, python=sys.version.split()[0])
    atomic_write_text(path, json.dumps(meta, indent=1, default=str) + "\n")


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


class MetricsLog:
    """The rows of ``metrics.csv``: those a resumed run keeps, and the ones it adds.

    Parameters
    ----------
    path : Path
    columns : tuple of str
        The CSV's columns, in order (other keys of a row are left out).
    upto_step : int
        Rows of an earlier run after this step (written after its last checkpoint) are dropped.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> log = MetricsLog(p, ("step", "loss"), 0)
    >>> log.append({"step": 1, "loss": 0.123456789}); log.save()
    >>> MetricsLog(p, ("step", "loss"), 1).rows
    [{'step': '1', 'loss': '0.123457'}]
    """

    def __init__(self, path, columns, upto_step: int):
        self.path, self.columns = Path(path), tuple(columns)
        self.rows = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= upto_step]

    def append(self, row: dict) -> None:
        """Add one row; floats are written to 6 significant digits."""
        self.rows.append({k: _fmt(v) for k, v in row.items()})

    def save(self) -> None:
        """Replace the CSV (atomically) with every row."""
        from ..dataset.outputs import atomic_write_text

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())


def sample_sheet(rows, n=4) -> np.ndarray:
    """uint8 ``(H, W, 3)``: the first ``n`` rows side by side, under each other.

    Parameters
    ----------
    rows : sequence of sequences of (3, h, w) tensors in [0, 1]
        Each row's images are joined left to right; narrower rows are padded black on the right.

    Returns
    -------
    sheet : (H, W, 3) uint8 ndarray or None
        None when there are no rows.
    """
    import torch

    joined = [torch.cat(list(images), dim=2) for images in list(rows)[:n]]
    if not joined:
        return None
    w = max(r.shape[2] for r in joined)
    joined = [torch.nn.functional.pad(r, (0, w - r.shape[2])) for r in joined]
    img = (torch.cat(joined, dim=1).clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
    return np.ascontiguousarray(img.cpu().numpy())


def save_sample_sheet(path, rows, n=4, *, level=None) -> None:
    """Write :func:`sample_sheet` of ``rows`` as a PNG (atomically); nothing when there are
    none. ``level``: as :func:`blursynth.sources.photos.encode_png` (None: the fast encoder)."""
    from ..dataset.outputs import atomic_write_bytes
    from ..sources.photos import encode_png

    sheet = sample_sheet(rows, n)
    if sheet is not None:
        atomic_write_bytes(path, encode_png(sheet, level=level))
