"""Planning a recipe (every step validated, nothing written) and running the plan in order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import canonical_json
from ..dataset.outputs import OutputKind, atomic_write_text, claim, hidden_or_log, lock_output
from ..errors import BadInputError, SettingError
from .recipe import INPUT_OVERRIDE, Recipe, Resolver, read_inputs, read_recipe
from .steps import BUILD_FILES, STEP_KINDS, prepare_step

#: Written first into a build folder: a folder without it (or an older build's build.json) is
#: not a build, so its recipe.toml and build.json are someone else's.
BUILD_MARKER = ".blursynth-build.json"


@dataclass
class Plan:
    """A validated recipe: its inputs and steps, and how to run them."""

    recipe: Recipe
    out: Path
    inputs: dict
    steps: list
    limit: int | None
    executor: str
    address: str | None
    overwrite: bool = False


def plan_build(recipe_path, *, out=None, limit=None, executor="local", address=None,
               input_overrides=None, sets=None, dry_run=False, overwrite=False,
               input_override=INPUT_OVERRIDE) -> Plan:
    """Read and validate a recipe into a plan; nothing is written.

    ``input_override``: how the caller's user gives an input another path, as
    :func:`~blursynth.build.recipe.read_inputs` names it in refusals.

    Raises
    ------
    RecipeError
        Naming the file and line of the first bad key or value.
    """
    recipe = read_recipe(recipe_path, sets)
    recipe.dry_run = dry_run
    data = recipe.data
    unknown = sorted(set(data) - {"build", "inputs", "steps"})
    if unknown:
        recipe.fail(f"unknown top-level key {unknown[0]!r}; expected [build], [inputs] and [[steps]].", (), unknown[0])
    build = data.get("build", {})
    bad = sorted(set(build) - {"seed", "out", "description"})
    if bad:
        recipe.fail(f"unknown key {bad[0]!r} in [build]; expected seed, out, description.", ("build",), bad[0])
    seed = build.get("seed", 0)
    if not isinstance(seed, int) or seed < 0:
        recipe.fail(f"seed must be a non-negative integer; got {seed!r}.", ("build",), "seed")
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit must be a positive integer; got {limit}.")
    if out is None:
        out = build.get("out")
        if out is None:
            out = Path("builds") / recipe.path.stem
    out = Path(out)
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data:
        recipe.fail("a recipe needs at least one [[steps]] table.")
    inputs = read_inputs(recipe, out, dict(input_overrides or {}), input_override)
    input_paths = {k: (v[2] if isinstance(v, tuple) else v) for k, v in inputs.items()}
    outputs: dict = {}
    resolver = Resolver(recipe, input_paths, outputs)
    steps = []
    for i, table in enumerate(steps_data):
        if not isinstance(table, dict):
            recipe.fail("each [[steps]] entry must be a table.")
        step = prepare_step(recipe, i, table, resolver, out, seed, limit)
        outputs[step.name] = step
        steps.append(step)
    _claim_build(out, steps)
    return Plan(recipe, out, inputs, steps, limit, executor, address, overwrite)


def _claim_build(out: Path, steps) -> None:
    """Check ``out`` is new, empty, or a build (of this recipe's step names); nothing is made."""
    claimed = claim(out, _build_output(s.name for s in steps), create=False)
    if claimed.marked and not (out / BUILD_MARKER).exists():
        # Marked by build.json alone: a build made before the marker existed, or someone's own file.
        try:
            summary = json.loads((out / "build.json").read_text())
        except (OSError, ValueError):
            summary = None
        if not (isinstance(summary, dict) and {"recipe", "fingerprint", "steps"} <= set(summary)):
            raise BadInputError(f"--out {out} holds a build.json that blursynth did not write; "
                                "choose a new or empty folder.")


def _build_output(step_names) -> OutputKind:
    """A build folder holds the recipe's copy, build.json, the bundled inputs and one folder a step,
    once :data:`BUILD_MARKER` (or build.json) says it is a build."""
    own = {*BUILD_FILES, *step_names}
    return OutputKind(
        what="build",
        is_file="--out {out} is a file; expected a folder.",
        foreign="--out {out} is a non-empty folder that is not a build of this recipe (it holds {name}); "
                "choose a new or empty folder.",
        unmarked="--out {out} is a non-empty folder that is not a build (it holds {name}, but no build was "
                 "started there); choose a new or empty folder.",
        markers=(BUILD_MARKER, "build.json"),
        own=hidden_or_log,
        own_when_marked=lambda name: name in own,
    )


def describe_plan(plan: Plan) -> str:
    """The plan as the lines ``blursynth build`` prints: recipe, inputs, then each step's settings."""
    lines = [
        f"recipe {plan.recipe.path} (fingerprint {plan.recipe.fingerprint}) -> {plan.out}/"
        + (f", limited to {plan.limit} pairs per output" if plan.limit else "")
        + f", executor {plan.executor}" + (f" at {plan.address}" if plan.address else ""),
    ]
    for name, value in plan.inputs.items():
        if isinstance(value, tuple):
            lines.append(f"  input {name}: scikit-image samples {', '.join(value[1])} -> {value[2]}/")
        else:
            lines.append(f"  input {name}: {value}")
    for s in plan.steps:
        lines.append(f"  {s.index + 1}. {s.name}: {s.run} -> {s.out}/")
        lines.append("       " + canonical_json(s.describe))  # whole: a cut value reads as a wrong one
        if s.note:
            lines.append(f"       note: {s.note}")
    return "\n".join(lines)


def run_build(plan: Plan, *, workers: int = 1, progress_echo=print) -> dict:
    """Run every step of a plan in order (resuming what an earlier run finished)."""
    from ..dataset import load_manifest, verify_dataset

    with lock_output(plan.out):  # each step's writer locks its own folder too
        _claim_build(plan.out, plan.steps)  # again: another build may have written here since the plan
        atomic_write_text(plan.out / BUILD_MARKER, json.dumps(
            {"recipe": str(plan.recipe.path), "fingerprint": plan.recipe.fingerprint}, sort_keys=True) + "\n")
        _write_skimage_inputs(plan.inputs)
        results = {}
        atomic_write_text(plan.out / "recipe.toml", plan.recipe.text)
        for step in plan.steps:
            progress_echo(f"[{step.index + 1}/{len(plan.steps)}] {step.name}: {step.run}")
            kind = STEP_KINDS[step.run]
            # A step that writes a dataset passes the plan's executor, limit and recipe to the
            # writer itself (steps.write_options).
            try:
                result = kind.run(step, plan, workers)
            except SettingError as exc:
                raise plan.recipe.refusal(step.index, exc) from None
            if kind.writes_pairs:
                report = verify_dataset(step.out, decode=False)
                result = {"rows": report["rows"], "fingerprint": load_manifest(step.out)["fingerprint"]}
            results[step.name] = _summary(result)
        summary = {"recipe": str(plan.recipe.path), "fingerprint": plan.recipe.fingerprint, "out": str(plan.out),
                   "limit": plan.limit, "steps": results}
        atomic_write_text(plan.out / "build.json", json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    return summary


def _write_skimage_inputs(inputs: dict) -> None:
    """Save the bundled scikit-image samples an input names into its folder (once)."""
    from ..sources.photos import save_rgb8

    for value in inputs.values():
        if isinstance(value, tuple) and value[0] == "skimage":
            from skimage import data as skdata

            folder = value[2]
            folder.mkdir(parents=True, exist_ok=True)
            for sample in value[1]:
                path = folder / f"{sample}.png"
                if not path.exists():
                    image = np.asarray(getattr(skdata, sample)())
                    save_rgb8(path, image[:, :, :3].astype(np.uint8))


def _summary(result):
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool, type(None)))}
    return str(result)

