"""Chat completions through the `openai` package against any OpenAI-compatible endpoint, behind the cache.

- A cache hit returns at once and never touches the network (nor starts a local server).
- On the first miss the endpoint is made ready (a local server is started, see server.py) and probed
  once: an endpoint that does not answer fails fast with an error naming its base_url.
- Each request: a timeout; retries with exponential backoff on 429, 5xx, timeouts and connection
  errors; other errors (401, 400) fail at once. Concurrency is bounded by the pipeline's thread pool.
- The API key is read from the environment variable named in the config, passed to the client and
  nowhere else: not logged, not in the cache, not in any output. An endpoint's error body can still
  echo it (a proxy that repeats the Authorization header), so every message this package raises or
  logs goes through `redact`: the keys read here (exact values) and anything shaped like a credential.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zoharness.rephrase.cache import ResponseCache, request_key

# Local OpenAI-compatible servers need no key, but the openai client insists on one.
_NO_KEY = "no-key-needed"


REDACTED = "[REDACTED]"
# Exact values of the keys this process has read (api_key(), a LocalServer's key): redacted wherever
# they appear, whatever their shape. Shorter strings are not credentials and too common to replace.
_SECRETS: frozenset[str] = frozenset()  # replaced, never mutated: redact() may run in another thread
_MIN_SECRET = 4
_CREDENTIAL_PATTERNS = (
    # "Bearer <token>" (an echoed Authorization header)
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=*-]{8,}"), rf"\1{REDACTED}"),
    # OpenAI-style keys (sk-..., sk-proj-..., masked sk-abc***wxyz) and Hugging Face tokens (hf_...)
    (re.compile(r"\bsk[-_][A-Za-z0-9._*-]{6,}|\bhf_[A-Za-z0-9]{16,}"), REDACTED),
    # a long value after a credential's name: "Authorization: Token x", api_key=x, "x-api-key": "x"
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|x-api-key|api[_-]?key|access[_-]?token|auth[_-]?token|"
            r"token|secret|password)(\\?[\"']?\s*[:=]\s*\\?[\"']?)((?:(?:bearer|basic|token)\s+)?)"
            r"[^\s\"'\\,;&]{8,}"
        ),
        rf"\1\2\3{REDACTED}",
    ),
)


def add_secret(value: str | None) -> None:
    """Redact `value` (exactly) from every message this package raises or logs from now on."""
    global _SECRETS
    if value and len(value) >= _MIN_SECRET and value != _NO_KEY:
        _SECRETS = _SECRETS | {value}


def redact(text: object, *secrets: str | None) -> str:
    """`text` with the known keys, `secrets`, and anything shaped like a bearer token or an API key
    replaced by [REDACTED]. Every message of the rephrase package passes through here."""
    text = str(text)
    known = {s for s in (*_SECRETS, *secrets) if s and len(s) >= _MIN_SECRET and s != _NO_KEY}
    for secret in sorted(known, key=len, reverse=True):  # a key containing another goes first
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class EndpointError(RuntimeError):
    """The endpoint could not be reached or refused the request (after retries where they apply).
    Its message is redacted on construction, so no caller can print a key by printing the error."""

    def __init__(self, message: object = ""):
        super().__init__(redact(message))


def api_key(env_name: str | None) -> str:
    if env_name is None:
        return _NO_KEY
    value = os.environ.get(env_name)
    if not value:
        raise EndpointError(f"environment variable {env_name} (rewriters.*.api_key_env) is not set or empty")
    add_secret(value)
    return value


def response_format(kind: str, schema: dict, name: str) -> dict | None:
    if kind == "json_object_schema":  # llama.cpp's server, vLLM, Anyscale: grammar-constrained JSON
        return {"type": "json_object", "schema": schema}
    if kind == "json_schema":  # OpenAI structured outputs
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


@dataclass
class Counters:
    requests: int = 0  # sent over the network (retries included)
    cache_hits: int = 0
    retries: int = 0
    seconds: float = 0.0  # wall time spent in network calls
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
        }


class ChatEndpoint:
    """One model on one endpoint. `base_url` may be None until `prepare()` (a local server) sets it."""

    def __init__(
        self,
        model: str,
        cache: ResponseCache,
        prompt_version: str,
        *,
        base_url: str | None,
        api_key_env: str | None,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
        prepare: Callable[[], str] | None = None,
        counters: Counters | None = None,
    ):
        self.model, self.cache, self.prompt_version = model, cache, prompt_version
        self.base_url, self.api_key_env = base_url, api_key_env
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self._prepare = prepare
        self._client = None
        self._ready = threading.Lock()
        self.counters = counters or Counters()

    def _connect(self):
        with self._ready:
            if self._client is not None:
                return self._client
            import openai

            if self._prepare is not None:
                self.base_url = self._prepare()
            client = openai.OpenAI(
                base_url=self.base_url,
                api_key=api_key(self.api_key_env),
                timeout=self.timeout_s,
                max_retries=0,
            )
            try:  # fail fast, and clearly, when nothing answers at base_url
                client.with_options(timeout=min(self.timeout_s, 30.0)).models.list()
            except openai.APIConnectionError as e:
                raise EndpointError(
                    f"endpoint {self.base_url} is not reachable ({type(e).__name__}): start the server or fix "
                    "the rewriter's base_url; responses cached so far are kept and a rerun resumes from them"
                ) from None
            except openai.AuthenticationError:
                raise EndpointError(
                    f"endpoint {self.base_url} refused the API key from ${self.api_key_env} (401)"
                ) from None
            except openai.NotFoundError:
                pass  # some compatible servers do not list models; the first request will tell
            except openai.APIStatusError as e:
                raise EndpointError(
                    f"endpoint {self.base_url} refused the probe (GET /models): HTTP {e.status_code}"
                    f"{_detail(e)}"
                ) from None
            except openai.APIError as e:
                raise EndpointError(
                    f"endpoint {self.base_url}: {type(e).__name__} on GET /models: {redact(e.message)[:300]}"
                ) from None
            self._client = client
            return client

    def ready(self) -> str:
        """Connect (starting a local server if that is how this endpoint comes up); its base_url."""
        self._connect()
        return self.base_url

    def chat(self, messages: list[dict], params: dict, meta: dict) -> tuple[dict, bool]:
        """(response, from_cache). response: content, finish_reason, usage {prompt_tokens, completion_tokens}."""
        key = request_key(self.model, messages, params, self.prompt_version)
        hit = self.cache.get(key)
        if hit is not None:
            self.counters.add(cache_hits=1)
            return hit, True
        response = self._request(messages, params)
        meta = {**meta, "model": self.model, "prompt_version": self.prompt_version}
        return self.cache.put(key, response, meta), False

    def _request(self, messages: list[dict], params: dict) -> dict:
        import openai

        client = self._connect()
        body = {k: v for k, v in params.items() if v is not None}
        for attempt in range(self.max_retries + 1):
            start = time.perf_counter()
            try:
                self.counters.add(requests=1)
                reply = client.chat.completions.create(model=self.model, messages=messages, **body)
                self.counters.add(seconds=time.perf_counter() - start)
                choice = reply.choices[0]
                usage = reply.usage
                return {
                    "content": choice.message.content or "",
                    "finish_reason": choice.finish_reason,
                    "usage": {
                        "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
                        "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
                    },
                }
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as e:
                self.counters.add(seconds=time.perf_counter() - start)
                if attempt == self.max_retries:
                    raise EndpointError(
                        f"endpoint {self.base_url}: {type(e).__name__} after {self.max_retries + 1} attempt(s); "
                        "responses cached so far are kept and a rerun resumes from them"
                    ) from None
                self.counters.add(retries=1)
                time.sleep(self.backoff_s * 2**attempt)
            except openai.APIStatusError as e:
                raise EndpointError(
                    f"endpoint {self.base_url} refused the request: HTTP {e.status_code}{_detail(e)}"
                ) from None
            except openai.APIError as e:  # e.g. a reply that is not a chat completion
                raise EndpointError(
                    f"endpoint {self.base_url}: {type(e).__name__}: {redact(e.message)[:300]}"
                ) from None
        raise AssertionError("unreachable")


def _detail(e) -> str:
    """The start of the endpoint's message for a bad request (it helps), redacted BEFORE it is cut so
    a key split at the cut cannot slip through; a 401/403 body may echo part of the key: never shown."""
    return f": {redact(e.message)[:300]}" if e.status_code in (400, 404, 422) else ""
