"""Rebuild a ZO run's weights from the base model and its train log (no forward passes).

Replay trusts nothing it is given: every input file's sha256 must equal the one in the log header,
the method built on the given base must perturb the same tensors (names, shapes, dtypes) the log
records, and the given base weights must hash to what the run's run_info.json records. A mismatch
is refused naming the file, the key and both values; otherwise the weights could be rebuilt silently
from the wrong base (another architecture even writes weights without complaint). With out_dir,
replay_info.json records what was used.
"""

from __future__ import annotations

import json
from pathlib import Path

from zoharness import models
from zoharness.cpu_linear import linear_backend
from zoharness.io import DataError, check_artifact_format, read_json, sha256_file, write_json_atomic
from zoharness.methods import get_method, method_hooks
from zoharness.trainer import as_trainer
from zoharness.trainlog import read_train_log

REPLAY_INFO = "replay_info.json"
WEIGHTS_FILE = "model.safetensors"  # the file models.prepare hashes into model_ref.json


def _resolve_inputs(header: dict, log_path: Path, method_id: str, wanted, given: dict[str, str]) -> dict:
    """name -> {"path", "sha256"} of each input, checked against the header's recorded hash.

    A path not given defaults to the header's, resolved against the current directory: the header
    holds the path the train rule used (relative to the repository root), which means nothing from
    another working directory, hence --input."""
    logged = header.get("inputs", {})
    if set(logged) != set(wanted):
        raise DataError(
            f"{log_path}: header inputs are {sorted(logged)}, but method {method_id!r} takes {sorted(wanted)}"
        )
    unknown = sorted(set(given) - set(logged))
    if unknown:
        raise DataError(f"--input {unknown}: the run at {log_path} has inputs {sorted(logged)} only")
    resolved = {}
    for name, entry in logged.items():
        path = Path(given.get(name, entry["path"]))
        if not path.exists():
            how = "given with --input" if name in given else f"the header's path, from {Path.cwd()}"
            raise DataError(
                f"{path}: input {name!r} of {log_path} not found ({how}); "
                f"pass --input {name}=PATH with the run's file"
            )
        sha = sha256_file(path)
        if sha != entry["sha256"]:
            raise DataError(
                f"{path}: input {name!r} has sha256 {sha}, but {log_path} recorded "
                f"{entry['sha256']} (header inputs.{name}.sha256): not the file the run used"
            )
        resolved[name] = {"path": str(path.resolve()), "sha256": sha}
    return resolved


def _check_tensors(logged, built, log_path: Path, model_ref) -> None:
    """The perturbed tensors of the method built on the given base equal the logged ones."""
    # JSON round trip: the log holds lists where the header built here may hold tuples.
    logged, built = json.loads(json.dumps(logged)), json.loads(json.dumps(built))
    if logged == built:
        return
    where = f"{log_path}: zo.noise.tensors"
    if logged is None or built is None:
        raise DataError(f"{where} is {logged!r}, but the method built on {model_ref} gives {built!r}")
    for i, (a, b) in enumerate(zip(logged, built, strict=False)):
        if a != b:
            raise DataError(
                f"{where}[{i}] is {a}, but the method built on {model_ref} gives {b} "
                f"({len(logged)} tensors logged, {len(built)} built): another model architecture or dtype"
            )
    raise DataError(
        f"{where} lists {len(logged)} tensors, but the method built on {model_ref} gives {len(built)}"
    )


def _check_noise(header: dict, built: dict, log_path: Path, method_id: str) -> None:
    """The method built here draws z the way the run did (generator, draw, how it is applied), else the
    replayed weights would be another trajectory's."""
    logged, ours = header.get("zo", {}).get("noise", {}), built.get("zo", {}).get("noise", {})
    for key in ("generator", "draw", "applied_as"):
        if key in logged and logged[key] != ours.get(key):
            raise DataError(
                f"{log_path}: zo.noise.{key} is {logged[key]!r}, but {method_id!r} as built by this code "
                f"(method_version {get_method(method_id).VERSION}; the run's: {header.get('method_version')}) "
                f"gives {ours.get(key)!r}: replay with the code the run was trained with"
            )


def _check_adapter_init(header: dict, built: dict, log_path: Path) -> None:
    """An adapter initialised by a forward pass (a prefix from real activations) is the run's only when its
    bytes hash the same: another device or kernel can round the init differently."""
    logged = header.get("zo", {}).get("adapter", {}).get("init_sha256")
    ours = built.get("zo", {}).get("adapter", {}).get("init_sha256")
    if logged is not None and logged != ours:
        raise DataError(
            f"{log_path}: zo.adapter.init_sha256 is {logged}, but the adapter built here hashes to {ours}: its "
            "initial values differ (another device, dtype or attention kernel than the run's); replay where "
            "the run trained"
        )


def _base_identity(ref: dict, ref_path: Path | None) -> tuple[str, str]:
    """(key, value) naming a base model: the weights' sha256 for a local copy, hf id@revision otherwise.
    With ref_path the local weights file is hashed now (it may have changed since prepare); without,
    the value recorded in `ref` is taken."""
    if "hf_id" in ref:
        return "hf_id@revision", f"{ref['hf_id']}@{ref.get('revision')}"
    if ref_path is None:
        return "weights_sha256", ref.get("weights_sha256")
    weights = ref_path.parent / ref.get("weights_dir", "weights") / WEIGHTS_FILE
    if not weights.exists():
        raise DataError(f"{weights}: base weights of {ref_path} not found; rerun `zoharness prepare-model`")
    return "weights_sha256", sha256_file(weights)


def _check_base(run_dir: Path, model_ref_path: Path) -> dict:
    info_path = run_dir / "run_info.json"
    if not info_path.exists():
        raise DataError(f"{info_path}: not found; replay needs the run's record of its base weights")
    recorded = read_json(info_path).get("model_ref")
    if not isinstance(recorded, dict):
        raise DataError(f"{info_path}: no model_ref recorded; cannot check the base weights")
    ref = read_json(model_ref_path)
    want_key, want = _base_identity(recorded, None)
    key, got = _base_identity(ref, model_ref_path)
    if (want_key, want) != (key, got):
        raise DataError(
            f"{info_path}: the run's base is model_ref.{want_key} {want}, but --model-ref "
            f"{model_ref_path} gives {key} {got}: not the base the run trained from"
        )
    return {"path": str(model_ref_path.resolve()), key: got}


class NotReplayableError(DataError):
    """The run's method cannot rebuild its steps from the log (no trajectory): FT, evaluation-only."""


def replay(run_dir, model_ref, out_dir=None, upto: int | None = None, inputs: dict[str, str] | None = None):
    """(model, info): the model with the logged steps [0, upto) re-applied, and what replay used.
    `inputs` (name -> path) override the header's recorded paths. With out_dir, saves the weights and
    then replay_info.json (last: its presence means the folder is complete)."""
    run_dir, model_ref = Path(run_dir), Path(model_ref)
    cfg = check_artifact_format(read_json(run_dir / "run_config.json"), run_dir / "run_config.json")
    log_path = run_dir / "train_log.jsonl"
    header, records = read_train_log(log_path)
    module = get_method(cfg["method"])
    wanted = method_hooks(module).inputs
    used_inputs = _resolve_inputs(header, log_path, cfg["method"], wanted, inputs or {})
    model, tokenizer = models.load(
        model_ref, cfg["precision"]["weights"], "cpu", cpu_linear=linear_backend(cfg)
    )
    input_paths = {n: e["path"] for n, e in used_inputs.items()}
    trainer = as_trainer(
        module.build(model, module.Params(**cfg["params"]), cfg["seed"], **input_paths),
        model,
        cfg["method"],
    )
    if not trainer.can_replay:
        raise NotReplayableError(f"{run_dir}: method {cfg['method']!r} has no replayable trajectory")
    built = trainer.trajectory_header()
    _check_tensors(
        header.get("zo", {}).get("noise", {}).get("tensors"),
        built.get("zo", {}).get("noise", {}).get("tensors"),
        log_path,
        model_ref,
    )
    _check_noise(header, built, log_path, cfg["method"])
    _check_adapter_init(header, built, log_path)
    base = _check_base(run_dir, model_ref)
    if upto is not None and not 0 <= upto <= len(records):
        raise DataError(f"{log_path}: cannot replay {upto} steps, the log holds {len(records)}")
    applied = records[:upto]
    for record in applied:
        trainer.replay(record)
    info = {
        "run_dir": str(run_dir.resolve()),
        "model_ref": base,
        "inputs": used_inputs,
        "steps_replayed": len(applied),
        "total_steps": header.get("total_steps"),
    }
    if out_dir is not None:
        # the whole model, or, for a method with its own save, only what it trained (the sparse delta of
        # a frozen base): zoharness.trainer.Trainer.save
        trainer.save(out_dir)
        tokenizer.save_pretrained(out_dir)
        write_json_atomic(Path(out_dir) / REPLAY_INFO, info)
    return model, info


def replay_run(
    run_dir, model_ref, out_dir=None, upto: int | None = None, inputs: dict[str, str] | None = None
):
    """Returns the model with the logged steps [0, upto) re-applied; saves it when out_dir is given."""
    return replay(run_dir, model_ref, out_dir, upto, inputs)[0]
