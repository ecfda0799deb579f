"""MeZO's sampling protocol and split manifests.

From the task's train file a seeded permutation takes num_train train + num_dev dev examples; the test
set is up to num_test examples of the public validation split, sampled with a fixed seed (0) so every
training seed is scored on the same test examples (MeZO's run.py samples its eval set with seed 0).
The manifest lists every example's id and the sha256 of its record, so a rerun on changed data fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoharness.io import DataError, iter_jsonl, sha256_file, sha256_json
from zoharness.tasks import get_task
from zoharness.tasks.base import Example, Task

MANIFEST_VERSION = 1
TEST_SAMPLE_SEED = 0


def read_examples(task: Task, data_dir: str | Path, which: str) -> list[Example]:
    """Read one of the task's files; every record is validated by rendering its prompt."""
    rel = task.train_file if which == "train" else task.test_file
    path = Path(data_dir) / rel
    examples, seen = [], set()
    for lineno, record in iter_jsonl(path):
        where = f"{path}:{lineno}"
        uid = task.example_id(which, record, where)
        if uid in seen:
            raise DataError(f"{where}: duplicate example id {uid!r}")
        seen.add(uid)
        try:
            task.render(record)
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
        except KeyError as e:
            raise DataError(
                f"{where}: record lacks field {e.args[0]!r} required by task {task.name}"
            ) from None
        examples.append(Example(uid=uid, record=record))
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def _entries(examples: list[Example]) -> list[dict]:
    return [{"id": ex.uid, "sha256": sha256_json(ex.record)} for ex in examples]


def make_split(
    task_name: str, data_dir: str | Path, seed: int, num_train: int, num_dev: int | None, num_test: int
) -> dict:
    task = get_task(task_name)
    num_dev = task.num_dev if num_dev is None else num_dev
    train_pool = read_examples(task, data_dir, "train")
    test_pool = read_examples(task, data_dir, "test")
    need = num_train + num_dev
    if need > len(train_pool):
        raise DataError(
            f"{Path(data_dir) / task.train_file}: task {task_name} needs num_train + num_dev = {need} examples, "
            f"the file has {len(train_pool)}"
        )
    order = np.random.default_rng(seed).permutation(len(train_pool))
    train = [train_pool[i] for i in order[:num_train]]
    dev = [train_pool[i] for i in order[num_train:need]]
    n_test = min(num_test, len(test_pool))
    test_order = np.random.default_rng(TEST_SAMPLE_SEED).permutation(len(test_pool))[:n_test]
    test = [test_pool[i] for i in sorted(test_order)]
    files = {rel: sha256_file(Path(data_dir) / rel) for rel in (task.train_file, task.test_file)}
    return {
        "manifest_version": MANIFEST_VERSION,
        "task": task_name,
        "seed": seed,
        "protocol": {
            "num_train": num_train,
            "num_dev": num_dev,
            "num_test": num_test,
            "test_sample_seed": TEST_SAMPLE_SEED,
            "sampler": "numpy.random.default_rng(seed).permutation",
        },
        "files": files,
        "n": {"train": len(train), "dev": len(dev), "test": len(test)},
        "splits": {"train": _entries(train), "dev": _entries(dev), "test": _entries(test)},
    }


@dataclass(frozen=True)
class Split:
    train: list[Example]
    dev: list[Example]
    test: list[Example]


def load_split(manifest: dict, data_dir: str | Path, manifest_path: str = "split manifest") -> Split:
    """Rebuild the split from the data files, refusing any example whose content changed."""
    task = get_task(manifest["task"])
    pools = {"train": read_examples(task, data_dir, "train"), "test": read_examples(task, data_dir, "test")}
    by_id = {ex.uid: ex for pool in pools.values() for ex in pool}
    out = {}
    for split, entries in manifest["splits"].items():
        examples = []
        for entry in entries:
            ex = by_id.get(entry["id"])
            if ex is None:
                raise DataError(
                    f"{manifest_path}: example {entry['id']!r} ({split}) is missing from {data_dir}"
                )
            if sha256_json(ex.record) != entry["sha256"]:
                raise DataError(
                    f"{manifest_path}: example {entry['id']!r} ({split}) changed on disk under {data_dir}; "
                    "the data no longer matches the split manifest (delete the manifest to resample on purpose)"
                )
            examples.append(ex)
        out[split] = examples
    return Split(**out)
