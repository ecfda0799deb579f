"""What a task is: where its data lives, how a record becomes a prompt with candidates, its metric.

Prompts follow MeZO (Malladi et al. 2023, Table 14): a context string and a list of candidate
continuations; a candidate is scored by the mean log-likelihood of its tokens given the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zoharness.io import DataError


@dataclass(frozen=True)
class Prompt:
    context: str
    candidates: tuple[str, ...]
    label: int  # index of the correct candidate


@dataclass(frozen=True)
class Example:
    uid: str  # stable id within the task's files, e.g. "train:123"
    record: dict  # the record as read from the data file (hashed into the split manifest)


@dataclass(frozen=True)
class Task:
    name: str
    label: str  # display name
    kind: str  # "classification" (more kinds arrive with the other MeZO tasks)
    metric: str
    train_file: str  # relative to the data folder
    test_file: str  # the split MeZO samples its test set from (the public validation split)
    id_key: str
    render: Callable[[dict], Prompt]
    num_dev: int = 500  # MeZO: 500 dev examples (100 for CB and COPA)

    def example_id(self, split: str, record: dict, where: str) -> str:
        if self.id_key not in record:
            raise DataError(f"{where}: record has no id field {self.id_key!r}")
        return f"{split}:{record[self.id_key]}"

    def prompt(self, example: Example) -> Prompt:
        return self.render(example.record)


def label_index(value, mapping: dict, where: str) -> int:
    """Map a file's label value to a candidate index, refusing values outside the label set."""
    try:
        return mapping[value]
    except (KeyError, TypeError):
        raise DataError(f"{where}: label {value!r} is not one of {sorted(mapping, key=str)}") from None
