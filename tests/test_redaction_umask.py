"""No API key in any message, log or file of the rephrase package (an endpoint that echoes the
Authorization header back in its error body); no provenance file or empty folder left in the committed
cache by a run that cached nothing; artifacts written through temporary files get the umask's mode
(0o666 & ~umask), not mkstemp's 0600."""

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import DATA
from tests.helpers import JSONHandler, serve
from zoharness.data import make_split
from zoharness.io import current_umask, set_default_mode, write_json_atomic, write_text_atomic
from zoharness.rephrase.cache import ResponseCache
from zoharness.rephrase.client import REDACTED, EndpointError, api_key, redact
from zoharness.rephrase.run import cache_path, rephrase_split
from zoharness.rephrase.settings import resolve

# Not shaped like any token (no sk-, no Bearer in front where it is echoed alone): only the exact-value
# redaction can catch it.
KEY = "zoh-fake-" + "Q7mXc2pL9vRt4Kd8Wn3s"
ENV = "ZOH_REDACTION_TEST_KEY"


# ---------------------------------------------------------------------------------------------- redact
def test_redact_replaces_the_exact_key_wherever_it_appears():
    text = f"the proxy saw {KEY} twice: {KEY}."
    assert redact(text, KEY) == f"the proxy saw {REDACTED} twice: {REDACTED}."


@pytest.mark.parametrize(
    "text, secret",
    [
        ("Authorization: Bearer abcDEF123456789xyzQRS", "abcDEF123456789xyzQRS"),
        ('{"headers": {"authorization": "bearer eyJhbGciOi.J9eyJzd.WIiOiIx"}}', "eyJhbGciOi.J9eyJzd.WIiOiIx"),
        ("Incorrect API key provided: sk-proj-AbC123dEf456GhI789", "sk-proj-AbC123dEf456GhI789"),
        ("Incorrect API key provided: sk-abc1***************wxyz", "sk-abc1***"),
        ("'Authorization': 'Token 9f8e7d6c5b4a39281706'", "9f8e7d6c5b4a39281706"),
        ("GET https://proxy/v1/models?api_key=Zx9Qw8Er7Ty6Ui5O&page=2", "Zx9Qw8Er7Ty6Ui5O"),
        ('{"x-api-key": "a1B2c3D4e5F6g7H8"}', "a1B2c3D4e5F6g7H8"),
        ("hf_AbCdEfGhIjKlMnOpQrStUv is not valid", "hf_AbCdEfGhIjKlMnOpQrStUv"),
    ],
)
def test_redact_removes_anything_shaped_like_a_credential(text, secret):
    out = redact(text)
    assert secret not in out and REDACTED in out, out


def test_redact_keeps_what_surrounds_a_credential():
    assert (
        redact("Authorization: Bearer abcDEF123456789xyzQRS, retry")
        == f"Authorization: Bearer {REDACTED}, retry"
    )
    assert redact("https://proxy/v1/models?api_key=Zx9Qw8Er7Ty6Ui5O&page=2") == (
        f"https://proxy/v1/models?api_key={REDACTED}&page=2"
    )


@pytest.mark.parametrize(
    "text",
    [
        "endpoint http://127.0.0.1:8080/v1 refused the request: HTTP 400: max_tokens must be <= 2048",
        "'max_tokens' is too large: 4096. This model supports at most 2048 completion tokens.",
        "the basic token limit was exceeded; a bearer of bad news; ask-questions; risk-averse",
        "[rephrase] rw / sst2: 3 examples, 0 cached responses in resources/rephrase-cache/rw/sst2.jsonl",
        "gguf_sha256 9b1c3e0a7d2f4e6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b model hf-internal-testing/x",
        '{"requests": 4, "cache_hits": 0, "retries": 3, "seconds": 0.05}',
    ],
)
def test_redact_leaves_ordinary_text_unchanged(text):
    assert redact(text) == text


def test_a_key_read_from_the_environment_is_redacted_from_every_endpoint_error(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    assert api_key(ENV) == KEY
    assert str(EndpointError(f"a proxy said: you sent {KEY}")) == f"a proxy said: you sent {REDACTED}"


# ------------------------------------------------------------------------------------ a stub endpoint
class _EchoAuth:
    """A stub OpenAI-compatible server on loopback (as tests/test_rephrase.py's _Flaky) whose error
    bodies echo the request's Authorization header, and the bare key behind it, as a leaky proxy does.
    `statuses`: one per chat request (None = answer "{}"), then answers; `probe`: GET /models's status."""

    def __init__(self, statuses=(), probe=200):

        self.statuses, self.probe, self.posts = list(statuses), probe, 0
        outer = self

        class Handler(JSONHandler):
            def _echo(self, code):
                auth = self.headers.get("Authorization", "")
                message = f"bad request; you sent Authorization: {auth} (key {auth.split()[-1]} is not allowed here)"
                self._send(code, {"error": {"message": message, "type": "invalid_request_error"}})

            def do_GET(self):
                if outer.probe != 200:
                    return self._echo(outer.probe)
                self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts += 1
                code = outer.statuses.pop(0) if outer.statuses else None
                if code is not None:
                    return self._echo(code)
                self._completion()

        self.server, self.base_url = serve(Handler)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def split3():
    return make_split("sst2", DATA, seed=0, num_train=3, num_dev=1, num_test=1)


def _run(root: Path, base_url: str, split_manifest: dict, **over):
    """One rephrase job laid out as the workflow lays it out (resources/, results/, logs/ under root),
    logging to its log file and to stdout."""
    cfg = resolve("smollm2-135m-oat")
    cfg.update(
        {"base_url": base_url, "api_key_env": ENV, "max_attempts": 1, "max_retries": 1, "backoff_s": 0.01}
    )
    cfg.update({"timeout_s": 10.0, "concurrency": 1, **over})
    split = root / "results" / "split.json"
    if not split.exists():
        write_json_atomic(split, split_manifest)
    out = root / "resources" / "rephrased" / "rw" / "sst2" / "seed0"
    log_path = root / "logs" / "rephrase.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:

        def both(msg):
            print(msg, file=log, flush=True)
            print(msg, flush=True)

        return rephrase_split(
            "rw", cfg, split, DATA, f"{out}.jsonl", f"{out}.json",
            cache_dir=root / "resources" / "rephrase-cache", log=both,
            server_log=root / "logs" / "rephrase.server.log",
        )  # fmt: skip


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.parametrize(
    "statuses, probe, expected",
    [
        ([400], 200, "refused the request: HTTP 400: .*bad request"),
        ([422], 200, "refused the request: HTTP 422: .*bad request"),
        ([], 400, r"refused the probe \(GET /models\): HTTP 400: .*bad request"),
        ([503, 503], 200, "InternalServerError after 2 attempt"),
    ],
)
def test_an_endpoint_echoing_the_key_never_puts_it_in_a_message_a_log_or_a_file(
    tmp_path, monkeypatch, capfd, caplog, split3, statuses, probe, expected
):
    caplog.set_level(logging.INFO)  # openai's and httpx's loggers included
    monkeypatch.setenv(ENV, KEY)
    with _EchoAuth(statuses, probe) as stub, pytest.raises(EndpointError, match=expected) as e:
        _run(tmp_path, stub.base_url, split3)
    message = str(e.value)
    assert KEY not in message and KEY not in repr(e.value)
    if "bad request" in expected:  # the endpoint's words are still shown, with the key cut out
        assert f"Bearer {REDACTED}" in message and f"key {REDACTED} is not" in message
    out, err = capfd.readouterr()
    assert "[rephrase]" in out and KEY not in out + err
    assert KEY not in caplog.text
    assert {p.name for p in tmp_path.iterdir()} >= {"results", "logs"}
    assert not _files_holding(tmp_path, KEY)


# ------------------------------------------------------------------------------------------ provenance
def test_a_run_failing_before_any_answer_leaves_no_provenance_and_no_folder_in_the_cache(
    tmp_path, monkeypatch, split3
):
    monkeypatch.setenv(ENV, KEY)
    with _EchoAuth([400] * 20) as stub, pytest.raises(EndpointError, match="HTTP 400"):
        _run(tmp_path, stub.base_url, split3)
    assert stub.posts >= 1  # requests were sent, none answered
    assert not (tmp_path / "resources" / "rephrase-cache").exists()
    assert not (tmp_path / "resources" / "rephrased").exists()


@pytest.mark.parametrize("statuses", [[None, 400], []], ids=["fails-after-one-answer", "completes"])
def test_a_run_with_a_cached_answer_writes_the_provenance(tmp_path, monkeypatch, split3, statuses):
    monkeypatch.setenv(ENV, KEY)
    old = os.umask(0o022)
    try:
        with _EchoAuth(statuses) as stub:
            if statuses:
                with pytest.raises(EndpointError, match="HTTP 400"):
                    _run(tmp_path, stub.base_url, split3)
            else:
                _run(tmp_path, stub.base_url, split3)
    finally:
        os.umask(old)
    cache = cache_path(tmp_path / "resources" / "rephrase-cache", "rw", "sst2")
    provenance = cache.with_suffix(".provenance.json")
    entries = len(ResponseCache(cache))
    assert entries >= 1 and json.loads(provenance.read_text())["entries"] == entries
    assert stat.S_IMODE(provenance.stat().st_mode) == 0o644
    assert not _files_holding(tmp_path, KEY)


# ----------------------------------------------------------------------------------------------- umask
@pytest.fixture()
def umask():
    """Set the process umask for one test; restored after it."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writers_give_files_the_umask_mode(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    write_text_atomic(tmp_path / "a" / "table.csv", "x,y\n")
    write_json_atomic(tmp_path / "metrics.json", {"acc": 1.0})
    write_json_atomic(tmp_path / "metrics.json", {"acc": 0.5})  # replacing a file: the same mode
    assert _mode(tmp_path / "a" / "table.csv") == mode
    assert _mode(tmp_path / "metrics.json") == mode
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "metrics.json", "table.csv"]  # no temp left


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_response_cache_and_set_default_mode_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    # the cache is appended to by the group's jobs: group-writable under umask 002
    ResponseCache(tmp_path / "cache" / "sst2.jsonl").put("k", {"content": "{}"}, {})
    assert _mode(tmp_path / "cache" / "sst2.jsonl") == mode
    path = tmp_path / "written-elsewhere.bin"
    path.write_bytes(b"x")
    path.chmod(0o600)
    set_default_mode(path)
    assert _mode(path) == mode
