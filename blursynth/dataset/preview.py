"""Pictures of datasets: contact sheets of (blurred, sharp, PSF) rows, and PSF tiles."""

from __future__ import annotations

import numpy as np


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if h > height else cv2.INTER_NEAREST
    return cv2.resize(image, (width, height), interpolation=interp)


def psf_tile(psf: np.ndarray, side: int, *, scale: int = 2) -> np.ndarray:
    """A PSF as an RGB tile (inferno colour map, square-root scaled) of ``side*scale`` pixels."""
    import cv2

    k = psf.shape[0]
    canvas = np.zeros((side, side), np.float32)
    if k > side:
        c = (k - side) // 2
        psf = psf[c : c + side, c : c + side]
        k = side
    o = (side - k) // 2
    peak = float(psf.max()) or 1.0
    canvas[o : o + k, o : o + k] = np.sqrt(psf / peak)
    gray = np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)
    rgb = cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO)[:, :, ::-1]
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def field_overlay(blurred: np.ndarray, field: np.ndarray, mask: np.ndarray | None = None,
                  points=None) -> np.ndarray:
    """The blurred image with its PSF field drawn over it (scene blur), and its motion mask.

    Each local PSF is drawn at the image's own scale (a blur k px long covers k pixels), centred
    on its grid point, in green, each scaled to its peak (square root, as :func:`psf_tile`);
    pixels of the motion mask are tinted red.

    Parameters
    ----------
    blurred : (H, W, 3) uint8 ndarray
    field : (gy, gx, k, k) float ndarray
    mask : (H, W) uint8 ndarray or None
    points : ((gy,) ys, (gx,) xs) or None
        Pixel rows and columns of the grid points (default: the field's own,
        :func:`blursynth.ops.camera6d.grid_points`).

    Returns
    -------
    (H, W, 3) uint8 ndarray

    Examples
    --------
    >>> field = np.zeros((2, 2, 3, 3), np.float32); field[:, :, 1, 1] = 1
    >>> out = field_overlay(np.zeros((8, 8, 3), np.uint8), field, points=([2, 6], [2, 6]))
    >>> out[2, 2].tolist(), out[0, 0].tolist()
    ([0, 255, 0], [0, 0, 0])
    """
    out = blurred.astype(np.float32)
    if mask is not None and mask.any():
        m = (mask > 0)[..., None] * np.float32(0.45)
        out = out * (1 - m) + np.array([255.0, 40.0, 40.0], np.float32) * m
    gy, gx, k = field.shape[0], field.shape[1], field.shape[2]
    h, w = blurred.shape[:2]
    if points is None:
        from ..ops.camera6d import grid_points

        xy = grid_points((h, w), (gy, gx))
        points = (xy[::gx, 1], xy[:gx, 0])
    ys, xs = points
    r = k // 2
    green = np.array([0.0, 255.0, 0.0], np.float32)
    for i in range(gy):
        for j in range(gx):
            psf = np.asarray(field[i, j], np.float32)
            a = np.sqrt(psf / (float(psf.max()) or 1.0))
            y0, x0 = int(round(float(ys[i]))) - r, int(round(float(xs[j]))) - r
            ya, xa = max(y0, 0), max(x0, 0)
            yb, xb = min(y0 + k, h), min(x0 + k, w)
            if ya >= yb or xa >= xb:
                continue
            alpha = a[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
            out[ya:yb, xa:xb] = out[ya:yb, xa:xb] * (1 - alpha) + green * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


_BACKGROUND = 24
_TEXT_LINE = 14  # pixels per caption line


def caption_lines(row) -> list[str]:
    """The two caption lines of a pair: what it is and where it came from, then how it was made.

    The first line holds the row id, the way (``source`` column), the image size (HxW) and the
    source file (photo, video and frames, or imported files); the second the exposure, the noise,
    the JPEG quality and, when drawn, the highlight boost and the exposure gain (``saturation``,
    its old name, in older rows), and the camera response (``crf``) where the row records one.

    Examples
    --------
    >>> row = {"id": "000007", "source": "trajectory", "blurred": np.zeros((96, 128, 3), np.uint8),
    ...        "params": {"photo": "a/cat.png", "exposure": 0.5, "shot_noise": 0.002,
    ...                   "read_noise": 0.001, "jpeg_quality": 80}}
    >>> caption_lines(row)
    ['000007  trajectory  96x128  cat.png', 'exposure: 1/2 of the path  noise shot 0.002, read 0.001  JPEG q80']
    """
    from fractions import Fraction
    from pathlib import PurePath

    p = row.get("params") or {}
    h, w = row["blurred"].shape[:2]
    where = p.get("photo") or p.get("video") or p.get("blurred_path") or ""
    where = PurePath(str(where)).name
    if "frame_start" in p and "frame_stop" in p:
        where += f" frames {p['frame_start']}-{int(p['frame_stop']) - 1}"
    first = f"{row.get('id', '')}  {row.get('source', '')}  {h}x{w}  {where}".rstrip()
    if p.get("set"):  # an imported test set: which set and split
        first += f"  {p['set']} {p.get('split') or ''}".rstrip()
    if "exposure_s" in p:
        frames = p.get("averaged_frames", p.get("window_frames"))
        exposure = f"exposure: {1000 * float(p['exposure_s']):.3g} ms ({frames} frames)"
    elif isinstance(p.get("camera"), dict):  # scene blur: the 6-DoF path, not one PSF
        cam = p["camera"]
        exposure = (f"{p.get('motion')} path {float(cam.get('length_px', 0)):.3g} px, "
                    f"{cam.get('n_subframes', '?')} sub-frames, f {float(cam.get('focal_px', 0)):.4g} px")
        if p.get("rolling_shutter"):
            exposure += f", rolling shutter {float(p['rolling_shutter']):.2g}"
        if p.get("objects"):
            exposure += f", {len(p['objects'])} object(s)"
        if p.get("defocus"):
            exposure += f", defocus up to {float(p['defocus'].get('max_coc_px', 0)):.3g} px"
    elif "exposure" in p:
        fraction = Fraction(float(p["exposure"])).limit_denominator(1000)
        exposure = "exposure: the whole path" if fraction == 1 else f"exposure: {fraction} of the path"
    else:
        exposure = "exposure n/a"
    raw = p.get("raw") if isinstance(p.get("raw"), dict) else None
    if raw is not None:  # blur --pipeline raw: the noise is in RAW space
        if raw.get("shot_noise") or raw.get("read_noise"):
            noise = (f"RAW noise shot {float(raw.get('shot_noise') or 0):.2g}, "
                     f"read {float(raw.get('read_noise') or 0):.2g}")
            profile = raw.get("noise_profile")
            if profile in ("model", "darmstadt"):  # the bundled darmstadt line is the model's
                noise += " (model line)"
            elif profile:
                noise += f" ({profile} calibration)"
        else:
            noise = "no noise added"
        bits = f" {raw['raw_bits']}-bit" if raw.get("raw_bits") is not None else ""
        first += f"  RAW {raw.get('camera', '?')} {raw.get('bayer', '?')}{bits} {raw.get('demosaic', '?')}"
    elif p.get("shot_noise") is not None or p.get("read_noise") is not None:
        noise = f"noise shot {float(p.get('shot_noise') or 0):.2g}, read {float(p.get('read_noise') or 0):.2g}"
    elif row.get("source") == "real":  # a captured pair: whatever noise the camera recorded
        noise = "the camera's own noise"
    else:
        noise = "no noise added"
    jpeg = f"JPEG q{p['jpeg_quality']}" if p.get("jpeg_quality") is not None else "no JPEG"
    second = f"{exposure}  {noise}  {jpeg}"
    if p.get("highlight_gain") is not None:
        second += f"  highlights x{float(p['highlight_gain']):.3g}"
        if p.get("highlight_regions") is not None:
            second += f" (+ regions <= {int(p['highlight_regions'])} px)"
    if p.get("exposure_gain") is not None:
        second += f"  exposure gain x{float(p['exposure_gain']):.3g}"
    if p.get("saturation") is not None:
        second += f"  saturation x{float(p['saturation']):.3g}"
    if p.get("psf_clipped"):
        second += f"  PSF clipped {100 * float(p['psf_clipped']):.2g}%"
    if p.get("crf") is not None:  # the camera response the pair was blurred (or averaged) through
        second += f"  crf {p['crf']}"
    if p.get("ground_truth") is False:
        second += "  no ground truth"
    if p.get("gt_frame_count"):
        second += f"  {p['gt_frame_count']} ground-truth frames (sharp: frame {p.get('sharp_frame')})"
    return [first, second]


_FONT = (0, 0.38)  # cv2.FONT_HERSHEY_SIMPLEX at the captions' scale


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines that fit ``width`` pixels: broken at its double spaces (between fields),
    a field too long for a line at its spaces, and a word too long for a line cut."""
    import cv2

    def fits(t):
        return cv2.getTextSize(t, *_FONT, 1)[0][0] <= width

    lines = []
    for field in text.split("  "):
        if lines and fits(f"{lines[-1]}  {field}"):
            lines[-1] = f"{lines[-1]}  {field}"
            continue
        if fits(field):
            lines.append(field)
            continue
        for j, word in enumerate(field.split(" ")):
            if j and fits(f"{lines[-1]} {word}"):
                lines[-1] = f"{lines[-1]} {word}"
                continue
            while not fits(word) and len(word) > 1:
                word = word[:-1]
            lines.append(word)
    return lines


def _centre_crop(image: np.ndarray, height: int, line: int) -> np.ndarray:
    """The centre of ``image`` at 1:1, at most ``height`` x ``height`` (no more than the image
    holds), on a ``line`` px tall strip: a smaller image is never padded out to the size asked."""
    h, w = image.shape[:2]
    ch, cw = min(height, h), min(height, w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    out = np.full((line, cw, 3), _BACKGROUND, np.uint8)
    oy = (line - ch) // 2
    out[oy : oy + ch] = image[y0 : y0 + ch, x0 : x0 + cw]
    return out


def _crop_sizes(rows, height: int) -> list[tuple[int, int]]:
    """The 1:1 crop of each row's images: ``height`` square, cut to what the image holds."""
    return [(min(height, min(row[k].shape[0] for k in ("blurred", "sharp") if row[k] is not None)),
             min(height, min(row[k].shape[1] for k in ("blurred", "sharp") if row[k] is not None))) for row in rows]


def _crops_text(sizes, height: int) -> str:
    """The header's account of the 1:1 crops, in the sizes drawn (HxW)."""
    shown = sorted(set(sizes))
    if shown == [(height, height)]:
        return f"images: {height}x{height} centre crops at 1:1"
    sizes_text = ", ".join(f"{h}x{w}" for h, w in shown)
    return f"images: {sizes_text} centre crops at 1:1 (HxW; {height}x{height} asked, cut to the images)"


def pair_sheet(rows, *, height: int = 160, title: str | None = None, crop_full_res: bool = False) -> np.ndarray:
    """A contact sheet with one line per pair: caption, then blurred | sharp | PSF (if any).

    Every PSF of the sheet is drawn at one scale, on a canvas the side of the sheet's largest
    PSF, so a 3 px blur looks smaller than a 37 px one; the header says the scale.

    Parameters
    ----------
    rows : iterable of dict
        Decoded pairs (``blurred``, ``sharp`` uint8 (H, W, 3); ``psf`` or None; ``id``;
        ``source``; ``params``, read for the captions by :func:`caption_lines`).
    height : int
        Thumbnail height in pixels (and, with ``crop_full_res``, the side of the crops).
    crop_full_res : bool
        Show the ``height`` x ``height`` centre of each image at 1:1 (one image pixel per sheet
        pixel, so noise and JPEG artefacts show) instead of the whole image scaled to fit; an
        image smaller than that is shown whole, and the header says the sizes drawn.

    Returns
    -------
    sheet : (H, W, 3) uint8 ndarray
    """
    import cv2

    rows = list(rows)
    if not rows:
        raise ValueError("no rows to show")
    asked = height
    if crop_full_res:
        # Lines as tall as the tallest crop: --height 300 on 64x64 images shows 64x64 crops,
        # not 64 px of image in 300 px of padding.
        crops = _crop_sizes(rows, asked)
        height = max(h for h, _ in crops)
    psfs = [row.get("psf") for row in rows]
    side = max((p.shape[0] for p in psfs if p is not None), default=0)
    magnify = max(1, height // side) if side else 1
    gap = np.full((height, 4, 3), _BACKGROUND, np.uint8)
    lines = []
    for row, psf in zip(rows, psfs):
        show = (lambda im: _centre_crop(im, asked, height)) if crop_full_res else (lambda im: _fit(im, height))
        sharp = row["sharp"] if row["sharp"] is not None else _no_truth(row["blurred"])
        parts = [show(row["blurred"]), gap, show(sharp)]
        if row.get("psf_field") is not None:  # scene blur: where the blur differs, and how
            parts += [gap, show(field_overlay(row["blurred"], row["psf_field"], row.get("motion_mask")))]
        if psf is not None:
            tile = psf_tile(psf, side, scale=magnify)
            if tile.shape[0] > height:  # the largest PSF is taller than a line: all shrink alike
                tile = cv2.resize(tile, (height, height), interpolation=cv2.INTER_AREA)
            pad = (height - tile.shape[0]) // 2
            tile = np.pad(tile, ((pad, height - tile.shape[0] - pad), (0, 0), (0, 0)), constant_values=_BACKGROUND)
            parts += [gap, tile]
        line = np.concatenate(parts, axis=1)
        text = caption_lines(row)
        if psf is not None:
            text[0] += f"  PSF {psf.shape[0]}x{psf.shape[1]}"
        text = [wrapped for t in text for wrapped in _wrap(t, line.shape[1] - 8)]
        label = np.full((_TEXT_LINE * len(text) + 4, line.shape[1], 3), _BACKGROUND, np.uint8)
        for j, t in enumerate(text):
            cv2.putText(label, t, (4, _TEXT_LINE * (j + 1) - 2), *_FONT, (220, 220, 220), 1, cv2.LINE_AA)
        lines.append(np.concatenate([label, line], axis=0))
    width = max(l.shape[1] for l in lines)
    padded = [np.pad(l, ((0, 6), (0, width - l.shape[1]), (0, 0)), constant_values=_BACKGROUND) for l in lines]
    sheet = np.concatenate(padded, axis=0)
    heads = [title] if title else []
    if side:
        scale = f"{magnify} px per PSF pixel" if side * magnify <= height else f"{height}/{side} px per PSF pixel"
        heads.append(f"PSFs at one scale, {scale}, on a {side}x{side} canvas")
    if crop_full_res:
        heads.append(_crops_text(crops, asked))
    if heads:
        heads = [wrapped for t in heads for wrapped in _wrap(t, width - 8)]
        head = np.full((_TEXT_LINE * len(heads) + 8, width, 3), _BACKGROUND, np.uint8)
        for j, t in enumerate(heads):
            cv2.putText(head, t, (4, _TEXT_LINE * (j + 1)), *_FONT, (240, 240, 240), 1, cv2.LINE_AA)
        sheet = np.concatenate([head, sheet], axis=0)
    return sheet


def _no_truth(blurred: np.ndarray) -> np.ndarray:
    """The sharp tile of an image without ground truth: the background, crossed, at the blurred size."""
    import cv2

    tile = np.full(blurred.shape, _BACKGROUND, np.uint8)
    h, w = tile.shape[:2]
    cv2.line(tile, (0, 0), (w - 1, h - 1), (90, 90, 90), max(1, min(h, w) // 64))
    cv2.line(tile, (0, h - 1), (w - 1, 0), (90, 90, 90), max(1, min(h, w) // 64))
    return tile


def dataset_sheet(path, *, count: int = 8, height: int = 160, start: int = 0, stride: int | None = None,
                  verify: bool = True, crop_full_res: bool = False) -> np.ndarray:
    """Contact sheet of ``count`` pairs of a dataset, evenly spread unless ``stride`` is given;
    ``verify`` checks each shard read against the manifest; ``crop_full_res``: see :func:`pair_sheet`."""
    from ..errors import BadInputError
    from .reader import PairDataset

    ds = PairDataset(path, verify=verify)
    n = len(ds)
    if start >= n:
        raise BadInputError(f"--start {start} is past the end of {path} ({n} pairs).")
    count = min(count, n - start)
    if stride is None:
        stride = max(1, (n - start) // count)
    picks = [start + j * stride for j in range(count) if start + j * stride < n]
    title = f"{path}: {n} pairs (blurred | sharp | PSF)"
    if ds[picks[0]].get("psf") is None:  # captured pairs have no PSF
        title = f"{path}: {n} pairs (blurred | sharp)"
    if ds.manifest.get("command", {}).get("scene"):
        title = (f"{path}: {n} pairs (blurred | sharp | blurred with its PSF field in green, object motion "
                 "in red | PSF at the centre)")
    return pair_sheet((ds[i] for i in picks), height=height, title=title, crop_full_res=crop_full_res)
