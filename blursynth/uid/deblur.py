"""``uid deblur``: the domain-specific deblurring of a trained UID model, photo by photo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class UIDDeblurSettings:
    """``blursynth uid deblur``: photos (files or folders) -> PNGs with the same relative names."""

    model: str
    inputs: tuple  # of str
    out: str
    device: str = "auto"
    overwrite: bool = False
    progress: bool = True


def deblur_array(nets, image_u8: np.ndarray) -> np.ndarray:
    """Deblur one photo of the model's blurred domain.

    The whole image goes through at once: the content encoder's instance normalisation takes
    its statistics over the image, so tiles would not give the same result.

    Parameters
    ----------
    nets : blursynth.uid.model.UIDNets
    image_u8 : (H, W, 3) uint8 ndarray
        RGB, H and W at least 16.

    Returns
    -------
    deblurred : (H, W, 3) uint8 ndarray

    Examples
    --------
    >>> from blursynth.uid.model import CONFIGS, build_uid
    >>> deblur_array(build_uid(CONFIGS["tiny"], seed=0), np.zeros((30, 41, 3), np.uint8)).shape
    (30, 41, 3)
    """
    from ..train.data import to_tensor
    from ..train.models import from_model_range, to_model_range
    from .model import deblur

    param = next(nets.parameters())
    x = to_model_range(to_tensor(image_u8)[None].to(param.device))
    with torch.no_grad():
        y = from_model_range(deblur(nets, x))
    return (y[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def uid_deblur_images(settings: UIDDeblurSettings) -> dict:
    """Deblur every input photo into ``out`` with the UID model ``settings.model``.

    The model is read first (a missing model or one of another kind is refused in one line),
    then the inputs are checked and written as ``blursynth deblur`` writes them
    (:func:`blursynth.train.evaluate.deblur_images`).

    Returns
    -------
    result : dict
        ``written`` (paths), ``notes``, ``model`` (``step`` and ``fingerprint``).
    """
    from ..nn.device import resolve_device
    from ..train.evaluate import DeblurSettings, deblur_images
    from .model import load_uid

    device = resolve_device(settings.device)
    nets, _, info = load_uid(settings.model, device)
    result = deblur_images(
        DeblurSettings(model=settings.model, inputs=tuple(settings.inputs), out=settings.out,
                       device=settings.device, overwrite=settings.overwrite,
                       progress=settings.progress),
        deblur_fn=lambda image: deblur_array(nets, image))
    return dict(result, model={"step": info["step"], "fingerprint": info["fingerprint"]})
