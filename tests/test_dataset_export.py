"""dataset export: GoPro-style folders, and which folders --overwrite may replace."""

import numpy as np

from blursynth.dataset import verify_dataset

from .conftest import error_line, held_lock
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


def test_export_is_refused_while_another_process_writes_the_folder(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=2)
    with held_lock(tmp_path / "x") as pid:
        r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x")
    assert r.code == 2 and f"another blursynth process (pid {pid}) is writing there" in error_line(r)
    # A folder holding only a lock is not an earlier export to protect: a plain rerun proceeds.
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x").code == 0
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [".blursynth.lock", "blur", "params.jsonl", "psf", "sharp"]


def test_export_removes_the_half_built_folder_of_a_killed_export_and_nothing_else(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=2)
    half = tmp_path / ".x.tmp4242"
    (half / "blur").mkdir(parents=True)
    (half / "params.jsonl").write_text("")
    other = tmp_path / ".x.tmp77"  # same pattern, but holds a user's file
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x").code == 0
    assert not half.exists() and (other / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.tmp77", "d", "x"]


def test_export_never_replaces_a_folder_through_a_link(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=2)
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x").code == 0
    (tmp_path / "link").symlink_to(tmp_path / "x")
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "link", "--overwrite")
    assert r.code == 2 and "is a symbolic link; an export replaces its folder whole" in error_line(r)
    assert (tmp_path / "link").is_symlink() and (tmp_path / "x" / "params.jsonl").exists()
