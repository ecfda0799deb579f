"""What SNLI and MNLI share (LM-BFF/MeZO's RoBERTa protocol): three classes, MeZO Table 13's template.

Masked LM (LM-BFF's `*cls**sent-_0*?*mask*,*+sentl_1**sep+*`): the premise without its last character (its
full stop), '?', the mask, ',', a space and the hypothesis with its first letter lowercased; label words
Yes (entailment) / Maybe (neutral) / No (contradiction). Causal LMs: CB's MeZO prompt with these classes.
Records: {premise, hypothesis, label (the class name), idx}.
"""

from __future__ import annotations

from zoharness.tasks.base import CLASSIFICATION, OfflineLayout, Prompt, Task, label_index, masked_prompt

NAMES = ("entailment", "neutral", "contradiction")  # Hugging Face's ClassLabel order (snli, glue/mnli)
WORDS = (" Yes", " Maybe", " No")
CANDIDATES = ("Yes", "Maybe", "No")
_LABELS = {name: i for i, name in enumerate(NAMES)}
TEMPLATE = "{premise}?[MASK], {hypothesis}"


def masked_fields(record: dict) -> dict[str, str]:
    """LM-BFF's sent-_0 (the premise without its last character) and sentl_1 (the hypothesis, first letter
    lowercased)."""
    hypothesis = record["hypothesis"]
    return {"premise": record["premise"][:-1], "hypothesis": hypothesis[:1].lower() + hypothesis[1:]}


def render_nli(task: str, record: dict) -> Prompt:
    premise, hypothesis = record["premise"], record["hypothesis"]
    return Prompt(
        context=f'Suppose {premise} Can we infer that "{hypothesis}"? Yes, No, or Maybe?\n',
        candidates=CANDIDATES,
        label=label_index(record["label"], _LABELS, f"{task} record idx={record.get('idx')}"),
        masked=masked_prompt(task, TEMPLATE, WORDS, **masked_fields(record)),
    )


def from_hf(row: dict, i: int) -> dict | None:
    """An HF snli / glue-mnli row as the record; None for a row without a gold label (-1)."""
    if row["label"] < 0:
        return None
    return {
        "premise": row["premise"],
        "hypothesis": row["hypothesis"],
        "label": NAMES[row["label"]],
        "idx": i,
    }


def online_nli_task(
    name: str, label: str, hf_dataset: tuple[str, str | None], hf_splits=("train", "validation")
) -> Task:
    """SNLI or MNLI: the same prompts and records, only online (the snapshot has neither)."""
    return Task(
        name=name,
        label=label,
        kind=CLASSIFICATION,
        metric="accuracy",
        render=lambda record: render_nli(name, record),
        hf_dataset=hf_dataset,
        id_of=lambda r: str(r["idx"]),
        normalise_hf=from_hf,
        offline=OfflineLayout(pools=None, reason=f"the bundled snapshot has no {label} files"),
        rephrase_fields=("premise", "hypothesis"),
        masked_lm=True,
        hf_splits=hf_splits,
    )
