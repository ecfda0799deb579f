"""The method seam: a method is its module (+ its rule file and its own package); shared code never
names one. Checked on the source, so a new shared module that branches on a method id fails here."""

import ast
import re

import pytest

from tests.conftest import ROOT
from zoharness.methods import get_method, method_ids

SRC = ROOT / "src" / "zoharness"


def _owned(method: str) -> set:
    """Files allowed to name `method`: its module, its rule file, and the package its COMMANDS hook
    lives in (where its artifacts and reports are built)."""
    module = get_method(method)
    owned = {SRC / "methods" / f"{method}.py", ROOT / "rules" / "methods" / f"{method}.smk"}
    commands = getattr(module, "COMMANDS", None)
    if commands:
        package = SRC.joinpath(*commands.split(".")[1:-1])
        owned |= set(package.rglob("*.py"))
    return owned


def _python_strings(path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def _workflow_strings(path) -> set[str]:
    return set(re.findall(r"""["']([A-Za-z0-9_]+)["']""", path.read_text(encoding="utf-8")))


SHARED = sorted(SRC.rglob("*.py")) + sorted((ROOT / "rules").rglob("*.smk")) + [ROOT / "Snakefile"]


@pytest.mark.parametrize("method", method_ids())
def test_no_method_id_outside_its_own_files(method):
    owned = _owned(method)
    named_in = [
        str(path.relative_to(ROOT))
        for path in SHARED
        if path not in owned
        and method in (_python_strings(path) if path.suffix == ".py" else _workflow_strings(path))
    ]
    assert not named_in, f"method id {method!r} is named in shared code: {named_in}"


def test_the_check_would_catch_a_shared_module_naming_a_method(tmp_path):
    bad = tmp_path / "plotting.py"
    bad.write_text('SPARSE = "sparse_zo_int4"\nif row["method_id"] == "mezo":\n    pass\n')
    assert {"sparse_zo_int4", "mezo"} <= _python_strings(bad)
