"""SQuAD v1.1, generation: 'Title: <title>\\nContext: <context>\\nQuestion: <question>\\nAnswer:' ->
greedy answer; SQuAD-normalised F1 (and EM) against every reference answer. Training teacher-forces
' <first reference answer>'.

Offline deviation: the snapshot has no train split (only the official dev file, 10,570 questions):
the test sample is drawn from it first (MeZO's rule), then train/dev from the rest, excluding every
question whose context paragraph appears in the test sample.
"""

from zoharness.io import DataError
from zoharness.tasks.base import GENERATION, OfflineLayout, Prompt, Task


def answer_texts(record: dict) -> tuple[str, ...]:
    answers = tuple(a["text"] for a in record["answers"])
    if not answers:
        raise DataError(f"squad record id={record.get('id')}: no reference answer")
    return answers


def render(record: dict) -> Prompt:
    answers = answer_texts(record)
    return Prompt(
        context=f"Title: {record['title']}\nContext: {record['context']}\nQuestion: {record['question']}\nAnswer:",
        candidates=(" " + answers[0],),
        label=0,
        answers=answers,
    )


def normalise_hf(row: dict, i: int) -> dict:
    # rajpurkar/squad stores answers as {"text": [...], "answer_start": [...]}; the bundled file keeps the
    # official list of {"answer_start", "text"}.
    a = row["answers"]
    return {
        "id": row["id"],
        "title": row["title"],
        "context": row["context"],
        "question": row["question"],
        "answers": [
            {"answer_start": s, "text": t} for s, t in zip(a["answer_start"], a["text"], strict=True)
        ],
    }


TASK = Task(
    name="squad",
    label="SQuAD",
    kind=GENERATION,
    metric="f1",
    render=render,
    # MeZO's `squad`; parquet, no script (one config): https://huggingface.co/datasets/rajpurkar/squad
    hf_dataset=("rajpurkar/squad", "plain_text"),
    id_of=lambda r: str(r["id"]),
    normalise_hf=normalise_hf,
    offline=OfflineLayout(
        pools="validation",
        reason="the snapshot has no SQuAD train split; train/dev come from the official dev file, "
        "disjoint from the test sample by context paragraph",
    ),
    group_key="context",
    rephrase_fields=("context", "question"),
    rephrase_anchors=lambda r: {"context": list(answer_texts(r))},
)
