"""Atomic artifacts and the CLI's error contract (exit code 2, one clear line, nothing written)."""

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import DATA, ROOT
from zoharness.io import read_json, write_json_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"accuracy": 0.5})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"accuracy": math.nan})  # NaN is refused before anything is renamed
    assert read_json(path) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_json_is_sorted_and_stable(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"b": 1, "a": {"d": 2, "c": 3}})
    text = (tmp_path / "a.json").read_text()
    assert text.index('"a"') < text.index('"b"') and text.index('"c"') < text.index('"d"')
    assert json.loads(text) == {"a": {"c": 3, "d": 2}, "b": 1}


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "zoharness", *args], capture_output=True, text=True, cwd=ROOT
    )


def split_cli(task, data_dir, out):
    return cli(
        "split",
        "--task",
        task,
        "--seed",
        "0",
        "--data-dir",
        str(data_dir),
        "--num-train",
        "4",
        "--num-test",
        "4",
        "--out",
        str(out),
    )


def test_cli_unknown_task_is_one_clear_error(tmp_path):
    out = split_cli("sst-2", DATA, tmp_path / "s.json")
    assert out.returncode == 2
    assert "zoharness split: error: unknown task 'sst-2'. Did you mean 'sst2'?" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "s.json").exists()


def test_cli_missing_data_names_the_path(tmp_path):
    out = split_cli("sst2", tmp_path, tmp_path / "s.json")
    assert (
        out.returncode == 2
        and f"{tmp_path}/sst2/train.jsonl: data file for task sst2 not found" in out.stderr
    )


def test_cli_check_config_reports_runs():
    from zoharness.config import load_suite, runs

    n = len(runs(load_suite(ROOT / "config/default.yaml")))
    assert n == 9  # FT, MeZO and sparse-ZO-int4 two seeds each, zero-shot and the two rephrase runs one
    out = cli("check-config", "config/default.yaml")
    assert out.returncode == 0 and f"config/default.yaml: valid; {n} runs" in out.stdout
