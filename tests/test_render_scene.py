"""``render-clip --motion camera6d|scene`` and frames-average's PSF field and motion mask of its windows."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from blursynth.dataset import PairDataset
from blursynth.ops.color import CameraResponse
from blursynth.sources.render import RenderSettings, render_clip
from blursynth.sources.video import iter_frames, probe_source

from .conftest import error_line

GAMMA = CameraResponse.parse("gamma:2.2")


@pytest.fixture(scope="module")
def smooth():
    """A 120x150 photo of smooth texture (bilinear resampling is nearly exact on it)."""
    rng = np.random.default_rng(5)
    x = ndimage.gaussian_filter(rng.random((120, 150, 3)), (2, 2, 0))
    x = (x - x.min()) / (x.max() - x.min())
    return np.round(30 + 190 * x).astype(np.uint8)


def _frames(path):
    return [f for _, f in iter_frames(probe_source(path, fps=240.0))]


def _side(path):
    return json.loads(path.with_name(path.name + ".json").read_text())


def test_still_6dof_camera_reproduces_the_photo(tmp_path, photo):
    info = render_clip(photo, tmp_path / "c.mkv", RenderSettings(n_frames=4, length_px=0.0, motion="camera6d"))
    g = info["geometry"]
    assert (g["height"], g["width"]) == photo.shape[:2]
    assert all(np.array_equal(f, photo) for f in _frames(tmp_path / "c.mkv"))


def test_scene_clip_is_deterministic_and_records_the_scene(tmp_path, photo):
    s = RenderSettings(n_frames=8, length_px=6.0, seed=3, motion="scene", objects="2", object_kind="leaves")
    a = render_clip(photo, tmp_path / "a", s, source="photo.png")
    b = render_clip(photo, tmp_path / "b", s, source="photo.png")
    side = _side(tmp_path / "a")
    assert side["motion"] == "scene" and len(side["camera"]["poses"]) == 8 and len(side["objects"]) == 2
    assert side["camera"]["focal_px"] == 128.0 and side["object_time"] == "clip"
    assert len(side["positions_xy"]) == 8 and a["positions_xy"] == b["positions_xy"]
    fa, fb = _frames(tmp_path / "a"), _frames(tmp_path / "b")
    assert len(fa) == 8 and all(np.array_equal(x, y) for x, y in zip(fa, fb))
    # The objects move: consecutive frames differ by more than the camera's small step would.
    assert not np.array_equal(fa[0], fa[-1])


def test_translation_clip_sidecar_and_frames_are_unchanged(tmp_path, photo):
    """Default render-clip: the keys, order and bytes of before --motion existed (pinned)."""
    render_clip(photo, tmp_path / "t.mkv", RenderSettings(n_frames=5, length_px=4.0, seed=1, size=(64, 96)))
    side = _side(tmp_path / "t.mkv")
    assert list(side) == ["source", "fps", "n_frames", "seed", "length_px", "crf", "quality", "geometry",
                          "trajectory_params", "positions_xy"]
    digest = hashlib.sha256(b"".join(f.tobytes() for f in _frames(tmp_path / "t.mkv"))).hexdigest()[:16]
    assert digest == TRANSLATION_DIGEST


TRANSLATION_DIGEST = "b6d5f8e3561e6eba"  # measured before --motion existed


def test_window_psf_field_predicts_the_averaged_blur(tmp_path, smooth, run_cli):
    """Convolving the sharp frame by the field's PSF at a grid point gives the pair's blurred image
    there (linear light), and the field is all the row records beside a zero mask (no objects)."""
    clip = tmp_path / "c.mkv"
    render_clip(smooth, clip, RenderSettings(n_frames=24, length_px=60.0, seed=2, motion="camera6d",
                                             psf_grid=3, focal_px=80.0))
    # An even window: its sharp frame is off the path's middle, so a flipped PSF would not fit.
    r = run_cli("frames-average", clip, "--window", "8", "--out", tmp_path / "pairs")
    assert r.code == 0, r.err
    ds = PairDataset(tmp_path / "pairs")
    row = ds[0]
    field = row["psf_field"]
    assert field.shape[:2] == (3, 3) and np.allclose(field.sum(axis=(2, 3)), 1, atol=1e-5)
    assert row["motion_mask"].max() == 0 and row["params"]["motion"] == "camera6d"
    # The blur differs across the frame (focal 80 px: rotation matters).
    assert np.abs(field[0, 0] - field[2, 2]).sum() > 0.2
    sharp = GAMMA.decode(row["sharp"].astype(np.float64) / 255)
    blurred = GAMMA.decode(row["blurred"].astype(np.float64) / 255)
    from blursynth.ops.camera6d import grid_points

    h, w = blurred.shape[:2]
    pts = grid_points((h, w), (3, 3))
    def error(psf, x, y):
        pred = np.stack([ndimage.convolve(sharp[..., c], psf, mode="reflect") for c in range(3)], axis=2)
        patch = np.s_[y - 2:y + 3, x - 2:x + 3]
        return np.abs(pred[patch] - blurred[patch]).max()

    checked = 0
    for j, (x, y) in enumerate(pts):
        x, y = int(round(x)), int(round(y))
        psf = field[j // 3, j % 3]
        r0 = psf.shape[0] // 2 + 2
        if not (r0 <= y < h - r0 and r0 <= x < w - r0):
            continue  # the prediction reads past the frame's edge
        own = error(psf, x, y)
        assert own < 0.01  # about 1-2 8-bit levels in mid-tones
        assert own < error(psf[::-1, ::-1], x, y)  # the sign matters
        if j != 4:
            assert own < error(field[2 - j // 3, 2 - j % 3], x, y)  # and the place
        checked += 1
    assert checked >= 5


def test_scene_clip_windows_carry_motion_masks_to_the_dataset(tmp_path, photo, run_cli):
    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "p.png", photo)
    r = run_cli("render-clip", tmp_path / "p.png", "--motion", "scene", "--objects", "2", "--frames", "20",
                "--length-px", "8", "--out", tmp_path / "s.mkv", "--seed", "1")
    assert r.code == 0, r.err
    r = run_cli("frames-average", tmp_path / "s.mkv", "--window", "7", "--out", tmp_path / "pairs")
    assert r.code == 0, r.err
    rows = list(PairDataset(tmp_path / "pairs"))
    assert rows and all(row["params"]["n_objects"] == 2 for row in rows)
    masks = [row["motion_mask"] for row in rows]
    assert all(m.shape == rows[0]["blurred"].shape[:2] and set(np.unique(m)) <= {0, 255} for m in masks)
    assert max(int(m.max()) for m in masks) == 255 and min((m > 0).mean() for m in masks) < 0.9
    r = run_cli("dataset", "export", tmp_path / "pairs", "--out", tmp_path / "exported")
    assert r.code == 0, r.err
    assert len(list((tmp_path / "exported" / "masks").glob("*.png"))) == len(rows)
    assert len(list((tmp_path / "exported" / "psf").glob("*_field.npy"))) == len(rows)


def test_still_objects_leave_the_mask_empty(tmp_path, photo, monkeypatch):
    """Objects that do not move (speed, rotation and scale change 0) blur nothing on their own."""
    import blursynth.sources.render_scene as rs
    from blursynth.pairs.window_scene import window_mask
    from blursynth.sources.objects import ObjectSettings
    from blursynth.sources.render_scene import known_scene
    from blursynth.sources.windows import Window

    def still(settings):
        return ObjectSettings(count=(2, 2), kind="leaves", speed_fraction=0.0, curvature=0.0,
                              rotation_deg=0.0, scale_change=0.0)

    monkeypatch.setattr(rs, "object_settings", still)
    render_clip(photo, tmp_path / "s.mkv", RenderSettings(n_frames=10, length_px=6.0, motion="scene"))
    scene = known_scene(probe_source(tmp_path / "s.mkv"))
    assert len(scene["objects"]) == 2
    assert window_mask(scene, Window(0, 0, 1, 7)).max() == 0


@pytest.mark.parametrize("args, words", [
    (["--objects", "2"], "--objects is a scene-blur option"),
    (["--motion", "camera6d", "--objects", "2"], "--objects moves objects: it needs --motion scene"),
    (["--motion", "camera6d", "--focal-px", "-3"], "--focal-px must be a positive number"),
    (["--motion", "scene", "--objects", "40"], "--objects"),
    (["--motion", "camera6d", "--psf-grid", "0"], "--psf-grid must be a whole number"),
    (["--motion", "scene", "--object-masks", "nowhere"], "--object-masks nowhere: no such folder"),
    (["--motion", "camera6d", "--size", "200x200"], "leave the photo"),
    (["--motion", "camera6d", "--length-px", "5000"], "moves too far for any frame"),
])
def test_bad_scene_options_are_one_line_and_write_nothing(tmp_path, photo, run_cli, args, words):
    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "p.png", photo)
    r = run_cli("render-clip", tmp_path / "p.png", "--out", tmp_path / "out" / "c.mkv", "--frames", "6", *args)
    assert r.code == 2 and words in error_line(r)
    assert not (tmp_path / "out").exists()


def test_user_mask_objects_interpolation_preview_and_workers(tmp_path, photo, run_cli):
    """--object-masks moves the masked part of the photo; --interpolate and --workers keep the
    columns (and the bytes); dataset preview draws the field."""
    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "p.png", photo)
    (tmp_path / "masks").mkdir()
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[30:60, 40:80] = 255
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "masks" / "p.png", mask)
    r = run_cli("render-clip", tmp_path / "p.png", "--motion", "scene", "--objects", "1",
                "--object-masks", tmp_path / "masks", "--frames", "16", "--length-px", "6",
                "--psf-grid", "2", "--out", tmp_path / "s.mkv")
    assert r.code == 0, r.err
    side = _side(tmp_path / "s.mkv")
    assert [o["kind"] for o in side["objects"]] == ["mask"] and side["psf_grid"] == 2
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"pairs{workers}"
        r = run_cli("frames-average", tmp_path / "s.mkv", "--window", "5", "--interpolate", "2",
                    "--shard-size", "1", "--workers", workers, "--out", out)
        assert r.code == 0, r.err
        outs.append([(row["blurred"].tobytes(), row["psf_field"].tobytes(), row["motion_mask"].tobytes())
                     for row in PairDataset(out)])
    assert outs[0] == outs[1] and len(outs[0]) >= 2
    rows = list(PairDataset(tmp_path / "pairs1"))
    assert rows[0]["psf_field"].shape[:2] == (2, 2) and max(int(r["motion_mask"].max()) for r in rows) == 255
    r = run_cli("dataset", "preview", tmp_path / "pairs1", "--out", tmp_path / "sheet.png", "--count", "2")
    assert r.code == 0, r.err
    assert (tmp_path / "sheet.png").stat().st_size > 0


def test_sidecar_records_the_masks_folder_resolved(tmp_path, photo, run_cli, monkeypatch):
    """A relative --object-masks is recorded as the absolute folder, so frames-average finds the
    masks from another working directory."""
    import imageio.v3 as iio

    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "p.png", photo)
    (tmp_path / "masks").mkdir()
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[30:60, 40:80] = 255
    iio.imwrite(tmp_path / "masks" / "p.png", mask)
    monkeypatch.chdir(tmp_path)
    r = run_cli("render-clip", "p.png", "--motion", "scene", "--objects", "1", "--object-masks", "masks",
                "--frames", "8", "--length-px", "4", "--psf-grid", "2", "--out", "s.mkv")
    assert r.code == 0, r.err
    side = _side(tmp_path / "s.mkv")
    want = str((tmp_path / "masks").resolve())
    assert side["object_masks"] == want and side["scene_settings"]["object_masks"] == want
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    r = run_cli("frames-average", tmp_path / "s.mkv", "--window", "5", "--out", tmp_path / "pairs")
    assert r.code == 0, r.err
    assert max(int(row["motion_mask"].max()) for row in PairDataset(tmp_path / "pairs")) == 255
