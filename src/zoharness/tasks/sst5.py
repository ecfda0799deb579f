"""SST-5 (Socher et al. 2013; LM-BFF/MeZO's RoBERTa protocol): five sentiment classes.

Masked LM (MeZO Table 13, LM-BFF's template `*cls**sent_0*_It_was*mask*.*sep+*`): '<S1> It was [MASK] .' with
the label words terrible / bad / okay / good / great. Causal LMs (the offline stand-in on the embedded model; no
paper uses it): the template cut at the mask, '<S1> It was' -> ' terrible' ... ' great', MeZO's OPT SST-2
prompt with SST-5's label words.

Data: the original sentence-level files (data/sst5/stsa.fine.{train,test}: 'label sentence' a line, labels
0-4, PTB-tokenised), with LM-BFF's one conversion, -lrb- / -rrb- written as ( / ). LM-BFF tests on the test
file (2,210 sentences, capped at 1,000 by the k-shot protocol); the dev file is not used.
"""

from pathlib import Path

from zoharness.io import DataError
from zoharness.tasks.base import CLASSIFICATION, Prompt, Task, label_index, masked_prompt

WORDS = (" terrible", " bad", " okay", " good", " great")
_LABELS = {i: i for i in range(5)}
TEMPLATE = "{sentence} It was[MASK]."


def read_stsa(path: Path):
    """(line number, {"sentence", "label", "idx"}) of a stsa.fine.* file; idx is the 0-based row."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            label, _, sentence = line.rstrip("\n").partition(" ")
            if not label.isdigit() or not sentence:
                raise DataError(f"{path}:{lineno}: expected 'label sentence', got {line[:60]!r}")
            sentence = sentence.replace("-lrb-", "(").replace("-rrb-", ")")
            yield lineno, {"sentence": sentence, "label": int(label), "idx": lineno - 1}


def render(record: dict) -> Prompt:
    sentence = record["sentence"]
    return Prompt(
        context=f"{sentence} It was",
        candidates=WORDS,
        label=label_index(record["label"], _LABELS, f"sst5 record idx={record.get('idx')}"),
        masked=masked_prompt("sst5", TEMPLATE, WORDS, sentence=sentence),
    )


TASK = Task(
    name="sst5",
    label="SST-5",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    # SetFit/sst5 (json, no script: train/dev/test.jsonl with text, label 0-4, label_text) holds the same
    # 8,544 / 1,101 / 2,210 sentences: https://huggingface.co/datasets/SetFit/sst5
    hf_dataset=("SetFit/sst5", None),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=lambda row, i: {"sentence": row["text"], "label": row["label"], "idx": i},
    rephrase_fields=("sentence",),
    masked_lm=True,
    offline_files=("sst5/stsa.fine.train", "sst5/stsa.fine.test"),
    read_file=read_stsa,
    hf_splits=("train", "test"),
    kshot_format="csv",
)
