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
    assert r.code == 2 and "made by this command with other settings (n 3 (recorded) vs 4;" in error_line(r)
    assert "--overwrite" in error_line(r)
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


# --- counts and lengths that cannot be meant (D5, D12) -----------------------------------------

@pytest.mark.parametrize("args, expect", [
    (["--n", "1000000000000"],
     "--n 1000000000000 is more kernels than one bank holds (at most 100000000)"),
    (["--n", "100001", "--shard-size", "1"], "makes 100001 shards, more than 100000"),
    (["--length", "1e9"], "every kernel would be clipped at every exposure"),
    (["--length", "1e9", "--psf-size", "1025"],
     "Use a --length of at most 512 px, which always fits a 1025 px PSF centred on its centre of mass"),
    (["--length", "1e9", "--psf-size", "1025"], "or a larger --psf-size."),
    (["--length", "1e9", "--canvas", "16", "--centre", "bbox"],
     "Use a --length of at most 14 px, which always fits a 15 px PSF centred on its bounding box"),
])
def test_counts_and_lengths_that_cannot_be_meant_are_refused_at_once(tmp_path, run_cli, args,
                                                                      expect):
    r = run_cli("trajectories", "--out", tmp_path / "b", *args)
    assert r.code == 2 and expect in error_line(r), r
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("line, expect", [
    ("n = 1e12", "n must be a positive integer; got 1000000000000.0 (a float"),
    ("n = 2.0", "n must be a positive integer; got 2.0 (a float"),
    ("n = 1000000000000", "is more kernels than one bank holds"),
    ("length = 1e9", "every kernel would be clipped"),
])
def test_recipe_counts_that_cannot_be_meant_are_refused_on_their_line(tmp_path, run_cli, line,
                                                                       expect):
    (tmp_path / "r.toml").write_text(
        f'[build]\nout = "o"\n\n[[steps]]\nname = "bank"\nrun = "trajectories"\n{line}\n')
    r = run_cli("build", tmp_path / "r.toml", "--out", tmp_path / "o", "--dry-run")
    assert r.code == 2, r
    assert error_line(r).startswith(f"error: {tmp_path / 'r.toml'}:7: ") and expect in error_line(r)


def test_the_length_limit_is_where_every_kernel_must_clip():
    from blursynth.ops.psf import rasterize_psfs
    from blursynth.ops.trajectory import check_path_fits, sample_trajectories

    limit = 15 * 19 * 2 ** 0.5  # 20 samples on a 15 px canvas
    past = TrajectoryConfig(n_samples=20, length_px=limit * 1.001)
    with pytest.raises(ValueError, match="every kernel would be clipped"):
        check_path_fits(past, 15)
    with pytest.raises(ValueError, match="every kernel would be clipped"):
        KernelBankConfig(trajectory=past, n=16, exposures=(0.1, 1.0), canvas=16)
    # The refusal is only ever right: past the limit no PSF of two or more samples fits.
    trajs = sample_trajectories(past, 0, np.arange(200))[0]
    _, _, clipped, _ = rasterize_psfs(trajs, (0.1, 0.5, 1.0), max_size=15)
    assert (clipped > 0).all()
    check_path_fits(TrajectoryConfig(n_samples=20, length_px=limit * 0.999), 15)
    KernelBankConfig(trajectory=TrajectoryConfig(n_samples=20, length_px=limit * 0.999), n=16,
                     exposures=(0.1, 1.0), canvas=16)


@pytest.mark.parametrize("centre", ["mass", "bbox"])
def test_the_length_refusal_suggests_a_length_at_which_no_kernel_clips(centre):
    import re

    from blursynth.ops.psf import rasterize_psfs
    from blursynth.ops.trajectory import check_path_fits, sample_trajectories

    with pytest.raises(ValueError, match="every kernel would be clipped") as info:
        check_path_fits(TrajectoryConfig(n_samples=20, length_px=1e9), 15, centre=centre)
    fit = float(re.search(r"--length of at most (\d+) px", str(info.value)).group(1))
    assert fit == {"mass": 7, "bbox": 14}[centre]  # on the order of the 15 px side, not past it
    trajs = sample_trajectories(TrajectoryConfig(n_samples=20, length_px=fit), 0, np.arange(500))[0]
    _, _, clipped, _ = rasterize_psfs(trajs, (0.1, 0.5, 1.0), centre=centre, max_size=15)
    assert (clipped < 1e-12).all()  # the mass kept is 1 up to rounding
    # It is the canvas side's order, not far below: a 16 px path clips many kernels.
    trajs = sample_trajectories(TrajectoryConfig(n_samples=20, length_px=16.0), 0, np.arange(500))[0]
    assert (rasterize_psfs(trajs, (1.0,), centre=centre, max_size=15)[2] > 0.01).sum() > 100


def test_blur_refuses_a_fresh_trajectory_length_that_clips_every_kernel(tmp_path, run_cli, photo):
    from blursynth.pairs.shake import BlurSettings

    with pytest.raises(ValueError, match="every kernel would be clipped") as info:
        BlurSettings(photos="x", psf_source="fresh", fresh_length_px=1e9)
    assert info.value.field == "fresh_length_px"
    BlurSettings(photos="x", psf_source="fresh", fresh_length_px=60.0)
    (tmp_path / "p").mkdir()
    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "p/a.png", photo)
    r = run_cli("blur", tmp_path / "p", "--psf-source", "fresh", "--length", "1e9",
                "--out", tmp_path / "o")
    assert r.code == 2 and "every kernel would be clipped" in error_line(r)
    # The remedy names blur's own option, --canvas (a recipe's canvas), not a settings field.
    assert error_line(r).endswith("or a larger --canvas."), error_line(r)
    assert "at most 31 px" in error_line(r) and "fresh_canvas" not in error_line(r)
    assert not (tmp_path / "o").exists()
    r = run_cli("blur", tmp_path / "p", "--psf-source", "fresh", "--length", "1e9", "--canvas", "16",
                "--out", tmp_path / "o")
    assert r.code == 2 and "at most 7 px, which always fits a 15 px PSF" in error_line(r), r
    r = run_cli("blur", tmp_path / "p", "--psf-source", "fresh", "--length", "7", "--canvas", "16",
                "--out", tmp_path / "o")
    assert r.code == 0, r
    assert json.loads((tmp_path / "o/manifest.json").read_text())["command"]["fresh_canvas"] == 16
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[[steps]]\nname = "pairs"\nrun = "blur"\nphotos = "{tmp_path}/p"\n'
                      'psf_source = "fresh"\nlength = 1e9\ncanvas = 16\n')
    r = run_cli("build", recipe, "--out", tmp_path / "b", "--dry-run")
    assert r.code == 2 and error_line(r).startswith(f"error: {recipe}:6: "), r
    assert "a length of at most 7 px" in error_line(r) and error_line(r).endswith("or a larger canvas."), r


def test_a_bank_of_heavily_clipped_kernels_is_warned_about(tmp_path, capsys):
    write_kernel_bank(tmp_path / "ok", KernelBankConfig(n=16, **SMALL), progress=False)
    assert "warning" not in capsys.readouterr().err
    long = dict(SMALL, trajectory=TrajectoryConfig(n_samples=300, length_px=2000.0))
    write_kernel_bank(tmp_path / "long", KernelBankConfig(n=16, **long), progress=False)
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {tmp_path / 'long'}: at exposure ")
    assert "off the 63 px PSF side" in err
    assert err.count("\n") == 1


# --- readers of a bank check its shards (D4) ---------------------------------------------------

def test_bank_readers_refuse_a_changed_shard_and_name_undecodable_rows(tmp_path, run_cli):
    import pyarrow.parquet as pq

    bank = tmp_path / "b"
    write_kernel_bank(bank, KernelBankConfig(n=12, **SMALL), progress=False)
    (shard,) = sorted((bank / "data").glob("*.parquet"))
    rg = pq.ParquetFile(shard).metadata.row_group(0)
    col = next(rg.column(k) for k in range(rg.num_columns)
               if rg.column(k).path_in_schema == "clipped.list.element")
    data = bytearray(shard.read_bytes())
    data[col.data_page_offset + 2] ^= 0x40  # a page header: a raw thrift OSError before
    shard.write_bytes(bytes(data))
    for args in (["kernels", "stats", bank],
                 ["kernels", "preview", bank, "--out", tmp_path / "k.png"],
                 ["dataset", "preview", bank, "--out", tmp_path / "k.png"]):
        r = run_cli(*args)
        assert r.code == 2 and error_line(r).startswith(f"error: {shard}: sha256 "), r
    r = run_cli("kernels", "stats", bank, "--no-verify")
    line = error_line(r)
    assert r.code == 2 and line.startswith(f"error: {shard} rows 0-11: unreadable ("), line
    assert not (tmp_path / "k.png").exists()
