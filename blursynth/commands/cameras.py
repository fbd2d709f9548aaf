"""``blursynth cameras``: the camera profiles the RAW path (``blur --pipeline raw``) bundles."""

from __future__ import annotations

import click


@click.command()
def cameras():
    """List the bundled camera profiles for 'blur --pipeline raw --camera NAME'.

    \b
    'random' (the default) mixes the profiles marked 'mix' with weights drawn per pair.
    """
    from ..ops.raw import CAMERAS, DEFAULT_MIX

    width = max(len(name) for name in CAMERAS)
    for name, m in CAMERAS.items():
        tag = "mix" if name in DEFAULT_MIX else "   "
        matrix = " / ".join(" ".join(f"{v:.4f}" for v in m[i:i + 3]) for i in (0, 3, 6))
        click.echo(f"{name:<{width}}  {tag}  XYZ->camera {matrix}")
    click.echo("random: a convex mix of the 'mix' profiles, drawn per pair")
