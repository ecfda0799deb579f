"""MNLI (Williams et al. 2018) in LM-BFF/MeZO's RoBERTa protocol (zoharness.tasks.nli). Online only: the
snapshot has no copy; LM-BFF tests on validation_matched (9,815 rows)."""

from zoharness.tasks.base import CLASSIFICATION, OfflineLayout, Task
from zoharness.tasks.nli import from_hf, render_nli

TASK = Task(
    name="mnli",
    label="MNLI",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=lambda record: render_nli("mnli", record),
    hf_dataset=("nyu-mll/glue", "mnli"),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=from_hf,
    offline=OfflineLayout(pools=None, reason="the bundled snapshot has no MNLI files"),
    rephrase_fields=("premise", "hypothesis"),
    masked_lm=True,
    hf_splits=("train", "validation_matched"),
)
