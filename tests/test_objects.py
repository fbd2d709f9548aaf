"""Moving objects (sources/objects.py): masks, exact occlusion, motion, determinism, bad masks."""

import json

import numpy as np
import pytest

from blursynth._rng import STREAM_OBJECTS, sample_rng
from blursynth.errors import BadInputError, SettingError
from blursynth.ops.warp import render_subframes, warp_bilinear
from blursynth.sources.objects import (
    ObjectSettings, composite_reference, draw_object_params, draw_objects,
    load_object_mask, motion_homographies, object_layers, subframe_times)
from blursynth.sources.object_shapes import shape_alpha

HW = (48, 64)
STILL = dict(speed_fraction=0.0, curvature=0.0, rotation_deg=0.0, scale_change=0.0)


def _photo(seed, hw=HW):
    return np.random.default_rng(seed).random((*hw, 3)).astype(np.float32)


def _shifts(xs, ys=None):
    """Camera homographies of integer or fractional translations."""
    hs = np.repeat(np.eye(3)[None], len(xs), 0)
    hs[:, 0, 2] = xs
    hs[:, 1, 2] = 0.0 if ys is None else ys
    return hs


def _disk(centre, radius, colour, velocity=(0.0, 0.0)):
    return {"kind": "leaves", "shape": {"type": "disk", "centre_xy": list(centre), "radius_px": radius},
            "colour": {"linear_rgb": list(colour)},
            "motion": {"velocity_px": list(velocity), "acceleration_px": [0.0, 0.0],
                       "rotation_rad": 0.0, "log_scale": 0.0},
            "reference_time": 0.5}


def test_zero_motion_leaves_the_mask_empty_and_moves_with_the_scene():
    """Objects that do not move on their own: no motion mask even under camera shake, and
    the blur is the sharp image (objects included) blurred by the camera alone."""
    sources = {"b.png": _photo(1, (40, 50))}
    bg = _photo(0)
    cam = _shifts([-2, -1, 0, 1, 2, 3], [1, 0, 0, -1, -1, 0])  # integer: warps copy exactly
    layers, params = draw_objects(sample_rng(3, 0, STREAM_OBJECTS), HW,
                                  ObjectSettings(count=(3, 3), **STILL), cam, sources=sources)
    blurred, mask = render_subframes(bg, cam, HW, layers=layers)
    assert len(params) == 3 and mask.max() == 0
    sharp = composite_reference(bg, params, sources=sources)
    assert not np.array_equal(sharp, bg)  # the objects are there
    camera_only, _ = render_subframes(sharp, cam, HW)
    # Away from the borders (where the background reflects but a layer is transparent), and up
    # to the float32 rounding of the sharp image the second path goes through.
    np.testing.assert_allclose(blurred[4:-4, 4:-4], camera_only[4:-4, 4:-4], atol=1e-6)


def test_moving_object_mask_covers_its_swept_area():
    """A disk translated by 20 px: the mask holds every pixel the disk covers at some
    sub-frame (within its radius of the swept segment) and nothing a pixel farther."""
    obj = _disk((20.0, 24.0), 6.0, (0.9, 0.1, 0.1), velocity=(20.0, 0.0))
    cam = _shifts(np.zeros(41))
    layers = object_layers([obj], HW, cam)
    _, mask = render_subframes(np.full((*HW, 3), 0.3, np.float32), cam, HW, layers=layers)
    t = subframe_times(41)
    xs = 20.0 + 20.0 * (t - 0.5)  # the disk's centre at each sub-frame
    yy, xx = np.mgrid[:HW[0], :HW[1]]
    dist = np.min(np.hypot(xx[..., None] - xs, yy[..., None] - 24.0), axis=-1)
    assert (mask[dist <= 6.0 - 1.0] == 255).all()
    assert (mask[dist >= 6.0 + 1.0] == 0).all()
    assert 0 < (mask == 255).mean() < 0.5


def test_opaque_object_occludes_exactly_over_a_constant_background():
    """Constant background b, opaque flat disk c moving diagonally: every pixel is
    b + (c - b) * (the disk's mean coverage there over the sub-frames); pixels it always
    covers are c, pixels it never reaches are b."""
    b, c = np.float32(0.25), np.array([0.9, 0.5, 0.05], np.float32)
    obj = _disk((30.0, 22.0), 8.0, c.tolist(), velocity=(6.0, -3.5))
    cam = _shifts(np.zeros(25))
    (layer,) = object_layers([obj], HW, cam)
    blurred, mask = render_subframes(np.full((*HW, 3), b, np.float32), cam, HW, layers=[layer])
    # The disk's coverage per sub-frame, by the plain warp of its alpha on a zero canvas wide
    # enough that reflect-101 never folds the disk back in.
    pad = 30
    canvas = np.pad(shape_alpha(obj["shape"], HW), pad)
    move = _shifts([pad], [pad])[0] @ motion_homographies(obj, subframe_times(25))
    coverage = np.mean([warp_bilinear(canvas, m, HW) for m in move], axis=0)
    expected = b + (c - b) * coverage[..., None]
    np.testing.assert_allclose(blurred, expected, atol=2e-6)
    always, never = coverage == 1.0, coverage == 0.0
    assert always.sum() > 20 and never.sum() > 1000
    np.testing.assert_allclose(blurred[always], np.broadcast_to(c, (always.sum(), 3)), atol=1e-6)
    assert (blurred[never] == b).all() and (mask[never] == 0).all()


def test_draws_are_keyed_recorded_and_rebuild_exactly():
    sources = {"b.png": _photo(1, (40, 50)), "c.png": _photo(2, (60, 30))}
    cam = _shifts(np.linspace(-1.5, 1.5, 7))
    s = ObjectSettings(count=(1, 4))
    la, pa = draw_objects(sample_rng(5, 2, STREAM_OBJECTS), HW, s, cam, sources=sources)
    lb, pb = draw_objects(sample_rng(5, 2, STREAM_OBJECTS), HW, s, cam, sources=sources)
    assert pa == pb
    rebuilt = object_layers(json.loads(json.dumps(pa)), HW, cam, sources=sources)
    for x, y, z in zip(la, lb, rebuilt):
        for f in ("image", "alpha", "homographies"):
            assert np.array_equal(getattr(x, f), getattr(y, f)) and np.array_equal(getattr(x, f), getattr(z, f))
    others = [draw_object_params(sample_rng(5, i, STREAM_OBJECTS), HW, s,
                                 source_shapes={k: v.shape for k, v in sources.items()})
              for i in range(3, 6)]
    assert all(o != pa for o in others)
    leaves = draw_object_params(sample_rng(5, 2, STREAM_OBJECTS), HW,
                                ObjectSettings(count=(2, 2), kind="leaves"))
    assert [o["shape"]["type"] for o in leaves] == ["disk", "disk"]


def test_cutout_copies_its_source_without_resampling():
    src = _photo(7, (30, 40))
    obj = {"kind": "cutout", "source": "s", "source_xy": [10, 12],
           "shape": {"type": "ellipse", "centre_xy": [33.0, 20.0], "axes_px": [7.0, 5.0],
                     "angle_rad": 0.3},
           "motion": {"velocity_px": [0.0, 0.0], "acceleration_px": [0.0, 0.0],
                      "rotation_rad": 0.0, "log_scale": 0.0}, "reference_time": 0.5}
    sharp = composite_reference(np.zeros((*HW, 3), np.float32), [obj], sources={"s": src})
    # Opaque interior: the photo pixel (x, y) shows source pixel (x - 33 + 10, y - 20 + 12).
    alpha = shape_alpha(obj["shape"], HW)
    inside = np.argwhere(alpha == 1.0)
    assert len(inside) > 50
    for y, x in inside:
        np.testing.assert_array_equal(sharp[y, x], src[y - 8, x - 23])


def test_shape_alpha_is_anti_aliased_with_the_right_area():
    disk = shape_alpha({"type": "disk", "centre_xy": [31.3, 22.7], "radius_px": 10.0}, HW)
    assert disk.dtype == np.float32 and disk.min() == 0.0 and disk.max() == 1.0
    assert abs(disk.sum() - np.pi * 100) < 2.0
    assert ((disk > 0) & (disk < 1)).sum() > 40  # a soft edge all round
    square = shape_alpha({"type": "polygon", "vertices_xy": [[10.25, 10.0], [20.25, 10.0],
                                                             [20.25, 20.0], [10.25, 20.0]]}, HW)
    assert abs(square.sum() - 100.0) < 1e-4
    np.testing.assert_allclose(square[12, [10, 20]], [0.25, 0.75])
    # Drawn polygons: simple (the coverage's area is the shoelace area, to the 1/16 sampling).
    params = draw_object_params(sample_rng(1, 0, STREAM_OBJECTS), (96, 128),
                                ObjectSettings(count=(12, 12)), source_shapes={"s": (10, 10)})
    polygons = [o["shape"] for o in params if o["shape"]["type"] == "polygon"]
    assert len(polygons) >= 3
    for shape in polygons:
        v = np.asarray(shape["vertices_xy"])
        x, y = v.T
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        perimeter = np.linalg.norm(v - np.roll(v, -1, 0), axis=1).sum()
        moved = {"type": "polygon", "vertices_xy": (v + 40).tolist()}  # wholly in the frame
        alpha = shape_alpha(moved, (200, 220))
        assert abs(alpha.sum() - area) < 0.05 * perimeter, (alpha.sum(), area)


def test_motion_is_identity_at_the_reference_time_and_moves_the_pivot():
    obj = _disk((20.0, 30.0), 5.0, (1, 1, 1), velocity=(8.0, -4.0))
    obj["motion"].update(rotation_rad=0.4, log_scale=0.2)
    inv = motion_homographies(obj, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(inv[1], np.eye(3), atol=1e-15)
    # At t = 1 the pivot has moved by v / 2, so the frame point there shows the pivot.
    p = inv[2] @ [24.0, 28.0, 1.0]
    np.testing.assert_allclose(p[:2] / p[2], [20.0, 30.0], atol=1e-12)
    # Scale and rotation about the pivot: distances shrink by exp(-0.1) going back.
    q = inv[2] @ [34.0, 28.0, 1.0]
    assert np.isclose(np.hypot(q[0] - 20.0, q[1] - 30.0), 10.0 * np.exp(-0.1))


def test_user_masks_load_and_bad_masks_fail_in_one_line(tmp_path):
    import imageio.v3 as iio

    photo = tmp_path / "photos" / "cat.jpg"
    masks = tmp_path / "masks"
    masks.mkdir()
    with pytest.raises(BadInputError, match="no mask for cat.jpg") as e:
        load_object_mask(masks, photo, (30, 40))
    m = np.zeros((30, 40), np.uint8)
    m[5:15, 8:20] = 255
    iio.imwrite(masks / "cat.png", m)
    with pytest.raises(BadInputError, match="40x30 but its photo cat.jpg is 41x30"):
        load_object_mask(masks, photo, (30, 41))
    alpha = load_object_mask(masks, photo, (30, 40))
    assert alpha.dtype == np.float32 and alpha.max() == 1.0 and alpha.sum() == 120
    iio.imwrite(masks / "cat.png", np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(BadInputError, match="greyscale or alpha PNG"):
        load_object_mask(masks, photo, (30, 40))
    iio.imwrite(masks / "cat.png", np.zeros((30, 40), np.uint16))
    with pytest.raises(BadInputError, match="is empty"):
        load_object_mask(masks, photo, (30, 40))
    (masks / "cat.png").write_bytes(b"not a png")
    with pytest.raises(BadInputError, match="cannot read"):
        load_object_mask(masks, photo, (30, 40))
    assert "\n" not in str(e.value)

    # A masked source gives mask objects: the mask itself, moved whole to the drawn centre.
    src = _photo(4, (30, 40))
    layers, params = draw_objects(sample_rng(0, 0, STREAM_OBJECTS), HW,
                                  ObjectSettings(count=(1, 1), **STILL), np.eye(3)[None],
                                  sources={"cat.jpg": src}, masks={"cat.jpg": alpha})
    assert params[0]["kind"] == "mask" and params[0]["source"] == "cat.jpg"
    np.testing.assert_array_equal(layers[0].alpha, alpha[5:15, 8:20])
    np.testing.assert_array_equal(layers[0].image, src[5:15, 8:20])


def test_settings_are_checked():
    with pytest.raises(SettingError, match="--objects must be LO-HI"):
        ObjectSettings(count=(3, 1))
    with pytest.raises(SettingError, match="--object-kind"):
        ObjectSettings(kind="cars")
    with pytest.raises(SettingError, match="cannot fit"):
        draw_object_params(sample_rng(0, 0, STREAM_OBJECTS), HW,
                           ObjectSettings(count=(1, 60), kind="leaves", size_fraction=(0.5, 0.6)))
    with pytest.raises(SettingError, match="too small"):
        draw_object_params(sample_rng(0, 0, STREAM_OBJECTS), (16, 16),
                           ObjectSettings(count=(1, 1), kind="leaves"))
    with pytest.raises(BadInputError, match="needs other photos"):
        draw_object_params(sample_rng(0, 0, STREAM_OBJECTS), HW, ObjectSettings())
    assert draw_object_params(sample_rng(0, 0, STREAM_OBJECTS), HW, ObjectSettings(count=(0, 0))) == []


def test_an_object_past_the_frame_edge_is_whole():
    """A disk half beyond the left edge keeps its hidden half: moving right, it brings it in."""
    obj = _disk((-1.0, 24.0), 6.0, (1.0, 1.0, 1.0), velocity=(8.0, 0.0))
    (layer,) = object_layers([obj], HW, _shifts(np.zeros(9)))
    assert abs(layer.alpha.sum() - np.pi * 36) < 1.0
    p = layer.homographies[-1] @ [3.0, 24.0, 1.0]  # at t = 17/18 the centre is near x = 2.6
    assert 0 <= p[0] < layer.alpha.shape[1] and layer.alpha[int(round(p[1])), int(round(p[0]))] == 1.0
    blurred, _ = render_subframes(np.zeros((*HW, 3), np.float32), _shifts(np.zeros(9)), HW,
                                  layers=[layer])
    # The whole disk's mean coverage (drawn on a canvas that holds all of it).
    pad = 30
    canvas = shape_alpha(_disk((pad - 1.0, 24.0 + pad), 6.0, (1, 1, 1))["shape"],
                         (HW[0] + 2 * pad, HW[1] + 2 * pad))
    move = _shifts([pad], [pad])[0] @ motion_homographies(obj, subframe_times(9))
    whole = np.mean([warp_bilinear(canvas, m, HW) for m in move], axis=0)
    np.testing.assert_allclose(blurred[..., 0], whole, atol=2e-6)


def test_still_object_over_a_depth_plane_background_is_not_moving():
    """With a depth map the background path is the farthest plane's, not the camera's that the
    objects ride on: a still object is still not in the motion mask; a moving one is."""
    cam = _shifts([-2, -1, 0, 1, 2])
    far = _shifts([-1, -0.5, 0, 0.5, 1])  # a farther plane: less parallax
    still, moving = (object_layers([_disk((30.0, 24.0), 6.0, (0.9, 0.1, 0.1), velocity=v)], HW, cam)
                     for v in ((0.0, 0.0), (10.0, 0.0)))
    _, mask = render_subframes(_photo(0), far, HW, layers=still)
    assert still[0].moving is False and mask.max() == 0
    _, mask = render_subframes(_photo(0), far, HW, layers=moving)
    assert moving[0].moving is True and mask.max() == 255
