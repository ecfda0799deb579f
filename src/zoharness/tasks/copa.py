"""COPA (SuperGLUE), multiple choice: '<premise without its final period> so|because' -> ' <choice>'
with the choice's first letter lowercased; 'so' for question=effect, 'because' for cause.
MeZO uses 100 dev examples for COPA (its train file has 400)."""

from zoharness.io import DataError
from zoharness.tasks.base import MULTIPLE_CHOICE, Prompt, Task, label_index

_LABELS = {0: 0, 1: 1}
_CONNECTIVE = {"effect": "so", "cause": "because"}


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:]


def render(record: dict) -> Prompt:
    where = f"copa record idx={record.get('idx')}"
    question = record["question"]
    if question not in _CONNECTIVE:
        raise DataError(f"{where}: question {question!r} is not one of {sorted(_CONNECTIVE)}")
    premise = record["premise"].strip()
    premise = premise[:-1] if premise.endswith((".", "!", "?")) else premise
    return Prompt(
        context=f"{premise} {_CONNECTIVE[question]}",
        candidates=(" " + _lower_first(record["choice1"]), " " + _lower_first(record["choice2"])),
        label=label_index(record["label"], _LABELS, where),
    )


TASK = Task(
    name="copa",
    label="COPA",
    kind=MULTIPLE_CHOICE,
    metric="accuracy",
    render=render,
    # parquet, no script (its PR #16): https://huggingface.co/datasets/aps/super_glue (docs/data.md)
    hf_dataset=("aps/super_glue", "copa"),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=lambda row, i: {
        k: row[k] for k in ("premise", "choice1", "choice2", "question", "label", "idx")
    },
    num_dev=100,
    rephrase_fields=("premise",),
)
