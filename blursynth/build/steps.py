"""The kinds of recipe step: for each, its settings class, how a table becomes them, how it runs.

Each kind is one :class:`StepKind` in :data:`STEP_KINDS`. Its ``prepare`` reads the step's
table through a :class:`StepTable` (which resolves ``"@name"`` values and builds the settings
class, naming the recipe line at fault) and fills the :class:`Step`; its ``run`` does the work.
Generators are imported inside the functions, so planning a recipe imports only what it uses.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BadInputError, SettingError
from .recipe import NAME, NAME_RULE, Recipe, Resolver, in_recipe_terms, kernel_bank_config, table_settings

#: What a build folder holds besides its steps' folders: a step may not take these names.
BUILD_FILES = ("recipe.toml", "build.json", "inputs")


@dataclass
class Step:
    """One planned step: what it runs, with which settings, into which folder."""

    name: str
    run: str
    index: int
    out: Path
    settings: object = None
    describe: dict = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class StepKind:
    """One kind of step.

    Attributes
    ----------
    settings : str
        ``"module:Class"``, the settings class a step's table becomes (imported when planned).
    prepare : callable
        ``prepare(st: StepTable)``: resolves paths and fills ``st.step`` (its settings and describe).
    run : callable
        ``run(step, plan, workers) -> result``.
    writes_pairs : bool
        The output is a dataset (pairs, or a kernel bank): verified and summarised by its rows.
    on_gpu : bool
        Its shards run torch: on Ray they ask for a GPU when there is one.
    seeded : bool
        Takes the recipe's [build] seed unless the step sets its own.
    """

    settings: str
    prepare: Callable
    run: Callable
    writes_pairs: bool = False
    on_gpu: bool = False
    seeded: bool = True

    def settings_class(self):
        module, _, name = self.settings.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass
class StepTable:
    """A step's table while it is planned: reads its values, naming the recipe line on failure."""

    recipe: Recipe
    key: tuple  # ("steps", index), the table's place in the file
    table: dict
    resolver: Resolver
    step: Step
    limit: int | None
    kind: StepKind

    def fail(self, message: str, key: str | None = None):
        self.recipe.fail(message, self.key, key)

    def path(self, key: str, default=None, *, kinds=None) -> str:
        """The path ``table[key]`` names (``"@name"``: an input or an earlier step of ``kinds``)."""
        return self.resolver.path(self.table.get(key, default), self.key, key, kinds=kinds,
                                  given=key in self.table)

    def paths(self, key: str, *, required: str | None = None) -> list:
        """The paths ``table[key]`` names, one value or a list; ``required``: the error if none."""
        values = self.table.get(key, [])
        if isinstance(values, str):
            values = [values]
        if not values and required:
            self.fail(required, key)
        return [self.resolver.path(v, self.key, key) for v in values]

    def settings(self, inner: dict, fixed: dict):
        """The kind's settings class from ``inner`` (the table less the keys the step reads itself)."""
        noise = inner.get("noise")
        if isinstance(noise, str) and noise.strip().lower().startswith("profile:"):
            from ..ops.raw import is_noise_file

            given = noise.strip().split(":", 1)[1].strip()
            if is_noise_file(given):  # a calibration file: relative to the recipe, as paths are
                inner = {**inner, "noise": "profile:" + self.resolver.path(given, self.key, "noise")}
        return table_settings(self.recipe, self.key, self.kind.settings_class(), inner, fixed=fixed)


def prepare_step(recipe: Recipe, i: int, table: dict, resolver: Resolver, out: Path, seed: int, limit) -> Step:
    """Validate the ``i``-th [[steps]] table into a :class:`Step` writing to ``out/<name>``."""
    key = ("steps", i)
    name = table.get("name")
    run = table.get("run")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        recipe.fail(f"each step needs a name of {NAME_RULE}; got {name!r}.", key, "name")
    if name in BUILD_FILES:
        recipe.fail(f"step name {name!r} is the build's own {name}; choose another name.", key, "name")
    if name in resolver.outputs or name in resolver.inputs:
        recipe.fail(f"step name {name!r} is used twice.", key, "name")
    if run not in STEP_KINDS:
        recipe.fail(f"run = {run!r} is not a step kind; expected one of {', '.join(STEP_KINDS)}.", key, "run")
    kind = STEP_KINDS[run]
    step = Step(name=name, run=run, index=i, out=out / name)
    table = dict(table)
    if "seed" not in table and kind.seeded:
        table["seed"] = seed
    kind.prepare(StepTable(recipe, key, table, resolver, step, limit, kind))
    return step


def _capped(value, most):
    """``value`` lowered to ``most`` (for --limit); a value that is not a whole number (a float
    included: ``n = 1e12``) is returned as it is, for the settings class to refuse, naming its line."""
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return min(value, most)


def _settings_dict(settings, *drop) -> dict:
    """The settings as a dict (for the plan's description), less the fields ``drop``."""
    return {k: v for k, v in dataclasses.asdict(settings).items() if k not in drop}


# ---------------------------------------------------------------------------------------------
# steps that write a dataset


def write_options(step: Step, plan):
    """The :class:`~blursynth.dataset.writer.WriteOptions` of a dataset-writing step: the plan's
    executor (shards that run torch ask Ray for a GPU when there is one), its ``--limit``, and
    the recipe and step recorded in the manifest."""
    from ..dataset.executors import LOCAL, Executor
    from ..dataset.writer import WriteOptions

    executor = LOCAL
    if plan.executor != "local":
        executor = Executor(plan.executor, plan.address, _gpus_per_task() if step_on_gpu(step) else 0.0)
    recipe = {"file": plan.recipe.path.name, "fingerprint": plan.recipe.fingerprint, "step": step.name}
    return WriteOptions(executor=executor, limit=plan.limit, recipe=recipe)


def step_on_gpu(step: Step) -> bool:
    """Whether a step's shards can use a GPU: its kind runs torch, its ``device`` is not cpu,
    and it renders there (scene blur's Numba loops run on the CPU whatever ``device`` says:
    ``BlurSettings.render_device``): a Ray task asking for a GPU it never uses would wait for
    one, or hold it from the steps that do."""
    s = step.settings
    return STEP_KINDS[step.run].on_gpu and getattr(s, "render_device", getattr(s, "device", "cpu")) != "cpu"


def _gpus_per_task() -> float:
    try:
        import torch

        return 1.0 if torch.cuda.is_available() else 0.0
    except ImportError:  # pragma: no cover
        return 0.0


# ---------------------------------------------------------------------------------------------
# trajectories


def _prep_trajectories(st: StepTable):
    section = {k: v for k, v in st.table.items() if k not in ("name", "run")}
    if st.limit is not None:
        section["n"] = _capped(section.get("n", 1000), st.limit)
    try:
        st.step.settings = kernel_bank_config(section, where=None)
    except SettingError as exc:
        st.fail(in_recipe_terms(exc), exc.field if exc.field in section else None)
    s = st.step.settings
    st.step.describe = {"n": s.n, "seed": s.seed, "exposures": list(s.exposures)}


def _run_trajectories(step, plan, workers):
    from ..kernelbank import write_kernel_bank

    return write_kernel_bank(step.out, step.settings, workers=workers, recipe=str(plan.recipe.path),
                             overwrite=plan.overwrite, options=write_options(step, plan))


# ---------------------------------------------------------------------------------------------
# blur


def _prep_blur(st: StepTable):
    fixed = {"photos": st.path("photos", "@photos")}
    # Scene blur (motion camera6d or scene) draws a camera path per pair: no kernel bank.
    uniform = st.table.get("motion", "uniform") == "uniform"
    if (uniform and st.table.get("psf_source", "bank") == "bank") or "kernels" in st.table:
        fixed["kernels"] = st.path("kernels", kinds=("trajectories",))
    for key in ("object_masks", "depth"):  # folders: relative to the recipe, or '@input'
        if st.table.get(key) not in (None, "random"):
            fixed[key] = st.path(key)
    inner = {k: v for k, v in st.table.items() if k not in ("photos", "kernels", *fixed)}
    st.step.settings = st.settings(inner, fixed)
    st.step.describe = {k: v for k, v in _settings_dict(st.step.settings).items() if v not in (None, False)}
    if not uniform:  # the PSF source's settings do not apply
        for key in ("psf_source", "exposure", "fresh_length_px", "fresh_canvas"):
            st.step.describe.pop(key, None)
    if isinstance(st.table.get("resize"), list):
        from ..pairs.shake_inputs import OLD_RESIZE_NOTE

        st.step.note = OLD_RESIZE_NOTE


def _device_workers(step, workers: int) -> int:
    """``build``'s worker count for a pair-writing step: one when it renders on a GPU
    (:func:`step_on_gpu`; scene blur renders on the CPU whatever ``device`` says) unless
    ``--workers`` or ``$BLURSYNTH_WORKERS`` gave a count, as the step's own command."""
    from ..commands._common import workers_for_device
    from ..errors import checking

    with checking("device"):  # an absent GPU: the recipe's line (run_build), not --device
        return workers_for_device(workers, step.settings.device if step_on_gpu(step) else "cpu")


def _run_blur(step, plan, workers):
    from ..pairs.shake import blur_photos

    return blur_photos(step.settings, step.out, workers=_device_workers(step, workers), overwrite=plan.overwrite,
                       keep_freed=True,
                       options=write_options(step, plan))


# ---------------------------------------------------------------------------------------------
# render-clip


@dataclass(frozen=True)
class _RenderStep:
    photos: str
    settings: object
    clips_per_photo: int = 1
    container: str = "mkv"
    max_photos: int | None = None


def _prep_render(st: StepTable):
    photos = st.path("photos", "@photos")
    per = st.table.get("clips_per_photo", 1)
    if not isinstance(per, int) or per < 1:
        st.fail(f"clips_per_photo must be a positive integer; got {per!r}.", "clips_per_photo")
    container = st.table.get("container", "mkv")
    if container not in ("mkv", "mp4", "png"):
        st.fail(f"container must be mkv, mp4 or png; got {container!r}.", "container")
    # The masks folder: relative to the recipe, or '@input', as blur's.
    fixed = {"object_masks": st.path("object_masks")} if st.table.get("object_masks") is not None else {}
    inner = {k: v for k, v in st.table.items() if k not in ("photos", "clips_per_photo", "container", *fixed)}
    settings = st.settings(inner, fixed)
    max_photos = None
    if st.limit is not None:
        # A quick look: one clip, long enough for `limit` windows of up to 25 frames.
        per, max_photos = 1, 1
        settings = dataclasses.replace(settings, n_frames=min(settings.n_frames, 26 * st.limit + 1))
    st.step.settings = _RenderStep(photos, settings, per, container, max_photos)
    st.step.describe = {"photos": photos, "clips_per_photo": per, **dataclasses.asdict(settings)}


def _derived_seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([seed, k]).generate_state(1, np.uint64)[0] >> 1)


def _run_render(step, plan, workers):
    from ..sources.photos import list_images, load_rgb8
    from ..sources.render import render_clip

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
    if settings.motion != info.get("motion", "translation"):
        return False
    if settings.motion != "translation":
        from ..sources.render_scene import scene_settings

        if info.get("scene_settings") != scene_settings(settings):
            return False
    return all(info.get(k) == v for k, v in want.items()) and (
        settings.size is None or [info.get("geometry", {}).get(d) for d in ("height", "width")] == list(settings.size)
    )


# ---------------------------------------------------------------------------------------------
# frames-average, import


def _prep_frames(st: StepTable):
    from ..sources.windows import parse_exposure_ms, parse_window, span_text

    paths = st.paths("inputs", required="a frames-average step needs inputs = ['@clips' or paths].")
    inner = {k: v for k, v in st.table.items() if k not in ("inputs", "window")}
    if "window" in st.table:
        try:
            lo, hi = parse_window(str(st.table["window"]))
        except BadInputError as exc:
            st.fail(in_recipe_terms(exc), "window")
        inner["window_min"], inner["window_max"] = lo, hi
    if "exposure_ms" in st.table:
        if "window" in st.table:
            st.fail("give window or exposure_ms, not both.", "exposure_ms")
        value = st.table["exposure_ms"]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):  # "8-30" or 20, as on the command line
            try:
                inner["exposure_ms"] = parse_exposure_ms(value)
            except BadInputError as exc:
                st.fail(in_recipe_terms(exc), "exposure_ms")
    st.step.settings = (paths, st.settings(inner, {}))
    settings = dataclasses.asdict(st.step.settings[1])
    lo, hi = (settings.pop(k) for k in ("window_min", "window_max"))
    if settings["pipeline"] == "rgb":  # the RAW path's options are unset (refused) there
        from ..pairs.frames import RAW_FIELDS

        settings = {k: v for k, v in settings.items() if k == "pipeline" or k not in RAW_FIELDS}
    # As the command line spells them: an exposure range takes the place of the window (whose
    # default lengths it ignores), and one value is shown as one value.
    if settings["exposure_ms"] is None:
        settings.pop("exposure_ms")
        settings["window"] = span_text(lo, hi)
    else:
        settings["exposure_ms"] = span_text(*settings["exposure_ms"])
    st.step.describe = {"inputs": paths, **settings}


def _run_frames(step, plan, workers):
    from ..pairs.frames import write_frame_pairs

    paths, settings = step.settings
    return write_frame_pairs(paths, step.out, settings, workers=workers, overwrite=plan.overwrite,
                             keep_freed=True, options=write_options(step, plan))


def _prep_import(st: StepTable):
    folder = st.path("folder")
    inner = {k: v for k, v in st.table.items() if k != "folder"}
    if "lists" in inner:  # RealBlur's / RSBlur's list files: paths, relative to the recipe like the folder
        inner["lists"] = tuple(st.paths("lists"))
    st.step.settings = (folder, st.settings(inner, {}))
    st.step.describe = {"folder": folder, **dataclasses.asdict(st.step.settings[1])}


def _run_import(step, plan, workers):
    from ..pairs.real import import_pairs

    folder, config = step.settings
    return import_pairs(folder, step.out, config, workers=workers, overwrite=plan.overwrite,
                        options=write_options(step, plan))


# ---------------------------------------------------------------------------------------------
# train, evaluate


def _short_run(inner: dict, limit, every: tuple):
    """At most ``limit`` steps, and each of ``every`` (e.g. checkpoint_every) within them."""
    if limit is None:
        return
    inner["steps"] = _capped(inner.get("steps") or limit, limit)
    for name in every:
        inner[name] = _capped(inner.get(name, 500), inner["steps"])


def _prep_train(st: StepTable):
    from ..train.data import parse_data_spec

    data = st.paths("data", required="a train step needs data = ['@synth:2', '@real:1'].")
    sources = tuple(parse_data_spec(d) for d in data)
    val = tuple(st.paths("val_data"))
    inner = {k: v for k, v in st.table.items() if k not in ("data", "val_data")}
    if st.limit is not None:
        inner.pop("epochs", None)
    _short_run(inner, st.limit, ("val_every", "checkpoint_every"))
    fixed = {"data": sources, "out": str(st.step.out), "val_data": val, "resume": True}
    st.step.settings = st.settings(inner, fixed)
    _check_vgg(st)
    st.step.describe = _settings_dict(st.step.settings, "progress")


def _check_vgg(st: StepTable):
    """Fail before any step runs when the perceptual loss has no VGG19 weights to load."""
    step = st.step
    if getattr(step.settings, "perceptual", "none") != "vgg":
        return
    from ..nn.vgg import VGG19_URL, default_vgg19_path, resolve_vgg19_weights

    dry = st.recipe.dry_run
    if dry and step.settings.vgg_weights is None and not default_vgg19_path().is_file():
        # A dry run never downloads: it says what the real run will try instead.
        step.note = (f"VGG19 weights are not in the torch hub cache ({default_vgg19_path()}); the "
                     f"run will try to download them from {VGG19_URL} (or --set "
                     f"{step.name}.vgg_weights=PATH, or --set {step.name}.perceptual=none).")
        return
    try:
        resolve_vgg19_weights(step.settings.vgg_weights, download=not dry, timeout_s=10.0)
    except BadInputError as exc:
        st.fail(f"{exc} (In a recipe: --set {step.name}.vgg_weights=PATH or --set "
                f"{step.name}.perceptual=none.)", "perceptual")


def _run_train(step, plan, workers):
    from ..train.loop import train

    return train(step.settings)


def _prep_evaluate(st: StepTable):
    model = st.path("model", kinds=("train",))
    data = tuple(st.paths("data"))
    inner = {k: v for k, v in st.table.items() if k not in ("model", "data")}
    if st.limit is not None:
        inner["limit"] = _capped(inner.get("limit") or st.limit, st.limit)
    fixed = {"model": model, "data": data, "json_path": str(st.step.out / "report.json"),
             "csv_path": str(st.step.out / "per_image.csv")}
    st.step.settings = st.settings(inner, fixed)
    st.step.describe = _settings_dict(st.step.settings, "progress")


def _run_evaluate(step, plan, workers):
    from ..train.evaluate import evaluate, format_report

    step.out.mkdir(parents=True, exist_ok=True)
    report = evaluate(step.settings)
    text = format_report(report)
    (step.out / "report.md").write_text(text + "\n")
    print(text)
    return report


# ---------------------------------------------------------------------------------------------
# BGAN


def _prep_unpaired_train(st: StepTable):
    """A ``bgan-train`` or ``uid-train`` step: two unpaired sets, a model folder, resumable."""
    sharp = st.path("sharp", "@photos")
    real = st.path("real_blur")
    inner = {k: v for k, v in st.table.items() if k not in ("sharp", "real_blur")}
    _short_run(inner, st.limit, ("sample_every", "checkpoint_every"))
    fixed = {"sharp": sharp, "real_blur": real, "out": str(st.step.out), "resume": True}
    st.step.settings = st.settings(inner, fixed)
    try:  # the numbers the trainer refuses, refused at plan time as other steps' settings are
        importlib.import_module(st.kind.settings.partition(":")[0]).check_settings(st.step.settings)
    except BadInputError as exc:
        st.fail(in_recipe_terms(exc), exc.field if isinstance(exc, SettingError) and exc.field in st.table else None)
    _check_vgg(st)
    st.step.describe = _settings_dict(st.step.settings, "progress")


def _run_bgan_train(step, plan, workers):
    from ..bgan.train import train_bgan

    return train_bgan(step.settings)


def _prep_bgan_blur(st: StepTable):
    photos = st.path("photos", "@photos")
    model = st.path("model", kinds=("bgan-train",))
    inner = {k: v for k, v in st.table.items() if k not in ("photos", "model")}
    st.step.settings = st.settings(inner, {"photos": photos, "model": model})
    st.step.describe = _settings_dict(st.step.settings, "progress")


def _run_bgan_blur(step, plan, workers):
    from ..pairs.bgan import bgan_blur

    return bgan_blur(step.settings, step.out, workers=_device_workers(step, workers), overwrite=plan.overwrite,
                     options=write_options(step, plan))


# ---------------------------------------------------------------------------------------------
# UID, and the face crops its recipe learns on


def _prep_face_crops(st: StepTable):
    inner = {k: v for k, v in st.table.items() if k not in ("name", "run")}
    st.step.settings = st.settings(inner, {})
    st.step.describe = _settings_dict(st.step.settings)


def _run_face_crops(step, plan, workers):
    from ..sources.faces import write_face_crops

    return write_face_crops(step.out, step.settings)


def _run_uid_train(step, plan, workers):
    from ..uid.train import train_uid

    return train_uid(step.settings)


def _prep_uid_blur(st: StepTable):
    fixed = {"photos": st.path("photos", "@photos"), "model": st.path("model", kinds=("uid-train",))}
    if st.table.get("blur_from") is not None:  # a folder or dataset: relative to the recipe, or '@name'
        fixed["blur_from"] = st.path("blur_from")
    inner = {k: v for k, v in st.table.items() if k not in ("photos", "model", "blur_from")}
    st.step.settings = st.settings(inner, fixed)
    st.step.describe = _settings_dict(st.step.settings)


def _run_uid_blur(step, plan, workers):
    from ..pairs.uid import uid_blur

    return uid_blur(step.settings, step.out, workers=_device_workers(step, workers), overwrite=plan.overwrite,
                    options=write_options(step, plan))


STEP_KINDS = {
    "trajectories": StepKind("blursynth.kernelbank:KernelBankConfig", _prep_trajectories, _run_trajectories,
                             writes_pairs=True),
    "blur": StepKind("blursynth.pairs.shake:BlurSettings", _prep_blur, _run_blur, writes_pairs=True, on_gpu=True),
    "render-clip": StepKind("blursynth.sources.render:RenderSettings", _prep_render, _run_render),
    "frames-average": StepKind("blursynth.pairs.frames:FramesAverageSettings", _prep_frames, _run_frames,
                               writes_pairs=True),
    "import": StepKind("blursynth.pairs.real:ImportConfig", _prep_import, _run_import, writes_pairs=True,
                       seeded=False),
    "bgan-train": StepKind("blursynth.bgan.train:BGANTrainSettings", _prep_unpaired_train, _run_bgan_train),
    "bgan-blur": StepKind("blursynth.pairs.bgan:BGANBlurSettings", _prep_bgan_blur, _run_bgan_blur,
                          writes_pairs=True, on_gpu=True),
    "train": StepKind("blursynth.train.loop:TrainSettings", _prep_train, _run_train),
    "evaluate": StepKind("blursynth.train.evaluate:EvaluateSettings", _prep_evaluate, _run_evaluate,
                         seeded=False),
    "face-crops": StepKind("blursynth.sources.faces:FaceCropSettings", _prep_face_crops, _run_face_crops,
                           seeded=False),
    "uid-train": StepKind("blursynth.uid.train:UIDTrainSettings", _prep_unpaired_train, _run_uid_train),
    "uid-blur": StepKind("blursynth.pairs.uid:UIDBlurSettings", _prep_uid_blur, _run_uid_blur,
                         writes_pairs=True, on_gpu=True),
}
