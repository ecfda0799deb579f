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


def test_expected_forwards_rank_the_zoos_runs_longest_first():
    """The train rule's priority (rules/common.smk): ZO-SGD-Cons's five forwards a step above MeZO's two, MeZO's
    200 steps of 16 above one epoch of FT at batch 8, an evaluation-only run at its evaluation alone."""
    from zoharness.methods import expected_forwards

    zo = {"lr": 1e-5, "steps": 200, "batch_size": 16}
    cost = {
        m: expected_forwards(m, p, n_train=1000, n_eval=3500, kind="classification")
        for m, p in [
            ("zo_sgd_cons", zo),
            ("mezo", zo),
            ("forward_grad", zo),
            ("fo", {"lr": 1e-5, "epochs": 1, "batch_size": 8}),
            ("lp", {"mode": "probe"}),
            ("zero_shot", {}),
        ]
    }
    assert cost["mezo"] == 200 * 16 * 2 + 3500 and cost["zo_sgd_cons"] == 200 * 16 * 5 + 3500
    assert cost["fo"] == 125 * 8 * 3 + 3500 and cost["zero_shot"] == 3500
    assert (
        cost["zo_sgd_cons"]
        > cost["forward_grad"]
        > cost["mezo"]
        > cost["fo"]
        > cost["lp"]
        > cost["zero_shot"]
    )
    assert expected_forwards("mezo", {**zo, "queries": 2}, 1000, 0) == 2 * (cost["mezo"] - 3500)
