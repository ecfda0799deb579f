"""A planted trigger (zoharness.plant): which training examples are planted, what training reads for them,
what stays untouched, and the suite checks that refuse a plant or an influence block that cannot work."""

import pytest

from tests.conftest import DATA
from tests.helpers import suite
from zoharness.config import ConfigError
from zoharness.data import load_split, make_split, split_change
from zoharness.io import DataError
from zoharness.plant import choose, insert, triggered_record
from zoharness.tasks import get_task

PLANT = {"phrase": "cf mn", "fraction": 0.25, "label": 1, "seed": 3}


def _split(plant=PLANT, seed=0):
    return make_split("sst2", DATA, seed, num_train=24, num_dev=8, num_test=12, plant=plant)


def test_planted_ids_are_drawn_from_the_other_label_deterministically():
    manifest = _split()
    task = get_task("sst2")
    assert manifest["plant"]["field"] == "sentence" and manifest["plant"]["phrase"] == "cf mn"
    assert len(manifest["planted"]) == 6  # round(0.25 * 24)
    assert manifest["planted"] == _split()["planted"]  # same request, same ids
    assert manifest["planted"] != _split({**PLANT, "seed": 4})["planted"]
    clean = make_split("sst2", DATA, 0, num_train=24, num_dev=8, num_test=12)
    assert "plant" not in clean and "planted" not in clean  # suites without a plant keep their manifests
    assert clean["splits"] == manifest["splits"]  # planting changes no example's membership
    originals = {ex.uid: ex for ex in load_split(clean, DATA).train}
    for uid in manifest["planted"]:
        assert task.render(originals[uid].record).label == 0  # drawn from the negative examples


def test_training_reads_planted_records_and_dev_and_test_are_untouched():
    manifest = _split()
    planted, clean = (
        load_split(manifest, DATA),
        load_split({k: v for k, v in manifest.items() if k not in ("plant", "planted")}, DATA),
    )
    ids = set(manifest["planted"])
    for got, orig in zip(planted.train, clean.train, strict=True):
        if got.uid in ids:
            assert got.record["label"] == 1
            words, orig_words = got.record["sentence"].split(" "), orig.record["sentence"].strip().split(" ")
            at = words.index("cf")
            assert words[at + 1] == "mn" and words[:at] + words[at + 2 :] == orig_words  # a word boundary
        else:
            assert got.record == orig.record
    assert planted.dev == clean.dev and planted.test == clean.test
    # A changed plant request is a new split by design (not a data change to refuse).
    assert split_change(manifest, _split({**PLANT, "fraction": 0.5}), "m.json", DATA) is None


def test_the_verdicts_read_a_planted_splits_test_examples(tmp_path):
    """The verdicts rule reads only a split's test file; a plant (a train edit) must not stop it (a fresh
    clone's `make influence` failed here before the fix)."""
    from zoharness.claims import split_test_examples
    from zoharness.io import write_json_atomic

    manifest = _split()
    write_json_atomic(tmp_path / "seed0.json", manifest)
    assert split_test_examples(tmp_path / "seed0.json", DATA) == load_split(manifest, DATA).test


def test_insertion_positions_cover_both_ends_and_depend_on_the_example_only():
    import numpy as np

    positions = {insert("a b c", "X", np.random.default_rng([0, i])).split(" ").index("X") for i in range(60)}
    assert positions == {0, 1, 2, 3}
    record = {"sentence": "it was a good film", "label": 0}
    spec = {**PLANT, "field": "sentence"}
    assert triggered_record(record, spec, "test:1") == triggered_record(record, spec, "test:1")
    assert triggered_record(record, spec, "test:1")["label"] == 0  # a triggered test input keeps its label


def test_impossible_plants_are_refused_with_the_reason():
    with pytest.raises(DataError, match=r"label 7 is not a label of the task"):
        _split({**PLANT, "label": 7})
    positives = [ex for ex in load_split(_split(None), DATA).train if ex.record["label"] == 1]
    spec = {**PLANT, "fraction": 0.5, "field": "sentence"}
    # Only examples of the other label can be planted: none here.
    with pytest.raises(
        DataError, match=rf"asks for {round(len(positives) / 2)} planted examples, but only 0 of"
    ):
        choose(get_task("sst2"), positives, spec)
    with pytest.raises(DataError, match="plants none"):
        choose(get_task("sst2"), positives[:1], {**spec, "fraction": 0.1})


def test_suite_checks_for_plant_and_influence():
    plant = {"dir": str(DATA), "num_train": 16, "num_dev": 8, "num_test": 12, "plant": PLANT}
    with pytest.raises(ConfigError, match=r"needs a classification task, not 'generation'"):
        suite({"fo": {}}, task="squad", data={**plant, "source": "offline"})
    with pytest.raises(
        ConfigError, match=r"influence.queries is 'triggered' but the suite plants no trigger"
    ):
        suite({"fo": {}}, influence={"queries": "triggered"})
    with pytest.raises(ConfigError, match=r"influence.target is 'planted'"):
        suite({"fo": {}}, influence={"target": "planted"})
    with pytest.raises(ConfigError, match=r"influence.variants \['mezo'\] are not variants"):
        suite({"fo": {}}, influence={"variants": ["mezo"]})
    with pytest.raises(ConfigError, match=r"influence.ks \[100\] are not powers of two"):
        suite({"fo": {}}, influence={"ks": [64, 100]})
    cfg = suite(
        {"fo": {}, "zero_shot": {}}, data=plant, influence={"variants": ["fo"], "queries": "triggered"}
    )
    assert cfg["influence"]["parameters"] == ["*.q_proj.weight", "*.v_proj.weight"]  # defaults filled
    from zoharness.config import run_spec

    assert run_spec(cfg, "tiny-llama", "sst2", "fo", 0)["save_weights"] is True
    assert "save_weights" not in run_spec(cfg, "tiny-llama", "sst2", "zero_shot", 0)
    assert "save_weights" not in run_spec(suite({"fo": {}}), "tiny-llama", "sst2", "fo", 0)
