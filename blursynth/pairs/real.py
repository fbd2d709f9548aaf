"""Real pairs (``blursynth dataset import``): the standard deblurring sets as they are distributed.

The layouts (where each set keeps its images and what pairs them) are in
:mod:`blursynth.pairs.real_layouts`; this module turns what they find into a dataset with
``source='real'`` and reads a row's files back (:func:`rebuild_pair`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset.schema import GT_FRAMES_PAIR_SCHEMA, PAIR_SCHEMA, pair_row
from ..errors import BadInputError, SettingError
from ..sources.photos import read_header
from .real_layouts import LAYOUTS, REDS_BLURRED, Entry, find_entries, load_entry_files
from .real_mat import kohler_mat_array, kohler_mat_info

#: GoPro's two blurred folders (Nah, Kim & Lee, CVPR 2017) and the camera response their sharp
#: frames were averaged in: ``blur_gamma`` decoded with gamma 2.2, averaged in linear light and
#: re-encoded (as ``frames-average --crf gamma:2.2``); ``blur`` averaged in the encoded values
#: (as ``--crf none``). A row records its folder and this curve, so the two are not mixed unknowingly.
GOPRO_BLURRED = {
    "blur": ("none", "frames averaged in their encoded values (no inverse response)"),
    "blur_gamma": ("gamma:2.2", "frames decoded with gamma 2.2, averaged in linear light, re-encoded"),
}


def blurred_response(blur_dir: str) -> dict | None:
    """The ``camera_response`` tag of an import reading ``blur_dir``: None for a folder other than
    GoPro's ``blur`` and ``blur_gamma`` (its response is not known).

    Examples
    --------
    >>> blurred_response("blur_gamma")["crf"], blurred_response("mine")
    ('gamma:2.2', None)
    """
    if blur_dir not in GOPRO_BLURRED:
        return None
    crf, how = GOPRO_BLURRED[blur_dir]
    return {"crf": crf, "curves": [crf], "per_pair": False, "blurred_folder": blur_dir, "averaged": how}


@dataclass(frozen=True)
class ImportConfig:
    """How to find pairs in a folder.

    Attributes
    ----------
    layout : str
        One of :data:`LAYOUTS` (docs/datasets.md describes each): ``gopro``:
        ``<seq>/<blur_dir>/NAME`` beside ``<seq>/sharp/NAME`` (at any depth, e.g.
        ``GOPRO_Large/train/<seq>/...``); ``flat``: ``<blur_dir>/NAME`` beside ``sharp/NAME``
        directly under the folder; ``hide``, ``realblur``, ``rsblur``, ``reds``, ``lai``,
        ``kohler``, ``levin``: each set as its authors distribute it.
    blur_dir : str or None
        Folder name of the blurred images (gopro and flat; None for the other layouts)
        [default: ``blurred``, else ``blur``].
    blurred : str or None
        GoPro's blurred folder to read (``blur``, ``blur_gamma``; sets ``blur_dir``) or REDS'
        (``blur``, ``blur_jpeg``). With the gopro layout, rows and the manifest record a GoPro
        folder's camera response (:data:`GOPRO_BLURRED`, :meth:`camera_response`); a flat
        folder's is not known.
    sharp_dir : str
    png_level : int or None
    shard_size : int
    lists : tuple of str
        RealBlur's and RSBlur's list files to read (``--list``) [default: those in the folder].
    variant : {'J', 'R'} or None
        RealBlur's variant, when the folder holds both sets' lists.
    split, subset : str or None
        Import only the images of this split (``train``, ``val``, ``test``) or subset (HIDE's
        ``close-ups`` / ``long-shot``, Lai's ``real`` / ``uniform`` / ``nonuniform``).
    """

    layout: str = "gopro"
    blur_dir: str | None = None
    sharp_dir: str = "sharp"
    png_level: int | None = None
    shard_size: int = 200
    blurred: str | None = None
    lists: tuple = ()
    variant: str | None = None
    split: str | None = None
    subset: str | None = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise SettingError(f"--layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}.", "layout")
        object.__setattr__(self, "lists", tuple(str(p) for p in self.lists))
        if self.blurred is not None:
            choices = REDS_BLURRED if self.layout == "reds" else tuple(GOPRO_BLURRED)
            if self.blurred not in choices:
                raise SettingError(f"--blurred must be one of {', '.join(choices)} (the set's blurred folders); got "
                                   f"{self.blurred!r}.", "blurred")
            if self.layout not in ("gopro", "reds"):
                whose = "a GoPro blurred folder (--layout gopro)" if self.blurred in GOPRO_BLURRED else \
                    "a REDS blurred folder (--layout reds)"
                raise SettingError(f"--blurred {self.blurred} names {whose}; with --layout {self.layout} name the "
                                   "folder with --blur-dir.", "blurred")
            if self.layout == "gopro" and self.blur_dir is not None and self.blur_dir != self.blurred:
                raise SettingError(f"--blurred {self.blurred} and --blur-dir {self.blur_dir} name two folders; "
                                   "give one.", "blurred")
        if self.layout not in ("gopro", "flat") and (self.blur_dir is not None or self.sharp_dir != "sharp"):
            option = "--blur-dir" if self.blur_dir is not None else "--sharp-dir"
            raise SettingError(f"{option} is for --layout gopro and flat; --layout {self.layout} reads the set's own "
                               "folders (docs/datasets.md).", "blur_dir" if self.blur_dir is not None else "sharp_dir")
        if self.lists and self.layout not in ("realblur", "rsblur"):
            raise SettingError(f"--list is for --layout realblur and rsblur (their list files); got --layout "
                               f"{self.layout}.", "lists")
        if self.variant is not None and (self.layout != "realblur" or self.variant not in ("J", "R")):
            raise SettingError(f"--variant {self.variant}: expected J or R with --layout realblur.", "variant")
        if self.blur_dir is None and self.layout in ("gopro", "flat"):  # frozen: resolved once, here
            object.__setattr__(self, "blur_dir", self.blurred or "blur")

    def camera_response(self) -> dict | None:
        """The import's ``camera_response`` tag (:func:`blurred_response`): GoPro's folders under
        the gopro layout only; a flat folder's response is not known, whatever its name."""
        return blurred_response(self.blur_dir) if self.layout == "gopro" else None


def find_pairs(root, config: ImportConfig) -> list[tuple[str, str, str | None]]:
    """List ``(id, blurred_path, sharp_path or None)`` (paths relative to ``root``), checked
    (:func:`blursynth.pairs.real_layouts.find_entries` gives the whole records)."""
    return [(e.id, e.blurred, e.sharp) for e in find_entries(root, config)]


def check_pair_sizes(root, entries) -> None:
    """Read image headers only and refuse images whose sizes differ from their blurred image
    (sharp, every ground-truth frame) before anything is written; Levin's files are read whole."""
    root = Path(root)

    def size(rel):
        try:
            return read_header(root / rel)[:2]  # HxW as displayed: EXIF orientation applied
        except BadInputError:
            raise  # truncated, or over the pixel limit: already one line naming the file
        except Exception as exc:
            raise BadInputError(f"{root / rel}: unreadable image ({exc}); fix or remove the pair.") from None

    for e in entries:
        if e.params.get("mat_keys"):
            blurred, sharp, _, _, _ = load_entry_files(root, _row_params(e, None))
            if blurred.shape != sharp.shape:
                raise BadInputError(f"{root / e.blurred}: blurred image y is {blurred.shape[0]}x{blurred.shape[1]} "
                                    f"but sharp x is {sharp.shape[0]}x{sharp.shape[1]}; pairs must have the same size.")
            continue
        want = size(e.blurred)
        if e.params.get("gt_mat"):
            _check_kohler_mat(root / e.params["gt_mat"], want, root / e.blurred)
            continue
        for what, rel in [("its sharp partner", e.sharp)] + [(f"ground-truth frame {k}", f)
                                                             for k, f in enumerate(e.gt_frames)]:
            if rel is None:
                continue
            got = size(rel)
            if got != want:
                raise BadInputError(
                    f"{root / e.blurred}: blurred image is {want[0]}x{want[1]} but {what} {root / rel} is "
                    f"{got[0]}x{got[1]}; pairs must have the same size.")


def _check_kohler_mat(path: Path, want, blurred: Path) -> None:
    """A Köhler ``.mat``'s frames against their blurred image, before anything is written: the
    size from the file's headers; float values read whole, since one outside [0, 1] halfway
    through an import would leave part of a dataset behind."""
    key, shape, cls = kohler_mat_info(path)
    if tuple(shape[:2]) != tuple(want):
        raise BadInputError(f"{blurred}: blurred image is {want[0]}x{want[1]} but the ground-truth frames "
                            f"of {path} ({key}) are {shape[0]}x{shape[1]}; pairs must have the same size.")
    if cls != "uint8":
        kohler_mat_array(path, key)


def _row_params(entry: Entry, config: ImportConfig | None) -> dict:
    """A row's params: where its files are (relative to the imported folder) and the set's names."""
    params = {"blurred_path": entry.blurred, "sharp_path": entry.sharp, **entry.params}
    if config is not None:
        params["layout"] = config.layout
        if config.layout in ("gopro", "flat"):
            params["blur_dir"] = config.blur_dir
            response = config.camera_response()
            if response is not None:
                params["crf"] = response["crf"]  # the response the blurred frames were averaged in
    if entry.gt_frames:
        params["gt_frame_paths"] = list(entry.gt_frames)
    return params


def _import_rows(start, stop, root, entries, config, fp):
    for i in range(start, stop):
        entry = entries[i]
        params = _row_params(entry, config)
        blurred, sharp, frames, psf, notes = load_entry_files(root, params)
        if sharp is not None and blurred.shape != sharp.shape:
            raise BadInputError(f"{Path(root) / entry.blurred}: size {blurred.shape[:2]} differs from "
                                f"{Path(root) / entry.sharp} {sharp.shape[:2]}.")
        if notes:
            params["converted"] = "; ".join(notes)
        yield pair_row(
            index=i, id=entry.id, blurred=blurred, sharp=sharp, psf=psf, source="real", seed=0,
            params=params, fingerprint=fp, png_level=config.png_level, blurred_path=entry.blurred,
            sharp_path=entry.sharp, gt_frames=frames if entry.has_gt_frames else None,
        )


def _note_blursynth_export(root: Path) -> None:
    """Warn that ``root`` (or the folder holding it) is a ``dataset export``: its images come in
    as any real set's, without what the exported dataset recorded of each pair."""
    import warnings

    from ..dataset.export_layouts import EXPORT_MARKER

    for folder in (root, root.parent):
        if (folder / EXPORT_MARKER).is_file():
            warnings.warn(f"{folder} is an export of a blursynth dataset: its pairs are imported as a real "
                          "set's, without their recorded blur (params.jsonl, PSFs) and with this layout's "
                          "camera response; the dataset it was exported from keeps both.", stacklevel=3)
            return


def import_pairs(root, out, config: ImportConfig = ImportConfig(), *, workers: int = 1,
                 overwrite: bool = False, progress: bool = True, options=None) -> dict:
    """Turn a folder holding a deblurring set into a dataset with ``source='real'``.

    Parameters
    ----------
    root : str or Path
        Folder in the given layout.
    out : str or Path
        Output dataset directory.
    config : ImportConfig
    workers : int
    overwrite : bool
    options : WriteOptions, optional
        From a recipe build: executor, ``--limit`` and the recipe recorded
        (:class:`blursynth.dataset.writer.WriteOptions`).

    Returns
    -------
    manifest : dict
    """
    from ..config import fingerprint
    from ..dataset.writer import write_dataset

    entries = find_entries(root, config)
    _note_blursynth_export(Path(root))
    check_pair_sizes(root, entries)
    digest = functools.partial(_content_digest, root)
    listing = [(e.id, e.blurred, e.sharp, digest(e.blurred),
                None if e.sharp is None else digest(e.sharp),
                *[(f, digest(f)) for f in e.gt_frames]) for e in entries]
    folders = config.layout in ("gopro", "flat")  # the layouts whose folder names are options
    settings = {"command": "dataset import", "layout": config.layout,
                **({"blur_dir": config.blur_dir, "sharp_dir": config.sharp_dir} if folders else {}),
                "png_level": config.png_level, "shard_size": config.shard_size,
                # Rows name their set, split and sequence since version 2, RSBlur's sequence its
                # scene since 3: an import made before is another command's, not one to resume.
                "row_params": 3}
    for key in ("lists", "variant", "split", "subset", "blurred"):
        value = getattr(config, key)
        if value not in (None, ()):
            # List files by name: the pairs they name are in the listing, wherever the lists are.
            settings[key] = [Path(v).name for v in value] if key == "lists" else value
    # The fingerprint (stored in every row) names the files relative to the folder, so the same
    # folder imported from anywhere gives the same bytes; the manifest also records where it was.
    fp = fingerprint({**settings, "files": listing})
    settings["root"] = str(Path(root).resolve())
    sets = sorted({str(e.params.get("set")) for e in entries if e.params.get("set")})
    blurred_folder = config.blur_dir if folders else (config.blurred or "blur") if config.layout == "reds" else None
    extra = {"blurred_folder": blurred_folder, "camera_response": config.camera_response()}
    if sets:
        extra["sets"] = sets
    frames = any(e.has_gt_frames for e in entries)
    return write_dataset(
        out, kind="pairs", schema=GT_FRAMES_PAIR_SCHEMA if frames else PAIR_SCHEMA,
        n_items=len(entries), shard_size=config.shard_size,
        make_rows=functools.partial(_import_rows, root=str(root), entries=entries, config=config, fp=fp),
        fingerprint=fp, command=settings, workers=workers, overwrite=overwrite, desc="importing",
        progress=progress, options=options, extra=extra,
    )


def _content_digest(root, rel: str) -> str:
    """A digest of a source file's bytes, for the import's fingerprint. Names and sizes alone
    let a file replaced in place by one of the same size (an uncompressed image, a .mat of the
    same shape) pass as the import already written, which then kept the old pixels."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(Path(root) / rel, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rebuild_pair(row: dict, sources) -> tuple[np.ndarray, np.ndarray | None]:
    """Reread a ``real`` pair from the folder it was imported from.

    Parameters
    ----------
    row : dict
        As :class:`blursynth.dataset.reader.PairDataset` returns it (``params`` a dict).
    sources : str or Path
        The folder that was imported (params hold paths relative to it).

    Returns
    -------
    blurred : (H, W, 3) uint8 ndarray
    sharp : (H, W, 3) uint8 ndarray or None
        None for an image without ground truth. Both equal to the row's images while the files
        are unchanged; :func:`rebuild_gt_frames` rereads a recorded sequence's frames.
    """
    blurred, sharp, _, _, _ = load_entry_files(sources, row["params"], frames=False)
    return blurred, sharp


def rebuild_gt_frames(row: dict, sources) -> list[np.ndarray]:
    """Reread every ground-truth frame of a row (Köhler's recorded sequences, from their frame
    images or their ``.mat`` file; [] for others)."""
    return load_entry_files(sources, row["params"])[2]
