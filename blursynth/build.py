"""``blursynth build``: run a whole pipeline from a pinned TOML recipe.

A recipe names its inputs and an ordered list of steps; each step runs one
generator (or the trainer) with the options its command takes, writing to
``<out>/<step name>``. Values ``"@name"`` refer to an input or to an earlier
step's output. Everything is validated before the first step runs; every
manifest written records the recipe's fingerprint; rerunning resumes.

Recipe layout::

    [build]
    seed = 0                       # default seed of every step
    out = "builds/NAME"            # default output folder

    [inputs.photos]                # a folder of photos: scikit-image samples ...
    skimage = ["astronaut", "coffee"]
    # path = "my/photos"           # ... or a folder (relative to the recipe file)

    [[steps]]
    name = "bank"
    run = "trajectories"           # trajectories | blur | render-clip | frames-average |
    n = 2000                       # import | bgan-train | bgan-blur | train | evaluate
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import canonical_json, fingerprint
from .errors import BadInputError, RecipeError
from .recipes import load_recipe

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


# ---------------------------------------------------------------------------------------------
# locating keys in the file, for error messages


def _line_of(text: str, table: tuple, key: str | None) -> int | None:
    """1-based line of ``key`` inside the table ``table`` (``("steps", 2)`` for the 3rd [[steps]])."""
    header_re = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    counts: dict = {}
    current = ()
    target = tuple(str(t) for t in table)
    start = None
    lines = text.splitlines()
    for no, line in enumerate(lines, 1):
        m = header_re.match(line)
        if m:
            name = m.group(1)
            if line.strip().startswith("[["):
                counts[name] = counts.get(name, -1) + 1
                current = (name, str(counts[name]))
            else:
                current = tuple(name.split("."))
            if current == target:
                start = no
            continue
        if current == target and key is not None and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return no
    return start


@dataclass
class Recipe:
    path: Path
    text: str
    data: dict
    fingerprint: str
    dry_run: bool = False
    # (step index, key) -> the --set item that gave it its value: errors name that, not the file.
    overrides: dict = field(default_factory=dict)

    def where(self, table: tuple = (), key: str | None = None) -> str:
        step = table[1] if len(table) == 2 and table[0] == "steps" else None
        if step is not None and (step, key) in self.overrides:
            return f"{self.path}: --set {self.overrides[step, key]}"
        line = _line_of(self.text, table, key) if table else None
        if line is None and key is not None and not table:
            m = [i for i, l in enumerate(self.text.splitlines(), 1) if re.match(rf"^\s*{re.escape(key)}\s*=", l)]
            line = m[0] if m else None
        place = f"{self.path}:{line}" if line else str(self.path)
        sets = [item for (i, _), item in self.overrides.items() if i == step] if key is None else []
        return f"{place} (with --set {', '.join(sets)})" if sets else place

    def fail(self, message: str, table: tuple = (), key: str | None = None):
        raise RecipeError(f"{self.where(table, key)}: {message}")


def read_recipe(path) -> Recipe:
    path = Path(path)
    data = load_recipe(path)
    return Recipe(path, path.read_text(), data, fingerprint(data))


# ---------------------------------------------------------------------------------------------
# steps


@dataclass
class Step:
    name: str
    run: str
    index: int
    out: Path
    settings: object = None
    describe: dict = field(default_factory=dict)
    uses: list = field(default_factory=list)
    note: str = ""


@dataclass
class Plan:
    recipe: Recipe
    out: Path
    inputs: dict
    steps: list
    limit: int | None
    executor: str
    address: str | None
    overwrite: bool = False


def _table_settings(recipe, table_key, cls, table: dict, *, fixed: dict, allowed_extra=()):
    """Build ``cls`` from a recipe table; unknown keys and bad values name the file line."""
    names = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key in ("name", "run") or key in allowed_extra:
            continue
        if key not in names or key in fixed:
            known = sorted((names - set(fixed)) | set(allowed_extra))
            recipe.fail(f"unknown key {key!r} for a {table.get('run')} step; known keys: {', '.join(known)}.",
                        table_key, key)
    values = {k: v for k, v in table.items() if k in names and k not in ("name", "run")}
    for k, v in list(values.items()):
        f = next(f for f in dataclasses.fields(cls) if f.name == k)
        if isinstance(v, list) and "tuple" in str(f.type):
            values[k] = tuple(v)
    values.update(fixed)
    try:
        return cls(**values)
    except (BadInputError, ValueError, TypeError) as exc:
        bad = _guess_key(str(exc), table)
        recipe.fail(str(exc).replace("--", "").strip(), table_key, bad)


def _guess_key(message: str, table: dict):
    names = {key: {key, key.replace("_", "-")} for key in table}
    for key in table:  # quoted, as unknown keys are named
        if any(f"'{n}'" in message for n in names[key]):
            return key
    for key in table:  # as an option, e.g. "--n must be ..."
        if any(f"--{n}" in message for n in names[key]):
            return key
    for key in table:  # as a whole word (not the "n" inside "unknown")
        if any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", message) for n in names[key]):
            return key
    for key, value in table.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and repr(value) in message:
            return key
    for key, value in table.items():
        if isinstance(value, str) and value and value in message:
            return key
    return None


class _Resolver:
    def __init__(self, recipe, inputs, outputs):
        self.recipe, self.inputs, self.outputs = recipe, inputs, outputs

    def path(self, value, table_key, key, *, kinds=None):
        if value is None or value == "":
            what = f"the name of an earlier {' or '.join(kinds)} step" if kinds else "an input or earlier step"
            self.recipe.fail(f"{key} is missing: set {key} = '@NAME' ({what}) or a path.", table_key, None)
        if not isinstance(value, str):
            self.recipe.fail(f"{key} must be a string (a path or '@name'); got {value!r}.", table_key, key)
        if value.startswith("@"):
            ref, _, weight = value[1:].partition(":")
            if ref in self.inputs:
                return str(self.inputs[ref]) + (f":{weight}" if weight else "")
            if ref in self.outputs:
                step = self.outputs[ref]
                if kinds and step.run not in kinds:
                    self.recipe.fail(f"{key} = {value!r} refers to a {step.run} step; expected the output of "
                                     f"{' or '.join(kinds)}.", table_key, key)
                return str(step.out) + (f":{weight}" if weight else "")
            self.recipe.fail(f"{key} = {value!r} names no input or earlier step; known: "
                             f"{', '.join(sorted(set(self.inputs) | set(self.outputs))) or 'none'}.", table_key, key)
        p = Path(value)
        return str(p if p.is_absolute() else (self.recipe.path.parent / p))


def _prepare_step(recipe, i, table, resolver, out, seed, limit) -> Step:
    key = ("steps", i)
    name = table.get("name")
    run = table.get("run")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name or ""):
        recipe.fail(f"each step needs a name of letters, digits, '_', '-' or '.'; got {name!r}.", key, "name")
    if name in resolver.outputs or name in resolver.inputs:
        recipe.fail(f"step name {name!r} is used twice.", key, "name")
    if run not in STEP_KINDS:
        recipe.fail(f"run = {run!r} is not a step kind; expected one of {', '.join(STEP_KINDS)}.", key, "run")
    step = Step(name=name, run=run, index=i, out=out / name)
    table = dict(table)
    if "seed" not in table and run not in ("import", "evaluate"):
        table["seed"] = seed
    STEP_KINDS[run][0](recipe, key, table, resolver, step, limit)
    return step


def _prep_trajectories(recipe, key, table, resolver, step, limit):
    from .recipes import kernel_bank_config

    section = {k: v for k, v in table.items() if k not in ("name", "run")}
    if limit is not None:
        section["n"] = min(int(section.get("n", 1000)), limit)
    prefix = "[recipe step]"  # replaced below by the file line (or --set) of the key at fault
    try:
        step.settings = kernel_bank_config(section, where=prefix)
    except RecipeError as exc:
        message = str(exc)
        message = message[len(prefix) + 2:] if message.startswith(prefix + ": ") else message
        raise RecipeError(f"{recipe.where(key, _guess_key(message, section))}: {message}") from None
    step.describe = {"n": step.settings.n, "seed": step.settings.seed, "exposures": list(step.settings.exposures)}


def _run_trajectories(step, plan, workers):
    from .kernelbank import write_kernel_bank

    return write_kernel_bank(step.out, step.settings, workers=workers, recipe=str(plan.recipe.path),
                             overwrite=plan.overwrite)


def _prep_blur(recipe, key, table, resolver, step, limit):
    from .blur import BlurSettings

    photos = resolver.path(table.get("photos", "@photos"), key, "photos")
    fixed = {"photos": photos}
    if table.get("psf_source", "bank") == "bank" or "kernels" in table:
        fixed["kernels"] = resolver.path(table.get("kernels"), key, "kernels", kinds=("trajectories",))
    step.uses = [p for p in (table.get("photos"), table.get("kernels")) if isinstance(p, str) and p.startswith("@")]
    table = {k: v for k, v in table.items() if k not in ("photos", "kernels")}
    if isinstance(table.get("crop"), list):
        table["crop"] = tuple(table["crop"])
    step.settings = _table_settings(recipe, key, BlurSettings, table, fixed=fixed)
    step.describe = {k: v for k, v in dataclasses.asdict(step.settings).items() if v not in (None, False)}


def _run_blur(step, plan, workers):
    from .blur import blur_photos

    return blur_photos(step.settings, step.out, workers=workers, overwrite=plan.overwrite)


@dataclass(frozen=True)
class _RenderStep:
    photos: str
    settings: object
    clips_per_photo: int = 1
    container: str = "mkv"
    max_photos: int | None = None


def _prep_render(recipe, key, table, resolver, step, limit):
    from .render import RenderSettings

    photos = resolver.path(table.get("photos", "@photos"), key, "photos")
    per = table.get("clips_per_photo", 1)
    if not isinstance(per, int) or per < 1:
        recipe.fail(f"clips_per_photo must be a positive integer; got {per!r}.", key, "clips_per_photo")
    container = table.get("container", "mkv")
    if container not in ("mkv", "mp4", "png"):
        recipe.fail(f"container must be mkv, mp4 or png; got {container!r}.", key, "container")
    inner = {k: v for k, v in table.items() if k not in ("photos", "clips_per_photo", "container")}
    if isinstance(inner.get("size"), list):
        inner["size"] = tuple(inner["size"])
    settings = _table_settings(recipe, key, RenderSettings, inner, fixed={})
    max_photos = None
    if limit is not None:
        # A quick look: one clip, long enough for `limit` windows of up to 25 frames.
        per, max_photos = 1, 1
        settings = dataclasses.replace(settings, n_frames=min(settings.n_frames, 26 * limit + 1))
    step.settings = _RenderStep(photos, settings, per, container, max_photos)
    step.uses = [table.get("photos", "@photos")]
    step.describe = {"photos": photos, "clips_per_photo": per, **dataclasses.asdict(settings)}


def _derived_seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([seed, k]).generate_state(1, np.uint64)[0] >> 1)


def _run_render(step, plan, workers):
    from .io.images import list_images, load_rgb8
    from .render import render_clip

    s = step.settings
    photos = list_images(s.photos)
    if not photos:
        raise BadInputError(f"{s.photos}: no photos to render clips from.")
    photos = photos[: s.max_photos]
    step.out.mkdir(parents=True, exist_ok=True)
    done = 0
    for p_i, photo_path in enumerate(photos):
        image, _ = load_rgb8(photo_path)
        for c in range(s.clips_per_photo):
            k = p_i * s.clips_per_photo + c
            name = f"{k:04d}_{photo_path.stem}" + ("" if s.container == "png" else f".{s.container}")
            out = step.out / name
            sidecar = out.with_name(out.name + ".json")
            settings = dataclasses.replace(s.settings, seed=_derived_seed(s.settings.seed, k))
            if sidecar.exists() and out.exists() and _same_clip(sidecar, settings, photo_path.name):
                continue  # rendered by an earlier run with these settings (the sidecar is written last)
            # This step owns its folder: a clip made with other settings (e.g. by a --limit
            # run) is replaced.
            render_clip(image, out, settings, source=photo_path.name, overwrite=True)
            done += 1
    return {"clips": len(photos) * s.clips_per_photo, "rendered_now": done}


def _same_clip(sidecar: Path, settings, source: str) -> bool:
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    want = {"source": source, "fps": settings.fps, "n_frames": settings.n_frames, "seed": settings.seed,
            "length_px": settings.length_px, "crf": settings.crf, "quality": settings.quality}
    return all(info.get(k) == v for k, v in want.items()) and (
        settings.size is None or [info.get("geometry", {}).get(d) for d in ("height", "width")] == list(settings.size)
    )


def _prep_frames(recipe, key, table, resolver, step, limit):
    from .video import FramesAverageSettings, parse_window

    inputs = table.get("inputs", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    if not inputs:
        recipe.fail("a frames-average step needs inputs = ['@clips' or paths].", key, "inputs")
    paths = [resolver.path(v, key, "inputs") for v in inputs]
    step.uses = [v for v in inputs if v.startswith("@")]
    inner = {k: v for k, v in table.items() if k not in ("inputs", "window")}
    if "window" in table:
        try:
            lo, hi = parse_window(str(table["window"]))
        except BadInputError as exc:
            recipe.fail(str(exc), key, "window")
        inner["window_min"], inner["window_max"] = lo, hi
    step.settings = (paths, _table_settings(recipe, key, FramesAverageSettings, inner, fixed={}))
    step.describe = {"inputs": paths, **dataclasses.asdict(step.settings[1])}


def _run_frames(step, plan, workers):
    from .video import write_frame_pairs

    paths, settings = step.settings
    return write_frame_pairs(paths, step.out, settings, workers=workers, overwrite=plan.overwrite,
                             keep_freed=True)


def _prep_import(recipe, key, table, resolver, step, limit):
    from .io.folders import ImportConfig

    folder = resolver.path(table.get("folder"), key, "folder")
    inner = {k: v for k, v in table.items() if k != "folder"}
    step.settings = (folder, _table_settings(recipe, key, ImportConfig, inner, fixed={}))
    step.describe = {"folder": folder, **dataclasses.asdict(step.settings[1])}


def _run_import(step, plan, workers):
    from .io.folders import import_pairs

    folder, config = step.settings
    return import_pairs(folder, step.out, config, workers=workers, overwrite=plan.overwrite)


def _prep_train(recipe, key, table, resolver, step, limit):
    from .train.data import parse_data_spec
    from .train.loop import TrainSettings

    data = table.get("data", [])
    if isinstance(data, str):
        data = [data]
    if not data:
        recipe.fail("a train step needs data = ['@synth:2', '@real:1'].", key, "data")
    sources = tuple(parse_data_spec(resolver.path(d, key, "data")) for d in data)
    step.uses = [d.split(":")[0] for d in data if d.startswith("@")]
    val = table.get("val_data", [])
    val = tuple(resolver.path(v, key, "val_data") for v in ([val] if isinstance(val, str) else val))
    inner = {k: v for k, v in table.items() if k not in ("data", "val_data")}
    if limit is not None:
        inner["steps"] = min(int(inner.get("steps") or limit), limit)
        inner.pop("epochs", None)
        inner["val_every"] = min(int(inner.get("val_every", 500)), inner["steps"])
        inner["checkpoint_every"] = min(int(inner.get("checkpoint_every", 500)), inner["steps"])
    fixed = {"data": sources, "out": str(step.out), "val_data": val, "resume": True}
    step.settings = _table_settings(recipe, key, TrainSettings, inner, fixed=fixed)
    _check_vgg(recipe, key, step)
    step.describe = {k: v for k, v in dataclasses.asdict(step.settings).items() if k not in ("progress",)}


def _check_vgg(recipe, key, step):
    """Fail before any step runs when the perceptual loss has no VGG19 weights to load."""
    if getattr(step.settings, "perceptual", "none") != "vgg":
        return
    from .nn.vgg import resolve_vgg19_weights

    try:
        # A dry run never downloads: it says what the real run will try instead.
        resolve_vgg19_weights(step.settings.vgg_weights, download=not recipe.dry_run, timeout_s=10.0)
    except BadInputError as exc:
        if recipe.dry_run:
            step.note = f"VGG19 weights not found locally; the run will try to download them ({exc})"
            return
        recipe.fail(f"{exc} (In a recipe: --set {step.name}.vgg_weights=PATH or --set "
                    f"{step.name}.perceptual=none.)", key, "perceptual")


def _run_train(step, plan, workers):
    from .train.loop import train

    return train(step.settings)


def _prep_evaluate(recipe, key, table, resolver, step, limit):
    from .train.evaluate import EvaluateSettings

    model = resolver.path(table.get("model"), key, "model", kinds=("train",))
    data = table.get("data", [])
    data = tuple(resolver.path(d, key, "data") for d in ([data] if isinstance(data, str) else data))
    step.uses = [v for v in [table.get("model")] + list(table.get("data", [])) if isinstance(v, str) and v.startswith("@")]
    inner = {k: v for k, v in table.items() if k not in ("model", "data")}
    if limit is not None:
        inner["limit"] = min(int(inner.get("limit") or limit), limit)
    fixed = {"model": model, "data": data, "json_path": str(step.out / "report.json")}
    step.settings = _table_settings(recipe, key, EvaluateSettings, inner, fixed=fixed)
    step.describe = {k: v for k, v in dataclasses.asdict(step.settings).items() if k != "progress"}


def _run_evaluate(step, plan, workers):
    from .train.evaluate import evaluate, format_report

    step.out.mkdir(parents=True, exist_ok=True)
    report = evaluate(step.settings)
    text = format_report(report)
    (step.out / "report.md").write_text(text + "\n")
    print(text)
    return report


def _prep_bgan_train(recipe, key, table, resolver, step, limit):
    from .bgan.train import BGANTrainSettings

    sharp = resolver.path(table.get("sharp", "@photos"), key, "sharp")
    real = resolver.path(table.get("real_blur"), key, "real_blur")
    step.uses = [v for v in (table.get("sharp"), table.get("real_blur")) if isinstance(v, str) and v.startswith("@")]
    inner = {k: v for k, v in table.items() if k not in ("sharp", "real_blur")}
    if limit is not None:
        inner["steps"] = min(int(inner.get("steps") or limit), limit)
        inner["sample_every"] = min(int(inner.get("sample_every", 500)), inner["steps"])
        inner["checkpoint_every"] = min(int(inner.get("checkpoint_every", 500)), inner["steps"])
    fixed = {"sharp": sharp, "real_blur": real, "out": str(step.out), "resume": True}
    step.settings = _table_settings(recipe, key, BGANTrainSettings, inner, fixed=fixed)
    _check_vgg(recipe, key, step)
    step.describe = {k: v for k, v in dataclasses.asdict(step.settings).items() if k != "progress"}


def _run_bgan_train(step, plan, workers):
    from .bgan.train import train_bgan

    return train_bgan(step.settings)


def _prep_bgan_blur(recipe, key, table, resolver, step, limit):
    from .bgan.sample import BGANBlurSettings

    photos = resolver.path(table.get("photos", "@photos"), key, "photos")
    model = resolver.path(table.get("model"), key, "model", kinds=("bgan-train",))
    step.uses = [v for v in (table.get("photos"), table.get("model")) if isinstance(v, str) and v.startswith("@")]
    inner = {k: v for k, v in table.items() if k not in ("photos", "model")}
    step.settings = _table_settings(recipe, key, BGANBlurSettings, inner, fixed={"photos": photos, "model": model})
    step.describe = {k: v for k, v in dataclasses.asdict(step.settings).items() if k != "progress"}


def _run_bgan_blur(step, plan, workers):
    from .bgan.sample import bgan_blur

    return bgan_blur(step.settings, step.out, workers=workers, overwrite=plan.overwrite)


STEP_KINDS = {
    "trajectories": (_prep_trajectories, _run_trajectories),
    "blur": (_prep_blur, _run_blur),
    "render-clip": (_prep_render, _run_render),
    "frames-average": (_prep_frames, _run_frames),
    "import": (_prep_import, _run_import),
    "bgan-train": (_prep_bgan_train, _run_bgan_train),
    "bgan-blur": (_prep_bgan_blur, _run_bgan_blur),
    "train": (_prep_train, _run_train),
    "evaluate": (_prep_evaluate, _run_evaluate),
}
PAIR_STEPS = ("trajectories", "blur", "frames-average", "import", "bgan-blur")


# ---------------------------------------------------------------------------------------------
# inputs


def _prepare_inputs(recipe, out, overrides: dict) -> dict:
    inputs = {}
    tables = recipe.data.get("inputs", {})
    if not isinstance(tables, dict):
        recipe.fail("[inputs] must be a table of named inputs.", (), "inputs")
    for name in overrides:
        if name not in tables:
            raise BadInputError(f"--input {name}=...: the recipe has no input {name!r}; it has "
                                f"{', '.join(sorted(tables)) or 'none'}.")
    for name, spec in tables.items():
        key = ("inputs", name)
        if name in overrides:
            p = Path(overrides[name])
            if not p.exists():
                raise BadInputError(f"--input {name}={p}: no such file or folder.")
            inputs[name] = p
            continue
        if not isinstance(spec, dict):
            recipe.fail(f"input {name!r} must be a table with 'skimage' or 'path'.", key)
        unknown = sorted(set(spec) - {"skimage", "path"})
        if unknown:
            recipe.fail(f"unknown key {unknown[0]!r} in input {name!r}; expected 'skimage' or 'path'.", key, unknown[0])
        if ("skimage" in spec) == ("path" in spec):
            recipe.fail(f"input {name!r} needs exactly one of 'skimage' (sample photo names) or 'path'.", key)
        if "path" in spec:
            p = Path(spec["path"])
            p = p if p.is_absolute() else recipe.path.parent / p
            if not p.exists():
                recipe.fail(f"input {name!r}: path {p} does not exist (override it with --input {name}=PATH).",
                            key, "path")
            inputs[name] = p
        else:
            names = spec["skimage"]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                recipe.fail(f"input {name!r}: skimage must be a list of sample names, e.g. {list(SKIMAGE_PHOTOS[:2])}.",
                            key, "skimage")
            bad = [n for n in names if n not in SKIMAGE_PHOTOS]
            if bad:
                recipe.fail(f"input {name!r}: {bad[0]!r} is not a bundled colour sample; choose from "
                            f"{', '.join(SKIMAGE_PHOTOS)}.", key, "skimage")
            inputs[name] = ("skimage", tuple(names), out / "inputs" / name)
    return inputs


def _materialise_inputs(inputs: dict) -> dict:
    from .io.images import save_rgb8

    resolved = {}
    for name, value in inputs.items():
        if isinstance(value, tuple) and value[0] == "skimage":
            from skimage import data as skdata

            folder = value[2]
            folder.mkdir(parents=True, exist_ok=True)
            for sample in value[1]:
                path = folder / f"{sample}.png"
                if not path.exists():
                    image = np.asarray(getattr(skdata, sample)())
                    save_rgb8(path, image[:, :, :3].astype(np.uint8))
            resolved[name] = folder
        else:
            resolved[name] = value
    return resolved


# ---------------------------------------------------------------------------------------------
# the plan and the run


def _apply_sets(recipe: Recipe, sets) -> None:
    """Apply ``STEP.KEY=VALUE`` overrides (VALUE read as a TOML value, else a string)."""
    from .recipes import tomllib

    steps = recipe.data.get("steps") or []
    for item in sets or ():
        target, sep, raw = item.partition("=")
        step_name, dot, key = target.partition(".")
        if not sep or not dot or not step_name or not key:
            raise BadInputError(f"--set {item!r}: expected STEP.KEY=VALUE, e.g. --set train.steps=100.")
        matches = [t for t in steps if isinstance(t, dict) and t.get("name") == step_name]
        if not matches:
            raise BadInputError(f"--set {item!r}: the recipe has no step {step_name!r}; it has "
                                f"{', '.join(str(t.get('name')) for t in steps if isinstance(t, dict))}.")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        matches[0][key] = value
        index = next(i for i, t in enumerate(steps) if t is matches[0])
        recipe.overrides[index, key] = item
    if sets:
        recipe.fingerprint = fingerprint(recipe.data)


def plan_build(recipe_path, *, out=None, limit=None, executor="local", address=None,
               input_overrides=None, sets=None, dry_run=False, overwrite=False) -> Plan:
    """Read and validate a recipe into a plan; nothing is written.

    Raises
    ------
    RecipeError
        Naming the file and line of the first bad key or value.
    """
    recipe = read_recipe(recipe_path)
    recipe.dry_run = dry_run
    _apply_sets(recipe, sets)
    data = recipe.data
    unknown = sorted(set(data) - {"build", "inputs", "steps"})
    if unknown:
        recipe.fail(f"unknown top-level key {unknown[0]!r}; expected [build], [inputs] and [[steps]].", (), unknown[0])
    build = data.get("build", {})
    bad = sorted(set(build) - {"seed", "out", "description"})
    if bad:
        recipe.fail(f"unknown key {bad[0]!r} in [build]; expected seed, out, description.", ("build",), bad[0])
    seed = build.get("seed", 0)
    if not isinstance(seed, int) or seed < 0:
        recipe.fail(f"seed must be a non-negative integer; got {seed!r}.", ("build",), "seed")
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit must be a positive integer; got {limit}.")
    if out is None:
        out = build.get("out")
        if out is None:
            out = Path("builds") / recipe.path.stem
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file; expected a folder.")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data:
        recipe.fail("a recipe needs at least one [[steps]] table.")
    inputs = _prepare_inputs(recipe, out, dict(input_overrides or {}))
    input_paths = {k: (v[2] if isinstance(v, tuple) else v) for k, v in inputs.items()}
    outputs: dict = {}
    resolver = _Resolver(recipe, input_paths, outputs)
    steps = []
    for i, table in enumerate(steps_data):
        if not isinstance(table, dict):
            recipe.fail("each [[steps]] entry must be a table.")
        step = _prepare_step(recipe, i, table, resolver, out, seed, limit)
        outputs[step.name] = step
        steps.append(step)
    return Plan(recipe, out, inputs, steps, limit, executor, address, overwrite)


def describe_plan(plan: Plan) -> str:
    lines = [
        f"recipe {plan.recipe.path} (fingerprint {plan.recipe.fingerprint}) -> {plan.out}/"
        + (f", limited to {plan.limit} pairs per output" if plan.limit else "")
        + f", executor {plan.executor}" + (f" at {plan.address}" if plan.address else ""),
    ]
    for name, value in plan.inputs.items():
        if isinstance(value, tuple):
            lines.append(f"  input {name}: scikit-image samples {', '.join(value[1])} -> {value[2]}/")
        else:
            lines.append(f"  input {name}: {value}")
    for s in plan.steps:
        lines.append(f"  {s.index + 1}. {s.name}: {s.run} -> {s.out}/")
        lines.append("       " + canonical_json(s.describe)[:400])
        if s.note:
            lines.append(f"       note: {s.note}")
    return "\n".join(lines)


def run_build(plan: Plan, *, workers: int = 1, progress_echo=print) -> dict:
    """Run every step of a plan in order (resuming what an earlier run finished)."""
    from .io.dataset import build_context, load_manifest, use_executor, verify_dataset

    plan.out.mkdir(parents=True, exist_ok=True)
    resolved = _materialise_inputs(plan.inputs)
    del resolved  # the steps already hold the input paths
    results = {}
    (plan.out / "recipe.toml").write_text(plan.recipe.text)
    for step in plan.steps:
        progress_echo(f"[{step.index + 1}/{len(plan.steps)}] {step.name}: {step.run}")
        info = {"file": plan.recipe.path.name, "fingerprint": plan.recipe.fingerprint, "step": step.name,
                "limit": plan.limit}
        # Shards whose work runs on torch ask Ray for a GPU when there is one.
        device = getattr(step.settings, "device", "cpu")
        gpus = _gpus_per_task() if step.run in ("blur", "bgan-blur") and device != "cpu" else 0.0
        with use_executor(plan.executor, plan.address, gpus_per_task=gpus), build_context(info):
            result = STEP_KINDS[step.run][1](step, plan, workers)
        if step.run in PAIR_STEPS:
            report = verify_dataset(step.out, decode=False)
            result = {"rows": report["rows"], "fingerprint": load_manifest(step.out)["fingerprint"]}
        results[step.name] = _summary(result)
    summary = {"recipe": str(plan.recipe.path), "fingerprint": plan.recipe.fingerprint, "out": str(plan.out),
               "limit": plan.limit, "steps": results}
    (plan.out / "build.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    return summary


def _summary(result):
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool, type(None)))}
    return str(result)


def _gpus_per_task() -> float:
    try:
        import torch

        return 1.0 if torch.cuda.is_available() else 0.0
    except ImportError:  # pragma: no cover
        return 0.0
