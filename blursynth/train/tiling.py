"""Deblurring of images of any size: tiles with a halo, blended seams, whole-image statistics.

Two kinds of layer look at the whole image: InstanceNorm (DeblurGAN), whose statistics are
means over the whole image, and global average pooling (``AdaptiveAvgPool2d(1)``: NAFNet's
simplified channel attention), whose output is one. A tile run on its own would see only its
own means. In ``"global"`` mode these whole-image statistics are first gathered over the whole
image, layer by layer in the order the network runs them and tile by tile (each tile's core
only), then frozen, and the tiles are run with them: the result equals whole-image inference
(to float rounding) while only one tile's activations are ever in memory. ``"tile"`` mode skips
that pass (which costs about 10x the multiply-adds of plain tiling on DeblurGAN's paper config,
by count) and lets each tile use its own means; the blended seams then hide the small
differences between neighbouring tiles. Every other layer is local, so a halo of the
generator's ``receptive_radius()`` around each tile's core is enough. Sizes and tile corners are
multiples of the generator's ``multiple`` (4 unless it says: its number of stride-2 steps). A
generator whose ``tiling`` attribute is ``"whole"`` is always run on the whole image.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .models import Generator, from_model_range, to_model_range

MULTIPLE = 4  # DeblurGAN's two stride-2 convs: sizes and tile corners must be multiples of 4


def multiple_of(generator) -> int:
    """The side every input of ``generator`` must be a multiple of."""
    return int(getattr(generator, "multiple", MULTIPLE))


def tile_halo(generator, blend: int) -> int:
    """Pixels each tile reads beyond its core on every side: the generator's reach plus the
    seam's cross-fade, rounded up so tile corners stay on its multiple."""
    blend = _round_up(max(int(blend), 0), MULTIPLE)
    return _round_up(generator.receptive_radius() + blend, multiple_of(generator))


def smallest_tile(generator, blend: int) -> int:
    """The smallest tile side that leaves a core inside the halo: tiles of at least this size
    run (:func:`deblur_tensor`); smaller ones are refused when an image would need tiles.

    Examples
    --------
    >>> import torch
    >>> from blursynth.train.models import CONFIGS, build_models
    >>> g, _ = build_models(CONFIGS["small"], seed=0)
    >>> tile = smallest_tile(g, 16)
    >>> x = torch.rand(1, 3, 8, tile + 8)  # wider than a tile: run in tiles
    >>> deblur_tensor(g, x, tile=tile, blend=16).shape[-1] == tile + 8
    True
    >>> deblur_tensor(g, x, tile=tile - multiple_of(g), blend=16)
    Traceback (most recent call last):
    ...
    ValueError: tile ... leaves no room inside its halo of ... px on each side; use a tile of at least ...
    """
    return 2 * tile_halo(generator, blend) + multiple_of(generator)


def _is_stat_layer(m) -> bool:
    """Layers whose output depends on means over the whole image."""
    if isinstance(m, nn.InstanceNorm2d):
        return True
    return isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1))


class _Stop(Exception):
    """Raised inside a forward pass once the statistics it was run for are gathered."""


def _round_up(x, m):
    return int(math.ceil(x / m) * m)


def _spans(length, core):
    """Split [0, length) into consecutive spans of ``core`` (the last may be shorter)."""
    return [(s, min(s + core, length)) for s in range(0, length, core)]


def _ramp(n, lo, hi, c0, c1, blend, device, dtype):
    """1-D weights over [lo, hi): 1 inside the core [c0, c1), falling to 0 linearly across
    2 * blend px centred on each core edge that is not the image edge."""
    p = torch.arange(lo, hi, device=device, dtype=dtype) + 0.5
    w = torch.ones_like(p)
    if blend > 0:
        if c0 > 0:
            w = torch.minimum(w, ((p - (c0 - blend)) / (2 * blend)).clamp(0, 1))
        if c1 < n:
            w = torch.minimum(w, (((c1 + blend) - p) / (2 * blend)).clamp(0, 1))
    return w


def deblur_tensor(generator: Generator, image, *, tile=512, blend=16, norm_stats="global"):
    """Run the generator on a ``(1, 3, H, W)`` image in [0, 1], in tiles when it is large.

    Parameters
    ----------
    generator : Generator
        Put in eval mode here; runs on its own device.
    image : (1, 3, H, W) float tensor
        [0, 1], any H, W >= 8; moved to the generator's device and dtype.
    tile : int
        Largest tile side in pixels (input side, halo included), rounded down to a multiple of
        the generator's ``multiple`` (4 for DeblurGAN). An image that fits in one tile is run
        whole.
    blend : int
        Width in px on each side of a seam over which neighbouring tiles are cross-faded.
    norm_stats : {"global", "tile"}
        Where InstanceNorm statistics and global pooled means come from: the whole image
        (exact) or each tile.

    Returns
    -------
    out : (1, 3, H, W) tensor
        Deblurred, in [0, 1], on the generator's device.

    Examples
    --------
    >>> import torch
    >>> from blursynth.train.models import CONFIGS, build_models
    >>> g, _ = build_models(CONFIGS["small"], seed=0)
    >>> x = torch.rand(1, 3, 96, 200)  # 2 x 4 tiles of 160 px at most
    >>> whole = deblur_tensor(g, x, tile=1024)
    >>> tiled = deblur_tensor(g, x, tile=160, blend=8, norm_stats="global")
    >>> bool((whole - tiled).abs().max() < 1e-4)
    True
    """
    if norm_stats not in ("global", "tile"):
        raise ValueError(f"norm_stats must be 'global' or 'tile'; got {norm_stats!r}.")
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image must be (1, 3, H, W); got {tuple(image.shape)}.")
    h, w = image.shape[-2:]
    if min(h, w) < 8:
        raise ValueError(f"image must be at least 8 px a side; got {h}x{w}.")
    multiple = multiple_of(generator)
    if tile % MULTIPLE:
        raise ValueError(f"tile must be a multiple of {MULTIPLE}; got {tile}.")
    tile = tile // multiple * multiple
    param = next(generator.parameters())
    generator.eval()
    x = to_model_range(image.to(param))
    hp, wp = _round_up(h, multiple), _round_up(w, multiple)
    if (hp, wp) != (h, w):
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    with torch.no_grad():
        if (hp <= tile and wp <= tile) or getattr(generator, "tiling", None) == "whole":
            out = generator(x)
        else:
            out = _run_tiles(generator, x, tile, blend, norm_stats, multiple)
    return from_model_range(out[..., :h, :w])


def _run_tiles(generator, x, tile, blend, norm_stats, multiple=MULTIPLE):
    hp, wp = x.shape[-2:]
    halo = tile_halo(generator, blend)
    blend = _round_up(max(int(blend), 0), MULTIPLE)
    core = tile - 2 * halo
    if core < multiple:
        raise ValueError(
            f"tile {tile} leaves no room inside its halo of {halo} px on each side; use a tile "
            f"of at least {smallest_tile(generator, blend)}."
        )
    tiles = []
    for y0, y1 in _spans(hp, core):
        for x0, x1 in _spans(wp, core):
            ty0, tx0 = max(y0 - halo, 0), max(x0 - halo, 0)
            ty1, tx1 = min(y1 + halo, hp), min(x1 + halo, wp)
            tiles.append(((y0, y1, x0, x1), (ty0, ty1, tx0, tx1)))

    handles = []
    try:
        if norm_stats == "global":
            # In the order the forward pass runs them: each layer's statistics are gathered
            # with every earlier one's already frozen.
            for norm in _stat_layers_in_run_order(generator, x, tiles[0][1]):
                stats = _gather_stats(generator, x, tiles, norm)
                hook = _frozen_hook(*stats) if isinstance(norm, nn.InstanceNorm2d) \
                    else _frozen_mean_hook(stats[0])
                handles.append(norm.register_forward_hook(hook))
        out = torch.zeros_like(x)
        weight = torch.zeros_like(x[:, :1])
        for (y0, y1, x0, x1), (ty0, ty1, tx0, tx1) in tiles:
            piece = generator(x[..., ty0:ty1, tx0:tx1])
            # Each tile writes its core plus `blend` px past each inner seam.
            ry0, ry1 = max(y0 - blend, 0), min(y1 + blend, hp)
            rx0, rx1 = max(x0 - blend, 0), min(x1 + blend, wp)
            wy = _ramp(hp, ry0, ry1, y0, y1, blend, x.device, x.dtype)
            wx = _ramp(wp, rx0, rx1, x0, x1, blend, x.device, x.dtype)
            wt = (wy[:, None] * wx[None, :])[None, None]
            out[..., ry0:ry1, rx0:rx1] += wt * piece[..., ry0 - ty0:ry1 - ty0, rx0 - tx0:rx1 - tx0]
            weight[..., ry0:ry1, rx0:rx1] += wt
        return out / weight
    finally:
        for hnd in handles:
            hnd.remove()


def _stat_layers_in_run_order(generator, x, box):
    """The whole-image-statistics layers of ``generator``, in the order one forward pass (on the
    tile ``box``) runs them; each must run once per pass, or it has no one statistic to freeze."""
    layers = [m for m in generator.modules() if _is_stat_layer(m)]
    if not layers:
        return []
    order = []

    def record(module, inputs):
        if any(m is module for m in order):
            raise ValueError(f"{type(module).__name__} runs more than once per forward pass; "
                             "this generator cannot be tiled with whole-image statistics.")
        order.append(module)

    handles = [m.register_forward_pre_hook(record) for m in layers]
    try:
        ty0, ty1, tx0, tx1 = box
        generator(x[..., ty0:ty1, tx0:tx1])
    finally:
        for hnd in handles:
            hnd.remove()
    return order


def _frozen_mean_hook(mean):
    def hook(module, inputs, output):
        x = inputs[0]
        return mean.to(x.dtype).expand(x.shape[0], -1, -1, -1)
    return hook


def _frozen_hook(mean, var):
    def hook(module, inputs, output):
        x = inputs[0]
        return (x - mean.to(x.dtype)) / torch.sqrt(var.to(x.dtype) + module.eps)
    return hook


def _gather_stats(generator, x, tiles, norm):
    """Mean and (biased) variance per channel of ``norm``'s input over the whole image."""
    # Layers after a stride-2 step see the tile at 1/2, 1/4, ... of its size; tile corners are
    # multiples of the generator's ``multiple``, so every core maps onto whole pixels.
    acc = {}
    th = [0]

    def pre_hook(module, inputs):
        a = inputs[0]
        scale = th[0] // a.shape[-2]  # 1, 2 or 4: this layer's stride
        (y0, y1, x0, x1), (ty0, _, tx0, _) = acc["tile"]
        region = a[..., (y0 - ty0) // scale:(y1 - ty0) // scale,
                   (x0 - tx0) // scale:(x1 - tx0) // scale].double()
        acc["sum"] = acc.get("sum", 0) + region.sum(dim=(0, 2, 3))
        acc["sq"] = acc.get("sq", 0) + (region * region).sum(dim=(0, 2, 3))
        acc["n"] = acc.get("n", 0) + region.shape[-1] * region.shape[-2]
        raise _Stop

    handle = norm.register_forward_pre_hook(pre_hook)
    try:
        for core, (ty0, ty1, tx0, tx1) in tiles:
            acc["tile"] = (core, (ty0, ty1, tx0, tx1))
            th[0] = ty1 - ty0
            try:
                generator(x[..., ty0:ty1, tx0:tx1])
            except _Stop:
                pass
    finally:
        handle.remove()
    mean = acc["sum"] / acc["n"]
    var = (acc["sq"] / acc["n"] - mean * mean).clamp_min(0)
    return mean.view(1, -1, 1, 1), var.view(1, -1, 1, 1)
