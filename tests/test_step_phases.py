"""Per-phase timers: every ZO step says where its time went, the phases add up to the step, and
metrics.json sums them; the batch layout and its padding are recorded beside them."""

import pytest

from tests.helpers import make_run
from zoharness.io import read_json
from zoharness.methods import method_ids
from zoharness.train import train
from zoharness.trainlog import read_train_log

ZO_PHASES = {"noise", "passes", "forward_plus", "forward_minus", "sync"}
# What the phases leave out of a step's wall time: the step seed, the log record, Python between calls.
# On a 2-layer model that is a larger share than on a real one, hence a loose relative bound.
SLACK_RELATIVE, SLACK_ABSOLUTE_S = 0.25, 0.02


@pytest.mark.parametrize("z_cache", ["none", "step"])
def test_zo_step_phases_sum_to_the_step(tmp_path, model_refs, z_cache):
    params = {"lr": 1e-3, "eps": 1e-3, "steps": 4, "batch_size": 4, "z_cache": z_cache}
    run_dir, split = make_run(tmp_path, "mezo", params)
    metrics = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir)
    header, records = read_train_log(run_dir / "train_log.jsonl")
    assert header["batch_layout"] == "packed" == metrics["batch_layout"]
    for r in records:
        phases = r["phases_s"]
        assert ZO_PHASES | {"data"} == set(phases)
        assert all(v >= 0 for v in phases.values())
        in_step = sum(v for k, v in phases.items() if k != "data")  # data is prepared before the step
        assert in_step <= r["elapsed_s"] + 1e-6
        assert r["elapsed_s"] - in_step <= SLACK_RELATIVE * r["elapsed_s"] + SLACK_ABSOLUTE_S
        assert r["n_padding"] <= 0.10 * r["n_tokens"]
    totals = metrics["step_phases_s"]
    for phase in ZO_PHASES | {"data"}:
        assert totals[phase] == pytest.approx(sum(r["phases_s"][phase] for r in records))
    assert 0 <= metrics["train_padding_fraction"] <= 0.10
    assert 0 <= metrics["eval_padding_fraction"] <= 0.10
    assert read_json(run_dir / "metrics.json")["step_phases_s"] == totals


def test_every_zo_method_logs_its_phases(tmp_path, model_refs):
    """The shared engine times the variants too (they override a seam, not the step)."""
    for method in ("mezo_rademacher", "zo_sgd_momentum"):
        assert method in method_ids()
        run_dir, split = make_run(tmp_path, method, {"steps": 2, "batch_size": 4})
        train(run_dir / "run_config.json", split, model_refs["llama"], run_dir)
        _, records = read_train_log(run_dir / "train_log.jsonl")
        assert all(set(r["phases_s"]) >= ZO_PHASES for r in records), method
