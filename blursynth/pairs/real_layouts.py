"""The folder layouts ``blursynth dataset import`` reads: where each test set keeps its blurred
images, their ground truth and the files that pair them (docs/datasets.md describes each set).

Every finder turns a folder into :class:`Entry` records (paths relative to the folder, checked
to exist, with the set's own names in ``params``); :func:`load_entry_files` reads a row's files
back from its params, for the import and for :func:`blursynth.pairs.real.rebuild_pair` alike.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import BadInputError
from ..sources.photos import IMAGE_SUFFIXES, load_rgb8
from .real_mat import levin_arrays, levin_rgb8, kohler_mat_frames, kohler_mat_info, levin_kernel

LAYOUTS = ("gopro", "flat", "hide", "realblur", "rsblur", "reds", "lai", "kohler", "levin")

#: REDS' blurred folders (``<split>_blur`` and the JPEG-compressed ``<split>_blur_jpeg``).
REDS_BLURRED = ("blur", "blur_jpeg")

#: The keys of a Levin et al. (2009) ``.mat`` file: sharp image, blurred image, kernel.
LEVIN_KEYS = {"sharp": "x", "blurred": "y", "kernel": "f"}


@dataclass(frozen=True)
class Entry:
    """One test image as a layout finds it.

    Attributes
    ----------
    id : str
        Unique within the import (``split/sequence/name`` for most sets).
    blurred : str
        Path relative to the imported folder.
    sharp : str or None
        None when the set has no ground truth for the image (Lai's real subset, REDS' test).
    params : dict
        ``set``, ``split``, ``sequence``, ``blurred_name``, ``sharp_name`` and the layout's own.
    gt_frames : tuple of str
        Köhler: every ground-truth frame of the recorded sequence, in order, as image files
        (empty where they are one ``.mat`` file: ``params['gt_mat']``, see :attr:`has_gt_frames`).
    """

    id: str
    blurred: str
    sharp: str | None
    params: dict = field(default_factory=dict)
    gt_frames: tuple = ()

    @property
    def has_gt_frames(self) -> bool:
        """Whether the row keeps a recorded sequence (image files or one ``.mat`` file)."""
        return bool(self.gt_frames or self.params.get("gt_mat"))


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _entry(root, blurred: Path, sharp: Path | None, id: str, params: dict, gt_frames=()) -> Entry:
    params = {**params, "blurred_name": blurred.name,
              "sharp_name": sharp.name if sharp is not None else None}
    if sharp is None:
        params["ground_truth"] = False
    return Entry(id=id, blurred=_rel(root, blurred),
                 sharp=None if sharp is None else _rel(root, sharp),
                 params=params, gt_frames=tuple(_rel(root, f) for f in gt_frames))


def _no_partner(path: Path, where: Path, layout: str, expect: str) -> BadInputError:
    return BadInputError(f"{path}: blurred image has no ground truth {where} (--layout {layout} "
                         f"expects {expect}); "
                         "restore the file or remove the image.")


# --- gopro, flat ----------------------------------------------------------------------------------


def find_folder_pairs(root: Path, config) -> list[Entry]:
    """``gopro``: ``<sequence>/<blur_dir>/NAME`` beside ``<sequence>/sharp/NAME`` at any depth;
    ``flat``: ``<blur_dir>/`` and ``sharp/`` directly under ``root``."""
    if config.layout == "flat":
        blur_dirs = [root / config.blur_dir] if (root / config.blur_dir).is_dir() else []
    else:
        blur_dirs = sorted(p for p in root.rglob(config.blur_dir)
                           if p.is_dir() and (p.parent / config.sharp_dir).is_dir())
    if not blur_dirs:
        expect = (f"{config.blur_dir}/ and {config.sharp_dir}/ folders side by side"
                  if config.layout == "flat"
                  else f"<sequence>/{config.blur_dir}/ beside <sequence>/{config.sharp_dir}/")
        nested = [] if config.layout != "flat" or not root.is_dir() else sorted(
            d.name for d in root.iterdir()
            if (d / config.blur_dir).is_dir() and (d / config.sharp_dir).is_dir())
        hint = (f"; {', '.join(f'{n}/' for n in nested)} in it hold them (a flat export with --splits "
                "has one per split): import each of those" if nested else "")
        raise BadInputError(f"{root}: no paired images found; expected {expect} (--layout "
                            f"{config.layout}){hint}.")
    entries = []
    for bdir in blur_dirs:
        sdir = bdir.parent / config.sharp_dir
        blurs = {p.name: p for p in _images(bdir)}
        sharps = {p.name: p for p in _images(sdir)}
        only_b, only_s = sorted(set(blurs) - set(sharps)), sorted(set(sharps) - set(blurs))
        if only_b or only_s:
            side, name = ("blurred", only_b[0]) if only_b else ("sharp", only_s[0])
            other = sdir if only_b else bdir
            raise BadInputError(
                f"{(bdir if only_b else sdir) / name}: {side} image has no partner in {other} "
                f"({len(only_b) + len(only_s)} unmatched name(s)); pairs must share file names.")
        seq = bdir.parent.relative_to(root).as_posix()
        stems = [Path(name).stem for name in blurs]
        for name in sorted(blurs):
            # Ids are file stems, unless two files share one (a.png and a.jpg).
            stem = Path(name).stem if stems.count(Path(name).stem) == 1 else name
            pid = f"{seq}/{stem}" if seq not in ("", ".") else stem
            params = {}
            if config.layout == "gopro":
                parts = PurePosixPath(seq).parts
                params = {"set": "gopro",
                          "split": next((p for p in parts if p in ("train", "test")), None),
                          "sequence": parts[-1] if parts else None}
            entries.append(_entry(root, blurs[name], sharps[name], pid, params))
    if not entries:
        raise BadInputError(f"{root}: the {config.blur_dir}/ and {config.sharp_dir}/ folders hold "
                            "no images.")
    return entries


# --- HIDE -----------------------------------------------------------------------------------------

_HIDE_NAME = re.compile(r"\d+from(?P<video>.+)")


def find_hide(root: Path, config) -> list[Entry]:
    """``GT/NAME`` (sharp) for ``train/NAME`` and ``test/<subset>/NAME`` (``test-close-ups``,
    ``test-long-shot``); ``root`` may be the folder holding ``HIDE_dataset/``."""
    if not (root / "GT").is_dir() and (root / "HIDE_dataset" / "GT").is_dir():
        root_sets = root / "HIDE_dataset"
    else:
        root_sets = root
    gt = root_sets / "GT"
    if not gt.is_dir():
        raise BadInputError(f"{root}: no GT/ folder; --layout hide expects GT/ (sharp images) "
                            "beside train/ "
                            "and test/test-close-ups/, test/test-long-shot/ (blurred), as "
                            "HIDE_dataset/ holds them.")
    groups = [("train", None, root_sets / "train")]
    groups += [("test", sub.name, sub) for sub in sorted((root_sets / "test").iterdir())
               if sub.is_dir()] if (root_sets / "test").is_dir() else []
    groups += [("test", None, root_sets / "test")]  # blurred images directly under test/, if any
    entries = []
    for split, subset, folder in groups:
        for blurred in _images(folder):
            sharp = gt / blurred.name
            if not sharp.is_file():
                raise _no_partner(blurred, f"in {gt}", "hide", "GT/<the same name>")
            m = _HIDE_NAME.fullmatch(blurred.stem)
            # HIDE names each image after the video it was cut from: "<n>from<video>".
            sequence = m["video"] if m else blurred.stem
            params = {"set": "hide", "split": split, "sequence": sequence}
            if subset is not None:
                params["subset"] = subset = subset.removeprefix("test-")  # close-ups, long-shot
            entries.append(_entry(root, blurred, sharp,
                                  f"{split}/{subset + '/' if subset else ''}{blurred.stem}",
                                  params))
    if not entries:
        raise BadInputError(f"{root_sets}: GT/ is there but train/ and test/ hold no blurred "
                            "images (--layout hide).")
    _warn_shared_ground_truth(entries)
    return entries


def _warn_shared_ground_truth(entries) -> None:
    """Warn when two blurred images take the same GT/ file: HIDE pairs by name alone, so a name
    in two of its folders pairs both with one sharp image, and at most one of them is right.
    A warning, not a refusal: the published set is not known to have such names."""
    import sys

    by_sharp = {}
    for e in entries:
        by_sharp.setdefault(e.sharp, []).append(e.blurred)
    shared = {k: v for k, v in by_sharp.items() if len(v) > 1}
    if shared:
        sharp, blurred = next(iter(shared.items()))
        sys.stderr.write(f"warning: {len(shared)} ground-truth image(s) are paired with more "
                         f"than one blurred image (e.g. {sharp} with {', '.join(blurred)}); "
                         "HIDE pairs by file name, so check those pairs.\n")


# --- RealBlur, RSBlur: list files -----------------------------------------------------------------

_REALBLUR_LIST = re.compile(r"RealBlur_(?P<variant>[JR])_(?P<split>train|test)_list\.txt")
_RSBLUR_LIST = re.compile(r"RSBlur_real_(?P<split>train|val|test)\.txt")
_SHARP_WORDS = ("gt", "sharp", "target", "groundtruth")


def _is_sharp_path(path: str) -> bool:
    parts = [p.lower() for p in PurePosixPath(path).parts]
    return any(p in _SHARP_WORDS for p in parts[:-1]) or parts[-1].startswith(_SHARP_WORDS)


def _list_files(root: Path, config, pattern: re.Pattern, layout: str,
                example: str) -> list[tuple[Path, re.Match | None]]:
    if config.lists:
        found = []
        for name in config.lists:
            path = Path(name)
            if not path.is_file() and (root / name).is_file():
                path = root / name
            if not path.is_file():
                raise BadInputError(f"--list {name}: no such file; expected a list file of the set "
                                    f"(e.g. {example}), given as a path or relative to {root}.")
            found.append((path, pattern.fullmatch(path.name)))
        return found
    found = sorted((p, pattern.fullmatch(p.name)) for p in root.iterdir()
                   if pattern.fullmatch(p.name)) if root.is_dir() else []
    if not found:
        raise BadInputError(f"{root}: no list file found; --layout {layout} reads the set's lists "
                            f"(e.g. {example}) "
                            "from the folder: put them there or give --list FILE.")
    return found


def _read_list(root: Path, list_path: Path, layout: str) -> list[tuple[str, str, int]]:
    """(sharp, blurred, line number) of each line of a list file: two paths relative to ``root``;
    the sharp one is named by a ``gt``/``sharp`` folder or file name, else it is the first (the
    order RealBlur's and RSBlur's lists use)."""
    pairs = []
    for n, line in enumerate(list_path.read_text().splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) < 2:
            raise BadInputError(f"{list_path} line {n}: {line.strip()!r} names one file; --layout "
                                f"{layout} expects "
                                "two paths per line (ground truth and blurred image).")
        a, b = (_list_path_in(root, w, f"{list_path} line {n}") for w in words[:2])
        sharp, blurred = (b, a) if _is_sharp_path(b) and not _is_sharp_path(a) else (a, b)
        for path in (sharp, blurred):
            if not (root / path).is_file():
                raise BadInputError(f"{list_path} line {n}: {root / path} is missing; the list "
                                    "names an image "
                                    f"that is not in {root} (give the set's folder, or fix the "
                                    "list).")
        pairs.append((sharp, blurred, n))
    if not pairs:
        raise BadInputError(f"{list_path}: the list names no images (--layout {layout}).")
    return pairs


def _list_path_in(root: Path, text: str, where: str) -> str:
    """A list's path as a clean path relative to ``root`` (``/``-separated, no ``..``).

    Lists may name files relative to the set's folder or by absolute paths (lists regenerated
    on another machine often are); either must land inside the folder, since the path becomes
    the pair's id and, with ``--save-outputs``, the name an output is written under.
    """
    given = Path(text)
    joined = Path(os.path.normpath(given if given.is_absolute() else Path(root).absolute() / given))
    for base, path in ((Path(os.path.normpath(Path(root).absolute())), joined),
                       (Path(root).resolve(), joined.resolve())):  # a root reached by a link
        if path != base and path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    raise BadInputError(f"{where}: {text} is outside {root}; list paths must name files inside "
                        "the set's folder (relative to it, or absolute under it).")


def _sequence_of(blurred: str) -> str:
    """The blurred image's folder without a trailing ``blur`` folder (RealBlur's ``sceneNNN``)."""
    parts = list(PurePosixPath(blurred).parts[:-1])
    if parts and parts[-1].lower() in ("blur", "blurred", "input"):
        parts.pop()
    return "/".join(parts) or PurePosixPath(blurred).stem


def find_realblur(root: Path, config) -> list[Entry]:
    """``RealBlur_{J,R}_{train,test}_list.txt``: one ``gt blur`` pair of paths (relative to the
    folder) per line; ``--variant`` picks J or R when both lists are there."""
    lists = _list_files(root, config, _REALBLUR_LIST, "realblur", "RealBlur_J_test_list.txt")
    chosen = []
    for path, m in lists:
        variant = m["variant"] if m else config.variant
        if config.variant is not None and variant != config.variant:
            if config.lists:
                raise BadInputError(f"--list {path.name} is a RealBlur-{variant} list but "
                                    "--variant is "
                                    f"{config.variant}; give one of them.")
            continue
        if variant is None:
            raise BadInputError(f"--list {path}: its name does not say J or R (RealBlur_J_..., "
                                "RealBlur_R_...); "
                                "give --variant J or R.")
        chosen.append((path, variant, m["split"] if m else None))
    variants = sorted({v for _, v, _ in chosen})
    if len(variants) > 1:
        raise BadInputError(f"{root}: holds RealBlur-J and RealBlur-R lists; give --variant J or "
                            "R (two sets, "
                            "imported one at a time).")
    if not chosen:
        raise BadInputError(f"{root}: no RealBlur-{config.variant} list "
                            f"(RealBlur_{config.variant}_test_list.txt); "
                            "give --list FILE or another --variant.")
    entries = []
    for path, variant, split in chosen:
        split = split or config.split or "test"
        for sharp, blurred, _ in _read_list(root, path, "realblur"):
            sequence = _sequence_of(blurred).rsplit("/", 1)[-1]
            params = {"set": f"realblur-{variant.lower()}", "split": split, "sequence": sequence,
                      "variant": variant, "list": path.name}
            entries.append(_entry(root, root / blurred, root / sharp,
                                  f"{split}/{sequence}/{PurePosixPath(blurred).stem}", params))
    return entries


def _rsblur_scene(blurred: str) -> str:
    """RSBlur's scene: the blurred image's folders up to the first numbered one
    (``RSBlur/0001/000022/real_blur/real_blur.png`` -> ``RSBlur/0001``). Each numbered folder
    below it holds one pair, so the image's own folder would put every pair in a source of its
    own and a split by source would split the shots of one scene."""
    parts = PurePosixPath(blurred).parts[:-1]
    for k, part in enumerate(parts):
        if part.isdigit():
            return "/".join(parts[:k + 1])
    return _sequence_of(blurred)


def find_rsblur(root: Path, config) -> list[Entry]:
    """``RSBlur_real_{train,val,test}.txt``: one ``sharp blurred`` pair of paths per line."""
    entries = []
    for path, m in _list_files(root, config, _RSBLUR_LIST, "rsblur", "RSBlur_real_test.txt"):
        split = m["split"] if m else (config.split or "test")
        for sharp, blurred, _ in _read_list(root, path, "rsblur"):
            params = {"set": "rsblur", "split": split, "sequence": _rsblur_scene(blurred),
                      "list": path.name}
            entries.append(_entry(root, root / blurred, root / sharp,
                                  f"{split}/{_sequence_of(blurred)}/{PurePosixPath(blurred).stem}",
                                  params))
    return entries


# --- REDS -----------------------------------------------------------------------------------------

_REDS_DIR = re.compile(r"(?P<split>train|val|test)_(?P<kind>blur|blur_jpeg)")


def find_reds(root: Path, config) -> list[Entry]:
    """``<split>_blur/<clip>/NAME`` (or ``<split>_blur_jpeg``, ``--blurred blur_jpeg``) beside
    ``<split>_sharp/<clip>/NAME``, at any depth; a split without its sharp folder (REDS' test)
    gives rows without ground truth."""
    kind = config.blurred or "blur"
    blur_dirs = sorted(p for p in root.rglob(f"*_{kind}")
                       if p.is_dir() and (m := _REDS_DIR.fullmatch(p.name)) and m["kind"] == kind)
    if not blur_dirs:
        raise BadInputError(f"{root}: no REDS blurred folder; --layout reds expects "
                            f"<split>_{kind}/<clip>/NAME "
                            "(split train, val or test) beside <split>_sharp/<clip>/NAME.")
    entries = []
    for bdir in blur_dirs:
        split = _REDS_DIR.fullmatch(bdir.name)["split"]
        sdir = bdir.parent / f"{split}_sharp"
        for clip in sorted(p for p in bdir.iterdir() if p.is_dir()):
            for blurred in _images(clip):
                sharp = None
                if sdir.is_dir():
                    sharp = next((s for s in (sdir / clip.name / blurred.name,
                                              *(sdir / clip.name / (blurred.stem + e)
                                                for e in (".png", ".jpg")))
                                  if s.is_file()), None)
                    if sharp is None:
                        raise _no_partner(blurred, f"in {sdir / clip.name}", "reds",
                                          f"{split}_sharp/<clip>/<same name>")
                params = {"set": "reds", "split": split, "sequence": clip.name,
                          "blurred_folder": bdir.name}
                entries.append(_entry(root, blurred, sharp, f"{split}/{clip.name}/{blurred.stem}",
                                      params))
    if not entries:
        raise BadInputError(f"{root}: the REDS folders hold no images (--layout reds).")
    return entries


# --- Lai et al. 2016 ------------------------------------------------------------------------------


def find_lai(root: Path, config) -> list[Entry]:
    """``real_dataset/`` (blurred photos, no ground truth) and ``synthetic_dataset/`` whose
    ``ground_truth/NAME.ext`` is the sharp image of every blurred ``<subset>/NAME_<kernel>.ext``."""
    real, synth = root / "real_dataset", root / "synthetic_dataset"
    if not real.is_dir() and not synth.is_dir():
        raise BadInputError(f"{root}: no real_dataset/ or synthetic_dataset/ folder "
                            "(--layout lai).")
    entries = []
    for blurred in _images(real):
        entries.append(_entry(root, blurred, None, f"real/{blurred.stem}",
                              {"set": "lai", "split": "test", "sequence": blurred.stem,
                               "subset": "real"}))
    if synth.is_dir():
        gt_dir = synth / "ground_truth"
        truths = {p.stem: p for p in _images(gt_dir)}
        if not truths:
            raise BadInputError(f"{gt_dir}: no ground-truth images; --layout lai expects "
                                "synthetic_dataset/"
                                "ground_truth/NAME.ext beside "
                                "synthetic_dataset/<subset>/NAME_<kernel>.ext.")
        by_length = sorted(truths, key=len, reverse=True)
        for sub in sorted(p for p in synth.iterdir() if p.is_dir() and p.name != "ground_truth"
                          and "kernel" not in p.name.lower()):  # kernels, not blurred images
            for blurred in _images(sub):
                # The longest ground-truth name that the blurred one starts with, then "_".
                name = next((t for t in by_length if blurred.stem.startswith(t + "_")), None)
                if name is None:
                    raise _no_partner(blurred, f"in {gt_dir}", "lai",
                                      "ground_truth/NAME.ext for NAME_<kernel>.ext")
                params = {"set": "lai", "split": "test", "sequence": name, "subset": sub.name,
                          "kernel": blurred.stem[len(name) + 1:]}
                entries.append(_entry(root, blurred, truths[name], f"{sub.name}/{blurred.stem}",
                                      params))
    if not entries:
        raise BadInputError(f"{root}: real_dataset/ and synthetic_dataset/ hold no images "
                            "(--layout lai).")
    return entries


# --- Köhler et al. 2012 ---------------------------------------------------------------------------

_KOHLER_BLURRY = re.compile(r"Blurry(?P<image>\d+)_(?P<traj>\d+)", re.IGNORECASE)
_KOHLER_GT = re.compile(r"GroundTruth(?P<image>\d+)_(?P<traj>\d+)_(?P<frame>\d+)", re.IGNORECASE)
#: The set's MATLAB form of the ground truth: every frame of one sequence in one file.
_KOHLER_GT_MAT = re.compile(r"GroundTruth(?P<image>\d+)_(?P<traj>\d+)", re.IGNORECASE)


def find_kohler(root: Path, config) -> list[Entry]:
    """``Blurry<i>_<j>.ext`` (image i, trajectory j) with every ``GroundTruth<i>_<j>_<k>.ext``
    (the sharp frame at pose k of the recorded shake) or with ``GroundTruth<i>_<j>.mat`` (all
    of them in one 4-D array), anywhere under ``root``."""
    blurry, frames, mats = {}, {}, {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES and (m := _KOHLER_BLURRY.fullmatch(path.stem)):
            blurry[(int(m["image"]), int(m["traj"]))] = path
        elif suffix in IMAGE_SUFFIXES and (m := _KOHLER_GT.fullmatch(path.stem)):
            frames.setdefault((int(m["image"]), int(m["traj"])), []).append((int(m["frame"]), path))
        elif suffix == ".mat" and (m := _KOHLER_GT_MAT.fullmatch(path.stem)):
            mats.setdefault((int(m["image"]), int(m["traj"])), []).append(path)
    if not blurry:
        raise BadInputError(f"{root}: no Blurry<image>_<trajectory> images (--layout kohler "
                            "expects them with "
                            "their GroundTruth<image>_<trajectory>_<frame> frames or "
                            "GroundTruth<image>_<trajectory>.mat files).")
    entries = []
    for (image, traj), blurred in sorted(blurry.items()):
        seq = [p for _, p in sorted(frames.get((image, traj), []))]
        mat = mats.get((image, traj), [])
        # One form per image: frames from both would be two sequences of one shake, and which
        # of them a score used would depend on the importer's choice, not the user's.
        if mat and seq:
            raise BadInputError(f"{mat[0]}: GroundTruth{image}_{traj} is there both as this .mat "
                                f"file and as {len(seq)} frame image(s) (e.g. {seq[0]}); "
                                "--layout kohler reads one form per image: remove the other.")
        if len(mat) > 1:
            raise BadInputError(f"{mat[1]}: a second GroundTruth{image}_{traj}.mat (the other "
                                f"is {mat[0]}); keep one file per image.")
        params = {"set": "kohler", "split": "test", "sequence": f"image{image}", "image": image,
                  "trajectory": traj}
        id = f"image{image}/trajectory{traj:02d}"
        if mat:
            key, shape, _ = kohler_mat_info(mat[0])
            rel = _rel(root, mat[0])
            count = shape[3]
            # As with the frame images, sharp is the middle frame; the row names the array it
            # came from (Levin's style, file:array) and the file, whose frames rebuild rereads.
            params.update({"gt_frame_count": count, "sharp_frame": count // 2, "gt_mat": rel,
                           "gt_mat_key": key, "blurred_name": blurred.name,
                           "sharp_name": f"{mat[0].name}:{key}"})
            entries.append(Entry(id=id, blurred=_rel(root, blurred), sharp=rel, params=params))
            continue
        if not seq:
            raise _no_partner(blurred, f"under {root}", "kohler",
                              f"GroundTruth{image}_{traj}_<frame> images or "
                              f"GroundTruth{image}_{traj}.mat")
        # The sharp column holds the middle frame (the pose halfway through the exposure), for
        # tools that want one image; the kohler protocol scores against every frame.
        middle = len(seq) // 2
        params.update({"gt_frame_count": len(seq), "sharp_frame": middle})
        entries.append(_entry(root, blurred, seq[middle], id, params, gt_frames=seq))
    return entries


# --- Levin et al. 2009 ----------------------------------------------------------------------------

_LEVIN = re.compile(r"im(?P<image>\d+)_flit(?P<kernel>\d+)", re.IGNORECASE)


def find_levin(root: Path, config) -> list[Entry]:
    """``im<NN>_flit<MM>.mat`` files, each holding the sharp image ``x``, the blurred ``y`` and the
    kernel ``f`` (grayscale floats in [0, 1])."""
    mats = sorted(p for p in root.rglob("*.mat") if _LEVIN.fullmatch(p.stem))
    if not mats:
        raise BadInputError(f"{root}: no im<NN>_flit<MM>.mat files (--layout levin expects Levin "
                            "et al.'s "
                            "MATLAB files, each with x (sharp), y (blurred) and f (kernel)).")
    entries = []
    for mat in mats:
        m = _LEVIN.fullmatch(mat.stem)
        rel = _rel(root, mat)
        params = {"set": "levin", "split": "test", "sequence": f"im{int(m['image']):02d}",
                  "image": int(m["image"]),
                  "kernel": int(m["kernel"]), "blurred_name": f"{mat.name}:{LEVIN_KEYS['blurred']}",
                  "sharp_name": f"{mat.name}:{LEVIN_KEYS['sharp']}", "mat_keys": LEVIN_KEYS}
        entries.append(Entry(id=mat.stem, blurred=rel, sharp=rel, params=params))
    return entries


FINDERS = {"gopro": find_folder_pairs, "flat": find_folder_pairs, "hide": find_hide,
           "realblur": find_realblur,
           "rsblur": find_rsblur, "reds": find_reds, "lai": find_lai, "kohler": find_kohler,
           "levin": find_levin}


def find_entries(root, config) -> list[Entry]:
    """Every test image of ``root`` in ``config.layout``, checked: files there, ids unique,
    and only ``config.split`` / ``config.subset`` when given."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: no such folder; expected a folder of paired images.")
    if config.layout not in FINDERS:
        raise BadInputError(f"--layout must be one of {', '.join(LAYOUTS)}; got {config.layout!r}.")
    for option, name in (("--blur-dir", config.blur_dir), ("--sharp-dir", config.sharp_dir)):
        if config.layout in ("gopro", "flat") and (name in ("", ".", "..") or "/" in name
                                                   or os.sep in name):
            raise BadInputError(f"{option} {name!r}: expected the name of one folder, e.g. blur "
                                "or blur_gamma.")
    entries = FINDERS[config.layout](root, config)
    for key in ("split", "subset"):
        want = getattr(config, key)
        if want is not None:
            if key == "subset" and config.layout == "hide":
                # the folder's name (test-close-ups) or the subset's
                want = want.removeprefix("test-")
            kept = [e for e in entries if e.params.get(key) == want]
            if not kept:
                have = sorted({str(e.params[key]) for e in entries
                               if e.params.get(key) is not None})
                raise BadInputError(f"--{key} {want}: no image of {root} is in it (--layout "
                                    f"{config.layout} found "
                                    f"{key} {', '.join(have) or 'none'}).")
            entries = kept
    seen = {}
    for e in entries:
        if e.id in seen:
            raise BadInputError(f"{root / e.blurred}: listed twice (as {seen[e.id]} and "
                                f"{e.blurred}); each image "
                                "may be imported once.")
        seen[e.id] = e.blurred
    return entries


# --- reading a row's files ------------------------------------------------------------------------


def load_entry_files(root, params: dict, *, frames: bool = True):
    """A row's images from its imported folder: ``(blurred, sharp or None, gt_frames, psf, notes)``.

    ``params`` are the row's (``blurred_path``, ``sharp_path``, ``gt_frame_paths`` or Köhler's
    ``gt_mat`` and ``gt_mat_key``, Levin's ``mat_keys``); images are uint8 (H, W, 3) as
    displayed; ``psf`` is Levin's kernel (else None); ``notes`` what was converted, each once.
    """
    root = Path(root)
    if params.get("mat_keys"):
        path = root / params["blurred_path"]
        arrays = levin_arrays(path, params["mat_keys"])
        blurred = levin_rgb8(arrays["blurred"], path, "y")
        sharp = levin_rgb8(arrays["sharp"], path, "x")
        note = "grayscale floats rounded to 8 bits and replicated to RGB"
        return blurred, sharp, [], levin_kernel(arrays["kernel"]), [note]
    if params.get("gt_mat"):
        return _load_kohler_mat(root, params, frames)
    blurred, note_b = load_rgb8(root / params["blurred_path"])
    sharp, note_s = (None, None) if params.get("sharp_path") is None else \
        load_rgb8(root / params["sharp_path"])
    gt = [load_rgb8(root / p) for p in params.get("gt_frame_paths", [])] if frames else []
    notes = sorted({n for n in (note_b, note_s, *(n for _, n in gt)) if n})
    return blurred, sharp, [g for g, _ in gt], None, notes


def _load_kohler_mat(root: Path, params: dict, frames: bool):
    """A Köhler row whose frames are one ``.mat`` file: the middle frame is read from it too,
    so the whole array is read even for the sharp image alone."""
    blurred, note_b = load_rgb8(root / params["blurred_path"])
    path = root / params["gt_mat"]
    seq, note_f = kohler_mat_frames(path, params["gt_mat_key"])
    if len(seq) != params.get("gt_frame_count", len(seq)) or seq[0].shape != blurred.shape:
        raise BadInputError(f"{path}: holds {len(seq)} frames of "
                            f"{seq[0].shape[0]}x{seq[0].shape[1]}; the row has "
                            f"{params.get('gt_frame_count')} of "
                            f"{blurred.shape[0]}x{blurred.shape[1]}: the file changed since the "
                            "import; import the folder again.")
    sharp = seq[params["sharp_frame"]]
    notes = sorted({n for n in (note_b, note_f) if n})
    return blurred, sharp, seq if frames else [], None, notes
