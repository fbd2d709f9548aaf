"""blursynth.torch.OnlineBlur: pairs rendered on the fly equal the rows ``blur`` writes, and
``train --online`` trains on them."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from blursynth.dataset.reader import PairDataset as StoredPairs
from blursynth.errors import BadInputError, RecipeError
from blursynth.pairs.shake import BlurSettings, blur_photos
from blursynth.torch import OnlineBlur
from .conftest import error_line


def _same_rows(settings, out):
    """Write ``settings`` with blur, render them online: every row equal, byte for byte."""
    manifest = blur_photos(settings, out, progress=False)
    stored = StoredPairs(out)
    online = OnlineBlur(None, settings)
    assert len(online) == manifest["planned_items"] == len(stored)
    assert online.fingerprint == manifest["fingerprint"]
    for i in range(len(stored)):
        want, got = stored[i], online.read(i)
        assert got["id"] == want["id"] and got["index"] == want["index"]
        for key in ("blurred", "sharp", "psf"):
            assert got[key].dtype == want[key].dtype, key
            assert got[key].tobytes() == want[key].tobytes(), key
        assert got["params"] == want["params"]
        for key in ("motion_mask", "psf_field"):
            assert (key in got) == (want.get(key) is not None)
            if key in got:
                assert got[key].tobytes() == want[key].tobytes(), key
        item = online[i]
        expected = torch.from_numpy(want["blurred"]).permute(2, 0, 1) / 255.0
        assert torch.equal(item["blurred"], expected)
    return online


def test_uniform_fresh_and_bank_equal_blur(photos, bank, tmp_path):
    fresh = BlurSettings(photos=str(photos), psf_source="fresh", fresh_canvas=15,
                         fresh_length_px=10.0, per_image=2, crop=(32, 40), device="cpu", seed=3,
                         noise="0.01,0.005", jpeg="70-90", shard_size=3)
    _same_rows(fresh, tmp_path / "fresh")
    banked = BlurSettings(photos=str(photos), kernels=str(bank), per_image=1, device="cpu",
                          resize=0.5, border="valid", crf="random", seed=1)
    online = _same_rows(banked, tmp_path / "bank")
    # reading out of order (another photo in between) changes nothing
    a = online.read(2)
    online.read(0)
    assert online.read(2)["blurred"].tobytes() == a["blurred"].tobytes()


def test_scene_camera6d_equals_blur(photos, tmp_path):
    s = BlurSettings(photos=str(photos), motion="camera6d", per_image=1, crop=(32, 40),
                     device="cpu", psf_grid=3, rolling_shutter="0-0.5", seed=2)
    _same_rows(s, tmp_path / "scene")


def test_raw_path_equals_blur(photos, tmp_path):
    s = BlurSettings(photos=str(photos), psf_source="fresh", fresh_canvas=15,
                     fresh_length_px=10.0, crop=(32, 32), device="cpu", pipeline="raw",
                     raw_bits=12, noise="model", seed=4)
    online = _same_rows(s, tmp_path / "raw")
    assert online.read(0)["params"]["raw"]["raw_bits"] == 12


def test_dict_settings_photos_and_seed(photos):
    table = {"psf_source": "fresh", "canvas": 15, "length": 10.0, "crop": [32, 32],
             "device": "cpu", "resize_to": [60, 70]}
    a = OnlineBlur(photos, table, seed=5)
    b = OnlineBlur(None, BlurSettings(photos=str(photos), psf_source="fresh", fresh_canvas=15,
                                      fresh_length_px=10.0, crop=(32, 32), device="cpu",
                                      resize=(70, 60), seed=5))
    assert a.settings == b.settings and a.fingerprint == b.fingerprint
    assert a.read(1)["blurred"].tobytes() == b.read(1)["blurred"].tobytes()
    assert OnlineBlur(photos, table, seed=6).fingerprint != a.fingerprint


def test_whole_number_settings_are_the_floats_blur_parses(photos, tmp_path, run_cli):
    """`length = 20` (TOML, a dict) is `blur --length 20`: one fingerprint, so one dataset."""
    table = {"psf_source": "fresh", "canvas": 21, "length": 20, "crop": [32, 32], "device": "cpu"}
    ds = OnlineBlur(photos, table)
    assert ds.settings.fresh_length_px == 20.0 and isinstance(ds.settings.fresh_length_px, float)
    assert ds.fingerprint == OnlineBlur(photos, dict(table, length=20.0)).fingerprint
    out = tmp_path / "pairs"
    r = run_cli("blur", photos, "--psf-source", "fresh", "--canvas", "21", "--length", "20",
                "--crop", "32x32", "--device", "cpu", "--out", out)
    assert r.code == 0, r.err
    assert json.loads((out / "manifest.json").read_text())["fingerprint"] == ds.fingerprint


@pytest.mark.parametrize("table, expected", [
    ({"per_image": 0, "psf_source": "fresh"}, "per_image must be a positive integer; got 0"),
    ({}, "kernels BANK is required with psf_source bank (make one with 'blursynth trajectories "
         "--out BANK')"),
    ({"psf_source": "fresh", "crop": "96x96"}, "crop must be two whole numbers HxW (a recipe's "
                                               "crop = [H, W]); got '96x96'"),
    ({"psf_source": "fresh", "border": "edge"}, "border must be one of"),
    ({"psf_source": "fresh", "per_imag": 2}, "unknown key 'per_imag' for a blur step"),
])
def test_refuses_what_blur_refuses(photos, table, expected):
    with pytest.raises(BadInputError) as exc:
        OnlineBlur(photos, table)
    assert expected in str(exc.value)
    if "unknown key" not in expected:  # the command's words, as a recipe states them
        from blursynth.build.recipe import in_recipe_terms

        with pytest.raises(BadInputError) as direct:
            BlurSettings(photos=str(photos), **{k: v for k, v in table.items()})
        assert in_recipe_terms(str(direct.value)) in str(exc.value)


def test_refuses_bad_inputs(photos, tmp_path):
    with pytest.raises(BadInputError, match="no such file or directory"):
        OnlineBlur(tmp_path / "none", {"psf_source": "fresh"})
    with pytest.raises(BadInputError, match="smaller than the largest PSF"):
        OnlineBlur(photos, {"psf_source": "fresh", "crop": [16, 16]})
    with pytest.raises(BadInputError, match="BlurSettings or a dict"):
        OnlineBlur(photos, "fresh")
    ds = OnlineBlur(photos, {"psf_source": "fresh", "canvas": 15, "length": 10.0, "device": "cpu"})
    with pytest.raises(IndexError):
        ds.read(len(ds))
    # A wrong type says so (it once read as an index out of range).
    for bad in ("3", True, 1.0):
        with pytest.raises(TypeError, match=f"is a {type(bad).__name__}; an OnlineBlur is indexed by int"):
            ds.read_many([bad])


def test_pickled_copy_renders_the_same(photos):
    import pickle

    ds = OnlineBlur(photos, {"psf_source": "fresh", "canvas": 15, "length": 10.0,
                             "crop": [32, 32], "per_image": 2, "device": "cpu"})
    first = ds.read(3)
    copy = pickle.loads(pickle.dumps(ds))  # as a loader worker gets it: no photo kept
    assert copy._photo is None and copy.read(3)["blurred"].tobytes() == first["blurred"].tobytes()


@pytest.mark.slow
def test_dataloader_workers_give_the_same_items(photos):
    ds = OnlineBlur(photos, {"psf_source": "fresh", "canvas": 15, "length": 10.0,
                             "crop": [32, 32], "per_image": 2, "device": "cpu"})
    direct = [ds[i] for i in range(len(ds))]
    # Rendering ran Numba's OpenMP kernels in this process, which a forked child may not use:
    # workers start from a fresh forkserver (train's parent process never renders).
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2,
                                         multiprocessing_context="forkserver")
    got = [item for batch in loader for item in torch.unbind(batch["blurred"])]
    assert all(torch.equal(g, d["blurred"]) for g, d in zip(got, direct)) and len(got) == len(ds)
    assert [d["id"] for d in ds] == [d["id"] for d in direct]  # iterating: in order



@pytest.mark.slow
def test_forked_workers_after_a_render_in_this_process(photos):
    """A script that looks at one pair and then starts a DataLoader with (forked, Linux's
    default) workers: the workers render too. In a fresh process, since Numba's threading layer
    is chosen once per process (on GNU OpenMP a forked child that renders would abort)."""
    import subprocess
    import sys

    code = (
        "import torch\nfrom blursynth.torch import OnlineBlur\n"
        f"ds = OnlineBlur({str(photos)!r}, {{'psf_source': 'fresh', 'canvas': 15, 'length': 10.0,"
        " 'crop': [32, 32], 'per_image': 2, 'device': 'cpu'}, seed=3)\n"
        "first = ds[1]['blurred']\n"
        "loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2,"
        " multiprocessing_context='fork')\n"
        "got = torch.cat([b['blurred'] for b in loader])\n"
        "assert len(got) == len(ds) and torch.equal(got[1], first)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


RECIPE = """
[build]
seed = 7

[inputs.photos]
path = "{photos}"

[[steps]]
name = "pairs"
run = "blur"
photos = "@photos"
psf_source = "fresh"
length = 10.0
canvas = 15
crop = [32, 32]
per_image = 2
device = "cpu"
"""


def test_from_recipe_equals_the_build(photos, tmp_path, run_cli):
    recipe = tmp_path / "online.toml"
    recipe.write_text(RECIPE.format(photos=photos))
    online = OnlineBlur.from_recipe(recipe, build=tmp_path / "b")
    assert not (tmp_path / "b").exists()  # nothing written
    assert run_cli("build", recipe, "--out", tmp_path / "b").code == 0
    stored = StoredPairs(tmp_path / "b" / "pairs")
    assert json.loads((tmp_path / "b" / "pairs" / "manifest.json").read_text())["fingerprint"] \
        == online.fingerprint
    for i in (0, len(stored) - 1):
        assert online.read(i)["blurred"].tobytes() == stored[i]["blurred"].tobytes()


def test_from_recipe_refusals(photos, tmp_path, run_cli):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(photos=photos).replace('photos = "@photos"',
                                                            'photos = "@clips"'))
    with pytest.raises(RecipeError, match="names no input or earlier step"):
        OnlineBlur.from_recipe(recipe, build=tmp_path / "b")
    banked = RECIPE.format(photos=photos).replace('psf_source = "fresh"', 'kernels = "@bank"')
    banked = banked.replace("[[steps]]", '[[steps]]\nname = "bank"\nrun = "trajectories"\n'
                            'n = 8\ncanvas = 16\nlength = 10.0\nsamples = 300\n\n[[steps]]', 1)
    recipe.write_text(banked)
    with pytest.raises(RecipeError, match="is made by step 'bank', not built"):
        OnlineBlur.from_recipe(recipe, build=tmp_path / "b")
    assert run_cli("build", recipe, "--out", tmp_path / "built").code == 0  # once built: read
    online = OnlineBlur.from_recipe(recipe, build=tmp_path / "built")
    assert online.read(1)["blurred"].tobytes() == \
        StoredPairs(tmp_path / "built" / "pairs")[1]["blurred"].tobytes()
    recipe.write_text(RECIPE.format(photos=photos).replace('run = "blur"',
                                                            'run = "trajectories"\nn = 8')
                      .split("photos = \"@photos\"")[0])
    with pytest.raises(RecipeError, match="exactly one run = \"blur\" step"):
        OnlineBlur.from_recipe(recipe, build=tmp_path / "b")
    skimage = RECIPE.format(photos=photos).replace(f'path = "{photos}"', 'skimage = ["coffee"]')
    recipe.write_text(skimage)
    with pytest.raises(RecipeError, match="scikit-image samples, which a build writes"):
        OnlineBlur.from_recipe(recipe, build=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_online_mix_draws_and_crops_like_stored_pairs(photos, tiny_pairs_dataset):
    from blursynth._rng import sample_rng
    from blursynth.torch import PairDataset
    from blursynth.torch import OnlineMix
    from blursynth.train.data import STREAM_CROP, STREAM_INDEX_CROP, aligned_crop, to_tensor

    pairs = PairDataset(tiny_pairs_dataset(n=8), crop=32, seed=3)
    online = OnlineBlur(photos, {"psf_source": "fresh", "canvas": 15, "length": 10.0,
                                 "crop": [40, 40], "per_image": 2, "device": "cpu"})
    mix = OnlineMix(pairs, [online], [3.0], crop=32, seed=3)
    assert len(mix) == len(pairs) + len(online)
    assert [len(r) for r in mix.rows] == [len(pairs), len(online)]
    draws = list(mix.sampler(400, rank=0, world_size=1))
    assert [d.position for d in draws] == list(range(400))
    on = [d for d in draws if d.index >= len(pairs)]
    assert 0.65 < len(on) / len(draws) < 0.85  # weights 1 : 3
    d = on[0]
    want = online.read(d.index - len(pairs))
    b, s = aligned_crop(want["blurred"], want["sharp"], 32, sample_rng(3, d.position, STREAM_CROP))
    item = mix[d]
    assert torch.equal(item["blurred"], to_tensor(b)) and torch.equal(item["sharp"], to_tensor(s))
    # a stored row: read from its dataset and cropped as run sample k (not by the mix's code)
    stored = next(d for d in draws if d.index < len(pairs))
    row = StoredPairs(pairs.paths[0])[pairs.locate(stored.index)[1]]
    b, s = aligned_crop(row["blurred"], row["sharp"], 32, sample_rng(3, stored.position,
                                                                     STREAM_CROP))
    item = mix[stored]
    assert torch.equal(item["blurred"], to_tensor(b)) and torch.equal(item["sharp"], to_tensor(s))
    # int indices (DataLoader(mix, shuffle=True)): stored rows then online pairs, keyed by
    # (seed, i, epoch) as PairDataset's ds[i]
    i = len(pairs) + 1
    for epoch in (0, 1):
        mix.set_epoch(epoch)
        want = online.read(1)
        b, s = aligned_crop(want["blurred"], want["sharp"], 32,
                            sample_rng(3, i, STREAM_INDEX_CROP, epoch))
        assert torch.equal(mix[i]["blurred"], to_tensor(b)) and mix[i]["id"] == want["id"]
        assert torch.equal(mix[2]["blurred"], pairs[2]["blurred"]) and pairs.epoch == epoch
    assert torch.equal(mix[-1]["sharp"], mix[len(mix) - 1]["sharp"])
    # the sources are told apart: stored paths first, then the online ones
    assert (mix[0]["dataset"], mix[len(pairs)]["dataset"], online[0]["dataset"]) == (0, 1, 0)
    with pytest.raises(IndexError, match="out of range for an OnlineMix"):
        mix[len(mix)]
    for crop, expected in ((None, "crop must be a whole number"), (0, "crop must be a whole"),
                           (40, "differs from its PairDataset's crop 32")):
        with pytest.raises(BadInputError, match=expected):
            OnlineMix(pairs, [online], [1.0], crop=crop)
    # online alone, and an online source whose pairs are smaller than the crop
    alone = OnlineMix(None, [online], [1.0], crop=40, seed=0)
    assert all(d.index < len(online) for d in alone.sampler(20, rank=0, world_size=1))
    with pytest.raises(BadInputError, match="smaller than --crop 48; pass --crop 40 or less"):
        OnlineMix(None, [online], [1.0], crop=48, names=["r.toml"])


TRAIN_FAST = ("--crop", "32", "--batch-size", "2", "--perceptual", "none", "--critic-steps", "1",
              "--val-count", "2", "--val-crop", "32", "--workers", "0")


def test_train_online_mixed_with_stored_data(photos, tiny_pairs_dataset, tmp_path, run_cli):
    recipe = tmp_path / "online.toml"
    recipe.write_text(RECIPE.format(photos=photos))
    run = tmp_path / "run"
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--online", f"{recipe}:2", "--out", run,
                "--steps", "1", "--val-fraction", "0.3", *TRAIN_FAST)
    assert r.code == 0, r.err
    info = json.loads((run / "run.json").read_text())
    online = OnlineBlur.from_recipe(recipe, build=tmp_path / "b")
    assert info["recipe"]["online"] == [[str(recipe.resolve()), 2.0, online.fingerprint]]
    assert info["n_train_pairs"] > len(online) and info["val_pairs"]
    # online alone: planned (nothing written), every pair trains, nothing is held out
    from blursynth.train.data import DataSource
    from blursynth.train.loop import TrainSettings, plan_run

    settings = TrainSettings(data=(), online=(DataSource(str(recipe)),),
                             out=str(tmp_path / "alone"), steps=1, crop=32, workers=0,
                             perceptual="none")
    plan = plan_run(settings, online=[online])
    assert plan.n_train == len(online) and plan.val_items == []
    with pytest.raises(BadInputError, match="1 --online recipe.s. but 0 opened source"):
        plan_run(settings)  # recipes are the caller's to open
    assert not (tmp_path / "alone").exists()


def test_train_online_refusals(photos, tiny_pairs_dataset, tmp_path, run_cli):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(photos=photos).replace('photos = "@photos"',
                                                            'photos = "@clips"'))
    run = tmp_path / "run"
    cases = [
        (("--online", recipe), "names no input or earlier step"),
        (("--online", tmp_path / "none.toml"), "no such recipe file"),
        (("--online", f"{recipe}:0"), "--online"),
    ]
    for args, expected in cases:
        r = run_cli("train", "--data", tiny_pairs_dataset(), *args, "--out", run, "--steps", "1",
                    *TRAIN_FAST)
        assert r.code == 2 and expected in error_line(r), r.err
        assert not run.exists()
    recipe.write_text(RECIPE.format(photos=photos))
    r = run_cli("train", "--online", recipe, "--out", run, "--steps", "1", *TRAIN_FAST[2:],
                "--crop", "48")
    assert r.code == 2 and "smaller than --crop 48" in error_line(r) and not run.exists()
    r = run_cli("train", "--out", run, "--steps", "1")
    assert r.code == 2 and "--online" in error_line(r)


def test_resume_needs_the_same_online_sources(photos, tiny_pairs_dataset, tmp_path):
    from blursynth.train.data import DataSource
    from blursynth.train.checkpoints import check_resume
    from blursynth.train.loop import TrainSettings

    recipe = tmp_path / "online.toml"
    recipe.write_text(RECIPE.format(photos=photos))
    settings = TrainSettings(data=(DataSource(str(tiny_pairs_dataset())),), out=str(tmp_path / "r"),
                             steps=2, resume=True)
    ckpt = {"arch": "deblurgan", "model_config": settings.model_config(), "step": 1,
            "recipe": {"online": [[str(recipe), 2.0, "0123"]]}}
    with pytest.raises(BadInputError, match=r"trained on --online .*online.toml:2 too"):
        check_resume(ckpt, settings, settings.model_config(), {}, "fp32", torch.device("cpu"),
                     2, 0)


@pytest.mark.slow
def test_train_online_bytes_do_not_depend_on_loader_workers(photos, tmp_path):
    """In a fresh process: train's own never renders with workers (so it may fork them), and
    with --workers 0 rendering leaves torch's thread count alone (OMP_NUM_THREADS=1 here;
    Numba's OpenMP pool, started by the first render, would set it to the core count). One
    process runs both, the workers' run first (forking after a render is what it must not do)."""
    import subprocess
    import sys

    recipe = tmp_path / "online.toml"
    recipe.write_text(RECIPE.format(photos=photos))
    common = ["train", "--online", str(recipe), "--steps", "1", "--quiet", *TRAIN_FAST[:-2]]
    runs = [[*common, "--workers", w, "--out", str(tmp_path / f"w{w}")] for w in ("2", "0")]
    code = ("import sys\nfrom blursynth.cli import main\n"
            f"sys.exit(max(main(args) for args in {runs!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "w0" / "checkpoint.pt").read_bytes() == \
        (tmp_path / "w2" / "checkpoint.pt").read_bytes()


def test_readme_online_example_runs(tmp_path, monkeypatch):
    import re
    import shutil
    from pathlib import Path

    from skimage import data

    from blursynth.build.recipe import SKIMAGE_PHOTOS
    from blursynth.sources.photos import save_rgb8

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    section = text[text.index("Pairs rendered as they are read"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    save_rgb8(tmp_path / "photos" / "coffee.png", data.coffee())
    (tmp_path / "recipes").mkdir()
    shutil.copy(root / "recipes" / "deblurgan-synth.toml", tmp_path / "recipes")
    for name in SKIMAGE_PHOTOS:  # as 'blursynth build ... --limit 1' writes them
        save_rgb8(tmp_path / "builds" / "deblurgan-synth" / "inputs" / "photos" / f"{name}.png",
                  np.zeros((300, 300, 3), np.uint8))
    from blursynth.build.run import BUILD_MARKER

    (tmp_path / "builds" / "deblurgan-synth" / BUILD_MARKER).write_text("{}")  # a build's folder
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert tuple(scope["item"]["blurred"].shape) == (3, 256, 256)
    assert scope["row"]["params"]["crop"][2:] == [256, 256]
    assert len(scope["ds"]) == 6 * 16 and scope["ds"].settings.seed == 0


def test_refusals_found_against_photos_and_psfs_name_the_recipe_line_or_the_dict(photos, tmp_path):
    # Checked when the photos or PSFs are known, after the settings were read: still said in the
    # recipe's terms, at the line of the key (or as the dict's keys).
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(photos=photos).replace("crop = [32, 32]", "crop = [12, 12]"))
    with pytest.raises(RecipeError) as exc:
        OnlineBlur.from_recipe(recipe, build=tmp_path / "b")
    line = next(i for i, t in enumerate(recipe.read_text().splitlines(), 1) if t.startswith("crop"))
    assert str(exc.value).startswith(f"{recipe}:{line}: crop 12x12 is smaller than the largest PSF")
    assert "--crop" not in str(exc.value)
    with pytest.raises(BadInputError) as exc:
        OnlineBlur(photos, {"psf_source": "fresh", "crop": [4000, 4000]})
    assert str(exc.value).startswith("OnlineBlur settings: photo ") and "smaller crop" in str(exc.value)
    assert "--crop" not in str(exc.value)


def test_input_refusals_say_how_this_caller_points_an_input_elsewhere(photos, tmp_path, tiny_pairs_dataset,
                                                                      run_cli):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(photos=tmp_path / "nowhere"))
    with pytest.raises(RecipeError, match=r"override it with inputs=\{'photos': PATH\}"):
        OnlineBlur.from_recipe(recipe, build=tmp_path / "b")
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--online", recipe, "--out", tmp_path / "run",
                "--steps", "1", *TRAIN_FAST)
    assert r.code == 2 and "override it with path = ... in the recipe's [inputs.photos]" in error_line(r)
    assert "--input" not in error_line(r)  # train has no --input
    r = run_cli("build", recipe, "--out", tmp_path / "b", "--dry-run")
    assert r.code == 2 and "override it with --input photos=PATH" in error_line(r)


def test_online_spec_mistakes_are_named(photos, tmp_path, tiny_pairs_dataset, run_cli):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(photos=photos))
    for spec, expected in ((photos, "is a folder; expected a recipe TOML"),
                           (f"{recipe}:abc", f"weight 'abc' is not a number; expected PATH[:WEIGHT], e.g. --online {recipe}:2")):
        r = run_cli("train", "--data", tiny_pairs_dataset(), "--online", spec, "--out", tmp_path / "run",
                    "--steps", "1", *TRAIN_FAST)
        assert r.code == 2 and expected in error_line(r), r.err
        assert not (tmp_path / "run").exists()


def test_resume_with_other_online_weights_says_both_as_options(photos, tiny_pairs_dataset, tmp_path):
    from blursynth.train.checkpoints import check_resume
    from blursynth.train.data import DataSource
    from blursynth.train.loop import TrainSettings

    recipe = tmp_path / "online.toml"
    settings = TrainSettings(data=(DataSource(str(tiny_pairs_dataset())),), out=str(tmp_path / "r"),
                             steps=2, resume=True)
    ckpt = {"arch": "deblurgan", "model_config": settings.model_config(), "step": 1,
            "recipe": {"online": [[str(recipe), 2.0, "0123"]]}}

    def resume(online):
        check_resume(ckpt, settings, settings.model_config(), {"online": online}, "fp32",
                     torch.device("cpu"), 2, 0)

    with pytest.raises(BadInputError) as exc:
        resume([(str(recipe), 3.0, "0123")])
    assert f"trained on --online {recipe}:2; this run asks for --online {recipe}:3." in str(exc.value)
    with pytest.raises(BadInputError, match=r"online.toml:2 \(recipe 0123\); this run asks for "
                                            r".*online.toml:2 \(recipe 4567\)"):
        resume([(str(recipe), 2.0, "4567")])  # the recipe was edited
    with pytest.raises(BadInputError, match="trained without --online; this run adds"):
        check_resume({**ckpt, "recipe": {}}, settings, settings.model_config(),
                     {"online": [(str(recipe), 2.0, "0123")]}, "fp32", torch.device("cpu"), 2, 0)


def test_a_step_left_without_photos_is_told_so(photos, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(photos=photos).replace('[inputs.photos]', '[inputs.pictures]')
                      .replace('photos = "@photos"\n', ""))
    with pytest.raises(RecipeError, match=r"photos is not set, and its default '@photos' names no input "
                                          r"or earlier step; set photos = '@NAME' \(known: pictures\)"):
        OnlineBlur.from_recipe(recipe, build=tmp_path / "b")


def test_from_recipe_device_argument_is_named_as_the_argument(photos, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(photos=photos))  # device = "cpu" in the recipe
    with pytest.raises(BadInputError) as exc:
        OnlineBlur.from_recipe(recipe, build=tmp_path / "b", device="cuda")
    assert str(exc.value).startswith("device='cuda': ") and str(recipe) not in str(exc.value)


def test_the_old_resize_spelling_warns_in_a_dict_too(photos):
    with pytest.warns(FutureWarning, match=r"resize = \[W, H\] is the old width-first spelling"):
        old = OnlineBlur(photos, {"psf_source": "fresh", "resize": [60, 50], "canvas": 15, "length": 8.0})
    new = OnlineBlur(photos, {"psf_source": "fresh", "resize_to": [50, 60], "canvas": 15, "length": 8.0})
    assert old.read(0)["blurred"].tobytes() == new.read(0)["blurred"].tobytes()


def test_a_photo_that_fails_to_decode_is_warned_about_and_its_pairs_replaced(photos, tmp_path):
    # Its header reads (it is planned, its pairs counted); its pixels do not. blur skips it; an
    # online dataset cannot leave an index out: its indices give the pairs of the next photo
    # that decodes (wrapping to the first), with one warning, so an epoch goes on.
    import shutil
    import warnings

    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    data = bytearray(next(p for p in sorted(folder.iterdir()) if p.suffix == ".png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "zz_damaged.png").write_bytes(bytes(data))
    ds = OnlineBlur(folder, {"psf_source": "fresh", "crop": [32, 32], "canvas": 15, "length": 8.0,
                             "per_image": 2, "device": "cpu"})
    assert len(ds) == 8  # the three photos and the damaged one, two pairs each
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [ds[i] for i in range(len(ds))]
        rows = ds.read_many([6, 7, 1])
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and "\n" not in said[0], said
    assert re.search(r"zz_damaged.png: cannot decode image; .*next photo that decodes", said[0])
    assert caught[0].filename == __file__  # at the line that asked for the pair (ds[i] here)
    # Indices 6 and 7 (the damaged photo's) are pairs 0 and 1 of the first photo, and say so.
    assert [r["index"] for r in rows] == [0, 1, 1] and [items[i]["id"] for i in (6, 7)] == [f"{0:09d}", f"{1:09d}"]
    assert rows[0]["blurred"].tobytes() == ds.read(0)["blurred"].tobytes()
    assert torch.equal(items[6]["blurred"], items[0]["blurred"])


def _one_good_one_damaged(photos, folder):
    """``folder`` with a photo (a.png) and a copy whose pixels do not decode (b_damaged.png)."""
    folder.mkdir()
    data = bytearray(next(p for p in sorted(photos.iterdir()) if p.suffix == ".png").read_bytes())
    (folder / "a.png").write_bytes(bytes(data))
    data[len(data) // 2] ^= 0xFF
    (folder / "b_damaged.png").write_bytes(bytes(data))
    return folder


@pytest.mark.parametrize("ask", ["read", "getitem", "read_many"])
def test_a_photo_that_fails_to_decode_is_warned_about_at_the_line_that_asked(photos, tmp_path, ask):
    import warnings

    folder = _one_good_one_damaged(photos, tmp_path / "bad")
    ds = OnlineBlur(folder, {"psf_source": "fresh", "crop": [32, 32], "canvas": 15, "length": 8.0,
                             "device": "cpu"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        {"read": lambda: ds.read(1), "getitem": lambda: ds[1], "read_many": lambda: ds.read_many([1])}[ask]()
    assert [w.filename for w in caught] == [__file__]


def test_online_blur_with_strict_stops_at_a_photo_that_fails_to_decode(photos, tmp_path):
    folder = _one_good_one_damaged(photos, tmp_path / "bad")
    ds = OnlineBlur(folder, {"psf_source": "fresh", "crop": [32, 32], "canvas": 15, "length": 8.0,
                             "device": "cpu", "strict": True})
    assert ds[0]["blurred"].shape[-2:] == (32, 32)
    with pytest.raises(BadInputError, match=r"b_damaged.png: .*strict=True stop here \(as blur --strict\)"):
        ds[1]


def test_online_blur_over_photos_none_of_which_decodes_is_one_error(photos, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    data = bytearray(next(p for p in sorted(photos.iterdir()) if p.suffix == ".png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "damaged.png").write_bytes(bytes(data))
    ds = OnlineBlur(folder, {"psf_source": "fresh", "crop": [32, 32], "canvas": 15, "length": 8.0,
                             "device": "cpu"})
    for _ in range(2):  # found now, and known the next time
        with pytest.raises(BadInputError, match="decodes") as err:
            ds[0]
        assert "\n" not in str(err.value)


def test_photos_blur_leaves_out_are_named_in_one_warning_each(photos, tmp_path, run_cli):
    # Too small for the crop, or unreadable: blur leaves them out with a warning line; the same
    # photos are left out of len(ds), with the same line in the dict's words.
    import shutil
    import warnings

    import cv2

    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "broken.png").write_bytes(b"not a png")
    settings = {"psf_source": "fresh", "crop": [32, 32], "canvas": 15, "length": 8.0, "per_image": 2,
                "device": "cpu"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = OnlineBlur(folder, settings, seed=0)
    said = [str(w.message) for w in caught]
    assert len(ds) == 6  # the three photos, two pairs each
    assert len(said) == 2 and all(line.startswith("OnlineBlur: ") for line in said), said
    assert "broken.png" in said[0] and said[0].endswith("; skipped")
    assert re.search(r"1 of 4 photos are smaller than 32x32 \(crop 32x32\) .*tiny\.png \(8x8\) "
                     r"\(strict refuses them instead\)", said[1]), said[1]
    res = run_cli("blur", folder, "--psf-source", "fresh", "--crop", "32x32", "--canvas", "15",
                           "--length", "8", "--per-image", "2", "--workers", "1", "--out", tmp_path / "pairs")
    assert res.code == 0, res.err
    assert "1 of 4 photos are smaller than 32x32 (--crop 32x32)" in res.err and "broken.png" in res.err
    assert len(StoredPairs(tmp_path / "pairs")) == len(ds)
