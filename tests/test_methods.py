"""Every registered method honours the contract and trains 5 steps with a finite loss (AlgoPerf-style)."""

import dataclasses
import math
import subprocess
import sys

import pytest

from zoharness import scoring
from zoharness.methods import get_method, method_ids, resolve_params
from zoharness.registry import UnknownNameError
from zoharness.tasks import get_task


@pytest.mark.parametrize("method", method_ids())
def test_contract(method):
    m = get_method(method)
    assert isinstance(m.LABEL, str) and m.LABEL
    assert isinstance(m.VERSION, int) and m.VERSION >= 1
    assert dataclasses.is_dataclass(m.Params) and m.Params.__dataclass_params__.frozen
    params = m.Params()
    assert m.num_steps(params, 100) >= 0
    assert callable(m.build)
    assert resolve_params(method, {}) == dataclasses.asdict(params)


@pytest.mark.parametrize("method", method_ids())
def test_five_steps_with_finite_loss(method, tiny, small_split, tmp_path):
    from tests.conftest import DATA
    from zoharness.data import load_split

    model, tok = tiny
    m = get_method(method)
    overrides = {
        "fo": {"lr": 1e-3, "batch_size": 4},
        "mezo": {"lr": 1e-3, "batch_size": 4, "steps": 5},
        "sparse_zo_int4": {"lr": 1e-1, "batch_size": 4, "steps": 5},
    }
    params = m.Params(**overrides.get(method, {}))
    impl = m.build(model, params, 0, **_inputs(m, model, tmp_path))
    if m.num_steps(params, 24) == 0:
        assert impl is None  # evaluation-only method
        return
    task = get_task("sst2")
    enc = [scoring.encode(tok, task.prompt(e), 96) for e in load_split(small_split, DATA).train]
    losses = [
        impl.step(scoring.collate(enc[4 * i : 4 * i + 4], tok.pad_token_id), i)["loss"] for i in range(5)
    ]
    assert all(math.isfinite(x) for x in losses)


def _inputs(module, model, tmp_path) -> dict:
    """Stand-ins for a method's extra input files, built for the tiny model."""
    inputs = {}
    if "mask" in getattr(module, "INPUTS", ()):
        from zoharness.sparse import mask

        shapes = mask.eligible_shapes(model)
        mask.save(tmp_path / "mask.safetensors", mask.select(mask.random_scores(shapes, 0), 0.05), shapes, {})
        inputs["mask"] = str(tmp_path / "mask.safetensors")
    if "rephrased" in getattr(module, "INPUTS", ()):
        inputs["rephrased"] = str(
            tmp_path / "rephrased.jsonl"
        )  # build() only records it (train_examples reads it)
    return inputs


def test_bad_params_quote_the_value():
    with pytest.raises(ValueError, match="fo.lr must be > 0, got -1"):
        get_method("fo").Params(lr=-1)
    with pytest.raises(ValueError, match="mezo.z_cache must be 'none' or 'step', got 'always'"):
        get_method("mezo").Params(z_cache="always")


def test_unknown_method_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown method 'meso'. Did you mean 'mezo'"):
        get_method("meso")


def test_listing_methods_imports_nothing_heavy():
    code = (
        "import sys; from zoharness.config import load_suite; load_suite('config/smoke.yaml'); "
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; print(heavy); assert not heavy"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=__import__("tests.conftest", fromlist=["ROOT"]).ROOT,
    )
    assert out.returncode == 0, out.stderr + out.stdout
