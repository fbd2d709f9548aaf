"""Many photo windows blurred per call on a torch device: :func:`render_pair`'s pipeline, batched.

Each pair is computed by the same kernels, on the same shapes, as :func:`render_pair` computes it
on that device alone (table decode, highlight boost, border, the convolution of
:func:`blursynth.ops.convolve.convolve_many`, clip, sensor noise, threshold encode, JPEG), so its
bytes never depend on the other pairs of the call. What the batch shares is the traffic: the
photos go to the device in one copy, the noise fields, decode tables and encoder thresholds in
another, the PSFs in a third, and every pair's uint8 images come back in one, so a GPU runs the
whole batch without waiting on the host in between (a pair alone waits four times or more).

cuFFT does not promise the same bits for a transform done alone and in a batch, so each pair's
FFT stays a transform of its own; the saving is the waits and copies, not the arithmetic.
"""

from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from .blur import _boost, _check_photo, _regions, render_pair
from .color import CameraResponse, decode_codes
from .convolve import check_fits, check_psf, convolve_many, output_shape
from .degrade import add_sensor_noise, boost_highlights, jpeg_roundtrip, noise_field
from .encode8 import bucketize_codes, float_thresholds

#: The per-pair keywords of :func:`render_pair` a batch takes (its ``device`` is the batch's).
PAIR_KEYWORDS = ("crf", "border", "saturation", "shot_noise", "read_noise", "noise_rng",
                 "jpeg_quality", "method", "highlight_gain", "highlight_threshold",
                 "highlight_regions", "highlight_region_threshold")


def render_pairs(photos, psfs, options=None, *, device="cpu"):
    """Blur many photo windows, each by its own PSF, on one torch device; return the pairs.

    Parameters
    ----------
    photos : sequence of (H_i, W_i, 3) uint8 ndarrays, RGB
        The sharp windows (already resized and cropped); sizes may differ.
    psfs : sequence of (k_i, k_i) float ndarrays
        One per photo, odd sizes that may differ.
    options : sequence of dict, optional
        One per photo: :func:`render_pair`'s keywords but ``device`` (:data:`PAIR_KEYWORDS`);
        None renders every pair with the defaults.
    device : torch.device or str
        Where to render. Any torch device, the CPU included (there the pairs equal
        :func:`render_pair`'s on the CPU; ``blur`` keeps the NumPy path, which is faster there).

    Returns
    -------
    pairs : list of (blurred, sharp)
        (H', W', 3) uint8 ndarrays: pair ``i`` is ``render_pair(photos[i], psfs[i],
        **options[i], device=device)`` byte for byte.

    Examples
    --------
    >>> photos = [np.full((32, 48, 3), 200, np.uint8), np.full((20, 24, 3), 90, np.uint8)]
    >>> psfs = [np.full((5, 5), 1 / 25, np.float32), np.full((3, 3), 1 / 9, np.float32)]
    >>> pairs = render_pairs(photos, psfs, [{}, {"border": "valid"}])
    >>> [b.shape for b, _ in pairs], int(pairs[1][0][0, 0, 0])
    ([(32, 48, 3), (18, 22, 3)], 90)
    """
    import torch

    n = len(photos)
    options = [{}] * n if options is None else list(options)
    if len(psfs) != n or len(options) != n:
        raise BadInputError(f"got {n} photos, {len(psfs)} PSFs and {len(options)} option sets; "
                            "pass one of each per pair.")
    if n == 0:
        return []
    dev = torch.device(device)
    pairs = [_prepare(photo, psf, dict(opts)) for photo, psf, opts in zip(photos, psfs, options)]
    # The float upload: each curve's decode table and encoder thresholds, then the noise fields.
    curves, floats, at = {}, [], 0
    for p in pairs:
        if p["crf"] not in curves:
            curves[p["crf"]] = at
            floats += [p["crf"].decode_table(), float_thresholds(p["crf"])]
            at += 256 + 255
    for p in pairs:
        if p["noise"] is not None:
            p["noise_at"] = at
            floats.append(p["noise"].ravel())
            at += p["noise"].size
    u8 = _to_device(np.concatenate([p["photo"].ravel() for p in pairs]), dev)
    f32 = _to_device(np.concatenate(floats).astype(np.float32, copy=False), dev)
    linear, at = [], 0
    for p in pairs:
        h, w = p["photo"].shape[:2]
        # (3, H, W) contiguous, as render_pair's own copy of the window is.
        p["chw"] = u8[at : at + h * w * 3].view(h, w, 3).permute(2, 0, 1).contiguous()
        at += h * w * 3
        x = _decode(p["chw"], f32, curves[p["crf"]])[None]
        if p["boost"] is not None:
            regions = p["regions"]
            x = boost_highlights(x, *p["boost"]) if regions is None else boost_highlights(
                x, *p["boost"], regions=regions[0], region_threshold=regions[1])
        linear.append(x[0])
    by_border = {}
    for i, p in enumerate(pairs):
        by_border.setdefault((p["border"], p["method"]), []).append(i)
    blurred = [None] * n
    for (border, method), members in by_border.items():
        for i, out in zip(members, convolve_many([linear[i] for i in members],
                                                 [pairs[i]["psf"] for i in members],
                                                 border=border, method=method)):
            blurred[i] = out
    del linear  # the inputs of the convolutions: a batch holds one float image per pair less
    codes = []
    for p, lin in zip(pairs, blurred):
        if p["noise"] is not None:
            lin = lin.clamp(0.0, 1.0)
            field = f32[p["noise_at"] : p["noise_at"] + p["noise"].size].view(p["noise"].shape)
            lin = add_sensor_noise(lin, shot=p["shot"], read=p["read"], noise=field)
        codes.append(_encode(lin, f32, curves[p["crf"]]))
        if p["scale"] != 1.0:
            r = p["r"]
            window = p["chw"][:, r:-r, r:-r] if p["border"] == "valid" and r else p["chw"]
            codes.append(_encode(_decode(window, f32, curves[p["crf"]]) * p["scale"], f32,
                                 curves[p["crf"]]))
    # One copy back for every pair's codes.
    host = torch.cat([c.reshape(-1) for c in codes]).cpu().numpy()
    result, at = [], 0
    for p, blurred_lin in zip(pairs, blurred):
        ho, wo = blurred_lin.shape[-2:]
        images = []
        for _ in range(1 if p["scale"] == 1.0 else 2):
            images.append(host[at : at + ho * wo * 3].reshape(ho, wo, 3))
            at += ho * wo * 3
        if p["scale"] == 1.0:  # decode then encode of uint8 is the identity for every curve
            r = p["r"]
            window = p["photo"][r:-r, r:-r] if p["border"] == "valid" and r else p["photo"]
            images.append(np.ascontiguousarray(window))
        blurred_u8, sharp = images
        if p["jpeg"] is not None:
            blurred_u8 = jpeg_roundtrip(blurred_u8, int(p["jpeg"]))
        result.append((blurred_u8, sharp))
    return result


def _prepare(photo, psf, opts) -> dict:
    """One pair's host-side values, checked as :func:`render_pair` checks them."""
    unknown = sorted(set(opts) - set(PAIR_KEYWORDS))
    if unknown:
        raise BadInputError(f"unknown pair option(s) {', '.join(unknown)}; expected some of "
                            f"{', '.join(PAIR_KEYWORDS)}.")
    defaults = render_pair.__kwdefaults__
    o = {key: opts.get(key, defaults[key]) for key in PAIR_KEYWORDS}
    crf = CameraResponse.parse(o["crf"])
    photo = _check_photo(photo)
    psf = np.asarray(psf, np.float32)
    k = check_psf(psf)
    check_fits(photo.shape[0], photo.shape[1], k, o["border"], what="photo window")
    scale = 1.0 if o["saturation"] is None else float(o["saturation"])
    boost = _boost(o["highlight_gain"], o["highlight_threshold"])
    noise = None
    if o["shot_noise"] is not None or o["read_noise"] is not None:
        if o["noise_rng"] is None:
            raise ValueError("sensor noise needs noise_rng (the pair's own generator).")
        noise = noise_field((3, *output_shape(*photo.shape[:2], k, o["border"])), o["noise_rng"])
    return {
        "photo": np.ascontiguousarray(photo), "psf": psf * np.float32(scale), "crf": crf,
        "border": o["border"], "method": o["method"], "scale": scale, "r": k // 2,
        "boost": boost, "noise": noise, "jpeg": o["jpeg_quality"],
        "regions": _regions(photo, crf.decode_table(), boost, o["highlight_regions"],
                            o["highlight_region_threshold"]),
        "shot": float(o["shot_noise"] or 0.0), "read": float(o["read_noise"] or 0.0),
    }


def _to_device(array, dev):
    """A host array on ``dev`` in one copy (through pinned memory to a GPU, not waited on)."""
    import torch

    t = torch.from_numpy(array)
    if dev.type == "cuda":
        return t.pin_memory().to(dev, non_blocking=True)
    return t.to(dev)


def _decode(codes, f32, at):
    """uint8 codes through the decode table uploaded at ``at`` (CameraResponse.decode_uint8's
    look-up)."""
    return decode_codes(codes, f32[at : at + 256])


def _encode(linear, f32, at):
    """(3, H, W) linear light to (H, W, 3) uint8 codes by the thresholds uploaded after the
    table at ``at`` (:func:`blursynth.ops.encode8.encode_uint8`'s read-out)."""
    return bucketize_codes(linear, f32[at + 256 : at + 256 + 255]).permute(1, 2, 0)


__all__ = ["PAIR_KEYWORDS", "render_pairs"]
