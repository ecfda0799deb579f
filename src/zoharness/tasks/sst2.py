"""SST-2 (GLUE): '<sentence> It was' -> ' terrible' | ' great' (MeZO Table 14); masked LMs: '<S1> It was [MASK] .'
with the same label words (MeZO Table 13, LM-BFF's `*cls**sent_0*_It_was*mask*.*sep+*`)."""

from zoharness.tasks.base import CLASSIFICATION, Prompt, Task, label_index, masked_prompt

# GLUE/HF glue/sst2 integer labels: 0 = negative, 1 = positive.
_LABELS = {0: 0, 1: 1}
CANDIDATES = (" terrible", " great")
TEMPLATE = "{sentence} It was[MASK]."


def render(record: dict) -> Prompt:
    # The GLUE sentences end in a space; strip it so the template has exactly one space before "It".
    sentence = record["sentence"].strip()
    return Prompt(
        context=f"{sentence} It was",
        candidates=CANDIDATES,
        label=label_index(record["label"], _LABELS, f"sst2 record idx={record.get('idx')}"),
        masked=masked_prompt("sst2", TEMPLATE, CANDIDATES, sentence=sentence),
    )


TASK = Task(
    name="sst2",
    label="SST-2",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    # parquet, no script (its PR #16; sentence, label, idx): https://huggingface.co/datasets/nyu-mll/glue
    hf_dataset=("nyu-mll/glue", "sst2"),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=lambda row, i: {"sentence": row["sentence"], "label": row["label"], "idx": row["idx"]},
    rephrase_fields=("sentence",),
    masked_lm=True,
)
