"""Full fine-tuning sharded with FSDP over two processes (zoharness.distributed), on the CPU with gloo: the
same run as one process up to the order of additions, written once, by process 0."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import make_run
from zoharness.io import read_json
from zoharness.train import read_train_log, train

FO = {"lr": 1e-3, "epochs": 1, "batch_size": 4}
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _torchrun(run_dir, split, model_ref, n=2, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{TORCHRUN.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node", str(n), "-m", "zoharness", "train"]
        + [
            "--run-config",
            str(run_dir / "run_config.json"),
            "--split",
            str(split),
            "--model-ref",
            str(model_ref),
        ]
        + ["--out-dir", str(run_dir), "--threads", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def two_runs(model_refs, tmp_path_factory):
    """fo on the tiny Llama: once in this process, once as two FSDP processes."""
    root = tmp_path_factory.mktemp("fsdp")
    single, split = make_run(root / "single", "fo", FO)
    sharded, split2 = make_run(root / "sharded", "fo", FO)
    train(single / "run_config.json", split, model_refs["llama"], single, threads=1)
    scratch_before = set(Path(tempfile.gettempdir()).glob("zoharness-rank*"))
    out = _torchrun(sharded, split2, model_refs["llama"])
    assert out.returncode == 0, out.stderr[-3000:]
    return single, sharded, scratch_before


def test_fsdp_steps_match_one_process(two_runs):
    single, sharded, _ = two_runs
    (_, steps_a), (_, steps_b) = (
        read_train_log(single / "train_log.jsonl"),
        read_train_log(sharded / "train_log.jsonl"),
    )
    assert len(steps_a) == len(steps_b) == 4  # 16 examples, batch 4, 1 epoch
    for ra, rb in zip(steps_a, steps_b, strict=True):
        # the whole batch's loss and sizes, as one process logs them (padding differs: each process pads
        # only its own share of the batch)
        assert (ra["n_examples"], ra["n_tokens"]) == (rb["n_examples"], rb["n_tokens"])
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)  # float32 rounding: measured <= 2e-7
    assert steps_a[-1]["loss"] != steps_a[0]["loss"]  # it trained


def test_fsdp_evaluates_the_same_model(two_runs):
    single, sharded, _ = two_runs
    ma, mb = read_json(single / "metrics.json"), read_json(sharded / "metrics.json")
    assert mb["dev_score"] == pytest.approx(ma["dev_score"], abs=1 / 8 + 1e-9)  # at most one of 8 examples
    assert mb["test_score"] == pytest.approx(ma["test_score"], abs=1 / 12 + 1e-9)
    pa, pb = read_json(single / "predictions.json"), read_json(sharded / "predictions.json")
    assert pa.keys() == pb.keys()


def test_fsdp_writes_the_run_once_and_leaves_no_scratch(two_runs):
    single, sharded, scratch_before = two_runs
    assert sorted(p.name for p in sharded.iterdir()) == sorted(p.name for p in single.iterdir())
    assert set(Path(tempfile.gettempdir()).glob("zoharness-rank*")) <= scratch_before
    log = [json.loads(line) for line in (sharded / "train_log.jsonl").read_text().splitlines()]
    assert sum("header" in line for line in log) == 1


def test_a_method_that_cannot_shard_is_refused_under_torchrun(model_refs, tmp_path):
    run_dir, split = make_run(tmp_path, "mezo", {"lr": 1e-3, "eps": 1e-3, "steps": 2, "batch_size": 4})
    out = _torchrun(run_dir, split, model_refs["llama"])
    assert out.returncode != 0
    assert "method mezo runs on one process (it is not SHARDABLE" in out.stderr
    assert not (run_dir / "metrics.json").exists()


def test_a_batch_that_does_not_split_evenly_is_refused(model_refs, tmp_path):
    run_dir, split = make_run(tmp_path, "fo", {**FO, "batch_size": 3})
    out = _torchrun(run_dir, split, model_refs["llama"])
    assert out.returncode != 0
    assert "fo.batch_size = 3 cannot be split evenly over 2 processes" in out.stderr
    shutil.rmtree(run_dir, ignore_errors=True)
