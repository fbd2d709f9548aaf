"""``blursynth build RECIPE``: run a whole pipeline from a pinned recipe."""

from __future__ import annotations

import json

import click

from ._common import positive_int, quiet_option, workers_option


@click.command()
@click.argument("recipe", type=click.Path())
@click.option("--out", type=click.Path(), default=None,
              help="Output folder (default: the recipe's [build] out, else builds/<recipe name>).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Run shards in a local process pool, or as Ray tasks.")
@click.option("--address", default=None, help="Ray cluster address (e.g. ray://head:10001); default: a local Ray instance.")
@click.option("--dry-run", is_flag=True, help="Validate the recipe and print the plan; write nothing.")
@click.option("--limit", type=int, default=None, callback=positive_int,
              help="Build only N pairs of each output, spread over its inputs (and at most N training steps): a quick look.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=PATH",
              help="Use PATH for the recipe's input NAME (e.g. --input photos=my/photos/).")
@click.option("--set", "sets", multiple=True, metavar="STEP.KEY=VALUE",
              help="Override one step setting, e.g. --set train.steps=200 (VALUE is read as TOML).")
@workers_option
@click.option("--overwrite", is_flag=True,
              help="Replace outputs a different recipe or setting made (e.g. after a --limit run) instead of refusing.")
@quiet_option
def build(recipe, out, executor, address, dry_run, limit, inputs, sets, workers, overwrite):
    """Run the pipeline a recipe describes: generators, then training and evaluation.

    Every step writes to OUT/<step name>; rerunning the same command resumes
    where it stopped. Each dataset's manifest records the recipe fingerprint.

    \b
    Examples:
      blursynth build recipes/deblurgan-synth.toml --dry-run
      blursynth build recipes/gopro-like.toml --limit 20 --out /tmp/quick
      blursynth build recipes/deblurgan-comb.toml --executor ray --address auto
    """
    from ..build import describe_plan, plan_build, run_build

    overrides = {}
    for item in inputs:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{item!r} is not NAME=PATH.", param_hint="--input")
        overrides[name] = path
    if address and executor != "ray":
        raise click.BadParameter("--address is for --executor ray.", param_hint="--address")
    plan = plan_build(recipe, out=out, limit=limit, executor=executor, address=address, input_overrides=overrides, sets=sets,
                      dry_run=dry_run, overwrite=overwrite)
    click.echo(describe_plan(plan))
    if dry_run:
        return
    summary = run_build(plan, workers=workers, progress_echo=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(summary["steps"], indent=1, sort_keys=True, default=str))
    click.echo(f"built {plan.out}/ (see build.json)")
