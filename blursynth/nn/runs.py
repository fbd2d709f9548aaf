"""The run folder both trainers write: names, checkpoint checks, metrics, run.json, sample sheets.

Each trainer describes its run with a :class:`RunKind` (its format name and version, the names
its folder holds, its own messages); the reading, checking and writing are done here once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sys
import warnings
from collections import OrderedDict
from contextlib import contextmanager
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
UID_FORMAT = "blursynth-uid"


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



def model_run_kind(name: str, *, format: str, version: int, command: str, names: tuple,
                   others: dict) -> RunKind:
    """The :class:`RunKind` of a learned-blur model folder (``bgan train``, ``uid train``): the
    same messages, naming the model (``name``) and the command that makes it; ``others`` maps a
    known other checkpoint format to what it is ("a BGAN model")."""
    expected = f"expected the --out folder of 'blursynth {command}'."
    return RunKind(
        format=format, version=version, names=names,
        missing=f"--model {{path}}: no {name} model here (no {CHECKPOINT}); {expected}",
        unreadable="{file}: unreadable checkpoint ({error}); restore it or train again.",
        other_formats={fmt: f"{{file}}: is {what}, not a {name} model; " + expected
                       for fmt, what in others.items()},
        wrong_format=f"{{file}}: is format {{format!r}}, not a {name} model; " + expected,
        wrong_version=f"{{file}}: {name} model format version {{version!r}}; this blursynth "
                      "reads version {expected}. Use the blursynth that wrote it, or train again.",
        needs_resume=f"--out {{out}}: already holds a {name} run; pass --resume to continue it or "
                     "choose another --out.",
        other_recipe="{file}: was trained with {key}={was}; this run asks for {now}. Resume with "
                     "the same settings or use another --out.",
        is_dataset=f"--out {{out}} is a dataset folder; expected a folder for the {name} model. "
                   "Choose another --out.",
        is_file="--out {out}: is a file; expected a folder for the model.",
        not_a_run=f"--out {{out}}: is a non-empty folder that is not a {name} model (it holds "
                  "{name}); choose a new or empty folder.",
    )

def load_torch_file(path, *, file_name: str, missing: str, unreadable: str, mmap: bool = False):
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
    mmap : bool
        Map the file instead of reading it: a tensor's bytes are read when it is first used.

    Returns
    -------
    file : Path
    obj : object

    Raises
    ------
    BadInputError
    """
    file = Path(path)
    if file.is_dir():
        file = file / file_name
    if not file.is_file():
        raise BadInputError(missing.format(path=path, file=file))
    try:
        return file, quiet_torch_load(file, mmap=mmap)
    except Exception as exc:  # torch raises many types for a file that is not its own
        message = unreadable.format(path=path, file=file, error=type(exc).__name__)
        raise BadInputError(message) from None


def quiet_torch_load(file, map_location="cpu", mmap: bool = False):
    """``torch.load(file, weights_only=True)`` without torch's warning about a raw pickle's
    protocol: the file is then read or refused in one line, and the two-line warning printed
    before that line said nothing the refusal does not."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(file, map_location=map_location, weights_only=True, mmap=mmap)


def load_checkpoint(path, kind: RunKind, *, mmap: bool = False) -> dict:
    """Read a run's checkpoint (``path`` is the run folder or the file), checking that it is of
    ``kind``'s format and version. ``mmap``: map it, so that only the tensors used are read
    (a model's weights out of a checkpoint that also holds its optimisers' state, twice their
    size); :func:`restore_model` copies what it keeps, so the map goes with the checkpoint.

    Raises
    ------
    BadInputError
        Missing, corrupt, another kind of file, or a version this blursynth does not read.
    """
    file, ckpt = load_torch_file(path, file_name=CHECKPOINT, missing=kind.missing,
                                 unreadable=kind.unreadable, mmap=mmap)
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt != kind.format:
        message = kind.other_formats.get(fmt, kind.wrong_format)
        raise BadInputError(message.format(path=path, file=file, format=fmt))
    if ckpt.get("version") != kind.version:
        raise BadInputError(kind.wrong_version.format(path=path, file=file,
                                                      version=ckpt.get("version"),
                                                      expected=kind.version))
    return ckpt



def weights_fingerprint(config: dict, state_dict, *, skip: str | None = None) -> str:
    """16 hex digits of the sha256 of a model's config and weights (names, shapes, bytes, in
    name order), leaving out the tensors whose names start with ``skip``.

    Two models with the same fingerprint compute the same; the pairs a model makes record it.
    The tensors may be torch's or NumPy arrays (:mod:`blursynth.nn.torchfile`): the same
    fingerprint.
    """
    import hashlib

    from ..config import canonical_json

    h = hashlib.sha256(canonical_json(config).encode())
    for name, t in sorted(state_dict.items()):
        if skip is not None and name.startswith(skip):
            continue
        a = t if isinstance(t, np.ndarray) else t.detach().cpu().contiguous().numpy()
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def restore_model(path, build, what: str):
    """A checkpoint's networks: ``build()`` returns ``(config, module, state_dict)``, the
    networks as the config makes them and the weights to give them.

    The module is built on the meta device, where its layers draw no initial weights (for a
    model whose weights are about to be replaced, drawing them was most of the time it took
    to load), and then takes copies of the checkpoint's tensors, each contiguous in the dtype
    the module gives it: what ``load_state_dict`` would have copied into it. A module that does
    not build there, ties weights (copies would untie them) or keeps a tensor no state dict
    carries (a non-persistent buffer, a plain tensor attribute) is built the ordinary way,
    under a forked RNG so that the caller's random state stays as it was. A checkpoint that
    does not fit is refused in one line naming ``what``.

    Returns
    -------
    config, module
    """
    import torch

    try:
        try:
            with torch.device("meta"):
                config, module, state = build()
            want = module.state_dict()
            fits = (all(name in want for name, _ in module.named_buffers())
                    and len(list(module.named_parameters(remove_duplicate=False)))
                    == len(list(module.named_parameters())))  # no tied weights, which copies untie
        except Exception:  # noqa: BLE001 - a constructor that computes: built the ordinary way below
            fits = False
        if fits:
            # (Not ``to_empty``: its meta tensor's ``empty_like`` imports sympy, 0.3 s.)
            module.load_state_dict({name: t.to(dtype=want[name].dtype, memory_format=torch.contiguous_format,
                                               copy=True) if name in want else t
                                    for name, t in state.items()}, assign=True)
            if not _meta_left(module):
                return config, module
        with torch.random.fork_rng(devices=[]):
            config, module, state = build()
        module.load_state_dict(state)
        return config, module
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise BadInputError(f"--model {path}: checkpoint does not hold {what} "
                            f"({' '.join(str(exc).split())[:200]}).") from None


def _meta_left(module) -> bool:
    """Whether a tensor of ``module`` is still on the meta device: a parameter or buffer, or a
    plain tensor attribute that a constructor made (which no state dict carries)."""
    import torch

    return any(t.is_meta for t in (*module.parameters(), *module.buffers())) or any(
        isinstance(v, torch.Tensor) and v.is_meta for m in module.modules() for v in vars(m).values())


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
        options = _differing_options(was.get(k), recipe[k], k)
        if options:
            raise BadInputError(differing_options_message(out, options))
        raise BadInputError(kind.other_recipe.format(file=Path(out) / CHECKPOINT, key=k,
                                                     was=repr(was.get(k)), now=repr(recipe[k])))


def differing_options_message(out, options) -> str:
    """The refusal of a resume whose options differ from the run's: ``options`` as
    ``["--code-gain 2.0 vs 0 (recorded)", ...]``."""
    return (f"{Path(out) / CHECKPOINT}: this run differs from the recorded one in {', '.join(options)}. "
            "A resumed run takes every training option again: give the recorded values, or use "
            "another --out.")


def _differing_options(was, now, key: str) -> list:
    """``["--code-gain 2.0 vs 0 (recorded)", ...]`` for a recorded dict of settings (a model
    config, loss weights) whose entries are options; ``[]`` when either side is not a dict.
    An absent number is 0 (configs and weights leave out the terms they do not use)."""
    if not (isinstance(was, dict) and isinstance(now, dict)):
        return []
    if "name" in now:  # a config: "small+custom" is --config small with options on top
        base_was, base_now = str(was.get("name", "")).split("+")[0], str(now["name"]).split("+")[0]
        if base_was != base_now:
            return [f"--config {base_now} vs {base_was} (recorded)"]
    suffix = "-weight" if key == "loss_weights" else ""
    out = []
    for sk in sorted(set(was) | set(now)):
        a, b = was.get(sk), now.get(sk)
        if sk == "name" or a == b:
            continue
        if a is None and isinstance(b, (int, float)):
            a = 0
        if b is None and isinstance(a, (int, float)):
            b = 0
        out.append(f"--{sk.replace('_', '-')}{suffix} {b} vs {a} (recorded)")
    return out


def _interned(obj):
    """``obj`` with every string interned, in copies of its dicts, lists and tuples (tensors and
    other values are kept as they are)."""
    if type(obj) is str:
        return sys.intern(obj)
    if isinstance(obj, dict):
        copy = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            copy[_interned(k)] = _interned(v)
        if isinstance(obj, OrderedDict) and hasattr(obj, "_metadata"):
            copy._metadata = _interned(obj._metadata)  # a module state dict's versions
        return copy
    if type(obj) in (list, tuple):
        return type(obj)(_interned(v) for v in obj)
    return obj


def save_checkpoint(state: dict, path) -> None:
    """``torch.save`` a checkpoint atomically, the same bytes for the same content.

    Pickle writes a string once and refers back to it where the *same object* recurs; the
    optimiser state a resumed run loaded holds its own copies of names such as ``"step"``, which
    a run that never stopped shares with every other ``"step"``. Interning every string first
    makes a resumed run's checkpoints byte-identical to an uninterrupted run's.
    """
    from ..dataset.outputs import atomic_torch_save

    atomic_torch_save(_interned(state), path)


_SHEET = re.compile(r"step-(?P<step>\d+)\.png")


def _is_ours(name: str, kind: RunKind) -> bool:
    return name in kind.names or _SHEET.fullmatch(name) is not None


def tidy_run_folder(out, kind: RunKind, *, step: int, sheets=()) -> None:
    """Remove what a run stopped at ``step`` left beyond it: temporary files of its atomic
    writes (``.checkpoint.pt.tmpPID``, a kill mid-save) and sample sheets of later steps (in the
    ``sheets`` folders), which a resumed or new run would otherwise show beside its own.

    Only names the run itself writes are removed, never through a symbolic link; call this with
    the folder's lock held (another process's temporary file is then not being written).
    """
    from ..dataset.outputs import remove_temporaries

    out = Path(out)
    for folder in (out, *(out / name for name in sheets)):
        remove_temporaries(folder, lambda name: _is_ours(name, kind))
    for folder in (out / name for name in sheets):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for entry in folder.iterdir():
            sheet = _SHEET.fullmatch(entry.name)
            if sheet is not None and int(sheet["step"]) > step and (entry.is_symlink() or entry.is_file()):
                entry.unlink(missing_ok=True)


def remove_unfinished_run(out, kind: RunKind, *, made=None) -> None:
    """Undo a new run that failed before its first checkpoint: the folder ``made`` for it (``out``
    or its outermost new parent), else the run's own names in ``out`` (hidden files and logs,
    such as the lock and a ``> run/train.log`` redirect, stay)."""
    out = Path(out)
    if (out / CHECKPOINT).exists():
        return
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        return
    for name in kind.names:
        entry = out / name
        if entry.is_symlink() or entry.is_file():
            entry.unlink(missing_ok=True)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def checkpoint_stamp(out):
    """What identifies the checkpoint in ``out`` now (None when there is none): taken before a
    run reads it, and compared once the run holds the folder's lock."""
    try:
        st = os.stat(Path(out) / CHECKPOINT)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@contextmanager
def writing_run(out, kind: RunKind, *, stamp, start: int, sheets=()):
    """Hold the run folder for the whole run (the writing process only; rank 0 under torchrun).

    Takes the folder's lock (:func:`blursynth.dataset.outputs.lock_output`; a second run into
    the same ``--out`` is refused in one line), refuses a checkpoint that changed since the run
    was planned (``stamp``: another run finished there meanwhile), removes what a run stopped
    at ``start`` left beyond it (:func:`tidy_run_folder`), and when a new run (``start`` 0)
    fails before its first checkpoint, removes what it wrote (:func:`remove_unfinished_run`):
    a run that stopped on bad data leaves no half run behind. Ctrl-C keeps what was written
    (the folder is reused by the next run).
    """
    from ..dataset.outputs import lock_output

    out = Path(out)
    made = next((p for p in reversed((out, *out.parents)) if not p.exists()), None)
    with lock_output(out):
        try:
            if checkpoint_stamp(out) != stamp:
                raise BadInputError(
                    f"--out {out}: another run wrote {CHECKPOINT} there while this one was "
                    "starting; rerun the command (with --resume to continue that run) or choose "
                    "another --out.")
            tidy_run_folder(out, kind, step=start, sheets=sheets)
            yield
        except Exception:
            if start == 0:
                remove_unfinished_run(out, kind, made=made)
            raise


def write_run_json(path, meta: dict) -> None:
    """``run.json``: ``meta`` and the torch and Python versions that made the run."""
    import torch

    from ..dataset.outputs import atomic_write_text

    meta = dict(meta, torch=torch.__version__, python=sys.version.split()[0])
    atomic_write_text(path, json.dumps(meta, indent=1, default=str) + "\n")


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


class MetricsLog:
    """``metrics.csv``: the rows a resumed run keeps, and the ones it adds, on disk at every
    :meth:`save` (each log step), ahead of the checkpoint.

    The first save replaces the file with the kept rows (atomically); later saves append the new
    rows and fsync. A checkpoint is written after the metrics of its step, so a kill between the
    two never loses a row: rows after the checkpoint are dropped when the run is resumed, and
    written again by it.

    Parameters
    ----------
    path : Path
    columns : tuple of str
        The CSV's columns, in order (other keys of a row are left out).
    upto_step : int
        Rows of an earlier run after this step (written after its last checkpoint) are dropped,
        as is a last line cut short by a kill.

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
        self._new = 0  # rows appended since the last save
        self._replace = True  # the first save rewrites the file with the kept rows
        if self.path.is_file():
            text = self.path.read_text(errors="replace")
            text = text[: text.rfind("\n") + 1]  # a row cut short by a kill is not a row
            for r in csv.DictReader(io.StringIO(text, newline="")):
                try:
                    step = int(r["step"])
                except (KeyError, TypeError, ValueError):
                    continue
                if step <= upto_step and None not in r.values():
                    self.rows.append({k: r.get(k, "") for k in self.columns})

    def append(self, row: dict) -> None:
        """Add one row (written at the next :meth:`save`); floats are written to 6 significant
        digits."""
        self.rows.append({k: _fmt(v) for k, v in row.items()})
        self._new += 1

    def save(self) -> None:
        """Put every row on disk: the whole CSV the first time, then the rows added since."""
        from ..dataset.outputs import atomic_write_text

        if self._replace:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(self.rows)
            atomic_write_text(self.path, buf.getvalue())
            self._replace, self._new = False, 0
        elif self._new:
            with open(self.path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
                w.writerows(self.rows[len(self.rows) - self._new:])
                f.flush()
                os.fsync(f.fileno())
            self._new = 0


#: Height in px of a text strip on a sample sheet (column labels, per-row notes).
STRIP = 14


def _text_strip(texts, xs, widths, width) -> np.ndarray:
    """A dark strip ``width`` px wide with ``texts[i]`` at ``xs[i]``, each cut to fit ``widths[i]``."""
    import cv2

    strip = np.full((STRIP, width, 3), 24, np.uint8)
    for text, x, w in zip(texts, xs, widths):
        text = str(text)
        while text and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)[0][0] > w - 3:
            text = text[:-1]
        cv2.putText(strip, text, (int(x) + 2, STRIP - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (230, 230, 230), 1, cv2.LINE_AA)
    return strip


def sample_sheet(rows, n=4, *, labels=None, notes=None) -> np.ndarray:
    """uint8 ``(H, W, 3)``: the first ``n`` rows side by side, under each other.

    Parameters
    ----------
    rows : sequence of sequences of (3, h, w) tensors in [0, 1]
        Each row's images are joined left to right; narrower rows are padded black on the right.
    labels : sequence of str, optional
        Column names, in a strip above the sheet (over the first row's images).
    notes : sequence of sequences of str, optional
        Per row, a text for each image (its PSNR, say), in a strip above the row.

    Returns
    -------
    sheet : (H, W, 3) uint8 ndarray or None
        None when there are no rows.
    """
    import torch

    rows = [list(images) for images in list(rows)[:n]]
    joined = [torch.cat(images, dim=2) for images in rows]
    if not joined:
        return None
    w = max(r.shape[2] for r in joined)
    joined = [torch.nn.functional.pad(r, (0, w - r.shape[2])) for r in joined]
    img = (torch.cat(joined, dim=1).clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
    img = np.ascontiguousarray(img.cpu().numpy())
    if labels is None and notes is None:
        return img

    def columns(images):
        widths = [int(im.shape[2]) for im in images]
        return np.cumsum([0, *widths[:-1]]), widths

    parts, y = [], 0
    if labels is not None:
        parts.append(_text_strip(labels, *columns(rows[0]), w))
    for i, images in enumerate(rows):
        if notes is not None:
            parts.append(_text_strip(notes[i], *columns(images), w))
        h = int(images[0].shape[1])
        parts.append(img[y:y + h])
        y += h
    return np.concatenate(parts, axis=0)


def save_sample_sheet(path, rows, n=4, *, level=None, labels=None, notes=None) -> None:
    """Write :func:`sample_sheet` of ``rows`` (with its ``labels`` and ``notes``) as a PNG
    (atomically); nothing when there are none. ``level``: as
    :func:`blursynth.sources.photos.encode_png` (None: the fast encoder)."""
    from ..dataset.outputs import atomic_write_bytes
    from ..sources.photos import encode_png

    sheet = sample_sheet(rows, n, labels=labels, notes=notes)
    if sheet is not None:
        atomic_write_bytes(path, encode_png(sheet, level=level))
