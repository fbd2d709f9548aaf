"""Recipes: reading, validating and planning (nothing is built here; see test_build_run.py)."""

import dataclasses
import pickle

import pytest

from blursynth.build import describe_plan, plan_build
from blursynth.build.recipe import kernel_bank_config
from blursynth.build.steps import STEP_KINDS
from blursynth.errors import BadInputError, SettingError, checking

from .conftest import RECIPES, TINY, error_line

def _line(text: str, start: str) -> int:
    """1-based number of the first line of ``text`` that starts with ``start``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def test_plan_of_tiny_recipe(tiny_recipe, tmp_path):
    plan = plan_build(tiny_recipe, out=tmp_path / "out", limit=4)
    assert [(s.name, s.run, s.index, s.out) for s in plan.steps] == [
        ("bank", "trajectories", 0, tmp_path / "out/bank"), ("synth", "blur", 1, tmp_path / "out/synth")]
    bank, synth = (s.settings for s in plan.steps)
    # --limit caps the bank; the [build] seed is every step's default.
    assert (bank.n, bank.seed, bank.trajectory.n_samples, bank.trajectory.length_px, bank.canvas) == (4, 3, 300, 20.0, 31)
    assert plan.steps[0].describe == {"n": 4, "seed": 3, "exposures": [0.01, 0.1, 0.5, 1.0]}
    assert (synth.kernels, synth.photos) == (str(tmp_path / "out/bank"), str(tmp_path / "out/inputs/photos"))
    assert (synth.per_image, synth.crop, synth.shard_size, synth.seed) == (3, (48, 48), 2, 3)
    assert plan.inputs == {"photos": ("skimage", ("astronaut", "coffee"), tmp_path / "out/inputs/photos")}
    assert len(plan.recipe.fingerprint) == 16
    lines = describe_plan(plan).splitlines()
    assert lines[0] == (f"recipe {tiny_recipe} (fingerprint {plan.recipe.fingerprint}) -> {tmp_path / 'out'}/, "
                        "limited to 4 pairs per output, executor local")
    assert lines[1] == f"  input photos: scikit-image samples astronaut, coffee -> {tmp_path / 'out/inputs/photos'}/"
    assert lines[2] == f"  1. bank: trajectories -> {tmp_path / 'out/bank'}/"
    assert lines[3] == '       {"exposures":[0.01,0.1,0.5,1.0],"n":4,"seed":3}'
    assert lines[4] == f"  2. synth: blur -> {tmp_path / 'out/synth'}/"
    assert len(lines) == 6
    # --set changes the fingerprint; the same recipe and sets give the same one.
    other = plan_build(tiny_recipe, out=tmp_path / "out", sets=["synth.per_image=2"])
    assert other.steps[1].settings.per_image == 2 and other.recipe.fingerprint != plan.recipe.fingerprint
    assert plan_build(tiny_recipe, out=tmp_path / "o", limit=4).recipe.fingerprint == plan.recipe.fingerprint


def test_step_kinds_table():
    assert list(STEP_KINDS) == ["trajectories", "blur", "render-clip", "frames-average", "import", "bgan-train",
                                "bgan-blur", "train", "evaluate", "face-crops", "uid-train", "uid-blur"]
    for name, kind in STEP_KINDS.items():
        assert dataclasses.is_dataclass(kind.settings_class()), name
    assert {n for n, k in STEP_KINDS.items() if k.writes_pairs} == {
        "trajectories", "blur", "frames-average", "import", "bgan-blur", "uid-blur"}
    assert {n for n, k in STEP_KINDS.items() if k.on_gpu} == {"blur", "bgan-blur", "uid-blur"}
    assert {n for n, k in STEP_KINDS.items() if not k.seeded} == {"import", "evaluate", "face-crops"}


def test_missing_step_input_and_dry_run_without_vgg(tmp_path, run_cli, monkeypatch):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace('kernels = "@bank"\n', ""))
    r = run_cli("build", path, "--dry-run")
    assert r.code == 2
    table = _line(path.read_text(), 'name = "synth"') - 1
    assert error_line(r) == (f"error: {path}:{table}: kernels is missing: "
                             "set kernels = '@NAME' (the name of an earlier trajectories step) or a path.")
    # The comb recipe asks for VGG19 weights this machine does not have: a dry run says that
    # the run will download them, and downloads nothing.
    from blursynth.nn import vgg

    monkeypatch.setattr(vgg, "default_vgg19_path", lambda: tmp_path / "hub" / vgg.VGG19_FILENAME)
    r = run_cli("build", RECIPES / "deblurgan-comb.toml", "--dry-run", "--out", tmp_path / "c")
    assert r.code == 0, r.err
    note = next(line for line in r.out.splitlines() if "VGG19" in line)
    assert "the run will try to download them from https://" in note
    assert "downloads are off" not in note and "--set train.perceptual=none" in note
    # A --vgg-weights file that is not there: the run would refuse it, and so does a dry run.
    r = run_cli("build", RECIPES / "deblurgan-comb.toml", "--dry-run", "--out", tmp_path / "c",
                "--set", "train.vgg_weights=" + str(tmp_path / "none.pth"))
    assert r.code == 2 and "none.pth: no such file" in error_line(r)
    assert not (tmp_path / "c").exists() and not (tmp_path / "hub").exists()


@pytest.mark.parametrize(
    "edit, expect",
    [
        (("per_image = 3", "per_imag = 3"), "tiny.toml:21: unknown key 'per_imag'"),
        (("n = 30", "n = -4"), "tiny.toml:11: [trajectories]: n must be a positive integer; got -4."),
        (("crop = [48, 48]", 'crf = "gamma:x"'), "tiny.toml:22: "),
        (('kernels = "@bank"', 'kernels = "@banks"'), "names no input or earlier step"),
        (('run = "blur"', 'run = "smear"'), "is not a step kind"),
        (('skimage = ["astronaut", "coffee"]', 'skimage = ["lena"]'), "not a bundled colour sample"),
        (("seed = 3", "seed = -1"), "tiny.toml:3: seed must be"),
        (("[build]", "[bild]"), "unknown top-level key 'bild'"),
        # Each settings error names its field: the line is that key's, whatever the message says.
        (("samples = 300", "samples = 1"), "tiny.toml:12: [trajectories]: n_samples must be an integer >= 2"),
        (("length = 20.0", 'length = "long"'), "tiny.toml:13: [trajectories]: could not convert string to float"),
        (("canvas = 31", "canvas = 2"), "tiny.toml:14: [trajectories]: canvas must be an integer from 3"),
        (("per_image = 3", "per_image = 0"), "tiny.toml:21: per_image must be a positive integer; got 0."),
        (("crop = [48, 48]", "crop = [0, 48]"), "tiny.toml:22: crop must be positive HxW; got 0x48."),
        (("crop = [48, 48]", 'noise = "lots"'), "tiny.toml:22: noise 'lots' is neither numbers"),
        (("shard_size = 2", 'border = "mirror"'), "tiny.toml:23: border must be one of"),
        (("shard_size = 2", "seed = -2"), "tiny.toml:23: seed must be in [0, 2**63 - 1]; got -2."),
    ],
)
def test_bad_recipes_name_file_and_line(tmp_path, run_cli, edit, expect):
    path = tmp_path / "tiny.toml"
    assert edit[0] in TINY
    path.write_text(TINY.replace(edit[0], edit[1], 1))
    r = run_cli("build", path, "--out", tmp_path / "out")
    assert r.code == 2
    assert error_line(r).startswith(f"error: {path.parent}/") and expect in error_line(r), error_line(r)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting, expect", [("train.lr=nan", "lr must be a positive finite"),
                                             ("train.content_weight=inf", "content_weight must be"),
                                             ("bank.canvas=100000", "canvas must be an integer from 3"),
                                             ("bank.n=nan", "n must be a positive integer; got nan"),
                                             ("synth.noise=x", "noise 'x' is neither numbers"),
                                             ("train.val_crop=8", "val_crop must be at least 16")])
def test_dry_run_refuses_bad_step_settings(tmp_path, run_cli, setting, expect):
    # Checked when the plan is made: before, these passed --dry-run and failed at the train step.
    r = run_cli("build", RECIPES / "deblurgan-comb.toml", "--dry-run", "--out", tmp_path / "c",
                "--set", setting)
    assert r.code == 2, r
    line = error_line(r)
    # Blamed on the --set that gave the value, not on a line of the file.
    assert line.startswith(f"error: {RECIPES / 'deblurgan-comb.toml'}: --set {setting}: ") and expect in line, line
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("setting, expect", [("model.code_gain=-1", "code_gain must be a number with 0 <= g < 1e6"),
                                             ("model.patch=62", "patch must be a multiple of 4"),
                                             ("model.lr=-1", "lr must be a positive number"),
                                             ("model.kl_weight=-1", "kl_weight must be a finite")])
def test_dry_run_refuses_bad_uid_train_settings(tmp_path, run_cli, setting, expect):
    # The trainer's own checks, made when the plan is: before, the build wrote three steps first.
    path = RECIPES / "uid-faces.toml"
    r = run_cli("build", path, "--dry-run", "--out", tmp_path / "u", "--set", "model.perceptual=none",
                "--set", setting)
    assert r.code == 2, r
    line = error_line(r)
    assert line.startswith(f"error: {path}: --set {setting}: ") and expect in line, line
    assert not (tmp_path / "u").exists()


def test_dry_run_shows_each_step_whole(tmp_path):
    # A cut line once read "steps":2 for 20000; every key of a long step's settings is shown.
    plan = plan_build(RECIPES / "uid-faces.toml", out=tmp_path / "u", sets=["model.perceptual=none"])
    line = describe_plan(plan).splitlines()[[s.name for s in plan.steps].index("model") * 2 + 2]
    assert '"steps":20000' in line and line.rstrip().endswith('"z_dim":null}'), line


def test_settings_error_in_the_file_names_its_line(tmp_path, run_cli):
    text = (RECIPES / "deblurgan-comb.toml").read_text()
    path = tmp_path / "comb.toml"
    path.write_text(text.replace("lr = 5e-4", "lr = -1.0"))
    r = run_cli("build", path, "--dry-run", "--set", "train.perceptual=none")
    assert error_line(r) == (f"error: {path}:{_line(path.read_text(), 'lr = -1.0')}: lr must be a positive finite "
                             "number; got -1.0.")
    # A field the step sets by default (not in the table) points at the step's table.
    path.write_text(text.replace("steps = 2800\n", ""))
    r = run_cli("build", path, "--dry-run", "--set", "train.perceptual=none")
    table = _line(path.read_text(), 'name = "train"') - 1
    assert error_line(r) == f"error: {path}:{table} (with --set train.perceptual=none): give exactly one of steps and epochs."


def test_setting_error_carries_its_field():
    with pytest.raises(SettingError) as info:
        kernel_bank_config({"length": -1.0})
    assert info.value.field == "length" and str(info.value) == (
        "recipe: [trajectories]: length_px must be a positive number of pixels; got -1.0.")
    with pytest.raises(SettingError) as info:
        kernel_bank_config({"samples": 300, "expl": 2.0}, where=None)
    assert info.value.field == "expl" and str(info.value) == "[trajectories]: expl values must be in (0, 1]; got (2.0,)."
    with pytest.raises(SettingError) as info:
        kernel_bank_config({"lenght": 2.0}, where="x.toml")
    assert info.value.field == "lenght" and str(info.value).startswith("x.toml: unknown key 'lenght' in [trajectories]")
    # It is a BadInputError (exit 2) and a ValueError, and keeps its field through pickling
    # (errors raised in worker processes are pickled back).
    error = pickle.loads(pickle.dumps(SettingError("--tile must be at least 16 px; got 3.", "tile")))
    assert isinstance(error, BadInputError) and isinstance(error, ValueError)
    assert (str(error), error.field) == ("--tile must be at least 16 px; got 3.", "tile")
    with pytest.raises(SettingError) as info, checking("seed"):
        raise BadInputError("seed must be a non-negative integer; got -1. Pass e.g. --seed 0.")
    assert info.value.field == "seed" and str(info.value).startswith("seed must be")
    with pytest.raises(SettingError) as info, checking("outer"):
        raise SettingError("inner message", "inner")
    assert info.value.field == "inner"


def test_set_and_input_errors(tiny_recipe, tmp_path, run_cli):
    for args, expect in [
        (["--set", "nope.n=3"], "error: --set 'nope.n=3': the recipe has no step 'nope'; it has bank, synth."),
        (["--set", "bank=3"], "error: --set 'bank=3': expected STEP.KEY=VALUE, e.g. --set train.steps=100."),
        (["--input", "videos=/tmp"], "error: --input videos=...: the recipe has no input 'videos'; it has photos."),
        (["--input", "photos"], "'photos' is not NAME=PATH."),
        (["--set", "bank.bogus=1"], f"error: {tiny_recipe}: --set bank.bogus=1: unknown key 'bogus' in [trajectories]"),
        (["--set", "synth.per_imag=2"], f"error: {tiny_recipe}: --set synth.per_imag=2: unknown key 'per_imag'"),
        # --limit lowers n; a value that is no number is left for the check that names it.
        (["--limit", "3", "--set", "bank.n=nan"],
         f"error: {tiny_recipe}: --set bank.n=nan: [trajectories]: n must be a positive integer; got nan (a float: write the count as an integer, e.g. n = 100000)."),
        # A float count is refused under --limit as without it (not turned into an int).
        (["--limit", "3", "--set", "bank.n=1e12"],
         f"error: {tiny_recipe}: --set bank.n=1e12: [trajectories]: n must be a positive integer; got 1000000000000.0 (a float"),
    ]:
        r = run_cli("build", tiny_recipe, "--out", tmp_path / "o2", "--dry-run", *args)
        assert r.code == 2 and expect in error_line(r), (args, r.err)
    # A bad value written in the file stays the file's, beside a valid --set on the same step.
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("length = 20.0", "length = -1.0"))
    r = run_cli("build", bad, "--out", tmp_path / "o3", "--set", "bank.n=5")
    assert error_line(r).startswith(f"error: {bad}:{_line(bad.read_text(), 'length')}: [trajectories]: length_px must be"), r.err


def test_missing_recipe(tmp_path, run_cli):
    r = run_cli("build", tmp_path / "none.toml")
    assert r.code == 2 and error_line(r) == f"error: {tmp_path / 'none.toml'}: no such recipe file."
    (tmp_path / "broken.toml").write_text("[build\nseed = 1")
    r = run_cli("build", tmp_path / "broken.toml")
    assert r.code == 2 and error_line(r).startswith(f"error: {tmp_path / 'broken.toml'}: not valid TOML (")
    r = run_cli("build", tmp_path)
    assert r.code == 2 and error_line(r) == (f"error: {tmp_path}: is a folder; expected a recipe .toml file such as "
                                             "recipes/deblurgan-synth.toml.")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    r = run_cli("build", tmp_path / "photo.png")
    assert r.code == 2 and "not a readable UTF-8 text file (UnicodeDecodeError)" in error_line(r)


def test_every_recipe_has_a_header_and_validates():
    names = sorted(p.stem for p in RECIPES.glob("*.toml"))
    for expected in ("deblurgan-synth", "gopro-like", "realistic", "deblurgan-comb", "bgan"):
        assert expected in names
    for p in RECIPES.glob("*.toml"):
        text = p.read_text()
        assert text.startswith("# ") and len([l for l in text.splitlines() if l.startswith("#")]) >= 3, p.name
        sets = {"deblurgan-comb": ["train.perceptual=none"], "bgan": ["model.perceptual=none"],
                "uid-faces": ["model.perceptual=none"],
                "dbgan": ["model.perceptual=none", "deblur.perceptual=none"]}.get(p.stem, [])
        plan = plan_build(p, out="/tmp/unused-plan", sets=sets)
        assert plan.steps and all(s.settings is not None and s.describe for s in plan.steps), p.name


def test_scene_blur_steps_ask_ray_for_no_gpu(tmp_path, monkeypatch):
    """Under the default --device auto a uniform blur step's Ray tasks ask for a GPU (when there
    is one); camera6d/scene blur renders on the CPU, so its tasks ask for none. A render-clip
    step's masks folder is relative to the recipe, as blur's."""
    import blursynth.build.steps as steps

    (tmp_path / "masks").mkdir()
    path = tmp_path / "r.toml"
    path.write_text("""
[inputs.photos]
skimage = ["astronaut"]

[[steps]]
name = "flat"
run = "blur"
photos = "@photos"
psf_source = "fresh"

[[steps]]
name = "shaken"
run = "blur"
photos = "@photos"
motion = "camera6d"

[[steps]]
name = "moving"
run = "blur"
photos = "@photos"
motion = "scene"

[[steps]]
name = "clips"
run = "render-clip"
photos = "@photos"
motion = "scene"
object_masks = "masks"
""")
    monkeypatch.setattr(steps, "_gpus_per_task", lambda: 1.0)  # as on a machine with a GPU
    monkeypatch.chdir(tmp_path.parent)
    plan = plan_build(path, out=tmp_path / "out", executor="ray")
    flat, shaken, moving, clips = plan.steps
    assert [steps.step_on_gpu(s) for s in (flat, shaken, moving)] == [True, False, False]
    assert [steps.write_options(s, plan).executor.gpus_per_task for s in (flat, shaken, moving)] == [1.0, 0.0, 0.0]
    assert clips.settings.settings.object_masks == str(tmp_path / "masks")
