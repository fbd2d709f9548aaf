"""``blursynth cameras``: the camera profiles the RAW path (``blur --pipeline raw``) bundles."""

from __future__ import annotations

import math

import click


@click.command()
def cameras():
    """List the bundled camera profiles for 'blur --pipeline raw --camera NAME', with the noise
    profile each uses under '--noise profile' (the bundled 'darmstadt' line is the noise
    model's own, so for those cameras '--noise profile' draws what '--noise model' draws).

    \b
    'random' (the default) mixes the profiles marked 'mix' with weights drawn per pair.
    """
    from ..ops.raw import CAMERA_NOISE, CAMERAS, DEFAULT_MIX, NOISE_PROFILES

    width = max(len(name) for name in CAMERAS)
    for name, m in CAMERAS.items():
        tag = "mix" if name in DEFAULT_MIX else "   "
        matrix = " / ".join(" ".join(f"{v:.4f}" for v in m[i:i + 3]) for i in (0, 3, 6))
        noise = CAMERA_NOISE.get(name)
        noise = ("model (no published calibration)" if noise is None
                 else f"{noise} (the model's line)" if _is_model_line(NOISE_PROFILES[noise]) else noise)
        click.echo(f"{name:<{width}}  {tag}  XYZ->camera {matrix}  noise {noise}")
    click.echo("random: a convex mix of the 'mix' profiles, drawn per pair (noise: its heaviest camera's)")
    for name, profile in NOISE_PROFILES.items():
        lo, hi = (f"{math.exp(v):.2e}" for v in profile["shot_log_range"])
        slope, intercept, sigma = profile["read_line"]
        same = " (= --noise model)" if _is_model_line(profile) else ""
        click.echo(f"noise profile {name}{same}: shot {lo}-{hi} (log-uniform), ln(read^2) = {slope:g} "
                   f"ln(shot) + {intercept:g} + N(0, {sigma:g}^2); {profile['source']}")
    click.echo("no bundled per-camera calibration: give your camera's own with --noise profile:FILE.toml "
               "(docs/algorithms.md, 'Noise profiles')")


def _is_model_line(profile) -> bool:
    from ..ops.raw import READ_LINE, SHOT_LOG_RANGE

    return (tuple(profile["shot_log_range"]) == tuple(SHOT_LOG_RANGE)
            and tuple(profile["read_line"]) == tuple(READ_LINE))
