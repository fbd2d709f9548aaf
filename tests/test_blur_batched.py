"""Batched rendering (``blur --device cuda --batch B``, ``OnlineBlur.read_many``): many pairs per
call with per-sample photo and PSF sizes, byte for byte the pairs rendered one by one.

No GPU here: the batched torch path runs on torch's CPU device, against the CPU's per-pair
rendering; with a GPU the same tests also compare it with ``render_pair`` on that GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blursynth._rng import sample_rng
from blursynth.errors import BadInputError
from blursynth.ops.blur import render_pair
from blursynth.ops.blur_batch import render_pairs
from blursynth.ops.convolve import convolve, convolve_many

from .conftest import edge_scene

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _psf(k, taps, seed):
    """A (k, k) PSF with ``taps`` non-zero taps (few: the direct path; many: the FFT)."""
    rng = np.random.default_rng(seed)
    psf = np.zeros(k * k, np.float32)
    psf[rng.choice(k * k, size=min(taps, k * k), replace=False)] = rng.random(min(taps, k * k))
    psf = psf.reshape(k, k)
    return psf / psf.sum()


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    img = edge_scene(h, w).astype(np.int32) + rng.integers(-15, 16, (h, w, 3))
    img[: h // 4, : w // 4] = 255  # a clipped corner for the highlight boost
    return np.clip(img, 0, 255).astype(np.uint8)


def _cases():
    """Pairs of mixed photo sizes, PSF sizes, methods, borders, curves and degradations."""
    shapes = [(40, 48), (33, 57), (40, 48), (64, 31), (45, 45), (40, 48)]
    psfs = [_psf(3, 3, 0), _psf(15, 225, 1), _psf(7, 5, 2), _psf(31, 900, 3), _psf(9, 81, 4),
            _psf(15, 6, 5)]
    options = [
        {},
        {"crf": "srgb", "border": "valid", "saturation": 1.7},
        {"crf": "none", "border": "wrap", "shot_noise": 0.004, "read_noise": 0.01},
        {"jpeg_quality": 85, "highlight_gain": 6.0, "highlight_threshold": 0.9},
        {"crf": "gamma:2.2", "method": "direct", "highlight_gain": 3.0, "highlight_regions": 40,
         "read_noise": 0.02},
        {"border": "valid", "method": "fft", "saturation": 0.8, "shot_noise": 0.01},
    ]
    photos = [_photo(h, w, i) for i, (h, w) in enumerate(shapes)]
    return photos, psfs, options


def _with_rngs(options):
    """Each pair's noise generator, fresh (a generator is consumed by the pair it renders)."""
    return [dict(o, noise_rng=sample_rng(7, i, 3)) if "shot_noise" in o or "read_noise" in o
            else dict(o) for i, o in enumerate(options)]


@pytest.mark.parametrize("device", DEVICES)
def test_batch_equals_pair_by_pair(device):
    photos, psfs, options = _cases()
    batched = render_pairs(photos, psfs, _with_rngs(options), device=device)
    singles = [render_pairs([p], [k], [o], device=device)[0]
               for p, k, o in zip(photos, psfs, _with_rngs(options))]
    per_pair = [render_pair(p, k, device=device, **o)
                for p, k, o in zip(photos, psfs, _with_rngs(options))]
    assert len(batched) == len(photos)
    for i, ((b, s), (b1, s1), (bp, sp)) in enumerate(zip(batched, singles, per_pair)):
        assert b.dtype == np.uint8 and b.shape == bp.shape and s.shape == sp.shape, i
        assert b.tobytes() == b1.tobytes() == bp.tobytes(), i
        assert s.tobytes() == s1.tobytes() == sp.tobytes(), i
    # The batch made real use of its spread: sizes differ, noise and the JPEG changed pixels.
    assert len({b.shape for b, _ in batched}) >= 4
    assert not np.array_equal(batched[0][0], batched[0][1])


def test_order_within_a_batch_does_not_matter():
    photos, psfs, options = _cases()
    order = [4, 1, 5, 0, 3, 2]
    forward = render_pairs(photos, psfs, _with_rngs(options))
    rngs = _with_rngs(options)
    shuffled = render_pairs([photos[i] for i in order], [psfs[i] for i in order],
                            [rngs[i] for i in order])
    for j, i in enumerate(order):
        assert shuffled[j][0].tobytes() == forward[i][0].tobytes()
        assert shuffled[j][1].tobytes() == forward[i][1].tobytes()


def test_convolve_many_mixed_sizes_equal_convolve_alone():
    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.random((3, h, w), dtype=np.float32))
              for h, w in [(20, 24), (31, 17), (20, 24)]]
    psfs = [_psf(5, 4, 0), _psf(9, 81, 1), _psf(3, 9, 2)]
    for border in ("reflect", "valid", "wrap"):
        out = convolve_many(images, psfs, border=border)
        for x, p, o in zip(images, psfs, out):
            alone = convolve(x[None], p, border=border)[0]
            assert o.shape == alone.shape and torch.equal(o, alone)
    # A stacked batch is still accepted, and gradients still flow (each sample alone).
    stacked = torch.stack([images[0], images[2]]).requires_grad_()
    out = convolve_many(stacked, [psfs[0], psfs[2]])
    sum(o.sum() for o in out).backward()
    assert stacked.grad is not None and stacked.grad.shape == stacked.shape


@pytest.mark.parametrize("device", DEVICES)
def test_convolve_many_follows_half_precision_images(device):
    # convolve casts the PSF to the images' dtype; convolve_many must too (STYLE rule 7), or a
    # GPU's fp16 batch would differ from its pairs alone. torch's CPU has no fp16 FFT, so the
    # CPU checks the direct path only.
    rng = np.random.default_rng(3)
    images = [torch.from_numpy(rng.random((3, h, w), dtype=np.float32)).to(device, torch.float16)
              for h, w in [(20, 24), (31, 17)]]
    psfs = [_psf(5, 4, 0), _psf(9, 81, 1)]
    for method in ("direct",) if device == "cpu" else ("direct", "fft", "auto"):
        out = convolve_many(images, psfs, method=method)
        for x, p, o in zip(images, psfs, out):
            alone = convolve(x[None], p, method=method)[0]
            assert o.dtype == torch.float16 and torch.equal(o, alone), method


def test_bad_batches_are_refused():
    photos, psfs, _ = _cases()
    with pytest.raises(BadInputError, match="one of each per pair"):
        render_pairs(photos, psfs[:2])
    with pytest.raises(BadInputError, match="unknown pair option"):
        render_pairs(photos[:1], psfs[:1], [{"gain": 2}])
    with pytest.raises(BadInputError, match="PSF must fit"):
        render_pairs([photos[0][:10, :10]], [psfs[3]])
    with pytest.raises(BadInputError, match="pass one per image"):
        convolve_many([torch.zeros(3, 8, 8)], psfs[:2])
    with pytest.raises(BadInputError, match=r"images\[0\] must be a \(C, H, W\) torch tensor"):
        convolve_many([torch.zeros(1, 3, 8, 8)], psfs[:1])
    assert render_pairs([], []) == []


@pytest.fixture
def torch_path(monkeypatch):
    """Treat the CPU as a device: the writer's batched path and render_pair's torch path run
    there, the code a GPU runs (its kernels then the CPU's)."""
    import blursynth.ops.blur as blur

    monkeypatch.setattr(blur, "_on_cpu", lambda device: False)


def _settings(photos, bank, **kw):
    from blursynth.pairs.shake import BlurSettings

    base = dict(photos=str(photos), kernels=str(bank), per_image=2, shard_size=3, device="cpu",
                exposure_gain="1-2", noise="0.0005-0.002,0.001", jpeg="80-95", seed=3)
    base.update(kw)
    return BlurSettings(**base)


def _hashes(manifest):
    return [s["sha256"] for s in manifest["shards"]]


def test_blur_batched_writes_the_cpu_bytes(photos, bank, tmp_path, torch_path, monkeypatch):
    """blur on the torch path, batch 1 and batch 4 (photos of different sizes, no crop), writes
    the shards the CPU's NumPy path writes."""
    import blursynth.ops.blur_batch as blur_batch
    from blursynth.pairs.shake import blur_photos

    calls = []
    real = blur_batch.render_pairs

    def spy(photos, *args, **kw):
        calls.append(len(photos))
        return real(photos, *args, **kw)

    monkeypatch.setattr(blur_batch, "render_pairs", spy)
    a = blur_photos(_settings(photos, bank, batch=1), tmp_path / "a", progress=False)
    b = blur_photos(_settings(photos, bank, batch=4), tmp_path / "b", progress=False)
    assert calls[:6] == [1] * 6 and sum(calls[6:]) == 6 and max(calls[6:]) > 1
    monkeypatch.undo()
    plain = blur_photos(_settings(photos, bank, batch=4), tmp_path / "c", progress=False)
    assert len(calls) == 8  # the NumPy path: no batched call
    assert a["num_rows"] == 6
    assert _hashes(a) == _hashes(b) == _hashes(plain)


@pytest.mark.parametrize("per_image, batch, chunk", [(1, 1, 4), (3, 32, 96), (2, 3, 6)])
def test_a_device_blurs_tasks_hold_whole_batches(photos, bank, monkeypatch, per_image, batch,
                                                 chunk):
    # A worker's task on a GPU: at least CHUNK_PAIRS pairs (IPC per pair otherwise), and whole
    # --batches, so no call renders a short batch of what is left of a task.
    from blursynth.pairs import shake
    from blursynth.pairs.photos import photo_chunk

    seen = {}
    real = shake.plan_blur

    def on_a_gpu(*args, **kwargs):
        plan, source, _, recipe = real(*args, **kwargs)
        return plan, source, "cuda", recipe

    monkeypatch.setattr(shake, "plan_blur", on_a_gpu)
    monkeypatch.setattr(shake, "write_photo_pairs", lambda *a, **k: seen.update(k))
    shake.blur_photos(_settings(photos, bank, per_image=per_image, batch=batch), "unused",
                      progress=False)
    assert photo_chunk(per_image, seen["chunk_pairs"], seen["batch"]) == chunk


def test_online_read_many_equals_read(photos, bank, torch_path):
    """OnlineBlur renders a batch in one call (DataLoader batches too): the rows read one by
    one, in any order, with repeats."""
    from blursynth.torch import OnlineBlur

    ds = OnlineBlur(None, _settings(photos, bank, crop=(32, 40), border="valid"))
    order = [5, 0, 3, 3, 1]
    many = ds.read_many(order)
    for i, row in zip(order, many):
        one = ds.read(i)
        assert row["id"] == one["id"] and row["params"] == one["params"]
        for key in ("blurred", "sharp", "psf"):
            assert row[key].tobytes() == one[key].tobytes(), (i, key)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False)
    first = next(iter(loader))
    assert first["blurred"].shape == (3, 3, 32, 40)
    assert torch.equal(first["blurred"][2], ds[2]["blurred"])
    with pytest.raises(IndexError, match="out of range"):
        ds.read_many([0, len(ds)])


def test_raw_path_pairs_stay_pair_by_pair(photos, bank, tmp_path, torch_path, monkeypatch):
    """RAW-path pairs are not batched (their RAW steps run on the CPU): the same shards."""
    import blursynth.ops.blur_batch as blur_batch
    from blursynth.pairs.shake import blur_photos

    monkeypatch.setattr(blur_batch, "render_pairs", None)  # never called
    raw = dict(pipeline="raw", camera="random", noise=None, crop=(32, 32), batch=4)
    a = blur_photos(_settings(photos, bank, **raw), tmp_path / "a", progress=False)
    monkeypatch.undo()
    b = blur_photos(_settings(photos, bank, **raw), tmp_path / "b", progress=False)
    assert a["num_rows"] == 6 and _hashes(a) == _hashes(b)
