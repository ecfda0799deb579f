"""RapidIn on a run of a suite: which model, which examples, which queries; the two stages the rules run.

The model explained is the run's reported checkpoint (its best dev checkpoint, metrics.json best_step):
  * a method that trains nothing (zero-shot, ICL): the base model;
  * a method whose trajectory replays (the ZO methods): the base model with the logged steps up to
    best_step re-applied (zoharness.replay, bit-exact, no stored weights);
  * any other trained run (FT): the weights train.py saved under <run>/weights/, which it does only in a
    suite whose `influence:` block names the variant (config.run_spec's save_weights; ~540 MB for the
    embedded model in float32).
The training examples are those the run trained on (a method's train_examples hook: the rephrased set of
an OAT-Rephrase run), with the planted records when the split planted a trigger. Queries are test
examples: as they are, or triggered (zoharness.plant) when the suite's influence block says so.

`cache_stage` writes RapidIn's cache (zoharness.influence.cache) with a header naming the run, the
checkpoint, the parameter set and the examples, so a cache of another run, step or set is refused.
`retrieve_stage` scores the queries against it for every K, optionally with the exact inner products
(one more gradient pass, timed apart), and writes scores.safetensors, topk.json and summary.json.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors
from tqdm import tqdm

from zoharness import models, plant, prefix, scoring
from zoharness.data import data_dir, load_split
from zoharness.influence import cache, retrieve
from zoharness.influence.gradients import example_gradients, parameter_header, query_examples, token_gradients
from zoharness.influence.rapidgrad import RapidGrad
from zoharness.io import DataError, atomic_open, read_json, sha256_file, write_json_atomic
from zoharness.methods import get_method, method_hooks
from zoharness.replay import NotReplayableError, replay
from zoharness.rundir import WEIGHTS_DIR
from zoharness.tasks import get_task
from zoharness.trainlog import read_train_log

SCORES_META = "zoharness.influence_scores"
# Token-wise influence for the top-k helpful examples of this many queries (topk.json "tokens").
TOKEN_QUERIES = 3
EXPLAINABLE = (
    "runs of evaluation-only methods (zero-shot, ICL: the base model), of methods whose trajectory replays "
    "(the ZO methods), and trained runs of a suite whose influence block names their variant (their "
    "weights are saved)"
)


def _finished(run_dir: Path) -> tuple[dict, dict]:
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        raise DataError(f"{run_dir}: the run has not finished (no metrics.json); train it first")
    return read_json(run_dir / "run_config.json"), read_json(metrics_path)


def load_run_model(run_dir, model_ref, device="cpu"):
    """(model, tokenizer, source): the run's reported checkpoint (module docstring) in eval mode, and a
    dict saying where it came from (recorded in the cache header, so a cache of another checkpoint is
    refused)."""
    run_dir = Path(run_dir)
    cfg, metrics = _finished(run_dir)
    dtype = cfg["precision"]["weights"]
    if not metrics.get("steps"):
        model, tok = models.load(model_ref, dtype, device)
        return model, tok, {"kind": "base", "step": 0, "inputs": {}}
    step = metrics.get("best_step", metrics["steps"])
    weights = run_dir / WEIGHTS_DIR
    if (weights / prefix.SAVE_FILE).exists():  # a prefix is saved alone: put it back on the base
        model, tok = models.load(model_ref, dtype, device)
        prefix.load_prefix(model, weights)
        digest = sha256_file(weights / prefix.SAVE_FILE)
        return model.eval(), tok, {"kind": "saved prefix", "step": step, "sha256": digest, "inputs": {}}
    if weights.is_dir():
        from transformers import AutoModelForCausalLM

        tok = models.load_tokenizer(model_ref)
        model = AutoModelForCausalLM.from_pretrained(weights, dtype=getattr(torch, dtype)).to(device).eval()
        digest = sha256_file(sorted(weights.glob("*.safetensors"))[0])
        return model, tok, {"kind": "saved weights", "step": step, "sha256": digest, "inputs": {}}
    try:
        model, info = replay(run_dir, model_ref, upto=step)
    except NotReplayableError:
        raise DataError(
            f"{run_dir}: method {cfg['method']!r} has no replayable trajectory and the run saved no weights "
            f"(no {weights}/). Can be explained: {EXPLAINABLE}. Add the variant to the suite's "
            "influence.variants and the workflow retrains it with its weights saved."
        ) from None
    model.to(device).eval()
    tok = models.load_tokenizer(model_ref)
    return model, tok, {"kind": "replay", "step": step, "inputs": info["inputs"]}


def select_parameters(model, patterns) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) for every parameter whose name matches one of the fnmatch patterns, in
    named_parameters() order (tied weights once); refuses a pattern list that matches nothing."""
    named = list(model.named_parameters())
    chosen = [(n, p) for n, p in named if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    if not chosen:
        shown = ", ".join(n for n, _ in named[:6])
        raise DataError(
            f"influence.parameters {list(patterns)} match no parameter of the model (names: {shown}, ...)"
        )
    return chosen


def _examples(run_dir: Path, cfg: dict, split_path, source: dict):
    """(task, split, the examples the run trained on), planted records included."""
    task = get_task(cfg["task"])
    split = load_split(read_json(split_path), data_dir(cfg["data"]), str(split_path))
    module = get_method(cfg["method"])
    hooks = method_hooks(module)
    inputs = {n: e["path"] for n, e in source.get("inputs", {}).items()}
    if hooks.inputs and not inputs:  # not replayed: the paths the run's log header recorded
        header, _ = read_train_log(run_dir / "train_log.jsonl")
        inputs = {n: e["path"] for n, e in header.get("inputs", {}).items()}
    train = hooks.train_examples(module.Params(**cfg["params"]), task, split.train, **inputs)
    return task, split, train


def _encode(tokenizer, task, examples, max_length, objective):
    return [scoring.encode(tokenizer, task.prompt(ex), max_length, objective=objective) for ex in examples]


def _identity(run_dir: Path, cfg: dict, source: dict) -> dict:
    return {
        "run": {k: cfg[k] for k in ("suite", "model", "task", "variant", "method", "seed")},
        "run_config_sha256": sha256_file(run_dir / "run_config.json"),
        "checkpoint": source,
    }


@dataclasses.dataclass
class Explained:
    """A finished run opened for RapidIn: its config, reported checkpoint, examples and gradient layout."""

    run_dir: Path
    cfg: dict
    model: object
    tok: object
    source: dict
    task: object
    split: object
    train: list
    params: list
    layout: dict
    sketch: RapidGrad


def open_run(run_dir, split_path, model_ref, settings: dict, threads: int | None = None) -> Explained:
    """Everything both stages need, built the same way, so their cache headers agree."""
    if threads:
        torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    cfg, _ = _finished(run_dir)
    model, tok, source = load_run_model(run_dir, model_ref)
    task, split, train = _examples(run_dir, cfg, split_path, source)
    params = select_parameters(model, settings["parameters"])
    layout = parameter_header(params)
    sketch = RapidGrad(
        layout["dim"], settings["ks"], settings["seed"], settings["lam"], settings["normalise"]
    )
    return Explained(run_dir, cfg, model, tok, source, task, split, train, params, layout, sketch)


def _cache_header(run: Explained) -> dict:
    """What defines a run's cache besides its sketch: checked on retrieval."""
    return {
        **_identity(run.run_dir, run.cfg, run.source),
        "example_ids": [ex.uid for ex in run.train],
        "parameters": run.layout,
        "objective": scoring.objective_for(run.task.kind),
    }


def cache_stage(run_dir, split_path, model_ref, settings: dict, out, threads: int | None = None) -> dict:
    """RapidIn's caching stage for one run: every training example's gradient sketched for every K."""
    run = open_run(run_dir, split_path, model_ref, settings, threads)
    extra = _cache_header(run)
    need = cache.estimate_bytes(len(run.train), run.sketch.ks, extra)
    free = shutil.disk_usage(Path(out).resolve().parent if Path(out).parent.exists() else Path.cwd()).free
    print(
        f"[influence] {run.run_dir}: {len(run.train)} examples, D={run.layout['dim']:,} over {len(run.params)} "
        f"tensors, K={list(run.sketch.ks)}: the cache will take {need / 2**20:.1f} MiB ({free / 2**30:.1f} GiB free)",
        flush=True,
    )
    if need > free:
        raise DataError(
            f"{out}: the cache needs {need:,} bytes, the disk has {free:,} free; nothing was written"
        )
    encoded = _encode(run.tok, run.task, run.train, run.cfg["eval"]["max_length"], extra["objective"])
    start = time.perf_counter()
    progress = tqdm(encoded, desc="cache", unit="ex", mininterval=10)
    grads = example_gradients(run.model, progress, run.tok.pad_token_id, run.params)
    cache.build_cache(grads, len(encoded), run.sketch, out, extra)
    seconds = time.perf_counter() - start
    print(
        f"[influence] cached {len(encoded)} examples in {seconds:.1f} s ({len(encoded) / seconds:.2f} ex/s)"
    )
    return {
        "seconds": seconds,
        "n": len(encoded),
        "dim": run.layout["dim"],
        "bytes": Path(out).stat().st_size,
    }


def _planted_label(task, split, manifest: dict) -> int | None:
    """The candidate index of the split's planted label, None when nothing was planted."""
    return (
        plant.target_index(task, manifest["plant"], split.test[0].record) if manifest.get("plant") else None
    )


def _targeted(model, tok, task, query_raw, max_length, target_setting: str, planted: int | None):
    """The queries encoded with the label their gradient is taken for (influence.target)."""
    gold = _encode(tok, task, query_raw, max_length, "classification" if task.kind != "generation" else "lm")
    if target_setting == "planted":
        if planted is None:
            raise DataError("influence.target is 'planted' but the split planted no trigger (data.plant)")
        return [dataclasses.replace(q, label=planted) for q in gold]
    return query_examples(model, gold, tok.pad_token_id, target_setting)


def _query_gradients(model, tok, queries, ids: list[str], params) -> torch.Tensor:
    """[q, D] the queries' gradients; a query whose loss is not finite (nothing to score) is named."""
    grads = []
    try:
        for g in example_gradients(model, queries, tok.pad_token_id, params):
            grads.append(g)
    except FloatingPointError as e:
        raise DataError(f"query {ids[len(grads)]!r} has no usable loss to explain: {e}") from None
    return torch.stack(grads)


def _token_influence(model, tok, task, by_id, helpful, query_grad, params, max_length) -> list[dict]:
    """Token-wise influence (gradients.token_gradients) of a query's most helpful training examples: per
    example its text and, per target token, the token and its exact influence on the query (they sum to
    the example's exact influence)."""
    out = []
    for uid, score in helpful:
        example = by_id[uid]
        encoded = scoring.encode(
            tok, task.prompt(example), max_length, objective=scoring.objective_for(task.kind)
        )
        rows, info = token_gradients(model, encoded, tok.pad_token_id, params)
        values = (rows.double() @ query_grad.double()).tolist()
        out.append(
            {
                "id": uid,
                "text": task.render(example.record).context,
                "label": int(encoded.label),
                "score": score,
                "tokens": [
                    {**i, "text": tok.decode([i["token"]]), "influence": v}
                    for i, v in zip(info, values, strict=True)
                ],
            }
        )
    return out


def _queries(task, split, manifest: dict, settings: dict):
    """(query examples, backdoor-check examples): the first num_queries test examples, triggered when the
    settings say so (only those whose label is not the planted one), and every such example for the
    attack-success check."""
    if settings["queries"] == "test":
        return split.test[: settings["num_queries"]], []
    target = _planted_label(task, split, manifest)
    if target is None:
        raise DataError("influence.queries is 'triggered' but the split planted no trigger (data.plant)")
    spec = manifest["plant"]
    eligible = [ex for ex in split.test if task.render(ex.record).label != target]
    triggered = [
        type(ex)(uid=f"{ex.uid}#triggered", record=plant.triggered_record(ex.record, spec, ex.uid))
        for ex in eligible
    ]
    return triggered[: settings["num_queries"]], list(zip(eligible, triggered, strict=True))


@torch.no_grad()
def _backdoor(model, tok, task, pairs, max_length, batch_size, target) -> dict | None:
    """Accuracy on the clean and the triggered versions of the non-target test inputs, and the attack
    success rate (triggered inputs predicted as the planted label)."""
    if not pairs:
        return None
    out = {}
    for name, examples in (("clean", [c for c, _ in pairs]), ("triggered", [t for _, t in pairs])):
        encoded = [scoring.encode(tok, task.prompt(ex), max_length) for ex in examples]
        result = scoring.evaluate(model, encoded, tok.pad_token_id, batch_size)
        out[name] = result
    preds = out["triggered"]["predictions"]
    return {
        "n": len(pairs),
        "target_index": target,
        "clean_accuracy": out["clean"]["score"],
        "triggered_accuracy": out["triggered"]["score"],
        "attack_success_rate": sum(int(p) == target for p in preds) / len(preds),
    }


def retrieve_stage(
    run_dir, split_path, model_ref, settings: dict, cache_path, out_dir, threads: int | None = None
) -> dict:
    """RapidIn's retrieval stage for one run's queries: scores for every K (and exact), top-k, summary."""
    run = open_run(run_dir, split_path, model_ref, settings, threads)
    cfg, model, tok, task, split, train, params = (
        run.cfg,
        run.model,
        run.tok,
        run.task,
        run.split,
        run.train,
        run.params,
    )
    sketch, layout, source, out_dir = run.sketch, run.layout, run.source, Path(out_dir)
    manifest = read_json(split_path)
    wanted = {"sketch": sketch.header(), **_cache_header(run)}
    header, cached = cache.load_cache(cache_path, wanted)
    query_raw, pairs = _queries(task, split, manifest, settings)
    max_length = cfg["eval"]["max_length"]
    target = _planted_label(task, split, manifest)
    backdoor = _backdoor(model, tok, task, pairs, max_length, cfg["eval"]["batch_size"], target)
    queries = _targeted(model, tok, task, query_raw, max_length, settings["target"], target)
    start = time.perf_counter()
    query_grads = _query_gradients(model, tok, queries, [q.uid for q in query_raw], params)
    query_s = time.perf_counter() - start
    query_sketches = sketch.sketch_batch(query_grads)
    tensors, retrieve_s = {}, {}
    for k in sketch.ks:
        start = time.perf_counter()
        tensors[f"k{k}"] = retrieve.scores(cached[k], query_sketches[k])
        retrieve_s[str(k)] = time.perf_counter() - start
    exact_s = None
    if settings["exact"]:
        encoded = _encode(tok, task, train, max_length, wanted["objective"])
        start = time.perf_counter()
        columns = [
            query_grads @ g
            for g in example_gradients(
                model, tqdm(encoded, desc="exact", unit="ex", mininterval=10), tok.pad_token_id, params
            )
        ]
        tensors["exact"] = torch.stack(columns, dim=1)
        exact_s = time.perf_counter() - start
    ids = header["example_ids"]
    planted_ids = [uid for uid in manifest.get("planted", []) if uid in set(ids)]
    identity = {k: cfg[k] for k in ("model", "task", "variant", "seed")} | {"label": cfg["label"]}
    meta = {
        **identity,
        "query_ids": [ex.uid for ex in query_raw],
        "query_labels": [int(q.label) for q in queries],
        "train_ids": ids,
        "ks": list(sketch.ks),
        "exact": bool(settings["exact"]),
        "planted_ids": planted_ids,
        "queries": settings["queries"],
        "target": settings["target"],
        "checkpoint": source,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    blob = save_safetensors(
        {k: v.float().contiguous() for k, v in tensors.items()},
        metadata={SCORES_META: json.dumps(meta, sort_keys=True)},
    )
    with atomic_open(out_dir / "scores.safetensors", "wb") as f:
        f.write(blob)
    top = retrieve.top_k(tensors[f"k{max(sketch.ks)}"], ids, settings["top_k"])
    entries = [
        {"id": ex.uid, "text": task.render(ex.record).context, "label": int(q.label), **t}
        for ex, q, t in zip(query_raw, queries, top, strict=True)
    ]
    write_json_atomic(out_dir / "topk.json", {"K": max(sketch.ks), "queries": entries})
    summary = {
        **identity,
        "backdoor": backdoor,
        "timing": {
            "query_gradients_s": query_s,
            "retrieve_s": retrieve_s,
            "exact_s": exact_s,
            "n_queries": len(queries),
            "n_train": len(ids),
        },
        "dim": layout["dim"],
        "compression": {str(k): layout["dim"] / k for k in sketch.ks},
        "cache_bytes": Path(cache_path).stat().st_size,
    }
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


def tokens_stage(
    run_dir, split_path, model_ref, settings: dict, topk_path, out, threads: int | None = None
) -> dict:
    """Token-wise influence for the first TOKEN_QUERIES queries of a retrieval (topk.json): each query's
    top-k helpful training examples split over their target tokens (gradients.token_gradients), with each
    token's exact influence on the query. Writes `out` (JSON), which the token figure reads."""
    run = open_run(run_dir, split_path, model_ref, settings, threads)
    manifest = read_json(split_path)
    top = read_json(topk_path)
    query_raw, _ = _queries(run.task, run.split, manifest, {**settings, "num_queries": TOKEN_QUERIES})
    query_raw = query_raw[: len(top["queries"])]
    if [q.uid for q in query_raw] != [q["id"] for q in top["queries"][: len(query_raw)]]:
        raise DataError(f"{topk_path}: its queries are not this run's (another split or influence block?)")
    planted = _planted_label(run.task, run.split, manifest)
    max_length = run.cfg["eval"]["max_length"]
    queries = _targeted(run.model, run.tok, run.task, query_raw, max_length, settings["target"], planted)
    by_id = {ex.uid: ex for ex in run.train}
    start = time.perf_counter()
    result = []
    grads = example_gradients(run.model, queries, run.tok.pad_token_id, run.params)
    for raw, query, entry, query_grad in zip(query_raw, queries, top["queries"], grads, strict=False):
        result.append(
            {
                "id": entry["id"],
                "text": entry["text"],
                "label": int(query.label),
                "candidates": list(run.task.render(raw.record).candidates),
                "helpful": _token_influence(
                    run.model, run.tok, run.task, by_id, entry["helpful"], query_grad, run.params, max_length
                ),
            }
        )
    identity = {k: run.cfg[k] for k in ("model", "task", "variant", "seed")} | {"label": run.cfg["label"]}
    doc = {**identity, "K": top["K"], "queries": result, "seconds": time.perf_counter() - start}
    write_json_atomic(Path(out), doc)
    return doc
