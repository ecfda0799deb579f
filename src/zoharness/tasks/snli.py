"""SNLI (Bowman et al. 2015) in LM-BFF/MeZO's RoBERTa protocol (zoharness.tasks.nli). Online only: the
snapshot has no copy; LM-BFF tests on the validation split (9,842 rows with a gold label)."""

from zoharness.tasks.nli import online_nli_task

# parquet, no script (its PR #6; label -1 = no gold label): https://huggingface.co/datasets/stanfordnlp/snli
TASK = online_nli_task("snli", "SNLI", ("stanfordnlp/snli", "plain_text"))
