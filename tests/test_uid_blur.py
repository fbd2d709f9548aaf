"""Transferred-blur pairs (pairs/uid.py, ``uid blur``) and the face crops (sources/faces.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import error_line, two_photos


@pytest.fixture
def uid_model(tmp_path):
    """An untrained tiny UID model folder (its checkpoint as ``uid train`` writes one)."""
    import torch

    from blursynth.pairs import uid
    from blursynth.uid.model import CONFIGS, MODEL_FORMAT, MODEL_VERSION, build_uid

    nets = build_uid(CONFIGS["tiny"], seed=0)
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save({"format": MODEL_FORMAT, "version": MODEL_VERSION, "step": 3,
                "config": CONFIGS["tiny"].to_dict(), "nets": nets.state_dict()}, folder / "checkpoint.pt")
    uid._cached_nets.cache_clear()
    uid._cached_references.cache_clear()
    yield folder
    uid._cached_nets.cache_clear()
    uid._cached_references.cache_clear()


def _blurry(folder, n=3):
    """``n`` blurred-looking images (box-filtered noise, different sizes) in ``folder``."""
    import cv2

    from blursynth.sources.photos import save_rgb8

    folder.mkdir()
    rng = np.random.default_rng(5)
    for k in range(n):
        img = rng.integers(0, 256, (20 + 8 * k, 24 + 4 * k, 3), dtype=np.uint8)
        save_rgb8(folder / f"r{k}.png", cv2.blur(img, (5, 1)))
    return folder


def test_codes_are_keyed_by_seed_and_index():
    from blursynth.pairs.uid import centre_box, prior_code, reference_index

    assert np.array_equal(prior_code(1, 4, 8), prior_code(1, 4, 8))
    assert not np.array_equal(prior_code(1, 4, 8), prior_code(1, 5, 8))
    picks = {reference_index(0, i, 5) for i in range(40)}
    assert picks == set(range(5))  # every reference is used
    assert centre_box(10, 40, 16) == [0, 12, 10, 28]


def test_prior_rows_record_their_code_and_rebuild(uid_model, tmp_path):
    from blursynth.dataset import PairDataset, pair_source
    from blursynth.pairs.uid import UIDBlurSettings, prior_code, rebuild_pair, uid_blur

    photos = two_photos(tmp_path / "photos")
    m = uid_blur(UIDBlurSettings(str(photos), str(uid_model), per_image=2, seed=3, device="cpu"),
                 tmp_path / "pairs", progress=False)
    assert m["num_rows"] == 4 and m["command"]["code_source"] == "prior"
    ds = PairDataset(tmp_path / "pairs")
    for i in range(len(ds)):
        row = ds[i]
        p = row["params"]
        assert row["source"] == "uid" and p["code_source"] == "prior" and p["model_step"] == 3
        assert p["photo"] == ["a.png", "b.png"][i // 2] and p["variant"] == i % 2
        assert np.array_equal(np.float32(p["blur_code"]), prior_code(3, row["index"], 4))
        assert pair_source(p, "uid") == f"photo:{p['photo']}"
        blurred, sharp = rebuild_pair(row, photos, model=uid_model)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
    assert not np.array_equal(ds[0]["blurred"], ds[1]["blurred"])  # two codes, two blurs


def test_blur_from_records_the_reference_and_bytes_do_not_depend_on_workers(uid_model, tmp_path, run_cli):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.uid import centre_box, encode_code, load_model, rebuild_pair
    from blursynth.sources.photos import load_rgb8

    photos, refs = two_photos(tmp_path / "photos"), _blurry(tmp_path / "refs")
    args = ("uid", "blur", photos, "--model", uid_model, "--blur-from", refs, "--per-image", 3,
            "--reference-side", 24, "--device", "cpu")
    assert run_cli(*args, "--out", tmp_path / "w1").code == 0
    r = run_cli(*args, "--out", tmp_path / "w2", "--workers", 2)
    assert r.code == 0, r.err
    one, two = PairDataset(tmp_path / "w1"), PairDataset(tmp_path / "w2")
    nets, _ = load_model(uid_model, engine="onnxruntime")  # the CPU's engine, auto's choice
    for i in range(len(one)):
        a, b = one[i], two[i]
        assert a["blurred"].tobytes() == b["blurred"].tobytes() and a["params"] == b["params"]
        p = a["params"]
        assert p["engine"] == "onnxruntime"
        assert p["code_source"] == "reference" and set(p["reference"]) == {"file"}
        ref = load_rgb8(refs / p["reference"]["file"])[0]
        assert p["reference_box"] == centre_box(*ref.shape[:2], 24)
        y0, x0, y1, x1 = p["reference_box"]
        assert np.array_equal(np.float32(p["blur_code"]), encode_code(nets, ref[y0:y1, x0:x1]))
        blurred, _ = rebuild_pair(a, photos, model=uid_model)
        assert np.array_equal(blurred, a["blurred"])
    assert len({json.dumps(one[i]["params"]["reference"]) for i in range(len(one))}) > 1


def test_fingerprint_follows_the_references_not_their_place(uid_model, tmp_path):
    import shutil

    from blursynth.pairs.uid import UIDBlurSettings, uid_blur

    photos, refs = two_photos(tmp_path / "photos"), _blurry(tmp_path / "refs")
    shutil.copytree(refs, tmp_path / "moved")

    def fingerprint(blur_from, out):
        s = UIDBlurSettings(str(photos), str(uid_model), blur_from=str(blur_from), device="cpu")
        return uid_blur(s, tmp_path / out, progress=False)["fingerprint"]

    here = fingerprint(refs, "a")
    assert fingerprint(tmp_path / "moved", "b") == here
    (tmp_path / "moved" / "r0.png").rename(tmp_path / "moved" / "r9.png")
    assert fingerprint(tmp_path / "moved", "c") != here


def test_blur_from_a_pair_dataset_names_the_pair(uid_model, tmp_path, tiny_pairs_dataset):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.uid import UIDBlurSettings, uid_blur

    data = tiny_pairs_dataset(n=4, size=(24, 32))
    ids = [PairDataset(data)[i]["id"] for i in range(4)]
    uid_blur(UIDBlurSettings(str(two_photos(tmp_path / "photos")), str(uid_model), blur_from=str(data),
                             device="cpu"), tmp_path / "pairs", progress=False)
    row = PairDataset(tmp_path / "pairs")[0]
    assert row["params"]["reference"]["pair"] in ids


def _stub_checkpoint(path, fmt):
    import torch

    path.mkdir()
    torch.save({"format": fmt, "version": 1}, path / "checkpoint.pt")
    return path


@pytest.mark.parametrize("case, match", [
    ("both", "--blur-prior draws codes from N(0, I) and --blur-from"),
    ("no model", "no UID model here"),
    ("bgan model", "is a BGAN model, not a UID model"),
    ("refs are photos", "holds only the sharp PHOTOS themselves"),
    ("small ref", "smaller than the blur encoder's 16 px"),
    ("no refs", "no such file or directory"),
    ("empty refs", "no images found"),
    ("no photos", "no photos found"),
    ("per image", "--per-image"),
])
def test_bad_input_is_one_line_and_writes_nothing(uid_model, tmp_path, run_cli, case, match):
    from blursynth.sources.photos import save_rgb8

    photos = two_photos(tmp_path / "photos")
    model, extra = uid_model, []
    if case == "both":
        extra = ["--blur-prior", "--blur-from", _blurry(tmp_path / "refs")]
    elif case == "no model":
        model = tmp_path / "nothing"
    elif case == "bgan model":
        model = _stub_checkpoint(tmp_path / "bgan", "blursynth-bgan")
    elif case == "refs are photos":
        extra = ["--blur-from", photos]
    elif case == "small ref":
        refs = _blurry(tmp_path / "refs")
        save_rgb8(refs / "tiny.png", np.zeros((12, 40, 3), np.uint8))
        extra = ["--blur-from", refs]
    elif case == "no refs":
        extra = ["--blur-from", tmp_path / "missing"]
    elif case == "empty refs":
        (tmp_path / "none").mkdir()
        extra = ["--blur-from", tmp_path / "none"]
    elif case == "no photos":
        (tmp_path / "empty").mkdir()
        photos = tmp_path / "empty"
    elif case == "per image":
        extra = ["--per-image", 0]
    r = run_cli("uid", "blur", photos, "--model", model, "--out", tmp_path / "out", "--device", "cpu", *extra)
    assert r.code == 2, r
    assert match in error_line(r)
    assert not (tmp_path / "out").exists()


# --- face crops -----------------------------------------------------------------------------------


def test_face_crops_are_written_exactly_and_the_folder_follows_the_selection(tmp_path):
    from skimage import data

    from blursynth.sources.faces import FaceCropSettings, write_face_crops
    from blursynth.sources.photos import load_rgb8

    out = tmp_path / "faces"
    s = write_face_crops(out, FaceCropSettings(first=10, count=3, size=25))
    assert s == {"faces": 3, "written": 3, "size": 25}
    assert sorted(p.name for p in out.iterdir()) == ["lfw_010.png", "lfw_011.png", "lfw_012.png"]
    face, note = load_rgb8(out / "lfw_011.png")
    # at the crops' own size the resampling is the identity: the bundled pixels, in 8 bits
    want = np.rint(data.lfw_subset()[11] * 255).astype(np.uint8)
    assert np.array_equal(face[:, :, 0], want) and np.array_equal(face[:, :, 1], face[:, :, 2])
    (out / "mine.txt").write_text("kept")
    again = write_face_crops(out, FaceCropSettings(first=11, count=2, size=25))
    assert again["written"] == 0  # both were there with the same bytes; lfw_010 is dropped
    assert sorted(p.name for p in out.iterdir()) == ["lfw_011.png", "lfw_012.png", "mine.txt"]
    assert write_face_crops(out, FaceCropSettings(first=11, count=2, size=40))["written"] == 2
    assert load_rgb8(out / "lfw_012.png")[0].shape == (40, 40, 3)


@pytest.mark.parametrize("kw, match", [
    ({"first": 100}, "first must be an integer in [0, 99]"),
    ({"first": 90, "count": 20}, "first + count must be at most 100"),
    ({"size": 4}, "size must be an integer in [8, 1024]"),
    ({"count": 2.0}, "count must be an integer"),
])
def test_face_crop_settings_refuse(kw, match):
    from blursynth.errors import SettingError
    from blursynth.sources.faces import FaceCropSettings

    with pytest.raises(SettingError, match=match.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        FaceCropSettings(**kw)


# --- the recipe -----------------------------------------------------------------------------------


def test_uid_faces_recipe_builds_end_to_end(run_cli, tmp_path):
    from blursynth.dataset import PairDataset

    from .conftest import RECIPES

    out = tmp_path / "b"
    r = run_cli("build", RECIPES / "uid-faces.toml", "--out", out, "--limit", 1,
                "--set", "faces.count=3", "--set", "other_faces.count=2", "--set", "model.config=tiny",
                "--set", "model.perceptual=none", "--set", "model.patch=32", "--set", "real_blur.device=cpu",
                "--set", "model.device=cpu", "--set", "pairs.device=cpu")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (out / "faces").iterdir()) == ["lfw_000.png", "lfw_001.png", "lfw_002.png"]
    blurry = PairDataset(out / "real_blur")
    pairs = PairDataset(out / "pairs")
    assert len(pairs) == 1 and pairs[0]["source"] == "uid" and pairs[0]["blurred"].shape == (64, 64, 3)
    p = pairs[0]["params"]
    assert p["code_source"] == "reference" and p["reference"]["pair"] in {blurry[i]["id"] for i in range(len(blurry))}


@pytest.mark.parametrize("engine", ["auto", "torch"])
def test_a_run_on_the_cpu_loads_its_model_once(uid_model, tmp_path, monkeypatch, engine):
    # The check before writing and the rows share one load (a paper-size model's checkpoint
    # holds its optimisers' state too: reading it twice doubled the start-up); ONNX Runtime's
    # engine (auto's on the CPU) reads the weights without torch.
    from blursynth.pairs.uid import UIDBlurSettings, uid_blur
    from blursynth.uid import model as uid_model_module
    from blursynth.uid import onnx as uid_onnx

    loads = []
    load, read = uid_model_module.load_uid, uid_onnx.read_nets
    monkeypatch.setattr(uid_model_module, "load_uid",
                        lambda path, device="cpu": loads.append(f"torch {device}") or load(path, device))
    monkeypatch.setattr(uid_onnx, "read_nets", lambda path: loads.append("onnxruntime") or read(path))
    uid_blur(UIDBlurSettings(photos=str(two_photos(tmp_path / "photos")), model=str(uid_model),
                             device="cpu", engine=engine), tmp_path / "pairs", progress=False)
    assert loads == (["onnxruntime"] if engine == "auto" else ["torch cpu"])


def test_photos_too_small_for_the_networks_are_skipped_or_refused(uid_model, run_cli, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.sources.photos import save_rgb8

    photos = two_photos(tmp_path / "photos")
    save_rgb8(photos / "tiny.png", np.full((4, 9, 3), 90, np.uint8))
    r = run_cli("uid", "blur", photos, "--model", uid_model, "--out", tmp_path / "out")
    assert r.code == 0, r.err
    assert "1 of 3 photos are smaller than 5x5 (UID's smallest) and are skipped: tiny.png (4x9)" in r.err
    assert len(PairDataset(tmp_path / "out")) == 2
    r = run_cli("uid", "blur", photos, "--model", uid_model, "--out", tmp_path / "strict", "--strict")
    assert r.code == 2 and error_line(r) == ("error: photo tiny.png is 4x9, smaller than UID's 5x5; use larger "
                                             "photos (or drop --strict to skip photos that small).")
    assert not (tmp_path / "strict").exists()
    only = tmp_path / "only"
    only.mkdir()
    save_rgb8(only / "tiny.png", np.full((4, 9, 3), 90, np.uint8))
    for strict in ((), ("--strict",)):  # dropping --strict would not help: no hint to
        r = run_cli("uid", "blur", only, "--model", uid_model, "--out", tmp_path / "none", *strict)
        assert r.code == 2
        assert error_line(r) == "error: photo tiny.png is 4x9, smaller than UID's 5x5; use larger photos."
