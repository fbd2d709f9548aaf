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
    assert r.code == 2 and "(it has neither .blursynth-export.json nor params.jsonl)" in error_line(r)
    assert (tmp_path / "half" / "blur").is_dir()


def test_export_is_refused_while_another_process_writes_the_folder(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=2)
    with held_lock(tmp_path / "x") as pid:
        r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x")
    assert r.code == 2 and f"another blursynth process (pid {pid}) is writing there" in error_line(r)
    # A folder holding only a lock is not an earlier export to protect: a plain rerun proceeds.
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x").code == 0
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        ".blursynth-export.json", ".blursynth.lock", "blur", "params.jsonl", "psf", "sharp"]


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


# -- --raw: the RAW-path rows' mosaics ---------------------------------------------------------

RAW_BLUR = ("--psf-source", "fresh", "--canvas", "7", "--length", "4", "--per-image", "2", "--crop", "20x24",
            "--pipeline", "raw", "--noise", "model", "--raw-bits", "12")


def _raw_blur_run(tmp_path, run_cli, *extra):
    import cv2
    from skimage import data

    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "rocket.png"), data.rocket()[::12, ::12, ::-1])  # 36x54
    r = run_cli("blur", tmp_path / "photos", "--out", tmp_path / "d", *RAW_BLUR, *extra)
    assert r.code == 0, r.err
    return tmp_path / "photos", tmp_path / "d"


def test_export_raw_writes_each_mosaic_and_its_metadata(tmp_path, run_cli):
    import json

    import cv2

    from blursynth.dataset import PairDataset
    from blursynth.pairs.shake import rebuild_pair

    photos, d = _raw_blur_run(tmp_path, run_cli)
    r = run_cli("dataset", "export", d, "--out", tmp_path / "npy", "--raw", "npy")
    assert r.code == 0 and "2 RAW mosaics" in r.out, r.err
    assert run_cli("dataset", "export", d, "--out", tmp_path / "png", "--raw", "png16").code == 0
    ds = PairDataset(d)
    lines = [json.loads(line) for line in (tmp_path / "npy" / "params.jsonl").read_text().splitlines()]
    for i, line in enumerate(lines):
        row = ds[i]
        raw = row["params"]["raw"]
        assert line["raw_file"] == f"raw/{line['id']}.npy"
        mosaic = np.load(tmp_path / "npy" / line["raw_file"])
        assert mosaic.dtype == np.float32 and mosaic.shape == (20, 24)
        assert np.array_equal(mosaic, rebuild_pair(row, photos, mosaic_only=True))
        assert np.allclose(mosaic * 4095, np.rint(mosaic * 4095), atol=1e-3) and mosaic.max() <= 1
        png = cv2.imread(str(tmp_path / "png" / "raw" / f"{line['id']}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16 and np.array_equal(png, np.rint(np.clip(mosaic, 0, 1) * 65535))
        for folder, white in (("npy", 1.0), ("png", 65535)):
            meta = json.loads((tmp_path / folder / "raw" / f"{line['id']}.json").read_text())
            assert (meta["bayer_pattern"], meta["white_level"], meta["black_level"], meta["bits"]) == (
                raw["bayer"], white, 0, 12)
            assert meta["white_balance_gains"] == [raw["red_gain"], 1.0, raw["blue_gain"]]
            assert meta["noise"]["shot"] == raw["shot_noise"] and meta["noise"]["read"] == raw["read_noise"]
            assert np.allclose(np.array(meta["rgb_to_cam"]) @ np.array(meta["cam_to_rgb"]), np.eye(3))
    # Without --raw nothing changes: no raw/ folder, no raw_file.
    assert run_cli("dataset", "export", d, "--out", tmp_path / "plain").code == 0
    assert not (tmp_path / "plain" / "raw").exists()
    assert "raw_file" not in (tmp_path / "plain" / "params.jsonl").read_text()


def test_raw_sidecar_states_the_highlight_knee_and_rule():
    """The sidecar's knee and rule, applied as written to its own gains and matrix, give the
    unprocessed colours the mosaic was sampled from."""
    from blursynth.dataset.raw_export import raw_metadata
    from blursynth.ops.raw import draw_raw_params, unprocess

    photo = np.random.default_rng(1).uniform(0.6, 1.0, (8, 8, 3)).astype(np.float32)
    for highlights in ("preserve", "off"):
        raw = draw_raw_params(np.random.default_rng(3), noise="off", highlights=highlights)
        meta = raw_metadata({"raw": raw, "crf": "srgb"}, "npy", (8, 8))
        g = np.array(meta["white_balance_gains"]) * meta["digital_gain"]
        cam = photo.astype(np.float64) @ np.array(meta["rgb_to_cam"]).T
        if highlights == "preserve":
            knee = meta["highlight_knee"]
            assert knee == 0.9 and "docs/algorithms.md" in meta["highlight_rule"]
            m = np.clip((cam.mean(axis=2, keepdims=True) - knee) / (1 - knee), 0, 1) ** 2
            assert (m > 0).any()  # some pixels are above the knee
            factor = np.maximum(m + (1 - m) / g, 1 / g)
        else:
            assert meta["highlight_knee"] is None and meta["highlight_rule"].startswith("none")
            factor = 1 / g
        np.testing.assert_allclose(cam * factor, unprocess(photo, raw), rtol=1e-5, atol=1e-6)


def test_export_raw_finds_moved_sources_and_refuses_missing_or_changed_ones(tmp_path, run_cli):
    import cv2

    photos, d = _raw_blur_run(tmp_path, run_cli)
    moved = tmp_path / "elsewhere"
    photos.rename(moved)
    r = run_cli("dataset", "export", d, "--out", tmp_path / "x", "--raw", "npy")
    assert r.code == 2 and "is not reachable" in error_line(r) and "--sources PHOTOS" in error_line(r)
    assert not (tmp_path / "x").exists()
    assert run_cli("dataset", "export", d, "--out", tmp_path / "x", "--raw", "npy", "--sources", moved).code == 0
    moved.rename(photos)
    img = cv2.imread(str(photos / "rocket.png"))
    cv2.imwrite(str(photos / "rocket.png"), 255 - img)  # another photo under the same name
    r = run_cli("dataset", "export", d, "--out", tmp_path / "z", "--raw", "npy", "--sources", photos)
    assert r.code == 2 and "does not develop into the stored blurred image" in error_line(r)
    assert not (tmp_path / "z").exists()


def test_export_raw_refuses_rgb_only_datasets_and_raw_options_without_raw(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=2)
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--raw", "png16")
    assert r.code == 2 and "was made on the RAW path" in error_line(r) and not (tmp_path / "x").exists()
    for option in ("--sources", "--model"):
        r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", option, tmp_path)
        assert r.code == 2 and f"{option} says where a RAW-path run's inputs are" in error_line(r)
    assert not (tmp_path / "x").exists()
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--raw", "tiff")
    assert r.code == 2 and not (tmp_path / "x").exists()


def test_export_raw_refuses_a_model_no_row_reruns(tmp_path, run_cli):
    photos, d = _raw_blur_run(tmp_path, run_cli)  # trajectory rows only: no learned blur to rerun
    r = run_cli("dataset", "export", d, "--out", tmp_path / "x", "--raw", "npy", "--model", tmp_path)
    line = error_line(r)
    assert r.code == 2 and f"--model {tmp_path}: no RAW-path row" in line and "leave --model out" in line
    assert not (tmp_path / "x").exists()


def test_export_raw_of_frames_average_rows(tmp_path, run_cli):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.frames import rebuild_pair

    from .conftest import random_frames, write_clip

    frames = [np.ascontiguousarray(np.roll(random_frames(1, (16, 20, 3), seed=5)[0], i, axis=1))
              for i in range(10)]
    write_clip(tmp_path / "c.mkv", frames)
    r = run_cli("frames-average", tmp_path / "c.mkv", "--window", "4", "--cut-threshold", "1", "--out",
                tmp_path / "d", "--pipeline", "raw", "--noise", "0.001,0.002")
    assert r.code == 0, r.err
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--raw", "npy",
                   "--sources", tmp_path / "c.mkv").code == 0
    ds = PairDataset(tmp_path / "d")
    for i in range(len(ds)):
        mosaic = np.load(tmp_path / "x" / "raw" / f"{ds[i]['id']}.npy")
        assert np.array_equal(mosaic, rebuild_pair(ds[i], tmp_path / "c.mkv", mosaic_only=True))


def _mixed_rows(start, stop, raw_ds, rgb_ds, fp):
    from blursynth.dataset import PairDataset
    from blursynth.dataset.schema import pair_row

    raw, rgb = PairDataset(raw_ds), PairDataset(rgb_ds)
    for i in range(start, stop):
        row = raw[i] if i < len(raw) else rgb[i - len(raw)]
        yield pair_row(index=i, blurred=row["blurred"], sharp=row["sharp"], psf=row["psf"], source=row["source"],
                       seed=row["seed"], params=row["params"], fingerprint=fp)


def test_export_raw_skips_rgb_rows_with_a_count(tmp_path, run_cli):
    """A dataset holding rows of both paths (as a merge would): the RAW rows get mosaics, the RGB
    rows are exported without one and counted."""
    import functools
    import json

    from blursynth.dataset.schema import PAIR_SCHEMA
    from blursynth.dataset.writer import write_dataset

    photos, raw_ds = _raw_blur_run(tmp_path, run_cli)
    assert run_cli("blur", photos, "--out", tmp_path / "rgb", *RAW_BLUR[:10]).code == 0  # no --pipeline raw
    write_dataset(tmp_path / "mixed", kind="pairs", schema=PAIR_SCHEMA, n_items=4, shard_size=4,
                  make_rows=functools.partial(_mixed_rows, raw_ds=raw_ds, rgb_ds=tmp_path / "rgb",
                                              fp="mixed"),
                  fingerprint="mixed", command={"photos": str(photos)}, progress=False)
    r = run_cli("dataset", "export", tmp_path / "mixed", "--out", tmp_path / "x", "--raw", "png16")
    assert r.code == 0, r.err
    assert "exported 4 pairs" in r.out and "2 RAW mosaics" in r.out
    assert "2 row(s) made on the RGB path have no RAW mosaic" in r.err
    lines = [json.loads(line) for line in (tmp_path / "x" / "params.jsonl").read_text().splitlines()]
    assert ["raw_file" in line for line in lines] == [True, True, False, False]
    assert sorted(p.name for p in (tmp_path / "x" / "raw").iterdir()) == [
        "000000000.json", "000000000.png", "000000001.json", "000000001.png"]
