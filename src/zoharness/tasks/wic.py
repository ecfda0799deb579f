"""WiC (SuperGLUE):
'Does the word "<word>" have the same meaning in these two sentences? Yes, No?\\n<s1>\\n<s2>\\n' -> Yes | No."""

from zoharness.tasks.base import CLASSIFICATION, YES_NO, Prompt, Task, label_index

_LABELS = {True: 0, False: 1}
_FIELDS = ("word", "sentence1", "sentence2", "start1", "start2", "end1", "end2", "idx")


def render(record: dict) -> Prompt:
    return Prompt(
        context=f'Does the word "{record["word"]}" have the same meaning in these two sentences? Yes, No?\n'
        f"{record['sentence1']}\n{record['sentence2']}\n",
        candidates=YES_NO,
        label=label_index(record["label"], _LABELS, f"wic record idx={record.get('idx')}"),
    )


def normalise_hf(row: dict, i: int) -> dict:
    return {**{k: row[k] for k in _FIELDS}, "label": bool(row["label"])}


TASK = Task(
    name="wic",
    label="WiC",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    # parquet, no script (its PR #16): https://huggingface.co/datasets/aps/super_glue (docs/data.md)
    hf_dataset=("aps/super_glue", "wic"),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=normalise_hf,
    rephrase_fields=("sentence1", "sentence2"),
    rephrase_anchors=lambda r: {
        f"sentence{i}": [r[f"sentence{i}"][r[f"start{i}"] : r[f"end{i}"]]] for i in (1, 2)
    },
)
