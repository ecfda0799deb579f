"""MNLI (Williams et al. 2018) in LM-BFF/MeZO's RoBERTa protocol (zoharness.tasks.nli). Online only: the
snapshot has no copy; LM-BFF tests on validation_matched (9,815 rows)."""

from zoharness.tasks.nli import online_nli_task

# parquet, no script (its PR #16; premise, hypothesis, label): https://huggingface.co/datasets/nyu-mll/glue
TASK = online_nli_task("mnli", "MNLI", ("nyu-mll/glue", "mnli"), hf_splits=("train", "validation_matched"))
