"""The import graph follows DESIGN.md's layers: nothing imports upward, and the modules that tables and
figures need import no torch (a figure job must not load torch or the training loop)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "zoharness"

# The bottom layer (tasks, scoring, data, models, io, ...) and the torch-free helpers the layers above share.
LOWER = {
    "tasks",
    "scoring",
    "data",
    "io",
    "models",
    "profiling",
    "provenance",
    "trainlog",
    "rundir",
    "devices",
    "trainer",
    "registry",
    "answer_metrics",
    "generation",
}
# The training loop and what sits above it: entry points, reports, the method registry, the config.
UPPER = {"train", "replay", "methods", "cli", "tables", "plotting", "scorecard", "config"}
# Figure and table jobs (shared, and methods' own reports and commands) must not pay for torch.
TORCH_FREE = (
    "trainlog", "rundir", "devices", "trainer", "plotting", "tables", "scorecard",
    "sparse.reports", "sparse.commands", "rephrase.reports", "rephrase.commands", "cli",
)  # fmt: skip


def _name(path: Path) -> str:
    """Dotted module name of a file under src/zoharness (a package is its __init__)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every zoharness module `path` imports, at the top or inside a function."""
    name = _name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from zoharness import train`
    return {m for m in found if m == "zoharness" or m.startswith("zoharness.")}


def _component(module: str) -> str | None:
    """zoharness.tasks.base -> tasks; zoharness -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_seen():
    names = {_component(_name(p)) for p in MODULES}
    assert not LOWER - names, sorted(LOWER - names)
    assert not UPPER - names, sorted(UPPER - names)


@pytest.mark.parametrize(
    "path", [p for p in MODULES if _component(_name(p)) in LOWER], ids=lambda p: _name(p)
)
def test_lower_layers_import_nothing_above_them(path):
    upward = sorted(m for m in _imports(path) if _component(m) in UPPER)
    assert not upward, f"{_name(path)} imports {upward}: move the helper down instead (DESIGN.md, Layers)"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_no_torch(module):
    code = (
        f"import sys, zoharness.{module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent), "MPLBACKEND": "Agg"},
    )
    assert out.stdout.strip() == "[]", f"importing zoharness.{module} imported {out.stdout.strip()}"


@pytest.mark.parametrize("module", ("train", "replay"))
def test_the_loop_never_probes_a_method(module):
    """The loop and replay call zoharness.trainer.Trainer and methods.method_hooks; no hasattr."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    probes = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr"
    ]
    assert not probes, f"zoharness/{module}.py probes with hasattr at line(s) {probes}"
