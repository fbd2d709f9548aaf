"""Planning a recipe (every step validated, nothing written) and running the plan in order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import canonical_json
from ..dataset.outputs import OutputKind, claim, hidden_or_log
from ..errors import BadInputError
from .recipe import Recipe, Resolver, read_inputs, read_recipe
from .steps import STEP_KINDS, prepare_step


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
               input_overrides=None, sets=None, dry_run=False, overwrite=False) -> Plan:
    """Read and validate a recipe into a plan; nothing is written.

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
    inputs = read_inputs(recipe, out, dict(input_overrides or {}))
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
    claim(out, _build_output(s.name for s in steps), create=False)
    return Plan(recipe, out, inputs, steps, limit, executor, address, overwrite)


def _build_output(step_names) -> OutputKind:
    """A build folder holds the recipe's copy, build.json, the bundled inputs and one folder a step."""
    own = {"recipe.toml", "build.json", "inputs", *step_names}
    return OutputKind(
        what="build",
        is_file="--out {out} is a file; expected a folder.",
        foreign="--out {out} is a non-empty folder that is not a build of this recipe (it holds {name}); "
                "choose a new or empty folder.",
        own=lambda name: name in own or hidden_or_log(name),
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
        lines.append("       " + canonical_json(s.describe)[:400])
        if s.note:
            lines.append(f"       note: {s.note}")
    return "\n".join(lines)


def run_build(plan: Plan, *, workers: int = 1, progress_echo=print) -> dict:
    """Run every step of a plan in order (resuming what an earlier run finished)."""
    from ..dataset import load_manifest, verify_dataset

    plan.out.mkdir(parents=True, exist_ok=True)
    _write_skimage_inputs(plan.inputs)
    results = {}
    (plan.out / "recipe.toml").write_text(plan.recipe.text)
    for step in plan.steps:
        progress_echo(f"[{step.index + 1}/{len(plan.steps)}] {step.name}: {step.run}")
        kind = STEP_KINDS[step.run]
        # A step that writes a dataset passes the plan's executor, limit and recipe to the
        # writer itself (steps.write_options).
        result = kind.run(step, plan, workers)
        if kind.writes_pairs:
            report = verify_dataset(step.out, decode=False)
            result = {"rows": report["rows"], "fingerprint": load_manifest(step.out)["fingerprint"]}
        results[step.name] = _summary(result)
    summary = {"recipe": str(plan.recipe.path), "fingerprint": plan.recipe.fingerprint, "out": str(plan.out),
               "limit": plan.limit, "steps": results}
    (plan.out / "build.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
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

