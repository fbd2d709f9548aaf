"""Scene blur (``blur --motion camera6d|scene``): rows record the camera path, objects, defocus and
PSF field; rebuild is exact; bytes do not depend on workers; uniform blur is untouched; bad input
is one line, exit 2, nothing written; preview and export show the field and the masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blursynth.dataset import PairDataset
from blursynth.pairs.shake import BlurSettings, blur_photos, rebuild_pair
from blursynth.sources.photos import load_rgb8
from tests.conftest import error_line


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skimage import data

    from blursynth.sources.photos import save_rgb8

    folder = tmp_path_factory.mktemp("photos")
    save_rgb8(folder / "coffee.png", data.coffee()[::8, ::8])  # 50x75
    save_rgb8(folder / "rocket.png", data.rocket()[::8, ::8])  # 54x80
    return folder


def scene(photos, **kw):
    base = dict(photos=str(photos), motion="camera6d", per_image=2, crop=(40, 48), shard_size=2,
                noise="0.0005-0.002,0.001", jpeg="80-95", seed=3)
    base.update(kw)
    return BlurSettings(**base)


def shard_hashes(manifest):
    return [s["sha256"] for s in manifest["shards"]]


def test_camera6d_rows_record_the_path_and_rebuild_exactly(photos, tmp_path):
    blur_photos(scene(photos), tmp_path / "p", progress=False)
    ds = PairDataset(tmp_path / "p")
    assert len(ds) == 4
    for row in ds:
        p = row["params"]
        cam = p["camera"]
        assert p["motion"] == "camera6d" and cam["focal_px"] == 48.0  # the window's longer side
        assert len(cam["poses"]) == cam["n_subframes"] and len(cam["poses"][0]) == 6
        field = row["psf_field"]
        assert field.shape[:2] == (5, 5) and field.shape[2] == field.shape[3]
        assert np.allclose(field.sum(axis=(2, 3)), 1, atol=1e-5)
        assert np.array_equal(row["psf"], field[2, 2])  # the psf column is the field's centre
        assert row["motion_mask"].shape == (40, 48) and not row["motion_mask"].any()  # no objects
        blurred, sharp = rebuild_pair(row, photos)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
        assert not np.array_equal(row["blurred"], row["sharp"])
        photo, _ = load_rgb8(photos / p["photo"])
        y0, x0, h, w = p["crop"]
        assert np.array_equal(sharp, photo[y0 : y0 + h, x0 : x0 + w])  # the window, at the reference pose
    manifest = ds.manifest
    assert manifest["command"]["scene"]["motion"] == "camera6d"
    assert "psf_source" not in manifest["command"] and manifest["command"]["device"] == "cpu"


@pytest.mark.slow  # two worker processes start
def test_scene_bytes_do_not_depend_on_workers_and_rebuild(photos, tmp_path):
    s = scene(photos, motion="scene", objects="1-2", object_kind="leaves", rolling_shutter="0-0.5",
              defocus=True, per_image=3)
    a = blur_photos(s, tmp_path / "a", workers=1, progress=False)
    b = blur_photos(s, tmp_path / "b", workers=2, progress=False)
    assert a["num_rows"] == 6 and shard_hashes(a) == shard_hashes(b)
    ds = PairDataset(tmp_path / "a")
    masks = 0
    for row in ds:
        p = row["params"]
        assert p["objects"] and p["defocus"]["depth"]["kind"] == "piecewise_planar"
        assert 0 <= p["rolling_shutter"] <= 0.5
        # objects sit in the sharp image at the camera's reference time: the middle of [0, 1 + rho]
        assert {o["reference_time"] for o in p["objects"]} == {(1 + p["rolling_shutter"]) / 2}
        masks += int(row["motion_mask"].any())
        blurred, sharp = rebuild_pair(row, photos)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
    assert masks > 0  # moving objects mark their pixels


def test_cutout_objects_come_from_other_photos(photos, tmp_path):
    blur_photos(scene(photos, motion="scene", objects="2", per_image=1), tmp_path / "p", progress=False)
    for row in PairDataset(tmp_path / "p"):
        p = row["params"]
        assert {o["source"] for o in p["objects"]} == {n for n in ("coffee.png", "rocket.png") if n != p["photo"]}
        blurred, sharp = rebuild_pair(row, photos)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])


def test_raw_pipeline_rebuilds_and_exports_the_mosaic(photos, tmp_path):
    s = scene(photos, pipeline="raw", noise="model", jpeg=None, per_image=1)
    blur_photos(s, tmp_path / "p", progress=False)
    row = PairDataset(tmp_path / "p")[0]
    assert row["params"]["raw"]["camera"]
    blurred, sharp = rebuild_pair(row, photos)
    assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
    mosaic = rebuild_pair(row, photos, mosaic_only=True)
    assert mosaic.shape == (40, 48) and mosaic.dtype == np.float32


def test_uniform_settings_record_no_scene_keys(photos):
    from blursynth.pairs.scene_settings import SCENE_FIELDS

    recipe = BlurSettings(photos=str(photos), kernels="bank").recipe()
    assert not set(SCENE_FIELDS) & set(recipe) and "scene" not in recipe
    assert recipe["psf_source"] == "bank"


def test_export_writes_masks_and_preview_draws_the_field(photos, tmp_path):
    import cv2

    from blursynth.dataset.export import export_png
    from blursynth.dataset.preview import dataset_sheet
    from blursynth.dataset.verify import verify_dataset

    blur_photos(scene(photos, motion="scene", objects="1", object_kind="leaves", per_image=1),
                tmp_path / "p", progress=False)
    verify_dataset(tmp_path / "p")  # the mask and field columns hold
    assert export_png(tmp_path / "p", tmp_path / "e", progress=False) == 2
    ds = PairDataset(tmp_path / "p")
    for row in ds:
        mask = cv2.imread(str(tmp_path / "e" / "masks" / f"{row['id']}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and np.array_equal(mask, row["motion_mask"])
        field = np.load(tmp_path / "e" / "psf" / f"{row['id']}_field.npy")
        assert np.array_equal(field, row["psf_field"])
    line = json.loads((tmp_path / "e" / "params.jsonl").read_text().splitlines()[0])
    assert line["params"]["motion"] == "scene"
    sheet = dataset_sheet(tmp_path / "p", count=2, height=40)
    assert sheet.shape[1] > 3 * 40  # blurred, sharp and the field panel side by side


def test_field_overlay_marks_grid_points_and_mask():
    from blursynth.dataset.preview import field_overlay

    field = np.zeros((1, 1, 3, 3), np.float32)
    field[0, 0, 1, 1] = 1
    mask = np.zeros((6, 6), np.uint8)
    mask[0, 0] = 255
    out = field_overlay(np.zeros((6, 6, 3), np.uint8), field, mask)
    assert out[2, 2].tolist() == [0, 255, 0]  # grid_points: the one cell's centre (2.5 -> 2)
    assert out[0, 0, 0] > 0 and out[5, 5].tolist() == [0, 0, 0]


def _depth_folder(path, name, shape):
    import cv2

    path.mkdir(exist_ok=True)
    cv2.imwrite(str(path / name), np.full(shape, 1000, np.uint16))
    return path


@pytest.mark.parametrize("extra, match", [
    (["--motion", "camera6d", "--focal-px", "0"], "--focal-px must be a positive"),
    (["--psf-source", "fresh", "--rolling-shutter", "0-0.2"], "--rolling-shutter is a scene-blur option"),
    (["--motion", "camera6d", "--objects", "1-2"], "needs --motion scene"),
    (["--motion", "camera6d", "--border", "valid"], "--border valid is uniform blur's"),
    (["--motion", "camera6d", "--depth", "random"], "add --defocus"),
    (["--motion", "camera6d", "--rolling-shutter", "0-2"], "out of bounds"),
    (["--motion", "scene", "--crop", "16x16"], "too small for objects"),
    (["--motion", "camera6d", "--defocus", "--aperture-blades", "2"], "--aperture-blades must be 0"),
    (["--motion", "camera6d", "--psf-source", "fresh"], "--psf-source chooses uniform blur's PSF"),
    (["--motion", "camera6d", "--exposure", "0.5"], "--exposure chooses uniform blur's PSF"),
    (["--motion", "camera6d", "--device", "cuda"], "--device cuda: scene blur renders on the CPU"),
    (["--motion", "scene", "--length", "30"], "--length sizes uniform blur's fresh trajectories"),
    (["--motion", "camera6d", "--canvas", "33"], "--canvas sizes uniform blur's fresh trajectories"),
    (["--motion", "scene", "--object-kind", "leaves", "--object-masks", "masks"],
     "--object-masks moves masked parts of the other photos, --object-kind leaves"),
])
def test_bad_scene_options_are_one_line(run_cli, photos, tmp_path, extra, match):
    out = tmp_path / "pairs"
    args = ["blur", photos, "--out", out, "--crop", "40x48", *extra]
    r = run_cli(*args)
    assert r.code == 2, r.err
    assert match in error_line(r)
    assert not out.exists()


def test_depth_map_of_another_size_is_refused(run_cli, photos, tmp_path):
    depth = _depth_folder(tmp_path / "depth", "coffee.png", (50, 75))
    _depth_folder(depth, "rocket.png", (20, 20))
    out = tmp_path / "pairs"
    r = run_cli("blur", photos, "--out", out, "--motion", "camera6d", "--defocus", "--depth", depth)
    assert r.code == 2 and "rocket.png is 20x20" in error_line(r) and not out.exists()


@pytest.mark.parametrize("near", [None, 100])
def test_depth_folder_defocus_rebuilds(photos, tmp_path, monkeypatch, near):
    """A map varying across the window, with ``near``: much nearer just outside the window than
    inside it (the margin the path sees reads it), given as a relative folder: the run renders,
    the rows record the folder's absolute path, and a rebuild from another working directory
    gives the same bytes."""
    import cv2

    crops = {row["params"]["photo"]: row["params"]["crop"]  # stream 2: the same windows with --defocus
             for row in _made(scene(photos, per_image=1), tmp_path / "plain")}
    (tmp_path / "depth").mkdir()
    for name, (y0, x0, ch, cw) in crops.items():
        h, w = load_rgb8(photos / name)[0].shape[:2]
        depth = np.tile(np.linspace(500, 1000, w), (h, 1))  # far, and varying across the window
        if near is not None:  # five to ten times nearer, beside the window
            depth[:, slice(x0 - 2, x0) if x0 >= 2 else slice(x0 + cw, x0 + cw + 2)] = near
        cv2.imwrite(str(tmp_path / "depth" / name), depth.astype(np.uint16))
    monkeypatch.chdir(tmp_path)
    rows = _made(scene(photos, defocus=True, depth="depth", per_image=1), tmp_path / "p")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert len(rows) == 2
    for row in rows:
        p = row["params"]
        assert p["defocus"]["depth"] == {"file": p["photo"]} and p["defocus"]["coc_scale_px"] > 0
        assert p["depth_folder"] == str(tmp_path.resolve() / "depth")
        blurred, sharp = rebuild_pair(row, photos)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
        y0, x0, h, w = p["crop"]
        assert np.array_equal(sharp, load_rgb8(photos / p["photo"])[0][y0 : y0 + h, x0 : x0 + w])  # in focus


def _made(settings, out):
    blur_photos(settings, out, progress=False)
    return list(PairDataset(out))


def test_mask_of_another_size_is_refused(run_cli, photos, tmp_path):
    import cv2

    masks = tmp_path / "masks"
    masks.mkdir()
    cv2.imwrite(str(masks / "coffee.png"), np.full((10, 10), 255, np.uint8))
    out = tmp_path / "pairs"
    r = run_cli("blur", photos, "--out", out, "--motion", "scene", "--object-masks", masks)
    assert r.code == 2 and "coffee" in error_line(r) and not out.exists()


def test_user_masks_move_the_masked_part(photos, tmp_path):
    import cv2

    masks = tmp_path / "masks"
    masks.mkdir()
    disk = np.zeros((50, 75), np.uint8)
    cv2.circle(disk, (37, 25), 12, 255, -1)
    cv2.imwrite(str(masks / "coffee.png"), disk)
    s = scene(photos, motion="scene", objects="1", object_masks=str(masks), per_image=1)
    blur_photos(s, tmp_path / "p", progress=False)
    rows = {row["params"]["photo"]: row for row in PairDataset(tmp_path / "p")}
    objects = rows["rocket.png"]["params"]["objects"]
    assert [o["kind"] for o in objects] == ["mask"] and objects[0]["source"] == "coffee.png"
    for row in rows.values():
        blurred, sharp = rebuild_pair(row, photos)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])


def test_rolling_shutter_field_weighs_each_grid_row_as_its_pixel_row():
    from blursynth._rng import sample_rng
    from blursynth.ops.camera6d import grid_points, psf_field
    from blursynth.ops.warp import subframe_weights
    from blursynth.pairs.scene import camera_homographies, camera_psf_field, draw_camera

    size = (40, 48)
    cam = draw_camera(sample_rng(0, 1, 9), 48.0, size, 0.5, "middle")
    hms = camera_homographies(cam, size)
    still, rolling = camera_psf_field(cam, size, 3), camera_psf_field(cam, size, 3, 0.5)
    assert still.shape == rolling.shape and not np.array_equal(still, rolling)
    weights, _, _ = subframe_weights(len(hms), size[0], 0.5)
    y = grid_points(size, (3, 3))[6, 1]  # the last grid row
    last = psf_field(hms, size, (3, 3), k=rolling.shape[2], weights=weights[int(round(y))])[2]
    assert np.array_equal(rolling[2], last)


def test_depth_map_parallax_moves_near_planes_more():
    from blursynth.ops.warp import render_subframes
    from blursynth.pairs.scene import _parallax, _translate, camera_homographies

    h, w, m = 24, 32, 8
    poses = np.zeros((21, 6))
    poses[:, 3] = np.linspace(-0.05, 0.05, 21)  # a sideways slide, in median depths
    camera = {"poses": poses.tolist(), "focal_px": 60.0, "scene_depth": 1.0, "reference": "middle"}
    src = np.random.default_rng(0).random((h + 2 * m, w + 2 * m, 3), dtype=np.float32)
    sharp = src[m : m + h, m : m + w]
    flat = np.ones(src.shape[:2], np.float32)
    background, layers = _parallax(src, flat, camera, (h, w), m)
    plane, _ = render_subframes(src, _translate(camera_homographies(camera, (h, w)), m), (h, w))
    assert not layers and np.array_equal(render_subframes(src, background, (h, w))[0], plane)
    depth = flat.copy()
    depth[:, (w + 2 * m) // 2 :] = 4.0  # the right half four times as far
    background, layers = _parallax(src, depth, camera, (h, w), m)
    blurred, mask = render_subframes(src, background, (h, w), layers=layers)
    near = np.abs(blurred - sharp)[:, 2 : w // 2 - 4].mean()
    far = np.abs(blurred - sharp)[:, w // 2 + 4 : -2].mean()
    assert near > 1.5 * far and not mask.any()  # parallax is the camera's: no object motion


def test_object_fit_is_checked_on_every_window(photos):
    """A narrow photo fails the object check though a smaller-area one passes: checked up front."""
    from types import SimpleNamespace

    from blursynth.errors import SettingError
    from blursynth.pairs.scene import check_scene_inputs

    s = scene(photos, motion="scene", object_kind="leaves", crop=None)
    plan = SimpleNamespace(files=["wide.png", "square.png"], sizes=[(26, 400), (40, 40)])
    with pytest.raises(SettingError, match="too small for objects"):
        check_scene_inputs(s, plan)


def _disk_object(velocity, reference_time):
    return {"kind": "leaves", "shape": {"type": "disk", "centre_xy": [24.0, 20.0], "radius_px": 6.0},
            "colour": {"linear_rgb": [0.5, 0.5, 0.5]},
            "motion": {"velocity_px": list(velocity), "acceleration_px": [0.0, 0.0], "rotation_rad": 0.5,
                       "log_scale": 0.0}, "reference_time": reference_time}


def test_fast_objects_set_the_subframe_count():
    """An object faster than the camera moves under a pixel per sub-frame (no strobing)."""
    from blursynth._rng import sample_rng
    from blursynth.pairs.scene import camera_homographies, draw_camera
    from blursynth.sources.objects import max_step_px, subframe_times

    size = (40, 48)
    still = draw_camera(sample_rng(3, 0, 9), 48.0, size, 0.0, "middle")
    fast = _disk_object((60.0, 0.0), 0.5)
    cam = draw_camera(sample_rng(3, 0, 9), 48.0, size, 0.0, "middle", objects=[fast])
    n = cam["n_subframes"]
    assert n > still["n_subframes"] and cam["poses"] != still["poses"]
    step = max_step_px([fast], camera_homographies(cam, size), subframe_times(n))
    assert 0.5 < step < 1.0


@pytest.mark.parametrize("reference", ["start", "middle"])
def test_camera_reference_is_the_objects_time(reference):
    """The sharp pose is the path's at the objects' reference time (0 or the middle of the span),
    not the first sub-frame's (half a sub-frame late) or an interpolation of two sub-frames."""
    from blursynth._rng import sample_rng
    from blursynth.ops.camera6d import draw_pose_path, reference_pose
    from blursynth.pairs.scene import camera_homographies, draw_camera

    size = (40, 48)
    cam = draw_camera(sample_rng(5, 1, 9), 48.0, size, 0.5, reference)
    path, _ = draw_pose_path(sample_rng(5, 1, 9), focal_px=48.0, size=size)
    assert cam["reference_pose"] == reference_pose(path, reference).tolist()
    if reference == "start":
        assert cam["reference_pose"] == [0.0] * 6  # the path at time 0
        assert not np.allclose(camera_homographies(cam, size)[0], np.eye(3))


def test_depth_beyond_the_window_is_clipped_to_the_windows_range(photos, tmp_path):
    """Near content in the margin around the window gets no nearer than the window's nearest
    (the lens and the margin are sized for the window's depths); recorded as depth_range."""
    import cv2

    from blursynth.pairs.scene import _region_depth_of

    folder = tmp_path / "depth"
    folder.mkdir()
    depth = np.full((50, 75), 800, np.uint16)
    depth[:, :10] = 5  # near, left of the window
    depth[20:30, 30:40] = 500
    cv2.imwrite(str(folder / "coffee.png"), depth)
    params = {"photo": "coffee.png", "crop": [5, 20, 40, 48], "margin_px": 15, "depth_folder": str(folder),
              "defocus": {"depth": {"file": "coffee.png"}, "depth_range": [500.0, 800.0]}}
    region = _region_depth_of(params, (50, 75), photos)
    assert region.shape == (70, 78) and region.min() == 500 and region.max() == 800
    assert region[0, 0] == 500  # the near band, clipped


def test_a_pair_whose_object_photo_does_not_decode_is_skipped(photos, tmp_path, run_cli):
    """A photo whose header reads but whose pixels do not is skipped as a pair's own photo; a pair
    that cuts an object from it is skipped too (with one warning, and listed in the manifest), and
    --strict stops instead."""
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    data = bytearray((folder / "coffee.png").read_bytes())
    for i in range(200, len(data) - 100):  # its header and end intact: planned, then refused by the decoder
        data[i] ^= 0x55
    (folder / "zz_broken.png").write_bytes(bytes(data))  # sorted last: coffee's and rocket's pairs come first
    args = ["--motion", "scene", "--objects", "3", "--per-image", "4", "--crop", "40x48", "--workers", "1"]
    r = run_cli("blur", folder, "--out", tmp_path / "p", *args)
    assert r.code == 0, r.err
    object_skips = [line for line in r.err.splitlines() if "an object of this pair is cut from it" in line]
    rows = PairDataset(tmp_path / "p")
    assert object_skips and len(rows) == 8 - len(object_skips)  # coffee's and rocket's pairs, less those
    assert all("zz_broken.png" in line and "skipped" in line for line in object_skips)
    for row in rows:
        assert all(o.get("source") != "zz_broken.png" for o in row["params"]["objects"])
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    listed = [s for shard in manifest["shards"] for s in shard.get("skipped", [])]
    assert manifest["skipped"] == len(listed) == len(object_skips)
    assert {s["photo"] for s in listed} == {"zz_broken.png"}
    # the summary tells photos and pairs apart: one photo (its own 4 pairs), and those pairs
    assert "skipped 1 unreadable photo(s)" in r.err
    assert f"skipped {len(object_skips)} pair(s) whose objects are cut from a photo that does not decode" in r.err
    r = run_cli("blur", folder, "--out", tmp_path / "strict", *args, "--strict")
    line = error_line(r)
    assert r.code == 2 and "an object of this pair is cut from it); drop --strict" in line, line
    assert not (tmp_path / "strict").exists()


def test_online_scene_pairs_go_on_past_an_object_photo_that_does_not_decode(photos, tmp_path):
    # blur skips such pairs; OnlineBlur gives the next pair that renders, warning once per photo.
    import shutil
    import warnings

    from blursynth.torch import OnlineBlur

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    data = bytearray((folder / "coffee.png").read_bytes())
    for i in range(200, len(data) - 100):
        data[i] ^= 0x55
    (folder / "zz_broken.png").write_bytes(bytes(data))
    settings = BlurSettings(photos=str(folder), motion="scene", objects=3, per_image=4, crop=(40, 48),
                            device="cpu")
    blur_photos(settings, tmp_path / "p", progress=False)
    skipped = {s["index"] for shard in json.loads((tmp_path / "p" / "manifest.json").read_text())["shards"]
               for s in shard.get("skipped", [])}
    assert skipped  # some of coffee's and rocket's pairs cut an object from the broken photo
    online = OnlineBlur(None, settings)
    stored = {row["index"]: row for row in PairDataset(tmp_path / "p")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = [online.read(i) for i in range(len(online))]
    said = [str(w.message) for w in caught]
    assert len(said) == 2 and all("zz_broken.png" in m for m in said), said  # as an object's photo, as a pair's
    for i, row in enumerate(rows):
        assert row["index"] in stored  # every pair given is one blur wrote, byte for byte
        assert row["blurred"].tobytes() == stored[row["index"]]["blurred"].tobytes()
        assert (row["index"] == i) == (i in stored)
