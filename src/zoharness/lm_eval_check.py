"""Cross-check of the harness's candidate scoring against EleutherAI's lm-evaluation-harness.

The harness renders its own prompts for a split's examples into a local jsonl and registers one
lm-eval task per harness task over it (`output_type: multiple_choice`, `target_delimiter: ""`,
because the harness's candidates carry their own leading space). lm-eval then scores the same
prompts and examples with its own tokenisation and batching.

What agrees by construction and what does not: lm-eval's `acc` takes the argmax of the candidates'
*summed* log-likelihoods, the harness (MeZO) the *mean* over the candidate's tokens; they coincide
when every candidate is one token, as for every classification task on SmolLM2's tokenizer. lm-eval
also moves trailing whitespace of the context (the prompts' final newline) into every continuation,
which adds the same term to each candidate and leaves the argmax unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from zoharness.io import write_text_atomic

TASK_PREFIX = "zoharness_"


def write_task(task_name: str, prompts, ids, out_dir: str | Path) -> str:
    """Write <out_dir>/<name>.jsonl and <name>.yaml for one harness task; returns the lm-eval name."""
    out_dir = Path(out_dir).resolve()
    name = f"{TASK_PREFIX}{task_name}"
    rows = [
        {"id": i, "context": p.context, "choices": list(p.candidates), "label": p.label}
        for i, p in zip(ids, prompts, strict=True)
    ]
    data = out_dir / f"{name}.jsonl"
    write_text_atomic(data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    spec = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "context",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "target_delimiter": "",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    write_text_atomic(out_dir / f"{name}.yaml", yaml.safe_dump(spec, sort_keys=False))
    return name


def evaluate(model_dir: str | Path, task_dir: str | Path, names: list[str], batch_size=16, max_length=None):
    """Run lm-eval's simple_evaluate on a local model folder; returns {name: {"acc", "n",
    "loglikelihoods": [[per choice]...], "ids": [...]}}."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    args = {"pretrained": str(model_dir), "dtype": "float32"}
    if max_length:
        args["max_length"] = max_length
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=args,
        tasks=names,
        task_manager=TaskManager(include_path=str(task_dir)),
        batch_size=batch_size,
        device="cpu",
        log_samples=True,
        bootstrap_iters=0,
    )
    results = {}
    for name in names:
        samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
        results[name] = {
            "acc": float(out["results"][name]["acc,none"]),
            "n": len(samples),
            "ids": [s["doc"]["id"] for s in samples],
            "loglikelihoods": [[float(r[0]) for r in s["filtered_resps"]] for s in samples],
        }
    return results
