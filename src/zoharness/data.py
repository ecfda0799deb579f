"""MeZO's sampling protocol, the two data sources, and split manifests.

Protocol (MeZO's run.py): from the task's train pool a permutation seeded by the run seed takes
num_train + num_dev examples (all of them when the pool is smaller); the last num_dev are dev, the
rest train. The test set is up to num_test examples of the public validation split, sampled with a
fixed seed (0) so every training seed is scored on the same test examples.

Sources: "offline" reads the bundled snapshot (data/, see data/README.md); "online" reads the Hugging
Face datasets MeZO names, materialised once as jsonl in the same record schema (`fetch_online`).
Where the snapshot lacks a split, the task's OfflineLayout says what is done instead (or that the task
needs the online source). The manifest lists every example's id and the sha256 of its record, so a
run on changed data fails instead of silently training on something else.

A written manifest is frozen: a split is never resampled from changed data unless the user says so.
`refuse_changed_split` refuses a new manifest with the same request (task, seed, source, protocol,
manifest version) as the frozen one but other content (an example's record, the chosen ids, a data
file's sha256), naming the files and examples, unless ZOHARNESS_ACCEPT_DATA_CHANGES=1 is set (or
`zoharness split --accept-data-changes`). A different request (num_train changed, say) is a resample
by design and passes. The workflow runs `check_frozen_split` while it builds its job graph, so an edit
stops the run before any job starts and leaves every file as it was (split_inputs, rules/common.smk).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from zoharness import kshot
from zoharness import plant as plant_mod
from zoharness.io import (
    DataError,
    dumps,
    read_json,
    sha256_file,
    sha256_json,
    write_json_atomic,
    write_text_atomic,
)
from zoharness.tasks import get_task, split_task_id
from zoharness.tasks.base import Example, Task

MANIFEST_VERSION = 2
TEST_SAMPLE_SEED = 0
ACCEPT_ENV = "ZOHARNESS_ACCEPT_DATA_CHANGES"
SOURCES = ("offline", "online")
ONLINE_HELP = (
    "set `data: {source: online}` in the suite config (it needs network access to the Hugging Face hub; "
    "the rows are saved under data.online_dir, so later runs are offline)"
)


class DataUnavailableError(DataError):
    pass


class DataChangedError(DataError):
    """The data no longer match a frozen split manifest."""


def data_dir(data_cfg: dict) -> str:
    """The folder a suite's data files are read from."""
    return data_cfg["dir"] if data_cfg.get("source", "offline") == "offline" else data_cfg["online_dir"]


def pool_layout(task: Task, source: str) -> str:
    """ "train+validation" or "validation"; refuses a task that the source cannot provide."""
    if source not in SOURCES:
        raise DataError(f"data source {source!r} is not one of {SOURCES}")
    if source == "online":
        return "train+validation"
    if task.offline.pools is None:
        raise DataUnavailableError(
            f"task {task.name} is not available offline: {task.offline.reason}. To run it, {ONLINE_HELP}."
        )
    return task.offline.pools


def source_files(task: Task, source: str) -> list[str]:
    """The task's data files (relative to the data folder) that a split reads from this source."""
    if pool_layout(task, source) == "validation":
        return [task.file("test", source)]
    return [task.file("train", source), task.file("test", source)]


def read_examples(task: Task, data_dir: str | Path, which: str, source: str = "offline") -> list[Example]:
    """Read one of the task's files ("train" or "test": Task.file), flattened to HF's record schema; every
    record is validated by rendering its prompt."""
    path = Path(data_dir) / task.file(which, source)
    examples, seen = [], set()
    for lineno, line in task.read(path):
        where = f"{path}:{lineno}"
        try:
            # Online files hold records already in the flat schema (fetch_online writes normalise_hf's rows).
            records = task.flatten(line) if source == "offline" else [line]
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
        for record in records:
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


def _group(task: Task, ex: Example):
    return dumps(ex.record[task.group_key]) if task.group_key else ex.uid


def _check_files(task: Task, data_dir: str | Path, source: str) -> list[str]:
    """The split's data files (relative), refusing a missing one with what to do about it."""
    files = source_files(task, source)
    for rel in files:
        if not (Path(data_dir) / rel).exists():
            hint = (
                ONLINE_HELP if source == "offline" else "run the fetch_data rule (or `zoharness fetch-data`)"
            )
            raise DataUnavailableError(
                f"{Path(data_dir) / rel}: data file for task {task.name} not found; {hint}"
            )
    return files


def make_split(
    task_name: str,
    data_dir: str | Path,
    seed: int,
    num_train: int,
    num_dev: int | None,
    num_test: int,
    source: str = "offline",
    plant: dict | None = None,
    k_shot: dict | None = None,
) -> dict:
    """MeZO's sampling protocol for one (task, seed); with `plant` (zoharness.plant) a trigger is also
    planted in the training examples: the request goes into the manifest as "plant", the chosen ids as
    "planted". With `k_shot` ({k, allow_short_classes}) the split is LM-BFF's k-shot one instead
    (zoharness.kshot; num_train and num_dev are then unused)."""
    task = get_task(task_name)
    _, instance_k = split_task_id(task_name)
    if instance_k is not None or k_shot is not None:
        ks = (k_shot or {}).get("k")
        if instance_k is None and isinstance(ks, list):
            raise DataError(f"task {task_name}: data.k_shot.k lists {ks}; name one as {task_name}@k<k>")
        if instance_k is not None and instance_k not in (ks if isinstance(ks, list) else [ks]):
            raise DataError(f"task instance {task_name}: k={instance_k} is not in data.k_shot.k ({ks})")
        request = {**k_shot, "k": instance_k if instance_k is not None else ks}
        return _make_k_shot_split(task_name, task, data_dir, seed, num_test, source, request, plant)
    layout = pool_layout(task, source)
    num_dev = task.num_dev if num_dev is None else num_dev
    files = _check_files(task, data_dir, source)

    test_pool = read_examples(task, data_dir, "test", source)
    n_test = min(num_test, len(test_pool))
    test_idx = sorted(np.random.default_rng(TEST_SAMPLE_SEED).permutation(len(test_pool))[:n_test])
    test = [test_pool[i] for i in test_idx]
    if layout == "validation":
        # Train/dev from what the test sample left, never sharing a passage/context with it.
        taken = {_group(task, ex) for ex in test}
        chosen = set(test_idx)
        train_pool = [
            ex for i, ex in enumerate(test_pool) if i not in chosen and _group(task, ex) not in taken
        ]
    else:
        train_pool = read_examples(task, data_dir, "train", source)

    take = min(num_train + num_dev, len(train_pool))
    if take <= num_dev:
        raise DataError(
            f"task {task_name}: the train pool has {len(train_pool)} examples, not enough for num_dev={num_dev} "
            "dev examples and at least one train example"
        )
    order = np.random.default_rng(seed).permutation(len(train_pool))[:take]
    train = [train_pool[i] for i in order[: take - num_dev]]
    dev = [train_pool[i] for i in order[take - num_dev : take]]
    planting = {}
    if plant is not None:
        spec = plant_mod.check_spec(plant, task)
        planting = {"plant": spec, "planted": plant_mod.choose(task, train, spec)}
    return {
        "manifest_version": MANIFEST_VERSION,
        "task": task_name,
        "seed": seed,
        "source": source,
        "pools": layout,
        "deviation": task.offline.reason if source == "offline" and layout != "train+validation" else None,
        "protocol": {
            "num_train": num_train,
            "num_dev": num_dev,
            "num_test": num_test,
            "test_sample_seed": TEST_SAMPLE_SEED,
            "sampler": "numpy.random.default_rng(seed).permutation; dev = the last num_dev taken",
        },
        "files": {rel: sha256_file(Path(data_dir) / rel) for rel in files},
        "n": {"train": len(train), "dev": len(dev), "test": len(test), "train_pool": len(train_pool)},
        "splits": {"train": _entries(train), "dev": _entries(dev), "test": _entries(test)},
        **planting,
    }


def _make_k_shot_split(
    task_name: str,
    task: Task,
    data_dir,
    seed: int,
    num_test: int,
    source: str,
    k_shot: dict,
    plant: dict | None,
) -> dict:
    """LM-BFF's k-shot split (zoharness.kshot): k per class for train and dev, the capped test file."""
    if plant is not None:
        raise DataError(f"task {task.name}: data.plant and data.k_shot cannot be combined")
    if pool_layout(task, source) != "train+validation":
        raise DataError(f"task {task.name}: k-shot sampling needs a train file, which this source lacks")
    files = _check_files(task, data_dir, source)
    k, allow_short = int(k_shot["k"]), bool(k_shot.get("allow_short_classes", False))
    train_pool = read_examples(task, data_dir, "train", source)
    labels = [dumps(ex.record.get("label")) for ex in train_pool]
    train_idx, dev_idx, counts = kshot.sample(labels, k, seed, allow_short, task.name)
    test_pool = read_examples(task, data_dir, "test", source)
    test = [test_pool[i] for i in kshot.test_rows(len(test_pool), num_test, task.kshot_format)]
    return {
        "manifest_version": MANIFEST_VERSION,
        "task": task_name,
        "seed": seed,
        "source": source,
        "pools": "train+validation",
        "deviation": None,
        "protocol": {
            "k_shot": k,
            "allow_short_classes": allow_short,
            "num_test": num_test,
            "test_sample_seed": kshot.TEST_CAP_SEED,
            "sampler": kshot.SAMPLER,
        },
        "files": {rel: sha256_file(Path(data_dir) / rel) for rel in files},
        "n": {"train": len(train_idx), "dev": len(dev_idx), "test": len(test), "train_pool": len(train_pool)},
        # per class (the label as JSON: "0", "\"entailment\""), in LM-BFF's class order
        "n_per_class": counts,
        "splits": {
            "train": _entries([train_pool[i] for i in train_idx]),
            "dev": _entries([train_pool[i] for i in dev_idx]),
            "test": _entries(test),
        },
    }


def accepting_data_changes() -> bool:
    """Whether the user accepts data changes that alter frozen splits (ACCEPT_ENV set, not "0")."""
    return os.environ.get(ACCEPT_ENV, "") not in ("", "0")


def _request(manifest: dict) -> dict:
    """What a manifest was sampled for: everything but what the data decide (files, counts, examples)."""
    return {k: v for k, v in manifest.items() if k not in ("files", "n", "n_per_class", "splits", "planted")}


def _changed_examples(old: dict, new: dict) -> list[str]:
    """Ids (with their split) that were added, dropped, moved or whose record changed, old order first."""

    def entries(m):
        return {e["id"]: (split, e["sha256"]) for split, es in m["splits"].items() for e in es}

    o, n = entries(old), entries(new)
    return [
        f"{uid!r} ({(o.get(uid) or n[uid])[0]})"
        for uid in [*o, *(u for u in n if u not in o)]
        if o.get(uid) != n.get(uid)
    ]


def split_change(old: dict, new: dict, manifest_path, data_dir) -> str | None:
    """What changed when `new`, sampled from the data now, differs from the frozen `old` with the same
    request (task, seed, source, protocol, manifest version); None when they are equal or the request
    differs (a resample by design)."""
    if old == new or _request(old) != _request(new):
        return None
    files = sorted(
        str(Path(data_dir) / rel)
        for rel in {**old["files"], **new["files"]}
        if old["files"].get(rel) != new["files"].get(rel)
    )
    ids = _changed_examples(old, new)
    if ids:
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        examples = f"{len(ids)} example(s) of the split changed: {', '.join(ids[:10])}{more}"
    else:
        total = sum(len(es) for es in old["splits"].values())
        examples = (
            f"none of the split's {total} examples changed, but the manifest records each data file's "
            "sha256, so the split would differ"
        )
    return (
        f"{manifest_path}: task {old['task']}, seed {old['seed']}: the data changed since this split was "
        f"frozen\n  changed data file(s): {', '.join(files) or 'none'}\n  {examples}"
    )


def refuse_changed_split(old: dict, new: dict, manifest_path, data_dir, accept: bool = False) -> str | None:
    """Raise DataChangedError when `new` may not replace the frozen `old` (see split_change), unless
    `accept`; returns the change that was accepted, or None when there was none."""
    change = split_change(old, new, manifest_path, data_dir)
    if change and not accept:
        raise DataChangedError(
            f"{change}\nRefusing to resample the split silently. To keep it, revert the data. To accept "
            f"the change (a new split: every run that uses it is redone), rerun with {ACCEPT_ENV}=1 in "
            f"the environment (e.g. `{ACCEPT_ENV}=1 snakemake ...`; `zoharness split` also takes "
            "--accept-data-changes)."
        )
    return change


@cache
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def check_frozen_split(
    manifest_path: str | Path,
    data_dir: str | Path,
    task_name: str,
    seed: int,
    num_train: int,
    num_dev: int | None,
    num_test: int,
    source: str = "offline",
    accept: bool = False,
    plant: dict | None = None,
    k_shot: dict | None = None,
) -> str | None:
    """refuse_changed_split for an existing manifest and the data now, without writing anything.
    Cheap when nothing changed: it hashes the data files (once per process) and resamples only on a
    mismatch. No manifest, or a data file not there yet (not fetched), leaves nothing to check."""
    path = Path(manifest_path)
    if not path.exists():
        return None
    old = read_json(path)
    recorded = old.get("files") or {}
    paths = {rel: Path(data_dir) / rel for rel in recorded}
    if not all(p.is_file() for p in paths.values()):
        return None
    stats = {rel: p.stat() for rel, p in paths.items()}
    if all(
        _sha256_of(str(p), stats[rel].st_size, stats[rel].st_mtime_ns) == recorded[rel]
        for rel, p in paths.items()
    ):
        return None
    new = make_split(task_name, data_dir, seed, num_train, num_dev, num_test, source, plant, k_shot)
    return refuse_changed_split(old, new, manifest_path, data_dir, accept)


@dataclass(frozen=True)
class Split:
    train: list[Example]
    dev: list[Example]
    test: list[Example]


def load_split(manifest: dict, data_dir: str | Path, manifest_path: str = "split manifest") -> Split:
    """Rebuild the split from the data files, refusing any example whose content changed."""
    task = get_task(manifest["task"])
    source = manifest.get("source", "offline")
    which = {task.file("train", source): "train", task.file("test", source): "test"}
    by_id = {
        ex.uid: ex for rel in manifest["files"] for ex in read_examples(task, data_dir, which[rel], source)
    }
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
    if manifest.get("plant") and "train" in out:  # a planted trigger (zoharness.plant): edited records
        out["train"] = plant_mod.apply(out["train"], {**manifest["plant"], "ids": manifest["planted"]})
    return Split(**out)


def fetch_online(task_name: str, out_dir: str | Path, hf_dataset: str | None = None) -> dict:
    """Download the task's HF dataset (Task.hf_dataset; `hf_dataset` "path[:config]" overrides) and write its
    train and test pools (Task.hf_splits: train and validation unless the task says otherwise) as
    <out_dir>/<task>/<split>.jsonl in the offline record schema, plus source.json."""
    task = get_task(task_name)
    path, config = task.hf_dataset
    if hf_dataset:
        path, _, config = hf_dataset.partition(":")
        config = config or None
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a pinned requirement
        raise DataUnavailableError(f"the online source needs the `datasets` package ({e})") from None
    out = Path(out_dir) / task_name
    written = {}
    for which, split in zip(("train", "test"), task.hf_splits, strict=True):
        rel = task.file(which, "online")
        try:
            rows = datasets.load_dataset(path, config, split=split)
        except Exception as e:  # noqa: BLE001 - any hub/network failure gets the same clear message
            raise DataUnavailableError(
                f"task {task_name}: could not load Hugging Face dataset {path!r} (config {config!r}, "
                f"split {split!r}): {type(e).__name__}: {e}. Check network access, or point "
                f'data.hf_datasets.{task_name} at another copy ("path[:config]")'
            ) from None
        # A normaliser returns None for a row the task does not use (SNLI's rows without a gold label).
        records = [task.normalise_hf(dict(row), i) for i, row in enumerate(rows)]
        lines = [dumps(r) + "\n" for r in records if r is not None]
        write_text_atomic(Path(out_dir) / rel, "".join(lines))
        written[rel] = {
            "hf_split": split,
            "rows": len(lines),
            "dropped": len(records) - len(lines),
            "sha256": sha256_file(Path(out_dir) / rel),
        }
    info = {
        "task": task_name,
        "hf_dataset": path,
        "hf_config": config,
        "files": written,
        "datasets_version": datasets.__version__,
    }
    write_json_atomic(out / "source.json", info)
    return info
