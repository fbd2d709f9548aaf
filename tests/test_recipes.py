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
