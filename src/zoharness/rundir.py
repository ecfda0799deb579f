"""A run directory while it trains: its lock, its per-process segments, and the atomic copy of its log.

.inprogress/ holds the in-progress log (not a Snakemake output, so a failed or killed job's log survives
Snakemake's cleanup), the trainer's lock (one live trainer per run directory: a second one fails at once,
naming the first's pid and host) and segments.json, the wall time and memory of each process that
trained part of the run, updated after every step so a killed process's figures survive it.

Torch-free: nothing here knows what is trained.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from zoharness.io import DataError, atomic_open, dumps

INPROGRESS = ".inprogress"
LOG = "train_log.jsonl"  # in INPROGRESS while training, copied to the run directory when complete
LOCK = "trainer.lock"  # in INPROGRESS: {"pid", "host", "started"} of the live trainer
SEGMENTS = "segments.json"  # in INPROGRESS: one record per process that trained part of the run
WEIGHTS_DIR = "weights"  # the run's saved weights (train.save_weights; influence.explain loads them)


class RunLockedError(DataError):
    """Another trainer, still alive, holds the run directory (Snakemake was killed, its child was not)."""


def _holder(fd: int) -> dict:
    """The lock holder's record; it is written just after the lock is taken, so wait a moment for it."""
    for _ in range(20):
        try:
            return json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            time.sleep(0.05)
    return {}


def _logged_steps(log_path: Path) -> int | None:
    try:
        return max(log_path.read_bytes().count(b"\n") - 1, 0)  # minus the header line
    except OSError:
        return None


def lock_run(out_dir: Path) -> int:
    """Take the run directory's exclusive lock for this process's lifetime (flock: released when the
    process dies, however it dies) and return its file descriptor. If another trainer holds it, raise
    RunLockedError at once without writing anything. Close the descriptor to release it."""
    work = out_dir / INPROGRESS
    path = work / LOCK
    while True:
        work.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                os.close(fd)
                raise
            holder = _holder(fd)
            os.close(fd)
            steps = _logged_steps(work / LOG)
            raise RunLockedError(
                f"{out_dir}: another trainer is running this run: pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')} (started {holder.get('started', '?')}), its log at step "
                f"{'?' if steps is None else steps}. Wait for it, or stop it and rerun; lock file {path}"
            ) from None
        # A trainer that just finished removes .inprogress/; if it did so between our open and our
        # lock, we hold a deleted file: open the path again.
        try:
            st, now = os.fstat(fd), os.stat(path)
            if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    os.pwrite(fd, dumps(holder).encode("utf-8"), 0)
    return fd


def unlock_run(out_dir: Path, fd: int) -> None:
    """Release the lock; a trainer that failed before writing its log leaves no .inprogress/ behind (a
    completed run has removed it already)."""
    work = out_dir / INPROGRESS
    if work.is_dir() and not (work / LOG).exists():
        (work / LOCK).unlink(missing_ok=True)  # while still held: see the inode check in lock_run
        with contextlib.suppress(OSError):
            work.rmdir()
    os.close(fd)


def read_segments(path: Path, header_sha: str, steps: int) -> list[dict]:
    """Earlier processes' segments of the in-progress log with this header, for the steps it kept."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("header_sha256") != header_sha:
        return []
    return [s for s in data.get("segments", []) if s.get("first_step", steps) < steps]


def write_segments(path: Path, header_sha: str, segments: list[dict]) -> None:
    """Replace the segments file (rename; no fsync: it is as durable as the log it describes)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(dumps({"header_sha256": header_sha, "segments": segments}))
    os.replace(tmp, path)


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy src to dst byte for byte; dst is whole or absent (io.atomic_open), with the umask's mode,
    which is src's too (the in-progress log is created by write_text_atomic)."""
    with atomic_open(dst, "wb") as f, src.open("rb") as g:
        shutil.copyfileobj(g, f)
