"""UID's blur transfer in ONNX Runtime: ``uid blur --engine onnxruntime`` (the CPU's default).

The sharp-domain content encoder, the shared block and the blurred-domain generator
(:func:`blursynth.uid.model.transfer_blur`), and the blur encoder's mean code
(:meth:`blursynth.uid.model.UIDNets.blur_code`), written as ONNX graphs from the checkpoint's
weights, which are read without torch (:mod:`blursynth.nn.torchfile`). The float arithmetic is
ONNX Runtime's, so the pairs are this engine's own bytes (a row records the engine).
"""

from __future__ import annotations

import numpy as np

from ..nn.onnxgraph import Graph
from .config import MODEL_VERSION, UIDConfig, padding


def _conv(shapes: dict, name: str, c_out: int, c_in: int, k: int, *, transposed: bool = False):
    shapes[f"{name}.weight"] = (c_in, c_out, k, k) if transposed else (c_out, c_in, k, k)
    shapes[f"{name}.bias"] = (c_out,)


def _res_block(shapes: dict, name: str, c: int, z_dim: int = 0):
    _conv(shapes, f"{name}.conv1.1", c, c, 3)
    _conv(shapes, f"{name}.conv2.1", c, c, 3)
    if z_dim:
        shapes[f"{name}.film.weight"] = (4 * c, z_dim)
        shapes[f"{name}.film.bias"] = (4 * c,)


def nets_shapes(config: UIDConfig) -> dict:
    """Name -> shape of every tensor of :class:`blursynth.uid.model.UIDNets`' state dict.

    Examples
    --------
    >>> from blursynth.uid.config import CONFIGS
    >>> s = nets_shapes(CONFIGS["tiny"])
    >>> s["gen_blurred.up.0.weight"], s["blur_encoder.mu.weight"]
    ((32, 16, 4, 4), (4, 32))
    """
    w, c, bw, z = config.width, 4 * config.width, config.blur_width, config.z_dim
    shapes = {}
    for domain in ("blurred", "sharp"):
        stem = f"content_{domain}.stem"
        _conv(shapes, f"{stem}.1", w, 3, 7)
        _conv(shapes, f"{stem}.4", 2 * w, w, 4)
        _conv(shapes, f"{stem}.7", c, 2 * w, 4)
        for i in range(config.content_blocks - 1):
            _res_block(shapes, f"content_{domain}.blocks.{i}", c)
        gen = f"gen_{domain}"
        for i in range(config.generator_blocks):
            _res_block(shapes, f"{gen}.blocks.{i}", c, z if domain == "blurred" else 0)
        _conv(shapes, f"{gen}.up.0", 2 * w, c, 4, transposed=True)
        _conv(shapes, f"{gen}.up.3", w, 2 * w, 4, transposed=True)
        _conv(shapes, f"{gen}.up.7", 3, w, 7)
        c_in = 3
        for i in range(config.critic_layers):
            c_out = min(config.critic_width * 2 ** i, 8 * config.critic_width)
            _conv(shapes, f"critic_{domain}.net.{2 * i}", c_out, c_in, 4)
            c_in = c_out
        _conv(shapes, f"critic_{domain}.net.{2 * config.critic_layers}", 1, c_in, 3)
    _res_block(shapes, "content_shared", c)
    chans = [3, bw, 2 * bw, 4 * bw, 4 * bw]
    for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
        _conv(shapes, f"blur_encoder.features.{2 * i}", b, a, 4)
    for head in ("mu", "logvar"):
        shapes[f"blur_encoder.{head}.weight"] = (z, chans[-1])
        shapes[f"blur_encoder.{head}.bias"] = (z,)
    return shapes


class _Layers:
    """UID's layers on a :class:`Graph`, named as its state dict names them."""

    def __init__(self, g: Graph, weights: dict):
        self.g, self.w = g, weights

    def conv(self, x, name, *, stride=1, pad=0, transposed=False):
        w, b = self.w[f"{name}.weight"], self.w[f"{name}.bias"]
        if transposed:
            return self.g.conv_transpose(x, w, b, stride=stride, pad=pad)
        return self.g.conv(x, w, b, stride=stride, pad=pad)

    def norm_relu(self, x, channels):
        return self.g.relu(self.g.instance_norm(x, channels))

    def padded_conv_norm(self, x, name, channels):
        return self.g.instance_norm(self.conv(self.g.reflect_pad(x, 1), name), channels)

    def res_block(self, x, name, channels, z=None):
        g = self.g
        if z is None:
            h = g.relu(self.padded_conv_norm(x, f"{name}.conv1.1", channels))
            return g.add(x, self.padded_conv_norm(h, f"{name}.conv2.1", channels))
        one = g.weight(np.float32(1))
        g1, b1, g2, b2 = g.channels(g.linear(z, self.w[f"{name}.film.weight"],
                                             self.w[f"{name}.film.bias"]), 4)
        h = g.relu(g.add(g.mul(self.padded_conv_norm(x, f"{name}.conv1.1", channels),
                               g.add(one, g1)), b1))
        h = g.mul(self.padded_conv_norm(h, f"{name}.conv2.1", channels), g.add(one, g2))
        return g.add(g.add(x, h), b2)


def transfer_graph(config: UIDConfig, weights: dict) -> Graph:
    """``x`` (1, 3, H, W) in [-1, 1], sides multiples of 4, and a code ``z`` (1, z_dim) give
    the blurred image (1, 3, H, W) in (-1, 1): ``make_blurred(content(x, "sharp"), z)``."""
    g = Graph()
    n = _Layers(g, weights)
    w, c = config.width, 4 * config.width
    x = g.input("x", (1, 3, "h", "w"))
    z = g.input("z", (1, config.z_dim))
    stem = "content_sharp.stem"
    x = n.norm_relu(n.conv(g.reflect_pad(x, 3), f"{stem}.1"), w)
    x = n.norm_relu(n.conv(x, f"{stem}.4", stride=2, pad=1), 2 * w)
    x = n.norm_relu(n.conv(x, f"{stem}.7", stride=2, pad=1), c)
    for i in range(config.content_blocks - 1):
        x = n.res_block(x, f"content_sharp.blocks.{i}", c)
    x = n.res_block(x, "content_shared", c)
    for i in range(config.generator_blocks):
        x = n.res_block(x, f"gen_blurred.blocks.{i}", c, z)
    x = n.norm_relu(n.conv(x, "gen_blurred.up.0", stride=2, pad=1, transposed=True), 2 * w)
    x = n.norm_relu(n.conv(x, "gen_blurred.up.3", stride=2, pad=1, transposed=True), w)
    g.output(g.tanh(n.conv(g.reflect_pad(x, 3), "gen_blurred.up.7")), (1, 3, "h", "w"))
    return g


def code_graph(config: UIDConfig, weights: dict) -> Graph:
    """``x`` (1, 3, H, W) in [-1, 1], H, W >= 16, gives the blur encoder's mean code (1, z_dim)."""
    g = Graph()
    n = _Layers(g, weights)
    x = g.input("x", (1, 3, "h", "w"))
    for i in range(4):
        x = g.leaky_relu(n.conv(x, f"blur_encoder.features.{2 * i}", stride=2, pad=1), 0.2)
    g.output(g.linear(g.global_mean(x), weights["blur_encoder.mu.weight"],
                      weights["blur_encoder.mu.bias"]), (1, config.z_dim))
    return g


def _model_range(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [-1, 1]."""
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    return x / np.float32(127.5) - np.float32(1)


class OnnxUID:
    """UID's blur transfer and blur encoder run by ONNX Runtime on the CPU (one thread).

    Parameters
    ----------
    config : UIDConfig
    weights : dict
        Name -> float32 array, the networks' state dict (:func:`nets_shapes`).
    """

    engine = "onnxruntime"

    def __init__(self, config: UIDConfig, weights: dict):
        self.config = config
        self._weights = weights
        self._sessions = {}

    @property
    def z_dim(self) -> int:
        return int(self.config.z_dim)

    def _run(self, which: str, feeds: dict):
        if which not in self._sessions:
            make = transfer_graph if which == "transfer" else code_graph
            self._sessions[which] = make(self.config, self._weights).session()
        return self._sessions[which].run(None, feeds)[0]

    def transfer(self, photo: np.ndarray, code: np.ndarray) -> np.ndarray:
        """The uint8 (H, W, 3) photo blurred with ``code`` ((1, z_dim) float32); uint8 out."""
        h, w = photo.shape[:2]
        ph, pw, mode = padding(h, w)
        x = _model_range(photo)
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect" if mode == "reflect" else "edge")
        y = self._run("transfer", {"x": x, "z": code})[0, :, :h, :w]
        y = np.clip((y + np.float32(1)) * np.float32(127.5), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(y.transpose(1, 2, 0))

    def encode(self, reference: np.ndarray) -> np.ndarray:
        """The blur encoder's mean code of a uint8 (H, W, 3) image: (z_dim,) float32."""
        return self._run("code", {"x": _model_range(reference)}).reshape(-1).astype(np.float32)


def read_nets(path):
    """UID's networks of a model folder (or its checkpoint file) for ONNX Runtime, read without
    torch, and ``info`` as :func:`blursynth.pairs.uid.load_model` gives it.

    Raises
    ------
    OSError, blursynth.nn.torchfile.UnreadableCheckpoint
        No file, or one this reader does not take: torch's loader then reads it or words the
        refusal.
    """
    from ..nn.runs import UID_FORMAT
    from ..nn.torchfile import read_model_weights

    config, weights, ckpt, fingerprint = read_model_weights(
        path, format=UID_FORMAT, version=MODEL_VERSION, key="nets", config_from=UIDConfig.from_dict,
        shapes=nets_shapes, skip="critic_")
    info = {"fingerprint": fingerprint, "step": int(ckpt.get("step", 0)), "config": config.name}
    return OnnxUID(config, weights), info
