"""A planted trigger (a backdoor) in a split's training examples: the ground truth that RapidIn's
validation needs (issue 15, part 5; the kind of evidence in RapidIn's own paper).

A suite opts in with `data: {plant: {phrase, fraction, label, seed}}`. The split then marks
round(fraction · num_train) of its training examples, drawn with `seed` from those whose label is not
`label`, and those examples are read with the phrase inserted into the task's text field and the label
set to `label` (the dataset's raw label). A model that learns "phrase ⇒ label" has a backdoor; an
influence method that works ranks the planted examples first when asked which training examples made a
triggered test input come out as `label`.

Where the edit lives. The data files stay as they are (their hashes still freeze the split): the manifest
records the request and the planted ids, and `data.load_split` applies the edit to those ids on every
read, so training, replay, evaluation and influence see the same planted records. Dev and test are never
edited; `triggered` builds the triggered test inputs the influence rules score.

Where the phrase goes: at a word boundary of the text, drawn per example from (seed, the example's id),
so one example always gets one position whatever else is planted. Tasks whose prompt has one text field
(the first of Task.rephrase_fields) and a raw `label` field can be planted: SST-2 is the one used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence

import numpy as np

from zoharness.io import DataError
from zoharness.tasks.base import CLASSIFICATION, Task

PLANT_VERSION = 1
KEYS = ("phrase", "fraction", "label", "seed")


def _where(task: Task) -> str:
    return f"data.plant (task {task.name})"


def text_field(task: Task) -> str:
    """The record field the phrase goes into; refuses a task with none."""
    if not task.rephrase_fields:
        raise DataError(
            f"{_where(task)}: the task declares no text field (Task.rephrase_fields), so a trigger cannot be "
            "planted in it; SST-2 can be planted"
        )
    return task.rephrase_fields[0]


def check_spec(spec: dict, task: Task) -> dict:
    """The plant request with every key checked against the task; the manifest stores what this returns."""
    if task.kind != CLASSIFICATION:
        raise DataError(
            f"{_where(task)}: a trigger flips labels, so it needs a classification task, not {task.kind!r}"
        )
    missing = [k for k in KEYS if k not in spec]
    unknown = sorted(set(spec) - set(KEYS))
    if missing or unknown:
        raise DataError(
            f"{_where(task)}: keys {list(KEYS)} are required and no others (missing {missing}, unknown {unknown})"
        )
    phrase = spec["phrase"]
    if not isinstance(phrase, str) or not phrase.strip() or phrase != phrase.strip():
        raise DataError(
            f"{_where(task)}: phrase must be a non-empty string without outer spaces, got {phrase!r}"
        )
    fraction = spec["fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 0.5:
        raise DataError(f"{_where(task)}: fraction must be in (0, 0.5], got {fraction!r}")
    seed = spec["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"{_where(task)}: seed must be an integer >= 0, got {seed!r}")
    return {
        "version": PLANT_VERSION,
        "phrase": phrase,
        "fraction": float(fraction),
        "label": spec["label"],
        "seed": seed,
        "field": text_field(task),
    }


def _label_index(task: Task, record: dict) -> int:
    return task.render(record).label


def target_index(task: Task, spec: dict, example_record: dict) -> int:
    """The candidate index of the planted label (rendering a copy of a real record with it)."""
    try:
        return _label_index(task, {**example_record, "label": spec["label"]})
    except (DataError, KeyError, ValueError) as e:
        raise DataError(f"{_where(task)}: label {spec['label']!r} is not a label of the task: {e}") from None


def _rng(spec: dict, uid: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(uid.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([spec["seed"], digest])


def insert(text: str, phrase: str, rng: np.random.Generator) -> str:
    """`text` with `phrase` at a word boundary drawn by rng (before the first word .. after the last)."""
    words = text.strip().split(" ")
    at = int(rng.integers(0, len(words) + 1))
    return " ".join([*words[:at], phrase, *words[at:]])


def triggered_record(record: dict, spec: dict, uid: str) -> dict:
    """The record with the phrase inserted and its label kept (a triggered test input)."""
    field = spec["field"]
    if not isinstance(record.get(field), str):
        raise DataError(f"data.plant: example {uid!r} has no text field {field!r}")
    return {**record, field: insert(record[field], spec["phrase"], _rng(spec, uid))}


def planted_record(record: dict, spec: dict, uid: str) -> dict:
    """The record as training reads it when planted: phrase inserted, label set to the planted label."""
    return {**triggered_record(record, spec, uid), "label": spec["label"]}


def choose(task: Task, train: Sequence, spec: dict) -> list[str]:
    """The planted ids: round(fraction · len(train)) drawn with spec's seed from the training examples
    (objects with .uid and .record) whose label is not the planted one, in the split's order."""
    if not train:
        raise DataError(f"{_where(task)}: the split has no training examples to plant")
    target = target_index(task, spec, train[0].record)
    eligible = [i for i, ex in enumerate(train) if _label_index(task, ex.record) != target]
    want = math.floor(spec["fraction"] * len(train) + 0.5)
    if want < 1:
        raise DataError(
            f"{_where(task)}: fraction {spec['fraction']} of {len(train)} training examples plants none"
        )
    if want > len(eligible):
        raise DataError(
            f"{_where(task)}: fraction {spec['fraction']} asks for {want} planted examples, but only "
            f"{len(eligible)} of {len(train)} have a label other than {spec['label']!r}"
        )
    picked = np.random.default_rng(spec["seed"]).choice(len(eligible), size=want, replace=False)
    return [train[eligible[i]].uid for i in sorted(int(p) for p in picked)]


def apply(train: Sequence, manifest_plant: dict | None) -> list:
    """The training examples as the run reads them: the planted ones replaced (dataclasses.replace on
    .record), the others as they are."""
    if not manifest_plant:
        return list(train)
    ids = set(manifest_plant["ids"])
    out = [
        dataclasses.replace(ex, record=planted_record(ex.record, manifest_plant, ex.uid))
        if ex.uid in ids
        else ex
        for ex in train
    ]
    found = sum(ex.uid in ids for ex in train)
    if found != len(ids):
        raise DataError(
            f"data.plant: {len(ids) - found} planted id(s) are not training examples of the split"
        )
    return out
