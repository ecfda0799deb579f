"""SST-2 (GLUE): '<sentence> It was' -> ' terrible' | ' great' (MeZO Table 14)."""

from zoharness.tasks.base import CLASSIFICATION, Prompt, Task, label_index

# GLUE/HF glue/sst2 integer labels: 0 = negative, 1 = positive.
_LABELS = {0: 0, 1: 1}
CANDIDATES = (" terrible", " great")


def render(record: dict) -> Prompt:
    # The GLUE sentences end in a space; strip it so the template has exactly one space before "It".
    sentence = record["sentence"].strip()
    return Prompt(
        context=f"{sentence} It was",
        candidates=CANDIDATES,
        label=label_index(record["label"], _LABELS, f"sst2 record idx={record.get('idx')}"),
    )


TASK = Task(
    name="sst2",
    label="SST-2",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    hf_dataset=("glue", "sst2"),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=lambda row, i: {"sentence": row["sentence"], "label": row["label"], "idx": row["idx"]},
    rephrase_fields=("sentence",),
)
