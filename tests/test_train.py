"""The training loop: artifacts, resume = uninterrupted, failure modes write no metrics."""

import json
import math

import pytest
import torch

from tests.helpers import count_fused_passes, make_run
from zoharness.io import DataError, read_json
from zoharness.replay import replay_run
from zoharness.train import read_train_log, train
from zoharness.trainlog import without_timings

MEZO = {"lr": 1e-3, "eps": 1e-3, "steps": 6, "batch_size": 4}


def _run(tmp_path, model_refs, method="mezo", params=None, **kw):
    run_dir, split = make_run(tmp_path, method, MEZO if params is None else params)
    metrics = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1, **kw)
    return run_dir, split, metrics


def _strip_timing(records):
    return [without_timings(r) for r in records]


def test_mezo_run_writes_complete_artifacts(tmp_path, model_refs):
    run_dir, _, metrics = _run(tmp_path, model_refs)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "metrics.json",
        "predictions.json",
        "run_config.json",
        "run_info.json",
        "train_log.jsonl",
    ]
    header, records = read_train_log(run_dir / "train_log.jsonl")
    assert [r["step"] for r in records] == list(range(6))
    for r in records:
        assert {"step", "loss", "zo_seed", "projected_grad", "lr", "elapsed_s"} <= set(r)
    assert header["zo"]["noise"]["tensors"]
    on_disk = read_json(run_dir / "metrics.json")
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["forward_passes"] == 12 and on_disk["steps"] == 6
    assert on_disk["n_dev"] == 8 and on_disk["n_test"] == 12
    assert 0.0 <= on_disk["test_accuracy"] <= 1.0 and on_disk["peak_rss_bytes"] > 0
    assert on_disk["step_latency_median_s"] > 0
    assert on_disk["zo_noise_cache_bytes"] == 0  # z_cache="none" (default): inference-level memory
    n_params = sum(math.prod(shape) for _, shape, _ in header["zo"]["noise"]["tensors"])
    assert on_disk["zo_trainable_parameters"] == n_params
    info = read_json(run_dir / "run_info.json")
    assert info["packages"]["torch"] == torch.__version__
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # e.g. "AVX2"
    assert (
        set(info["git"]) == {"commit", "dirty"}
        and info["device"] == "cpu"
        and info["model_ref"]["slug"] == "tiny-llama"
    )


def test_resume_after_kill_equals_uninterrupted(tmp_path, model_refs):
    full_dir, split, full = _run(tmp_path / "full", model_refs)
    run_dir, split2 = make_run(tmp_path / "killed", "mezo", MEZO)
    assert (
        train(run_dir / "run_config.json", split2, model_refs["llama"], run_dir, threads=1, stop_after=3)
        is None
    )
    assert not (run_dir / "metrics.json").exists()
    # A kill mid-write leaves a torn last line; resume must drop it, not choke on it.
    log = run_dir / ".inprogress" / "train_log.jsonl"
    log.write_text(log.read_text() + '{"step": 3, "loss": 0.69')
    resumed = train(run_dir / "run_config.json", split2, model_refs["llama"], run_dir, threads=1)
    for key in ("dev_accuracy", "test_accuracy", "final_train_loss", "forward_passes", "steps"):
        assert resumed[key] == full[key], key
    _, a = read_train_log(full_dir / "train_log.jsonl")
    _, b = read_train_log(run_dir / "train_log.jsonl")
    assert _strip_timing(a) == _strip_timing(b)
    assert not (run_dir / ".inprogress").exists()


@pytest.mark.parametrize("method", ["mezo", "mezo_lora"])
def test_the_loops_deferred_updates_change_no_bit(tmp_path, model_refs, monkeypatch, method):
    """The loop lets each ZO step's update wait for the next step's first pass (zoharness.zo): with mid-run
    checkpoints (settled before each evaluation) the log, the checkpoints' scores, the reported scores and
    the predictions equal a run whose steps update at once."""
    from zoharness import models
    from zoharness.methods import get_method
    from zoharness.zo import ZOSGD

    m = get_method(method)
    model, _ = models.load(model_refs["llama"])
    inputs = m.smoke_inputs(model, [], tmp_path) if getattr(m, "INPUTS", ()) else {}

    def run(root):
        run_dir, split = make_run(root, method, MEZO, eval={"checkpoints": 3})
        metrics = train(
            run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1, inputs=inputs
        )
        return run_dir, metrics

    fused = count_fused_passes(monkeypatch)
    deferred_dir, deferred = run(tmp_path / "deferred")
    assert fused, "no step fused its update into the next pass"
    monkeypatch.setattr(ZOSGD, "_defers", lambda self: False)
    direct_dir, direct = run(tmp_path / "direct")
    _, a = read_train_log(deferred_dir / "train_log.jsonl")
    _, b = read_train_log(direct_dir / "train_log.jsonl")
    assert [r.get("checkpoint") for r in a if "checkpoint" in r], "no mid-run checkpoint"
    assert _strip_timing(a) == _strip_timing(b)
    for key in ("dev_accuracy", "test_accuracy", "best_step", "final_train_loss"):
        assert deferred.get(key) == direct.get(key), key
    assert (deferred_dir / "predictions.json").read_bytes() == (direct_dir / "predictions.json").read_bytes()


def test_replayed_model_equals_trained_model(tmp_path, model_refs):
    """Rebuild the final weights from base + log and check they score exactly as the run did."""
    from zoharness import models, scoring
    from zoharness.data import load_split
    from zoharness.tasks import get_task

    run_dir, split, metrics = _run(tmp_path, model_refs)
    model = replay_run(run_dir, model_refs["llama"])
    _, tok = models.load(model_refs["llama"])
    examples = load_split(read_json(split), read_json(run_dir / "run_config.json")["data"]["dir"]).test
    enc = [scoring.encode(tok, get_task("sst2").prompt(e), 96) for e in examples]
    assert scoring.evaluate(model, enc, tok.pad_token_id, 8)["accuracy"] == metrics["test_accuracy"]


def test_fo_and_zero_shot_through_the_same_loop(tmp_path, model_refs):
    _, _, fo = _run(tmp_path, model_refs, "fo", {"lr": 1e-3, "epochs": 1, "batch_size": 4})
    assert fo["steps"] == 4 and fo["train_examples_seen"] == 16 and fo["forward_passes"] == 4
    _, _, zs = _run(tmp_path, model_refs, "zero_shot", {})
    assert zs["steps"] == 0 and zs["forward_passes"] == 0 and zs["final_train_loss"] is None


def test_nonfinite_loss_stops_the_run_without_metrics(tmp_path, model_refs, monkeypatch):
    from zoharness import scoring
    from zoharness.zo import NonFiniteLossError

    monkeypatch.setattr(scoring, "loss", lambda model, batch: torch.tensor(float("nan")))
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    with pytest.raises(NonFiniteLossError, match="not finite"):
        train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    assert not (run_dir / "metrics.json").exists()


def test_changed_split_is_refused(tmp_path, model_refs):
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    manifest = read_json(split)
    manifest["splits"]["train"] = manifest["splits"]["train"][:-1]
    split.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="split manifest differs"):
        train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)


def test_log_of_another_config_is_not_resumed(tmp_path, model_refs, capsys):
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1, stop_after=2)
    run_dir, split = make_run(tmp_path, "mezo", {**MEZO, "lr": 2e-3})  # same folder, new config
    metrics = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    assert "starting over" in capsys.readouterr().err
    _, records = read_train_log(run_dir / "train_log.jsonl")
    assert metrics["steps"] == 6 and all(r["lr"] == 2e-3 for r in records)


def _rephrased_file(path, split_path, rewrite):
    """A rephrase-rule output for the split: every example 'rephrased' to rewrite(record)."""
    from tests.conftest import DATA
    from zoharness.data import load_split
    from zoharness.io import dumps, sha256_json

    lines = []
    for ex in load_split(read_json(split_path), DATA).train:
        new = rewrite(ex.record)
        used = "original" if new == ex.record else "rephrased"
        lines.append({"uid": ex.uid, "original_sha256": sha256_json(ex.record), "used": used, "record": new})
    path.write_text("".join(dumps(line) + "\n" for line in lines))
    return path


def _losses(run_dir):
    return [r["loss"] for r in read_train_log(run_dir / "train_log.jsonl")[1]]


def test_rephrase_method_trains_on_the_rephrased_set_and_equals_mezo_on_the_originals(tmp_path, model_refs):
    mezo_dir, split, _ = _run(tmp_path / "mezo", model_refs)
    for name, rewrite in (
        ("same", lambda r: r),
        ("upper", lambda r: {**r, "sentence": r["sentence"].upper()}),
    ):
        run_dir, split2 = make_run(tmp_path / name, "mezo_oat_rephrase", MEZO)
        rephrased = _rephrased_file(tmp_path / f"{name}.jsonl", split2, rewrite)
        metrics = train(
            run_dir / "run_config.json", split2, model_refs["llama"], run_dir, threads=1,
            inputs={"rephrased": str(rephrased)},
        )  # fmt: skip
        header = read_train_log(run_dir / "train_log.jsonl")[0]
        assert header["inputs"]["rephrased"]["path"] == str(rephrased)
        if name == "same":  # originals everywhere: MeZO's run, bit for bit
            assert _losses(run_dir) == _losses(mezo_dir)
            assert metrics["test_accuracy"] == read_json(mezo_dir / "metrics.json")["test_accuracy"]
        else:  # other training text, same evaluation sets
            assert _losses(run_dir) != _losses(mezo_dir)
            assert metrics["n_test"] == read_json(mezo_dir / "metrics.json")["n_test"]


def test_rephrase_method_refuses_a_file_made_for_another_split(tmp_path, model_refs):
    run_dir, split = make_run(tmp_path, "mezo_oat_rephrase", MEZO)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("")
    with pytest.raises(DataError, match="bad.jsonl: made for another split"):
        train(
            run_dir / "run_config.json",
            split,
            model_refs["llama"],
            run_dir,
            threads=1,
            inputs={"rephrased": str(bad)},
        )
    assert not (run_dir / "metrics.json").exists()
