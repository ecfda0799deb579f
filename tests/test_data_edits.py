"""A frozen split: edited data are refused (naming the examples), accepted only on request, and a touched
but unchanged data file reruns nothing. Real Snakemake runs on the smoke suite, split + run_config only."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import DATA, ROOT
from tests.test_workflow import ENV, snakemake
from zoharness.cli import main
from zoharness.data import ACCEPT_ENV, DataChangedError, refuse_changed_split

SPLIT = "results/smoke/splits/sst2/seed0.json"
RUN_CONFIG = "results/smoke/tiny-llama/sst2/zero_shot/seed0/run_config.json"
SMOKE = ("--cores", "1", "--configfile", "config/smoke.yaml")


def _edit_example(data_dir, uid: str) -> None:
    """Flip the label of SST-2 example `uid` ("train:<row>") in place."""
    path = data_dir / "sst2" / "train.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    row = int(uid.split(":")[1])
    record = json.loads(lines[row])
    record["label"] = 1 - record["label"]
    lines[row] = json.dumps(record) + "\n"
    path.write_text("".join(lines))


def _stamp(path):
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.fixture()
def frozen(tmp_path):
    """A copy of the workflow with its own SST-2 files, after a real run wrote one split and run_config."""
    for name in ("Snakefile", "rules", "config", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    shutil.copytree(DATA / "sst2", tmp_path / "data" / "sst2")
    out = snakemake(tmp_path, RUN_CONFIG, *SMOKE)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path


def _jobs_run(out) -> list[str]:
    lines = (out.stdout + out.stderr).splitlines()
    return [line.split()[1].rstrip(":") for line in lines if line.startswith("localrule ")]


def _snakemake_accepting(cwd):
    """snakemake with the accept switch set, as the refusal says."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", RUN_CONFIG, *SMOKE],
        cwd=cwd,
        env={**ENV, ACCEPT_ENV: "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_touched_data_rerun_nothing(frozen):
    os.utime(frozen / "data" / "sst2" / "train.jsonl")
    os.utime(frozen / "data" / "sst2" / "validation.jsonl")
    for args in (SMOKE, (*SMOKE, "--workflow-profile", "none")):
        out = snakemake(frozen, "-n", RUN_CONFIG, *args)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "Nothing to be done" in out.stdout + out.stderr


@pytest.mark.slow
def test_edited_example_is_refused_and_nothing_reruns_until_reverted(frozen):
    split, run_config = frozen / SPLIT, frozen / RUN_CONFIG
    before = {p: _stamp(p) for p in (split, run_config)}
    uid = json.loads(split.read_text())["splits"]["train"][3]["id"]
    original = (frozen / "data" / "sst2" / "train.jsonl").read_bytes()
    _edit_example(frozen / "data", uid)

    out = snakemake(frozen, RUN_CONFIG, *SMOKE)
    err = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"{SPLIT}: task sst2, seed 0: the data changed" in err
    assert "data/sst2/train.jsonl" in err and f"1 example(s) of the split changed: {uid!r} (train)" in err
    assert f"{ACCEPT_ENV}=1" in err
    assert _jobs_run(out) == []
    assert {p: _stamp(p) for p in (split, run_config)} == before  # bytes and mtimes
    again = snakemake(frozen, "-n", RUN_CONFIG, *SMOKE)  # the refusal holds until the user decides
    assert again.returncode != 0 and uid in again.stdout + again.stderr

    (frozen / "data" / "sst2" / "train.jsonl").write_bytes(original)  # reverted: nothing to redo
    out = snakemake(frozen, "-n", RUN_CONFIG, *SMOKE)
    assert out.returncode == 0 and "Nothing to be done" in out.stdout + out.stderr, out.stderr[-3000:]


@pytest.mark.slow
def test_accepted_edit_resamples_and_redoes_the_runs_once(frozen):
    split, run_config = frozen / SPLIT, frozen / RUN_CONFIG
    old = json.loads(split.read_text())
    old_run_config = run_config.read_bytes()
    uid = old["splits"]["train"][3]["id"]
    _edit_example(frozen / "data", uid)

    out = _snakemake_accepting(frozen)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(_jobs_run(out)) == ["run_config", "split"]
    assert f"1 example(s) of the split changed: {uid!r} (train)" in out.stderr
    log = (frozen / "logs/split/smoke/sst2/seed0.log").read_text()
    assert "accepted data change" in log and uid in log
    new = json.loads(split.read_text())
    pairs = list(zip(old["splits"]["train"], new["splits"]["train"], strict=True))
    assert all(a["id"] == b["id"] for a, b in pairs)  # the same examples, one of them edited
    assert [a["id"] for a, b in pairs if a != b] == [uid] and new["splits"]["test"] == old["splits"]["test"]
    assert new["files"]["sst2/train.jsonl"] != old["files"]["sst2/train.jsonl"]
    assert run_config.read_bytes() != old_run_config  # it hashes the manifest: the runs are redone
    out = snakemake(frozen, "-n", RUN_CONFIG, *SMOKE)  # accepted once; nothing left to do
    assert out.returncode == 0 and "Nothing to be done" in out.stdout + out.stderr, out.stderr[-3000:]


# The comparison itself, without Snakemake.


def _manifest(**over):
    m = {
        "manifest_version": 2,
        "task": "sst2",
        "seed": 0,
        "source": "offline",
        "pools": "train+validation",
        "deviation": None,
        "protocol": {"num_train": 2, "num_dev": 1, "num_test": 1},
        "files": {"sst2/train.jsonl": "a", "sst2/validation.jsonl": "b"},
        "n": {"train": 2, "dev": 1, "test": 1, "train_pool": 9},
        "splits": {
            "train": [{"id": "train:1", "sha256": "1"}, {"id": "train:2", "sha256": "2"}],
            "dev": [{"id": "train:3", "sha256": "3"}],
            "test": [{"id": "test:0", "sha256": "0"}],
        },
    }
    m.update(over)
    return m


def test_comparison_passes_equal_manifests_and_new_requests():
    old = _manifest()
    assert refuse_changed_split(old, _manifest(), "m.json", "data") is None
    changed = json.loads(json.dumps(old))
    changed["splits"]["train"][0]["sha256"] = "x"
    changed["files"]["sst2/train.jsonl"] = "c"
    for request in ({"seed": 1}, {"protocol": {"num_train": 3, "num_dev": 1, "num_test": 1}}):
        assert refuse_changed_split(old, {**changed, **request}, "m.json", "data") is None


def test_comparison_names_files_and_changed_ids_first_ten_and_a_count():
    old = _manifest()
    old["splits"]["train"] = [{"id": f"train:{i}", "sha256": str(i)} for i in range(100, 120)]
    new = json.loads(json.dumps(old))
    for e in new["splits"]["train"][:12]:
        e["sha256"] = "edited"
    new["splits"]["dev"] = [{"id": "train:99", "sha256": "99"}]  # another example chosen
    new["files"]["sst2/train.jsonl"] = "c"
    with pytest.raises(DataChangedError) as e:
        refuse_changed_split(old, new, "m.json", "data")
    msg = str(e.value)
    assert "m.json: task sst2, seed 0" in msg and "changed data file(s): data/sst2/train.jsonl\n" in msg
    assert "14 example(s) of the split changed: 'train:100' (train)" in msg  # 12 edited, 1 out, 1 in
    assert "'train:109' (train) and 4 more" in msg and "'train:110'" not in msg
    assert f"{ACCEPT_ENV}=1" in msg
    assert refuse_changed_split(old, new, "m.json", "data", accept=True).startswith("m.json: task sst2")


def test_comparison_refuses_a_file_change_outside_the_split():
    new = _manifest(files={"sst2/train.jsonl": "c", "sst2/validation.jsonl": "b"})
    with pytest.raises(DataChangedError, match="none of the split's 4 examples changed"):
        refuse_changed_split(_manifest(), new, "m.json", "data")


def test_split_cli_keeps_a_frozen_manifest_and_accepts_only_on_request(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ACCEPT_ENV, raising=False)
    shutil.copytree(DATA / "sst2", tmp_path / "sst2")
    out = tmp_path / "split.json"
    argv = ["split", "--task", "sst2", "--seed", "0", "--data-dir", str(tmp_path)]
    argv += ["--num-train", "8", "--num-dev", "4", "--num-test", "4", "--out", str(out)]
    assert main(argv) == 0
    frozen = out.read_bytes()
    assert main(argv) == 0 and out.read_bytes() == frozen  # same data: byte-identical
    uid = json.loads(frozen)["splits"]["dev"][0]["id"]
    _edit_example(tmp_path, uid)
    capsys.readouterr()

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"1 example(s) of the split changed: {uid!r} (dev)" in err and "--accept-data-changes" in err
    assert out.read_bytes() == frozen

    monkeypatch.setenv(ACCEPT_ENV, "1")
    assert main(argv) == 0
    assert "accepted data change" in capsys.readouterr().out
    accepted = out.read_bytes()
    assert accepted != frozen
    monkeypatch.delenv(ACCEPT_ENV)
    assert main(argv) == 0 and out.read_bytes() == accepted  # the new split is the frozen one now
    assert main([*argv, "--seed", "1"]) == 0  # another request is a resample by design
