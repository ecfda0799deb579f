"""The rephrase pipeline against a real OpenAI-compatible server on loopback: llama-cpp-python serving the
bundled SmolLM2-135M-Instruct GGUF (the tiny path: 3-8 examples, short max_tokens, two attempts).

Covers: the offline default (server started on a cache miss, stopped after), replay from the cache with
zero requests and identical files, the API key never written anywhere, a judge rejection keeping the
original, fallback 'drop' emptying the train set, garbage replies, the endpoint down at start, and the
server killed mid-run (the error names base_url, the cache keeps what was answered, a rerun resumes).
"""

import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import DATA
from zoharness.data import load_split, make_split
from zoharness.io import write_json_atomic
from zoharness.models import source_for
from zoharness.rephrase.cache import ResponseCache
from zoharness.rephrase.client import EndpointError
from zoharness.rephrase.run import cache_path, rephrase_split
from zoharness.rephrase.server import LocalServer, free_port, gguf_path
from zoharness.rephrase.settings import PROMPTS_DIR, resolve

KEY = "sk-zoharness-test-" + "7f3a9c1e5b2d4a6f8e0c"  # a fake secret the files must never contain


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    """One server for the module, requiring KEY (as a hosted endpoint would)."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with LocalServer(
        gguf_path(source_for("smollm2-135m")),
        model_alias="smollm2-135m-instruct",
        api_key=KEY,
        threads=2,
        log_path=log,
    ) as server:
        yield server


def _split(root: Path, n: int) -> Path:
    path = root / "split.json"
    write_json_atomic(path, make_split("sst2", DATA, seed=0, num_train=n, num_dev=1, num_test=1))
    return path


def _settings(**over) -> dict:
    cfg = resolve("smollm2-135m-oat")
    cfg.update({"max_tokens": 48, "max_attempts": 2, "backoff_s": 0.05, "max_retries": 1, "timeout_s": 60.0})
    cfg["judge"] = {**cfg["judge"], "max_tokens": 40}
    cfg.update(over)
    return cfg


def _run(root: Path, cfg: dict, n: int = 3, prompts_dir=None, tag: str = "run"):
    """One rephrase job laid out as the workflow lays it out: resources/, results/, logs/ under root."""
    split = root / "results" / "split.json"
    if not split.exists():
        split.parent.mkdir(parents=True, exist_ok=True)
        _split(split.parent, n)
    out = root / "resources" / "rephrased" / "rw" / "sst2" / "seed0"
    log_path = root / "logs" / f"{tag}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        result = rephrase_split(
            "rw",
            cfg,
            split,
            DATA,
            f"{out}.jsonl",
            f"{out}.json",
            cache_dir=root / "resources" / "rephrase-cache",
            prompts_dir=prompts_dir,
            log=lambda msg: print(msg, file=log, flush=True),
            server_log=root / "logs" / f"{tag}.server.log",
        )
    return result, Path(f"{out}.jsonl"), Path(f"{out}.json"), log_path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_offline_default_starts_a_server_on_a_miss_stops_it_and_replays_with_zero_requests(tmp_path):
    cfg = _settings()  # base_url null: the pipeline serves the bundled GGUF itself
    first, jsonl, stats, log = _run(tmp_path, cfg, tag="first")
    assert first["network"]["requests"] > 0
    text = log.read_text()
    base_url = re.search(r"on (http://127\.0\.0\.1:\d+/v1)", text)[1]
    assert "server stopped" in text
    with pytest.raises(urllib.error.URLError):  # nothing listens there any more
        urllib.request.urlopen(f"{base_url}/models", timeout=2)
    lines = _lines(jsonl)
    assert len(lines) == 3 and all(line["used"] in ("rephrased", "original") for line in lines)
    s = json.loads(stats.read_text())
    assert s["examples"] == 3 and s["tokens"]["rewriter"]["input"] > 0 and s["cost_usd"] is None
    assert (tmp_path / "resources" / "rephrase-cache" / "rw" / "sst2.provenance.json").exists()

    before = (jsonl.read_bytes(), stats.read_bytes())
    jsonl.unlink()
    stats.unlink()
    again, jsonl2, stats2, log2 = _run(tmp_path, cfg, tag="again")
    assert again["network"]["requests"] == 0 and again["network"]["cache_hits"] > 0
    assert "starting" not in log2.read_text()  # a full cache starts no server
    assert (jsonl2.read_bytes(), stats2.read_bytes()) == before


def test_api_key_comes_from_the_environment_and_is_never_written(tmp_path, keyed_server, monkeypatch):
    cfg = _settings(base_url=keyed_server.base_url, api_key_env="ZOH_TEST_API_KEY")
    monkeypatch.delenv("ZOH_TEST_API_KEY", raising=False)
    with pytest.raises(EndpointError, match="environment variable ZOH_TEST_API_KEY .* is not set"):
        _run(tmp_path, cfg, tag="nokey")
    monkeypatch.setenv("ZOH_TEST_API_KEY", "sk-wrong-key-0000")
    with pytest.raises(EndpointError, match=r"refused the API key from \$ZOH_TEST_API_KEY \(401\)") as e:
        _run(tmp_path, cfg, tag="wrongkey")
    assert "sk-wrong" not in str(e.value)
    monkeypatch.setenv("ZOH_TEST_API_KEY", KEY)
    result, jsonl, _, _ = _run(tmp_path, cfg, tag="ok")
    assert result["network"]["requests"] > 0 and jsonl.exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.relative_to(tmp_path).parts[0] for p in written} >= {"resources", "results", "logs"}
    assert not [p for p in written if KEY.encode() in p.read_bytes()]


def _forced_reject_prompts(tmp_path: Path) -> Path:
    """The v1 prompts with a judge schema that only admits "reject" (the server's grammar enforces it)."""
    prompts = tmp_path / "prompts-reject"
    prompts.mkdir()
    for f in (PROMPTS_DIR / "v1").iterdir():
        (prompts / f.name).write_bytes(f.read_bytes())
    schema = json.loads((prompts / "judge.schema.json").read_text())
    schema["properties"]["verdict"]["enum"] = ["reject"]
    (prompts / "judge.schema.json").write_text(json.dumps(schema))
    return prompts


def _seed_valid_rewrites(tmp_path: Path, cfg: dict, prompts_dir: Path, n: int) -> int:
    """Cache a valid rewrite (the sentence in capitals, then with "!") for every example and attempt, so each goes to
    the judge: the judge's requests are the only ones that reach the server."""
    from zoharness.rephrase import prompts as P
    from zoharness.rephrase.cache import request_key
    from zoharness.rephrase.pipeline import Rephraser
    from zoharness.tasks import get_task

    task = get_task("sst2")
    split = tmp_path / "results" / "split.json"
    split.parent.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(_split(split.parent, n).read_text())
    prompts = P.PromptSet.load(prompts_dir, cfg["prompt_version"])
    rephraser = Rephraser(
        task, prompts, cfg["brief"], None, None, {k: cfg[k] for k in ("temperature", "max_tokens", "seed", "response_format")},
        {}, cfg["max_attempts"], 1,
    )  # fmt: skip
    cache = ResponseCache(cache_path(tmp_path / "resources" / "rephrase-cache", "rw", "sst2"))
    for ex in load_split(manifest, DATA).train:
        for attempt in range(1, cfg["max_attempts"] + 1):
            messages, params = rephraser.rewrite_request(ex.record, attempt)
            key = request_key(cfg["model"], messages, params, prompts.version)
            text = ex.record["sentence"].strip().upper() + "!" * (attempt - 1)  # a new rewrite per attempt
            reply = json.dumps({"sentence": text})
            cache.put(key, {"content": reply, "finish_reason": "stop", "usage": {}}, {"call": "rewrite"})
    return len(cache)


def test_judge_rejection_keeps_the_original_after_every_attempt(tmp_path, keyed_server, monkeypatch):
    monkeypatch.setenv("ZOH_TEST_API_KEY", KEY)
    cfg = _settings(base_url=keyed_server.base_url, api_key_env="ZOH_TEST_API_KEY")
    prompts = _forced_reject_prompts(tmp_path)
    _seed_valid_rewrites(tmp_path, cfg, prompts, n=3)
    result, jsonl, stats, _ = _run(tmp_path, cfg, prompts_dir=prompts)
    assert result["network"]["requests"] == 3 * 2  # only the judge: one verdict per example and attempt
    split = json.loads((tmp_path / "results" / "split.json").read_text())
    originals = {ex.uid: ex.record for ex in load_split(split, DATA).train}
    for line in _lines(jsonl):
        assert line["used"] == "original" and line["record"] == originals[line["uid"]]
        assert line["verdict"] == "reject" and line["attempts"] == 2 and line["rephrased"] is None
        assert [h["outcome"] for h in line["history"]] == ["rejected by judge"] * 2
        assert line["reason"].startswith("rejected by judge")
    s = json.loads(stats.read_text())
    assert s["accepted"] == 0 and s["kept_original"] == 3 and s["outcomes"] == {"rejected by judge": 6}


def test_fallback_drop_with_every_rewrite_rejected_is_an_error_and_writes_nothing(
    tmp_path, keyed_server, monkeypatch
):
    monkeypatch.setenv("ZOH_TEST_API_KEY", KEY)
    cfg = _settings(base_url=keyed_server.base_url, api_key_env="ZOH_TEST_API_KEY", fallback="drop")
    prompts = _forced_reject_prompts(tmp_path)
    _seed_valid_rewrites(tmp_path, cfg, prompts, n=2)
    from zoharness.io import DataError

    with pytest.raises(DataError, match="no training example left after filtering"):
        _run(tmp_path, cfg, prompts_dir=prompts)
    assert not list((tmp_path / "resources").rglob("seed0.json*"))


def test_garbage_replies_are_retried_then_the_original_is_kept_and_counted(
    tmp_path, keyed_server, monkeypatch
):
    monkeypatch.setenv("ZOH_TEST_API_KEY", KEY)
    # No structured output and 3 tokens: every reply is a cut-off fragment, not JSON.
    cfg = _settings(
        base_url=keyed_server.base_url, api_key_env="ZOH_TEST_API_KEY", response_format="none", max_tokens=3
    )
    result, jsonl, stats, _ = _run(tmp_path, cfg)
    assert result["network"]["requests"] == 3 * 2
    for line in _lines(jsonl):
        assert line["used"] == "original" and line["attempts"] == 2
        assert [h["outcome"] for h in line["history"]] == ["malformed", "malformed"]
    s = json.loads(stats.read_text())
    assert (
        s["malformed_replies"] == 6
        and s["accepted"] == 0
        and s["tokens"]["judge"] == {"input": 0, "output": 0}
    )


def test_endpoint_down_at_start_names_base_url_and_keeps_the_cache(tmp_path):
    down = f"http://127.0.0.1:{free_port()}/v1"
    cache = cache_path(tmp_path / "resources" / "rephrase-cache", "rw", "sst2")
    ResponseCache(cache).put("earlier", {"content": "{}"}, {})
    before = cache.read_bytes()
    started = time.perf_counter()
    with pytest.raises(EndpointError, match=f"endpoint {re.escape(down)} is not reachable"):
        _run(tmp_path, _settings(base_url=down))
    assert time.perf_counter() - started < 30  # fails fast: one probe, not the full retry budget
    assert cache.read_bytes() == before
    assert not list((tmp_path / "resources" / "rephrased").rglob("*"))


def test_server_killed_mid_run_errors_naming_base_url_and_a_rerun_resumes(tmp_path):
    n = 8
    model = gguf_path(source_for("smollm2-135m"))
    cache = cache_path(tmp_path / "resources" / "rephrase-cache", "rw", "sst2")
    server = LocalServer(model, model_alias="smollm2-135m-instruct", threads=2, log_path=tmp_path / "s1.log")
    server.start()

    def kill_after_three_responses():
        while server.proc.poll() is None:
            if cache.exists() and len(cache.read_text().splitlines()) >= 3:
                server.proc.kill()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_three_responses)
    watcher.start()
    try:
        with pytest.raises(EndpointError, match=re.escape(f"endpoint {server.base_url}: APIConnectionError")):
            _run(tmp_path, _settings(base_url=server.base_url), n=n, tag="killed")
    finally:
        watcher.join()
        server.stop()
    kept = len(ResponseCache(cache))
    assert kept >= 3
    assert not (tmp_path / "resources" / "rephrased" / "rw" / "sst2" / "seed0.jsonl").exists()

    with LocalServer(
        model, model_alias="smollm2-135m-instruct", threads=2, log_path=tmp_path / "s2.log"
    ) as s2:
        result, jsonl, _, _ = _run(tmp_path, _settings(base_url=s2.base_url), n=n, tag="resumed")
    assert result["network"]["cache_hits"] >= kept
    assert len(_lines(jsonl)) == n
