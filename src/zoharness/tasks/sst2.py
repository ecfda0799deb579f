"""SST-2 with MeZO's prompt: '<sentence> It was' -> ' terrible' | ' great' (MeZO Table 14)."""

from zoharness.tasks.base import Prompt, Task, label_index

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
    kind="classification",
    metric="accuracy",
    train_file="sst2/train.jsonl",
    test_file="sst2/validation.jsonl",
    id_key="idx",
    render=render,
)
