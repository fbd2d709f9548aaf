"""Scoring protocols of the standard deblurring test sets: how one deblurred image is compared
with its ground truth (plain, RealBlur's aligned scores, Levin's shift search and error ratio,
Köhler's best frame, and a no-reference sharpness for images without ground truth)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import BadInputError
from .align import align_to_reference, as_unit_float, luma
from .metrics import psnr, ssim, ssim_map, ssim_matlab, ssim_matlab_map, ssim_radius
from .protocol_names import PROTOCOLS


#: Köhler: the widest integer translation (pixels, each axis) searched per ground-truth frame.
#: Köhler et al. fit the translation without stating a bound; 10 px is this project's choice,
#: beyond the residual offsets left after their recording's registration.
KOHLER_MAX_SHIFT = 10
#: Weight of the Gaussian gradient prior of the reference deconvolution (images in [0, 1]).
#: 5e-4 gave the smallest error of 1e-4 .. 1e-2 on a 255 px photo blurred by a 9 px line, noiseless
#: and 8-bit (about a tenth of the blurred image's squared error).
DECONV_PRIOR_WEIGHT = 5e-4
#: Backbone name -> the smallest image side its last tapped layer still produces an output
#: for (smaller raises in torch): AlexNet's stride-4 stem and three max-pools, VGG16's pools.
LPIPS_MIN_SIDE = {"alex": 31, "vgg": 16}


def default_protocol(row_params: dict) -> str:
    """The protocol a row's test set is scored with.

    Parameters
    ----------
    row_params : dict
        The decoded row's ``params`` (an import's ``layout`` / ``set`` / ``ground_truth``).

    Returns
    -------
    str
        ``"noref"`` for a row without ground truth (``"ground_truth": false``), ``"realblur"``
        for RealBlur (either variant) and RSBlur (its authors' evaluation aligns as RealBlur's
        does), ``"levin"`` and ``"kohler"`` for those sets, otherwise ``"plain"``.

    Examples
    --------
    >>> default_protocol({"layout": "realblur", "set": "realblur-j"})
    'realblur'
    >>> default_protocol({"layout": "rsblur", "set": "rsblur"})
    'realblur'
    >>> default_protocol({"layout": "lai", "ground_truth": False})
    'noref'
    >>> default_protocol({"photo": "a.jpg"})
    'plain'
    """
    if row_params.get("ground_truth") is False:
        return "noref"
    for key in ("layout", "set"):
        name = str(row_params.get(key) or "").lower().replace("ö", "o").replace("oe", "o")
        for prefix, proto in (("realblur", "realblur"), ("rsblur", "realblur"), ("levin", "levin"),
                              ("kohler", "kohler")):
            if name.startswith(prefix):
                return proto
    return "plain"


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def _lpips_value(lpips, out: np.ndarray, ref: np.ndarray) -> float:
    # NaN (not measured) below the backbone's smallest input: a Levin crop or a RealBlur inner
    # box can be that small, and torch would raise instead of scoring.
    if min(out.shape[:2]) < LPIPS_MIN_SIDE.get(getattr(lpips, "net", "alex"), 31):
        return math.nan
    p = next(lpips.parameters())
    with torch.no_grad():
        return float(lpips(_t(out).to(p), _t(ref).to(p)).flatten()[0])


def _full_scores(out: np.ndarray, ref: np.ndarray, lpips=None) -> dict:
    """PSNR and both SSIMs of two [0, 1] images over the whole frame (LPIPS when given)."""
    x, y = _t(out), _t(ref)
    res = {"psnr": float(psnr(x, y)[0])}
    small = min(out.shape[:2]) < 2 * ssim_radius() + 1
    res["ssim"] = math.nan if small else float(ssim(x, y)[0])
    res["ssim_matlab"] = float(ssim_matlab(x, y)[0])
    if lpips is not None:
        res["lpips"] = _lpips_value(lpips, out, ref)
    return res


def _inner_box(valid: np.ndarray) -> tuple[slice, slice]:
    """An axis-aligned box holding only valid pixels, grown from the valid region's bounds by
    dropping, one at a time, the edge row or column with the most invalid pixels."""
    rows, cols = np.nonzero(valid.any(1))[0], np.nonzero(valid.any(0))[0]
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    t, b, l, r = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    while t < b and l < r:
        box = valid[t:b, l:r]
        if box.all():
            break
        bad = [(~box[0]).sum(), (~box[-1]).sum(), (~box[:, 0]).sum(), (~box[:, -1]).sum()]
        k = int(np.argmax(bad))
        t, b, l, r = (t + (k == 0), b - (k == 1), l + (k == 2), r - (k == 3))
    return slice(t, b), slice(l, r)


def masked_scores(out, ref, valid, lpips=None) -> dict:
    """PSNR and both SSIMs of ``out`` against ``ref`` over the mask ``valid``, averaged as
    RealBlur's evaluation averages them.

    Both images are zeroed outside the mask first. PSNR: the squared error summed over all
    pixels and channels, over the mask's count (times 3 channels). SSIM (scikit-image's): its
    map over the pixels at least the window radius from the border, times the mask there,
    summed and divided by the mask's sum there; windows that reach past the overlap's edge
    count, with the zeros in them. MATLAB's SSIM: its 'same'-size map times the mask, over the
    mask's sum. LPIPS (when given): on the largest box of valid pixels :func:`_inner_box` finds.

    Parameters
    ----------
    out, ref : (H, W, 3) float ndarray in [0, 1]
    valid : (H, W) bool ndarray

    Returns
    -------
    dict
        ``psnr``, ``ssim``, ``ssim_matlab`` (NaN where the mask is empty or the image smaller
        than a window), ``lpips`` when given.

    Examples
    --------
    >>> a = np.zeros((16, 16, 3)); b = a.copy(); b[0] = 1.0
    >>> v = np.ones((16, 16), bool); v[0] = False
    >>> masked_scores(a, b, v)["psnr"]
    inf
    """
    valid = np.asarray(valid, bool)
    if not valid.any():
        return {"psnr": math.nan, "ssim": math.nan, "ssim_matlab": math.nan}
    m = valid[:, :, None].astype(np.float64)
    out, ref = out * m, ref * m
    err = float(np.sum((out - ref) ** 2)) / (3 * valid.sum())
    res = {"psnr": math.inf if err == 0 else 10 * math.log10(1.0 / err)}
    x, y = _t(out), _t(ref)
    r = ssim_radius()
    inner = valid[r:-r, r:-r]
    if min(out.shape[:2]) >= 2 * r + 1 and inner.any():
        smap = ssim_map(x, y)[0].numpy()
        res["ssim"] = float(np.sum(smap * inner)) / (3 * inner.sum())
    else:
        res["ssim"] = math.nan
    smap = ssim_matlab_map(x, y)[0].numpy()
    res["ssim_matlab"] = float(np.sum(smap * valid)) / (3 * valid.sum())
    if lpips is not None:
        rs, cs = _inner_box(valid)
        res["lpips"] = _lpips_value(lpips, out[rs, cs], ref[rs, cs])
    return res


def sharpness(image) -> float:
    """No-reference sharpness: the variance of the Laplacian of the image's luma.

    Pech-Pacheco et al.'s focus measure ("Diatom autofocusing in brightfield microscopy: a
    comparative study", ICPR 2000): the 4-neighbour Laplacian of BT.601 luma in [0, 1], its
    variance over the pixels (border pixels reflect). Higher is sharper; it also rises with
    noise and ringing, so compare it between outputs of one image, not across images.

    Parameters
    ----------
    image : (H, W, 3) uint8 or float ndarray
        uint8 read as value / 255, floats as [0, 1].

    Returns
    -------
    float

    Examples
    --------
    >>> sharpness(np.zeros((8, 8, 3), np.uint8))
    0.0
    """
    import cv2

    gray = luma(as_unit_float(image))
    return float(cv2.Laplacian(gray, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101).var())


def shift_sums(out, ref, max_shift: int) -> tuple:
    """The sums every shift comparison needs, for every integer shift at once.

    For each shift ``(dy, dx)`` with ``|dy|, |dx| <= m`` (``m = max_shift``), the window
    ``out[m+dy : H-m+dy, m+dx : W-m+dx]`` is compared with the fixed central region
    ``ref[m : H-m, m : W-m]``: the same region for every shift, so the shifts compare fairly.
    The cross products come from one FFT correlation per channel at the image's own size and
    the window energies from an integral image, instead of (2m+1)^2 full-frame passes: the
    target, zero outside its region, read at any shift within ``m`` never wraps around the
    periodic frame, so the circular correlation is exact there.

    Parameters
    ----------
    out, ref : (H, W, C) float ndarray
        Same shape, larger than ``2 m`` a side.
    max_shift : int

    Returns
    -------
    cross : (2m+1, 2m+1) float64 ndarray
        ``sum(window * target)``; entry ``[dy + m, dx + m]``.
    energy : (2m+1, 2m+1) float64 ndarray
        ``sum(window ** 2)``.
    target_energy : float
        ``sum(target ** 2)``.
    count : int
        Values in the target (pixels times channels).

    Examples
    --------
    >>> c, e, t, n = shift_sums(np.ones((5, 5, 1)), np.ones((5, 5, 1)), 1)
    >>> c.shape, float(c[0, 0]), float(e[2, 2]), t, n
    ((3, 3), 9.0, 9.0, 9.0, 9)
    """
    from scipy import fft

    m = int(max_shift)
    h, w = ref.shape[:2]
    if m < 0 or min(h, w) <= 2 * m:
        raise ValueError(f"max_shift must be in [0, {(min(h, w) - 1) // 2}] for a {h}x{w} image; "
                         f"got {max_shift}.")
    a = np.asarray(out, np.float64)
    target = np.asarray(ref, np.float64)[m:h - m, m:w - m]
    th, tw = target.shape[:2]
    placed = np.zeros_like(a)
    placed[m:h - m, m:w - m] = target
    spec = fft.rfft2(a, axes=(0, 1)) * np.conj(fft.rfft2(placed, axes=(0, 1)))
    # circular correlation: entry (dy mod h, dx mod w) is the cross product at shift (dy, dx)
    full = fft.irfft2(spec.sum(axis=2), s=(h, w))
    idx_y, idx_x = np.arange(-m, m + 1) % h, np.arange(-m, m + 1) % w
    cross = full[np.ix_(idx_y, idx_x)]
    sq = np.pad(np.cumsum(np.cumsum((a * a).sum(axis=2), 0), 1), ((1, 0), (1, 0)))
    energy = sq[th:, tw:] - sq[:-th, tw:] - sq[th:, :-tw] + sq[:-th, :-tw]
    return cross, energy, float(np.sum(target * target)), int(target.size)


def _nearest_best(cost: np.ndarray, m: int) -> tuple[int, int]:
    """The shift of least ``cost`` (indexed ``[dy + m, dx + m]``); shifts within rounding of
    the least (the FFT's sums are exact only to about 1e-12) go to the smallest displacement,
    then the smallest (dy, dx)."""
    tol = 1e-9 * max(float(np.max(np.abs(cost))), 1e-30)
    near = np.argwhere(cost <= cost.min() + tol) - m
    dy, dx = min(map(tuple, near), key=lambda s: (s[0] ** 2 + s[1] ** 2, s))
    return int(dy), int(dx)


def best_shift(out, ref, max_shift: int) -> tuple[int, int, float]:
    """The integer shift of ``out`` that best matches ``ref``, by mean squared error over the
    fixed central region :func:`shift_sums` describes.

    Parameters
    ----------
    out, ref : (H, W, C) float ndarray
        Same shape, larger than ``2 max_shift`` a side.
    max_shift : int

    Returns
    -------
    dy, dx : int
        ``out(p + (dy, dx))`` best matches ``ref(p)``; ties go to the smallest shift.
    mse : float
        The error at that shift (computed directly, not from the FFT's sums).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.random((20, 20, 1))
    >>> best_shift(np.roll(ref, (2, -1), axis=(0, 1)), ref, 3)[:2]
    (2, -1)
    """
    m = int(max_shift)
    cross, energy, tt, _ = shift_sums(out, ref, m)
    dy, dx = _nearest_best(energy - 2 * cross + tt, m)
    h, w = ref.shape[:2]
    mse = float(np.mean((_shifted_crop(out, dy, dx, m) - ref[m:h - m, m:w - m]) ** 2))
    return dy, dx, mse


def _shifted_crop(a, dy, dx, m):
    h, w = a.shape[:2]
    return a[m + dy:h - m + dy, m + dx:w - m + dx]


def deconvolve_true_kernel(blurred, psf, *, prior_weight=DECONV_PRIOR_WEIGHT) -> np.ndarray:
    """Non-blind deconvolution with a known kernel under a Gaussian gradient prior.

    Levin et al.'s error ratio (CVPR 2009) divides an estimate's error by that of a
    deconvolution with the true kernel. They deconvolved with the sparse prior of Levin et al.
    (SIGGRAPH 2007, iterative); this uses the same paper's Gaussian-prior case, which has the
    closed form ``X = conj(K) B / (|K|^2 + w (|Dx|^2 + |Dy|^2))`` in the Fourier domain
    (``Dx``, ``Dy``: forward differences), so it is exact, fast and deterministic. The FFT treats
    the image as periodic, and a frame whose opposite edges disagree is not the circular blur of
    anything: the inverse filter turns that into ringing over the whole image (worse than the
    blurred input). So the image is padded by three kernel sizes with mirrored edges and the
    padding is tapered (raised cosine) into its own circular blur by ``K``, as MATLAB's
    ``edgetaper`` does, before the division; the result is cropped back.

    Parameters
    ----------
    blurred : (H, W, 3) uint8 or float ndarray
        uint8 read as value / 255, floats as [0, 1]; each channel deconvolved alike.
    psf : (k, k) float ndarray
        The true kernel (normalised to sum 1 here); applied as a convolution.
    prior_weight : float
        ``w`` above.

    Returns
    -------
    (H, W, 3) float64 ndarray in [0, 1] (clipped)

    Examples
    --------
    >>> x = np.full((9, 9, 3), 0.5)
    >>> bool(np.allclose(deconvolve_true_kernel(x, np.ones((3, 3))), 0.5))
    True
    """
    b = as_unit_float(blurred)
    k = np.asarray(psf, np.float64)
    if k.ndim != 2 or k.sum() <= 0:
        raise ValueError(f"psf must be a 2-D kernel with a positive sum; got shape {k.shape}.")
    k = k / k.sum()
    p = 3 * max(k.shape)
    bp = np.pad(b, ((p, p), (p, p), (0, 0)), mode="symmetric")
    hp, wp = bp.shape[:2]

    def otf(kernel):
        # Kernel centre at the origin, so the deconvolved image is not displaced.
        pad = np.zeros((hp, wp))
        pad[:kernel.shape[0], :kernel.shape[1]] = kernel
        pad = np.roll(pad, (-(kernel.shape[0] // 2), -(kernel.shape[1] // 2)), axis=(0, 1))
        return np.fft.fft2(pad)

    kf = otf(k)
    # Edge taper: 1 inside the image, falling to 0 at the padded frame's edges.
    ramp = [0.5 - 0.5 * np.cos(np.pi * np.clip(np.minimum(np.arange(n), n - 1 - np.arange(n)) / p,
                                                0.0, 1.0)) for n in (hp, wp)]
    taper = ramp[0][:, None] * ramp[1][None, :]
    for c in range(bp.shape[2]):
        wrapped = np.real(np.fft.ifft2(np.fft.fft2(bp[:, :, c]) * kf))
        bp[:, :, c] = taper * bp[:, :, c] + (1.0 - taper) * wrapped
    grad = np.abs(otf(np.array([[1.0, -1.0]]))) ** 2 + np.abs(otf(np.array([[1.0], [-1.0]]))) ** 2
    den = np.abs(kf) ** 2 + prior_weight * grad
    out = np.empty_like(bp)
    for c in range(bp.shape[2]):
        out[:, :, c] = np.real(np.fft.ifft2(np.conj(kf) * np.fft.fft2(bp[:, :, c]) / den))
    return np.clip(out[p:-p, p:-p], 0.0, 1.0)


def _levin(out, ref, row, lpips, cache):
    psf = row.get("psf")
    if psf is None:
        raise BadInputError("the levin protocol needs each row's true kernel in its psf column; "
                            "this row has none. Import the set with `dataset import --layout "
                            "levin`, or score it with --protocol plain.")
    psf = np.asarray(psf, np.float64)
    m = min(max(psf.shape) // 2, (min(ref.shape[:2]) - 1) // 2)
    dy, dx, mse = best_shift(out, ref, m)
    target = ref[m:ref.shape[0] - m, m:ref.shape[1] - m]
    res = _full_scores(_shifted_crop(out, dy, dx, m), target, lpips)
    # The reference deconvolution's error depends on the row alone: the blurred input and the
    # output of one row share it (``cache``), so it is computed once.
    if "levin_deconv_mse" not in cache:
        deconv = deconvolve_true_kernel(row["blurred"], psf)
        cache["levin_deconv_mse"] = best_shift(deconv, ref, m)[2]
    mse_deconv = cache["levin_deconv_mse"]
    ratio = mse / mse_deconv if mse_deconv > 0 else (1.0 if mse == 0 else math.inf)
    res.update(error_ratio=float(ratio), shift_y=float(dy), shift_x=float(dx))
    return res


def kohler_register(out, frame, max_shift: int) -> tuple[int, int, float, float]:
    """Köhler et al.'s registration of a result to one ground-truth frame: the gain ``a`` and
    integer translation ``(dy, dx)`` minimising ``||frame - a * shift(out)||^2`` over the
    fixed central region of :func:`shift_sums`.

    For each shift the best gain is ``<window, target> / <window, window>`` and the least error
    ``<target, target> - <window, target>^2 / <window, window>``, so one pass of
    :func:`shift_sums` gives every shift's error.

    Returns
    -------
    dy, dx : int
        ``out(p + (dy, dx))`` matches ``frame(p)``; ties go to the smallest shift.
    gain : float
    mse : float
        The mean squared error at that shift and gain (computed directly).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = rng.random((24, 24, 3))
    >>> dy, dx, g, e = kohler_register(0.5 * np.roll(f, (1, -2), axis=(0, 1)), f, 3)
    >>> (dy, dx, round(g, 9), e < 1e-20)
    (1, -2, 2.0, True)
    """
    m = int(max_shift)
    cross, energy, tt, _ = shift_sums(out, frame, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(energy > 0, tt - cross * cross / energy, tt)
    dy, dx = _nearest_best(cost, m)
    window = _shifted_crop(out, dy, dx, m)
    h, w = frame.shape[:2]
    target = frame[m:h - m, m:w - m]
    den = float(np.sum(window * window))
    gain = float(np.sum(window * target)) / den if den > 0 else 1.0
    return dy, dx, gain, float(np.mean((gain * window - target) ** 2))


def _kohler(out, row, lpips):
    frames = row.get("gt_frames")
    if not frames:
        # one sharp image is not a recorded sequence: scoring it alone would be plain PSNR
        # under Köhler's name
        raise BadInputError("the kohler protocol needs each row's recorded ground-truth frames "
                            "(gt_frames); this row has none. Import the set with `dataset "
                            "import --layout kohler`, or score it with --protocol plain.")
    # Köhler et al. (ECCV 2012) score a deblurred image by its best PSNR over every frame
    # recorded along the camera's path (any of them is a valid sharp image of the scene),
    # each after fitting the gain and translation that match the result to that frame.
    m = min(KOHLER_MAX_SHIFT, (min(out.shape[:2]) - 1) // 2)
    frames = [as_unit_float(f) for f in frames]
    if any(f.shape != out.shape for f in frames):
        raise ValueError(f"a ground-truth frame's shape differs from the output's {out.shape}.")
    fits = [kohler_register(out, f, m) for f in frames]
    values = [math.inf if e == 0 else 10 * math.log10(1.0 / e) for *_, e in fits]
    k = int(np.argmax(values))  # first of equal bests
    dy, dx, gain, _ = fits[k]
    ref = frames[k]
    h, w = ref.shape[:2]
    res = _full_scores(gain * _shifted_crop(out, dy, dx, m), ref[m:h - m, m:w - m], lpips)
    res.update(psnr=values[k], best_frame=float(k), shift_y=float(dy), shift_x=float(dx),
               gain=gain)
    return res


def score(name: str, output_u8, row: dict, *, lpips=None, cache=None) -> dict:
    """Score one deblurred image against its row under a protocol.

    Parameters
    ----------
    name : str
        One of :data:`PROTOCOLS`; ``default_protocol(row["params"])`` picks the set's own.
    output_u8 : (H, W, 3) uint8 ndarray
        The deblurred image (the row's ``blurred`` itself to score the input). A float array
        is taken as values in [0, 1] (unquantised scores).
    row : dict
        A decoded pair row (``PairDataset[i]``): ``blurred``, ``sharp`` (uint8, or None without
        ground truth), ``psf`` (Levin: the true kernel), ``gt_frames`` (Köhler: every
        ground-truth frame), ``params``.
    lpips : blursynth.nn.lpips.LPIPS, optional
        Adds ``lpips`` (lower is closer); NaN for a region under the backbone's smallest side
        (:data:`LPIPS_MIN_SIDE`).
    cache : dict, optional
        Shared by the calls that score one row (its blurred input, then its output): work that
        depends on the row alone (Levin's reference deconvolution) is done once.

    Returns
    -------
    dict of str to float
        With ground truth: ``psnr`` (dB), ``ssim`` (scikit-image's Gaussian SSIM, as
        :func:`blursynth.train.metrics.ssim`), ``ssim_matlab`` (MATLAB's ``ssim`` on the RGB
        array, a 3-D Gaussian window over rows, columns and colour:
        :func:`blursynth.train.metrics.ssim_matlab`), ``lpips`` when given, and the protocol's
        extras: realblur ``ecc_converged`` (1/0) and ``valid_fraction``; levin
        ``error_ratio``, ``shift_y``, ``shift_x``; kohler ``best_frame`` (index into
        ``gt_frames``), ``shift_y``, ``shift_x`` and ``gain`` fitted to that frame. Without
        ground truth (``sharp`` None) or under ``noref``: only ``sharpness``
        (:func:`sharpness`).

    Raises
    ------
    BadInputError
        An unknown protocol, or one the row cannot be scored with (levin without a kernel,
        kohler without frames).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sharp = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    >>> row = {"blurred": sharp, "sharp": sharp, "psf": None, "params": {}}
    >>> s = score("plain", sharp, row)
    >>> s["psnr"], s["ssim"], round(s["ssim_matlab"], 6)
    (inf, 1.0, 1.0)
    """
    if name not in PROTOCOLS:
        raise BadInputError(f"--protocol {name!r}: unknown; expected one of "
                            f"{', '.join(PROTOCOLS)} or auto.")
    out = np.asarray(output_u8)
    blurred = np.asarray(row["blurred"])
    if out.shape != blurred.shape:
        raise ValueError(f"output shape {out.shape} differs from the row's blurred image "
                         f"{blurred.shape}.")
    has_gt = row.get("sharp") is not None or bool(row.get("gt_frames"))
    if name == "noref" or not has_gt:
        return {"sharpness": sharpness(out)}
    x = as_unit_float(out)
    if name == "kohler":
        return _kohler(x, row, lpips)
    ref = as_unit_float(row["sharp"])
    if ref.shape != x.shape:
        raise ValueError(f"output shape {out.shape} differs from the row's sharp image "
                         f"{ref.shape}.")
    if name == "plain":
        return _full_scores(x, ref, lpips)
    if name == "levin":
        return _levin(x, ref, row, lpips, {} if cache is None else cache)
    a = align_to_reference(x, ref)
    res = masked_scores(a.aligned, ref, a.valid, lpips)
    res.update(ecc_converged=float(a.converged), valid_fraction=float(a.valid.mean()))
    return res
