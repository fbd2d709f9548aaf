"""The package's import graph: no cycles, and the layers import only what they may.

The graph is read from the source with ``ast`` (every ``import`` and ``from ... import``
of a blursynth module, at module level or inside a function), so a lazy import that
would close a cycle at run time is caught too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "blursynth"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported_names(name: str, path: Path, *, module_level_only: bool) -> set:
    """Every dotted name ``path`` imports (absolute; ``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in (tree.body if module_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{a.name}" for a in node.names)
    return names


def _graph(*, module_level_only: bool) -> dict:
    return {m: {n for n in _imported_names(m, p, module_level_only=module_level_only) if n in MODULES and n != m}
            for m, p in MODULES.items()}


def _cycles(graph: dict) -> list:
    state, found = {}, []

    def visit(u, stack):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v, stack)
        stack.pop()
        state[u] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    return found


def test_the_graph_reader_sees_relative_and_lazy_imports():
    g = _graph(module_level_only=False)
    assert "blursynth.dataset.writer" in g["blursynth.kernelbank"]  # from .dataset.writer import ...
    assert "blursynth.dataset.preview" in g["blursynth.kernelbank"]  # inside contact_sheet
    assert "blursynth.dataset.preview" not in _graph(module_level_only=True)["blursynth.kernelbank"]


def test_no_import_cycle():
    cycles = _cycles(_graph(module_level_only=False))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _imports_of(prefix: str) -> dict:
    return {m: _imported_names(m, p, module_level_only=False)
            for m, p in MODULES.items() if m == prefix or m.startswith(prefix + ".")}


def test_dataset_imports_no_generator():
    # The dataset format knows no way of making data: kinds register themselves
    # (dataset.schema.register_kind) and writers claim their own output kinds.
    # sources.photos is the image codec (PNG encode/decode), not a generator.
    forbidden = ("blursynth.pairs", "blursynth.kernelbank", "blursynth.sources", "blursynth.train",
                 "blursynth.bgan", "blursynth.nn", "blursynth.build", "blursynth.commands", "blursynth.cli")
    allowed = ("blursynth.sources.photos",)
    bad = sorted((m, n) for m, names in _imports_of("blursynth.dataset").items() for n in names
                 if n.startswith(forbidden) and not n.startswith(allowed))
    assert not bad, bad


def test_ops_import_no_paths_arrow_or_cli():
    forbidden = ("pathlib", "pyarrow", "click")
    found = _imports_of("blursynth.ops")
    assert found, "no ops modules found"
    bad = sorted((m, n) for m, names in found.items() for n in names if n.split(".")[0] in forbidden)
    assert not bad, bad


def _dependency_order() -> list:
    graph = _graph(module_level_only=True)
    order, done = [], set()

    def visit(u):
        if u in done:
            return
        done.add(u)
        for v in sorted(graph[u]):
            visit(v)
        order.append(u)

    for m in sorted(graph):
        visit(m)
    return order


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter():
    order = [m for m in _dependency_order() if m != "blursynth.__main__"]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    r = subprocess.run([sys.executable, "-c", code, *order], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("script", sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_benchmark_scripts_parse(script):
    """The benchmarks run by hand, not in the suite: at least each must still be Python."""
    ast.parse(script.read_text(), filename=str(script))


@pytest.mark.slow  # a fresh interpreter
@pytest.mark.parametrize("noise", [(), ("--noise", "0.001,0.001")])
def test_a_plain_blur_loads_nothing_it_does_not_use(photos, tmp_path, noise):
    # Start-up is most of a small run's time: an RGB blur, with or without noise levels, needs
    # neither torch, pandas nor the RAW path, scene blur's renderer or skimage.
    code = ("import sys\nfrom blursynth.cli import main\n"
            "code = main(['blur', sys.argv[1], '--psf-source', 'fresh', '--crop', '32x32', "
            "'--canvas', '15', '--length', '10', '--out', sys.argv[2], *sys.argv[3:]])\n"
            "print(' '.join(sorted(sys.modules)))\nsys.exit(code)\n")
    r = subprocess.run([sys.executable, "-c", code, str(photos), str(tmp_path / "out"), *noise],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    loaded = set(r.stdout.split())
    assert "blursynth.pairs.shake" in loaded and "numba" in loaded  # the run itself
    unused = ("torch", "pandas", "skimage", "blursynth.ops.raw", "blursynth.ops._raw_kernels",
              "blursynth.ops.warp", "blursynth.ops.camera6d", "blursynth.train", "blursynth.nn.models")
    assert not sorted(m for m in loaded if m in unused), sorted(m for m in loaded if m in unused)


@pytest.mark.slow  # a fresh interpreter
def test_a_raw_path_blur_on_the_cpu_needs_no_torch(photos, tmp_path):
    # The RAW path convolves NumPy planes on the CPU as the RGB path does: importing torch cost
    # each process of a writer's pool most of a second before its first pair.
    code = ("import sys\nfrom blursynth.cli import main\n"
            "code = main(['blur', sys.argv[1], '--psf-source', 'fresh', '--crop', '32x32', '--canvas', '15', "
            "'--length', '10', '--pipeline', 'raw', '--noise', 'model', '--highlights', '2-8', "
            "'--highlight-regions', '16', '--jpeg', '70-95', '--out', sys.argv[2]])\n"
            "print(' '.join(sorted(sys.modules)))\nsys.exit(code)\n")
    r = subprocess.run([sys.executable, "-c", code, str(photos), str(tmp_path / "out")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    loaded = set(r.stdout.split())
    assert "blursynth.ops.raw" in loaded  # the run itself
    heavy = sorted(m for m in loaded if m in ("torch", "pandas"))
    assert not heavy, heavy
