"""The 6-DoF shake model: keyed paths, homographies, sub-frame counts and local PSF fields."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.errors import BadInputError, SettingError
from blursynth.ops.camera6d import (
    STREAM_CAMERA, PoseConfig, depth_planes, draw_pose_path, grid_points, image_paths, max_step_px,
    plane_layers, pose_homographies, psf_field, rotation_matrix, subframe_poses, subframes_needed,
)
from blursynth.ops.warp import render_subframes

SIZE = (48, 64)
F = 60.0


def test_paths_are_keyed_recorded_and_scaled():
    a, pa = draw_pose_path((5, 3), focal_px=F, size=SIZE, n_samples=64)
    b, pb = draw_pose_path(sample_rng(5, 3, STREAM_CAMERA), focal_px=F, size=SIZE, n_samples=64)
    c, _ = draw_pose_path((5, 4), focal_px=F, size=SIZE, n_samples=64)
    assert np.array_equal(a, b) and pa == pb and not np.array_equal(a, c)
    assert a.shape == (64, 6) and not a[0].any()
    assert 10.0 <= pa["length_px"] <= 60.0 and len(pa["axis_shares"]) == 6
    corners = np.array([(x, y) for y in np.linspace(0, SIZE[0] - 1, 3) for x in np.linspace(0, SIZE[1] - 1, 3)])
    paths = image_paths(a, F, SIZE, corners, reference="start")
    longest = np.sqrt((np.diff(paths, axis=0) ** 2).sum(axis=2)).sum(axis=0).max()
    assert longest == pytest.approx(pa["length_px"], rel=1e-6)
    import json

    json.dumps(pa)  # recordable as is


def test_rotation_dominates_by_default_and_shares_follow_axis_max():
    only_roll = PoseConfig(axis_max=(0, 0, 1, 0, 0, 0), n_samples=32)
    poses, params = draw_pose_path((1, 2), only_roll, focal_px=F, size=SIZE)
    assert not poses[:, [0, 1, 3, 4, 5]].any() and poses[:, 2].any()
    assert params["axis_shares"][0] == 0.0


def test_identity_translation_and_reference():
    hms = pose_homographies(np.zeros((4, 6)), F, SIZE)
    assert np.allclose(hms, np.eye(3))
    poses = np.zeros((3, 6))
    poses[:, 3] = [0.0, 0.05, 0.1]  # tx in depths: the content moves by f tx
    poses[:, 4] = [0.0, -0.05, -0.1]
    mid = pose_homographies(poses, F, SIZE, reference="middle")
    assert np.allclose(mid[:, 0, 2], [3.0, 0.0, -3.0]) and np.allclose(mid[:, 1, 2], [-3.0, 0.0, 3.0])
    start = pose_homographies(poses, F, SIZE, reference="start")
    assert np.allclose(start[0], np.eye(3)) and np.allclose(start[2, :2, 2], [-6.0, 6.0])
    far = pose_homographies(poses, F, SIZE, depth=2.0, reference="start")  # parallax halves
    assert np.allclose(far[2, :2, 2], [-3.0, 3.0])
    rot = pose_homographies(np.array([[0.0, 0.0, 0.0, 0, 0, 0], [0.0, 0.0, 0.3, 0, 0, 0]]), F, SIZE, reference="start")
    centre = np.array([(SIZE[1] - 1) / 2, (SIZE[0] - 1) / 2, 1.0])
    assert np.allclose(rot[1] @ centre, centre)  # roll turns about the principal point


def test_rotation_matrix_is_orthonormal():
    for r in ([0.1, -0.2, 0.3], [1e-10, 0, 0], [0, 0, 0]):
        m = rotation_matrix(r)
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-15) and np.linalg.det(m) == pytest.approx(1.0)
    batch = rotation_matrix(np.array([[0.1, 0, 0], [0, 0, 0.2]]))
    assert batch.shape == (2, 3, 3) and np.allclose(batch[1], rotation_matrix([0, 0, 0.2]))


def test_subframes_needed_keeps_every_step_under_a_pixel():
    poses, _ = draw_pose_path((2, 9), focal_px=F, size=SIZE, n_samples=200, length_range=(40.0, 40.0))
    n = subframes_needed(poses, SIZE, focal_px=F)
    hms = pose_homographies(subframe_poses(poses, n), F, SIZE)
    assert max_step_px(hms, SIZE) < 1.0 and n >= 40
    fewer = pose_homographies(subframe_poses(poses, n // 2), F, SIZE)
    assert max_step_px(fewer, SIZE) > 1.0  # the count is not wildly generous
    assert subframes_needed(np.repeat(np.eye(3)[None], 5, axis=0), SIZE) == 1


def test_subframe_poses_take_slice_middles():
    poses = np.zeros((3, 6))
    poses[:, 0] = [0.0, 1.0, 2.0]
    assert np.allclose(subframe_poses(poses, 4)[:, 0], [0.25, 0.75, 1.25, 1.75])


def test_translation_field_equals_rasterize_psf():
    from blursynth.ops.psf import rasterize_psf
    from blursynth.ops.trajectory import sample_trajectory

    traj, _ = sample_trajectory(rng=(4, 1), n_samples=80, length_px=12.0)
    poses = np.zeros((80, 6))
    poses[:, 3:5] = traj / F  # lateral translation at depth 1: f t pixels
    hms = pose_homographies(poses, F, SIZE, reference="mean")
    field = psf_field(hms, SIZE, grid=(3, 4))
    psf = rasterize_psf(traj)
    assert field.shape == (3, 4, *psf.shape)
    for j in range(3):
        for i in range(4):
            assert np.allclose(field[j, i], psf, atol=1e-6)


def _spread_y(img):
    """Standard deviation of an image's mass along y."""
    ys = np.indices(img.shape)[0]
    m = img.sum()
    cy = (img * ys).sum() / m
    return math.sqrt((img * (ys - cy) ** 2).sum() / m)


def test_pure_roll_blur_grows_with_distance_from_centre():
    """Roll about the optical axis: a dot at radius r smears along an arc of length r theta."""
    h, w = 101, 161
    theta = 0.3
    poses = np.zeros((600, 6))
    poses[:, 2] = np.linspace(0, theta, 600)
    hms = pose_homographies(poses, 100.0, (h, w), reference="middle")
    cx, cy = (w - 1) // 2, (h - 1) // 2
    length = {}
    for r in (15, 30, 60):
        src = np.zeros((h, w, 3), np.float32)
        src[cy, cx + r] = 1.0
        out, _ = render_subframes(src, hms, (h, w))
        # The dot sits on the x axis and the path is centred on it (middle reference), so it
        # smears along y: a uniform smear of length L has a spread of L / sqrt(12), and the
        # bilinear taps add a variance of 1/6 on average.
        spread = _spread_y(out[..., 0].astype(np.float64))
        length[r] = math.sqrt(12 * (spread ** 2 - 1 / 6))
    for r in length:
        assert length[r] == pytest.approx(r * theta, rel=0.03)
    assert length[60] / length[15] == pytest.approx(4.0, rel=0.03)
    field = psf_field(hms, (h, w), grid=(1, 1))  # the centre does not move at all
    assert field[0, 0, field.shape[2] // 2, field.shape[3] // 2] == pytest.approx(1.0, abs=1e-6)


def test_field_psf_predicts_the_render_at_a_grid_point():
    """A bright dot at a grid point, rendered through a rotating and translating path, matches
    the field's local PSF placed there within one 8-bit level (linear light)."""
    # 3x3 cells of 75x105 px put every grid point on a pixel centre. The field is local: its
    # error grows with the path's angles, so the frame is large enough for a 12 px path to be
    # a hand-shake-sized rotation (a few milliradians), not a tenth of a radian.
    h, w = 225, 315
    f = 315.0
    poses, _ = draw_pose_path((7, 0), focal_px=f, size=(h, w), n_samples=120, length_range=(12.0, 12.0),
                              axis_max=(1.0, 1.0, 1.0, 0.3, 0.3, 0.2))
    n = subframes_needed(poses, (h, w), focal_px=f)
    hms = pose_homographies(subframe_poses(poses, n), f, (h, w))
    grid = (3, 3)
    field = psf_field(hms, (h, w), grid=grid)
    k = field.shape[-1]
    pts = grid_points((h, w), grid)
    assert np.array_equal(pts, np.round(pts))
    for j, (qx, qy) in enumerate(pts):
        src = np.zeros((h, w, 3), np.float32)
        src[int(qy), int(qx)] = 1.0
        out, _ = render_subframes(src, hms, (h, w))
        predicted = np.zeros((h + 2 * k, w + 2 * k))
        y0, x0 = int(qy) + k - k // 2, int(qx) + k - k // 2
        predicted[y0:y0 + k, x0:x0 + k] = field[j // grid[1], j % grid[1]]
        assert np.abs(out[..., 0] - predicted[k:-k, k:-k]).max() < 1 / 255
        assert out[..., 0].sum() == pytest.approx(1.0, abs=0.01)  # a zoom changes the mass a little


def test_field_with_given_size_and_weights_sums_to_one():
    hms = np.repeat(np.eye(3)[None], 7, axis=0)
    hms[:, 0, 2] = np.linspace(-6, 6, 7)
    small = psf_field(hms, SIZE, grid=(2, 2), k=5)
    assert small.shape == (2, 2, 5, 5) and np.allclose(small.sum(axis=(2, 3)), 1.0)
    weights = np.array([0, 0, 0, 1.0, 0, 0, 0])
    centre = psf_field(hms, SIZE, grid=(1, 1), weights=weights)
    assert centre[0, 0, centre.shape[2] // 2, centre.shape[3] // 2] == pytest.approx(1.0)


def test_depth_map_parallax_as_planes():
    """A lateral pan over a near half (depth 1) and a far half (depth 4): each half moves by
    f t / depth, rendered as two planes; a rotation-only path needs one plane."""
    h, w, f = 24, 40, 100.0
    poses = np.zeros((9, 6))
    poses[:, 3] = np.linspace(0.0, 0.02, 9)  # the near half moves 0-2 px, the far one 0-0.5 px
    depth = np.full((h, w), 4.0)
    depth[:, w // 2:] = 1.0
    planes, labels = depth_planes(depth, poses, f, (h, w), reference="start")
    assert np.allclose(planes, [4.0, 1.0])
    assert (labels[:, : w // 2] == 0).all() and (labels[:, w // 2:] == 1).all()
    src = np.tile(np.arange(w, dtype=np.float32)[None, :, None], (h, 1, 3))  # value = x
    hms = [pose_homographies(poses, f, (h, w), depth=d, reference="start") for d in planes]
    background, layers = plane_layers(src, labels, hms)
    out, mask = render_subframes(src, background, (h, w), layers=layers)
    x = np.arange(w)
    mean_shift = [f * poses[:, 3].mean() / d for d in planes]  # content moves by +f t / d
    assert np.allclose(out[:, 4:14, 0], x[4:14] - mean_shift[0], atol=1e-4)
    assert np.allclose(out[:, 26:36, 0], x[26:36] - mean_shift[1], atol=1e-4)
    assert not mask.any()  # parallax is the camera's blur, not object motion
    turn = np.zeros((9, 6))
    turn[:, 1] = np.linspace(0.0, 0.05, 9)
    assert len(depth_planes(depth, turn, f, (h, w))[0]) == 1


def test_depth_planes_keep_every_pixel_within_the_error_bound():
    """Planes sit halfway between their pixels' extreme inverse depths: a bin crowded at one end
    (where its pixels' mean would sit) still leaves its lone far-end pixel within max_error_px."""
    h, w, f = 8, 10, 100.0
    poses = np.zeros((9, 6))
    poses[:, 3] = np.linspace(0.0, 0.02, 9)  # start reference: a point at depth z moves f t / z
    inv = np.full((h, w), 0.25)
    inv[0, :5] = 1.0
    inv[1, 0] = 0.62  # alone at the far end of the bin that holds the 0.25s
    planes, labels = depth_planes(1.0 / inv, poses, f, (h, w), reference="start", max_error_px=0.5)
    move = f * 0.02
    err = move * np.abs(inv - 1.0 / planes[labels])
    assert err.max() <= 0.5 + 1e-9 and len(planes) < h * w
    assert np.allclose(planes[labels[inv == 1.0]], 1.0)  # a bin holding one depth is exact


def test_bad_settings_are_one_line():
    with pytest.raises(SettingError, match="focal"):
        draw_pose_path((0, 0), focal_px=0.0, size=SIZE)
    with pytest.raises(SettingError, match="focal"):
        pose_homographies(np.zeros((2, 6)), -1.0, SIZE)
    with pytest.raises(BadInputError, match="poses"):
        pose_homographies(np.zeros((2, 5)), F, SIZE)
    with pytest.raises(BadInputError, match="depth"):
        pose_homographies(np.zeros((2, 6)), F, SIZE, depth=0.0)
    with pytest.raises(BadInputError, match="reference"):
        pose_homographies(np.zeros((2, 6)), F, SIZE, reference="end")
    with pytest.raises(SettingError, match="axis_max"):
        PoseConfig(axis_max=(1, 1, 1))
    with pytest.raises(SettingError, match="length_range"):
        PoseConfig(length_range=(5.0, 1.0))
    with pytest.raises(BadInputError, match="focal_px"):
        subframes_needed(np.zeros((3, 6)), SIZE)
