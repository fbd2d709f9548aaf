import functools
import json
import os
from pathlib import Path

import pytest

from blursynth.io.dataset import PAIR_SCHEMA, load_manifest, use_executor, verify_dataset, write_dataset

from .conftest import error_line

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

TINY = """
[build]
seed = 3

[inputs.photos]
skimage = ["astronaut", "coffee"]

[[steps]]
name = "bank"
run = "trajectories"
n = 30
samples = 300
length = 20.0
canvas = 31

[[steps]]
name = "synth"
run = "blur"
kernels = "@bank"
photos = "@photos"
per_image = 3
crop = [48, 48]
shard_size = 2
"""


@pytest.fixture
def tiny_recipe(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and "inputs" not in p.parts}


def test_tiny_recipe_builds_resumes_and_records_fingerprint(tiny_recipe, tmp_path, run_cli):
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out")
    assert r.code == 0, r.err
    m = load_manifest(tmp_path / "out/synth")
    assert m["num_rows"] == 6
    assert m["recipe"]["step"] == "synth" and len(m["recipe"]["fingerprint"]) == 16
    assert load_manifest(tmp_path / "out/bank")["recipe"]["fingerprint"] == m["recipe"]["fingerprint"]
    summary = json.loads((tmp_path / "out/build.json").read_text())
    assert summary["steps"]["synth"]["rows"] == 6
    before = {p: os.stat(p).st_mtime_ns for p in (tmp_path / "out/synth/data").iterdir()}
    assert run_cli("build", tiny_recipe, "--out", tmp_path / "out").code == 0
    assert {p: os.stat(p).st_mtime_ns for p in (tmp_path / "out/synth/data").iterdir()} == before


def test_dry_run_and_limit(tiny_recipe, tmp_path, run_cli):
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--dry-run")
    assert r.code == 0 and "1. bank: trajectories" in r.out and "2. synth: blur" in r.out
    assert not (tmp_path / "out").exists()
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--limit", 4)
    assert r.code == 0, r.err
    assert load_manifest(tmp_path / "out/synth")["num_rows"] == 4
    assert load_manifest(tmp_path / "out/bank")["num_rows"] == 4
    # A full build into the same folder is a different dataset, not a resume of the limited one.
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out")
    assert r.code == 2 and "different command" in error_line(r) and "--overwrite" in error_line(r)
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--overwrite")
    assert r.code == 0, r.err
    assert load_manifest(tmp_path / "out/synth")["num_rows"] == 6


def test_missing_step_input_and_dry_run_without_vgg(tmp_path, run_cli):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace('kernels = "@bank"\n', ""))
    r = run_cli("build", path, "--dry-run")
    assert r.code == 2 and "kernels is missing" in error_line(r) and "tiny.toml:" in error_line(r)
    # The comb recipe asks for VGG19 weights this machine does not have: a dry run says so
    # and downloads nothing.
    r = run_cli("build", RECIPES / "deblurgan-comb.toml", "--dry-run", "--out", tmp_path / "c",
                "--set", "train.vgg_weights=" + str(tmp_path / "none.pth"))
    assert r.code == 0 and "note: VGG19 weights" in r.out
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "edit, expect",
    [
        (("per_image = 3", "per_imag = 3"), "tiny.toml:21: unknown key 'per_imag'"),
        (("n = 30", "n = -4"), "tiny.toml:11: "),
        (("crop = [48, 48]", 'crf = "gamma:x"'), "tiny.toml:22: "),
        (('kernels = "@bank"', 'kernels = "@banks"'), "names no input or earlier step"),
        (('run = "blur"', 'run = "smear"'), "is not a step kind"),
        (('skimage = ["astronaut", "coffee"]', 'skimage = ["lena"]'), "not a bundled colour sample"),
        (("seed = 3", "seed = -1"), "tiny.toml:3: seed must be"),
        (("[build]", "[bild]"), "unknown top-level key 'bild'"),
    ],
)
def test_bad_recipes_name_file_and_line(tmp_path, run_cli, edit, expect):
    path = tmp_path / "tiny.toml"
    assert edit[0] in TINY
    path.write_text(TINY.replace(edit[0], edit[1], 1))
    r = run_cli("build", path, "--out", tmp_path / "out")
    assert r.code == 2
    assert expect in error_line(r)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting, expect", [("train.lr=nan", "lr must be a positive finite"),
                                             ("train.content_weight=inf", "content-weight must be"),
                                             ("bank.canvas=100000", "canvas must be an integer from 3"),
                                             ("bank.n=nan", "n must be a positive integer; got nan")])
def test_dry_run_refuses_bad_step_settings(tmp_path, run_cli, setting, expect):
    # Checked when the plan is made: before, these passed --dry-run and failed at the train step.
    r = run_cli("build", RECIPES / "deblurgan-comb.toml", "--dry-run", "--out", tmp_path / "c",
                "--set", setting)
    assert r.code == 2, r
    line = error_line(r)
    assert "deblurgan-comb.toml:" in line and expect in line, line
    assert not (tmp_path / "c").exists()


def test_set_and_input_overrides(tiny_recipe, tmp_path, run_cli, photo):
    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "mine/a.png", photo)
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--set", "synth.per_image=2",
                "--input", f"photos={tmp_path / 'mine'}")
    assert r.code == 0, r.err
    assert load_manifest(tmp_path / "out/synth")["num_rows"] == 2
    for args, expect in [
        (["--set", "nope.n=3"], "no step 'nope'"),
        (["--set", "bank=3"], "STEP.KEY=VALUE"),
        (["--input", "videos=/tmp"], "no input 'videos'"),
        (["--input", "photos"], "NAME=PATH"),
        (["--set", "bank.bogus=1"], "unknown key 'bogus'"),
    ]:
        r = run_cli("build", tiny_recipe, "--out", tmp_path / "o2", *args)
        assert r.code == 2 and expect in error_line(r), (args, r.err)
    # A key that came from --set is blamed on the --set, not on a line of the recipe file.
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "o2", "--set", "bank.bogus=1")
    assert "--set bank.bogus=1" in error_line(r) and "unknown key 'bogus'" in error_line(r), r.err
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "o2", "--set", "synth.per_imag=2")
    assert error_line(r).startswith(f"error: {tiny_recipe}: --set synth.per_imag=2: unknown key 'per_imag'"), r.err
    # A bad value written in the file stays the file's, beside a valid --set on the same step.
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("length = 20.0", "length = -1.0"))
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if text.startswith("length"))
    r = run_cli("build", bad, "--out", tmp_path / "o3", "--set", "bank.n=5")
    assert error_line(r).startswith(f"error: {bad}:{line}: [trajectories]: length_px must be"), r.err


def test_missing_recipe(tmp_path, run_cli):
    r = run_cli("build", tmp_path / "none.toml")
    assert r.code == 2 and "no such recipe" in error_line(r)
    (tmp_path / "broken.toml").write_text("[build\nseed = 1")
    r = run_cli("build", tmp_path / "broken.toml")
    assert r.code == 2 and "not valid TOML" in error_line(r)
    r = run_cli("build", tmp_path)
    assert r.code == 2 and "is a folder" in error_line(r)
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    r = run_cli("build", tmp_path / "photo.png")
    assert r.code == 2 and "UTF-8" in error_line(r)


@pytest.mark.parametrize("name", ["deblurgan-synth", "realistic", "gopro-like"])
def test_shipped_recipe_builds_tiny(name, tmp_path, run_cli):
    r = run_cli("build", RECIPES / f"{name}.toml", "--out", tmp_path / "out", "--limit", 2)
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "out/build.json").read_text())
    pair_steps = [s for s, v in summary["steps"].items() if "rows" in v and s != "bank"]
    assert pair_steps
    for step in pair_steps:
        assert summary["steps"][step]["rows"] == 2
        assert verify_dataset(tmp_path / "out" / step)["rows"] == 2


def test_deblurgan_comb_recipe_builds_tiny(tmp_path, run_cli):
    r = run_cli("build", RECIPES / "deblurgan-comb.toml", "--out", tmp_path / "out", "--limit", 3,
                "--set", "train.perceptual=none", "--set", "train.crop=32", "--set", "train.val_crop=32",
                "--set", "train.workers=0", "--set", "train.critic_steps=1")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "out/build.json").read_text())
    assert summary["steps"]["synth"]["rows"] == 3 and summary["steps"]["real"]["rows"] == 3
    assert (tmp_path / "out/train/checkpoint.pt").exists()
    report = json.loads((tmp_path / "out/evaluate/report.json").read_text())
    assert "PSNR" in (tmp_path / "out/evaluate/report.md").read_text() or "psnr" in json.dumps(report).lower()


def test_bgan_recipe_builds_tiny(tmp_path, run_cli):
    r = run_cli("build", RECIPES / "bgan.toml", "--out", tmp_path / "out", "--limit", 2,
                "--set", "model.perceptual=none", "--set", "model.config=small", "--set", "model.patch=32",
                "--set", "model.batch_size=2")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "out/build.json").read_text())
    assert summary["steps"]["pairs"]["rows"] == 2
    from blursynth.io.dataset import PairDataset

    assert PairDataset(tmp_path / "out/pairs")[0]["source"] == "bgan"


def test_every_recipe_has_a_header_and_validates():
    from blursynth.build import plan_build

    names = sorted(p.stem for p in RECIPES.glob("*.toml"))
    for expected in ("deblurgan-synth", "gopro-like", "realistic", "deblurgan-comb", "bgan"):
        assert expected in names
    for p in RECIPES.glob("*.toml"):
        text = p.read_text()
        assert text.startswith("# ") and len([l for l in text.splitlines() if l.startswith("#")]) >= 3, p.name
        if p.stem == "kernels-eval48":
            continue
        sets = {"deblurgan-comb": ["train.perceptual=none"], "bgan": ["model.perceptual=none"]}.get(p.stem, [])
        plan = plan_build(p, out="/tmp/unused-plan", sets=sets)
        assert plan.steps


# --- Ray --------------------------------------------------------------------------------------


def _crash_once_rows(start, stop, marker):
    """Rows that kill their worker half-way through the first attempt at shard 1."""
    from .test_dataset import tiny_rows

    for n, row in enumerate(tiny_rows(start, stop, fp="ray")):
        if start == 5 and n == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        yield row


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    import tests.test_build
    import tests.test_dataset

    cloudpickle.register_pickle_by_value(tests.test_build)
    cloudpickle.register_pickle_by_value(tests.test_dataset)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_executor_matches_local_and_survives_a_killed_task(tmp_path, ray_local, tiny_recipe, run_cli):
    # Same recipe, seed and output path (manifests record their input paths): local, then Ray.
    assert run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--workers", 2).code == 0
    local = _files(tmp_path / "out")
    (tmp_path / "out").rename(tmp_path / "local")
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--executor", "ray")
    assert r.code == 0, r.err
    remote = _files(tmp_path / "out")
    assert local.keys() == remote.keys()
    for name in local:
        if name != "build.json":
            assert local[name] == remote[name], name

    marker = str(tmp_path / "crashed")
    make_rows = functools.partial(_crash_once_rows, marker=marker)
    with use_executor("ray"):
        write_dataset(tmp_path / "killed", kind="pairs", schema=PAIR_SCHEMA, n_items=15, shard_size=5,
                      make_rows=make_rows, fingerprint="ray", command={}, progress=False)
    assert os.path.exists(marker)  # the task really died once and was retried
    assert not list((tmp_path / "killed/data").glob(".*"))
    assert verify_dataset(tmp_path / "killed")["rows"] == 15
    from .test_dataset import tiny_rows

    write_dataset(tmp_path / "plain", kind="pairs", schema=PAIR_SCHEMA, n_items=15, shard_size=5,
                  make_rows=functools.partial(tiny_rows, fp="ray"), fingerprint="ray", command={}, progress=False)
    assert _files(tmp_path / "plain") == _files(tmp_path / "killed")
