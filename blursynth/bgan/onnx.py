"""BGAN's generator in ONNX Runtime: ``bgan blur --engine onnxruntime`` (the CPU's default).

The same layers as :class:`blursynth.bgan.model.BlurGenerator`, written as an ONNX graph from
the checkpoint's weights, which are read without torch (:mod:`blursynth.nn.torchfile`): a run
starts in a fraction of a second rather than after torch's import. Its float arithmetic is ONNX
Runtime's, not torch's, so its pairs are its own bytes (a row records the engine that made it).
"""

from __future__ import annotations

import numpy as np

from ..nn.onnxgraph import Graph
from .config import MODEL_VERSION, NOISE_DIM, BGANConfig


def generator_shapes(config: BGANConfig) -> dict:
    """Name -> shape of every tensor of the generator's state dict.

    Examples
    --------
    >>> from blursynth.bgan.config import CONFIGS
    >>> s = generator_shapes(CONFIGS["tiny"])
    >>> len(s), s["head.weight"]
    (26, (8, 7, 3, 3))
    """
    w = int(config.width)
    convs = {"head": (w, 3 + NOISE_DIM), "tail.0": (w, w), "tail.2": (3, w)}
    for i in range(config.n_blocks):
        for j in range(config.convs_per_block):
            convs[f"blocks.{i}.body.{2 * j}"] = (w, w)
    shapes = {}
    for name, (c_out, c_in) in convs.items():
        shapes[f"{name}.weight"] = (c_out, c_in, 3, 3)
        shapes[f"{name}.bias"] = (c_out,)
    return shapes


def generator_graph(config: BGANConfig, weights: dict) -> Graph:
    """The generator between [0, 1] images: ``sharp`` (1, 3, H, W) and ``noise`` (1, 4, H, W),
    the noise vector at every pixel, give ``blurred`` in [0, 1], clamped."""
    g = Graph()

    def conv(x, name):
        return g.conv(x, weights[f"{name}.weight"], weights[f"{name}.bias"], pad=1)

    sharp = g.scale_shift(g.input("sharp", (1, 3, "h", "w")), 2.0, -1.0)
    features = conv(g.concat([sharp, g.input("noise", (1, NOISE_DIM, "h", "w"))]), "head")
    x = features
    for i in range(config.n_blocks):
        body = x
        for j in range(config.convs_per_block):
            body = conv(g.relu(body) if j else body, f"blocks.{i}.body.{2 * j}")
        x = g.add(x, body)
    out = conv(g.relu(conv(g.add(features, x), "tail.0")), "tail.2")
    if config.image_skip:
        out = g.add(out, sharp)
    g.output(g.clip(g.scale_shift(out, 0.5, 0.5), 0.0, 1.0), (1, 3, "h", "w"))
    return g


def _spans(length: int, core: int):
    return [(s, min(s + core, length)) for s in range(0, length, core)]


class OnnxBlurGenerator:
    """A BGAN generator run by ONNX Runtime on the CPU (one thread).

    Parameters
    ----------
    config : BGANConfig
    weights : dict
        Name -> float32 array, the generator's state dict (:func:`generator_shapes`).

    Examples
    --------
    >>> from blursynth.bgan.config import CONFIGS
    >>> cfg = CONFIGS["tiny"]
    >>> zero = {k: np.zeros(s, np.float32) for k, s in generator_shapes(cfg).items()}
    >>> gen = OnnxBlurGenerator(cfg, zero)
    >>> photo = np.full((5, 7, 3), 200, np.uint8)
    >>> bool((gen.blur_image(photo, np.zeros(4, np.float32)) == photo).all())  # image skip
    True
    """

    engine = "onnxruntime"

    def __init__(self, config: BGANConfig, weights: dict):
        self.config = config
        self._weights = weights
        self._session = None

    def receptive_radius(self) -> int:
        return self.config.receptive_radius

    def _run(self, sharp, noise_map):
        if self._session is None:
            self._session = generator_graph(self.config, self._weights).session()
        return self._session.run(None, {"sharp": sharp, "noise": noise_map})[0]

    def blur_image(self, photo: np.ndarray, noise, *, tile: int = 512) -> np.ndarray:
        """Blur a uint8 (H, W, 3) photo with a noise vector, in ``tile``-px tiles with a halo of
        the receptive radius when large (whole-image arithmetic, as the torch engine's); uint8
        out."""
        if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
            raise ValueError(f"photo must be uint8 (H, W, 3); got {photo.dtype} {photo.shape}.")
        x = np.ascontiguousarray(photo.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
        z = np.asarray(noise, np.float32).reshape(1, NOISE_DIM, 1, 1)
        h, w = photo.shape[:2]
        r = self.receptive_radius()
        out = np.empty_like(x)
        for y0, y1 in _spans(h, tile):
            for x0, x1 in _spans(w, tile):
                wy0, wy1, wx0, wx1 = max(y0 - r, 0), min(y1 + r, h), max(x0 - r, 0), min(x1 + r, w)
                window = np.ascontiguousarray(x[..., wy0:wy1, wx0:wx1])
                noise_map = np.ascontiguousarray(np.broadcast_to(z, (1, NOISE_DIM, wy1 - wy0, wx1 - wx0)))
                part = self._run(window, noise_map)
                out[..., y0:y1, x0:x1] = part[..., y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
        return np.ascontiguousarray((out[0] * np.float32(255)).round().astype(np.uint8).transpose(1, 2, 0))


def read_generator(path):
    """The generator of a BGAN model folder (or its checkpoint file) for ONNX Runtime, read
    without torch, and its ``info`` as :func:`blursynth.bgan.train.load_bgan_generator` gives it.

    Raises
    ------
    OSError, blursynth.nn.torchfile.UnreadableCheckpoint
        No file, or one this reader does not take (another kind, another version, weights that
        do not fit): torch's loader then reads it or words the refusal.
    """
    from ..nn.runs import BGAN_FORMAT
    from ..nn.torchfile import read_model_weights

    config, weights, ckpt, fingerprint = read_model_weights(
        path, format=BGAN_FORMAT, version=MODEL_VERSION, key="generator",
        config_from=BGANConfig.from_dict, shapes=generator_shapes)
    info = {"config": config.to_dict(), "step": int(ckpt.get("step", 0)), "fingerprint": fingerprint}
    return OnnxBlurGenerator(config, weights), info
