"""Failures of a run rather than of the code (a diverged loss, a full disk, a missing permission, a
parameter of the wrong type) end `python -m zoharness` with one line naming the run and what to do,
rc 2, no traceback; a genuine bug keeps its traceback."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_run
from zoharness import cli

ROOT = Path(__file__).resolve().parents[1]
MEZO = {"lr": 1e-3, "batch_size": 4, "steps": 3}


def _train_args(run_dir, split, model_ref):
    return [
        "train", "--run-config", str(run_dir / "run_config.json"), "--split", str(split),
        "--model-ref", str(model_ref), "--out-dir", str(run_dir), "--threads", "1",
    ]  # fmt: skip


def _fail_train(monkeypatch, error):
    import zoharness.train

    def train(*args, **kwargs):
        raise error

    monkeypatch.setattr(zoharness.train, "train", train)


def _one_error_line(capsys, rc, command="train") -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and "\n" not in err, err
    assert err.startswith(f"zoharness {command}: error: ")
    return err


def test_nonfinite_loss_is_one_line_naming_run_step_and_remedy(tmp_path, monkeypatch, capsys):
    from zoharness.zo import NonFiniteLossError

    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    _fail_train(monkeypatch, NonFiniteLossError("step 3: loss is not finite (L+=nan, L-=nan)"))
    err = _one_error_line(capsys, cli.main(_train_args(run_dir, split, tmp_path / "model_ref.json")))
    assert f"run {run_dir}: step 3: loss is not finite" in err
    assert err.endswith("lower lr or eps, or check the data")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_names_the_file_and_its_filesystem(tmp_path, monkeypatch, capsys, code):
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    log = run_dir / "train_log.jsonl"
    _fail_train(monkeypatch, OSError(code, os.strerror(code), str(log)))
    err = _one_error_line(capsys, cli.main(_train_args(run_dir, split, tmp_path / "model_ref.json")))
    fs = cli._filesystem(log)
    assert os.path.ismount(fs) and str(log).startswith(fs)
    assert f"run {run_dir}: {os.strerror(code)}: {log}: free space on {fs} and rerun" in err
    assert err.endswith("the run resumes from its log")


def test_disk_full_in_another_command_names_its_output(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run_config.json"
    (tmp_path / "split.json").write_text("{}")

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cli, "write_json_atomic", full)
    rc = cli.main(["run-config", "--spec", "{}", "--split", str(tmp_path / "split.json"), "--out", str(out)])
    err = _one_error_line(capsys, rc, "run-config")
    assert f"{out}: No space left on device: {out}: free space on " in err and "resumes" not in err


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_permission_error_says_where_to_check(tmp_path, monkeypatch, capsys, code):
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    _fail_train(monkeypatch, PermissionError(code, os.strerror(code), str(run_dir / "metrics.json")))
    err = _one_error_line(capsys, cli.main(_train_args(run_dir, split, tmp_path / "model_ref.json")))
    assert f"run {run_dir}: {os.strerror(code)}: {run_dir / 'metrics.json'}" in err
    assert err.endswith(f"check write permission on {run_dir / 'metrics.json'}")


def test_an_oserror_without_a_filename_names_the_run(tmp_path, monkeypatch, capsys):
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    _fail_train(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    err = _one_error_line(capsys, cli.main(_train_args(run_dir, split, tmp_path / "model_ref.json")))
    assert f"No space left on device: {run_dir}: free space on " in err


def test_a_wrongly_typed_param_in_run_config_is_one_line(tmp_path, capsys):
    """A run_config.json written by hand (or before types were checked): the real train() fails with
    a TypeError in Params.__post_init__, which the CLI explains with the parameter check."""
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    path = run_dir / "run_config.json"
    cfg = json.loads(path.read_text())
    cfg["params"]["lr"] = "1e-3"
    path.write_text(json.dumps(cfg))
    err = _one_error_line(capsys, cli.main(_train_args(run_dir, split, tmp_path / "model_ref.json")))
    assert f"run {run_dir}: {path}: params: mezo.lr must be float, got '1e-3' (str)" in err
    assert "write 1.0e-3 or 0.001" in err


@pytest.mark.parametrize(
    "error", [TypeError("unsupported operand"), OSError(errno.EIO, "I/O error"), FloatingPointError("x")]
)
def test_a_genuine_bug_keeps_its_traceback(tmp_path, monkeypatch, error):
    run_dir, split = make_run(tmp_path, "mezo", MEZO)  # valid params: the TypeError is not theirs
    _fail_train(monkeypatch, error)
    with pytest.raises(type(error)):
        cli.main(_train_args(run_dir, split, tmp_path / "model_ref.json"))


def test_a_diverging_run_ends_with_one_line_in_a_real_subprocess(tmp_path, model_refs):
    # torch-generator noise: with it this lr overflows the tiny model's weights at step 1 (measured); with the
    # Philox stream the same lr saturates the model to a constant, finite loss instead, which is no error
    run_dir, split = make_run(tmp_path, "mezo", {"lr": 1e38, "batch_size": 4, "steps": 3, "noise": "torch"})
    out = subprocess.run(
        [sys.executable, "-m", "zoharness", *_train_args(run_dir, split, model_refs["llama"])],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert errors == [
        line for line in errors if line.startswith(f"zoharness train: error: run {run_dir}: step ")
    ]
    assert len(errors) == 1 and "loss is not finite" in errors[0]
    assert errors[0].endswith("lower lr or eps, or check the data")
    assert not (run_dir / "metrics.json").exists()
