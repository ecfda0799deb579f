"""BoolQ: '<passage> <question>?\\n' -> Yes | No.

Offline deviation: the bundled train file has only 64 of 9,427 examples (FewGLUE), so train and dev
are drawn from the validation file (3,270): the 1,000-example test sample is drawn first (MeZO's
rule), then train/dev from the rest, excluding every example whose passage appears in the test
sample. The bundled passages start with '<Wikipedia title> -- ' (SuperGLUE's version); MeZO's HF
`boolq` passages do not.
"""

from zoharness.tasks.base import CLASSIFICATION, YES_NO, OfflineLayout, Prompt, Task, label_index

_LABELS = {True: 0, False: 1}


def render(record: dict) -> Prompt:
    return Prompt(
        context=f"{record['passage']} {record['question']}?\n",
        candidates=YES_NO,
        label=label_index(record["label"], _LABELS, f"boolq record idx={record.get('idx')}"),
    )


def normalise_hf(row: dict, i: int) -> dict:
    # google/boolq has question, answer (bool), passage and no index: the row number is the id.
    return {"question": row["question"], "passage": row["passage"], "label": bool(row["answer"]), "idx": i}


TASK = Task(
    name="boolq",
    label="BoolQ",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    # MeZO's `boolq`; parquet, no script (its PR #2): https://huggingface.co/datasets/google/boolq
    hf_dataset=("google/boolq", None),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=normalise_hf,
    offline=OfflineLayout(
        pools="validation",
        reason="the bundled train file has 64 of 9,427 examples; train/dev come from validation, "
        "disjoint from the test sample by passage",
    ),
    group_key="passage",
    rephrase_fields=("passage", "question"),
)
