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


def pair_sheet(rows, *, height: int = 160, title: str | None = None) -> np.ndarray:
    """A contact sheet with one line per pair: blurred | sharp | PSF (if any) | label.

    Parameters
    ----------
    rows : iterable of dict
        Decoded pairs (``blurred``, ``sharp`` uint8 (H, W, 3); ``psf`` or None; ``id``; ``source``).
    height : int
        Thumbnail height in pixels.

    Returns
    -------
    sheet : (H, W, 3) uint8 ndarray
    """
    import cv2

    lines = []
    for row in rows:
        b = _fit(row["blurred"], height)
        s = _fit(row["sharp"], height)
        parts = [b, np.full((height, 4, 3), 24, np.uint8), s]
        psf = row.get("psf")
        if psf is not None:
            k = psf.shape[0]
            scale = max(1, height // max(k, 1))
            tile = _fit(psf_tile(psf, k, scale=scale), height)
            parts += [np.full((height, 4, 3), 24, np.uint8), tile]
        line = np.concatenate(parts, axis=1)
        label = np.full((16, line.shape[1], 3), 24, np.uint8)
        text = f"{row.get('id', '')}  [{row.get('source', '')}]  {row['blurred'].shape[1]}x{row['blurred'].shape[0]}"
        if psf is not None:
            text += f"  PSF {psf.shape[1]}x{psf.shape[0]} (scaled to fit)"
        cv2.putText(label, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (220, 220, 220), 1, cv2.LINE_AA)
        lines.append(np.concatenate([label, line], axis=0))
    if not lines:
        raise ValueError("no rows to show")
    width = max(l.shape[1] for l in lines)
    padded = [np.pad(l, ((0, 6), (0, width - l.shape[1]), (0, 0)), constant_values=24) for l in lines]
    sheet = np.concatenate(padded, axis=0)
    if title:
        head = np.full((22, width, 3), 24, np.uint8)
        cv2.putText(head, title[: max(10, width // 7)], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (240, 240, 240), 1, cv2.LINE_AA)
        sheet = np.concatenate([head, sheet], axis=0)
    return sheet


def dataset_sheet(path, *, count: int = 8, height: int = 160, start: int = 0, stride: int | None = None,
                  verify: bool = True) -> np.ndarray:
    """Contact sheet of ``count`` pairs of a dataset, evenly spread unless ``stride`` is given;
    ``verify`` checks each shard read against the manifest."""
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
    return pair_sheet((ds[i] for i in picks), height=height, title=title)
