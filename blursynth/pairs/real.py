"""Real pairs (``blursynth dataset import``): GoPro-style folders of (blurred, sharp) photos."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset.schema import PAIR_SCHEMA, pair_row
from ..dataset.writer import write_dataset
from ..errors import BadInputError, SettingError
from ..sources.photos import IMAGE_SUFFIXES, load_rgb8, read_header

LAYOUTS = ("gopro", "flat")

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
    layout : {'gopro', 'flat'}
        ``gopro``: ``<seq>/<blur_dir>/NAME`` beside ``<seq>/sharp/NAME`` (at any
        depth, e.g. ``GOPRO_Large/train/<seq>/...``). ``flat``: ``<blur_dir>/NAME``
        beside ``sharp/NAME`` directly under the folder.
    blur_dir : str or None
        Folder name of the blurred images [default: ``blurred``, else ``blur``].
    blurred : {'blur', 'blur_gamma'} or None
        GoPro's blurred folder to read (``--layout gopro`` only; sets ``blur_dir``). With the
        gopro layout, rows and the manifest record a GoPro folder's camera response
        (:data:`GOPRO_BLURRED`, :meth:`camera_response`); a flat folder's is not known.
    sharp_dir : str
    png_level : int or None
    shard_size : int
    """

    layout: str = "gopro"
    blur_dir: str | None = None
    sharp_dir: str = "sharp"
    png_level: int | None = None
    shard_size: int = 200
    blurred: str | None = None

    def __post_init__(self):
        if self.blurred is not None:
            if self.blurred not in GOPRO_BLURRED:
                raise SettingError(f"--blurred must be one of {', '.join(GOPRO_BLURRED)} (GoPro's blurred "
                                   f"folders); got {self.blurred!r}.", "blurred")
            if self.layout != "gopro":
                raise SettingError(f"--blurred {self.blurred} names a GoPro blurred folder (--layout gopro); with "
                                   f"--layout {self.layout} name the folder with --blur-dir.", "blurred")
            if self.blur_dir is not None and self.blur_dir != self.blurred:
                raise SettingError(f"--blurred {self.blurred} and --blur-dir {self.blur_dir} name two folders; "
                                   "give one.", "blurred")
        if self.blur_dir is None:  # frozen: the resolved folder is set once, here
            object.__setattr__(self, "blur_dir", self.blurred or "blur")

    def camera_response(self) -> dict | None:
        """The import's ``camera_response`` tag (:func:`blurred_response`): GoPro's folders under
        the gopro layout only; a flat folder's response is not known, whatever its name."""
        return blurred_response(self.blur_dir) if self.layout == "gopro" else None


def find_pairs(root, config: ImportConfig) -> list[tuple[str, str, str]]:
    """List ``(id, blurred_path, sharp_path)`` (paths relative to ``root``), checked.

    Raises
    ------
    BadInputError
        No images, or names that appear on one side only.
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: no such folder; expected a folder of paired images.")
    if config.layout not in LAYOUTS:
        raise BadInputError(f"--layout must be one of {', '.join(LAYOUTS)}; got {config.layout!r}.")
    for option, name in (("--blur-dir", config.blur_dir), ("--sharp-dir", config.sharp_dir)):
        if name in ("", ".", "..") or "/" in name or os.sep in name:
            raise BadInputError(f"{option} {name!r}: expected the name of one folder, e.g. blur or blur_gamma.")
    if config.layout == "flat":
        blur_dirs = [root / config.blur_dir] if (root / config.blur_dir).is_dir() else []
    else:
        blur_dirs = sorted(p for p in root.rglob(config.blur_dir) if p.is_dir() and (p.parent / config.sharp_dir).is_dir())
    if not blur_dirs:
        expect = (
            f"{config.blur_dir}/ and {config.sharp_dir}/ folders side by side"
            if config.layout == "flat"
            else f"<sequence>/{config.blur_dir}/ beside <sequence>/{config.sharp_dir}/"
        )
        raise BadInputError(f"{root}: no paired images found; expected {expect} (--layout {config.layout}).")
    pairs = []
    for bdir in blur_dirs:
        sdir = bdir.parent / config.sharp_dir
        blurs = {p.name: p for p in bdir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        sharps = {p.name: p for p in sdir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES} if sdir.is_dir() else {}
        only_b = sorted(set(blurs) - set(sharps))
        only_s = sorted(set(sharps) - set(blurs))
        if only_b or only_s:
            side, name = ("blurred", only_b[0]) if only_b else ("sharp", only_s[0])
            other = sdir if only_b else bdir
            raise BadInputError(
                f"{(bdir if only_b else sdir) / name}: {side} image has no partner in {other} "
                f"({len(only_b) + len(only_s)} unmatched name(s)); pairs must share file names."
            )
        seq = bdir.parent.relative_to(root).as_posix()
        stems = [Path(name).stem for name in blurs]
        for name in sorted(blurs):
            rel_b = blurs[name].relative_to(root).as_posix()
            rel_s = sharps[name].relative_to(root).as_posix()
            # Ids are file stems, unless two files share one (a.png and a.jpg).
            stem = Path(name).stem if stems.count(Path(name).stem) == 1 else name
            pid = f"{seq}/{stem}" if seq not in ("", ".") else stem
            pairs.append((pid, rel_b, rel_s))
    if not pairs:
        raise BadInputError(f"{root}: the {config.blur_dir}/ and {config.sharp_dir}/ folders hold no images.")
    return pairs


def check_pair_sizes(root, pairs) -> None:
    """Read image headers only and refuse pairs whose sizes differ (before anything is written)."""
    root = Path(root)
    for pid, b, s in pairs:
        sizes = []
        for rel in (b, s):
            try:
                sizes.append(read_header(root / rel)[:2])  # HxW as displayed: EXIF orientation applied
            except BadInputError:
                raise  # truncated, or over the pixel limit: already one line naming the file
            except Exception as exc:
                raise BadInputError(f"{root / rel}: unreadable image ({exc}); fix or remove the pair.") from None
        if sizes[0] != sizes[1]:
            raise BadInputError(
                f"{root / b}: blurred image is {sizes[0][0]}x{sizes[0][1]} but its sharp partner "
                f"{root / s} is {sizes[1][0]}x{sizes[1][1]}; pairs must have the same size."
            )


def _import_rows(start, stop, root, pairs, config, fp):
    root = Path(root)
    response = config.camera_response()
    for i in range(start, stop):
        pid, b, s = pairs[i]
        blurred, note_b = load_rgb8(root / b)
        sharp, note_s = load_rgb8(root / s)
        if blurred.shape != sharp.shape:
            raise BadInputError(f"{root / b}: size {blurred.shape[:2]} differs from {root / s} {sharp.shape[:2]}.")
        params = {"blurred_path": b, "sharp_path": s, "layout": config.layout, "blur_dir": config.blur_dir}
        if response is not None:
            params["crf"] = response["crf"]  # the response the blurred frames were averaged in
        notes = [n for n in (note_b, note_s) if n]
        if notes:
            params["converted"] = "; ".join(sorted(set(notes)))
        yield pair_row(
            index=i, id=pid, blurred=blurred, sharp=sharp, psf=None, source="real", seed=0,
            params=params, fingerprint=fp, png_level=config.png_level, blurred_path=b, sharp_path=s,
        )


def import_pairs(root, out, config: ImportConfig = ImportConfig(), *, workers: int = 1,
                 overwrite: bool = False, progress: bool = True, options=None) -> dict:
    """Turn a folder of real (blurred, sharp) pairs into a dataset with ``source='real'``.

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

    pairs = find_pairs(root, config)
    check_pair_sizes(root, pairs)
    listing = [(pid, b, s, os.path.getsize(Path(root) / b), os.path.getsize(Path(root) / s)) for pid, b, s in pairs]
    settings = {"command": "dataset import", "layout": config.layout,
                "blur_dir": config.blur_dir, "sharp_dir": config.sharp_dir, "png_level": config.png_level,
                "shard_size": config.shard_size}
    # The fingerprint (stored in every row) names the files relative to the folder, so the same
    # folder imported from anywhere gives the same bytes; the manifest also records where it was.
    fp = fingerprint({**settings, "files": listing})
    settings["root"] = str(Path(root).resolve())
    return write_dataset(
        out, kind="pairs", schema=PAIR_SCHEMA, n_items=len(pairs), shard_size=config.shard_size,
        make_rows=functools.partial(_import_rows, root=str(root), pairs=pairs, config=config, fp=fp),
        fingerprint=fp, command=settings, workers=workers, overwrite=overwrite, desc="importing",
        progress=progress, options=options,
        extra={"blurred_folder": config.blur_dir, "camera_response": config.camera_response()},
    )


def rebuild_pair(row: dict, sources) -> tuple[np.ndarray, np.ndarray]:
    """Reread a ``real`` pair from the folder it was imported from.

    Parameters
    ----------
    row : dict
        As :class:`blursynth.dataset.reader.PairDataset` returns it (``params`` a dict).
    sources : str or Path
        The folder that was imported (params hold paths relative to it).

    Returns
    -------
    blurred, sharp : (H, W, 3) uint8 ndarray
        Equal to the row's images while the files are unchanged.
    """
    params = row["params"]
    root = Path(sources)
    return load_rgb8(root / params["blurred_path"])[0], load_rgb8(root / params["sharp_path"])[0]
