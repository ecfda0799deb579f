"""The one training loop: every method runs through it; it never branches on a method's name.

Artifacts (results/<suite>/<model>/<task>/<method>/seed<seed>/):
  train_log.jsonl  header line, then one line per step (step, loss, zo_seed, projected_grad, lr, ...)
  metrics.json     final metrics; written last, atomically, only when the run completed
  run_info.json    provenance
While running, the log lives in .inprogress/ (zoharness.rundir: also the lock and the per-process
segments); a rerun resumes from it: methods that can replay re-apply the logged steps onto the base
weights (ZO: bit-exact, no forward passes) and continue; the others start over. The in-progress copy is
removed only after every output is written, so a failure while writing them (a full disk) costs a
replay, not the trajectory.

A run is five stages, read top to bottom in `train`: prepare (load everything), resume (the in-progress
log), loop (the steps; dev at MeZO's checkpoints, eval.checkpoints), evaluate (dev and test of the best dev
checkpoint: the last step, or an earlier one rebuilt by replay or from a kept copy), write (the outputs,
metrics.json last). The method is
seen only through zoharness.trainer.Trainer (what its build returned) and methods.method_hooks (its
optional module-level hooks).
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from zoharness import distributed, generation, models, scoring
from zoharness.checkpoints import best_checkpoint, checkpoint_steps, curve_from_records
from zoharness.cpu_linear import linear_backend
from zoharness.data import Split, data_dir, load_split
from zoharness.devices import check_gpu_memory, check_no_offload, pick_device, spread_device_map
from zoharness.io import (
    DataError,
    check_artifact_format,
    dumps,
    read_json,
    sha256_file,
    sha256_json,
    write_json_atomic,
    write_text_atomic,
)
from zoharness.methods import MethodHooks, get_method, method_hooks
from zoharness.profiling import (
    cuda_peaks,
    latency_stats,
    peak_rss_bytes,
    tensor_bytes,
    train_phase_peaks,
    train_phase_start,
)
from zoharness.provenance import run_info
from zoharness.rundir import (
    INPROGRESS,
    LOG,
    SEGMENTS,
    WEIGHTS_DIR,
    copy_atomic,
    lock_run,
    read_segments,
    unlock_run,
    write_segments,
)
from zoharness.rundir import RunLockedError as RunLockedError  # re-exported: callers catch it here
from zoharness.tasks import get_task
from zoharness.tasks.base import GENERATION
from zoharness.trainer import Trainer, as_trainer
from zoharness.trainlog import read_log
from zoharness.trainlog import read_train_log as read_train_log  # re-exported for older importers


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


def _encode_train(tokenizer, task, examples, max_length):
    objective = scoring.objective_for(task.kind)
    return [scoring.encode(tokenizer, task.prompt(ex), max_length, objective=objective) for ex in examples]


def _answer_targets(params, tokenizer, task, examples, eval_cfg) -> scoring.AnswerTargets | None:
    """For an objective that decodes (scoring.DECODING_OBJECTIVES: MeZO Table 3's f1), every training example's
    decoding context and gold answers, prepared as the evaluator prepares its prompts; None for every other
    objective (nothing extra is built or attached)."""
    if getattr(params, "objective", "loss") not in scoring.DECODING_OBJECTIVES:
        return None
    prompts = [task.prompt(ex) for ex in examples]
    return scoring.answer_targets(tokenizer, prompts, eval_cfg["max_length"], eval_cfg["batch_size"])


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


def _method_inputs(wanted: tuple[str, ...], method_id: str, given: dict[str, str]) -> dict[str, str]:
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


@dataclass
class Run:
    """What the stages share: prepare fills the first block, resume and loop the rest."""

    cfg: dict
    run_config_path: Path
    model_ref_path: Path
    out_dir: Path
    wall_start: float  # before the config was read: wall time covers loading too
    threads: int
    device: torch.device
    module: ModuleType
    hooks: MethodHooks
    params: Any
    inputs: dict[str, str]
    task: Any
    split: Split
    model: Any
    tokenizer: Any
    total: int  # optimisation steps (0: an evaluation-only method)
    train_examples: list
    train_set: list  # encoded train_examples ([] when total is 0)
    trainer: Trainer
    pack: str | None  # how training batches are packed (scoring.packing_mode), None: right-padded
    # the train set's decoding contexts and answers for an objective that decodes (f1); None otherwise
    answer_targets: scoring.AnswerTargets | None = None
    # resume:
    header: dict = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)  # the log's step records, the kept ones first
    earlier: list[dict] = field(default_factory=list)  # segments of the processes before this one
    segment: dict = field(default_factory=dict)  # this process's segment
    # loop:
    model_bytes: int = 0
    train_memory: dict = field(default_factory=dict)
    # MeZO's checkpoint protocol (zoharness.checkpoints): a method that cannot replay keeps the weights of
    # its best dev checkpoint so far, (steps done, state dict); None until one is taken
    best_weights: tuple[int, dict] | None = None
    # from_pretrained's device_map arguments when the model is spread over several GPUs (None: one device)
    spread: dict | None = None

    @property
    def checkpoint_steps(self) -> list[int]:
        """Steps after which dev is evaluated; the last one is the run's end (evaluate, not the loop)."""
        return checkpoint_steps(self.total, self.cfg["eval"].get("checkpoints", 1))

    @property
    def test_curve(self) -> bool:
        return bool(self.cfg["eval"].get("test_curve", False))

    @property
    def work(self) -> Path:
        return self.out_dir / INPROGRESS

    @property
    def log_path(self) -> Path:
        return self.work / LOG

    @property
    def batch_size(self) -> int:
        return getattr(self.params, "batch_size", 1)  # evaluation-only methods have none


def train(
    run_config_path,
    split_path,
    model_ref_path,
    out_dir,
    threads: int | None = None,
    stop_after: int | None = None,
    inputs: dict[str, str] | None = None,
    gpus: int = 1,
    memory_estimate_gb: float | None = None,
) -> dict | None:
    """Run (or resume) one run. stop_after=k returns after step k without finishing (simulates a kill).
    `inputs` are the method's extra files (its INPUTS: a mask, a rephrased train set), name -> path.
    On CUDA, `gpus` is the job's GPU count (more than one: the model is spread over them) and
    `memory_estimate_gb` the scheduler's estimate, checked against the GPUs' free memory before loading."""
    wall_start = time.perf_counter()
    cfg = check_artifact_format(read_json(run_config_path), run_config_path)
    out_dir = Path(out_dir)
    if sha256_file(split_path) != cfg["split_sha256"]:
        raise DataError(
            f"{split_path}: split manifest differs from the one {run_config_path} was made for; "
            "rerun the workflow so run_config.json is rewritten"
        )
    # Under torchrun (FSDP, zoharness.distributed) every process runs the whole run; only process 0 writes
    # the run's folder, the others a scratch folder removed at the end.
    rank, _ = distributed.world()
    scratch = Path(tempfile.mkdtemp(prefix=f"zoharness-rank{rank}-")) if rank > 0 else None
    out_dir = scratch or out_dir
    lock = lock_run(out_dir)  # before anything is loaded or written: a second trainer fails at once
    try:
        run = prepare(
            cfg,
            run_config_path,
            split_path,
            model_ref_path,
            out_dir,
            threads,
            inputs,
            wall_start,
            gpus,
            memory_estimate_gb,
        )
        resume(run)
        if not loop(run, stop_after):
            return None  # stopped early on request: the in-progress log is the run's state
        results, checkpoints, eval_s = evaluate(run)
        return write(run, results, checkpoints, eval_s)
    finally:
        unlock_run(out_dir, lock)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        distributed.finish()


def prepare(
    cfg,
    run_config_path,
    split_path,
    model_ref_path,
    out_dir,
    threads,
    inputs,
    wall_start,
    gpus=1,
    memory_estimate_gb=None,
) -> Run:
    """Device, method, inputs, task, split, model, train set and the method's trainer."""
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()  # recorded as torch_threads: what the run actually used
    device = pick_device(cfg["device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # peaks in metrics.json are this run's
    module = get_method(cfg["method"])
    hooks = method_hooks(module)
    params = module.Params(**cfg["params"])
    inputs = _method_inputs(hooks.inputs, cfg["method"], inputs or {})
    task = get_task(cfg["task"])
    split = load_split(read_json(split_path), data_dir(cfg["data"]), str(split_path))
    spread = None
    if device.type == "cuda":
        check_gpu_memory(gpus, memory_estimate_gb, f"model {cfg['model']} with method {cfg['method']}")
    if distributed.launched():  # FSDP: one process per GPU, started by torchrun (the train rule)
        device = _fsdp_device(module, params, cfg, device)
        # loaded on the host, then sharded onto the devices
        model, tokenizer = models.load(
            model_ref_path, cfg["precision"]["weights"], "cpu", cpu_linear=linear_backend(cfg)
        )
        distributed.shard(model, device)
    else:
        if device.type == "cuda" and gpus > 1:
            # Layers spread over the GPUs (MeZO's device_map='auto'); each weight keeps its seeded noise
            # wherever it lives (zoharness.philox: z is a function of the tensor's seed and index only).
            spread = spread_device_map(gpus)
        model, tokenizer = models.load(
            model_ref_path, cfg["precision"]["weights"], device, spread, linear_backend(cfg)
        )
        if spread is not None:
            check_no_offload(model)
    total = module.num_steps(params, len(split.train), task.kind)
    # A method may train on other examples than the split's (rephrased ones); evaluation never changes.
    train_examples = hooks.train_examples(params, task, split.train, **inputs)
    # Evaluation-only methods (zero-shot, ICL) never batch the train split: skip tokenising it.
    max_length = cfg["eval"]["max_length"]
    train_set = _encode_train(tokenizer, task, train_examples, max_length) if total else []
    targets = _answer_targets(params, tokenizer, task, train_examples, cfg["eval"]) if total else None
    trainer = as_trainer(module.build(model, params, cfg["seed"], **inputs), model, cfg["method"])
    # Probed after build: a method may have replaced layers (sparse_zo_int4's NF4 base).
    pack = scoring.packing_mode(model)
    return Run(
        cfg=cfg,
        run_config_path=Path(run_config_path),
        model_ref_path=Path(model_ref_path),
        out_dir=out_dir,
        wall_start=wall_start,
        threads=threads,
        device=device,
        module=module,
        hooks=hooks,
        params=params,
        inputs=inputs,
        task=task,
        split=split,
        model=model,
        tokenizer=tokenizer,
        total=total,
        train_examples=train_examples,
        train_set=train_set,
        trainer=trainer,
        pack=pack,
        answer_targets=targets,
        spread=spread,
    )


def _fsdp_device(module, params, cfg, device) -> torch.device:
    """This process's device under torchrun, after checking that the method and its batch can be sharded."""
    _, n = distributed.world()
    if not getattr(module, "SHARDABLE", False):
        raise ValueError(
            f"method {cfg['method']} runs on one process (it is not SHARDABLE: only full fine-tuning is "
            f"sharded with FSDP), but {n} were started"
        )
    batch = getattr(params, "batch_size", 1)
    if batch % n:
        raise ValueError(
            f"{cfg['method']}.batch_size = {batch} cannot be split evenly over {n} processes (FSDP)"
        )
    return distributed.init(device.type)


# "packed" (position-id masking) keeps its name from engine 2, so those logs stay valid
BATCH_LAYOUTS = {None: "padded", "positions": "packed", "block_mask": "packed (block mask)"}


def _header(run: Run) -> dict:
    """The log's first line: everything that makes two logs the same run (then the trainer's own)."""
    cfg = run.cfg
    return {
        "run_config_sha256": sha256_file(run.run_config_path),
        "artifact_format": cfg["artifact_format"],
        "variant": cfg["variant"],
        "method": cfg["method"],
        "method_version": run.module.VERSION,
        "params": cfg["params"],
        "seed": cfg["seed"],
        "total_steps": run.total,
        "dtype": cfg["precision"]["weights"],
        "device": str(run.device),
        # Packed and padded batches give the same losses only up to rounding: a different trajectory.
        "batch_layout": BATCH_LAYOUTS[run.pack],
        # A different input file (another mask) makes the in-progress log a different run.
        "inputs": {
            name: {"path": str(path), "sha256": sha256_file(path)} for name, path in run.inputs.items()
        },
        **run.trainer.trajectory_header(),
    }


def resume(run: Run) -> None:
    """Keep the in-progress log's steps when it belongs to this run and the trainer can replay them."""
    run.header = header = _header(run)
    log_path = run.log_path
    old_header, records = read_log(log_path)
    if old_header is not None and json.loads(dumps(header)) != old_header:
        print(
            f"[zoharness] {log_path}: in-progress log belongs to a different run config; starting over",
            file=sys.stderr,
        )
        records = []
    if records and not run.trainer.can_replay:
        print(
            f"[zoharness] {run.cfg['variant']} cannot replay a log; restarting from step 0", file=sys.stderr
        )
        records = []
    records = records[: run.total]
    for r in records:
        run.trainer.replay(r)
    # Rewrite header + the records kept, atomically: a kill here leaves the previous log intact.
    write_text_atomic(log_path, "".join(dumps(line) + "\n" for line in [{"header": header}, *records]))
    if records:
        print(f"[zoharness] resumed from {log_path} at step {len(records)} of {run.total}", file=sys.stderr)
    # This process's part of the run; earlier processes' parts (wall time, memory) come from the sidecar.
    run.records = records
    run.earlier = read_segments(run.work / SEGMENTS, sha256_json(header), len(records)) if records else []
    run.segment = {
        "process": len(run.earlier),
        "first_step": len(records),
        "last_step": None,
        "train_time_s": 0.0,
    }


def _timed_step(run: Run, batch, step: int) -> tuple[dict, float]:
    """The trainer's step and its seconds (on CUDA, the kernels it queued included)."""
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    t0 = time.perf_counter()
    out = run.trainer.step(batch, step)
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    return out, time.perf_counter() - t0


def loop(run: Run, stop_after: int | None) -> bool:
    """The steps from where resume left off, each logged (flushed) and its segment saved before the next:
    a kill loses at most the step in flight. False when stopped early by stop_after."""
    run.model_bytes = tensor_bytes([*run.model.parameters(), *run.model.buffers()])  # as built for training
    memory_at_start = train_phase_start(run.device)
    sampler = BatchSampler(len(run.train_set), run.batch_size, run.cfg["seed"])
    segments_path, header_sha = run.work / SEGMENTS, sha256_json(run.header)
    records, segment, total = run.records, run.segment, run.total
    mid_checkpoints = set(run.checkpoint_steps[:-1])  # the last step is evaluate()'s
    rank, n_processes = distributed.world()
    sharded = n_processes > 1
    # A ZO step may leave its update to the next step's first pass (the same bits, one sweep over the
    # weights fewer): settle() applies it before a checkpoint's evaluation and whenever the loop ends.
    run.trainer.defer(True)
    try:
        with (
            run.log_path.open("a", encoding="utf-8") as log,
            tqdm(
                total=total,
                initial=len(records),
                desc=f"{run.cfg['variant']} {run.cfg['task']} seed{run.cfg['seed']}",
                file=sys.stderr,
                mininterval=1 if sys.stderr.isatty() else 30,
                disable=total == 0 or rank > 0,
            ) as bar,
        ):
            for step in range(len(records), total):
                t0 = time.perf_counter()
                indices = sampler.indices(step)
                if sharded:  # this process's share of the batch (zoharness.distributed)
                    indices = indices[rank::n_processes]
                examples = [run.train_set[i] for i in indices]
                batch = scoring.collate(examples, run.tokenizer.pad_token_id, pack=run.pack).to(run.device)
                # an objective that decodes (f1): what it decodes and scores
                if run.answer_targets is not None:
                    batch.answer_targets = run.answer_targets.subset(indices)
                data_s = time.perf_counter() - t0
                out, elapsed = _timed_step(run, batch, step)
                sizes = {
                    "n_examples": batch.n_examples,
                    "n_tokens": batch.n_tokens,
                    "n_padding": batch.n_padding,
                }
                if sharded:  # the whole batch's loss and sizes, as one process would log them
                    out["loss"] = distributed.mean(out["loss"])
                    sizes = {k: distributed.total(v) for k, v in sizes.items()}
                # elapsed_s is the trainer's step; phases_s splits it (ZO: noise, passes, forward_plus,
                # forward_minus, sync) and adds the batch's preparation ("data", outside elapsed_s).
                phases = {"data": data_s, **out.pop("phases_s", {})}
                record = {
                    "step": step,
                    **out,
                    "elapsed_s": elapsed,
                    "phases_s": phases,
                    **sizes,
                }
                if step + 1 in mid_checkpoints:
                    # In the record, so a resumed run keeps it; its seconds are a phase outside elapsed_s.
                    t0 = time.perf_counter()
                    run.trainer.settle()
                    record["checkpoint"] = _checkpoint(run, step + 1)
                    phases["checkpoint_eval"] = time.perf_counter() - t0
                log.write(dumps(record) + "\n")
                log.flush()
                records.append(record)
                segment.update(
                    last_step=step,
                    train_time_s=segment["train_time_s"] + record["elapsed_s"],
                    wall_time_s=time.perf_counter() - run.wall_start,
                    **train_phase_peaks(run.device, memory_at_start),
                    peak_rss_bytes=peak_rss_bytes(),
                    **cuda_peaks(run.device),
                )
                write_segments(segments_path, header_sha, [*run.earlier, segment])
                bar.update(1)
                bar.set_postfix(loss=f"{out['loss']:.4f}", refresh=False)
                if stop_after is not None and step + 1 >= stop_after and step + 1 < total:
                    return False
    finally:
        run.trainer.settle()
        run.trainer.defer(False)
    run.train_memory = train_phase_peaks(run.device, memory_at_start) if total else {}
    return True


def _evaluate_splits(run: Run, names: tuple[str, ...]) -> dict:
    """{split: result with "ids"} of the model as it is now. The method may bring its own prompts (ICL
    prepends demonstrations per example); the examples are always the split's."""
    results = {}
    for name in names:
        examples = getattr(run.split, name)
        prompts = run.hooks.eval_prompts(
            run.params, run.task, run.split.train, examples, name, run.cfg["seed"]
        )
        results[name] = evaluate_prompts(
            run.model, run.tokenizer, run.task, prompts, run.cfg["eval"], run.device
        )
        results[name]["ids"] = [ex.uid for ex in examples]
    return results


def _scores(results: dict) -> dict:
    return {f"{name}_score": r["score"] for name, r in results.items()}


def _checkpoint(run: Run, steps_done: int) -> dict:
    """A checkpoint in the loop: dev (and test with eval.test_curve) scored now. A method that cannot
    replay copies its weights when this checkpoint is the best so far (the same rule evaluate applies)."""
    scores = _scores(_evaluate_splits(run, ("dev", "test") if run.test_curve else ("dev",)))
    if not run.trainer.can_replay:
        so_far = [*curve_from_records(run.records), {"step": steps_done, **scores}]
        if best_checkpoint(so_far)["step"] == steps_done:
            state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
            run.best_weights = (steps_done, state)
    return scores


def _rewind(run: Run, steps_done: int) -> None:
    """The model as it was after `steps_done` steps: replayed from the base weights along the log (ZO:
    bit-exact, no forwards, no stored weights), or the copy `_checkpoint` kept."""
    if run.trainer.can_replay:
        run.model = run.trainer = None  # let the trained weights go before the base is loaded again
        gc.collect()
        model, _ = models.load(
            run.model_ref_path,
            run.cfg["precision"]["weights"],
            run.device,
            run.spread,
            linear_backend(run.cfg),
        )
        trainer = as_trainer(
            run.module.build(model, run.params, run.cfg["seed"], **run.inputs), model, run.cfg["method"]
        )
        for record in run.records[:steps_done]:
            trainer.replay(record)
        run.model, run.trainer = model, trainer
    else:
        kept_step, state = run.best_weights
        assert kept_step == steps_done, (kept_step, steps_done)
        run.model.load_state_dict(state)
        run.best_weights = None


def evaluate(run: Run) -> tuple[dict, dict, float]:
    """Dev and test of the reported model ({split: result with "ids"}), the checkpoint summary, seconds.

    The reported model is the best dev checkpoint (MeZO's protocol, eval.checkpoints); with one checkpoint,
    or when the last is the best, it is the trained model as it stands."""
    eval_start = time.perf_counter()
    if not run.total:
        return _evaluate_splits(run, ("dev", "test")), {}, time.perf_counter() - eval_start
    curve = curve_from_records(run.records)
    # Test at the last step only when it is reported whatever dev says, or for the curve.
    final = _evaluate_splits(run, ("dev", "test") if run.test_curve or not curve else ("dev",))
    curve.append({"step": run.total, **_scores(final)})
    best = best_checkpoint(curve)
    if best["step"] == run.total:
        results = {**final, **({} if "test" in final else _evaluate_splits(run, ("test",)))}
    else:
        _rewind(run, best["step"])
        results = _evaluate_splits(run, ("dev", "test"))
        if results["dev"]["score"] != best["dev_score"]:
            print(
                f"[zoharness] {run.out_dir}: dev score at the best checkpoint (step {best['step']}) was "
                f"{best['dev_score']}, {results['dev']['score']} after rewinding to it",
                file=sys.stderr,
            )
    summary = {
        "checkpoint_steps": run.checkpoint_steps,
        "best_step": best["step"],
        # Evaluated again after rewinding: equal to the checkpoint's when replay (or the copy) is exact.
        "best_dev_rescored": results["dev"]["score"],
        "final_dev_score": final["dev"]["score"],
        "final_test_score": final["test"]["score"] if "test" in final else None,
        "dev_curve": curve,
    }
    return results, summary, time.perf_counter() - eval_start


def _padding_fraction(parts: list[dict]) -> float | None:
    if not parts or any("n_padding" not in p for p in parts):
        return None
    return sum(p["n_padding"] for p in parts) / max(1, sum(p["n_tokens"] for p in parts))


def _phase_totals(records: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for r in records:
        for phase, seconds in r.get("phases_s", {}).items():
            totals[phase] = totals.get(phase, 0.0) + seconds
    return totals


def _metrics(run: Run, results: dict, checkpoints: dict, eval_s: float) -> dict:
    """metrics.json: what the run is, its scores, its cost, and which process measured what."""
    cfg, records, segment = run.cfg, run.records, run.segment
    step_times = [r["elapsed_s"] for r in records]
    wall_time_s = time.perf_counter() - run.wall_start
    peak_rss, device_peaks = peak_rss_bytes(), cuda_peaks(run.device)
    segment.update(wall_time_s=wall_time_s, **run.train_memory, peak_rss_bytes=peak_rss, **device_peaks)
    return {
        "suite": cfg["suite"],
        "model": cfg["model"],
        "task": cfg["task"],
        "artifact_format": cfg["artifact_format"],
        "variant": cfg["variant"],
        "method": cfg["method"],
        "label": cfg["label"],
        "seed": cfg["seed"],
        "metric": run.task.metric,
        "task_kind": run.task.kind,
        **_eval_metrics("dev", results["dev"]),
        **_eval_metrics("test", results["test"]),
        # MeZO's checkpoint protocol: the scores above are the best dev checkpoint's (best_step)
        **checkpoints,
        "n_train": len(run.train_examples),
        "n_dev": results["dev"]["n"],
        "n_test": results["test"]["n"],
        "steps": run.total,
        "forward_passes": int(sum(r.get("forward_passes", 0) for r in records)),
        "train_examples_seen": int(sum(r["n_examples"] for r in records)),
        "final_train_loss": float(np.mean([r["loss"] for r in records[-20:]])) if records else None,
        "train_time_s": float(sum(step_times)),
        "eval_time_s": eval_s,
        "wall_time_s": wall_time_s,
        "batch_size": run.batch_size if run.total else None,
        "eval_batch_size": cfg["eval"]["batch_size"],
        "mean_train_tokens_per_step": float(np.mean([r["n_tokens"] for r in records])) if records else None,
        "batch_layout": run.header["batch_layout"],
        # Positions computed that hold no token, per real token (older logs have no n_padding: None).
        "train_padding_fraction": _padding_fraction(records),
        "eval_padding_fraction": _padding_fraction([results["dev"], results["test"]]),
        # Seconds per phase summed over this log's steps (data = batch preparation, outside train_time_s).
        "step_phases_s": _phase_totals(records),
        "dtype": cfg["precision"]["weights"],
        "device": str(run.device),
        "torch_threads": run.threads,
        **run.trainer.extra_metrics(),
        "model_bytes": run.model_bytes,
        **run.train_memory,
        "peak_rss_bytes": peak_rss,
        **device_peaks,
        **latency_stats(step_times),
        # Wall time and memory above are this process's; after a resume they miss the earlier ones'
        # (train_time_s and step latencies come from the log and cover every step).
        "resumed_at_step": segment["first_step"],
        "measurements_complete": segment["first_step"] == 0,
        "segments": [*run.earlier, segment],
    }


def save_weights(run: Run) -> dict:
    """The reported checkpoint's weights under <run>/weights/ (trainer.save: the whole model, or what the
    method trained), for a run that cannot be rebuilt by replay and that a suite's `influence:` block
    explains (run_spec's save_weights). Written to a sibling folder and renamed, so a half-written
    folder is never there under the final name. Returns {"dir", "bytes"} for metrics.json."""
    final = run.out_dir / WEIGHTS_DIR
    partial = run.out_dir / f".{WEIGHTS_DIR}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    run.trainer.save(partial)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return {"dir": WEIGHTS_DIR, "bytes": sum(f.stat().st_size for f in final.rglob("*") if f.is_file())}


def write(run: Run, results: dict, checkpoints: dict, eval_s: float) -> dict:
    """The run's outputs, metrics.json last (its presence means the run completed); then the in-progress
    directory goes. Returns the metrics."""
    metrics = _metrics(run, results, checkpoints, eval_s)
    predictions = {
        name: [{"id": i, "prediction": p} for i, p in zip(r["ids"], r["predictions"], strict=True)]
        for name, r in results.items()
    }
    out_dir = run.out_dir
    if run.cfg.get("save_weights") and run.total and not run.trainer.can_replay:
        metrics["saved_weights"] = save_weights(run)
    write_json_atomic(out_dir / "predictions.json", predictions)
    write_json_atomic(
        out_dir / "run_info.json", run_info(run.device, read_json(run.model_ref_path), run.threads)
    )
    copy_atomic(run.log_path, out_dir / LOG)
    write_json_atomic(out_dir / "metrics.json", metrics)
    # Only now: if writing an output failed, Snakemake deletes them all, and the rerun replays this log.
    shutil.rmtree(run.work, ignore_errors=True)
    return metrics
