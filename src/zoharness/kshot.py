"""k-shot sampling as LM-BFF's `tools/generate_k_shot_data.py` does it (MeZO's copy, medium_models/tools,
mode `k-shot-1k-test`), the protocol of MeZO's RoBERTa-large experiments (Table 18, Figure 2).

Per seed: `np.random.seed(seed)`, the train rows shuffled with `np.random.shuffle`; the rows grouped by label
in the order each label first appears in the shuffled rows; train = the first k rows of each group, dev = the
next k (so dev is k per class too, fewer where a class has fewer than 2k rows). The test set is the task's
test file, capped at 1,000 rows: LM-BFF's CSV tasks (SST-5, TREC) keep `DataFrame.sample(n=1000,
random_state=42)`, its GLUE tasks (SST-2, SNLI, MNLI, RTE) the first 1,000 after `np.random.seed(42)` and a
shuffle; a test file of at most 1,000 rows is kept whole, in file order.

Only indices are shuffled here: numpy's legacy shuffle swaps the same positions whatever the list holds, so
the rows chosen are LM-BFF's (tests/test_kshot.py runs LM-BFF's steps on the shared files and compares).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from zoharness.io import DataError

TEST_CAP_SEED = 42
SAMPLER = (
    "LM-BFF generate_k_shot_data.py (MeZO medium_models, k-shot-1k-test): np.random.seed(seed) + shuffle of the "
    "train rows; per label, in first-appearance order, the first k rows train and the next k dev; test capped "
    "at num_test (csv tasks: DataFrame.sample(n, random_state=42); glue tasks: np.random.seed(42), shuffle, first n)"
)


def shuffled(n: int, seed: int) -> list[int]:
    """Row indices in the order `np.random.seed(seed); np.random.shuffle(rows)` leaves n rows."""
    order = list(range(n))
    np.random.RandomState(seed).shuffle(order)
    return order


def sample(
    labels: Sequence[Hashable], k: int, seed: int, allow_short_classes: bool = False, task: str = "?"
) -> tuple[list[int], list[int], dict[str, dict[str, int]]]:
    """(train row indices, dev row indices, per-class counts {"train": {label: n}, "dev": {...}}) for the
    train pool's labels. A class with fewer than k rows is refused (naming it and its count) unless
    `allow_short_classes`, LM-BFF's behaviour (it takes what there is: TREC's ABBR has 86 rows at k=512)."""
    if k < 1:
        raise DataError(f"task {task}: k-shot k={k} must be at least 1")
    groups: dict[Hashable, list[int]] = {}
    for i in shuffled(len(labels), seed):
        groups.setdefault(labels[i], []).append(i)
    short = {label: len(rows) for label, rows in groups.items() if len(rows) < k}
    if short and not allow_short_classes:
        smallest = min(short, key=lambda label: (short[label], str(label)))
        raise DataError(
            f"task {task}: k-shot k={k} is larger than class {smallest!r}, which has {short[smallest]} training "
            f"example(s) (short classes: {', '.join(f'{lab!r}: {n}' for lab, n in short.items())}). Lower k, or "
            "set data.k_shot.allow_short_classes: true to take what there is, as LM-BFF's script does"
        )
    train = [i for rows in groups.values() for i in rows[:k]]
    dev = [i for rows in groups.values() for i in rows[k : 2 * k]]
    counts = {
        "train": {str(label): len(rows[:k]) for label, rows in groups.items()},
        "dev": {str(label): len(rows[k : 2 * k]) for label, rows in groups.items()},
    }
    return train, dev, counts


def test_rows(n: int, cap: int, kshot_format: str) -> list[int]:
    """The test file's rows LM-BFF keeps (module docstring), in its order."""
    if n <= cap:
        return list(range(n))
    if kshot_format == "csv":
        import pandas as pd

        return pd.RangeIndex(n).to_series().sample(n=cap, random_state=TEST_CAP_SEED).tolist()
    return shuffled(n, TEST_CAP_SEED)[:cap]
