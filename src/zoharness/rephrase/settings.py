"""A rewriter's settings: which endpoint, which model, which prompts, how to sample and retry.

Torch- and openai-free: the Snakefile resolves rewriters at parse time, so a bad setting fails before
any job starts, naming the key. A suite may define rewriters under `rewriters:` (new names, or
overrides of the built-in ones below, merged key by key).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PROMPTS_DIR = PROJECT_ROOT / "prompts" / "rephrase"
BRIEFS = ("oat", "generic")
RESPONSE_FORMATS = ("json_object_schema", "json_schema", "json_object", "none")
FALLBACKS = ("original", "drop")

# base_url None = the workflow serves `local_model` (a gguf-package model) itself on loopback.
_LOCAL_SMOLLM2 = {
    "base_url": None,
    "local_model": "smollm2-135m",
    "model": "smollm2-135m-instruct",
    "api_key_env": None,  # the NAME of an environment variable; its value is never logged or written
    "prompt_version": "v1",
    "temperature": 0.7,
    "max_tokens": 96,  # bounds a CPU request (SST-2 sentences need ~40 tokens of JSON)
    "seed": 0,  # sampling seed sent with each request; attempt k uses seed + k
    "max_attempts": 3,  # rewrites per example before keeping the original
    "length_ratio": [0.5, 2.0],  # a rewritten field's length / the original's, outside: invalid
    "fallback": "original",  # a rejected example trains on its original text ("drop": leave it out)
    "response_format": "json_object_schema",  # llama.cpp, vLLM; OpenAI: json_schema
    "concurrency": 2,
    "timeout_s": 120.0,
    "max_retries": 5,  # per request, on 429 / 5xx / connection errors, with exponential backoff
    "backoff_s": 1.0,
    "price_per_1m_tokens": None,  # {"input": USD, "output": USD} when the endpoint prices requests
    "judge": {"model": None, "base_url": None, "api_key_env": None, "temperature": 0.0, "max_tokens": 64},
    "server": {"threads": None, "n_ctx": 2048, "startup_timeout_s": 180.0},
}
BUILTIN_REWRITERS = {
    "smollm2-135m-oat": {**_LOCAL_SMOLLM2, "brief": "oat"},
    "smollm2-135m-generic": {**_LOCAL_SMOLLM2, "brief": "generic"},
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class RewriterConfigError(ValueError):
    pass


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
        )
    return out


def resolve(name: str, suite_rewriters: dict | None = None) -> dict:
    """The complete, checked settings of rewriter `name` (built-in, or defined by the suite)."""
    suite_rewriters = suite_rewriters or {}
    if name not in BUILTIN_REWRITERS and name not in suite_rewriters:
        known = sorted({*BUILTIN_REWRITERS, *suite_rewriters})
        raise RewriterConfigError(f"unknown rewriter {name!r}; known: {known} (define it under `rewriters:`)")
    base = BUILTIN_REWRITERS.get(name, {**_LOCAL_SMOLLM2, "brief": "oat"})
    cfg = _merge(base, suite_rewriters.get(name) or {})
    check(name, cfg)
    return cfg


def check(name: str, cfg: dict) -> None:
    where = f"rewriters.{name}"

    def require(cond, key, msg):
        if not cond:
            raise RewriterConfigError(f"{where}.{key}: {msg}, got {cfg.get(key)!r}")

    require(bool(_NAME.match(name)), "", "a rewriter name is lower-case letters, digits, '_', '.', '-'")
    unknown = sorted(set(cfg) - set(_LOCAL_SMOLLM2) - {"brief"})
    if unknown:
        raise RewriterConfigError(
            f"{where}: unknown key(s) {unknown}; valid: {sorted({*_LOCAL_SMOLLM2, 'brief'})}"
        )
    require(cfg["brief"] in BRIEFS, "brief", f"must be one of {BRIEFS}")
    require(
        cfg["response_format"] in RESPONSE_FORMATS, "response_format", f"must be one of {RESPONSE_FORMATS}"
    )
    require(cfg["fallback"] in FALLBACKS, "fallback", f"must be one of {FALLBACKS}")
    require(
        cfg["base_url"] is not None or bool(cfg["local_model"]),
        "local_model",
        "is needed when base_url is null",
    )
    require(isinstance(cfg["model"], str) and cfg["model"], "model", "must be a model name")
    require(0 <= cfg["temperature"] <= 2, "temperature", "must be in [0, 2]")
    for key in ("max_tokens", "max_attempts", "concurrency"):
        require(isinstance(cfg[key], int) and cfg[key] >= 1, key, "must be an integer >= 1")
    require(isinstance(cfg["max_retries"], int) and cfg["max_retries"] >= 0, "max_retries", "must be >= 0")
    require(cfg["timeout_s"] > 0, "timeout_s", "must be > 0")
    require(cfg["backoff_s"] >= 0, "backoff_s", "must be >= 0")
    ratio = cfg["length_ratio"]
    require(
        isinstance(ratio, list | tuple) and len(ratio) == 2 and 0 <= ratio[0] <= 1 <= ratio[1],
        "length_ratio",
        "must be [min <= 1, max >= 1]",
    )
    env = cfg["api_key_env"]
    require(
        env is None or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(env)),
        "api_key_env",
        "must name a variable",
    )
    price = cfg["price_per_1m_tokens"]
    require(
        price is None or (isinstance(price, dict) and set(price) == {"input", "output"}),
        "price_per_1m_tokens",
        "must be null or {input: USD, output: USD}",
    )
    prompts = PROMPTS_DIR / str(cfg["prompt_version"])
    require(prompts.is_dir(), "prompt_version", f"has no prompt folder {prompts}")


def judge_settings(cfg: dict) -> dict:
    """The judge's endpoint and sampling: its own where given, the rewriter's otherwise."""
    judge = cfg["judge"]
    return {
        "base_url": judge["base_url"] or cfg["base_url"],
        "model": judge["model"] or cfg["model"],
        "api_key_env": judge["api_key_env"] or cfg["api_key_env"],
        "temperature": judge["temperature"],
        "max_tokens": judge["max_tokens"],
        "separate_endpoint": bool(judge["base_url"]) and judge["base_url"] != cfg["base_url"],
    }
