"""SNLI (Bowman et al. 2015) in LM-BFF/MeZO's RoBERTa protocol (zoharness.tasks.nli). Online only: the
snapshot has no copy; LM-BFF tests on the validation split (9,842 rows with a gold label)."""

from zoharness.tasks.base import CLASSIFICATION, OfflineLayout, Task
from zoharness.tasks.nli import from_hf, render_nli

TASK = Task(
    name="snli",
    label="SNLI",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=lambda record: render_nli("snli", record),
    hf_dataset=("stanfordnlp/snli", None),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=from_hf,
    offline=OfflineLayout(pools=None, reason="the bundled snapshot has no SNLI files"),
    rephrase_fields=("premise", "hypothesis"),
    masked_lm=True,
)
