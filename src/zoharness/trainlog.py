"""The train log (train_log.jsonl): a header line {"header": {...}}, then one JSON line per step.

Torch-free, below the training loop: tables and figures read logs without importing torch or train.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from zoharness.io import DataError

# A step record's timing fields: they differ between two runs of the same trajectory, nothing else may.
TIMING_FIELDS = ("elapsed_s", "phases_s")


def without_timings(record: dict) -> dict:
    """The record minus its timings: what must be bit-identical between a run, its resume and its replay."""
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}


def read_log(path: Path) -> tuple[dict | None, list[dict]]:
    """Header and step records of a log that may be in progress: a torn last line (the writer was killed
    mid-write) is dropped, and so is everything from the first line that does not parse. (None, []) when
    there is no file or no header line."""
    if not path.exists():
        return None, []
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # no trailing newline: the last write was interrupted
    parsed = []
    for line in lines:
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                break
    if not parsed or "header" not in parsed[0]:
        return None, []
    return parsed[0]["header"], parsed[1:]


def read_train_log(path: str | Path) -> tuple[dict, list[dict]]:
    """(header, step records) of a run's log; DataError when the file has no header line."""
    header, records = read_log(Path(path))
    if header is None:
        raise DataError(f"{path}: not a train log (no header line)")
    return header, records
