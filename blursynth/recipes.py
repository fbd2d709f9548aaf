"""Recipes: pinned TOML files that say how to build an output (read and validated here)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .errors import RecipeError

TRAJECTORY_KEYS = {
    "n", "seed", "exposures", "samples", "length", "expl", "canvas", "centre", "psf_size",
    "keep_trajectories", "shard_size",
}


def load_recipe(path) -> dict:
    """Parse a recipe file; one-line :class:`RecipeError` on a syntax error or missing file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        what = "a folder" if path.is_dir() else f"not a readable UTF-8 text file ({type(exc).__name__})"
        raise RecipeError(f"{path}: is {what}; expected a recipe .toml file such as recipes/deblurgan-synth.toml.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML ({exc}).") from None


def kernel_bank_config(section: dict, *, where: str = "recipe"):
    """A :class:`~blursynth.kernelbank.KernelBankConfig` from a ``[trajectories]`` table."""
    from .errors import BadInputError
    from .kernelbank import KernelBankConfig
    from .ops.trajectory import TrajectoryConfig

    unknown = sorted(set(section) - TRAJECTORY_KEYS)
    if unknown:
        raise RecipeError(
            f"{where}: unknown key {unknown[0]!r} in [trajectories]; known keys: {', '.join(sorted(TRAJECTORY_KEYS))}."
        )
    try:
        trajectory = TrajectoryConfig(
            n_samples=section.get("samples", 2000), length_px=float(section.get("length", 60.0)),
            expl=section.get("expl"),
        )
        return KernelBankConfig(
            n=section.get("n", 1000), seed=section.get("seed", 0), trajectory=trajectory,
            exposures=tuple(float(f) for f in section.get("exposures", (0.01, 0.1, 0.5, 1.0))),
            psf_size=section.get("psf_size"), centre=section.get("centre", "mass"),
            canvas=section.get("canvas", 64), keep_trajectories=bool(section.get("keep_trajectories", False)),
            shard_size=section.get("shard_size", 10000),
        )
    except (BadInputError, ValueError, TypeError) as exc:
        raise RecipeError(f"{where}: [trajectories]: {exc}") from None
