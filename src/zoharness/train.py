"""The one training loop: every method runs through it; it never branches on a method's name.

Artifacts (results/<suite>/<model>/<task>/<method>/seed<seed>/):
  train_log.jsonl  header line, then one line per step (step, loss, zo_seed, projected_grad, lr, ...)
  metrics.json     final metrics; written last, atomically, only when the run completed
  run_info.json    provenance
While running, the log lives in .inprogress/ (not a Snakemake output, so a failed or killed job's log
survives Snakemake's cleanup); a rerun resumes from it: ZO methods replay the logged steps onto the
base weights (bit-exact, no forward passes) and continue; methods without replay start over.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from zoharness import generation, models, scoring
from zoharness.data import data_dir, load_split
from zoharness.io import DataError, dumps, read_json, sha256_file, write_json_atomic, write_text_atomic
from zoharness.methods import get_method
from zoharness.profiling import (
    cuda_peaks,
    latency_stats,
    peak_rss_bytes,
    tensor_bytes,
    train_phase_peaks,
    train_phase_start,
)
from zoharness.provenance import run_info
from zoharness.tasks import get_task
from zoharness.tasks.base import GENERATION

INPROGRESS = ".inprogress"


class BatchSampler:
    """Step t -> example indices: a fresh seeded permutation per epoch, consecutive slices of it
    (the last batch of an epoch may be smaller, as the HF Trainer's default). Pure function of
    (seed, step), so a resumed run draws the same batches."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.steps_per_epoch = math.ceil(n / batch_size)
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


def _read_log(path: Path) -> tuple[dict | None, list[dict]]:
    """Header and step records of an in-progress log; a torn last line (killed mid-write) is dropped."""
    if not path.exists():
        return None, []
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # no trailing newline: the last write was interrupted
    parsed = []
    for line in lines:
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                break
    if not parsed or "header" not in parsed[0]:
        return None, []
    return parsed[0]["header"], parsed[1:]


def read_train_log(path: str | Path) -> tuple[dict, list[dict]]:
    header, records = _read_log(Path(path))
    if header is None:
        raise DataError(f"{path}: not a train log (no header line)")
    return header, records


def _encode_train(tokenizer, task, examples, max_length):
    objective = scoring.objective_for(task.kind)
    return [scoring.encode(tokenizer, task.prompt(ex), max_length, objective=objective) for ex in examples]


def evaluate_prompts(model, tokenizer, task, prompts, eval_cfg, device) -> dict:
    """The task's metric on a list of prompts: candidate scoring, or greedy generation + F1/EM."""
    if task.kind == GENERATION:
        return generation.evaluate_generation(
            model, tokenizer, prompts, eval_cfg["max_length"], eval_cfg["batch_size"], device
        )
    encoded = [scoring.encode(tokenizer, p, eval_cfg["max_length"]) for p in prompts]
    return scoring.evaluate(model, encoded, tokenizer.pad_token_id, eval_cfg["batch_size"], device)


def _eval_metrics(name: str, result: dict) -> dict:
    keys = ("f1", "em") if "f1" in result else ("accuracy",)
    return {f"{name}_score": result["score"], **{f"{name}_{k}": result[k] for k in keys}}


def _method_inputs(module, method_id: str, given: dict[str, str]) -> dict[str, str]:
    wanted = tuple(getattr(module, "INPUTS", ()))
    missing = [n for n in wanted if n not in given]
    if missing:
        raise DataError(f"method {method_id!r} needs input file(s) {missing}: pass --input NAME=PATH")
    unknown = sorted(set(given) - set(wanted))
    if unknown:
        raise DataError(f"method {method_id!r} takes input files {list(wanted)}, not {unknown}")
    for name, path in given.items():
        if not Path(path).exists():
            raise DataError(f"{path}: input {name!r} of method {method_id!r} not found")
    return dict(given)


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run_config asks for device 'cuda' but torch sees no CUDA device")
    return torch.device(requested)


def train(
    run_config_path,
    split_path,
    model_ref_path,
    out_dir,
    threads: int | None = None,
    stop_after: int | None = None,
    inputs: dict[str, str] | None = None,
) -> dict | None:
    """Run (or resume) one run. stop_after=k returns after step k without finishing (simulates a kill).
    `inputs` are the method's extra files (its INPUTS: a mask, a rephrased train set), name -> path."""
    wall_start = time.perf_counter()
    cfg = read_json(run_config_path)
    out_dir = Path(out_dir)
    if sha256_file(split_path) != cfg["split_sha256"]:
        raise DataError(
            f"{split_path}: split manifest differs from the one {run_config_path} was made for; "
            "rerun the workflow so run_config.json is rewritten"
        )
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    device = pick_device(cfg["device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    module = get_method(cfg["method_id"])
    params = module.Params(**cfg["params"])
    inputs = _method_inputs(module, cfg["method_id"], inputs or {})
    task = get_task(cfg["task"])
    split = load_split(read_json(split_path), data_dir(cfg["data"]), str(split_path))
    model, tokenizer = models.load(model_ref_path, cfg["precision"]["weights"], device)
    max_length = cfg["eval"]["max_length"]
    total = module.num_steps(params, len(split.train))
    # Evaluation-only methods (zero-shot, ICL) never batch the train split: skip tokenising it.
    # A method may train on other examples than the split's (rephrased ones); evaluation never changes.
    train_examples = (
        module.train_examples(params, task, split.train, **inputs)
        if hasattr(module, "train_examples")
        else split.train
    )
    train_set = _encode_train(tokenizer, task, train_examples, max_length) if total else []
    impl = module.build(model, params, cfg["seed"], **inputs)

    work = out_dir / INPROGRESS
    log_path = work / "train_log.jsonl"
    header = {
        "run_config_sha256": sha256_file(run_config_path),
        "method": cfg["method"],
        "method_id": cfg["method_id"],
        "method_version": module.VERSION,
        "params": cfg["params"],
        "seed": cfg["seed"],
        "total_steps": total,
        "dtype": cfg["precision"]["weights"],
        "device": str(device),
        # A different input file (another mask) makes the in-progress log a different run.
        "inputs": {name: {"path": str(path), "sha256": sha256_file(path)} for name, path in inputs.items()},
        **(impl.trajectory_header() if hasattr(impl, "trajectory_header") else {}),
    }
    old_header, records = _read_log(log_path)
    if old_header is not None and json.loads(dumps(header)) != old_header:
        print(
            f"[zoharness] {log_path}: in-progress log belongs to a different run config; starting over",
            file=sys.stderr,
        )
        records = []
    if records and not hasattr(impl, "replay"):
        print(f"[zoharness] {cfg['method']} cannot replay a log; restarting from step 0", file=sys.stderr)
        records = []
    records = records[:total]
    for r in records:
        impl.replay(r)
    # Rewrite header + the records kept, atomically: a kill here leaves the previous log intact.
    write_text_atomic(log_path, "".join(dumps(line) + "\n" for line in [{"header": header}, *records]))
    if records:
        print(f"[zoharness] resumed from {log_path} at step {len(records)} of {total}", file=sys.stderr)

    model_bytes = tensor_bytes([*model.parameters(), *model.buffers()])  # as built for training
    memory_at_start = train_phase_start(device)
    batch_size = getattr(params, "batch_size", 1)
    sampler = BatchSampler(len(train_set), batch_size, cfg["seed"])
    pad_id = tokenizer.pad_token_id
    with (
        log_path.open("a", encoding="utf-8") as log,
        tqdm(
            total=total,
            initial=len(records),
            desc=f"{cfg['method']} {cfg['task']} seed{cfg['seed']}",
            file=sys.stderr,
            mininterval=1 if sys.stderr.isatty() else 30,
            disable=total == 0,
        ) as bar,
    ):
        for step in range(len(records), total):
            batch = scoring.collate([train_set[i] for i in sampler.indices(step)], pad_id).to(device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            out = impl.step(batch, step)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            record = {
                "step": step,
                **out,
                "elapsed_s": time.perf_counter() - t0,
                "n_examples": batch.n_examples,
                "n_tokens": batch.n_tokens,
            }
            log.write(dumps(record) + "\n")
            log.flush()
            records.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{out['loss']:.4f}", refresh=False)
            if stop_after is not None and step + 1 >= stop_after and step + 1 < total:
                return None

    train_memory = train_phase_peaks(device, memory_at_start) if total else {}
    eval_start = time.perf_counter()
    results = {}
    for name, examples in (("dev", split.dev), ("test", split.test)):
        if hasattr(module, "eval_prompts"):  # e.g. ICL: demonstrations prepended per example
            prompts = module.eval_prompts(params, task, split.train, examples, name, cfg["seed"])
        else:
            prompts = [task.prompt(ex) for ex in examples]
        results[name] = evaluate_prompts(model, tokenizer, task, prompts, cfg["eval"], device)
        results[name]["ids"] = [ex.uid for ex in examples]
    eval_s = time.perf_counter() - eval_start

    step_times = [r["elapsed_s"] for r in records]
    metrics = {
        "suite": cfg["suite"],
        "model": cfg["model"],
        "task": cfg["task"],
        "method": cfg["method"],
        "method_id": cfg["method_id"],
        "label": cfg["label"],
        "seed": cfg["seed"],
        "metric": task.metric,
        "task_kind": task.kind,
        **_eval_metrics("dev", results["dev"]),
        **_eval_metrics("test", results["test"]),
        "n_train": len(train_examples),
        "n_dev": results["dev"]["n"],
        "n_test": results["test"]["n"],
        "steps": total,
        "forward_passes": int(sum(r.get("forward_passes", 0) for r in records)),
        "train_examples_seen": int(sum(r["n_examples"] for r in records)),
        "final_train_loss": float(np.mean([r["loss"] for r in records[-20:]])) if records else None,
        "train_time_s": float(sum(step_times)),
        "eval_time_s": eval_s,
        "wall_time_s": time.perf_counter() - wall_start,
        "batch_size": batch_size if total else None,
        "eval_batch_size": cfg["eval"]["batch_size"],
        "mean_train_tokens_per_step": float(np.mean([r["n_tokens"] for r in records])) if records else None,
        "dtype": cfg["precision"]["weights"],
        "device": str(device),
        "torch_threads": threads,
        **(impl.extra_metrics() if hasattr(impl, "extra_metrics") else {}),
        "model_bytes": model_bytes,
        **train_memory,
        "peak_rss_bytes": peak_rss_bytes(),
        **cuda_peaks(device),
        **latency_stats(step_times),
    }
    predictions = {
        name: [{"id": i, "prediction": p} for i, p in zip(r["ids"], r["predictions"], strict=True)]
        for name, r in results.items()
    }
    write_json_atomic(out_dir / "predictions.json", predictions)
    shutil.move(str(log_path), out_dir / "train_log.jsonl")
    shutil.rmtree(work, ignore_errors=True)
    write_json_atomic(out_dir / "run_info.json", run_info(device, read_json(model_ref_path), threads))
    write_json_atomic(out_dir / "metrics.json", metrics)  # last: its presence means the run completed
    return metrics
