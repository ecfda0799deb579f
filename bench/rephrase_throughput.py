"""Rephrasing cost on the local endpoint: llama-cpp-python serving SmolLM2-135M-Instruct on loopback.

    python bench/rephrase_throughput.py            # 24 SST-2 train examples, 5 interleaved repeats

Orders of the same 2K requests (K rewrites + K judgements; no cache, sequential):
  rounds       every rewrite, then every judgement (what zoharness.rephrase.pipeline does): the server
               sees one system prompt back to back and reuses its evaluated prefix
  interleaved  rewrite 1, judge 1, rewrite 2, judge 2, ...: the system prompt changes every request
Also: the same rounds with 2 requests in flight (the pipeline's default concurrency), and replaying
the committed cache of the default suite (no server involved). Reports medians over repeats and the
ratio to `rounds` measured in the same run. Timings on a shared 2-core machine: run it idle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness.data import load_split, make_split  # noqa: E402
from zoharness.io import write_json_atomic  # noqa: E402
from zoharness.models import source_for  # noqa: E402
from zoharness.rephrase import prompts as P  # noqa: E402
from zoharness.rephrase.cache import ResponseCache  # noqa: E402
from zoharness.rephrase.client import response_format  # noqa: E402
from zoharness.rephrase.server import LocalServer, gguf_path  # noqa: E402
from zoharness.rephrase.settings import PROMPTS_DIR, resolve  # noqa: E402
from zoharness.tasks import get_task  # noqa: E402

CACHE = ROOT / "resources/rephrase-cache/smollm2-135m-oat/sst2.jsonl"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/out/rephrase_throughput.json"))
    args = ap.parse_args(argv)

    cfg = resolve("smollm2-135m-oat")
    task = get_task("sst2")
    prompts = P.PromptSet.load(PROMPTS_DIR / cfg["prompt_version"])
    manifest = make_split("sst2", ROOT / "data", seed=0, num_train=args.examples, num_dev=1, num_test=1)
    records = [ex.record for ex in load_split(manifest, ROOT / "data").train]
    rewrite_fmt = response_format(cfg["response_format"], P.rewrite_schema(task), "rewrite")
    judge_fmt = response_format(cfg["response_format"], prompts.judge_schema, "verdict")
    rewrites = [
        (P.rewrite_messages(prompts, "oat", task, r), cfg["temperature"], cfg["max_tokens"], rewrite_fmt)
        for r in records
    ]
    judges = [
        (P.judge_messages(prompts, task, r, {"sentence": r["sentence"].strip().upper()}), 0.0, 64, judge_fmt)
        for r in records
    ]

    import openai

    model = gguf_path(source_for(cfg["local_model"]))
    with LocalServer(model, model_alias=cfg["model"], threads=args.threads) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=120)
        tokens = {"prompt": 0, "completion": 0}

        def ask(request, seed):
            messages, temperature, max_tokens, fmt = request
            reply = client.chat.completions.create(
                model=cfg["model"], messages=messages, temperature=temperature, max_tokens=max_tokens,
                seed=seed, response_format=fmt,
            )  # fmt: skip
            tokens["prompt"] += reply.usage.prompt_tokens
            tokens["completion"] += reply.usage.completion_tokens

        def sequential(requests, seed):
            for request in requests:
                ask(request, seed)

        def concurrent(requests, seed):
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(ask, requests, [seed] * len(requests)))

        interleaved = [r for pair in zip(rewrites, judges, strict=True) for r in pair]
        variants = {
            "rounds": lambda seed: sequential(rewrites + judges, seed),
            "interleaved": lambda seed: sequential(interleaved, seed),
            "rounds, 2 in flight": lambda seed: (concurrent(rewrites, seed), concurrent(judges, seed)),
        }
        times = {name: [] for name in variants}
        variants["rounds"](999)  # warm-up
        for rep in range(args.repeats):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn(rep)  # a new sampling seed per repeat: fresh generations, same prompts for every order
                times[name].append(time.perf_counter() - start)

    replay = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        cache = ResponseCache(CACHE)
        replay.append(time.perf_counter() - start)
    n_req = 2 * len(records)
    med = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "what": "2K chat requests (K rewrites + K judgements) against llama-cpp-python on loopback; medians over repeats",
        "model": f"{cfg['local_model']} ({model.name})",
        "examples": len(records),
        "requests_per_repeat": n_req,
        "repeats": args.repeats,
        "server_threads": args.threads,
        "max_tokens": {"rewrite": cfg["max_tokens"], "judge": 64},
        "seconds_median": med,
        "seconds_all": times,
        "seconds_per_request_median": {name: m / n_req for name, m in med.items()},
        "ratio_to_rounds": {name: m / med["rounds"] for name, m in med.items()},
        "cache_replay": {
            "file": str(CACHE.relative_to(ROOT)),
            "entries": len(cache),
            "load_seconds_median": statistics.median(replay),
        }
        if CACHE.exists()
        else None,
        "command": "python bench/rephrase_throughput.py " + " ".join(argv or sys.argv[1:]),
    }
    write_json_atomic(args.out, result)
    print(
        json.dumps(
            {k: result[k] for k in ("seconds_per_request_median", "ratio_to_rounds", "cache_replay")},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
