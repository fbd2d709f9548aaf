"""``blursynth kernels preview|stats``: look at a kernel bank."""

from __future__ import annotations

import json

import click

from ._common import no_verify_option, positive_int


@click.group()
def kernels():
    """Look at a kernel bank written by 'blursynth trajectories'."""


@kernels.command()
@click.argument("bank", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG file to write.")
@click.option("--count", type=int, default=32, show_default=True, callback=positive_int, help="Kernels to show.")
@click.option("--columns", type=int, default=4, show_default=True, callback=positive_int, help="Kernels per row.")
@click.option("--start", type=click.IntRange(0, None), default=0, show_default=True, help="First kernel shown.")
@click.option("--scale", type=click.IntRange(1, 8), default=2, show_default=True, help="Pixels per PSF pixel.")
@no_verify_option
def preview(bank, out, count, columns, start, scale, no_verify):
    """Contact sheet of PSFs: each kernel at every exposure fraction, left to right."""
    from ..sources.photos import save_rgb8
    from ..kernelbank import contact_sheet

    sheet = contact_sheet(bank, count=count, columns=columns, scale=scale, start=start,
                          verify=not no_verify)
    save_rgb8(out, sheet, option="--out")
    click.echo(f"wrote {out} ({sheet.shape[0]}x{sheet.shape[1]} HxW)")


@kernels.command()
@click.argument("bank", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@no_verify_option
def stats(bank, as_json, no_verify):
    """Distribution of support size, peak energy and trajectory extent per exposure."""
    from ..kernelbank import kernel_stats

    result = kernel_stats(bank, verify=not no_verify)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(f"{bank}: {result['n']} kernels")
    header = f"{'exposure':>8}  {'measure':<22}{'mean':>9}{'min':>9}{'p5':>9}{'median':>9}{'p95':>9}{'max':>9}"
    click.echo(header)
    labels = {
        "support_px": "support (non-zero px)",
        "side_px": "PSF side (px)",
        "max_energy": "max-pixel energy",
        "extent_px": "trajectory extent (px)",
        "clipped": "mass clipped",
    }
    for frac, entry in result["exposures"].items():
        for key, label in labels.items():
            s = entry[key]
            fmt = "{:>9.4f}" if key in ("max_energy", "clipped") else "{:>9.1f}"
            nums = "".join(fmt.format(s[k]) for k in ("mean", "min", "p05", "p50", "p95", "max"))
            click.echo(f"{frac:>8}  {label:<22}{nums}")
