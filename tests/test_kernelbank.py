import json
from pathlib import Path

import numpy as np
import pytest

from blursynth.dataset import verify_dataset
from blursynth.kernelbank import KernelBank, KernelBankConfig, contact_sheet, kernel_stats, write_kernel_bank
from blursynth.ops.psf import rasterize_psf
from blursynth.build.run import plan_build
from blursynth.ops.trajectory import TrajectoryConfig, sample_trajectory

from .conftest import error_line

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(trajectory=TrajectoryConfig(n_samples=300, length_px=20.0))


def test_bank_rows_are_pure_functions_of_seed_and_index(tmp_path):
    config = KernelBankConfig(n=30, seed=4, keep_trajectories=True, shard_size=7, **SMALL)
    write_kernel_bank(tmp_path / "b", config, progress=False)
    bank = KernelBank(tmp_path / "b")
    assert len(bank) == 30 and bank.exposures == (0.01, 0.1, 0.5, 1.0)
    for i in (0, 6, 7, 29):
        traj, params = sample_trajectory(config.trajectory, rng=(4, i))
        row = bank.row(i)
        assert row["index"] == i and row["expl"] == params["expl"]
        np.testing.assert_allclose(row["trajectory"], traj.astype(np.float32))
        for f, psf in zip(bank.exposures, bank.psfs(i)):
            np.testing.assert_array_equal(psf, rasterize_psf(traj, exposure_fraction=f))
        np.testing.assert_array_equal(bank.psf(i, 0.5), bank.psfs(i)[2])


def test_bytes_identical_across_workers(tmp_path):
    config = KernelBankConfig(n=40, seed=1, shard_size=10, **SMALL)
    write_kernel_bank(tmp_path / "one", config, workers=1, progress=False)
    write_kernel_bank(tmp_path / "two", config, workers=2, progress=False)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 6  # manifest, 4 shards and the (released, empty) lock file
    for f in files:
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


def test_stats_and_sheet(tmp_path):
    write_kernel_bank(tmp_path / "b", KernelBankConfig(n=50, **SMALL), progress=False)
    stats = kernel_stats(tmp_path / "b")
    assert stats["n"] == 50 and list(stats["exposures"]) == ["0.01", "0.1", "0.5", "1"]
    full, short = stats["exposures"]["1"], stats["exposures"]["0.01"]
    assert full["support_px"]["mean"] > short["support_px"]["mean"]
    assert full["max_energy"]["mean"] < short["max_energy"]["mean"]
    assert 0 < full["extent_px"]["max"] <= 20.0 + 1e-6
    sheet = contact_sheet(tmp_path / "b", count=8)
    assert sheet.ndim == 3 and sheet.dtype == np.uint8 and sheet.max() > 200


def test_fixed_psf_size(tmp_path):
    write_kernel_bank(tmp_path / "b", KernelBankConfig(n=5, psf_size=9, **SMALL), progress=False)
    bank = KernelBank(tmp_path / "b")
    assert {p.shape for i in range(5) for p in bank.psfs(i)} == {(9, 9)}
    assert verify_dataset(tmp_path / "b")["rows"] == 5


def test_pinned_eval48_bank_regenerates_byte_identically(tmp_path):
    (step,) = plan_build(ROOT / "recipes/kernels-eval48.toml", out=tmp_path / "plan", dry_run=True).steps
    config = step.settings
    pinned = ROOT / "kernels/eval48"
    manifest = json.loads((pinned / "manifest.json").read_text())
    assert manifest["recipe"] == "recipes/kernels-eval48.toml" and manifest["command"]["seed"] == 20121
    write_kernel_bank(tmp_path / "eval48", config, recipe="recipes/kernels-eval48.toml", progress=False)
    assert verify_dataset(pinned)["rows"] == 48
    new, old = KernelBank(tmp_path / "eval48"), KernelBank(pinned)
    for i in range(48):
        for a, b in zip(new.psfs(i), old.psfs(i)):
            np.testing.assert_array_equal(a, b)
    for name in ("manifest.json", "data/train-00000-of-00001.parquet"):
        assert (tmp_path / "eval48" / name).read_bytes() == (pinned / name).read_bytes(), name


def test_cli_end_to_end(tmp_path, run_cli):
    r = run_cli("trajectories", "--n", 12, "--out", tmp_path / "b", "--samples", 200, "--shard-size", 5)
    assert r.code == 0 and "wrote 12 rows in 3 shard(s)" in r.out
    r = run_cli("trajectories", "--n", 12, "--out", tmp_path / "b", "--samples", 200, "--shard-size", 5)
    assert r.code == 0  # the same command again: nothing to do, same manifest
    r = run_cli("kernels", "stats", tmp_path / "b")
    assert r.code == 0 and "trajectory extent" in r.out
    r = run_cli("kernels", "preview", tmp_path / "b", "--out", tmp_path / "s.png")
    assert r.code == 0 and (tmp_path / "s.png").stat().st_size > 1000
    r = run_cli("kernels", "stats", tmp_path / "b", "--json")
    assert json.loads(r.out)["n"] == 12


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--n", "0"], "--n"),
        (["--n", "-5"], "--n"),
        (["--exposures", "0,0.5"], "outside (0, 1]"),
        (["--exposures", "0.5,1.5"], "outside (0, 1]"),
        (["--exposures", "half"], "not a number"),
        (["--exposures", "0.5,0.5"], "repeats"),
        (["--psf-size", "8"], "odd"),
        (["--psf-size", "1"], "odd"),
        (["--n", "many"], "--n"),
        (["--length", "nan"], "finite"),
        (["--length", "inf"], "finite"),
        (["--expl", "nan"], "finite"),
    ],
)
def test_cli_bad_input(tmp_path, run_cli, args, expect):
    r = run_cli("trajectories", "--out", tmp_path / "b", *args)
    assert r.code == 2
    assert expect in error_line(r)
    assert not (tmp_path / "b").exists()


def test_cli_out_is_file_and_other_command(tmp_path, run_cli):
    (tmp_path / "f").write_text("x")
    r = run_cli("trajectories", "--n", 3, "--out", tmp_path / "f")
    assert r.code == 2 and "is a file" in error_line(r)
    assert run_cli("trajectories", "--n", 3, "--samples", 50, "--out", tmp_path / "b").code == 0
    before = (tmp_path / "b/manifest.json").read_bytes()
    r = run_cli("trajectories", "--n", 4, "--samples", 50, "--out", tmp_path / "b")
    assert r.code == 2 and "different command" in error_line(r) and "--overwrite" in error_line(r)
    assert (tmp_path / "b/manifest.json").read_bytes() == before
    r = run_cli("trajectories", "--n", 4, "--samples", 50, "--out", tmp_path / "b", "--overwrite")
    assert r.code == 0 and KernelBank(tmp_path / "b").__len__() == 4
    # A pair dataset path given to kernels stats is refused clearly.
    r = run_cli("kernels", "stats", tmp_path / "nope")
    assert r.code == 2 and "no such dataset" in error_line(r)


def test_preview_out_with_unknown_suffix(tmp_path, run_cli):
    r = run_cli("kernels", "preview", ROOT / "kernels/eval48", "--out", tmp_path / "sheet.xyz")
    assert r.code == 2 and "suffix" in error_line(r)
    assert not (tmp_path / "sheet.xyz").exists()


def test_preview_out_under_a_file(tmp_path, run_cli):
    (tmp_path / "f.png").write_bytes(b"x")
    r = run_cli("kernels", "preview", ROOT / "kernels/eval48", "--out", tmp_path / "f.png" / "sheet.png")
    assert r.code == 2 and "is a file, not a folder" in error_line(r)
    assert (tmp_path / "f.png").read_bytes() == b"x"


@pytest.mark.parametrize("edit, expect", [
    (lambda m: m.update(exposures=[0.3, 0.1, 0.5, 1.0]), "bank was made with [0.01, 0.1, 0.5, 1.0]"),
    (lambda m: m["command"].update(canvas=32), "no longer match its fingerprint"),
])
def test_hand_edited_bank_manifest_is_refused(tmp_path, run_cli, photo, edit, expect):
    import shutil

    from blursynth.sources.photos import save_rgb8

    (tmp_path / "photos").mkdir()
    save_rgb8(tmp_path / "photos" / "a.png", photo)
    bank = tmp_path / "bank"
    shutil.copytree(Path(__file__).resolve().parents[1] / "kernels" / "eval48", bank)
    manifest = json.loads((bank / "manifest.json").read_text())
    edit(manifest)
    (bank / "manifest.json").write_text(json.dumps(manifest))
    for args in (["kernels", "stats", bank],
                 ["blur", tmp_path / "photos", "--kernels", bank, "--out", tmp_path / "pairs"]):
        r = run_cli(*args)
        assert r.code == 2, r
        assert expect in error_line(r), error_line(r)
    assert not (tmp_path / "pairs").exists()
