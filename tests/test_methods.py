"""Every registered method honours the contract and trains 5 steps with a finite loss (AlgoPerf-style)."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoharness import scoring
from zoharness.methods import get_method, method_ids, resolve_params
from zoharness.registry import UnknownNameError
from zoharness.tasks import get_task
from zoharness.trainlog import without_timings

METHODS_DIR = Path(__file__).resolve().parents[1] / "src" / "zoharness" / "methods"


def test_every_method_file_is_registered():
    files = {p.stem for p in METHODS_DIR.glob("*.py") if not p.name.startswith("_")}
    packages = {p.name for p in METHODS_DIR.iterdir() if (p / "__init__.py").exists()}
    assert set(method_ids()) == files | packages


@pytest.mark.parametrize("method", method_ids())
def test_contract(method):
    m = get_method(method)
    assert isinstance(m.LABEL, str) and m.LABEL
    assert isinstance(m.VERSION, int) and m.VERSION >= 1
    assert dataclasses.is_dataclass(m.Params) and m.Params.__dataclass_params__.frozen
    params = m.Params()
    assert m.num_steps(params, 100) >= 0
    assert callable(m.build)
    assert m.Params(**resolve_params(method, {})) == params  # added_later fields left out at their defaults
    # Every method brings its own smoke settings, so the registry-wide tests need no edit for it.
    assert isinstance(m.SMOKE_PARAMS, dict)
    resolve_params(method, m.SMOKE_PARAMS)
    assert callable(getattr(m, "smoke_inputs", None)) == bool(getattr(m, "INPUTS", ()))


def _smoke(method, model, examples, tmp_path):
    """The method's module, its smoke Params and its stand-in input files for `model`."""
    m = get_method(method)
    inputs = m.smoke_inputs(model, examples, tmp_path) if getattr(m, "INPUTS", ()) else {}
    return m, m.Params(**m.SMOKE_PARAMS), inputs


def _batches(tok, examples, n_steps, size=4):
    task = get_task("sst2")
    enc = [scoring.encode(tok, task.prompt(e), 96) for e in examples]
    return [scoring.collate(enc[size * i : size * i + size], tok.pad_token_id) for i in range(n_steps)]


@pytest.mark.parametrize("method", method_ids())
def test_five_steps_with_finite_loss(method, tiny, small_split, tmp_path):
    from tests.conftest import DATA
    from zoharness.data import load_split

    model, tok = tiny
    train = load_split(small_split, DATA).train
    m, params, inputs = _smoke(method, model, train, tmp_path)
    impl = m.build(model, params, 0, **inputs)
    if m.num_steps(params, 24) == 0:
        assert impl is None  # evaluation-only method
        return
    losses = [impl.step(batch, i)["loss"] for i, batch in enumerate(_batches(tok, train, 5))]
    assert all(math.isfinite(x) for x in losses)


@pytest.mark.parametrize("method", method_ids())
def test_replay_rebuilds_the_trained_weights_bit_for_bit(method, model_refs, small_split, tmp_path):
    """Steps on one copy of the base, replay of their log records on another: every tensor equal."""
    from tests.conftest import DATA
    from zoharness import models
    from zoharness.data import load_split

    train = load_split(small_split, DATA).train
    trained, tok = models.load(model_refs["llama"])
    m, params, inputs = _smoke(method, trained, train, tmp_path)
    impl = m.build(trained, params, 3, **inputs)
    if impl is None or not impl.can_replay:
        pytest.skip(f"{method} has no replayable trajectory")
    records = [impl.step(batch, i) for i, batch in enumerate(_batches(tok, train, 5))]
    base, _ = models.load(model_refs["llama"])
    replayed = m.build(base, params, 3, **inputs)
    for record in json.loads(json.dumps(records)):  # as read back from the log
        replayed.replay(record)
    a, b = trained.state_dict(), base.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    untouched, _ = models.load(model_refs["llama"])
    m.build(untouched, params, 3, **inputs)  # the same structure (a sparse base, say), no step taken
    assert any(
        not torch.equal(x, y) for x, y in zip(a.values(), untouched.state_dict().values(), strict=True)
    ), "the smoke steps changed no weight: the test would prove nothing"


@pytest.mark.parametrize("method", method_ids())
def test_resume_after_kill_equals_uninterrupted(method, model_refs, small_split, tmp_path):
    """Through the training loop: stop after 2 steps, resume, and get the uninterrupted run's log and scores."""
    from tests.conftest import DATA
    from tests.helpers import make_run
    from zoharness import models
    from zoharness.data import load_split
    from zoharness.train import read_train_log, train

    m = get_method(method)
    model, _ = models.load(model_refs["llama"])
    inputs = (
        m.smoke_inputs(model, load_split(small_split, DATA).train, tmp_path)
        if getattr(m, "INPUTS", ())
        else {}
    )
    probe = m.build(model, m.Params(**m.SMOKE_PARAMS), 0, **inputs)
    if probe is None or not probe.can_replay:
        pytest.skip(f"{method} has no replayable trajectory (it restarts from step 0 instead)")
    runs = {}
    for name, stop in (("full", None), ("killed", 2)):
        run_dir, split = make_run(tmp_path / name, method, m.SMOKE_PARAMS)
        if "rephrased" in inputs:  # a rephrased set is made for the run's own split
            inputs = m.smoke_inputs(
                model, load_split(json.loads(split.read_text()), DATA).train, tmp_path / name
            )
        args = (run_dir / "run_config.json", split, model_refs["llama"], run_dir)
        if stop:
            assert train(*args, threads=1, stop_after=stop, inputs=inputs) is None
        runs[name] = (run_dir, train(*args, threads=1, inputs=inputs))
    (full_dir, full), (killed_dir, resumed) = runs["full"], runs["killed"]
    for key in ("dev_score", "test_score", "final_train_loss", "forward_passes", "steps"):
        assert resumed[key] == full[key], key
    strip = lambda rs: [without_timings(r) for r in rs]  # noqa: E731
    assert strip(read_train_log(killed_dir / "train_log.jsonl")[1]) == strip(
        read_train_log(full_dir / "train_log.jsonl")[1]
    )


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
