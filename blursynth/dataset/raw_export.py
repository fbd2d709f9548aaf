"""``dataset export --raw``: how a RAW-path row's noisy blurred RAW mosaic is written, with its metadata.

The mosaic itself is rebuilt by the generator that made the row
(:mod:`blursynth.pairs.raw_mosaic`); the export is handed that rebuilder, so this package
imports no generator.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np

from ..errors import native_noise_quiet

RAW_FORMATS = ("png16", "npy")
PNG16_WHITE = 65535  # a png16 mosaic's value for the sensor's white level
#: The sidecar's statement of the highlight-preserving inverse gains (Brooks et al., CVPR 2019).
HIGHLIGHT_RULE = ("unprocessing multiplied each camera channel by max(m + (1 - m) / g, 1 / g), g = that channel's "
                  "white_balance_gains * digital_gain, m = min(max(t - highlight_knee, 0) / (1 - highlight_knee), "
                  "1)^2, t = the pixel's camera-space grey (mean of R, G, B); developing solves for t per pixel "
                  "above the knee. docs/algorithms.md, 'RAW path': 'linear sRGB -> camera' (unprocess) and 'Back "
                  "to linear sRGB' (develop)")


def is_raw_row(params: dict) -> bool:
    """Whether a row was made on the RAW path (it has a camera)."""
    return isinstance(params, dict) and params.get("raw") is not None


def raw_metadata(params: dict, fmt: str, shape) -> dict:
    """The JSON sidecar of an exported mosaic: what a RAW-domain method needs to read it."""
    from ..ops.raw import HIGHLIGHT_KNEE, RawParams

    p = RawParams.from_dict(params["raw"])
    preserve = p.highlights == "preserve"
    white = PNG16_WHITE if fmt == "png16" else p.white_level
    return {
        "format": fmt,
        "shape": [int(shape[0]), int(shape[1])],
        "bayer_pattern": p.bayer,  # the 2x2 tile from the top-left site, row by row
        "white_level": white,
        "black_level": 0,
        "scaling": ("value / 65535 is the linear RAW value (1.0 = the sensor's white level); noise below 0 "
                    "is clipped to 0" if fmt == "png16" else
                    "float32 linear RAW values (1.0 = the sensor's white level); noise below 0 is kept"),
        "bits": p.raw_bits,
        "white_balance_gains": [p.red_gain, 1.0, p.blue_gain],
        "digital_gain": p.digital_gain,
        "xyz_to_cam": [list(p.xyz_to_cam[i:i + 3]) for i in (0, 3, 6)],
        "rgb_to_cam": p.rgb_to_cam.tolist(),
        "cam_to_rgb": p.cam_to_rgb.tolist(),
        "noise": {"shot": p.shot_noise, "read": p.read_noise,
                  "variance": "shot * x + read**2 at linear RAW value x (white level 1.0)"},
        "camera": p.camera,
        "camera_weights": p.camera_weights,
        "highlights": p.highlights,
        # The mosaic holds unprocessed colours: with "preserve" the inverse gains were not plain
        # above the knee, so developing it needs the rule, not only the gains.
        "highlight_knee": HIGHLIGHT_KNEE if preserve else None,
        "highlight_rule": (HIGHLIGHT_RULE if preserve else
                           "none: the camera colours are the developed ones divided by gains * digital_gain"),
        "demosaic": p.demosaic,
        "crf": params.get("crf"),
    }


def write_raw(folder: Path, name: str, mosaic: np.ndarray, params: dict, fmt: str) -> str:
    """Write ``folder/name.png`` (16-bit) or ``.npy`` and ``folder/name.json``; the image's file name."""
    import cv2

    if fmt == "npy":
        file = f"{name}.npy"
        np.save(folder / file, np.asarray(mosaic, np.float32))
    else:
        file = f"{name}.png"
        img = np.rint(np.clip(mosaic, 0.0, 1.0) * PNG16_WHITE).astype(np.uint16)
        with native_noise_quiet():
            wrote = cv2.imwrite(str(folder / file), img)
        if not wrote:
            raise OSError(errno.EIO, "could not write the file (is the disk full?)", str(folder / file))
    meta = {"file": file, **raw_metadata(params, fmt, mosaic.shape)}
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return file
