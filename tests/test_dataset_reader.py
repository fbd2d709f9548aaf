"""Reading datasets: unfinished, missing and hand-edited datasets are one-line errors."""

import json

import pytest

from blursynth.dataset import PairDataset
from blursynth.errors import DatasetError

from .conftest import error_line
from .conftest import write_tiny


def test_unfinished_dataset_is_not_readable(tmp_path):
    write_tiny(tmp_path / "d")
    (tmp_path / "d/manifest.json").unlink()
    (tmp_path / "d/.blursynth-progress.json").write_text("{}")
    with pytest.raises(DatasetError, match="unfinished"):
        PairDataset(tmp_path / "d")


def test_not_a_dataset(tmp_path, run_cli):
    for args in (["dataset", "info", tmp_path / "missing"], ["dataset", "verify", tmp_path]):
        r = run_cli(*args)
        assert r.code == 2, r
        line = error_line(r)
        assert "manifest.json" in line or "no such dataset" in line, line


def test_hand_edited_manifest_is_a_one_line_error(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=4, shard_size=4)
    manifest = json.loads((tmp_path / "d/manifest.json").read_text())
    manifest["num_rows"] = manifest["shards"][0]["rows"] = 40
    (tmp_path / "d/manifest.json").write_text(json.dumps(manifest))
    r = run_cli("dataset", "preview", tmp_path / "d", "--out", tmp_path / "p.png", "--start", 20)
    assert r.code == 2 and "holds 4 rows; manifest.json says 40" in error_line(r)
    assert not (tmp_path / "p.png").exists()
    (tmp_path / "d/manifest.json").write_text("[]")
    r = run_cli("dataset", "info", tmp_path / "d")
    assert r.code == 2 and "not an object" in error_line(r)
