"""RTE (SuperGLUE): '<premise>\\nDoes this mean that "<hypothesis>" is true? Yes or No?\\n' -> Yes | No.
Masked LMs: MeZO Table 13's NLI template (zoharness.tasks.nli) with the label words Yes / No."""

from zoharness.tasks.base import (
    CLASSIFICATION,
    YES_NO,
    Prompt,
    Task,
    label_index,
    masked_prompt,
    premise_hypothesis_from_hf,
)
from zoharness.tasks.nli import TEMPLATE as NLI_TEMPLATE
from zoharness.tasks.nli import masked_fields

# SuperGLUE jsonl labels are strings; HF super_glue/rte ClassLabel: 0 = entailment, 1 = not_entailment.
_LABELS = {"entailment": 0, "not_entailment": 1}  # -> index into YES_NO
_HF_NAMES = ("entailment", "not_entailment")


def render(record: dict) -> Prompt:
    return Prompt(
        context=f'{record["premise"]}\nDoes this mean that "{record["hypothesis"]}" is true? Yes or No?\n',
        candidates=YES_NO,
        label=label_index(record["label"], _LABELS, f"rte record idx={record.get('idx')}"),
        masked=masked_prompt("rte", NLI_TEMPLATE, (" Yes", " No"), **masked_fields(record)),
    )


TASK = Task(
    name="rte",
    label="RTE",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    # parquet, no script (its PR #16): https://huggingface.co/datasets/aps/super_glue (docs/data.md)
    hf_dataset=("aps/super_glue", "rte"),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=lambda row, i: premise_hypothesis_from_hf(row, _HF_NAMES),
    rephrase_fields=("premise", "hypothesis"),
    masked_lm=True,
)
