"""`zoharness replay` checks what it is given against what the run recorded (issue 19): the base model
(architecture through the logged tensor list, weights through run_info.json's hash), every input file's
sha256, and records what it used in replay_info.json. Refusals are the CLI's one-line error, rc 2."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers import make_run
from zoharness import models
from zoharness.cli import main
from zoharness.io import read_json, sha256_file, write_json_atomic, write_text_atomic
from zoharness.replay import replay_run
from zoharness.sparse import mask
from zoharness.train import read_train_log, train

MEZO = {"lr": 1e-3, "eps": 1e-3, "steps": 3, "batch_size": 4}
SPARSE = {"lr": 1.0, "eps": 1e-2, "steps": 3, "batch_size": 4}


def _mezo_run(tmp_path, model_refs):
    run_dir, split = make_run(tmp_path, "mezo", MEZO)
    metrics = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    return run_dir, metrics


def _write_mask(model, path, seed=0):
    shapes = mask.eligible_shapes(model)
    mask.save(path, mask.select(mask.random_scores(shapes, seed), 0.05), shapes, {"corpus": "random"})
    return path


def _sparse_run(tmp_path, model_refs, mask_arg):
    """A sparse_zo_int4 run whose header records `mask_arg` (a path as train was given it)."""
    run_dir, split = make_run(tmp_path, "sparse_zo_int4", SPARSE)
    train(
        run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1, inputs={"mask": mask_arg}
    )
    return run_dir


def _replay(capsys, run_dir, model_ref, out, *inputs, upto=None):
    argv = ["replay", "--run-dir", str(run_dir), "--model-ref", str(model_ref), "--out", str(out)]
    argv += [] if upto is None else ["--upto", upto]
    for item in inputs:
        argv += ["--input", item]
    capsys.readouterr()
    rc = main(argv)
    return rc, capsys.readouterr().err


def _one_line_error(err):
    # stderr also carries transformers' loading bars; the error is its one last line
    lines = err.rstrip("\n").split("\n")
    assert lines[-1].startswith("zoharness replay: error: "), err
    assert sum("error:" in line for line in lines) == 1 and "Traceback" not in err, err
    return lines[-1]


def test_base_of_another_architecture_is_refused_naming_both_tensors(tmp_path, model_refs, capsys):
    run_dir, _ = _mezo_run(tmp_path, model_refs)
    header, _ = read_train_log(run_dir / "train_log.jsonl")
    out = tmp_path / "out"
    rc, err = _replay(capsys, run_dir, model_refs["opt"], out)
    assert rc == 2
    _one_line_error(err)
    logged = header["zo"]["noise"]["tensors"][0]
    assert f"zo.noise.tensors[0] is {logged}" in err and "model.decoder.embed_tokens.weight" in err
    assert str(run_dir / "train_log.jsonl") in err and str(model_refs["opt"]) in err
    assert not out.exists()  # no weights written from the wrong base


def _other_llama(tmp_path, model_refs):
    """The tiny Llama with one weight nudged: same architecture and tensor list, other weights."""
    ref_path = tmp_path / "other-llama" / "model_ref.json"
    shutil.copytree(model_refs["llama"].parent, ref_path.parent)
    weights = ref_path.parent / "weights" / "model.safetensors"
    state = load_file(weights)
    name = sorted(state)[0]
    state[name] = state[name] + 1e-3
    save_file(state, weights, metadata={"format": "pt"})
    return ref_path, weights


def test_base_with_other_weights_is_refused_naming_both_hashes(tmp_path, model_refs, capsys):
    run_dir, _ = _mezo_run(tmp_path, model_refs)
    recorded = read_json(run_dir / "run_info.json")["model_ref"]["weights_sha256"]
    ref_path, weights = _other_llama(tmp_path, model_refs)
    given = sha256_file(weights)
    # the nudged copy's model_ref.json still claims the original hash: the weights file is what counts
    assert read_json(ref_path)["weights_sha256"] == recorded != given
    rc, err = _replay(capsys, run_dir, ref_path, tmp_path / "out")
    assert rc == 2
    _one_line_error(err)
    assert str(run_dir / "run_info.json") in err and str(ref_path) in err
    assert f"model_ref.weights_sha256 {recorded}" in err and f"weights_sha256 {given}" in err
    # a properly prepared other base (its ref's hash updated) is refused the same way
    write_json_atomic(ref_path, {**read_json(ref_path), "weights_sha256": given})
    rc, err = _replay(capsys, run_dir, ref_path, tmp_path / "out")
    assert rc == 2 and recorded in err and given in err
    assert not (tmp_path / "out").exists()


def test_logged_tensor_list_mismatch_is_refused_naming_both(tmp_path, model_refs, capsys):
    run_dir, _ = _mezo_run(tmp_path, model_refs)
    log = run_dir / "train_log.jsonl"
    header, records = read_train_log(log)
    tensors = header["zo"]["noise"]["tensors"]
    built = list(tensors[1])
    tensors[1] = [built[0], [7, 7], built[2]]
    write_text_atomic(log, "".join(json.dumps(x) + "\n" for x in [{"header": header}, *records]))
    rc, err = _replay(capsys, run_dir, model_refs["llama"], tmp_path / "out")
    assert rc == 2
    _one_line_error(err)
    assert f"zo.noise.tensors[1] is {tensors[1]}" in err and f"gives {built}" in err
    assert str(log) in err


def test_a_run_drawn_with_another_noise_generator_is_refused(tmp_path, model_refs, capsys):
    """A version-1 MeZO log (torch.Generator noise) replayed by version-2 code (Philox) would rebuild
    another trajectory's weights: refused, naming the key and both generators."""
    run_dir, _ = _mezo_run(tmp_path, model_refs)
    log = run_dir / "train_log.jsonl"
    header, records = read_train_log(log)
    ours = header["zo"]["noise"]["generator"]
    header["zo"]["noise"]["generator"] = (
        "torch.Generator(device='cpu').manual_seed(tensor_seed), one per tensor"
    )
    write_text_atomic(log, "".join(json.dumps(x) + "\n" for x in [{"header": header}, *records]))
    rc, err = _replay(capsys, run_dir, model_refs["llama"], tmp_path / "out")
    assert rc == 2
    line = _one_line_error(err)
    assert 'zo.noise.generator is "torch.Generator' in line and repr(ours) in line and str(log) in line
    assert not (tmp_path / "out").exists()


def test_mask_edited_after_the_run_is_refused_naming_both_hashes(tmp_path, model_refs, capsys):
    llama, _ = models.load(model_refs["llama"])
    path = _write_mask(llama, tmp_path / "mask.safetensors")
    run_dir = _sparse_run(tmp_path, model_refs, str(path))
    recorded = sha256_file(path)
    _write_mask(llama, path, seed=1)  # same density, other entries
    edited = sha256_file(path)
    assert edited != recorded
    rc, err = _replay(capsys, run_dir, model_refs["llama"], tmp_path / "out")
    assert rc == 2
    _one_line_error(err)
    assert f"{path}: input 'mask' has sha256 {edited}" in err
    assert f"recorded {recorded} (header inputs.mask.sha256)" in err
    assert str(run_dir / "train_log.jsonl") in err
    assert not (tmp_path / "out").exists()


def test_sparse_replay_from_another_directory_needs_and_takes_input(
    tmp_path, model_refs, capsys, monkeypatch
):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    elsewhere.mkdir()
    llama, _ = models.load(model_refs["llama"])
    path = _write_mask(llama, repo / "resources" / "mask.safetensors")
    monkeypatch.chdir(repo)  # the train rule runs from the repository root with a relative mask path
    run_dir = _sparse_run(tmp_path, model_refs, "resources/mask.safetensors")
    in_repo = replay_run(run_dir, model_refs["llama"])  # the header's path resolves from the root

    monkeypatch.chdir(elsewhere)
    rc, err = _replay(capsys, run_dir, model_refs["llama"], tmp_path / "out")
    assert rc == 2
    _one_line_error(err)
    assert "resources/mask.safetensors: input 'mask'" in err and "pass --input mask=PATH" in err

    rc, err = _replay(capsys, run_dir, model_refs["llama"], tmp_path / "out", f"mask={path}")
    assert rc == 0, err
    saved = load_file(tmp_path / "out" / "sparse_delta.safetensors")
    deltas = {n: p for n, p in in_repo.named_parameters() if n.endswith(".delta")}
    assert deltas and all(torch.equal(saved[n], p.detach()) for n, p in deltas.items())
    info = read_json(tmp_path / "out" / "replay_info.json")
    assert info["inputs"] == {"mask": {"path": str(path), "sha256": sha256_file(path)}}
    assert info["steps_replayed"] == 3 and info["run_dir"] == str(run_dir)

    rc, err = _replay(capsys, run_dir, model_refs["llama"], tmp_path / "out2", f"rephrased={path}")
    assert rc == 2 and "--input ['rephrased']" in err and "['mask']" in err


def test_happy_path_reproduces_the_trained_weights_and_records_what_it_used(
    tmp_path, model_refs, capsys, monkeypatch
):
    loaded = []

    def capture(*args, **kw):
        loaded.append(real_load(*args, **kw))
        return loaded[-1]

    real_load = models.load
    monkeypatch.setattr(models, "load", capture)
    run_dir, _ = _mezo_run(tmp_path, model_refs)
    monkeypatch.undo()
    trained = loaded[0][0].state_dict()  # the model object train stepped, holding the final weights

    out = tmp_path / "out"
    rc, err = _replay(capsys, run_dir, model_refs["llama"], out)
    assert rc == 0, err
    saved = load_file(out / "model.safetensors")
    assert saved and all(torch.equal(t, trained[n]) for n, t in saved.items())
    base = load_file(model_refs["llama"].parent / "weights" / "model.safetensors")
    assert any(not torch.equal(t, base[n]) for n, t in saved.items())  # the steps were applied
    ref = read_json(model_refs["llama"])
    assert read_json(out / "replay_info.json") == {
        "run_dir": str(run_dir),
        "model_ref": {"path": str(model_refs["llama"]), "weights_sha256": ref["weights_sha256"]},
        "inputs": {},
        "steps_replayed": 3,
        "total_steps": 3,
    }


@pytest.mark.parametrize("bad", ["mask", "=x", "mask="])
def test_malformed_input_option_is_a_one_line_error(tmp_path, capsys, bad):
    rc, err = _replay(capsys, tmp_path, tmp_path / "model_ref.json", tmp_path / "out", bad)
    assert rc == 2 and f"--input {bad!r}: expected NAME=PATH" in _one_line_error(err)


def test_upto_defaults_to_the_reported_checkpoint_and_takes_a_step_count(tmp_path, model_refs, capsys):
    """--upto best (the default) replays to metrics.json best_step: the model whose scores the run
    reported; last replays every step; a count past the log's end is refused."""
    run_dir, metrics = _mezo_run(tmp_path, model_refs)
    reported = read_json(run_dir / "metrics.json")
    reported["best_step"] = 1  # as if the first checkpoint had had the best dev score
    write_json_atomic(run_dir / "metrics.json", reported)
    for upto, steps in ((None, 1), ("last", 3), ("2", 2)):
        out = tmp_path / f"out-{upto}"
        rc, _ = _replay(capsys, run_dir, model_refs["llama"], out, upto=upto)
        assert rc == 0
        assert read_json(out / "replay_info.json")["steps_replayed"] == steps
    for bad, says in (
        ("4", "cannot replay 4 steps, the log holds 3"),
        ("x", "expected best, last or a number"),
    ):
        rc, err = _replay(capsys, run_dir, model_refs["llama"], tmp_path / "bad", upto=bad)
        assert rc == 2 and says in _one_line_error(err)


def test_an_adapter_initialised_differently_is_refused_naming_both_hashes(tmp_path):
    """A prefix from real activations is the run's only when its initial bytes hash the same."""
    from zoharness.io import DataError
    from zoharness.replay import _check_adapter_init

    logged = {"zo": {"adapter": {"init_sha256": "a" * 64}}}
    _check_adapter_init(logged, logged, tmp_path / "train_log.jsonl")  # same init: accepted
    _check_adapter_init(
        {"zo": {}}, logged, tmp_path / "train_log.jsonl"
    )  # nothing logged (LoRA, MeZO): accepted
    with pytest.raises(
        DataError, match=r"zo\.adapter\.init_sha256 is a{64}, but the adapter built here hashes to b{64}"
    ):
        _check_adapter_init(
            logged, {"zo": {"adapter": {"init_sha256": "b" * 64}}}, tmp_path / "train_log.jsonl"
        )
