"""Atomic, deterministic file I/O shared by every step.

Every JSON artifact is written to a temporary file in the same folder and renamed into place, so a
reader never sees half a file and a killed job leaves either the old file or none. The file gets the
mode open() would give it (0o666 & ~umask), not mkstemp's 0600: see set_default_mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The layout of run artifacts (run_config.json, metrics.json, train_log.jsonl's header). 2: a suite's
# entry is a *variant* ("variant": its name) of a *method* ("method": the algorithm's id); format 1 (no
# key) called the variant "method" and the algorithm "method_id".
ARTIFACT_FORMAT = 2


class ArtifactFormatError(ValueError):
    """A run artifact written by an older harness, in a layout this one no longer reads."""


def check_artifact_format(obj: dict, path) -> dict:
    """`obj` (a run_config, metrics or log header) if it is in the current layout; else a clear error."""
    found = obj.get("artifact_format", 1) if isinstance(obj, dict) else None
    if found != ARTIFACT_FORMAT:
        raise ArtifactFormatError(
            f"{path}: run artifact in format {found}, this harness reads format {ARTIFACT_FORMAT} (format 1 "
            "named the variant 'method' and the method 'method_id'); rerun its suite to rewrite it"
        )
    return obj


class BackendUnavailableError(RuntimeError):
    """A required compute backend (bitsandbytes, a device) is missing or cannot run here."""


class DataError(ValueError):
    """Bad input data: the message names the file (and line or key)."""


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _umask_from_proc() -> int | None:
    """The process's umask from /proc/self/status (Linux >= 4.7), or None where that line is missing."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    # os.umask can only be read by setting it: set-and-restore is a race with any other thread that
    # creates a file in between, so it is done once, here, while the module is imported (under the
    # import lock, before a job starts its worker threads), and only where /proc cannot tell.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# /proc/self/status is read on every write (cheap, thread-safe, and it follows a later os.umask() of
# the job); the value read at import is the fallback off Linux.
_IMPORT_UMASK = _umask_from_proc()
if _IMPORT_UMASK is None:
    _IMPORT_UMASK = _umask_at_import()


def current_umask() -> int:
    mask = _umask_from_proc()
    return _IMPORT_UMASK if mask is None else mask


def set_default_mode(target: int | str | os.PathLike) -> None:
    """Give a file written through a temporary file (mkstemp creates them 0600 whatever the umask) the
    mode a plain open() would have given it, 0o666 & ~umask, so the group on a shared filesystem can read
    the artifacts. `target` is an open file descriptor or a path; call it before the rename into place."""
    mode = 0o666 & ~current_umask()
    if isinstance(target, int):
        os.fchmod(target, mode)
    else:
        os.chmod(target, mode)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w"):
    """A file opened for writing that appears at `path` whole or not at all: written to a temporary file
    in the same folder, given the umask's mode, fsynced, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            set_default_mode(f.fileno())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(
        path, json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    )


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, record); a malformed line raises DataError naming file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: data file not found")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def read_safetensors_json(path: str | os.PathLike, key: str, what: str) -> dict:
    """The JSON object stored as metadata entry `key` of a safetensors file (the influence caches and
    scores keep their whole header there); errors name the file. `what` says what the file should be."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise DataError(f"{path}: not a readable safetensors file ({e})") from None
    if key not in metadata:
        raise DataError(f"{path}: no {key!r} metadata; not {what}")
    try:
        obj = json.loads(metadata[key])
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: metadata {key!r} is not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: metadata {key!r} is a {type(obj).__name__}, expected an object")
    return obj


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_bytes(dumps(obj).encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def progress(iterable, desc: str):
    """A progress bar on stderr (into the job's log): every second on a terminal, every 30 s in a log file."""
    import sys

    from tqdm import tqdm

    return tqdm(iterable, desc=desc, file=sys.stderr, mininterval=1 if sys.stderr.isatty() else 30)
