"""dataset export: GoPro-style folders, and which folders --overwrite may replace."""

import numpy as np

from blursynth.dataset import verify_dataset

from .conftest import error_line
from .conftest import write_tiny


def test_export_writes_psfs(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=4)
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x").code == 0
    psf = np.load(tmp_path / "x/psf/000000001.npy")
    np.testing.assert_allclose(psf, np.full((3, 3), 1 / 9), rtol=1e-6)
    assert (tmp_path / "x/psf/000000001.png").exists() and not (tmp_path / "x/psf/000000000.npy").exists()


def test_export_overwrite_never_replaces_the_dataset_or_foreign_files(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=2)
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "d", "--overwrite")
    assert r.code == 2 and "is or holds the dataset" in error_line(r)
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path, "--overwrite")
    assert r.code == 2 and "is or holds the dataset" in error_line(r)
    assert verify_dataset(tmp_path / "d")["rows"] == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/photo.png").write_bytes(b"keep")
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "mine", "--overwrite")
    assert r.code == 2 and "not an earlier export" in error_line(r)
    assert (tmp_path / "mine/photo.png").read_bytes() == b"keep"
    # An earlier export is still replaced.
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x").code == 0
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--overwrite").code == 0


def test_export_refuses_a_file_and_an_unmarked_folder(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=2)
    (tmp_path / "f").write_text("x")
    for flags in ((), ("--overwrite",)):
        r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "f", *flags)
        assert r.code == 2 and "is a file; expected a folder" in error_line(r)
    assert (tmp_path / "f").read_text() == "x"
    (tmp_path / "half" / "blur").mkdir(parents=True)  # export folders, no params.jsonl
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "half", "--overwrite")
    assert r.code == 2 and "(it has no params.jsonl)" in error_line(r)
    assert (tmp_path / "half" / "blur").is_dir()
