"""Test helpers: a real run directory (split manifest + run_config.json) built the way the workflow does it,
and the JSON answers of the loopback stub servers that stand in for an OpenAI-compatible endpoint."""

import http.server
import json
import threading
from pathlib import Path

from tests.conftest import DATA
from zoharness.config import run_spec, validate
from zoharness.data import data_dir, make_split
from zoharness.io import sha256_file, write_json_atomic


def suite(methods: dict, task: str = "sst2", **over) -> dict:
    raw = {
        "suite": "t",
        "models": ["tiny-llama"],
        "tasks": [task],
        "variants": methods,
        "seeds": [0],
        "data": {"dir": str(DATA), "num_train": 16, "num_dev": 8, "num_test": 12},
        "eval": {"batch_size": 8, "max_length": 96},
        "device": "cpu",
        "threads": 1,
    }
    raw.update(over)
    return validate(raw)


def make_run(
    root: Path,
    method: str,
    params: dict | None = None,
    seed: int = 0,
    method_id: str | None = None,  # the method, when the variant has another name
    task: str = "sst2",
    **suite_over,
):
    cfg = suite({method: {"method": method_id or method, "params": params or {}}}, task, **suite_over)
    split_path = root / f"split-{task}-seed{seed}.json"
    if not split_path.exists():
        d = cfg["data"]
        manifest = make_split(
            task, data_dir(d), seed, d["num_train"], d["num_dev"], d["num_test"], d["source"], d.get("plant")
        )
        write_json_atomic(split_path, manifest)
    run_dir = root / method / f"seed{seed}"
    spec = run_spec(cfg, "tiny-llama", task, method, seed)
    spec["split_sha256"] = sha256_file(split_path)
    write_json_atomic(run_dir / "run_config.json", spec)
    return run_dir, split_path


class JSONHandler(http.server.BaseHTTPRequestHandler):
    """A stub endpoint's request handler: quiet, and `_send(code, body)` answers with a JSON body."""

    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _completion(self, content: str = "{}"):
        """A minimal chat.completion answer."""
        self._send(200, {
            "id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        })  # fmt: skip


def serve(handler) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve `handler` on a free loopback port in a daemon thread; (server, OpenAI-style base URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def count_fused_passes(monkeypatch) -> list:
    """A list that gets an entry per pass given two seeds: a many-range philox.sweep with the kernel, or an
    axpy2_ per range without it."""
    from zoharness import philox

    fused, axpy2, sweep = [], philox.axpy2_, philox.sweep

    def counted_axpy2(*args, **kwargs):
        fused.append("axpy2_")
        return axpy2(*args, **kwargs)

    def counted_sweep(tensors, ranges, seeds1, coeff1, seeds2=None, coeff2=0.0):
        if seeds2 is not None:
            fused.append("sweep")
        return sweep(tensors, ranges, seeds1, coeff1, seeds2, coeff2)

    monkeypatch.setattr(philox, "axpy2_", counted_axpy2)
    monkeypatch.setattr(philox, "sweep", counted_sweep)
    return fused
