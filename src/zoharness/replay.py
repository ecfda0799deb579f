"""Rebuild a ZO run's weights from the base model and its train log (no forward passes)."""

from __future__ import annotations

from pathlib import Path

from zoharness import models
from zoharness.io import read_json
from zoharness.methods import get_method
from zoharness.train import read_train_log


def replay_run(run_dir, model_ref, out_dir=None, upto: int | None = None):
    """Returns the model with the logged steps [0, upto) re-applied; saves it when out_dir is given."""
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "run_config.json")
    header, records = read_train_log(run_dir / "train_log.jsonl")
    module = get_method(cfg["method_id"])
    model, tokenizer = models.load(model_ref, cfg["precision"]["weights"], "cpu")
    inputs = {name: entry["path"] for name, entry in header.get("inputs", {}).items()}
    impl = module.build(model, module.Params(**cfg["params"]), cfg["seed"], **inputs)
    if not hasattr(impl, "replay"):
        raise ValueError(f"{run_dir}: method {cfg['method_id']!r} has no replayable trajectory")
    for record in records[:upto]:
        impl.replay(record)
    if out_dir is not None:
        # a method with its own save writes only what it trained (e.g. the sparse delta of a frozen base)
        (impl.save if hasattr(impl, "save") else model.save_pretrained)(out_dir)
        tokenizer.save_pretrained(out_dir)
    return model
