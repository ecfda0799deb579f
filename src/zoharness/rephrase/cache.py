"""Every chat response on disk, keyed by a hash of (model, messages, sampling parameters, prompt version).

One append-only JSONL file per (rewriter, task): `resources/rephrase-cache/<rewriter>/<task>.jsonl`.
A line is written whole (one write, flushed and fsynced, under an exclusive lock, so concurrent jobs
of the same rewriter can share the file); a torn last line from a killed process is ignored on read,
so a crash loses at most the response being written and a rerun resumes from everything before it.
Commit the file and anyone can replay the rephrasing offline: a hit never touches the network.
Failures (endpoint down, retries exhausted) are never cached; malformed replies are (they are what
the model said, and replaying them keeps reruns identical).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import threading
from pathlib import Path


def request_key(model: str, messages: list[dict], params: dict, prompt_version: str) -> str:
    blob = json.dumps(
        {"model": model, "messages": messages, "params": params, "prompt_version": prompt_version},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        for line in self.path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line (killed mid-write): that response is simply asked again
            if isinstance(entry, dict) and "key" in entry and "response" in entry:
                self._entries.setdefault(entry["key"], entry)  # the first answer wins, as in put()

    def __len__(self) -> int:
        return len(self._entries)

    def created_range(self) -> tuple[str | None, str | None]:
        """Dates of the oldest and newest entries (UTC), for the cache's provenance."""
        created = sorted(e.get("created", "") for e in self._entries.values())
        return (created[0], created[-1]) if created else (None, None)

    def get(self, key: str) -> dict | None:
        entry = self._entries.get(key)
        return entry["response"] if entry else None

    def put(self, key: str, response: dict, meta: dict) -> dict:
        """Store a response; returns the response to use. When two threads asked the same request at
        once (duplicate examples), the first answer stored wins for both, now and on every replay."""
        entry = {
            "key": key,
            **meta,
            "response": response,
            "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        line = (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode()
        with self._lock:
            if key in self._entries:
                return self._entries[key]["response"]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask decides
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # A torn line left by a killed writer would swallow this one: start on a fresh line.
                size = os.fstat(fd).st_size
                if size:
                    with open(self.path, "rb") as f:
                        f.seek(size - 1)
                        if f.read(1) != b"\n":
                            line = b"\n" + line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._entries[key] = entry
            return response
