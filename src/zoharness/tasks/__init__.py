"""Task registry. A task is one module exporting TASK (a tasks.base.Task)."""

from __future__ import annotations

from zoharness.registry import check_name, load_module
from zoharness.tasks.base import Task

_MODULES = {
    "sst2": "zoharness.tasks.sst2",
}


def task_ids() -> list[str]:
    return sorted(_MODULES)


def check_task(name: str) -> str:
    return check_name("task", name, task_ids())


def get_task(name: str) -> Task:
    return load_module("task", name, _MODULES).TASK
