"""Test-set importers (``dataset import --layout ...``) and the row contract evaluation reads:
``sharp`` None for images without ground truth, ``gt_frames`` for recorded sequences,
:func:`blursynth.dataset.pair_source`."""

import functools
import json

import numpy as np
import pytest

from blursynth.dataset import (
    GT_FRAMES_PAIR_SCHEMA, PairDataset, pair_row, pair_source, verify_dataset, write_dataset,
)
from blursynth.errors import BadInputError, DatasetError

from .conftest import error_line, write_image


def _img(seed, h=32, w=32):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- the contract ---------------------------------------------------------------------------------


def _contract_rows(start, stop, fp):
    for i in range(start, stop):
        b = _img(i)
        if i == 0:  # no ground truth
            yield pair_row(index=i, blurred=b, sharp=None, psf=None, source="real", seed=0,
                           params={"ground_truth": False}, fingerprint=fp)
        else:
            frames = [_img(100 + i * 10 + k) for k in range(i + 1)]
            yield pair_row(index=i, blurred=b, sharp=frames[0], psf=None, source="real", seed=0,
                           params={"i": i}, fingerprint=fp, gt_frames=frames)


def test_rows_without_sharp_and_with_gt_frames_round_trip(tmp_path):
    write_dataset(tmp_path / "d", kind="pairs", schema=GT_FRAMES_PAIR_SCHEMA, n_items=3,
                  shard_size=2,
                  make_rows=functools.partial(_contract_rows, fp="fp"), fingerprint="fp",
                  command={"test": 1}, progress=False)
    ds = PairDataset(tmp_path / "d")
    assert ds[0]["sharp"] is None and ds[0]["gt_frames"] is None
    np.testing.assert_array_equal(ds[0]["blurred"], _img(0))
    for i in (1, 2):
        row = ds[i]
        assert len(row["gt_frames"]) == i + 1
        for k, frame in enumerate(row["gt_frames"]):
            assert frame.dtype == np.uint8
            np.testing.assert_array_equal(frame, _img(100 + i * 10 + k))
        np.testing.assert_array_equal(row["sharp"], _img(100 + i * 10))
    assert verify_dataset(tmp_path / "d")["rows"] == 3


def test_gt_frames_are_decoded_only_when_read(tmp_path, monkeypatch):
    import blursynth.sources.photos as photos

    fp = "fp"
    write_dataset(tmp_path / "c", kind="pairs", schema=GT_FRAMES_PAIR_SCHEMA, n_items=3,
                  shard_size=8, make_rows=functools.partial(_contract_rows, fp=fp),
                  fingerprint=fp, command={"test": 1}, progress=False)
    ds = PairDataset(tmp_path / "c")
    calls = []
    real = photos.decode_image
    monkeypatch.setattr(photos, "decode_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    row = ds[2]
    assert len(calls) == 2 and len(row["gt_frames"]) == 3  # blurred and sharp only
    np.testing.assert_array_equal(row["gt_frames"][-1], _img(100 + 20 + 2))
    assert len(calls) == 3


def test_null_sharp_needs_ground_truth_false():
    with pytest.raises(ValueError, match="ground_truth"):
        pair_row(index=0, blurred=_img(0), sharp=None, psf=None, source="real", seed=0, params={},
                 fingerprint="fp")
    with pytest.raises(ValueError, match="gt_frames"):
        pair_row(index=0, blurred=_img(0), sharp=_img(1), psf=None, source="real", seed=0,
                 params={},
                 fingerprint="fp", gt_frames=[_img(2, 16, 16)])


def test_verify_refuses_null_sharp_without_the_flag():
    from blursynth.dataset.schema import check_pair_row

    row = pair_row(index=0, blurred=_img(0), sharp=None, psf=None, source="real", seed=0,
                   params={"ground_truth": False}, fingerprint="fp")
    check_pair_row(row)
    row["params"] = json.dumps({"ground_truth": True})
    with pytest.raises(DatasetError, match="ground_truth"):
        check_pair_row(row)


def test_pair_source_every_kind():
    assert pair_source({"photo": "x/a.jpg", "crop": [1, 2, 8, 8]}, "trajectory") == "photo:x/a.jpg"
    assert pair_source({"photo": "x/a.jpg", "motion": "scene"}, "scene") == "photo:x/a.jpg"
    assert pair_source({"photo": "b.png", "z": [0.1]}, "bgan") == "photo:b.png"
    # Windows of one clip share it; another clip does not.
    a = pair_source({"video": "clip.mp4", "source_index": 0, "frame_start": 0}, "video")
    b = pair_source({"video": "clip.mp4", "source_index": 0, "frame_start": 40}, "video")
    assert a == b == "video:clip.mp4"
    assert pair_source({"video": "other.mp4", "source_index": 1}, "video") != a
    assert pair_source({"set": "realblur-j", "split": "test", "sequence": "scene230"}, "real") == \
        "real:realblur-j/test/scene230"
    # Older imports: the sequence folder (gopro layout) or the file (flat).
    old = {"blurred_path": "train/GOPR0372_07_00/blur/000001.png", "layout": "gopro"}
    assert pair_source(old, "real") == "real:train/GOPR0372_07_00"
    assert pair_source({"blurred_path": "blur/a.png", "layout": "flat"},
                       "real") == "real:blur/a.png"
    with pytest.raises(ValueError):
        pair_source({}, "trajectory")
    with pytest.raises(ValueError):
        pair_source({"photo": "a"}, "nope")


# --- the layouts: tiny folders as each set distributes it -----------------------------------------


def _seed(*parts):
    import zlib

    return zlib.crc32("/".join(map(str, parts)).encode()) % 1000


def _blur(img):
    import cv2

    return cv2.blur(img, (5, 1))


def _import(run_cli, root, out, *args):
    r = run_cli("dataset", "import", root, "--out", out, *args)
    return r


def _by_id(path):
    return {row["id"]: row for row in PairDataset(path)}


def _check_rebuild(path, root):
    from blursynth.pairs.real import rebuild_gt_frames, rebuild_pair

    for row in PairDataset(path):
        blurred, sharp = rebuild_pair(row, root)
        np.testing.assert_array_equal(blurred, row["blurred"])
        if row["sharp"] is None:
            assert sharp is None and row["params"]["ground_truth"] is False
        else:
            np.testing.assert_array_equal(sharp, row["sharp"])
        frames = rebuild_gt_frames(row, root)
        assert len(frames) == len(row.get("gt_frames") or [])
        for a, b in zip(frames, row.get("gt_frames") or []):
            np.testing.assert_array_equal(a, b)


@pytest.fixture
def hide(tmp_path):
    root = tmp_path / "HIDE_dataset"
    names = {"train": ["1fromGOPR0950.MP4.png", "2fromGOPR0950.MP4.png"],
             "test/test-close-ups": ["3fromGOPR1096.MP4.png"],
             "test/test-long-shot": ["4fromGOPR1102.MP4.png"]}
    for n, (folder, files) in enumerate(names.items()):
        for k, name in enumerate(files):
            sharp = _img(10 * n + k)
            write_image(root / "GT" / name, sharp)
            write_image(root / folder / name, _blur(sharp))
    return root


def test_import_hide(hide, tmp_path, run_cli):
    r = _import(run_cli, hide.parent, tmp_path / "d", "--layout",
                "hide")  # the folder holding HIDE_dataset/
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "d")
    assert sorted(rows) == ["test/close-ups/3fromGOPR1096.MP4", "test/long-shot/4fromGOPR1102.MP4",
                            "train/1fromGOPR0950.MP4", "train/2fromGOPR0950.MP4"]
    row = rows["test/close-ups/3fromGOPR1096.MP4"]
    p = row["params"]
    assert (p["set"], p["split"], p["sequence"], p["subset"]) == ("hide", "test", "GOPR1096.MP4",
                                                                  "close-ups")
    assert p["blurred_name"] == p["sharp_name"] == "3fromGOPR1096.MP4.png" and p["layout"] == "hide"
    np.testing.assert_array_equal(row["sharp"], _img(10))
    np.testing.assert_array_equal(row["blurred"], _blur(_img(10)))
    # Both training images come from one video: one source for a split by source.
    a, b = (pair_source(rows[f"train/{k}fromGOPR0950.MP4"]["params"], "real") for k in (1, 2))
    assert a == b == "real:hide/train/GOPR0950.MP4"
    _check_rebuild(tmp_path / "d", hide.parent)
    assert _import(run_cli, hide, tmp_path / "t", "--layout", "hide", "--split", "test").code == 0
    assert len(PairDataset(tmp_path / "t")) == 2
    for n, subset in enumerate(("long-shot", "test-long-shot")):
        assert _import(run_cli, hide, tmp_path / f"l{n}", "--layout", "hide", "--subset",
                       subset).code == 0
        ids = [r["id"] for r in PairDataset(tmp_path / f"l{n}")]
        assert ids == ["test/long-shot/4fromGOPR1102.MP4"]
    r = _import(run_cli, hide, tmp_path / "n", "--layout", "hide", "--subset", "near")
    assert r.code == 2 and error_line(r).endswith("found subset close-ups, long-shot).")
    r = _import(run_cli, hide, tmp_path / "v", "--layout", "hide", "--split", "val")
    assert r.code == 2 and "--split val" in error_line(r) and not (tmp_path / "v").exists()
    (hide / "GT" / "4fromGOPR1102.MP4.png").unlink()
    r = _import(run_cli, hide, tmp_path / "x", "--layout", "hide")
    assert r.code == 2 and "4fromGOPR1102.MP4.png" in error_line(r)
    assert not (tmp_path / "x").exists()


@pytest.fixture
def realblur(tmp_path):
    root = tmp_path / "RealBlur"
    lists = {}
    for variant, folder in (("J", "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"),
                            ("R", "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref")):
        for split, scenes in (("train", ["scene001"]), ("test", ["scene230", "scene231"])):
            lines = []
            for n, scene in enumerate(scenes):
                for k in (1, 2):
                    sharp = _img(_seed(variant, scene, k))
                    gt = f"{folder}/{scene}/gt/gt_{k}.png"
                    blur = f"{folder}/{scene}/blur/blur_{k}.png"
                    write_image(root / gt, sharp)
                    write_image(root / blur, _blur(sharp))
                    lines.append(f"{gt} {blur}")
            lists[(variant, split)] = root / f"RealBlur_{variant}_{split}_list.txt"
            lists[(variant, split)].write_text("\n".join(lines) + "\n")
    return root, lists


def test_import_realblur(realblur, tmp_path, run_cli):
    root, lists = realblur
    r = _import(run_cli, root, tmp_path / "both", "--layout", "realblur")
    assert r.code == 2 and "--variant" in error_line(r) and not (tmp_path / "both").exists()
    r = _import(run_cli, root, tmp_path / "j", "--layout", "realblur", "--variant", "J", "--split",
                "test")
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "j")
    assert sorted(rows) == [f"test/{s}/blur_{k}" for s in ("scene230", "scene231") for k in (1, 2)]
    p = rows["test/scene231/blur_2"]["params"]
    assert (p["set"], p["split"], p["sequence"], p["variant"], p["list"]) == \
        ("realblur-j", "test", "scene231", "J", "RealBlur_J_test_list.txt")
    assert (p["blurred_name"], p["sharp_name"]) == ("blur_2.png", "gt_2.png")
    np.testing.assert_array_equal(rows["test/scene231/blur_2"]["sharp"], _img(_seed("J", "scene231",
                                                                                    2)))
    assert pair_source(p, "real") == "real:realblur-j/test/scene231"
    _check_rebuild(tmp_path / "j", root)
    # Given as --list, from anywhere: the R variant's train list; the lines' order may be swapped.
    moved = tmp_path / "elsewhere.txt"
    lines = lists[("R", "train")].read_text().splitlines()
    moved.write_text("\n".join(" ".join(reversed(l.split())) for l in lines))
    r = _import(run_cli, root, tmp_path / "r", "--layout", "realblur", "--list", moved, "--variant",
                "R",
                "--split", "train")
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "r")
    assert sorted(rows) == ["train/scene001/blur_1", "train/scene001/blur_2"]
    assert rows["train/scene001/blur_1"]["params"]["set"] == "realblur-r"
    np.testing.assert_array_equal(rows["train/scene001/blur_1"]["sharp"],
                                  _img(_seed("R", "scene001", 1)))


def test_realblur_bad_lists(realblur, tmp_path, run_cli):
    root, lists = realblur
    r = _import(run_cli, tmp_path / "RealBlur" / "RealBlur-J_ECC_IMCORR_centroid_itensity_ref",
                tmp_path / "a",
                "--layout", "realblur")
    assert r.code == 2 and "no list file" in error_line(r)
    r = _import(run_cli, root, tmp_path / "b", "--layout", "realblur", "--list", "nope.txt")
    assert r.code == 2 and "--list nope.txt: no such file" in error_line(r)
    lists[("J", "test")].write_text(lists[("J", "test")].read_text() + "x/gt/gt_9.png "
                                                                       "x/blur/blur_9.png\n")
    r = _import(run_cli, root, tmp_path / "c", "--layout", "realblur", "--variant", "J")
    assert r.code == 2 and "line 5" in error_line(r) and "gt_9.png is missing" in error_line(r)
    assert not (tmp_path / "c").exists()
    # Sizes that differ: one line naming both files, nothing written.
    lists[("J", "test")].write_text(lists[("J", "test")].read_text().splitlines()[0] + "\n")
    gt = root / lists[("J", "test")].read_text().split()[0]
    write_image(gt, _img(0, 32, 30))
    r = _import(run_cli, root, tmp_path / "e", "--layout", "realblur", "--variant", "J", "--split",
                "test")
    assert r.code == 2 and "32x30" in error_line(r) and not (tmp_path / "e").exists()


def test_import_rsblur(tmp_path, run_cli):
    root = tmp_path / "RSBlur"
    for split, scenes in (("val", ["0001"]), ("test", ["0100", "0101"])):
        lines = []
        for scene in scenes:
            for k in range(2):
                sharp = _img(int(scene) * 10 + k)
                gt, blur = f"{scene}/{k:04d}/gt/gt_sharp.png", f"{scene}/{k:04d}/real_blur.png"
                write_image(root / gt, sharp)
                write_image(root / blur, _blur(sharp))
                lines.append(f"{gt} {blur}")
        (root / f"RSBlur_real_{split}.txt").write_text("\n".join(lines) + "\n")
    r = _import(run_cli, root, tmp_path / "d", "--layout", "rsblur")
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "d")
    assert len(rows) == 6
    row = rows["test/0101/0001/real_blur"]
    p = row["params"]
    # the scene is the first numbered folder: the pairs of one scene share a source
    assert (p["set"], p["split"], p["sequence"], p["blurred_name"], p["sharp_name"]) == \
        ("rsblur", "test", "0101", "real_blur.png", "gt_sharp.png")
    assert pair_source(p, "real") == pair_source(rows["test/0101/0000/real_blur"]["params"], "real")
    np.testing.assert_array_equal(row["sharp"], _img(1011))
    np.testing.assert_array_equal(row["blurred"], _blur(_img(1011)))
    _check_rebuild(tmp_path / "d", root)
    assert _import(run_cli, root, tmp_path / "v", "--layout", "rsblur", "--split", "val").code == 0
    assert len(PairDataset(tmp_path / "v")) == 2
    (root / "RSBlur_real_val.txt").write_text("0001/0000/gt/gt_sharp.png\n")
    r = _import(run_cli, root, tmp_path / "x", "--layout", "rsblur")
    assert r.code == 2 and "names one file" in error_line(r)


def _rsblur_one(root, gt_text=None, blur_text=None):
    sharp = _img(5)
    gt, blur = "0001/0000/gt/gt_sharp.png", "0001/0000/real_blur.png"
    write_image(root / gt, sharp)
    write_image(root / blur, _blur(sharp))
    (root / "RSBlur_real_test.txt").write_text(f"{gt_text or gt} {blur_text or blur}\n")


def test_rsblur_list_with_absolute_paths_inside_the_folder(tmp_path, run_cli):
    root = tmp_path / "r2"
    _rsblur_one(root, str(root / "0001/0000/gt/gt_sharp.png"),
                str(root / "0001/0000/real_blur.png"))
    r = _import(run_cli, root, tmp_path / "d", "--layout", "rsblur")
    assert r.code == 0, r.err
    # stored relative to the folder, as a relative list would give it
    assert set(_by_id(tmp_path / "d")) == {"test/0001/0000/real_blur"}


def test_list_paths_outside_the_folder_are_refused(tmp_path, run_cli):
    outside = tmp_path / "x"
    write_image(outside / "gt.png", _img(1))
    write_image(outside / "blur.png", _img(2))
    for k, (gt, blur) in enumerate([("../x/gt.png", "../x/blur.png"),
                                    (str(outside / "gt.png"), str(outside / "blur.png"))]):
        root = tmp_path / f"r{k}"
        _rsblur_one(root, gt, blur)
        r = _import(run_cli, root, tmp_path / f"o{k}", "--layout", "rsblur")
        assert r.code == 2 and "is outside" in error_line(r), r.err
        assert len(r.err.strip().splitlines()) == 1 and not (tmp_path / f"o{k}").exists()


@pytest.fixture
def reds(tmp_path):
    root = tmp_path / "REDS"
    for split, clips in (("train", ["000", "001"]), ("val", ["000"]), ("test", ["000"])):
        for clip in clips:
            for k in range(2):
                sharp = _img(_seed(split, clip, k))
                name = f"{k:08d}.png"
                if split != "test":  # REDS publishes no sharp frames for its test clips
                    write_image(root / split / f"{split}_sharp" / clip / name, sharp)
                write_image(root / split / f"{split}_blur" / clip / name, _blur(sharp))
                write_image(root / split / f"{split}_blur_jpeg" / clip / f"{k:08d}.jpg",
                            _blur(sharp))
    return root


def test_import_reds_with_and_without_ground_truth(reds, tmp_path, run_cli):
    r = _import(run_cli, reds, tmp_path / "d", "--layout", "reds")
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "d")
    assert len(rows) == 8
    val = rows["val/000/00000001"]
    p = val["params"]
    assert (p["set"], p["sequence"], p["blurred_folder"]) == ("reds", "000", "val_blur")
    np.testing.assert_array_equal(val["sharp"], _img(_seed("val", "000", 1)))
    test = rows["test/000/00000000"]
    assert test["sharp"] is None and test["params"]["ground_truth"] is False
    assert test["params"]["sharp_name"] is None
    assert pair_source(rows["train/001/00000000"]["params"], "real") == \
        pair_source(rows["train/001/00000001"]["params"], "real") == "real:reds/train/001"
    assert verify_dataset(tmp_path / "d")["rows"] == 8
    _check_rebuild(tmp_path / "d", reds)
    r = _import(run_cli, reds, tmp_path / "j", "--layout", "reds", "--blurred", "blur_jpeg",
                "--split", "val")
    assert r.code == 0, r.err
    assert [row["params"]["blurred_name"] for row in PairDataset(tmp_path / "j")] == \
        ["00000000.jpg", "00000001.jpg"]
    (reds / "train" / "train_sharp" / "001" / "00000001.png").unlink()
    r = _import(run_cli, reds, tmp_path / "x", "--layout", "reds")
    assert r.code == 2 and "001/00000001.png" in error_line(r)


def test_no_ground_truth_rows_through_info_preview_export(reds, tmp_path, run_cli):
    assert _import(run_cli, reds, tmp_path / "d", "--layout", "reds", "--split", "test").code == 0
    r = run_cli("dataset", "info", tmp_path / "d", "--json")
    info = json.loads(r.out)
    assert info["without_ground_truth"] == 2 and info["sets"] == ["reds"]
    r = run_cli("dataset", "preview", tmp_path / "d", "--out", tmp_path / "p.png", "--height", "32")
    assert r.code == 0, r.err
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "x/blur").iterdir()) == ["test_000_00000000.png",
                                                                       "test_000_00000001.png"]
    assert not list((tmp_path / "x/sharp").iterdir())


def test_import_lai_real_and_synthetic(tmp_path, run_cli):
    root = tmp_path / "lai"
    write_image(root / "real_dataset" / "boat.jpg",
                _img(1, 24, 40))  # any size: no partner to match
    write_image(root / "real_dataset" / "car.png", _img(2))
    for name in ("manmade_01", "manmade_010"):  # one name the prefix of another
        sharp = _img(len(name))
        write_image(root / "synthetic_dataset" / "ground_truth" / f"{name}.png", sharp)
        for sub in ("uniform", "nonuniform"):
            write_image(root / "synthetic_dataset" / sub / f"{name}_kernel_02.png", _blur(sharp))
    write_image(root / "synthetic_dataset" / "kernel" / "kernel_02.png",
                _img(9, 9, 9))  # kernels: not read
    r = _import(run_cli, root, tmp_path / "d", "--layout", "lai")
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "d")
    assert sorted(rows) == ["nonuniform/manmade_010_kernel_02", "nonuniform/manmade_01_kernel_02",
                            "real/boat",
                            "real/car", "uniform/manmade_010_kernel_02",
                            "uniform/manmade_01_kernel_02"]
    boat = rows["real/boat"]
    assert boat["sharp"] is None and boat["blurred"].shape == (24, 40, 3)
    assert boat["params"]["subset"] == "real"
    u = rows["uniform/manmade_010_kernel_02"]
    assert (u["params"]["sequence"], u["params"]["kernel"], u["params"]["sharp_name"]) == \
        ("manmade_010", "kernel_02", "manmade_010.png")
    np.testing.assert_array_equal(u["sharp"], _img(len("manmade_010")))
    assert pair_source(u["params"],
                       "real") == pair_source(rows["nonuniform/manmade_010_kernel_02"]["params"],
                                              "real")
    _check_rebuild(tmp_path / "d", root)
    assert _import(run_cli, root, tmp_path / "r", "--layout", "lai", "--subset", "real").code == 0
    assert len(PairDataset(tmp_path / "r")) == 2
    write_image(root / "synthetic_dataset" / "uniform" / "text_03_kernel_01.png", _img(5))
    r = _import(run_cli, root, tmp_path / "x", "--layout", "lai")
    assert r.code == 2 and "text_03_kernel_01.png" in error_line(r)


def test_import_kohler_keeps_every_ground_truth_frame(tmp_path, run_cli):
    root = tmp_path / "kohler"
    for image, traj, n in ((1, 1, 11), (1, 2, 3), (2, 1, 2)):
        write_image(root / "BlurryImages" / f"Blurry{image}_{traj}.png", _img(image * 100 + traj))
        for k in range(1, n + 1):
            write_image(root / "GroundTruth" / f"GroundTruth{image}_{traj}_{k}.png",
                        _img(image * 1000 + traj * 50 + k))
    r = _import(run_cli, root, tmp_path / "d", "--layout", "kohler")
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "d")
    assert sorted(rows) == ["image1/trajectory01", "image1/trajectory02", "image2/trajectory01"]
    row = rows["image1/trajectory01"]
    # Every frame, in recorded order (10 and 11 after 2, not after 1).
    assert len(row["gt_frames"]) == 11
    for k, frame in enumerate(row["gt_frames"], 1):
        np.testing.assert_array_equal(frame, _img(1000 + 50 + k))
    assert row["params"]["sharp_frame"] == 5 and row["params"]["gt_frame_count"] == 11
    np.testing.assert_array_equal(row["sharp"], row["gt_frames"][5])
    assert pair_source(row["params"], "real") == pair_source(rows["image1/trajectory02"]["params"],
                                                             "real")
    assert verify_dataset(tmp_path / "d")["rows"] == 3
    # one row per row group: random access to a row reads one sequence's frames, not 16
    import pyarrow.parquet as pq

    for shard in (tmp_path / "d").glob("**/*.parquet"):
        md = pq.ParquetFile(shard).metadata
        assert md.num_row_groups == md.num_rows
    _check_rebuild(tmp_path / "d", root)
    info = json.loads(run_cli("dataset", "info", tmp_path / "d", "--json").out)
    assert info["with_gt_frames"] == 3
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["blurred_folder"] is None and "blur_dir" not in manifest["command"]
    assert manifest["sets"] == ["kohler"] and manifest["command"]["layout"] == "kohler"
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x").code == 0
    line = json.loads((tmp_path / "x/params.jsonl").read_text().splitlines()[2])
    assert line["id"] == "image2/trajectory01" and len(line["gt_frames"]) == 2
    import cv2

    back = cv2.imread(str(tmp_path / "x" / line["gt_frames"][1]))[:, :, ::-1]
    np.testing.assert_array_equal(back, _img(2000 + 50 + 2))
    assert run_cli("dataset", "preview", tmp_path / "d", "--out", tmp_path / "p.png").code == 0
    write_image(root / "GroundTruth" / "GroundTruth2_1_3.png", _img(0, 16, 32))
    r = _import(run_cli, root, tmp_path / "s", "--layout", "kohler")
    assert r.code == 2 and "GroundTruth2_1_3.png" in error_line(r) and "16x32" in error_line(r)
    write_image(root / "BlurryImages" / "Blurry3_1.png", _img(3))
    r = _import(run_cli, root, tmp_path / "y", "--layout", "kohler")
    assert r.code == 2 and "Blurry3_1.png" in error_line(r) and not (tmp_path / "y").exists()


def _frames_4d(seed, n, h=32, w=32):
    """n frames as MATLAB keeps them (H x W x 3 x N), and the same frames as a list."""
    frames = [_img(seed + k, h, w) for k in range(n)]
    return np.stack(frames, axis=3), frames


def test_import_kohler_ground_truth_mat_files(tmp_path, run_cli):
    from scipy.io import savemat

    from blursynth.pairs.real import rebuild_gt_frames, rebuild_pair

    root = tmp_path / "kohler"
    mats = root / "groundTruthMatFiles"
    mats.mkdir(parents=True)
    for image, traj in ((1, 1), (1, 2), (2, 1)):
        write_image(root / "BlurryImages" / f"Blurry{image}_{traj}.png", _img(image * 100 + traj))
    u8, u8_frames = _frames_4d(10, 5)
    # The array's name is not fixed: the one 4-D array is read, beside other variables.
    savemat(mats / "GroundTruth1_1.mat", {"GT": u8, "info": np.arange(3.0)})
    f64, f64_frames = _frames_4d(20, 4)
    savemat(mats / "GroundTruth1_2.mat", {"frames": f64 / 255.0}, do_compression=True)
    for k in range(1, 3):  # the per-frame form still read, beside .mat files of other images
        write_image(root / "GroundTruth" / f"GroundTruth2_1_{k}.png", _img(30 + k))
    r = _import(run_cli, root, tmp_path / "d", "--layout", "kohler")
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "d")
    assert sorted(rows) == ["image1/trajectory01", "image1/trajectory02", "image2/trajectory01"]
    a, b, c = (rows[k] for k in sorted(rows))
    for row, frames in ((a, u8_frames), (b, f64_frames)):
        assert len(row["gt_frames"]) == len(frames)
        for got, want in zip(row["gt_frames"], frames):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(row["sharp"], frames[len(frames) // 2])
    p = a["params"]
    assert (p["gt_mat"], p["gt_mat_key"], p["gt_frame_count"], p["sharp_frame"]) == \
        ("groundTruthMatFiles/GroundTruth1_1.mat", "GT", 5, 2)
    assert p["sharp_path"] == p["gt_mat"] and p["sharp_name"] == "GroundTruth1_1.mat:GT"
    assert "gt_frame_paths" not in p and "converted" not in p
    assert b["params"]["gt_frame_count"] == 4 and "floats in [0, 1]" in b["params"]["converted"]
    assert c["params"]["gt_frame_paths"] == ["GroundTruth/GroundTruth2_1_1.png",
                                             "GroundTruth/GroundTruth2_1_2.png"]
    assert "gt_mat" not in c["params"] and len(c["gt_frames"]) == 2
    assert verify_dataset(tmp_path / "d")["rows"] == 3
    _check_rebuild(tmp_path / "d", root)
    blurred, sharp = rebuild_pair(a, root)
    np.testing.assert_array_equal(sharp, u8_frames[2])
    assert len(rebuild_gt_frames(b, root)) == 4
    info = json.loads(run_cli("dataset", "info", tmp_path / "d", "--json").out)
    assert info["with_gt_frames"] == 3
    # A .mat file changed since the import: one line, not a wrong frame.
    savemat(mats / "GroundTruth1_1.mat", {"GT": u8[:, :, :, :2]})
    with pytest.raises(BadInputError, match="changed since the import"):
        rebuild_pair(a, root)


def _v73(path):
    # The 128-byte header MATLAB writes before an HDF5 v7.3 file's data: version 0x0200.
    path.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116)
                     + bytes(8) + b"\x00\x02IM" + bytes(512))


@pytest.mark.parametrize("make, expect", [
    (lambda d, s: s(d / "GroundTruth1_1.mat", {"a": np.zeros((4, 4))}), "holds no 4-D array"),
    (lambda d, s: s(d / "GroundTruth1_1.mat", {"a": _frames_4d(0, 2)[0], "b": _frames_4d(0, 2)[0]}),
     "holds 2 4-D arrays (a, b)"),
    (lambda d, s: s(d / "GroundTruth1_1.mat", {"a": np.zeros((32, 32, 1, 3), np.uint8)}),
     "is 32 x 32 x 1 x 3"),
    (lambda d, s: s(d / "GroundTruth1_1.mat", {"a": _frames_4d(0, 2)[0].astype(float)}),
     "holds floats from 0 to 255"),
    (lambda d, s: s(d / "GroundTruth1_1.mat", {"a": _frames_4d(0, 2)[0].astype(np.int16)}),
     "is int16"),
    (lambda d, s: s(d / "GroundTruth1_1.mat", {"a": _frames_4d(0, 2, 16, 32)[0]}),
     "are 16x32"),
    (lambda d, s: _v73(d / "GroundTruth1_1.mat"), "v7.3 (HDF5)"),
    (lambda d, s: (d / "GroundTruth1_1.mat").write_bytes(b"not a mat file"),
     "unreadable MATLAB file"),
    (lambda d, s: (s(d / "GroundTruth1_1.mat", {"a": _frames_4d(0, 2)[0]}),
                   write_image(d / "GroundTruth1_1_1.png", _img(0))),
     "both as this .mat file and as 1 frame image"),
    (lambda d, s: (s(d / "GroundTruth1_1.mat", {"a": _frames_4d(0, 2)[0]}),
                   s(d / "x" / "GroundTruth1_1.mat", {"a": _frames_4d(0, 2)[0]})),
     "a second GroundTruth1_1.mat"),
])
def test_import_kohler_mat_refusals(tmp_path, run_cli, make, expect):
    from scipy.io import savemat

    root = tmp_path / "kohler"
    (root / "x").mkdir(parents=True)
    write_image(root / "Blurry1_1.png", _img(1))
    make(root, savemat)
    r = _import(run_cli, root, tmp_path / "d", "--layout", "kohler")
    assert r.code == 2 and expect in error_line(r), r.err
    assert "GroundTruth1_1.mat" in error_line(r) and not (tmp_path / "d").exists()


def test_import_levin_images_and_kernels(tmp_path, run_cli):
    from scipy.io import savemat

    root = tmp_path / "levin"
    root.mkdir()
    rng = np.random.default_rng(0)
    kernels = {}
    for image in (5, 6):
        x = rng.random((20, 24))
        for kernel, shape in ((1, (5, 5)), (2, (4, 6))):  # an even side is padded to an odd square
            f = rng.random(shape)
            f /= f.sum()
            kernels[(image, kernel)] = f
            y = np.clip(x + 0.01 * kernel, 0, 1)
            savemat(root / f"im{image:02d}_flit{kernel:02d}.mat", {"x": x, "y": y, "f": f})
    r = _import(run_cli, root, tmp_path / "d", "--layout", "levin")
    assert r.code == 0, r.err
    rows = _by_id(tmp_path / "d")
    assert sorted(rows) == ["im05_flit01", "im05_flit02", "im06_flit01", "im06_flit02"]
    row = rows["im06_flit02"]
    psf = row["psf"]
    assert psf.shape == (7, 7) and abs(float(psf.sum()) - 1) < 1e-6
    # The kernel's values, in place, inside the zero padding.
    np.testing.assert_allclose(psf[1:5, 0:6], kernels[(6, 2)] / kernels[(6, 2)].sum(), rtol=1e-5)
    assert psf[0].sum() == psf[5:].sum() == psf[:, 6].sum() == 0
    p = row["params"]
    assert (p["set"], p["sequence"], p["kernel"], p["blurred_name"]) == ("levin", "im06", 2,
                                                                         "im06_flit02.mat:y")
    assert row["blurred"].shape == (20, 24, 3)
    assert (row["blurred"][..., 0] == row["blurred"][..., 2]).all()
    assert "grayscale" in p["converted"]
    assert verify_dataset(tmp_path / "d")["rows"] == 4
    _check_rebuild(tmp_path / "d", root)
    savemat(root / "im07_flit01.mat", {"x": np.zeros((4, 4)), "y": np.zeros((4, 4))})
    r = _import(run_cli, root, tmp_path / "x", "--layout", "levin")
    assert r.code == 2 and "im07_flit01.mat: holds no f" in error_line(r)


def test_import_gopro_names_its_set_and_sequence(gopro, tmp_path, run_cli):
    assert _import(run_cli, gopro, tmp_path / "d").code == 0
    row = PairDataset(tmp_path / "d")[3]
    p = row["params"]
    assert (p["set"], p["split"], p["sequence"], p["blurred_name"], p["sharp_name"]) == \
        ("gopro", "train", "GOPR0374_11_01", "000001.png", "000001.png")
    assert pair_source(p, "real") == "real:gopro/train/GOPR0374_11_01"


@pytest.mark.parametrize("args, expect", [
    (("--layout", "gopro", "--list", "a.txt"), "--list is for --layout realblur and rsblur"),
    (("--layout", "hide", "--blur-dir", "x"), "--blur-dir is for --layout gopro and flat"),
    (("--layout", "kohler", "--sharp-dir", "gt"), "--sharp-dir is for --layout gopro and flat"),
    (("--layout", "hide", "--variant", "J"), "--variant J: expected J or R with --layout realblur"),
    (("--layout", "gopro", "--blurred", "blur_jpeg"), "--blurred must be one of blur, blur_gamma"),
    (("--layout", "reds", "--blurred", "blur_gamma"), "--blurred must be one of blur, blur_jpeg"),
])
def test_import_option_refusals(tmp_path, run_cli, args, expect):
    (tmp_path / "in").mkdir()
    r = _import(run_cli, tmp_path / "in", tmp_path / "d", *args)
    assert r.code == 2 and expect in error_line(r) and not (tmp_path / "d").exists()


def test_recipe_import_step_reads_lists_relative_to_the_recipe(realblur, tmp_path, run_cli):
    root, lists = realblur
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"""
[build]
seed = 0

[[steps]]
name = "rb"
run = "import"
folder = "{root.name}"
layout = "realblur"
lists = ["{root.name}/RealBlur_R_test_list.txt"]
variant = "R"
""")
    r = run_cli("build", recipe, "--out", tmp_path / "built")
    assert r.code == 0, r.err
    (ds,) = [p.parent for p in (tmp_path / "built").rglob("manifest.json")]
    rows = _by_id(ds)
    assert sorted(rows) == [f"test/{s}/blur_{k}" for s in ("scene230", "scene231") for k in (1, 2)]
    assert {row["params"]["set"] for row in rows.values()} == {"realblur-r"}


def test_import_bytes_do_not_depend_on_where_the_set_is(realblur, tmp_path, run_cli):
    import shutil

    root, lists = realblur
    copy = tmp_path / "moved" / "RB"
    shutil.copytree(root, copy)
    for n, (folder, lst) in enumerate(((root, lists[("J", "test")]),
                                       (copy, copy / "RealBlur_J_test_list.txt"))):
        assert _import(run_cli, folder, tmp_path / f"d{n}", "--layout", "realblur", "--list",
                       lst).code == 0
    m0, m1 = (json.loads((tmp_path / f"d{n}" / "manifest.json").read_text()) for n in (0, 1))
    assert m0["fingerprint"] == m1["fingerprint"]
    assert [s["sha256"] for s in m0["shards"]] == [s["sha256"] for s in m1["shards"]]


def test_a_source_replaced_by_one_of_the_same_size_is_not_taken_as_imported(tmp_path, run_cli):
    import cv2

    root = tmp_path / "flat"
    for sub in ("blur", "sharp"):
        (root / sub).mkdir(parents=True)
        cv2.imwrite(str(root / sub / "a.bmp"), _img(1))  # BMP: same size for any pixels
    r = _import(run_cli, root, tmp_path / "d", "--layout", "flat")
    assert r.code == 0, r.err
    cv2.imwrite(str(root / "blur" / "a.bmp"), _img(2))
    r = _import(run_cli, root, tmp_path / "d", "--layout", "flat")
    # the same names and sizes, other bytes: another import, not the finished one resumed
    assert r.code == 2 and "wrote" not in r.out, (r.out, r.err)
    r = _import(run_cli, root, tmp_path / "e", "--layout", "flat")
    assert r.code == 0
    np.testing.assert_array_equal(PairDataset(tmp_path / "e")[0]["blurred"], _img(2)[:, :, ::-1])


def test_rsblur_scene_of_the_distributed_layout():
    from blursynth.pairs.real_layouts import _rsblur_scene

    assert _rsblur_scene("RSBlur/0001/000022/real_blur/real_blur.png") == "RSBlur/0001"
    assert _rsblur_scene("0101/0001/real_blur.png") == "0101"


def test_hide_warns_when_two_blurred_images_share_one_ground_truth(hide, tmp_path, run_cli):
    r = _import(run_cli, hide, tmp_path / "d", "--layout", "hide")
    assert r.code == 0 and "warning" not in r.err
    name = "3fromGOPR1096.MP4.png"  # also in the long-shot folder: both take GT/<name>
    write_image(hide / "test" / "test-long-shot" / name, _blur(_img(10)))
    r = _import(run_cli, hide, tmp_path / "e", "--layout", "hide")
    assert r.code == 0 and "more than one blurred image" in r.err and name in r.err
