"""ReCoRD (SuperGLUE), multiple choice, one example per query as HF `super_glue/record`:
context '<passage>\\n' (with '@highlight\\n' written as '- '), candidates: the query with '@placeholder'
replaced by each entity of the passage; correct: every entity among the answers.

Offline: the bundled snapshot has 64 train queries (FewGLUE) and no validation split, so ReCoRD needs
the online source (HF `aps/super_glue`, config `record`).
"""

from zoharness.io import DataError
from zoharness.tasks.base import MULTIPLE_CHOICE, OfflineLayout, Prompt, Task


def flatten(line: dict) -> list[dict]:
    """A SuperGLUE ReCoRD line -> one record per query: entities are the unique strings
    text[start:end+1] (end is inclusive), sorted, and answers the unique answer texts, sorted (as HF)."""
    try:
        text = line["passage"]["text"]
        entities = sorted({text[e["start"] : e["end"] + 1] for e in line["passage"]["entities"]})
        return [
            {
                "passage": text,
                "query": qa["query"],
                "entities": entities,
                "answers": sorted({a["text"] for a in qa.get("answers", [])}),
                "idx": {"passage": line["idx"], "query": qa["idx"]},
            }
            for qa in line["qas"]
        ]
    except (KeyError, TypeError) as e:
        raise DataError(f"record line is not a SuperGLUE ReCoRD passage (missing {e})") from None


def render(record: dict) -> Prompt:
    where = f"record record idx={record.get('idx')}"
    entities, answers = record["entities"], set(record["answers"])
    correct = tuple(i for i, e in enumerate(entities) if e in answers)
    if not correct:
        raise DataError(f"{where}: no answer {sorted(answers)} is among the passage's entities")
    passage = record["passage"].replace("@highlight\n", "- ")
    return Prompt(
        context=f"{passage}\n",
        candidates=tuple(record["query"].replace("@placeholder", e) for e in entities),
        label=correct[0],
        correct=correct,
    )


TASK = Task(
    name="record",
    label="ReCoRD",
    kind=MULTIPLE_CHOICE,
    metric="accuracy",
    render=render,
    # parquet, no script (its PR #16): https://huggingface.co/datasets/aps/super_glue (docs/data.md)
    hf_dataset=("aps/super_glue", "record"),
    id_of=lambda r: f"{r['idx']['passage']}-{r['idx']['query']}",
    # The parquet rows also hold `entity_spans` ({text, start, end} lists), which the records do not keep.
    normalise_hf=lambda row, i: {k: row[k] for k in ("passage", "query", "entities", "answers", "idx")},
    flatten=flatten,
    offline=OfflineLayout(
        pools=None,
        reason="the bundled snapshot has 64 of 100,730 train queries and no validation split",
    ),
    group_key="passage",
    rephrase_fields=("passage",),
    rephrase_anchors=lambda r: {"passage": sorted(set(r["entities"]))},
)
