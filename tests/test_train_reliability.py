"""Issue 19 (items 3, 5, 8): a failure while writing outputs resumes instead of retraining; one live
trainer per run directory; a resumed run says which figures cover only its last process."""

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import zoharness.train as train_mod
from tests.helpers import make_run
from zoharness.io import DataError, read_json
from zoharness.train import read_train_log, train
from zoharness.zo import ZOSGD

MEZO = {"lr": 1e-3, "eps": 1e-3, "steps": 6, "batch_size": 4}
OUTPUTS = ("metrics.json", "train_log.jsonl", "run_info.json", "predictions.json")  # rule train's
ROOT = Path(__file__).resolve().parents[1]


def _train(run_dir, split, model_refs, **kw):
    return train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1, **kw)


def _count_steps(monkeypatch) -> list[int]:
    """Indices of the optimisation steps MeZO executes from now on (replayed steps are not steps)."""
    executed, real = [], ZOSGD.step

    def step(self, batch, index):
        executed.append(index)
        return real(self, batch, index)

    monkeypatch.setattr(ZOSGD, "step", step)
    return executed


def _snapshot(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def test_failed_output_write_resumes_at_the_last_step(tmp_path, model_refs, monkeypatch, capsys):
    """Item 3: metrics.json hits a full disk; Snakemake deletes the outputs; the rerun replays the log."""
    full_dir, split_full = make_run(tmp_path / "full", "mezo", MEZO)
    full = _train(full_dir, split_full, model_refs)
    run_dir, split = make_run(tmp_path / "failed", "mezo", MEZO)
    real_write, failed = train_mod.write_json_atomic, []

    def full_disk_once(path, obj):
        if Path(path).name == "metrics.json" and not failed:
            failed.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, obj)

    monkeypatch.setattr(train_mod, "write_json_atomic", full_disk_once)
    with pytest.raises(OSError, match="No space left"):
        _train(run_dir, split, model_refs)
    _, logged = read_train_log(run_dir / ".inprogress" / "train_log.jsonl")
    for name in OUTPUTS:  # Snakemake's cleanup of a failed job
        (run_dir / name).unlink(missing_ok=True)
    executed = _count_steps(monkeypatch)
    capsys.readouterr()
    resumed = _train(run_dir, split, model_refs)
    assert executed == [] and "at step 6 of 6" in capsys.readouterr().err
    _, final = read_train_log(run_dir / "train_log.jsonl")
    assert final == logged  # the failed process's records, timings included: nothing re-ran
    assert resumed["resumed_at_step"] == 6 and resumed["measurements_complete"] is False
    assert resumed["segments"][0]["last_step"] == 5  # the failed process's figures are kept
    for key in ("dev_accuracy", "test_accuracy", "final_train_loss", "forward_passes", "steps"):
        assert resumed[key] == full[key], key
    assert read_json(run_dir / "predictions.json") == read_json(full_dir / "predictions.json")
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*OUTPUTS, "run_config.json"])


HOLD = """
import sys, time
from pathlib import Path
from zoharness.train import lock_run
lock_run(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(600)
"""


def test_second_trainer_fails_at_once_naming_the_live_one(tmp_path, model_refs, monkeypatch, capsys):
    """Item 5: Snakemake was killed, its trainer was not; a rerun must not start a second trainer."""
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    assert _train(run_dir, split, model_refs, stop_after=2) is None  # a run in progress
    path = [str(ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _snapshot(run_dir)

        def no_load(*args, **kwargs):
            raise AssertionError("a second trainer loaded the model")

        with monkeypatch.context() as m:
            m.setattr(train_mod.models, "load", no_load)
            with pytest.raises(DataError) as err:
                _train(run_dir, split, model_refs)
        assert isinstance(err.value, train_mod.RunLockedError)
        msg = str(err.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in msg, msg
        assert str(run_dir) in msg and "at step 2" in msg, msg
        assert _snapshot(run_dir) == before  # no file of the run touched
    finally:
        holder.kill()
        holder.wait()
    # flock dies with its holder: the next trainer takes the run over and resumes it.
    capsys.readouterr()
    assert _train(run_dir, split, model_refs)["steps"] == 6
    assert "at step 2 of 6" in capsys.readouterr().err


def test_resumed_run_reports_each_process(tmp_path, model_refs, monkeypatch):
    """Item 8: wall time and memory of a resumed run cover its last process only; say so, keep both."""
    whole_dir, split_whole = make_run(tmp_path / "whole", "mezo", MEZO)
    whole = _train(whole_dir, split_whole, model_refs)
    assert whole["resumed_at_step"] == 0 and whole["measurements_complete"] is True
    [seg] = whole["segments"]
    assert (seg["process"], seg["first_step"], seg["last_step"]) == (0, 0, 5)
    for key in ("wall_time_s", "train_time_s", "peak_rss_bytes", "train_transient_peak_bytes"):
        assert seg.get(key) == pytest.approx(whole.get(key)), key

    run_dir, split = make_run(tmp_path / "killed", "mezo", MEZO)
    real = ZOSGD.step

    def killed_at_3(self, batch, index):  # nothing after the kill runs: no return path writes figures
        if index == 3:
            raise KeyboardInterrupt
        return real(self, batch, index)

    with monkeypatch.context() as m:
        m.setattr(ZOSGD, "step", killed_at_3)
        with pytest.raises(KeyboardInterrupt):
            _train(run_dir, split, model_refs)
    resumed = _train(run_dir, split, model_refs)
    assert resumed["resumed_at_step"] == 3 and resumed["measurements_complete"] is False
    first, last = resumed["segments"]
    assert (first["process"], first["first_step"], first["last_step"]) == (0, 0, 2)
    assert (last["process"], last["first_step"], last["last_step"]) == (1, 3, 5)
    assert first["wall_time_s"] > 0 and first["peak_rss_bytes"] > 0
    assert (
        last["wall_time_s"] == resumed["wall_time_s"] and last["peak_rss_bytes"] == resumed["peak_rss_bytes"]
    )
    assert first["train_time_s"] + last["train_time_s"] == pytest.approx(resumed["train_time_s"])
    measured = [k for k in ("train_peak_bytes", "train_transient_peak_bytes") if k in resumed]
    assert all(k in first and k in last for k in measured)
    _, records = read_train_log(run_dir / "train_log.jsonl")  # step records only, as before
    assert [r["step"] for r in records] == list(range(6))
    assert set(records[0]) == set(read_train_log(whole_dir / "train_log.jsonl")[1][0])


FIXTURES = ROOT / "tests" / "fixtures" / "smoke"


def test_tables_mark_resumed_runs_and_leave_complete_ones_unchanged(tmp_path):
    from zoharness.tables import RUN_COLUMNS, write_tables

    metrics = sorted(FIXTURES.glob("*/*/*/seed*/metrics.json"))  # written before the new keys

    def tables(paths, name):
        out = {k: tmp_path / f"{name}{k}" for k in (".csv", ".md", "-runs.csv")}
        write_tables(paths, "smoke", out[".csv"], out[".md"], out["-runs.csv"])
        return pd.read_csv(out["-runs.csv"]), out[".md"].read_text()

    old_runs, old_md = tables(metrics, "old")
    assert list(old_runs.columns) == RUN_COLUMNS and "Resumed" not in old_md
    paths = []
    for p in metrics:  # the same runs, now with the keys; mezo seed 1 was resumed at step 3
        m = read_json(p)
        resumed = m["variant"] == "mezo" and m["seed"] == 1
        m.update(resumed_at_step=3 if resumed else 0, measurements_complete=not resumed)
        paths.append(tmp_path / "new" / p.relative_to(FIXTURES))
        paths[-1].parent.mkdir(parents=True)
        paths[-1].write_text(json.dumps(m))
    complete = [p for p in paths if "mezo/seed1" not in str(p)]
    runs, md = tables(complete, "complete")
    assert list(runs.columns) == RUN_COLUMNS and "Resumed" not in md
    runs, md = tables(paths, "partial")
    assert list(runs.columns) == [*RUN_COLUMNS, "resumed_at_step", "measurements_complete"]
    flagged = runs[~runs["measurements_complete"]]
    assert flagged[["method", "seed", "resumed_at_step"]].values.tolist() == [["mezo", 1, 3]]
    assert "## Resumed runs" in md and "- tiny-llama · sst2 · mezo seed 1 (resumed at step 3)" in md
    assert md.split("## Resumed runs")[0].rstrip() == old_md.rstrip()  # accuracy tables as before


def test_memory_figure_leaves_out_or_marks_partial_memory(tmp_path, monkeypatch):
    import pandas as pd

    from zoharness.sparse.reports import memory_figure

    def run(method, seed, transient, complete=None):
        m = {"task": "sst2", "variant": method, "method": "mezo", "label": method.upper(), "seed": seed,
             "steps": 6, "test_score": 0.5, "model_bytes": 2**20, "train_transient_peak_bytes": transient,
             "sparse_mask": None, "sparse_base": None, "sparse_density": None}  # fmt: skip
        if complete is not None:
            m["measurements_complete"] = complete
        return m

    rows = pd.DataFrame(
        [
            run("a", 0, 4 * 2**20, True),
            run("a", 1, 2**14, False),  # resumed at its last step: a 16 KiB "transient"
            run("b", 0, 2**14, False),  # b has no complete run
            run("c", 0, 2 * 2**20),  # written before the flag: complete
        ]
    )
    ax = memory_figure(rows, "t").axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["A", "B\n(resumed: last process only)", "C"]
    transients = ax.containers[-1].patches  # the last stacked part: step transients
    assert [round(p.get_width(), 3) for p in transients] == [4.0, round(2**14 / 2**20, 3), 2.0]
    assert [p.get_hatch() for p in transients] == [None, "//", None]
