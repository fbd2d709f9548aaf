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
