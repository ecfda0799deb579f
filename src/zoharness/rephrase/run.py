"""One rephrase job: a task's training split, one rewriter, one seed -> the rephrased examples + stats.

Outputs (written atomically, only when every example has an outcome):
  <out>.jsonl  one line per training example, in split order: uid, used (rephrased|original|dropped),
               the record to train on, the rewrite, verdict, reason, attempts, per-attempt history
  <out>.json   per-task statistics: acceptance rate, outcomes, tokens in/out, cost estimate, settings
Both depend only on the cached responses: a rerun (zero requests) writes identical bytes. What a run
did on the network (requests, cache hits, retries, seconds) goes to the log only.
The cache (resources/rephrase-cache/<rewriter>/<task>.jsonl) gets a provenance file beside it
whenever requests were sent and the cache holds at least one answer: model, GGUF file and its sha256,
server version, prompt version, dates. A run that fails before its first answer leaves the cache folder
as it found it (no provenance, no empty folder). Every log line goes through client.redact.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path

from zoharness.data import load_split
from zoharness.io import DataError, dumps, read_json, sha256_file, write_json_atomic, write_text_atomic
from zoharness.rephrase import prompts as P
from zoharness.rephrase.cache import ResponseCache
from zoharness.rephrase.client import ChatEndpoint, Counters, redact
from zoharness.rephrase.pipeline import FORMAT_VERSION, Rephraser, output_lines, summary
from zoharness.rephrase.settings import PROMPTS_DIR, judge_settings
from zoharness.tasks import get_task


def cache_path(cache_dir: str | Path, rewriter: str, task: str) -> Path:
    return Path(cache_dir) / rewriter / f"{task}.jsonl"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _write_provenance(
    cache: ResponseCache, rewriter: str, cfg: dict, prompts: P.PromptSet, server_info: dict
) -> None:
    first, last = cache.created_range()
    path = cache.path.with_suffix(".provenance.json")
    write_json_atomic(
        path,
        {
            "rewriter": rewriter,
            "model": cfg["model"],
            "judge_model": judge_settings(cfg)["model"],
            "endpoint": server_info,
            "prompt_version": prompts.version,
            "prompts_sha256": prompts.sha256,
            "settings": {k: v for k, v in cfg.items() if k not in ("server",)},
            "entries": len(cache),
            "first_created": first,
            "last_created": last,
            "openai_package": _version("openai"),
        },
    )


def rephrase_split(
    rewriter: str,
    cfg: dict,
    split_path: str | Path,
    data_dir: str | Path,
    out_jsonl: str | Path,
    out_stats: str | Path,
    cache_dir: str | Path = "resources/rephrase-cache",
    prompts_dir: str | Path | None = None,
    log=print,
    server_log: str | Path | None = None,
) -> dict:
    raw_log = log

    def log(msg: str) -> None:  # an endpoint's words (a server's log tail) may echo a key
        raw_log(redact(msg))

    manifest = read_json(split_path)
    task = get_task(manifest["task"])
    examples = load_split(manifest, data_dir, str(split_path)).train
    prompts = P.PromptSet.load(prompts_dir or PROMPTS_DIR / cfg["prompt_version"], cfg["prompt_version"])
    cache = ResponseCache(cache_path(cache_dir, rewriter, task.name))
    log(
        f"[rephrase] {rewriter} / {task.name}: {len(examples)} examples, {len(cache)} cached responses in {cache.path}"
    )

    server = None
    server_info = {"base_url": cfg["base_url"]}

    def start_local() -> str:
        nonlocal server, server_info
        from zoharness.models import source_for
        from zoharness.rephrase.server import LocalServer, gguf_path

        path = gguf_path(source_for(cfg["local_model"]))
        server = LocalServer(
            path,
            model_alias=cfg["model"],
            threads=cfg["server"]["threads"],
            n_ctx=cfg["server"]["n_ctx"],
            startup_timeout_s=cfg["server"]["startup_timeout_s"],
            log_path=server_log,
        )
        log(f"[rephrase] cache miss: starting llama-cpp-python's server for {path.name} on {server.base_url}")
        started = time.perf_counter()
        server.start()
        log(f"[rephrase] server answered after {time.perf_counter() - started:.1f} s")
        server_info = {
            "kind": "llama-cpp-python server on loopback",
            "llama_cpp_python": _version("llama_cpp_python"),
            "gguf": f"{cfg['local_model']}: {path.name}",
            "gguf_sha256": sha256_file(path),
        }
        return server.base_url

    counters = Counters()
    common = dict(
        cache=cache,
        prompt_version=prompts.version,
        timeout_s=cfg["timeout_s"],
        max_retries=cfg["max_retries"],
        backoff_s=cfg["backoff_s"],
        counters=counters,
    )
    rewriter_ep = ChatEndpoint(
        cfg["model"],
        base_url=cfg["base_url"],
        api_key_env=cfg["api_key_env"],
        prepare=start_local if cfg["base_url"] is None else None,
        **common,
    )
    judge = judge_settings(cfg)
    if judge["separate_endpoint"]:
        judge_ep = ChatEndpoint(
            judge["model"], base_url=judge["base_url"], api_key_env=judge["api_key_env"], **common
        )
    elif judge["model"] == cfg["model"]:
        judge_ep = rewriter_ep
    else:  # another model behind the rewriter's endpoint (started once, by whichever asks first)
        judge_ep = ChatEndpoint(
            judge["model"],
            base_url=cfg["base_url"],
            api_key_env=judge["api_key_env"],
            prepare=rewriter_ep.ready,
            **common,
        )
    rephraser = Rephraser(
        task=task,
        prompts=prompts,
        brief=cfg["brief"],
        rewriter=rewriter_ep,
        judge=judge_ep,
        rewrite_params={k: cfg[k] for k in ("temperature", "max_tokens", "seed", "response_format")},
        judge_params={
            "temperature": judge["temperature"],
            "max_tokens": judge["max_tokens"],
            "seed": cfg["seed"],
        },
        max_attempts=cfg["max_attempts"],
        concurrency=cfg["concurrency"],
        length_ratio=tuple(cfg["length_ratio"]),
    )
    started = time.perf_counter()
    try:
        items = rephraser.run(
            examples,
            progress=lambda k, done, n: log(
                f"[rephrase] round {k}: {done}/{n} accepted; {counters.as_dict()}"
            ),
        )
    finally:
        if server is not None:
            server.stop()
            log("[rephrase] server stopped")
        if counters.requests and len(cache):  # no answer cached: nothing to describe, no file, no folder
            _write_provenance(cache, rewriter, cfg, prompts, server_info)
    lines = output_lines(items, cfg["fallback"])
    stats = {
        "format_version": FORMAT_VERSION,
        "rewriter": rewriter,
        "task": task.name,
        "seed": manifest.get("seed"),
        "split_sha256": sha256_file(split_path),
        "model": cfg["model"],
        "judge_model": judge["model"],
        "brief": cfg["brief"],
        "prompt_version": prompts.version,
        "prompts_sha256": prompts.sha256,
        "sampling": {
            k: cfg[k]
            for k in (
                "temperature",
                "max_tokens",
                "seed",
                "max_attempts",
                "fallback",
                "response_format",
                "length_ratio",
            )
        },
        **summary(lines, rephraser.tokens, cfg["price_per_1m_tokens"]),
    }
    if stats["examples"] and stats["kept_original"] + stats["accepted"] == 0:
        raise DataError(
            f"rewriter {rewriter} / task {task.name}: no training example left after filtering "
            f"(all {stats['examples']} rewrites rejected and fallback is 'drop')"
        )
    write_text_atomic(out_jsonl, "".join(dumps(line) + "\n" for line in lines))
    write_json_atomic(out_stats, stats)
    log(
        f"[rephrase] wrote {out_jsonl}: accepted {stats['accepted']}/{stats['examples']} "
        f"({stats['acceptance_rate']:.1%}); network: {json.dumps(counters.as_dict())}; "
        f"{time.perf_counter() - started:.1f} s"
    )
    return {"stats": stats, "network": counters.as_dict()}
