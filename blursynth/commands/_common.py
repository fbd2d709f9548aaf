"""Option types and helpers shared by the command modules (click only: no heavy imports)."""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction

import click


def parse_fraction(text: str) -> float:
    """``"0.5"`` or ``"1/2"`` to a float; ValueError otherwise."""
    text = text.strip()
    value = float(Fraction(text)) if "/" in text else float(text)
    if value != value:  # NaN
        raise ValueError(text)
    return value


class FractionList(click.ParamType):
    """Comma-separated exposure fractions in (0, 1], e.g. ``0.01,0.1,0.5,1`` or ``1/100,1``."""

    name = "fractions"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        out = []
        for part in str(value).split(","):
            try:
                f = parse_fraction(part)
            except (ValueError, ZeroDivisionError):
                self.fail(f"{part.strip()!r} is not a number; expected fractions in (0, 1] like 0.01,0.1,0.5,1", param, ctx)
            if not 0 < f <= 1:
                self.fail(f"{part.strip()} is outside (0, 1]; an exposure fraction keeps that part of the trajectory", param, ctx)
            out.append(f)
        if len(set(out)) != len(out):
            self.fail(f"{value!r} repeats a value", param, ctx)
        return tuple(out)


def positive_int(ctx, param, value):
    if value is not None and value < 1:
        raise click.BadParameter(f"must be a positive integer; got {value}.", ctx, param)
    return value


def finite(ctx, param, value):
    """Refuse nan and inf, which click's FloatRange lets through (every comparison with nan is false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number; got {value}.", ctx, param)
    return value


def raw_bits_option(ctx, param, value):
    """``N`` or ``LO-HI`` (drawn per pair) to an int or (lo, hi); the settings check the range."""
    if value is None:
        return None
    try:
        nums = [int(p) for p in value.split("-")]
    except ValueError:
        nums = []
    if len(nums) not in (1, 2):
        raise click.BadParameter(f"expected a number of bits like 12 or a range like 10-14; got {value!r}.")
    return nums[0] if len(nums) == 1 else tuple(nums)


def _set_quiet(ctx, param, value):
    if value:
        from .._progress import set_quiet

        set_quiet(True)
    return value


#: ``--quiet`` for a command that passes no progress setting on: it silences every bar the
#: command draws (blursynth._progress), and the CLI sets that back when the command ends.
quiet_option = click.option("--quiet", is_flag=True, expose_value=False, callback=_set_quiet,
                            help="No progress bar.")


def learned_writer_options(f):
    """--engine, --png-level, --shard-size and --strict of the learned-blur pair writers (bgan
    blur, uid blur), spelled and explained the same in both."""
    options = [
        click.option("--engine", type=click.Choice(["auto", "onnxruntime", "torch"]), default="auto",
                     show_default=True,
                     help="Where the network runs: onnxruntime (CPU; starts without importing torch) "
                          "or torch (CPU or GPU). auto: torch on a GPU or to resume a dataset torch "
                          "made, else onnxruntime. The engines' pairs can differ by one level in a "
                          "rare pixel; each row records its engine."),
        click.option("--png-level", type=click.IntRange(0, 9), default=None,
                     help="zlib level; default is the fast fpng encoder."),
        click.option("--shard-size", type=int, default=256, show_default=True,
                     callback=positive_int, help="Pairs per shard."),
        click.option("--strict", is_flag=True,
                     help="Stop at the first unreadable photo instead of skipping it."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def camera_options(f):
    """The RAW path's camera choices, spelled and explained the same in every command that has them."""
    options = [
        click.option("--camera", default=None, metavar="NAME|random",
                     help="RAW path: a bundled camera profile ('blursynth cameras' lists them) or random (a mix "
                          "per pair; the default)."),
        click.option("--demosaic", type=click.Choice(["bilinear", "malvar"]), default=None,
                     help="RAW path: demosaicing method (default malvar)."),
        click.option("--raw-bits", default=None, callback=raw_bits_option, metavar="N|LO-HI",
                     help="RAW path: quantise RAW values to N bits (10-14), or to a number drawn per pair (off "
                          "by default)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def raw_only_degrade_options(f):
    """``--noise`` and ``--jpeg`` of commands that add them on the RAW path only (frames-average,
    bgan blur), spelled and explained the same in each."""
    options = [
        click.option("--noise", default=None, metavar="SHOT[,READ]|model|profile[:NAME|:FILE]",
                     help="RAW path: Poisson-Gaussian noise in the RAW mosaic, as blur's --noise: SHOT[,READ] "
                          "values or LO-HI ranges, 'model' (levels drawn per pair from a camera noise model) or "
                          "'profile[:NAME]' (from a camera's noise profile, 'blursynth cameras'; the bundled one "
                          "is the model's line), 'profile:FILE.toml' (your camera's calibration); off by default."),
        click.option("--jpeg", default=None,
                     help="RAW path: JPEG quality range of the blurred image, e.g. 70-95 (off by default)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def odd_size(ctx, param, value):
    if value is not None and (value < 3 or value % 2 == 0):
        raise click.BadParameter(
            f"must be an odd integer >= 3; got {value}. Try {max(3, value | 1)}.", ctx, param
        )
    return value


#: Environment variable that sets the default ``--workers`` (a shared machine, a job script).
WORKERS_ENV = "BLURSYNTH_WORKERS"


#: The default ``--workers`` of a run on a GPU: each worker holds its own CUDA context, model
#: copy and batches on the device, so one worker per core would run a small GPU out of memory.
GPU_DEFAULT_WORKERS = 1


def default_workers() -> int:
    """The default ``--workers``: every core this process may use.

    Examples
    --------
    >>> default_workers() >= 1
    True
    """
    from .._threads import available_cores

    return available_cores()


@contextlib.contextmanager
def photos_decoded_ahead(photos, out, workers: int):
    """Within the block, with more than one worker, a spare core decodes PHOTOS while the
    command starts (:func:`blursynth.sources.decode_ahead.decode_ahead`); the decoder and the
    photos nobody took go at its end, however it ends. Only for a new ``out``: a resumed run
    needs later photos. ``workers``: the count the writer will use
    (:func:`workers_for_device`); one worker is one core, and gets none.
    """
    import os

    from .._threads import available_cores

    if min(int(workers), available_cores()) < 2 or os.path.lexists(out):
        yield
        return
    from ..sources import decode_ahead

    decode_ahead.decode_ahead(photos, exclude=out)
    try:
        yield
    finally:
        decode_ahead.end_decode_ahead()


def blas_on_one_thread() -> None:
    """Have NumPy's and SciPy's OpenBLAS start no threads of their own in this command (and the
    processes it starts), unless ``OPENBLAS_NUM_THREADS`` is set; nothing once NumPy is loaded.
    The ``blursynth`` group calls it for :data:`blursynth.cli.NUMBA_COMMANDS`, before their
    options are read (converting one may load NumPy).

    Each OpenBLAS a process loads (NumPy's, and SciPy's through Numba's target) starts a thread
    per further core, which spins waiting for work that these commands never give it: a one-pair
    ``blur`` spent 0.94 CPU s with them and 0.69 without, the difference taken from the core
    that decodes photos ahead. Where the work is parallel it is so by processes, and the few
    small matrix products (colour matrices) are as fast on one thread.
    """
    import os
    import sys

    if "numpy" not in sys.modules:  # once loaded, its threads are there
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def refuse_unused_options(needs: dict) -> None:
    """Refuse an option given on the command line that only another option makes count.

    ``needs`` maps an option's parameter name to ``(whether it counts now, what it needs)``,
    e.g. ``{"jpeg_quality": (fmt == "jpeg", "--format jpeg")}``: one line naming both, exit 2.
    Call it inside the command.
    """
    ctx = click.get_current_context()
    for name, (counts, needed) in needs.items():
        if not counts and ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT):
            option = "--" + name.replace("_", "-")
            raise click.UsageError(f"{option} applies only with {needed}; add it, or drop {option}.")


def workers_for_device(workers: int, device: str) -> int:
    """The worker count a writer on ``device`` uses: ``workers``, except that a default count
    (no ``--workers``, no ``$BLURSYNTH_WORKERS``) becomes :data:`GPU_DEFAULT_WORKERS` when the
    device resolves to anything but the CPU. Call it inside the command (it reads how click got
    ``--workers``).

    Examples
    --------
    >>> workers_for_device(3, "cpu")  # outside a command: the count as given
    3
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.get_parameter_source("workers") != click.core.ParameterSource.DEFAULT:
        return workers
    from ..nn.device import resolve_device_name

    return workers if resolve_device_name(device) == "cpu" else GPU_DEFAULT_WORKERS


class _Workers(click.ParamType):
    """A positive process count; a bad ``$BLURSYNTH_WORKERS`` is named as such."""

    name = "integer"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            n = value
        else:
            try:
                n = int(str(value).strip())
            except ValueError:
                n = None
        if n is None or n < 1:
            if ctx is not None and param is not None and ctx.get_parameter_source(
                    param.name) == click.core.ParameterSource.ENVIRONMENT:
                self.fail(f"{WORKERS_ENV}={value} in the environment is not a positive integer; "
                          f"unset it or give --workers N.", param, ctx)
            self.fail(f"must be a positive integer; got {value}.", param, ctx)
        source = ctx.get_parameter_source(param.name) if ctx is not None and param is not None else None
        if source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
            from .._threads import available_cores

            cores = available_cores()
            if n > cores:  # allowed (the same bytes), but the processes share the cores
                given = f"{WORKERS_ENV}={n}" if source == click.core.ParameterSource.ENVIRONMENT \
                    else f"--workers {n}"
                click.echo(f"warning: {given} is more than the {cores} core{'s' * (cores != 1)} this "
                           "process may use; the extra worker processes share them (same output, no "
                           "faster).", err=True)
        return n


workers_option = click.option(
    "--workers", type=_Workers(), default=default_workers, envvar=WORKERS_ENV, show_default=False,
    help=f"Worker processes, one core each: this one and N-1 more (the output is identical "
         f"whatever the number). Default: ${WORKERS_ENV}, else every core this process may use "
         f"(on a GPU device: {GPU_DEFAULT_WORKERS}).",
)
#: ``--device`` (resolved by :func:`blursynth.nn.device.resolve_device` when the command runs).
device_option = click.option("--device", default="auto", show_default=True,
                             help="auto (CUDA if present), cpu, cuda or cuda:N.")
seed_option = click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Run seed.")
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace an existing dataset made by a different command."
)
#: ``--no-verify`` of the commands that read datasets or kernel banks.
no_verify_option = click.option(
    "--no-verify", "no_verify", is_flag=True,
    help="Do not check each shard's sha256 against manifest.json as it is opened (one read of "
         "every shard used); rows that fail to decode are still refused.",
)


def _kept_shards(manifest: dict) -> int:
    """Shards of ``manifest`` an earlier run wrote and this one kept (0 for a plain manifest)."""
    return len(manifest["shards"]) - getattr(manifest, "shards_written", len(manifest["shards"]))


def echo_manifest(manifest: dict, out) -> None:
    """The line a writing command ends with: what it wrote, or that an earlier run of the same
    command had written some or all of it (``manifest.shards_written``,
    :class:`~blursynth.dataset.writer.WrittenManifest`)."""
    n, n_shards = manifest["num_rows"], len(manifest["shards"])
    rows = f"row{'' if n == 1 else 's'}"
    fp = f"(fingerprint {manifest['fingerprint']})"
    kept = _kept_shards(manifest)
    if kept == 0:
        click.echo(f"wrote {n} {rows} in {n_shards} shard(s) to {out} {fp}")
    elif kept == n_shards:
        click.echo(f"nothing to do: {out} already holds its {n} {rows} in {n_shards} shard(s), "
                   f"written by an earlier run of this command {fp}")
    else:
        written = getattr(manifest, "rows_written", n)
        click.echo(f"wrote {written} of {n} {rows} ({n_shards - kept} of {n_shards} shards) to "
                   f"{out}; an earlier run of this command wrote the rest {fp}")


def echo_photo_pairs(manifest: dict, out) -> None:
    """:func:`echo_manifest`, then a warning for the photos (and scene blur's pairs) the pairs
    were made without (``write_photo_pairs``'s counts)."""
    echo_manifest(manifest, out)
    # A photo refused when its header was read is warned about on every run; one that fails
    # only when decoded, by the run that rendered its pairs.
    see = "see the warnings above" + ("" if _kept_shards(manifest) == 0 else ", or an earlier run's")
    if manifest.get("skipped_photos"):
        click.echo(f"warning: skipped {manifest['skipped_photos']} unreadable photo(s); {see} "
                   "(--strict stops instead)", err=True)
    if manifest.get("skipped_pairs"):  # only scene blur skips single pairs
        click.echo(f"warning: skipped {manifest['skipped_pairs']} pair(s) whose objects are cut from a photo "
                   f"that does not decode; {see} (manifest.json lists them)", err=True)


def interrupted_run(out):
    """The error for Ctrl-C during ``train`` or ``bgan train`` into the run folder ``out``: with no
    checkpoint there yet the run is started again, with one it is continued with ``--resume``.
    Raise it ``from None`` (the traceback of the interrupt says nothing to the user)."""
    from pathlib import Path

    from ..errors import Interrupted
    from ..nn.runs import CHECKPOINT

    if not (Path(out) / CHECKPOINT).is_file():
        return Interrupted.of(f" before the first checkpoint; rerun the same command to start "
                              f"again in {out}.")
    return Interrupted.of(f"; {out} keeps its last checkpoint: rerun the same command with "
                          f"--resume to continue.")


def note_fresh_resume(out, resume: bool, kind) -> None:
    """Say so when ``--resume`` finds no checkpoint in ``--out`` and so starts a new run there
    (allowed, so a job can always be launched with --resume; a mistyped --out would otherwise
    pass unnoticed). One line on stderr, from the first process only under torchrun. A folder
    the run may not write into (a dataset, a file, someone's files) is refused first, in the
    trainer's own words (``kind``: the run's :class:`~blursynth.nn.runs.RunKind`)."""
    import os
    from pathlib import Path

    from ..nn.runs import CHECKPOINT, open_run_folder

    if resume and os.environ.get("RANK", "0") == "0" and not (Path(out) / CHECKPOINT).exists():
        open_run_folder(out, kind)
        click.echo(f"note: {out} holds no checkpoint to resume; starting a new run there.",
                   err=True)


def unpaired_run_options(sample_sheet: str):
    """The run options ``bgan train`` and ``uid train`` share, from ``--seed`` to ``--quiet``
    (in that order in ``--help``); ``sample_sheet`` says what a sheet's columns are."""
    options = [
        seed_option,
        device_option,
        click.option("--workers", type=click.IntRange(0, None), default=0, show_default=True,
                     help="Data loader worker processes (the samples do not depend on it)."),
        click.option("--sample-every", type=click.IntRange(1, None), default=500,
                     show_default=True, help=f"Steps between sample sheets ({sample_sheet})."),
        click.option("--checkpoint-every", type=click.IntRange(1, None), default=500,
                     show_default=True, help="Steps between checkpoints."),
        click.option("--log-every", type=click.IntRange(1, None), default=10, show_default=True,
                     help="Steps between metric rows."),
        click.option("--max-minutes", type=click.FloatRange(0, None, min_open=True), default=None,
                     callback=finite,
                     help="Stop (with a checkpoint) after this long; --resume continues."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint."),
        no_verify_option,
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]

    def apply(f):
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def run_unpaired_training(train, settings, out, describe_last, kind) -> None:
    """Run ``train(settings)`` (``bgan train``, ``uid train``) and echo its summary line;
    ``describe_last(losses)`` words the last logged losses. Ctrl-C says how to go on. ``kind``:
    the run's RunKind (for :func:`note_fresh_resume`)."""
    note_fresh_resume(out, settings.resume, kind)
    try:
        summary = train(settings)
    except KeyboardInterrupt:
        raise interrupted_run(out) from None
    last = summary["last"]
    msg = f"trained {summary['steps']}/{summary['total_steps']} steps into {summary['out']}"
    if summary["stopped"] == "time":
        msg += " (time limit; --resume continues)"
    if last:
        msg += "; " + describe_last(last)
    click.echo(msg + f"; model fingerprint {summary['fingerprint']}")
