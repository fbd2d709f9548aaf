"""The pinned recipes in recipes/: every one builds (``build --dry-run``), and the kernel-bank
recipe builds the pinned bank."""

import json

import pytest

from .conftest import RECIPES, ROOT

ALL_RECIPES = sorted(RECIPES.glob("*.toml"))


def test_recipes_folder_is_listed_in_readme():
    readme = (ROOT / "README.md").read_text()
    assert ALL_RECIPES and all(f"`{p.name}`" in readme for p in ALL_RECIPES)


@pytest.mark.parametrize("recipe", ALL_RECIPES, ids=lambda p: p.stem)
def test_every_recipe_dry_runs(recipe, run_cli, tmp_path):
    r = run_cli("build", recipe, "--dry-run", "--out", tmp_path / "out")
    assert r.code == 0, r.err
    assert r.out.startswith(f"recipe {recipe}") and "  1. " in r.out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_eval48_recipe_builds_the_pinned_bank(run_cli, tmp_path):
    r = run_cli("build", RECIPES / "kernels-eval48.toml", "--out", tmp_path / "out")
    assert r.code == 0, r.err
    built, pinned = tmp_path / "out/eval48", ROOT / "kernels/eval48"
    shard = "data/train-00000-of-00001.parquet"
    assert (built / shard).read_bytes() == (pinned / shard).read_bytes()
    assert json.loads((built / "manifest.json").read_text())["command"] == \
        json.loads((pinned / "manifest.json").read_text())["command"]


# --- build --limit ----------------------------------------------------------------------------


def test_limit_spreads_items_over_the_plan(tmp_path):
    import functools

    from blursynth.dataset import PairDataset
    from blursynth.dataset.schema import PAIR_SCHEMA
    from blursynth.dataset.writer import WriteOptions, write_dataset

    from .conftest import tiny_rows

    def write(out, options=None):
        return write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=9, shard_size=2,
                             make_rows=functools.partial(tiny_rows, fp="fp"), fingerprint="fp",
                             command={}, progress=False, options=options)

    limited = write(tmp_path / "limited", WriteOptions(limit=3))
    full = write(tmp_path / "full")
    assert limited["num_rows"] == 3 and limited["fingerprint"] != full["fingerprint"]
    small, big = PairDataset(tmp_path / "limited"), PairDataset(tmp_path / "full")
    # Items 0, 3 and 6 of the nine, each the same pair as in the full build.
    assert [small[k]["params"]["i"] for k in range(3)] == [0, 3, 6]
    for k, i in enumerate((0, 3, 6)):
        assert small[k]["sharp"].tobytes() == big[i]["sharp"].tobytes()


def test_build_limit_draws_from_every_photo(tiny_recipe, run_cli, tmp_path):
    # Two photos, three pairs each: --limit 2 takes one pair of each photo, not two of the first.
    r = run_cli("build", tiny_recipe, "--out", tmp_path / "out", "--limit", 2)
    assert r.code == 0, r.err
    from blursynth.dataset import PairDataset

    ds = PairDataset(tmp_path / "out/synth")
    photos = [ds[k]["params"]["photo"] for k in range(len(ds))]
    assert len(photos) == 2 and len(set(photos)) == 2, photos


# --- recipe keys spelled as the command options ------------------------------------------------

OPTION_NAMED = """
[build]
seed = 1

[inputs.photos]
skimage = ["astronaut"]

[[steps]]
name = "pairs"
run = "blur"
photos = "@photos"
psf_source = "fresh"
length = 25.0
resize_to = [300, 400]

[[steps]]
name = "clips"
run = "render-clip"
photos = "@photos"
frames = 30

[[steps]]
name = "train"
run = "train"
data = ["@pairs"]
perceptual = "none"
steps = 10
quiet = true
no_verify = true
"""


def test_option_named_keys(tmp_path):
    from blursynth.build import plan_build

    (tmp_path / "r.toml").write_text(OPTION_NAMED)
    pairs, clips, train = (s.settings for s in plan_build(tmp_path / "r.toml", out=tmp_path / "o").steps)
    assert pairs.fresh_length_px == 25.0 and pairs.resize == (400, 300)  # resize_to is HxW
    assert clips.settings.n_frames == 30
    assert train.progress is False and train.verify is False


def test_old_keys_still_read(tmp_path):
    from blursynth.build import plan_build

    text = (OPTION_NAMED.replace("length = 25.0", "fresh_length_px = 25.0")
            .replace("resize_to = [300, 400]", "resize = [400, 300]").replace("frames = 30", "n_frames = 30"))
    (tmp_path / "r.toml").write_text(text)
    pairs, clips, _ = plan_build(tmp_path / "r.toml", out=tmp_path / "o").steps
    assert (pairs.settings.fresh_length_px, list(pairs.settings.resize), clips.settings.settings.n_frames) == \
        (25.0, [400, 300], 30)
    assert pairs.note.startswith("resize = [W, H] is the old width-first spelling")


def test_option_key_and_field_together_refused(tmp_path, run_cli):
    from .conftest import error_line

    text = OPTION_NAMED.replace("frames = 30", "frames = 30\nn_frames = 40")
    (tmp_path / "r.toml").write_text(text)
    r = run_cli("build", tmp_path / "r.toml", "--dry-run")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("frames ="))
    assert r.code == 2 and error_line(r) == (
        f"error: {tmp_path / 'r.toml'}:{line}: frames and n_frames set the same thing; keep one (frames, as "
        "the command's option is named).")


def test_option_key_bad_value_names_its_line(tmp_path, run_cli):
    from .conftest import error_line

    # BlurSettings names its field (fresh_length_px); the error points at the line the table
    # spelled it on (length).
    text = OPTION_NAMED.replace("length = 25.0", "length = -1.0")
    (tmp_path / "r.toml").write_text(text)
    r = run_cli("build", tmp_path / "r.toml", "--dry-run")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("length ="))
    assert r.code == 2 and error_line(r).startswith(f"error: {tmp_path / 'r.toml'}:{line}: trajectory length")


def test_readme_lists_every_key_that_is_not_an_option():
    """Each settings field a step reads that no option of its command spells is in the README's
    table of differences (or has an option-named key in OPTION_KEYS)."""
    import dataclasses
    import importlib

    import click

    from blursynth.build.recipe import OPTION_KEYS
    from blursynth.build.steps import STEP_KINDS

    from .conftest import ROOT

    commands = {"blur": "blur:blur", "render-clip": "frames:render_clip", "frames-average": "frames:frames_average",
                "import": "dataset:import_", "bgan-train": "bgan:train", "bgan-blur": "bgan:blur",
                "uid-train": "uid:train", "uid-blur": "uid:blur",
                "train": "train:train", "evaluate": "evaluate:evaluate"}
    table = (ROOT / "README.md").read_text().split("The differences:")[1].split("Each step writes")[0]
    handled_by_step = {"photos", "kernels", "window_min", "window_max", "json_path", "csv_path"}  # read by the step itself
    missing = []
    for run, spec in commands.items():
        module, _, name = spec.partition(":")
        command = getattr(importlib.import_module(f"blursynth.commands.{module}"), name)
        options = {o[2:].replace("-", "_") for p in command.params if isinstance(p, click.Option)
                   for o in p.opts if o.startswith("--")}
        aliased = {field for field, _ in OPTION_KEYS.get(run, {}).values()}
        for f in dataclasses.fields(STEP_KINDS[run].settings_class()):
            if f.name in options or f.name in aliased or f.name in handled_by_step:
                continue
            if f"`{f.name}`" not in table:
                missing.append(f"{run}.{f.name}")
    assert not missing, missing


def test_bad_resize_to_in_a_recipe_is_named_height_first(tmp_path, run_cli):
    from .conftest import error_line

    text = OPTION_NAMED.replace("resize_to = [300, 400]", "resize_to = [0, 400]")
    (tmp_path / "r.toml").write_text(text)
    r = run_cli("build", tmp_path / "r.toml", "--dry-run")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("resize_to ="))
    assert r.code == 2 and error_line(r) == (
        f"error: {tmp_path / 'r.toml'}:{line}: resize_to size must be positive; got 0x400 (HxW).")
