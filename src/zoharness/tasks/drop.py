"""DROP, generation: 'Passage: <passage>\\nQuestion: <question>\\nAnswer:' -> greedy answer; SQuAD-style
F1 against every reference span list entry, as MeZO (not DROP's official numeracy-aware metric).

Not in the offline snapshot: DROP needs the online source (HF `ucinlp/drop`)."""

from zoharness.io import DataError
from zoharness.tasks.base import GENERATION, OfflineLayout, Prompt, Task


def render(record: dict) -> Prompt:
    answers = tuple(record["answers"])
    if not answers:
        raise DataError(f"drop record id={record.get('id')}: no reference answer")
    return Prompt(
        context=f"Passage: {record['passage']}\nQuestion: {record['question']}\nAnswer:",
        candidates=(" " + answers[0],),
        label=0,
        answers=answers,
    )


def normalise_hf(row: dict, i: int) -> dict:
    # ucinlp/drop: section_id, query_id, passage, question, answers_spans {spans: [...], types: [...]}.
    return {
        "id": row["query_id"],
        "passage": row["passage"],
        "question": row["question"],
        "answers": list(row["answers_spans"]["spans"]),
    }


TASK = Task(
    name="drop",
    label="DROP",
    kind=GENERATION,
    metric="f1",
    render=render,
    # MeZO's `drop`; parquet, no script (its PR #2): https://huggingface.co/datasets/ucinlp/drop
    hf_dataset=("ucinlp/drop", None),
    id_of=lambda r: str(r["id"]),
    normalise_hf=normalise_hf,
    offline=OfflineLayout(pools=None, reason="DROP is not in the bundled snapshot"),
    group_key="passage",
    rephrase_fields=("passage", "question"),
)
