"""Recipes: reading a pinned TOML file, and the checks that name its file and line on failure."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import fingerprint
from ..errors import BadInputError, RecipeError, SettingError

TRAJECTORY_KEYS = {
    "n", "seed", "exposures", "samples", "length", "expl", "canvas", "centre", "psf_size",
    "keep_trajectories", "shard_size",
}
#: Fields of TrajectoryConfig under the [trajectories] key that sets them.
_TRAJECTORY_FIELD_KEYS = {"n_samples": "samples", "length_px": "length", "expl": "expl"}

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


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


def kernel_bank_config(section: dict, *, where: str | None = "recipe"):
    """A :class:`~blursynth.kernelbank.KernelBankConfig` from a ``[trajectories]`` table.

    Raises
    ------
    SettingError
        Its ``field`` is the table's key at fault; the message starts with ``where: `` (none
        when ``where`` is None).
    """
    from ..kernelbank import KernelBankConfig
    from ..ops.trajectory import TrajectoryConfig

    prefix = f"{where}: " if where else ""
    unknown = sorted(set(section) - TRAJECTORY_KEYS)
    if unknown:
        raise SettingError(f"{prefix}unknown key {unknown[0]!r} in [trajectories]; known keys: "
                           f"{', '.join(sorted(TRAJECTORY_KEYS))}.", unknown[0])
    key = None  # the key being read, for errors raised by a conversion rather than a check
    try:
        key = "length"
        length = float(section.get("length", 60.0))
        key = None
        trajectory = TrajectoryConfig(n_samples=section.get("samples", 2000), length_px=length,
                                      expl=section.get("expl"))
        key = "exposures"
        exposures = tuple(float(f) for f in section.get("exposures", (0.01, 0.1, 0.5, 1.0)))
        key = None
        return KernelBankConfig(
            n=section.get("n", 1000), seed=section.get("seed", 0), trajectory=trajectory,
            exposures=exposures, psf_size=section.get("psf_size"), centre=section.get("centre", "mass"),
            canvas=section.get("canvas", 64), keep_trajectories=bool(section.get("keep_trajectories", False)),
            shard_size=section.get("shard_size", 10000),
        )
    except SettingError as exc:
        raise SettingError(f"{prefix}[trajectories]: {exc}", _TRAJECTORY_FIELD_KEYS.get(exc.field, exc.field)) from None
    except (BadInputError, ValueError, TypeError) as exc:
        raise SettingError(f"{prefix}[trajectories]: {exc}", key) from None


# ---------------------------------------------------------------------------------------------
# a recipe, and where its keys are


def _line_of(text: str, table: tuple, key: str | None) -> int | None:
    """1-based line of ``key`` inside the table ``table`` (``("steps", 2)`` for the 3rd [[steps]])."""
    header_re = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    counts: dict = {}
    current = ()
    target = tuple(str(t) for t in table)
    start = None
    lines = text.splitlines()
    for no, line in enumerate(lines, 1):
        m = header_re.match(line)
        if m:
            name = m.group(1)
            if line.strip().startswith("[["):
                counts[name] = counts.get(name, -1) + 1
                current = (name, str(counts[name]))
            else:
                current = tuple(name.split("."))
            if current == target:
                start = no
            continue
        if current == target and key is not None and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return no
    return start


@dataclass
class Recipe:
    """A parsed recipe file, its text (for line numbers) and fingerprint."""

    path: Path
    text: str
    data: dict
    fingerprint: str
    dry_run: bool = False
    # (step index, key) -> the --set item that gave it its value: errors name that, not the file.
    overrides: dict = field(default_factory=dict)

    def where(self, table: tuple = (), key: str | None = None) -> str:
        """``FILE:LINE`` of ``key`` in ``table`` (or the ``--set`` that gave it)."""
        step = table[1] if len(table) == 2 and table[0] == "steps" else None
        if step is not None and (step, key) in self.overrides:
            return f"{self.path}: --set {self.overrides[step, key]}"
        line = _line_of(self.text, table, key) if table else None
        if line is None and key is not None and not table:
            m = [i for i, l in enumerate(self.text.splitlines(), 1) if re.match(rf"^\s*{re.escape(key)}\s*=", l)]
            line = m[0] if m else None
        place = f"{self.path}:{line}" if line else str(self.path)
        sets = [item for (i, _), item in self.overrides.items() if i == step] if key is None else []
        return f"{place} (with --set {', '.join(sets)})" if sets else place

    def fail(self, message: str, table: tuple = (), key: str | None = None):
        raise RecipeError(f"{self.where(table, key)}: {message}")

    def refusal(self, index: int, exc) -> RecipeError:
        """A step's refusal of a value, found when it ran (or was planned against what earlier
        steps made), as the recipe's line of the key it names (a SettingError's field) and in
        the recipe's terms."""
        table = self.data["steps"][index]
        field = getattr(exc, "field", None)
        key = field if isinstance(table, dict) and field in table else None
        return RecipeError(f"{self.where(('steps', index), key)}: {in_recipe_terms(exc)}")


def read_recipe(path, sets=()) -> Recipe:
    """Read a recipe file and apply ``STEP.KEY=VALUE`` overrides (VALUE read as a TOML value, else a string)."""
    path = Path(path)
    data = load_recipe(path)
    recipe = Recipe(path, path.read_text(), data, fingerprint(data))
    steps = recipe.data.get("steps") or []
    for item in sets or ():
        target, sep, raw = item.partition("=")
        step_name, dot, key = target.partition(".")
        if not sep or not dot or not step_name or not key:
            raise BadInputError(f"--set {item!r}: expected STEP.KEY=VALUE, e.g. --set train.steps=100.")
        matches = [t for t in steps if isinstance(t, dict) and t.get("name") == step_name]
        if not matches:
            raise BadInputError(f"--set {item!r}: the recipe has no step {step_name!r}; it has "
                                f"{', '.join(str(t.get('name')) for t in steps if isinstance(t, dict))}.")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        matches[0][key] = value
        index = next(i for i, t in enumerate(steps) if t is matches[0])
        recipe.overrides[index, key] = item
    if sets:
        recipe.fingerprint = fingerprint(recipe.data)
    return recipe


def _not(flag):
    if not isinstance(flag, bool):
        raise ValueError(f"expected true or false; got {flag!r}")
    return not flag


def _width_first(size):
    """A recipe's ``resize_to = [H, W]`` (or ``"HxW"``) as the (width, height) BlurSettings keeps."""
    if isinstance(size, str):
        size = size.lower().split("x")
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"expected [height, width] like [720, 1280]; got {size!r}") from None
    return (w, h)


#: Recipe keys spelled as the command option they stand for (``frames`` for render-clip's
#: ``--frames``), per step kind: key -> (settings field, conversion or None). The field's own
#: name (``n_frames``) is read too; a table may not give both.
OPTION_KEYS = {
    "blur": {"length": ("fresh_length_px", None), "canvas": ("fresh_canvas", None),
             "resize_to": ("resize", _width_first)},
    "render-clip": {"frames": ("n_frames", None)},
    "bgan-train": {"max_minutes": ("max_seconds", lambda m: 60.0 * float(m)), "quiet": ("progress", _not),
                   "no_verify": ("verify", _not)},
    "uid-train": {"max_minutes": ("max_seconds", lambda m: 60.0 * float(m)), "quiet": ("progress", _not),
                  "no_verify": ("verify", _not)},
    "train": {"quiet": ("progress", _not), "no_verify": ("verify", _not)},
    "evaluate": {"quiet": ("progress", _not), "no_verify": ("verify", _not)},
}


def table_settings(recipe: Recipe, table_key: tuple, cls, table: dict, *, fixed: dict):
    """Build the settings class ``cls`` from a step's table; unknown keys and bad values name their line.

    ``fixed`` holds the fields the step sets itself (resolved paths, the output folder); the
    table may not set them. Keys of :data:`OPTION_KEYS` become their fields first. A
    :class:`SettingError` names the field at fault.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    aliases = {k: v for k, v in OPTION_KEYS.get(table.get("run"), {}).items() if v[0] in names}
    table, spelled = dict(table), {}  # spelled: field -> the option-named key that set it
    for key, (field_name, convert) in aliases.items():
        if key not in table:
            continue
        if field_name in table:
            recipe.fail(f"{key} and {field_name} set the same thing; keep one ({key}, as the command's "
                        f"option is named).", table_key, key)
        value = table.pop(key)
        try:
            table[field_name] = convert(value) if convert else value
        except (TypeError, ValueError) as exc:
            recipe.fail(f"{key}: {exc}.", table_key, key)
        spelled[field_name] = key
    for key in table:
        if key in ("name", "run"):
            continue
        if key not in names or key in fixed:
            known = sorted((names - set(fixed)) | set(aliases))
            recipe.fail(f"unknown key {key!r} for a {table.get('run')} step; known keys: {', '.join(known)}.",
                        table_key, key)
    values = {k: v for k, v in table.items() if k in names and k not in ("name", "run")}
    for k, v in list(values.items()):
        f = next(f for f in dataclasses.fields(cls) if f.name == k)
        if isinstance(v, list) and "tuple" in str(f.type):
            values[k] = tuple(v)
        elif isinstance(v, int) and not isinstance(v, bool) and _float_field(f.type):
            # A whole number (TOML's `length = 20`, a dict's 20) is the float the command's
            # option parses (`--length 20` -> 20.0): same settings, same fingerprint, same bytes.
            values[k] = float(v)
    values.update(fixed)
    try:
        return cls(**values)
    except (BadInputError, ValueError, TypeError) as exc:
        # A field the table does not set (a default, or one of `fixed`) points at the step.
        key = exc.field if isinstance(exc, SettingError) and exc.field in table else None
        key = spelled.get(key, key)
        recipe.fail(in_recipe_terms(exc), table_key, key)


def _float_field(annotation) -> bool:
    """Whether a settings field is typed ``float`` or ``float | None`` (annotations are strings
    under ``from __future__ import annotations``, types otherwise)."""
    return str(annotation).replace(" ", "").replace("<class'float'>", "float") in (
        "float", "float|None", "Optional[float]", "typing.Optional[float]")


def in_recipe_terms(message) -> str:
    """A settings refusal spoken in command-line options (``--raw-bits``), reworded in recipe keys
    (``raw_bits``): a recipe's reader knows its keys. A quoted command (``'blursynth trajectories
    --out BANK'``) keeps its options: it is run as written."""
    parts = re.split(r"('blursynth [^']*')", str(message))
    return "".join(part if i % 2 else re.sub(r"--([a-z][a-z0-9-]*)",
                                             lambda m: m.group(1).replace("-", "_"), part)
                   for i, part in enumerate(parts)).strip()


class Resolver:
    """Turns a step's ``"@name"`` values into the paths of inputs and earlier steps' outputs."""

    def __init__(self, recipe: Recipe, inputs: dict, outputs: dict):
        self.recipe, self.inputs, self.outputs = recipe, inputs, outputs

    def path(self, value, table_key, key, *, kinds=None, given: bool = True) -> str:
        """``value`` as a path; ``given``: False where ``value`` is ``key``'s default (the step
        left it out), which a refusal then says instead of quoting a line."""
        if value is None or value == "":
            what = f"the name of an earlier {' or '.join(kinds)} step" if kinds else "an input or earlier step"
            self.recipe.fail(f"{key} is missing: set {key} = '@NAME' ({what}) or a path.", table_key, None)
        if not isinstance(value, str):
            self.recipe.fail(f"{key} must be a string (a path or '@name'); got {value!r}.", table_key, key)
        if value.startswith("@"):
            ref, _, weight = value[1:].partition(":")
            if ref in self.inputs:
                return str(self.inputs[ref]) + (f":{weight}" if weight else "")
            if ref in self.outputs:
                step = self.outputs[ref]
                if kinds and step.run not in kinds:
                    self.recipe.fail(f"{key} = {value!r} refers to a {step.run} step; expected the output of "
                                     f"{' or '.join(kinds)}.", table_key, key)
                return str(step.out) + (f":{weight}" if weight else "")
            known = ', '.join(sorted(set(self.inputs) | set(self.outputs))) or 'none'
            if not given:
                self.recipe.fail(f"{key} is not set, and its default {value!r} names no input or earlier "
                                 f"step; set {key} = '@NAME' (known: {known}) or a path.", table_key, None)
            self.recipe.fail(f"{key} = {value!r} names no input or earlier step; known: {known}.",
                             table_key, key)
        p = Path(value)
        return str(p if p.is_absolute() else (self.recipe.path.parent / p))


#: A step or input name becomes a folder inside the build (``OUT/<step>``, ``OUT/inputs/<input>``):
#: no separators, and not hidden, ``.`` or ``..``, which would write beside or above it.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
NAME_RULE = "letters, digits, '_', '-' or '.', not starting with '.' or '-'"


#: How a ``build`` user points an input elsewhere (``override`` of :func:`read_inputs`).
INPUT_OVERRIDE = "--input {name}=PATH"


def read_inputs(recipe: Recipe, out: Path, overrides: dict, override: str = INPUT_OVERRIDE) -> dict:
    """The recipe's [inputs]: name -> path, or ``("skimage", names, folder)`` for bundled samples.

    ``override``: how the caller's user gives an input another path, with ``{name}`` (``build``'s
    ``--input NAME=PATH``; ``OnlineBlur.from_recipe``'s ``inputs=``), named in refusals."""
    inputs = {}
    tables = recipe.data.get("inputs", {})
    if not isinstance(tables, dict):
        recipe.fail("[inputs] must be a table of named inputs.", (), "inputs")
    for name in overrides:
        if name not in tables:
            given = override.replace("PATH", "...").format(name=name)
            raise BadInputError(f"{given}: the recipe has no input {name!r}; it has "
                                f"{', '.join(sorted(tables)) or 'none'}.")
    for name, spec in tables.items():
        key = ("inputs", name)
        if not NAME.fullmatch(name):
            recipe.fail(f"input names are {NAME_RULE}; got {name!r}.", key)
        if name in overrides:
            p = Path(overrides[name])
            if not p.exists():
                raise BadInputError(f"{override.replace('PATH', '{path}').format(name=name, path=p)}: no such file "
                                    "or folder.")
            inputs[name] = p
            continue
        if not isinstance(spec, dict):
            recipe.fail(f"input {name!r} must be a table with 'skimage' or 'path'.", key)
        unknown = sorted(set(spec) - {"skimage", "path"})
        if unknown:
            recipe.fail(f"unknown key {unknown[0]!r} in input {name!r}; expected 'skimage' or 'path'.", key, unknown[0])
        if ("skimage" in spec) == ("path" in spec):
            recipe.fail(f"input {name!r} needs exactly one of 'skimage' (sample photo names) or 'path'.", key)
        if "path" in spec:
            p = Path(spec["path"])
            p = p if p.is_absolute() else recipe.path.parent / p
            if not p.exists():
                recipe.fail(f"input {name!r}: path {p} does not exist (override it with "
                            f"{override.format(name=name)}).", key, "path")
            inputs[name] = p
        else:
            names = spec["skimage"]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                recipe.fail(f"input {name!r}: skimage must be a list of sample names, e.g. {list(SKIMAGE_PHOTOS[:2])}.",
                            key, "skimage")
            bad = [n for n in names if n not in SKIMAGE_PHOTOS]
            if bad:
                recipe.fail(f"input {name!r}: {bad[0]!r} is not a bundled colour sample; choose from "
                            f"{', '.join(SKIMAGE_PHOTOS)}.", key, "skimage")
            inputs[name] = ("skimage", tuple(names), out / "inputs" / name)
    return inputs
