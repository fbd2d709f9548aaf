"""Running recipes: steps in order, resume, --limit, the shipped recipes, Ray."""

import functools
import json
import os
from pathlib import Path

import pytest

from blursynth.dataset import PAIR_SCHEMA, PairDataset, load_manifest, verify_dataset, write_dataset

from .conftest import RECIPES, TINY, error_line, held_lock


def plan_fingerprint(recipe, sets=()):
    from blursynth.build import plan_build

    return plan_build(recipe, out="/tmp/unused-plan", sets=sets).recipe.fingerprint


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
    bank = load_manifest(tmp_path / "out/bank")
    summary = json.loads((tmp_path / "out/build.json").read_text())
    assert summary == {
        "recipe": str(tiny_recipe), "fingerprint": m["recipe"]["fingerprint"], "out": str(tmp_path / "out"),
        "limit": None, "steps": {"bank": {"rows": 30, "fingerprint": bank["fingerprint"]},
                                 "synth": {"rows": 6, "fingerprint": m["fingerprint"]}}}
    assert json.loads(r.out[r.out.index("\n{") + 1:r.out.rindex("}") + 1]) == summary["steps"]
    assert r.out.endswith(f"built {tmp_path / 'out'}/ (see build.json)\n")
    assert "[1/2] bank: trajectories\n" in r.err and "[2/2] synth: blur\n" in r.err
    assert (tmp_path / "out/recipe.toml").read_text() == TINY
    assert sorted(p.name for p in (tmp_path / "out/inputs/photos").iterdir()) == ["astronaut.png", "coffee.png"]
    before = {p: os.stat(p).st_mtime_ns for p in (tmp_path / "out/synth/data").iterdir()}
    assert run_cli("build", tiny_recipe, "--out", tmp_path / "out").code == 0
    assert {p: os.stat(p).st_mtime_ns for p in (tmp_path / "out/synth/data").iterdir()} == before


def test_dry_run_and_limit(tiny_recipe, tmp_path, run_cli):
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--dry-run")
    assert r.code == 0 and f"  1. bank: trajectories -> {tmp_path / 'out/bank'}/\n" in r.out
    assert f"  2. synth: blur -> {tmp_path / 'out/synth'}/\n" in r.out
    assert not (tmp_path / "out").exists()
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--limit", 4)
    assert r.code == 0, r.err
    assert load_manifest(tmp_path / "out/synth")["num_rows"] == 4
    assert load_manifest(tmp_path / "out/bank")["num_rows"] == 4
    assert load_manifest(tmp_path / "out/synth")["recipe"] == {
        "file": "tiny.toml", "fingerprint": plan_fingerprint(tiny_recipe), "step": "synth"}
    assert json.loads((tmp_path / "out/build.json").read_text())["limit"] == 4
    # A full build into the same folder is a different dataset, not a resume of the limited one.
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out")
    assert r.code == 2 and "made by this command with other settings (n 4 (recorded) vs " in error_line(r)
    assert "--overwrite" in error_line(r)
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--overwrite")
    assert r.code == 0, r.err
    assert load_manifest(tmp_path / "out/synth")["num_rows"] == 6


def test_set_and_input_overrides(tiny_recipe, tmp_path, run_cli, photo):
    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "mine/a.png", photo)
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--set", "synth.per_image=2",
                "--input", f"photos={tmp_path / 'mine'}")
    assert r.code == 0, r.err
    assert load_manifest(tmp_path / "out/synth")["num_rows"] == 2
    assert {PairDataset(tmp_path / "out/synth")[i]["params"]["photo"] for i in range(2)} == {"a.png"}
    assert not (tmp_path / "out/inputs").exists()  # the bundled samples the input replaced


@pytest.mark.parametrize("name", ["deblurgan-synth", "realistic", "gopro-like"])
def test_shipped_recipe_builds_tiny(name, tmp_path, run_cli):
    r = run_cli("build", RECIPES / f"{name}.toml", "--out", tmp_path / "out", "--limit", 2)
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "out/build.json").read_text())
    assert summary["limit"] == 2
    pair_steps = [s for s, v in summary["steps"].items() if "rows" in v and s != "bank"]
    assert pair_steps
    for step in pair_steps:
        assert summary["steps"][step]["rows"] == 2
        assert verify_dataset(tmp_path / "out" / step)["rows"] == 2
        assert load_manifest(tmp_path / "out" / step)["recipe"] == {
            "file": f"{name}.toml", "fingerprint": summary["fingerprint"], "step": step}


def test_deblurgan_comb_recipe_builds_tiny(tmp_path, run_cli):
    r = run_cli("build", RECIPES / "deblurgan-comb.toml", "--out", tmp_path / "out", "--limit", 3,
                "--set", "train.perceptual=none", "--set", "train.crop=32", "--set", "train.val_crop=32",
                "--set", "train.workers=0", "--set", "train.critic_steps=1")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "out/build.json").read_text())
    assert summary["steps"]["synth"]["rows"] == 3 and summary["steps"]["real"]["rows"] == 3
    assert (tmp_path / "out/train/checkpoint.pt").exists()
    train = summary["steps"]["train"]
    assert (train["steps"], train["total_steps"], train["out"]) == (3, 3, str(tmp_path / "out/train"))
    assert train["n_train_pairs"] + train["n_val_pairs"] == 6  # the 3 synth and 3 real pairs, split in two
    # The evaluation: 3 test pairs (the limit), scored by the 3-step model, as JSON and as a table.
    from blursynth.train.evaluate import format_report

    report = json.loads((tmp_path / "out/evaluate/report.json").read_text())
    test = str(tmp_path / "out/test")
    assert (report["model"], report["step"], report["config"], report["n_pairs"]) == (
        str(tmp_path / "out/train"), 3, "small", 3)
    assert list(report["datasets"]) == [test] and report["datasets"][test]["n_pairs"] == 3
    for kind in ("blurred", "deblurred"):
        assert 10 < report[kind]["psnr"] < 60 and 0 < report[kind]["ssim"] <= 1, report
        assert report["datasets"][test][kind] == report[kind]
    assert report["gain_psnr_db"] == pytest.approx(report["deblurred"]["psnr"] - report["blurred"]["psnr"])
    assert report["gain_ssim"] == pytest.approx(report["deblurred"]["ssim"] - report["blurred"]["ssim"])
    table = format_report(report)
    assert (tmp_path / "out/evaluate/report.md").read_text() == table + "\n"
    assert len((tmp_path / "out/evaluate/per_image.csv").read_text().splitlines()) == 1 + 3  # a line per image
    # plain protocol: scikit-image's SSIM and the MATLAB-style one (SSIM-M) beside PSNR
    assert table.splitlines()[0] == f"model {tmp_path / 'out/train'} (step 3, deblurgan small)"
    assert table.splitlines()[1].split() == ["pairs", "PSNR", "dB", "SSIM", "SSIM-M"]
    assert table in r.out
    assert summary["steps"]["evaluate"] == {k: v for k, v in report.items() if not isinstance(v, dict)}


def test_bgan_recipe_builds_tiny(tmp_path, run_cli):
    r = run_cli("build", RECIPES / "bgan.toml", "--out", tmp_path / "out", "--limit", 2,
                "--set", "model.perceptual=none", "--set", "model.config=small", "--set", "model.patch=32",
                "--set", "model.batch_size=2")
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "out/build.json").read_text())
    assert summary["steps"]["pairs"]["rows"] == 2
    assert summary["steps"]["model"]["out"] == str(tmp_path / "out/model")
    pairs = PairDataset(tmp_path / "out/pairs")
    assert len(pairs) == 2 and {pairs[i]["source"] for i in range(2)} == {"bgan"}


# --- Ray --------------------------------------------------------------------------------------


def _crash_once_rows(start, stop, marker):
    """Rows that kill their worker half-way through the first attempt at shard 1."""
    from .conftest import tiny_rows

    for n, row in enumerate(tiny_rows(start, stop, fp="ray")):
        if start == 5 and n == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        yield row


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    import tests.test_build_recipe
    import tests.test_build_run
    import tests.test_dataset_writer

    cloudpickle.register_pickle_by_value(tests.test_build_recipe)
    cloudpickle.register_pickle_by_value(tests.test_build_run)
    cloudpickle.register_pickle_by_value(tests.test_dataset_writer)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # starts Ray's worker processes
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

    from blursynth.dataset import Executor, WriteOptions

    marker = str(tmp_path / "crashed")
    make_rows = functools.partial(_crash_once_rows, marker=marker)
    write_dataset(tmp_path / "killed", kind="pairs", schema=PAIR_SCHEMA, n_items=15, shard_size=5,
                  make_rows=make_rows, fingerprint="ray", command={}, progress=False,
                  options=WriteOptions(executor=Executor("ray")))
    assert os.path.exists(marker)  # the task really died once and was retried
    assert not list((tmp_path / "killed/data").glob(".*"))
    assert verify_dataset(tmp_path / "killed")["rows"] == 15
    from .conftest import tiny_rows

    write_dataset(tmp_path / "plain", kind="pairs", schema=PAIR_SCHEMA, n_items=15, shard_size=5,
                  make_rows=functools.partial(tiny_rows, fp="ray"), fingerprint="ray", command={}, progress=False)
    assert _files(tmp_path / "plain") == _files(tmp_path / "killed")


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "-x", "inputs", "recipe.toml", "build.json"])
def test_a_step_name_that_would_leave_or_clobber_the_build_is_refused(tmp_path, run_cli, name):
    recipe = tmp_path / "r.toml"
    recipe.write_text(TINY.replace('name = "bank"', f'name = "{name}"').replace("@bank", f"@{name}"))
    r = run_cli("build", recipe, "--out", tmp_path / "victim" / "out")
    assert r.code == 2 and "name" in error_line(r)
    assert not (tmp_path / "victim").exists()


def test_an_input_name_that_would_leave_the_build_is_refused(tmp_path, run_cli):
    recipe = tmp_path / "r.toml"
    recipe.write_text(TINY.replace("[inputs.photos]", '[inputs.".."]').replace("@photos", "@.."))
    r = run_cli("build", recipe, "--out", tmp_path / "out")
    assert r.code == 2 and "input names are letters, digits" in error_line(r)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("via", ["--out", "[build] out"])
@pytest.mark.parametrize("mine", ["recipe.toml", "build.json"])
def test_build_never_replaces_a_users_recipe_or_build_json(tmp_path, run_cli, via, mine):
    d = tmp_path / "d"
    d.mkdir()
    (d / mine).write_text("mine\n")
    recipe = tmp_path / "r.toml"
    if via == "--out":
        recipe.write_text(TINY)
        r = run_cli("build", recipe, "--out", d)
    else:
        recipe.write_text(TINY.replace("[build]\n", f'[build]\nout = "{d}"\n'))
        r = run_cli("build", recipe)
    line = error_line(r)
    assert r.code == 2 and ("not a build" in line or "did not write" in line)
    assert sorted(p.name for p in d.iterdir()) == [mine] and (d / mine).read_text() == "mine\n"


def test_a_second_build_into_one_folder_is_refused(tiny_recipe, tmp_path, run_cli):
    out = tmp_path / "out"
    with held_lock(out) as pid:
        r = run_cli("build", tiny_recipe, "--out", out)
    assert r.code == 2
    assert error_line(r) == (f"error: --out {out}: another blursynth process (pid {pid}) is writing there; "
                             "wait for it to finish or choose another --out.")
    assert [p.name for p in out.iterdir()] == [".blursynth.lock"]


def test_a_value_refused_when_its_step_runs_names_the_recipe_line(tmp_path, run_cli):
    # The bank's PSFs (31x31) are known only once the bank step has run: the crop's refusal then
    # comes from the blur step, and points at the recipe's line, in its terms.
    recipe = tmp_path / "r.toml"
    recipe.write_text(TINY.replace("crop = [48, 48]", "crop = [16, 16]"))
    r = run_cli("build", recipe, "--out", tmp_path / "b")
    line = next(i for i, t in enumerate(recipe.read_text().splitlines(), 1) if t.startswith("crop"))
    assert r.code == 2 and error_line(r).startswith(f"error: {recipe}:{line}: crop 16x16 is smaller than "
                                                    "the largest PSF (31x31)"), r.err


@pytest.mark.parametrize("setting, expected", [
    ('exposure = 0.3', "exposure 0.3 is not in kernel bank"),  # known once the bank is made
    ('device = "cuda"', "device cuda: no CUDA GPU is visible"),  # known when the step starts
])
def test_refusals_of_a_running_step_name_their_recipe_line(setting, expected, tmp_path, run_cli):
    import torch

    if "cuda" in setting and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    recipe = tmp_path / "r.toml"
    recipe.write_text(TINY + setting + "\n")
    r = run_cli("build", recipe, "--out", tmp_path / "b")
    line = len(recipe.read_text().splitlines())
    assert r.code == 2 and error_line(r).startswith(f"error: {recipe}:{line}: {expected}"), r.err
    assert "--" not in error_line(r)  # recipe terms, not the command's options


def test_an_input_name_with_path_in_it_is_said_whole(tmp_path, run_cli):
    recipe = tmp_path / "r.toml"
    recipe.write_text(TINY)
    r = run_cli("build", recipe, "--out", tmp_path / "b", "--input", "PATHS=/tmp", "--dry-run")
    assert r.code == 2 and "--input PATHS=...: the recipe has no input 'PATHS'" in error_line(r)
