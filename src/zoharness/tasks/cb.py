"""CB (SuperGLUE): 'Suppose <premise> Can we infer that "<hypothesis>"? Yes, No, or Maybe?\\n'
-> Yes | No | Maybe. MeZO uses 100 dev examples for CB (its train file has 250)."""

from zoharness.tasks.base import CLASSIFICATION, Prompt, Task, label_index, premise_hypothesis_from_hf

CANDIDATES = ("Yes", "No", "Maybe")
# entailment -> Yes, contradiction -> No, neutral -> Maybe.
_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}
_HF_NAMES = ("entailment", "contradiction", "neutral")  # HF super_glue/cb ClassLabel order


def render(record: dict) -> Prompt:
    return Prompt(
        context=f'Suppose {record["premise"]} Can we infer that "{record["hypothesis"]}"? Yes, No, or Maybe?\n',
        candidates=CANDIDATES,
        label=label_index(record["label"], _LABELS, f"cb record idx={record.get('idx')}"),
    )


TASK = Task(
    name="cb",
    label="CB",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    # parquet, no script (its PR #16): https://huggingface.co/datasets/aps/super_glue (docs/data.md)
    hf_dataset=("aps/super_glue", "cb"),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=lambda row, i: premise_hypothesis_from_hf(row, _HF_NAMES),
    num_dev=100,
    rephrase_fields=("premise", "hypothesis"),
)
