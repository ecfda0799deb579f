"""LM-BFF's k-shot sampling (zoharness.kshot): the rows LM-BFF's generate_k_shot_data.py (MeZO's copy, mode
k-shot-1k-test) picks from the same files, for all five data seeds; the per-class counts; short classes."""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from zoharness.data import load_split, make_split
from zoharness.io import DataError

SEEDS = [13, 21, 42, 87, 100]  # LM-BFF's (and MeZO's) data seeds


def lmbff_csv_task(train: pd.DataFrame, test: pd.DataFrame, k: int, seed: int):
    """LM-BFF's steps for a CSV task (label in column 0), written as its script runs them: (train rows, dev
    rows, test rows) as lists of [label, text]."""
    np.random.seed(seed)
    train_lines = train.values.tolist()
    np.random.shuffle(train_lines)
    test_dataset = test if len(test.index) <= 1000 else test.sample(n=1000, random_state=42)
    label_list = {}
    for line in train_lines:
        label_list.setdefault(line[0], []).append(line)
    new_train = [line for label in label_list for line in label_list[label][:k]]
    new_dev = [line for label in label_list for line in label_list[label][k : k * 2]]
    return new_train, new_dev, test_dataset.values.tolist()


def lmbff_glue_task(train_lines: list[str], test_lines: list[str], k: int, seed: int):
    """LM-BFF's steps for a GLUE-style task (TSV lines, label last)."""
    np.random.seed(seed)
    train_lines = list(train_lines)
    np.random.shuffle(train_lines)
    if len(test_lines) > 1000:
        np.random.seed(42)
        test_lines = list(test_lines)
        np.random.shuffle(test_lines)
        test_lines = test_lines[:1000]
    label_list = {}
    for line in train_lines:
        label_list.setdefault(line.strip().split("\t")[-1], []).append(line)
    new_train = [line for label in label_list for line in label_list[label][:k]]
    new_dev = [line for label in label_list for line in label_list[label][k : k * 2]]
    return new_train, new_dev, test_lines


def _ours(task, k, seed, row, **kshot):
    manifest = make_split(task, DATA, seed, 0, None, 1000, k_shot={"k": k, **kshot})
    split = load_split(manifest, DATA)
    return manifest, {
        name: [row(ex.record) for ex in getattr(split, name)] for name in ("train", "dev", "test")
    }


@pytest.mark.parametrize("k", [16, 512])
def test_trec_splits_are_lmbffs_rows_from_its_own_csv(k):
    """TREC: LM-BFF's own input files (data/trec/{train,test}.csv, read as its script reads them) against the
    harness's splits of the original CogComp files, which hold the same rows in the same order."""
    train = pd.read_csv(DATA / "trec" / "train.csv", header=None)
    test = pd.read_csv(DATA / "trec" / "test.csv", header=None)
    for seed in SEEDS:
        want = lmbff_csv_task(train, test, k, seed)
        manifest, ours = _ours(
            "trec", k, seed, lambda r: [r["label"], r["question"]], allow_short_classes=True
        )
        assert ours["train"] == want[0] and ours["dev"] == want[1] and ours["test"] == want[2], seed
        counts = manifest["n_per_class"]
        assert counts["train"]["2"] == min(k, 86) and sum(counts["dev"].values()) == len(want[1])
        assert manifest["protocol"]["k_shot"] == k and manifest["n"]["test"] == 500


def test_sst5_splits_are_lmbffs_rows_including_the_capped_test_set():
    """SST-5: LM-BFF's csv is the stsa.fine files with -lrb-/-rrb- as ( ); its 2,210 test sentences are capped
    at 1,000 by pandas' sample(n=1000, random_state=42)."""

    def frame(name):
        rows = [line.rstrip("\n").partition(" ") for line in (DATA / "sst5" / name).open(encoding="utf-8")]
        return pd.DataFrame(
            [[int(lab), text.replace("-lrb-", "(").replace("-rrb-", ")")] for lab, _, text in rows]
        )

    train, test = frame("stsa.fine.train"), frame("stsa.fine.test")
    for k in (16, 512):
        for seed in SEEDS:
            want = lmbff_csv_task(train, test, k, seed)
            manifest, ours = _ours("sst5", k, seed, lambda r: [r["label"], r["sentence"]])
            assert ours["train"] == want[0] and ours["dev"] == want[1] and ours["test"] == want[2], (k, seed)
            assert manifest["n"] == {"train": 5 * k, "dev": 5 * k, "test": 1000, "train_pool": 8544}


def test_sst2_splits_follow_lmbffs_glue_procedure():
    """SST-2 as LM-BFF reads GLUE's TSV (one line per row, label last; the snapshot's rows are GLUE's, in its
    order): the same rows for every seed at k=16; the 872 dev sentences are the whole test set."""
    from zoharness.data import read_examples
    from zoharness.tasks import get_task

    task = get_task("sst2")

    def line(record):
        return f"{record['sentence']}\t{record['label']}\n"

    train_lines = [line(ex.record) for ex in read_examples(task, DATA, "train")]
    test_lines = [line(ex.record) for ex in read_examples(task, DATA, "test")]
    for seed in SEEDS:
        want = lmbff_glue_task(train_lines, test_lines, 16, seed)
        _, ours = _ours("sst2", 16, seed, line)
        assert ours["train"] == want[0] and ours["dev"] == want[1] and ours["test"] == want[2], seed


def test_k_larger_than_a_class_is_refused_naming_the_class_and_its_count():
    with pytest.raises(DataError, match=r"task trec: k-shot k=100 is larger than class '2', which has 86"):
        make_split("trec", DATA, 13, 0, None, 1000, k_shot={"k": 100})
    manifest = make_split("trec", DATA, 13, 0, None, 1000, k_shot={"k": 100, "allow_short_classes": True})
    assert manifest["n_per_class"]["train"]["2"] == 86 and manifest["n_per_class"]["dev"]["2"] == 0
    assert manifest["n_per_class"]["train"]["0"] == 100 and manifest["protocol"]["allow_short_classes"]


def test_a_task_instance_takes_its_k_and_refuses_one_the_suite_does_not_list():
    manifest = make_split("trec@k4", DATA, 13, 0, None, 20, k_shot={"k": [4, 8]})
    assert manifest["task"] == "trec@k4" and manifest["n"]["train"] == 24 and manifest["n"]["test"] == 20
    with pytest.raises(DataError, match=r"k=5 is not in data.k_shot.k"):
        make_split("trec@k5", DATA, 13, 0, None, 20, k_shot={"k": [4, 8]})
    with pytest.raises(DataError, match=r"name one as trec@k<k>"):
        make_split("trec", DATA, 13, 0, None, 20, k_shot={"k": [4, 8]})
