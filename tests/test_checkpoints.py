"""MeZO's checkpoint protocol: dev every 1/N of the steps, the best dev checkpoint reported, its weights
rebuilt by replay (ZO) or kept in memory (FO), and exactly the weights that were scored at that step."""

import pytest

from tests.helpers import make_run
from zoharness import train as train_module
from zoharness.checkpoints import best_checkpoint, checkpoint_steps, curve_from_records
from zoharness.io import read_json
from zoharness.train import read_train_log, train
from zoharness.trainlog import without_timings

MEZO = {"lr": 5e-2, "eps": 1e-2, "steps": 6, "batch_size": 4}
FO = {"lr": 1e-2, "epochs": 2, "batch_size": 4}  # 8 steps


@pytest.mark.parametrize(
    ("total", "n", "want"),
    [
        (200, 5, [40, 80, 120, 160, 200]),  # MeZO: 20,000 steps, dev every 4,000
        (7, 5, [1, 3, 4, 6, 7]),
        (3, 5, [1, 2, 3]),  # fewer steps than checkpoints: every step, once
        (6, 1, [6]),
        (0, 5, []),  # an evaluation-only run
    ],
)
def test_checkpoint_steps(total, n, want):
    assert checkpoint_steps(total, n) == want


def test_best_checkpoint_is_the_highest_dev_and_the_earliest_on_a_tie():
    curve = [
        {"step": 40, "dev_score": 0.60, "test_score": 0.9},
        {"step": 80, "dev_score": 0.72, "test_score": 0.1},
        {"step": 120, "dev_score": 0.72, "test_score": 0.5},
        {"step": 160, "dev_score": 0.70},
    ]
    assert best_checkpoint(curve)["step"] == 80  # test never decides
    assert best_checkpoint(curve[:1])["step"] == 40
    with pytest.raises(ValueError, match="no checkpoint"):
        best_checkpoint([])


def test_curve_from_a_constructed_log():
    records = [{"step": s, "loss": 1.0} for s in range(6)]
    records[1]["checkpoint"] = {"dev_score": 0.5}
    records[3]["checkpoint"] = {"dev_score": 0.75, "test_score": 0.7}
    assert curve_from_records(records) == [
        {"step": 2, "dev_score": 0.5},
        {"step": 4, "dev_score": 0.75, "test_score": 0.7},
    ]


def _train(tmp_path, model_refs, method, params, **kw):
    run_dir, split = make_run(
        tmp_path,
        method,
        params,
        eval={"batch_size": 8, "max_length": 96, "checkpoints": 3, "test_curve": True},
    )
    metrics = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1, **kw)
    return run_dir, split, metrics


def _pick_first(monkeypatch):
    """Selection forced to the first checkpoint: the rewind path runs whatever the tiny model's dev says."""
    monkeypatch.setattr(train_module, "best_checkpoint", lambda curve: curve[0])


@pytest.mark.parametrize(("method", "params", "steps"), [("mezo", MEZO, [2, 4, 6]), ("fo", FO, [3, 5, 8])])
def test_the_reported_model_is_the_checkpoint_that_was_scored(
    tmp_path, model_refs, monkeypatch, method, params, steps
):
    """Rewound to the first checkpoint (ZO: replayed from the base along the log; FO: the kept copy), the
    model scores on dev and test exactly what it scored at that step in the loop."""
    _pick_first(monkeypatch)
    run_dir, _, m = _train(tmp_path, model_refs, method, params)
    assert m["checkpoint_steps"] == steps and [c["step"] for c in m["dev_curve"]] == steps
    first = m["dev_curve"][0]
    assert m["best_step"] == steps[0]
    assert m["dev_score"] == first["dev_score"] == m["best_dev_rescored"]
    assert m["test_score"] == first["test_score"]
    assert m["final_dev_score"] == m["dev_curve"][-1]["dev_score"]
    assert m["final_test_score"] == m["dev_curve"][-1]["test_score"]
    # The loop's checkpoints live in the log (a resumed run keeps them); their seconds are a phase.
    _, records = read_train_log(run_dir / "train_log.jsonl")
    marked = [r for r in records if "checkpoint" in r]
    assert [r["step"] + 1 for r in marked] == steps[:-1]
    assert all(r["phases_s"]["checkpoint_eval"] > 0 for r in marked)
    predictions = read_json(run_dir / "predictions.json")
    assert len(predictions["test"]) == m["n_test"]


def test_replay_to_the_best_step_gives_its_dev_score(tmp_path, model_refs):
    """The real selection rule on a real log, then an independent replay to the selected step."""
    from zoharness import models, scoring
    from zoharness.data import load_split
    from zoharness.replay import replay_run
    from zoharness.tasks import get_task

    run_dir, split, m = _train(tmp_path, model_refs, "mezo", MEZO)
    assert m["best_step"] == best_checkpoint(m["dev_curve"])["step"]
    model = replay_run(run_dir, model_refs["llama"], upto=m["best_step"])
    _, tok = models.load(model_refs["llama"])
    examples = load_split(read_json(split), read_json(run_dir / "run_config.json")["data"]["dir"]).dev
    enc = [scoring.encode(tok, get_task("sst2").prompt(e), 96) for e in examples]
    assert scoring.evaluate(model, enc, tok.pad_token_id, 8)["score"] == m["dev_score"]


def test_resume_keeps_the_checkpoints_and_equals_uninterrupted(tmp_path, model_refs, monkeypatch):
    _pick_first(monkeypatch)
    _, _, full = _train(tmp_path / "full", model_refs, "mezo", MEZO)
    run_dir, split = make_run(
        tmp_path / "killed",
        "mezo",
        MEZO,
        eval={"batch_size": 8, "max_length": 96, "checkpoints": 3, "test_curve": True},
    )
    assert (
        train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1, stop_after=5)
        is None
    )
    resumed = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    for key in ("dev_curve", "best_step", "dev_score", "test_score", "final_test_score"):
        assert resumed[key] == full[key], key
    _, a = read_train_log(tmp_path / "full" / "mezo" / "seed0" / "train_log.jsonl")
    _, b = read_train_log(run_dir / "train_log.jsonl")
    assert [without_timings(r) for r in a] == [without_timings(r) for r in b]


def test_one_checkpoint_reports_the_last_step(tmp_path, model_refs):
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    m = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    assert m["checkpoint_steps"] == [6] and m["best_step"] == 6
    assert m["dev_curve"] == [{"step": 6, "dev_score": m["dev_score"], "test_score": m["test_score"]}]
    assert m["final_test_score"] == m["test_score"]
    _, records = read_train_log(run_dir / "train_log.jsonl")
    assert not any("checkpoint" in r for r in records)
