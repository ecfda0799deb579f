"""RapidIn's two stages on the embedded model: caching throughput, retrieval time per query against exact
gradient inner products, compression, cache bytes and peak memory; medians over interleaved repeats.

    python bench/influence.py                                  # SmolLM2-135M, q/v projections, 2 threads
    python bench/influence.py --parameters all --ks 65536      # every parameter (D = 134.5M)
    python bench/influence.py --device cuda --out bench/out/influence-cuda.json

Per round, each timed once (zoharness.profiling.interleaved_times):
  gradient       one training example's normalised loss gradient (zoharness.influence.gradients)
  sketch         RapidGrad of one gradient for every K at once (one index_add pass per K)
  retrieve K=..  the queries' inner products with a float16 cache of --cache-rows rows (random values:
                 the time of a matmul does not depend on them), per query
  dot            the exact inner products of the queries' gradients with one training gradient
Exact influence has no cache (a training set's gradients are n·D floats: 53 GB for 1000 examples over
SmolLM2's q/v projections), so an exact query costs a gradient pass over the training set:
exact per query = cache_rows × (gradient + dot) / queries, from the medians above; the influence suite's
summary.json has the same quantity timed end to end (exact_s). Memory: peak RSS of each stage after
resetting the peak (/proc/self/clear_refs) with the model loaded; inference = the objective's forward.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness import models, scoring  # noqa: E402
from zoharness.data import load_split, make_split  # noqa: E402
from zoharness.influence import retrieve  # noqa: E402
from zoharness.influence.explain import select_parameters  # noqa: E402
from zoharness.influence.gradients import example_gradients  # noqa: E402
from zoharness.influence.rapidgrad import RapidGrad  # noqa: E402
from zoharness.io import write_json_atomic  # noqa: E402
from zoharness.profiling import _reset_peak_rss, _status_bytes, device_name, interleaved_times  # noqa: E402
from zoharness.tasks import get_task  # noqa: E402

QV = ["*.q_proj.weight", "*.v_proj.weight"]


def _stage_peak(fn) -> dict:
    """RSS before and peak RSS during fn(), in bytes (CPU)."""
    _reset_peak_rss()
    start = _status_bytes("VmRSS")
    fn()
    return {"rss_at_start": start, "peak_rss": _status_bytes("VmHWM")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-ref", default=str(ROOT / "resources/models/smollm2-135m/model_ref.json"))
    ap.add_argument("--parameters", default="qv", help="qv (the attention q/v projections) or all")
    ap.add_argument("--ks", type=int, nargs="+", default=[256, 1024, 4096, 16384, 65536])
    ap.add_argument("--lam", type=int, default=20)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--cache-rows", type=int, default=1000, help="training examples the retrieval scores")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "bench/out/influence.json"))
    args = ap.parse_args(argv)
    if not Path(args.model_ref).exists():
        print(f"{args.model_ref}: not found; run `make bench` (it prepares the model)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, tok = models.load(args.model_ref, "float32", device)
    params = select_parameters(model, ["*"] if args.parameters == "all" else QV)
    dim = sum(p.numel() for _, p in params)
    task = get_task("sst2")
    split = load_split(make_split("sst2", ROOT / "data", 0, 64, 0, args.queries), ROOT / "data")
    train = [scoring.encode(tok, task.prompt(ex), 256, objective="classification") for ex in split.train]
    queries = [scoring.encode(tok, task.prompt(ex), 256, objective="classification") for ex in split.test]
    sketch = RapidGrad(dim, args.ks, seed=0, lam=args.lam)
    query_grads = torch.stack(list(example_gradients(model, queries, tok.pad_token_id, params, device)))
    query_sketches = sketch.sketch_batch(query_grads)
    one = query_grads[0].clone()
    gen = torch.Generator().manual_seed(0)
    caches = {k: torch.randn(args.cache_rows, k, generator=gen).half().to(device) for k in sketch.ks}
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    def gradient(r):
        return next(example_gradients(model, [train[r % len(train)]], tok.pad_token_id, params, device))

    calls = {
        "gradient": gradient,
        "sketch": lambda r: sketch.sketch(one),
        "dot": lambda r: query_grads @ one,
        **{
            f"retrieve K={k}": (lambda r, k=k: retrieve.scores(caches[k], query_sketches[k]))
            for k in sketch.ks
        },
    }
    times = interleaved_times(calls, args.warmup, args.repeats, sync)
    med = {name: statistics.median(t) for name, t in times.items()}
    exact_per_query = args.cache_rows * (med["gradient"] + med["dot"]) / args.queries
    batch = scoring.collate(train[:16], tok.pad_token_id).to(device)
    memory = {
        "inference (objective forward, 16 examples)": _stage_peak(lambda: scoring.loss(model, batch)),
        "caching (gradient + sketch, 16 examples)": _stage_peak(
            lambda: [
                sketch.sketch(g)
                for g in example_gradients(model, train[:16], tok.pad_token_id, params, device)
            ]
        ),
        f"retrieval ({args.queries} queries x {args.cache_rows} rows, every K)": _stage_peak(
            lambda: [retrieve.scores(caches[k], query_sketches[k]) for k in sketch.ks]
        ),
    }
    result = {
        "command": "python bench/" + Path(__file__).name + " " + " ".join(argv or sys.argv[1:]),
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": args.threads,
        "parameters": args.parameters,
        "dim": dim,
        "ks": list(sketch.ks),
        "lam": args.lam,
        "queries": args.queries,
        "cache_rows": args.cache_rows,
        "repeats": args.repeats,
        "median_s": med,
        "times_s": times,
        "caching_examples_per_s": 1 / (med["gradient"] + med["sketch"]),
        "compression": {str(k): dim / k for k in sketch.ks},
        "cache_bytes_per_example": 2 * sum(sketch.ks),
        "retrieve_per_query_s": {str(k): med[f"retrieve K={k}"] / args.queries for k in sketch.ks},
        "exact_per_query_s": exact_per_query,
        "speedup_vs_exact": {
            str(k): exact_per_query / (med[f"retrieve K={k}"] / args.queries) for k in sketch.ks
        },
        "memory": memory,
    }
    write_json_atomic(Path(args.out), result)
    print(json.dumps({k: v for k, v in result.items() if k != "times_s"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
