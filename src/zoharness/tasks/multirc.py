"""MultiRC (SuperGLUE), one example per answer option as HF `super_glue/multirc`:
'<paragraph>\\nQuestion: <question>\\nI found this answer "<answer>". Is that correct? Yes or No?\\n' -> Yes | No.
The metric is per-option accuracy, as in MeZO's tables."""

from zoharness.io import DataError
from zoharness.tasks.base import CLASSIFICATION, YES_NO, Prompt, Task, label_index

_LABELS = {1: 0, 0: 1}  # 1 = the answer option is correct -> "Yes"


def flatten(line: dict) -> list[dict]:
    """A SuperGLUE passage line -> one record per (question, answer option), HF's flat schema."""
    try:
        passage = line["passage"]
        return [
            {
                "paragraph": passage["text"],
                "question": q["question"],
                "answer": a["text"],
                "idx": {"paragraph": line["idx"], "question": q["idx"], "answer": a["idx"]},
                "label": a["label"],
            }
            for q in passage["questions"]
            for a in q["answers"]
        ]
    except (KeyError, TypeError) as e:
        raise DataError(f"multirc line is not a SuperGLUE MultiRC passage (missing {e})") from None


def render(record: dict) -> Prompt:
    return Prompt(
        context=f"{record['paragraph']}\nQuestion: {record['question']}\n"
        f'I found this answer "{record["answer"]}". Is that correct? Yes or No?\n',
        candidates=YES_NO,
        label=label_index(record["label"], _LABELS, f"multirc record idx={record.get('idx')}"),
    )


def _id(r: dict) -> str:
    i = r["idx"]
    return f"{i['paragraph']}-{i['question']}-{i['answer']}"


TASK = Task(
    name="multirc",
    label="MultiRC",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    # parquet, no script (its PR #16): https://huggingface.co/datasets/aps/super_glue (docs/data.md)
    hf_dataset=("aps/super_glue", "multirc"),
    id_of=_id,
    normalise_hf=lambda row, i: {k: row[k] for k in ("paragraph", "question", "answer", "idx", "label")},
    flatten=flatten,
    group_key="paragraph",
    rephrase_fields=("paragraph", "question"),
)
