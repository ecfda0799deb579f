"""The online source loads today: every task's default `Task.hf_dataset` is a hub copy that current `datasets`
(no loading scripts since 4.0) reads, and its `normalise_hf` maps rows in that copy's column layout to the
offline record schema.

`datasets.load_dataset` is replaced by a stand-in that checks the (path, config, split) it is asked for and
returns rows written in the repository's layout (the columns of its dataset card / viewer, docs/data.md has
the table and the sources). The rows below are one example per task: its text is the same example's text
in the bundled snapshot where the snapshot has one (SuperGLUE, GLUE, SQuAD, SST-5 and TREC are the same
data the hub copies were converted from), so the normalised record must equal the snapshot's record, field
for field and type for type. Nothing here reaches the network."""

import inspect
import json
import sys

import pytest

from tests.conftest import DATA, ROOT
from zoharness.config import validate
from zoharness.data import fetch_online, read_examples
from zoharness.io import DataError
from zoharness.tasks import get_task, task_ids

# task -> (hub id, config, (train split, test split)): the verified copies (docs/data.md, "Online sources").
SOURCES = {
    "sst2": ("nyu-mll/glue", "sst2", ("train", "validation")),
    "rte": ("aps/super_glue", "rte", ("train", "validation")),
    "cb": ("aps/super_glue", "cb", ("train", "validation")),
    "boolq": ("google/boolq", None, ("train", "validation")),
    "wsc": ("aps/super_glue", "wsc.fixed", ("train", "validation")),
    "wic": ("aps/super_glue", "wic", ("train", "validation")),
    "multirc": ("aps/super_glue", "multirc", ("train", "validation")),
    "copa": ("aps/super_glue", "copa", ("train", "validation")),
    "record": ("aps/super_glue", "record", ("train", "validation")),
    "squad": ("rajpurkar/squad", "plain_text", ("train", "validation")),
    "drop": ("ucinlp/drop", None, ("train", "validation")),
    "sst5": ("SetFit/sst5", None, ("train", "test")),
    "snli": ("stanfordnlp/snli", "plain_text", ("train", "validation")),
    "mnli": ("nyu-mll/glue", "mnli", ("train", "validation_matched")),
    "trec": ("SetFit/TREC-QC", None, ("train", "test")),
}


def _snapshot(name: str, which: str, n: int = 0) -> dict:
    """The n-th record of the task's bundled train or test file (flattened as the offline source reads it)."""
    return read_examples(get_task(name), DATA, which)[n].record


def _record_line() -> dict:
    return json.loads((DATA / "record" / "train.jsonl").read_text().splitlines()[0])


# ----- one example per task, in its hub copy's column layout -----
# Each entry: (rows the stand-in serves for every split, the records they must normalise to).


def _glue_superglue_rows():
    rows = {
        # aps/super_glue README dataset_info (rte): premise, hypothesis, idx (int32), label (ClassLabel
        # entailment, not_entailment). RTE train idx 0.
        "rte": [
            {
                "premise": "No Weapons of Mass Destruction Found in Iraq Yet.",
                "hypothesis": "Weapons of Mass Destruction Found in Iraq.",
                "idx": 0,
                "label": 1,
            }
        ],
        # (cb): premise, hypothesis, idx, label (ClassLabel entailment, contradiction, neutral). CB train idx 0.
        "cb": [
            {
                "premise": "It was a complex language. Not written down but handed down. "
                "One might say it was peeled down.",
                "hypothesis": "the language was peeled down",
                "idx": 0,
                "label": 0,
            }
        ],
        # (copa): premise, choice1, choice2, question, idx, label (ClassLabel choice1, choice2). COPA train idx 0.
        "copa": [
            {
                "premise": "My body cast a shadow over the grass.",
                "choice1": "The sun was rising.",
                "choice2": "The grass was cut.",
                "question": "cause",
                "idx": 0,
                "label": 0,
            }
        ],
        # (wic): word, sentence1, sentence2, start1, start2, end1, end2 (int32), idx, label (ClassLabel False,
        # True). WiC train idx 0.
        "wic": [
            {
                "word": "place",
                "sentence1": "Do you want to come over to my place later?",
                "sentence2": "A political system with no place for the less prominent groups.",
                "start1": 31,
                "start2": 27,
                "end1": 36,
                "end2": 32,
                "idx": 0,
                "label": 0,
            }
        ],
        # (wsc.fixed): text, span1_index, span2_index, span1_text, span2_text, idx, label (ClassLabel False,
        # True): the spans are flat columns, not the jsonl's `target`. WSC train idx 0 (no span repair needed).
        "wsc": [
            {
                "text": "Mark told Pete many lies about himself, which Pete included in his book. "
                "He should have been more skeptical.",
                "span1_index": 0,
                "span2_index": 13,
                "span1_text": "Mark",
                "span2_text": "He",
                "idx": 0,
                "label": 0,
            }
        ],
        # nyu-mll/glue README dataset_info (sst2): sentence, label (ClassLabel negative, positive), idx.
        # SST-2 train idx 0.
        "sst2": [{"sentence": "hide new secretions from the parental units ", "label": 0, "idx": 0}],
    }
    return {name: (r, [_snapshot(name, "train", 0)]) for name, r in rows.items()}


def _multirc():
    # aps/super_glue (multirc): one row per answer option: paragraph, question, answer, idx {paragraph,
    # question, answer} (int32 struct), label (ClassLabel False, True). The first option of the snapshot's
    # first validation passage, its long paragraph copied from the snapshot.
    line = json.loads((DATA / "multirc" / "validation.jsonl").read_text().splitlines()[0])
    q = line["passage"]["questions"][0]
    a = q["answers"][0]
    row = {
        "paragraph": line["passage"]["text"],
        "question": q["question"],
        "answer": a["text"],
        "idx": {"paragraph": line["idx"], "question": q["idx"], "answer": a["idx"]},
        "label": a["label"],
    }
    return [row], [_snapshot("multirc", "test", 0)]


def _record():
    # aps/super_glue (record): passage, query, entities (sequence, unique and sorted), entity_spans ({text,
    # start, end} lists, in passage order), answers (sequence, unique and sorted), idx {passage, query}.
    # The first query of the snapshot's first FewGLUE line (ReCoRD's online records are compared with those
    # lines flattened, as tests/test_tasks.py's online fixture does).
    line = _record_line()
    text, qa = line["passage"]["text"], line["qas"][0]
    spans = line["passage"]["entities"]
    row = {
        "passage": text,
        "query": qa["query"],
        "entities": sorted({text[e["start"] : e["end"] + 1] for e in spans}),
        "entity_spans": {
            "text": [text[e["start"] : e["end"] + 1] for e in spans],
            "start": [e["start"] for e in spans],
            "end": [e["end"] for e in spans],
        },
        "answers": sorted({a["text"] for a in qa["answers"]}),
        "idx": {"passage": line["idx"], "query": qa["idx"]},
    }
    return [row], [get_task("record").flatten(line)[0]]


def _squad():
    # rajpurkar/squad (plain_text): id, title, context, question, answers {text: [...], answer_start: [...]}
    # (a sequence of structs, read as a dict of lists). The snapshot's first validation question (the official
    # dev file holds the answers as a list of {answer_start, text}).
    s = _snapshot("squad", "test", 0)
    row = {
        "id": s["id"],
        "title": s["title"],
        "context": s["context"],
        "question": s["question"],
        "answers": {
            "text": [a["text"] for a in s["answers"]],
            "answer_start": [a["answer_start"] for a in s["answers"]],
        },
    }
    return [row], [s]


def _boolq():
    # google/boolq README dataset_info: question (string), answer (bool), passage (string); no idx column, so the
    # row number is the id. Its passages lack SuperGLUE's '<Wikipedia title> -- ' prefix (docs/data.md), which
    # is the one difference from the snapshot's record of the same question.
    s = _snapshot("boolq", "test", 0)
    passage = s["passage"].split(" -- ", 1)[1]
    row = {"question": s["question"], "answer": s["label"], "passage": passage}
    return [row], [{**s, "passage": passage, "idx": 0}]


def _sst5():
    # SetFit/sst5 (train.jsonl): text, label (int 0-4), label_text. SST-5 train row 0 (stsa.fine.train line 1).
    row = {
        "text": "a stirring , funny and finally transporting re-imagining of beauty and the beast and "
        "1930s horror films",
        "label": 4,
        "label_text": "very positive",
    }
    return [row], [_snapshot("sst5", "train", 0)]


def _trec():
    # SetFit/TREC-QC (train.jsonl, written by its prepare.py): text, label, label_text, label_original (fine
    # class), label_coarse (numbered in order of first appearance), label_coarse_text, label_coarse_original.
    # TREC.train line 1 ("DESC:manner ..."), LM-BFF's id 0 for DESC.
    row = {
        "text": "How did serfdom develop in and then leave Russia ?",
        "label": 0,
        "label_text": "manner of an action",
        "label_original": "DESC:manner",
        "label_coarse": 0,
        "label_coarse_text": "description and abstract concepts",
        "label_coarse_original": "DESC",
    }
    return [row], [_snapshot("trec", "train", 0)]


def _drop():
    # ucinlp/drop README dataset_info: section_id, query_id, passage, question, answers_spans {spans: [...],
    # types: [...]}. The card's validation example, its passage cropped as the card crops it; the two ids are
    # illustrative values in DROP's format (section `nfl_<n>`, query a UUID). No snapshot copy: the record is
    # the harness's DROP schema {id, passage, question, answers}.
    passage = (
        '" Hoping to rebound from their loss to the Patriots, the Raiders stayed at home for a Week 16 duel with '
        "the Houston Texans."
    )
    row = {
        "section_id": "nfl_1184",
        "query_id": "f37e81fa-ef7b-4583-b671-762fc433faa9",
        "passage": passage,
        "question": "Who scored the first touchdown of the game?",
        "answers_spans": {"spans": ["Chaz Schilens"], "types": ["span"]},
    }
    record = {
        "id": "f37e81fa-ef7b-4583-b671-762fc433faa9",
        "passage": passage,
        "question": "Who scored the first touchdown of the game?",
        "answers": ["Chaz Schilens"],
    }
    return [row], [record]


def _snli():
    # stanfordnlp/snli (plain_text) README dataset_info: premise, hypothesis, label (ClassLabel entailment,
    # neutral, contradiction; -1 marks a pair without a gold label). The viewer's first train row, then a
    # pair marked -1 (constructed: same premise), which the normaliser drops.
    rows = [
        {
            "premise": "A person on a horse jumps over a broken down airplane.",
            "hypothesis": "A person is training his horse for a competition.",
            "label": 1,
        },
        {"premise": "A person on a horse jumps over a broken down airplane.", "hypothesis": "?", "label": -1},
    ]
    record = {
        "premise": "A person on a horse jumps over a broken down airplane.",
        "hypothesis": "A person is training his horse for a competition.",
        "label": "neutral",
        "idx": 0,
    }
    return rows, [record]


def _mnli():
    # nyu-mll/glue (mnli): premise, hypothesis, label (ClassLabel entailment, neutral, contradiction), idx.
    # The first train row (the viewer's row 0).
    row = {
        "premise": "Conceptually cream skimming has two basic dimensions - product and geography.",
        "hypothesis": "Product and geography are what make cream skimming work.",
        "label": 1,
        "idx": 0,
    }
    return [row], [{**{k: row[k] for k in ("premise", "hypothesis")}, "label": "neutral", "idx": 0}]


def _examples() -> dict:
    out = _glue_superglue_rows()
    for name, make in [
        ("multirc", _multirc),
        ("record", _record),
        ("squad", _squad),
        ("boolq", _boolq),
        ("sst5", _sst5),
        ("trec", _trec),
        ("drop", _drop),
        ("snli", _snli),
        ("mnli", _mnli),
    ]:
        out[name] = make()
    return out


EXAMPLES = _examples()
MISSING_ONLINE = {"wic": {"version"}}  # snapshot fields the hub rows lack (WiC's jsonl `version`)


# ----- the ids -----


def test_every_task_has_a_verified_source_and_an_example_row():
    assert set(SOURCES) == set(task_ids()) == set(EXAMPLES), "add the task's hub copy and a row here"
    for name, (path, config, splits) in SOURCES.items():
        task = get_task(name)
        assert (task.hf_dataset, task.hf_splits) == ((path, config), splits), name


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_id_cites_its_source_in_the_code_and_the_docs(name):
    path, config, _ = SOURCES[name]
    source = inspect.getsource(sys.modules[f"zoharness.tasks.{name}"])
    assert f"https://huggingface.co/datasets/{path}" in source
    docs = (ROOT / "docs" / "data.md").read_text()
    row = next((line for line in docs.splitlines() if line.startswith(f"| {get_task(name).label} |")), "")
    assert f"`{path}`" in row and (config is None or f"`{config}`" in row), (
        f"docs/data.md has no row for {name}"
    )


# ----- fetch_online against the hub copies' layouts -----


def _stand_in(monkeypatch, name: str, rows: list[dict]) -> list:
    import datasets

    path, config, splits = SOURCES[name]
    calls = []

    def load_dataset(p, c, split):
        assert (p, c) == (path, config) and split in splits, f"{name}: asked for {(p, c, split)}"
        calls.append((p, c, split))
        return [dict(r) for r in rows]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def _types(record: dict) -> dict:
    return {k: type(v) for k, v in record.items()}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_rows_in_the_hub_layout_become_the_offline_records(name, tmp_path, monkeypatch):
    task = get_task(name)
    rows, expected = EXAMPLES[name]
    calls = _stand_in(monkeypatch, name, rows)
    info = fetch_online(name, tmp_path)
    path, config, splits = SOURCES[name]
    assert calls == [(path, config, s) for s in splits]
    assert (info["hf_dataset"], info["hf_config"]) == (path, config)
    for which in ("train", "test"):
        written = [ex.record for ex in read_examples(task, tmp_path, which, "online")]  # renders each one
        assert info["files"][task.file(which, "online")]["dropped"] == len(rows) - len(expected)
        missing = MISSING_ONLINE.get(name, set())
        assert written == [{k: v for k, v in r.items() if k not in missing} for r in expected]
        for got, want in zip(written, expected, strict=True):
            assert _types(got) == {k: t for k, t in _types(want).items() if k not in missing}
            assert task.render(got) == task.render(want)


# ----- data.hf_datasets: "path[:config]" -----


@pytest.mark.parametrize(
    ("task", "override", "called"),
    [
        ("wsc", "my-org/super_glue-copy:wsc.fixed", ("my-org/super_glue-copy", "wsc.fixed")),
        ("boolq", "my-org/boolq", ("my-org/boolq", None)),
        ("drop", "my-org/drop:", ("my-org/drop", None)),
    ],
)
def test_a_suite_override_is_parsed_as_path_and_config(task, override, called, tmp_path, monkeypatch):
    import datasets

    cfg = validate(
        {
            "suite": "x",
            "models": ["tiny-llama"],
            "tasks": [task],
            "variants": ["mezo"],
            "seeds": [0],
            "data": {"source": "online", "hf_datasets": {task: override}},
        }
    )
    calls = []

    def load_dataset(p, c, split):
        calls.append((p, c, split))
        return [dict(r) for r in EXAMPLES[task][0]]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    info = fetch_online(task, tmp_path, cfg["data"]["hf_datasets"][task])
    assert calls == [(*called, s) for s in get_task(task).hf_splits]
    assert (info["hf_dataset"], info["hf_config"]) == called


# ----- TREC: the class is read by name -----


def test_trec_reads_the_coarse_class_by_name_in_either_layout():
    trec = get_task("trec")
    setfit = {"text": "What is an atom ?", "label_coarse": 0, "label_coarse_original": "ENTY"}
    assert trec.normalise_hf(setfit, 5) == {"question": "What is an atom ?", "label": 1, "idx": 5}
    cogcomp = {"text": "What is an atom ?", "coarse_label": 1, "fine_label": 2}  # ClassLabel 1 = ENTY
    assert trec.normalise_hf(cogcomp, 5) == {"question": "What is an atom ?", "label": 1, "idx": 5}
    with pytest.raises(DataError, match=r"trec HF row 5: coarse class 'FOO'"):
        trec.normalise_hf({"text": "x", "label_coarse_original": "FOO"}, 5)


def test_every_id_is_an_org_repo_and_none_is_a_script_repo():
    # MeZO's names were the hub's bare canonical ids (`glue`, `super_glue`, ...), which the hub now redirects to
    # org repos; CogComp/trec still holds only its loading script, which `datasets` >= 4 refuses.
    for name in task_ids():
        path = get_task(name).hf_dataset[0]
        assert "/" in path and path != "CogComp/trec", name
