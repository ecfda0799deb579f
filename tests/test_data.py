"""MeZO's sampling protocol, split manifests, and bad data files."""

import json
import shutil

import pytest

from tests.conftest import DATA
from zoharness.data import load_split, make_split, read_examples
from zoharness.io import DataError
from zoharness.tasks import get_task


def test_split_follows_the_protocol():
    m = make_split("sst2", DATA, seed=0, num_train=1000, num_dev=500, num_test=1000)
    assert m["n"] == {"train": 1000, "dev": 500, "test": 872, "train_pool": 67349}  # SST-2 validation: 872
    ids = {s: [e["id"] for e in m["splits"][s]] for s in m["splits"]}
    assert not set(ids["train"]) & set(ids["dev"])
    assert all(i.startswith("train:") for i in ids["train"] + ids["dev"])
    assert all(i.startswith("test:") for i in ids["test"])


def test_split_is_deterministic_per_seed_and_test_is_shared():
    a = make_split("sst2", DATA, seed=1, num_train=50, num_dev=20, num_test=30)
    b = make_split("sst2", DATA, seed=1, num_train=50, num_dev=20, num_test=30)
    c = make_split("sst2", DATA, seed=2, num_train=50, num_dev=20, num_test=30)
    assert a == b
    assert a["splits"]["train"] != c["splits"]["train"]
    assert a["splits"]["test"] == c["splits"]["test"]  # test sample uses a fixed seed, as MeZO


def _copy_sst2(tmp_path):
    shutil.copytree(DATA / "sst2", tmp_path / "sst2")
    return tmp_path


def test_one_character_edit_changes_the_manifest_and_is_refused(tmp_path):
    data = _copy_sst2(tmp_path)
    m = make_split("sst2", data, seed=0, num_train=20, num_dev=5, num_test=10)
    first = m["splits"]["train"][0]["id"]
    line_no = int(first.split(":")[1])  # SST-2 idx is the 0-based row
    path = data / "sst2" / "train.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    rec = json.loads(lines[line_no])
    rec["sentence"] = rec["sentence"][:-2] + "X "
    lines[line_no] = json.dumps(rec) + "\n"
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=rf"{first}.*changed on disk"):
        load_split(m, data, "manifest.json")
    m2 = make_split("sst2", data, seed=0, num_train=20, num_dev=5, num_test=10)
    assert m2["splits"]["train"][0]["sha256"] != m["splits"]["train"][0]["sha256"]
    assert m2["files"] != m["files"]


def test_malformed_line_names_file_and_line(tmp_path):
    data = _copy_sst2(tmp_path)
    path = data / "sst2" / "validation.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = '{"sentence": "oops", "label": \n'
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=r"validation.jsonl:5: malformed JSON"):
        read_examples(get_task("sst2"), data, "test")


def test_label_outside_the_label_set_is_refused(tmp_path):
    data = _copy_sst2(tmp_path)
    path = data / "sst2" / "validation.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    rec = json.loads(lines[2])
    rec["label"] = 7
    lines[2] = json.dumps(rec) + "\n"
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=r"validation.jsonl:3: .*label 7 is not one of \[0, 1\]"):
        read_examples(get_task("sst2"), data, "test")


def test_missing_data_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"sst2/train.jsonl: data file for task sst2 not found"):
        make_split("sst2", tmp_path, seed=0, num_train=10, num_dev=5, num_test=5)


def test_too_few_examples_is_a_clear_error():
    with pytest.raises(DataError, match="the train pool has 67349 examples, not enough for num_dev=70000"):
        make_split("sst2", DATA, seed=0, num_train=10, num_dev=70000, num_test=5)


def test_small_pool_takes_everything_and_keeps_num_dev():
    """MeZO: a pool smaller than num_train + num_dev is used whole; dev is the last num_dev taken."""
    m = make_split("cb", DATA, seed=0, num_train=1000, num_dev=None, num_test=1000)
    assert m["n"] == {"train": 150, "dev": 100, "test": 56, "train_pool": 250}
    assert m["protocol"]["num_dev"] == 100  # CB's own num_dev (MeZO)


def test_mezo_prompt_for_sst2():
    p = get_task("sst2").render({"sentence": "a gorgeous film ", "label": 1, "idx": 3})
    assert p.context == "a gorgeous film It was"
    assert p.candidates == (" terrible", " great") and p.label == 1
