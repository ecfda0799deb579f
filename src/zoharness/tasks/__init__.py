"""Task registry. A task is one module exporting TASK (a tasks.base.Task)."""

from __future__ import annotations

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


def task_ids() -> list[str]:
    return list(_MODULES)


def check_task(name: str) -> str:
    return check_name("task", name, task_ids())


def get_task(name: str) -> Task:
    return load_module("task", name, _MODULES).TASK
