"""Face crops as photos: scikit-image's bundled ``lfw_subset`` faces, enlarged and written as PNGs.

``skimage.data.lfw_subset()`` holds 200 grayscale 25 x 25 crops from Labeled Faces in the Wild
(Huang et al. 2007): the first 100 are faces, the last 100 are not. The faces are the one face
domain that ships with a package, so the UID recipe (``recipes/uid-faces.toml``) builds on them.
Each is enlarged with Lanczos resampling (so it is soft: 25 px of detail at any ``size``) and
replicated to RGB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SettingError

#: How many of ``lfw_subset``'s images are faces (its first ones).
N_FACES = 100
_NAME = re.compile(r"lfw_\d{3}\.png")


@dataclass(frozen=True)
class FaceCropSettings:
    """Which faces, at what size.

    Attributes
    ----------
    first : int
        Index of the first face (0-99).
    count : int
        How many consecutive faces (``first + count <= 100``).
    size : int
        Side of the written square photos in px (the crops are 25 px; 8-1024).
    """

    first: int = 0
    count: int = N_FACES
    size: int = 64

    def __post_init__(self):
        for key, lo, hi in (("first", 0, N_FACES - 1), ("count", 1, N_FACES), ("size", 8, 1024)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise SettingError(f"{key} must be an integer in [{lo}, {hi}]; got {v!r}.", key)
        if self.first + self.count > N_FACES:
            raise SettingError(f"first + count must be at most {N_FACES} (lfw_subset has {N_FACES} "
                               f"faces); got {self.first} + {self.count}.", "count")


def face_crops(settings: FaceCropSettings) -> list:
    """The selected faces as uint8 ``(size, size, 3)`` RGB arrays, in order.

    Examples
    --------
    >>> faces = face_crops(FaceCropSettings(first=3, count=2, size=32))
    >>> len(faces), faces[0].shape, faces[0].dtype
    (2, (32, 32, 3), dtype('uint8'))
    """
    import cv2
    from skimage import data

    faces = data.lfw_subset()[settings.first:settings.first + settings.count]
    out = []
    for face in faces:
        big = cv2.resize(face.astype(np.float32), (settings.size, settings.size),
                         interpolation=cv2.INTER_LANCZOS4)
        gray = np.clip(np.rint(big * 255.0), 0, 255).astype(np.uint8)
        out.append(np.repeat(gray[:, :, None], 3, axis=2))
    return out


def face_name(i: int) -> str:
    """The file name of ``lfw_subset`` image ``i``: ``lfw_007.png``."""
    return f"lfw_{i:03d}.png"


def write_face_crops(out, settings: FaceCropSettings) -> dict:
    """Write the selected faces into the folder ``out`` as ``lfw_NNN.png`` (its lfw index).

    The folder is the step's own: faces already there with the same bytes are kept, and
    ``lfw_NNN.png`` files of faces no longer selected are removed (nothing else is touched), so
    the folder holds exactly the selection.

    Returns
    -------
    summary : dict
        ``faces`` (how many), ``written`` (how many were new or changed), ``size``.
    """
    import cv2

    from .photos import save_rgb8

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [face_name(settings.first + k) for k in range(settings.count)]
    written = 0
    for name, face in zip(names, face_crops(settings)):
        path = out / name
        if path.exists():
            old = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if old is not None and old.shape == face.shape and np.array_equal(old[:, :, ::-1], face):
                continue
        save_rgb8(path, face)
        written += 1
    keep = set(names)
    for stale in out.iterdir():
        if _NAME.fullmatch(stale.name) and stale.name not in keep:
            stale.unlink()
    return {"faces": settings.count, "written": written, "size": settings.size}
