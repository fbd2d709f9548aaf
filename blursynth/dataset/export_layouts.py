"""Where ``dataset export --layout flat|gopro|basicsr|deblurganv2`` puts each pair, the split by
source (``--splits train=0.9,val=0.05,test=0.05``) and the index files each trainer reads
(BasicSR's meta-info file, DeblurGAN-v2's file lists and config keys); docs/format.md describes
the conventions."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError

#: ``--splits`` names, in the order they take hash intervals: ``val`` first, so that a ``val``
#: of fraction F holds exactly the pairs ``train --val-fraction F`` holds out (same ``--split-by``).
SPLIT_NAMES = ("val", "test", "train")

#: ``--format``: the blurred and sharp images' format and file suffix (masks and PSFs stay PNG).
IMAGE_FORMATS = {"png": ".png", "jpeg": ".jpg"}

#: The snippets an export writes at its top for the trainers that read a config file.
CONFIG_FILES = {"basicsr": "basicsr.yml", "deblurganv2": "deblurganv2.yaml"}

#: The folders beside the images (one per row's folder) that hold what a row has besides them.
SIDE_FOLDERS = ("psf", "masks", "raw", "gt_frames")


@dataclass(frozen=True)
class Layout:
    """One export layout: the names of its blurred and sharp folders, and whether pairs are
    grouped by sequence (their source) under each split.

    Attributes
    ----------
    name : str
    blurred_dir, sharp_dir : str
    by_sequence : bool
        GoPro's ``<split>/<sequence>/blur|sharp``; the others keep a split's pairs in one folder.
    needs_ground_truth : bool
        Every blurred image must have its sharp partner (the trainers pair files by name).
    """

    name: str
    blurred_dir: str
    sharp_dir: str
    by_sequence: bool
    needs_ground_truth: bool

    def folder(self, split: str | None, sequence: str | None) -> str:
        """The row's folder relative to the export (``""``: the export itself), where its
        blurred and sharp folders and its :data:`SIDE_FOLDERS` are."""
        parts = [split, sequence if self.by_sequence else None]
        return "/".join(p for p in parts if p)


LAYOUTS = {
    "flat": Layout("flat", "blur", "sharp", by_sequence=False, needs_ground_truth=False),
    "gopro": Layout("gopro", "blur", "sharp", by_sequence=True, needs_ground_truth=True),
    "basicsr": Layout("basicsr", "lq", "gt", by_sequence=False, needs_ground_truth=True),
    "deblurganv2": Layout("deblurganv2", "blur", "sharp", by_sequence=False,
                          needs_ground_truth=True),
}


def get_layout(name: str) -> Layout:
    """The :class:`Layout` called ``name``; one line naming the choices otherwise."""
    if name not in LAYOUTS:
        raise BadInputError(f"--layout must be one of {', '.join(LAYOUTS)}; got {name!r}.")
    return LAYOUTS[name]


#: Written first into every export: what marks a folder as one, so that ``--overwrite`` replaces
#: split folders and config snippets only where an export put them (``params.jsonl``, a common
#: file name, vouches only for the flat folders, as it did before layouts existed).
EXPORT_MARKER = ".blursynth-export.json"

#: The folders a flat export writes at its top, which ``params.jsonl`` alone vouches for.
FLAT_OWNED = ("blur", "sharp", *SIDE_FOLDERS)
#: What only an export marked with :data:`EXPORT_MARKER` owns at its top.
MARKED_OWNED = (*SPLIT_NAMES, *CONFIG_FILES.values())


def export_owns(name: str) -> bool:
    """The names an export writes at its top (for ``--overwrite`` and the clean-up of a killed
    export's folder): the flat folders, the split folders and the config snippets; those of
    :data:`MARKED_OWNED` only where :data:`EXPORT_MARKER` is too (:func:`unvouched`)."""
    return name in FLAT_OWNED or name in MARKED_OWNED


def unvouched(names) -> list:
    """The names of a folder's top (sorted) that an export owns only with its marker, when the
    marker is missing: a ``params.jsonl`` beside a ``train/`` is not enough to delete it."""
    names = set(names)
    return [] if EXPORT_MARKER in names else sorted(n for n in names if n in MARKED_OWNED)


def owned_text() -> str:
    """What ``--overwrite`` replaces, for messages (from the tuples above, so they cannot drift)."""
    names = [f"{n}/" for n in (*FLAT_OWNED, *SPLIT_NAMES)] + [*CONFIG_FILES.values(), "params.jsonl"]
    return ", ".join(names[:-1]) + " and " + names[-1]


def write_marker(root: Path, layout: "Layout", image_format: str) -> None:
    """Mark ``root`` (an export being built) as an export, before anything else is written."""
    (root / EXPORT_MARKER).write_text(json.dumps(
        {"written_by": "blursynth dataset export", "layout": layout.name, "format": image_format}) + "\n")


def parse_splits(text) -> dict:
    """``"train=0.9,val=0.05,test=0.05"`` (or such a mapping) to ``{name: fraction}``.

    Names are ``train``, ``val`` and ``test`` (the phases BasicSR and DeblurGAN-v2 know), each
    at most once; fractions are in [0, 1] and sum to 1.

    Examples
    --------
    >>> parse_splits("train=0.9,val=0.05,test=0.05")
    {'train': 0.9, 'val': 0.05, 'test': 0.05}
    >>> parse_splits({"train": 1})
    {'train': 1.0}
    """
    shown = text if isinstance(text, str) else ",".join(f"{k}={v}" for k, v in dict(text).items())
    example = "e.g. train=0.9,val=0.05,test=0.05"
    if isinstance(text, str):
        items = []
        for part in text.split(","):
            name, eq, value = part.partition("=")
            if not eq:
                raise BadInputError(f"--splits {shown!r}: {part.strip()!r} is not NAME=FRACTION; "
                                    f"expected {example}.")
            items.append((name.strip(), value.strip()))
    else:
        items = list(dict(text).items())
    out = {}
    for name, value in items:
        if name not in SPLIT_NAMES:
            raise BadInputError(f"--splits {shown!r}: unknown split {name!r}; the splits are "
                                f"train, val and test ({example}).")
        if name in out:
            raise BadInputError(f"--splits {shown!r}: {name} is named twice; name each split once.")
        try:
            f = float(value)
        except (TypeError, ValueError):
            f = math.nan
        if not 0 <= f <= 1:  # also nan
            raise BadInputError(f"--splits {shown!r}: {name}={value} is not a fraction in [0, 1] "
                                f"({example}).")
        out[name] = f
    total = sum(out.values())
    if abs(total - 1) > 1e-6:
        raise BadInputError(f"--splits {shown!r}: the fractions sum to {total:.6g}; they must sum "
                            f"to 1 ({example}).")
    return out


def assign_splits(keys, fractions: dict) -> list:
    """The split of each row, by a hash of its key (its source or its id: see
    :func:`blursynth.dataset.split.split_keys`), so that the rows of one source share a split.

    Splits take intervals of the hash's [0, 1) in the order ``val``, ``test``, ``train``: a
    ``val`` of fraction F is the rule ``train --val-fraction F`` holds out by, fallback included
    (where F selects none of two or more keys, the key with the smallest hash). ``test`` falls
    back the same way among the keys ``val`` left, while at least two are left, so ``train``
    keeps one. Depends only on the keys and the fractions, never on a seed.

    Returns
    -------
    list of str
        One split name per key.

    Examples
    --------
    >>> keys = [f"photo:{i}.png" for i in range(200) for _ in range(3)]
    >>> splits = assign_splits(keys, {"train": 0.8, "val": 0.1, "test": 0.1})
    >>> all(len({s for k, s in zip(keys, splits) if k == key}) == 1 for key in keys[::3])
    True
    """
    from .split import heldout_fraction_of, split_indices

    keys = list(keys)
    distinct = sorted(set(keys))
    h = {k: heldout_fraction_of(k) for k in distinct}
    where = {}
    if fractions.get("val", 0) >= 1:
        return ["val"] * len(keys)
    if fractions.get("val", 0) > 0:  # train's own rule, so the two agree exactly
        _, held = split_indices(distinct, fractions["val"])
        where.update({distinct[i]: "val" for i in held})
    lo = fractions.get("val", 0.0)
    hi = lo + fractions.get("test", 0.0)
    rest = [k for k in distinct if k not in where]
    test = [k for k in rest if lo <= h[k] < hi]
    if fractions.get("test", 0) > 0 and not test and len(rest) >= 2:
        test = [min(rest, key=h.get)]
    where.update({k: "test" for k in test})
    if fractions.get("train", 0) == 0:  # rounding: what the intervals leave goes to test
        where.update({k: "test" for k in distinct if k not in where})
    return [where.get(k, "train") for k in keys]


def sequence_name(source_key: str) -> str:
    """A folder name for a source (:func:`blursynth.dataset.pair_source`): the part after its
    kind, with every character other than a letter, digit, ``_`` or ``-`` as ``_`` (dots too, so
    that no folder looks like an image file to a ``**/*.png`` glob).

    Examples
    --------
    >>> sequence_name("photo:street/IMG 01.jpg")
    'street_IMG_01_jpg'
    >>> sequence_name("real:gopro/test/GOPR0384_11_00")
    'gopro_test_GOPR0384_11_00'
    """
    name = re.sub(r"[^A-Za-z0-9_-]", "_", source_key.partition(":")[2] or source_key)
    # never one of the names a sequence folder holds (GoPro's import pairs every blur/ folder
    # with the sharp/ beside it, at any depth)
    if not name or name in ("blur", "sharp", *SIDE_FOLDERS):
        name = "seq_" + name
    return name


def sequence_names(keys, ids) -> list:
    """Each row's GoPro sequence folder, from its source key (:func:`blursynth.dataset.split.split_keys`
    ``"source"``) and id: :func:`sequence_name`, with a short hash of the key added to every
    source whose name another source would share (``photo:a/b.png`` and ``photo:a_b.png``), so
    two sources never merge into one sequence. Rows naming no source (key == id) share ``pairs``.

    Examples
    --------
    >>> sequence_names(["photo:a/b.png", "photo:a_b.png", "photo:c.png", "x"], ["0", "1", "2", "x"])
    ['a_b_png-0b47bf47', 'a_b_png-ec904060', 'c_png', 'pairs']
    """
    import hashlib
    from collections import defaultdict

    keys = [None if k == i else k for k, i in zip(keys, ids)]
    by_name = defaultdict(set)
    for k in set(keys):
        by_name["pairs" if k is None else sequence_name(k)].add(k)
    name_of = {}
    for name, group in by_name.items():
        for k in group:
            clash = len(group) > 1 and k is not None
            name_of[k] = f"{name}-{hashlib.sha256(k.encode()).hexdigest()[:8]}" if clash else name
    return [name_of[k] for k in keys]


@dataclass(frozen=True)
class Written:
    """One exported pair, for the index files: its split and files (relative to the export)."""

    split: str | None
    blurred: str
    sharp: str
    sharp_shape: tuple


def write_indexes(root: Path, layout: Layout, written: list, final: Path) -> list:
    """Write the layout's index files into ``root`` (the export being built): BasicSR's
    ``<split>/meta_info.txt`` and ``basicsr.yml``; DeblurGAN-v2's ``<split>/files_a.txt``,
    ``<split>/files_b.txt`` and ``deblurganv2.yaml``. Config snippets name the export by
    ``final``, the absolute path it will have. Returns the files written, relative to ``root``."""
    if layout.name not in CONFIG_FILES or not written:
        return []
    splits = list(dict.fromkeys(w.split for w in written))
    files = []
    for split in splits:
        rows = [w for w in written if w.split == split]
        if layout.name == "basicsr":
            lines = ["{} ({},{},{})".format(Path(w.sharp).name, *w.sharp_shape) for w in rows]
            files.append(_write_lines(root, f"{split}/meta_info.txt", lines))
        else:
            files.append(_write_lines(root, f"{split}/files_a.txt", [w.blurred for w in rows]))
            files.append(_write_lines(root, f"{split}/files_b.txt", [w.sharp for w in rows]))
    suffix = Path(written[0].blurred).suffix
    text = (_basicsr_yaml if layout.name == "basicsr" else _deblurganv2_yaml)(final, splits, suffix)
    (root / CONFIG_FILES[layout.name]).write_text(text)
    return files + [CONFIG_FILES[layout.name]]


def _write_lines(root: Path, rel: str, lines: list) -> str:
    (root / rel).write_text("".join(line + "\n" for line in lines))
    return rel


def _q(path) -> str:
    """A YAML scalar for a path (a JSON string is one)."""
    return json.dumps(str(path))


def _basicsr_yaml(final: Path, splits, suffix) -> str:
    lines = ["# BasicSR: PairedImageDataset entries for an options file's datasets: section,",
             f"# written by blursynth dataset export --layout basicsr into {final}.",
             "# Add your own training keys (gt_size, use_hflip, use_rot, batch sizes, ...).",
             "datasets:"]
    for split in splits:
        lines += [f"  {split}:",
                  f"    name: {_q(final.name + '_' + split)}",
                  "    type: PairedImageDataset",
                  f"    dataroot_gt: {_q(final / split / 'gt')}",
                  f"    dataroot_lq: {_q(final / split / 'lq')}",
                  f"    meta_info_file: {_q(final / split / 'meta_info.txt')}",
                  "    filename_tmpl: \"{}\"",
                  "    io_backend:",
                  "      type: disk"]
    return "\n".join(lines) + "\n"


def _deblurganv2_yaml(final: Path, splits, suffix) -> str:
    lines = ["# DeblurGAN-v2: the data keys of config/config.yaml's train: and val: sections,",
             f"# written by blursynth dataset export --layout deblurganv2 into {final}.",
             "# files_a are the blurred images, files_b the sharp ones (sorted globs, paired in",
             "# order); bounds [0, 1] keeps every pair, since the export made the split already.",
             "# Keep your own size, crop, preload, scope and corrupt keys."]
    for split in splits:
        lines += [f"{split}:",
                  f"  files_a: {_q(final / split / 'blur' / ('*' + suffix))}",
                  f"  files_b: {_q(final / split / 'sharp' / ('*' + suffix))}",
                  "  bounds: [0, 1]"]
    return "\n".join(lines) + "\n"


def split_counts(splits) -> dict:
    """{split: pairs} in the order train, val, test (for the command's report)."""
    from collections import Counter

    found = Counter(s for s in splits if s is not None)
    return {name: found[name] for name in ("train", "val", "test") if found[name]}
