"""dataset export --layout gopro|basicsr|deblurganv2, --splits by source, --format jpeg: each
layout read back the way its own trainer reads it."""

import functools
import glob
import json
import os

import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.dataset import PairDataset
from blursynth.dataset.schema import PAIR_SCHEMA, SCENE_PAIR_SCHEMA, pair_row
from blursynth.dataset.writer import write_dataset
from blursynth.sources.photos import decode_image

from .conftest import error_line

PHOTOS = 8  # three pairs (crops) of each


def _rows(start, stop, fp, scene=False, no_truth=(), unflagged=(), photo=lambda i: f"dir/p{i // 3}.png"):
    for i in range(start, stop):
        rng = sample_rng(7, i)
        h, w = (12, 16) if i % 2 else (10, 14)
        sharp = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        blurred = (sharp // 2 + 20).astype(np.uint8)
        params = {"photo": photo(i), "crop": [0, 0, h, w]}
        extra = {}
        if scene:
            extra = {"motion_mask": (rng.random((h, w)) < 0.3).astype(np.uint8) * 255,
                     "psf_field": np.full((2, 2, 3, 3), 1 / 9, np.float32)}
        if i in no_truth:
            sharp, params = None, {**params, "ground_truth": False}
        if i in unflagged:  # no sharp image, and params that do not say so
            sharp, params = None, {**params, "ground_truth": False}
        row = pair_row(index=i, blurred=blurred, sharp=sharp, psf=np.full((3, 3), 1 / 9, np.float32) if i % 2
                       else None, source="trajectory", seed=7, params=params, fingerprint=fp, **extra)
        if i in unflagged:
            row["params"] = json.dumps({k: v for k, v in params.items() if k != "ground_truth"})
        yield row


def _dataset(path, n=3 * PHOTOS, **kw):
    write_dataset(path, kind="pairs", schema=SCENE_PAIR_SCHEMA if kw.get("scene") else PAIR_SCHEMA,
                  n_items=n, shard_size=5, make_rows=functools.partial(_rows, fp="lay", **kw),
                  fingerprint="lay", command={"test": "layouts"}, progress=False)
    return PairDataset(path)


def _by_id(ds):
    return {ds[i]["id"]: ds[i] for i in range(len(ds))}


def _lines(out):
    return [json.loads(line) for line in (out / "params.jsonl").read_text().splitlines()]


SPLITS = "train=0.5,val=0.25,test=0.25"


def test_gopro_layout_reads_back_through_dataset_import(tmp_path, run_cli):
    ds = _dataset(tmp_path / "d")
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "g", "--layout", "gopro",
                "--splits", SPLITS)
    assert r.code == 0, r.err
    lines = _lines(tmp_path / "g")
    assert len(lines) == len(ds) and f"exported {len(ds)} pairs" in r.out
    # a photo's pairs never straddle splits, and each photo is one sequence folder
    by_photo = {}
    for line in lines:
        by_photo.setdefault(line["params"]["photo"], set()).add(line["split"])
        photo = line["params"]["photo"][4:-4]
        assert line["blurred"] == f"{line['split']}/dir_{photo}_png/blur/{line['id']}.png"
    assert all(len(s) == 1 for s in by_photo.values()) and len(by_photo) == PHOTOS
    assert {"train", "val", "test"} <= {next(iter(s)) for s in by_photo.values()}
    odd = next(line for line in lines if int(line["id"]) % 2)
    folder = (tmp_path / "g" / odd["blurred"]).parent.parent
    np.testing.assert_allclose(np.load(folder / "psf" / f"{odd['id']}.npy"), np.full((3, 3), 1 / 9), rtol=1e-6)

    r = run_cli("dataset", "import", tmp_path / "g", "--layout", "gopro", "--out", tmp_path / "back")
    assert r.code == 0, r.err
    # The images come back; what the dataset recorded of their blur does not, and the import says so.
    assert f"warning: {tmp_path / 'g'} is an export of a blursynth dataset: its pairs are imported as a real set's, " \
           "without their recorded blur" in r.err
    back, orig = PairDataset(tmp_path / "back"), _by_id(ds)
    assert len(back) == len(ds)
    split_of = {line["id"]: line["split"] for line in lines}
    for i in range(len(back)):
        row = back[i]
        pid = row["params"]["blurred_name"][:-4]
        np.testing.assert_array_equal(row["blurred"], orig[pid]["blurred"])
        np.testing.assert_array_equal(row["sharp"], orig[pid]["sharp"])
        assert row["params"]["sequence"] == "dir_p{}_png".format(int(pid) // 3)
        assert row["params"]["split"] == (split_of[pid] if split_of[pid] != "val" else None)


def _basicsr_pairs(meta_info, dataroot_lq, dataroot_gt, filename_tmpl="{}"):
    """BasicSR's paired_paths_from_meta_info_file, as its docs describe it: the first token of
    each line names the gt file; the lq file is the template applied to its base name."""
    pairs = []
    for line in open(meta_info):
        gt_name = line.split(" ")[0]
        base, ext = os.path.splitext(os.path.basename(gt_name))
        pairs.append((os.path.join(dataroot_lq, filename_tmpl.format(base) + ext),
                      os.path.join(dataroot_gt, gt_name)))
    return pairs


def test_basicsr_layout_reads_back_by_its_meta_info_file(tmp_path, run_cli):
    yaml = pytest.importorskip("yaml")
    ds = _dataset(tmp_path / "d")
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "b", "--layout", "basicsr",
                "--splits", "train=0.75,val=0.25")
    assert r.code == 0, r.err
    opts = yaml.safe_load((tmp_path / "b" / "basicsr.yml").read_text())["datasets"]
    assert sorted(opts) == ["train", "val"]
    orig, seen = _by_id(ds), []
    for split, opt in opts.items():
        assert opt["type"] == "PairedImageDataset" and opt["io_backend"] == {"type": "disk"}
        assert opt["dataroot_gt"] == str((tmp_path / "b" / split / "gt").resolve())
        shapes = [line.split(" ", 1)[1].strip() for line in open(opt["meta_info_file"])]
        for (lq, gt), shape in zip(_basicsr_pairs(opt["meta_info_file"], opt["dataroot_lq"], opt["dataroot_gt"],
                                                  opt["filename_tmpl"]), shapes):
            pid = os.path.basename(gt)[:-4]
            blurred, sharp = (decode_image(open(p, "rb").read()) for p in (lq, gt))
            np.testing.assert_array_equal(blurred, orig[pid]["blurred"])
            np.testing.assert_array_equal(sharp, orig[pid]["sharp"])
            assert shape == "({},{},3)".format(*sharp.shape[:2])
            seen.append(pid)
    assert sorted(seen) == sorted(orig)


def test_deblurganv2_layout_reads_back_by_sorted_globs_as_jpeg(tmp_path, run_cli):
    yaml = pytest.importorskip("yaml")
    from blursynth.ops.degrade import jpeg_roundtrip

    ds = _dataset(tmp_path / "d")
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "v", "--layout", "deblurganv2",
                "--splits", SPLITS, "--format", "jpeg", "--jpeg-quality", "90")
    assert r.code == 0, r.err
    config = yaml.safe_load((tmp_path / "v" / "deblurganv2.yaml").read_text())
    orig, seen = _by_id(ds), []
    for split, keys in config.items():
        assert keys["bounds"] == [0, 1]
        files_a, files_b = (sorted(glob.glob(keys[k], recursive=True)) for k in ("files_a", "files_b"))
        assert len(files_a) == len(files_b) > 0
        listed = [(tmp_path / "v" / split / f"files_{k}.txt").read_text().split() for k in "ab"]
        assert sorted(listed[0]) == [os.path.relpath(f, tmp_path / "v") for f in files_a]
        for a, b in zip(files_a, files_b):
            assert os.path.basename(a) == os.path.basename(b) and a.endswith(".jpg")
            pid = os.path.basename(a)[:-4]
            np.testing.assert_array_equal(decode_image(open(a, "rb").read()),
                                          jpeg_roundtrip(orig[pid]["blurred"], 90))
            np.testing.assert_array_equal(decode_image(open(b, "rb").read()),
                                          jpeg_roundtrip(orig[pid]["sharp"], 90))
            seen.append(pid)
    assert sorted(seen) == sorted(orig)


def test_val_split_is_what_train_holds_out_and_splits_follow_their_fractions(tmp_path, run_cli):
    from blursynth.dataset.export_layouts import assign_splits
    from blursynth.dataset.split import split_indices, split_keys

    ds = _dataset(tmp_path / "d")
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--splits", SPLITS).code == 0
    lines = _lines(tmp_path / "x")  # flat with splits: <split>/blur|sharp|psf
    _, held = split_indices(split_keys(ds, "source"), 0.25)
    assert sorted(int(line["id"]) for line in lines if line["split"] == "val") == held.tolist()
    for line in lines:
        assert (tmp_path / "x" / line["split"] / "blur" / line["file"]).is_file()
    keys = [f"photo:{i}" for i in range(4000)]
    got = assign_splits(keys, {"train": 0.7, "val": 0.1, "test": 0.2})
    for name, f in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(got.count(name) / len(keys) - f) < 0.03
    # two sources: val takes one (train's fallback), train keeps the other, test stays empty
    got = assign_splits(["a", "b", "a"], {"train": 0.9, "val": 0.05, "test": 0.05})
    assert set(got) == {"train", "val"} and got[0] == got[2]


def test_masks_and_psfs_sit_beside_the_images(tmp_path, run_cli):
    ds = _dataset(tmp_path / "d", n=4, scene=True)
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "g", "--layout", "gopro").code == 0
    for line in _lines(tmp_path / "g"):
        assert line["split"] == "train"  # no --splits: one split
        folder = (tmp_path / "g" / line["blurred"]).parent.parent
        mask = decode_image((folder / "masks" / f"{line['id']}.png").read_bytes())[:, :, 0]
        np.testing.assert_array_equal(mask, _by_id(ds)[line["id"]]["motion_mask"])
        assert np.load(folder / "psf" / f"{line['id']}_field.npy").shape == (2, 2, 3, 3)
    # --split heldout names its one folder val; an earlier export is replaced with --overwrite
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "g", "--layout", "gopro", "--split",
                "heldout", "--val-fraction", "0.3", "--overwrite")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "g").iterdir() if p.name != ".blursynth.lock") == [
        ".blursynth-export.json", "params.jsonl", "val"]


@pytest.mark.parametrize("theirs", ["train/notes.txt", "val/a.png", "basicsr.yml"])
def test_overwrite_never_deletes_a_users_split_folder_beside_a_params_jsonl(tmp_path, run_cli, theirs):
    # params.jsonl is a common name: only an export's own marker vouches for split folders and configs
    _dataset(tmp_path / "d", n=3)
    user = tmp_path / "u"
    (user / theirs).parent.mkdir(parents=True, exist_ok=True)
    (user / theirs).write_text("precious")
    (user / "params.jsonl").write_text('{"note": "my own"}\n')
    before = sorted(str(p.relative_to(user)) for p in user.rglob("*"))
    for layout in ("flat", "gopro"):
        r = run_cli("dataset", "export", tmp_path / "d", "--out", user, "--layout", layout, "--overwrite")
        assert r.code == 2 and "not an earlier export" in error_line(r) and theirs.split("/")[0] in error_line(r)
        assert ".blursynth-export.json" in error_line(r) and "train/, basicsr.yml" in error_line(r)
    assert sorted(str(p.relative_to(user)) for p in user.rglob("*")) == before
    assert (user / theirs).read_text() == "precious"
    # nor does the clean-up of a killed export's folder (same name pattern) remove such a folder
    (tmp_path / ".x.tmp55" / "train").mkdir(parents=True)
    (tmp_path / ".x.tmp55" / "train" / "notes.txt").write_text("keep")
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--layout", "gopro").code == 0
    assert (tmp_path / ".x.tmp55" / "train" / "notes.txt").read_text() == "keep"
    # an export, marked, is replaced by another layout's
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--layout", "basicsr", "--overwrite")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "x" / ".blursynth-export.json").read_text())["layout"] == "basicsr"


def test_gopro_sequences_of_sources_with_one_folder_name_stay_apart(tmp_path, run_cli):
    from blursynth.dataset.split import split_keys

    # photo:a/b.png and photo:a_b.png would both be a_b_png
    _dataset(tmp_path / "d", n=6, photo=lambda i: "a/b.png" if i < 3 else "a_b.png")
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "g", "--layout", "gopro").code == 0
    seqs = sorted(p.name for p in (tmp_path / "g" / "train").iterdir())
    assert len(seqs) == 2 and all(s.startswith("a_b_png-") for s in seqs)
    assert [len(list((tmp_path / "g" / "train" / s / "blur").iterdir())) for s in seqs] == [3, 3]
    r = run_cli("dataset", "import", tmp_path / "g", "--layout", "gopro", "--out", tmp_path / "back")
    assert r.code == 0, r.err
    assert len(set(split_keys(PairDataset(tmp_path / "back"), "source"))) == 2
    # one source keeps its plain name
    _dataset(tmp_path / "one", n=3, photo=lambda i: "a/b.png")
    assert run_cli("dataset", "export", tmp_path / "one", "--out", tmp_path / "g1", "--layout", "gopro").code == 0
    assert [p.name for p in (tmp_path / "g1" / "train").iterdir()] == ["a_b_png"]


def test_a_split_no_source_fell_in_is_named(tmp_path, run_cli):
    _dataset(tmp_path / "d", n=6)  # two photos: val takes one, test or train the other
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--layout", "gopro", "--splits",
                SPLITS)
    assert r.code == 0 and "sources to split, each on one side" in r.err
    written = {line["split"] for line in _lines(tmp_path / "x")}
    assert len(written) == 2 and f"no pair fell in {({'train', 'val', 'test'} - written).pop()} (2 sources" in r.err


def test_a_coarse_split_is_noted(tmp_path, run_cli):
    _dataset(tmp_path / "d", n=12)  # four photos, each on one side, for 90/5/5
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--layout", "gopro", "--splits",
                "train=0.9,val=0.05,test=0.05")
    assert r.code == 0, r.err
    counts = {}
    for line in _lines(tmp_path / "x"):
        counts[line["split"]] = counts.get(line["split"], 0) + 1
    # val always gets a photo (train --val-fraction's fallback), so train has at most 75%
    share = counts["train"] / 12
    assert counts["val"] >= 3 and share <= 0.75
    assert f"note: the split is coarse: train {share:.0%} (asked 90%)" in r.err
    assert "4 sources to split, each on one side; add sources, or --split-by pair" in r.err


@pytest.mark.parametrize("args, message", [
    (("--layout", "coco"), "Invalid value for '--layout'"),
    (("--splits", "train=0.9,val=0.2"), "the fractions sum to 1.1; they must sum to 1"),
    (("--splits", "train=0.9,holdout=0.1"), "unknown split 'holdout'"),
    (("--splits", "train=0.9,val"), "'val' is not NAME=FRACTION"),
    (("--splits", "train=1", "--split", "heldout"), "give one of them"),
    (("--format", "webp"), "Invalid value for '--format'"),
    (("--png", "--format", "jpeg"), "--png and --format jpeg disagree"),
    # options that only another option makes count are refused, not ignored
    (("--jpeg-quality", "80"), "--jpeg-quality applies only with --format jpeg"),
    (("--split-by", "pair"), "--split-by applies only with --split or --splits"),
    (("--splits", SPLITS, "--val-fraction", "0.2"), "--val-fraction applies only with --split train|heldout"),
])
def test_bad_layout_splits_and_format_are_one_line_and_write_nothing(tmp_path, run_cli, args, message):
    _dataset(tmp_path / "d", n=3)
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", *args)
    assert r.code == 2 and message in error_line(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_layouts_that_pair_by_name_refuse_rows_without_ground_truth(tmp_path, run_cli):
    _dataset(tmp_path / "d", n=4, no_truth=(2,))
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--layout", "basicsr")
    assert r.code == 2 and "1 of the pairs to export have no sharp image" in error_line(r)
    assert "--layout flat" in error_line(r) and not (tmp_path / "x").exists()
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x").code == 0  # flat writes them


@pytest.mark.parametrize("layout", ["deblurganv2", "gopro"])
def test_rows_without_a_sharp_image_are_refused_whatever_their_params_say(tmp_path, run_cli, layout):
    # sorted globs would pair every later blurred image with the wrong sharp one
    _dataset(tmp_path / "d", n=4, unflagged=(1,))
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--layout", layout)
    assert r.code == 2 and "1 of the pairs to export have no sharp image" in error_line(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_a_failed_export_leaves_nothing_half_written(tmp_path, run_cli, monkeypatch):
    import blursynth.ops.degrade as degrade

    _dataset(tmp_path / "d", n=6)
    calls = []

    def failing(image, quality):
        calls.append(1)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return real(image, quality)

    real = degrade.jpeg_bytes
    monkeypatch.setattr(degrade, "jpeg_bytes", failing)
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--layout", "deblurganv2",
                "--format", "jpeg")
    assert r.code != 0 and len(calls) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no out, no temporary folder
    monkeypatch.setattr(degrade, "jpeg_bytes", real)
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--layout", "deblurganv2",
                "--format", "jpeg")
    assert r.code == 0 and len(_lines(tmp_path / "x")) == 6


def test_a_split_given_half_of_its_fraction_is_coarse_too():
    from blursynth.commands.dataset import coarse_shares

    assert coarse_shares({"train": 21, "val": 3, "test": 6}, {"train": 0.6, "val": 0.2, "test": 0.2}) == \
        ["val 10% (asked 20%)"]
    assert coarse_shares({"train": 8, "val": 4, "test": 4}, {"train": 0.9, "val": 0.05, "test": 0.05}) == \
        ["train 50% (asked 90%)", "val 25% (asked 5%)", "test 25% (asked 5%)"]
    assert coarse_shares({"train": 900, "val": 52, "test": 48}, {"train": 0.9, "val": 0.05, "test": 0.05}) == []


def test_a_flat_export_with_splits_is_imported_a_split_at_a_time(tmp_path, run_cli):
    _dataset(tmp_path / "d", n=12)
    assert run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--splits", SPLITS).code == 0
    r = run_cli("dataset", "import", tmp_path / "x", "--layout", "flat", "--out", tmp_path / "i")
    assert r.code == 2 and not (tmp_path / "i").exists()
    splits = sorted(p.name for p in (tmp_path / "x").iterdir() if (p / "blur").is_dir())
    assert f"{', '.join(f'{n}/' for n in splits)} in it hold them" in error_line(r)
    r = run_cli("dataset", "import", tmp_path / "x" / splits[0], "--layout", "flat", "--out", tmp_path / "i")
    assert r.code == 0, r.err
