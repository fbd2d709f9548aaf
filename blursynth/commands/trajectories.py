"""``blursynth trajectories``: a bank of random camera-shake trajectories and their PSFs."""

from __future__ import annotations

import click

from ._common import (
    FractionList, echo_manifest, finite, odd_size, overwrite_option, positive_int, quiet_option, seed_option,
    workers_option,
)


@click.command()
@click.option("--n", "n", type=int, default=1000, show_default=True, callback=positive_int, help="Number of trajectories.")
@click.option("--out", type=click.Path(), required=True, help="Output dataset directory.")
@seed_option
@workers_option
@click.option("--exposures", type=FractionList(), default="0.01,0.1,0.5,1", show_default=True,
              help="Exposure fractions: one PSF each from the first part of the trajectory.")
@click.option("--psf-size", type=int, default=None, callback=odd_size,
              help="Fixed odd PSF side; by default each PSF is cropped to the odd square holding it.")
@click.option("--canvas", type=click.IntRange(3, 1025), default=64, show_default=True,
              help="Largest PSF side when --psf-size is not given (even values use the odd size below).")
@click.option("--centre", type=click.Choice(["mass", "bbox"]), default="mass", show_default=True,
              help="Centre PSFs on their centre of mass (keeps pairs aligned) or bounding box (DeblurGAN).")
@click.option("--samples", type=click.IntRange(2, 100000), default=2000, show_default=True, help="Positions per trajectory.")
@click.option("--length", "length_px", type=click.FloatRange(0, None, min_open=True), default=60.0, show_default=True,
              callback=finite,
              help="Path length in pixels.")
@click.option("--expl", type=click.FloatRange(0, 1, min_open=True), default=None, callback=finite,
              help="Fixed shake intensity; by default drawn from {0.01, 0.009, 0.008, 0.007, 0.005, 0.003}.")
@click.option("--keep-trajectories", is_flag=True, help="Store each trajectory (16 kB each at 2000 samples).")
@click.option("--shard-size", type=int, default=10000, show_default=True, callback=positive_int, help="Trajectories per shard.")
@overwrite_option
@quiet_option
def trajectories(n, out, seed, workers, exposures, psf_size, canvas, centre, samples, length_px, expl,
                 keep_trajectories, shard_size, overwrite):
    """Write a kernel bank: N random trajectories, each rasterized at every exposure.

    \b
    Example:
      blursynth trajectories --n 100000 --out bank/ --workers 2
      blursynth kernels preview bank/ --out sheet.png
    """
    from ..kernelbank import KernelBankConfig, write_kernel_bank
    from ..ops.trajectory import TrajectoryConfig

    config = KernelBankConfig(
        n=n, seed=seed, trajectory=TrajectoryConfig(n_samples=samples, length_px=length_px, expl=expl),
        exposures=exposures, psf_size=psf_size, centre=centre, canvas=canvas,
        keep_trajectories=keep_trajectories, shard_size=shard_size,
    )
    manifest = write_kernel_bank(out, config, workers=workers, overwrite=overwrite)
    echo_manifest(manifest, out)
