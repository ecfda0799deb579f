"""Task registry. A task is one module exporting TASK (a tasks.base.Task).

A suite that samples several k-shot sizes (data.k_shot.k a list: MeZO's k = 16 and 512) runs each task once
per k, as the task instance `<task>@k<k>` (e.g. sst5@k16): the same Task, labelled "SST-5 (k=16)", its k read
by the split (zoharness.data). Everything else treats an instance id as a task id.
"""

from __future__ import annotations

import dataclasses
import re

from zoharness.registry import check_name, load_module
from zoharness.tasks.base import Task

# MeZO's order: its Table 1 columns (OPT), then the RoBERTa tasks of its Table 18 not among them.
_MODULES = {
    name: f"zoharness.tasks.{name}"
    for name in (
        *("sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "record", "squad", "drop"),
        *("sst5", "snli", "mnli", "trec"),
    )
}
_INSTANCE = re.compile(r"^(?P<task>[^@]+)@k(?P<k>[1-9][0-9]*)$")


def task_ids() -> list[str]:
    return list(_MODULES)


def split_task_id(name: str) -> tuple[str, int | None]:
    """(task, k) of a task instance id `<task>@k<k>`; (name, None) for a plain task id."""
    match = _INSTANCE.match(name)
    return (match["task"], int(match["k"])) if match else (name, None)


def instance_id(task: str, k: int) -> str:
    return f"{task}@k{k}"


def check_task(name: str) -> str:
    base, _ = split_task_id(name)
    if "@" in name and base == name:
        raise ValueError(f"task id {name!r}: a k-shot task instance is written <task>@k<k>, e.g. sst5@k16")
    check_name("task", base, task_ids())
    return name


def get_task(name: str) -> Task:
    base, k = split_task_id(name)
    task = load_module("task", base, _MODULES).TASK
    return task if k is None else dataclasses.replace(task, label=f"{task.label} (k={k})")
