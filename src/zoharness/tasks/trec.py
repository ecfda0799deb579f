"""TREC (Li & Roth 2002; LM-BFF/MeZO's RoBERTa protocol): six coarse question classes.

Masked LM (MeZO Table 13, LM-BFF's `*cls**mask*:*+sent_0**sep+*`): '[MASK] : <S1>' with the label words
Description / Entity / Expression / Human / Location / Number. Causal LMs (the offline stand-in; no paper
uses it): a causal LM cannot score a word before the question, so the word follows it:
'<S1>\\nAnswer type:' -> ' Description' ... ' Number'.

Data: the original CogComp files (data/trec/TREC.train, Latin-1; TREC.test, ASCII), one question a line as
'COARSE:fine question'. Labels are LM-BFF's ids (its train.csv/test.csv, also in data/trec and equal row for
row: tests/test_kshot.py): 0 DESC, 1 ENTY, 2 ABBR, 3 HUM, 4 LOC, 5 NUM. LM-BFF tests on TREC.test (500).
"""

from pathlib import Path

from zoharness.io import DataError
from zoharness.tasks.base import CLASSIFICATION, Prompt, Task, label_index, masked_prompt

COARSE = ("DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM")  # LM-BFF's label ids, in order
WORDS = (" Description", " Entity", " Expression", " Human", " Location", " Number")
_LABELS = {i: i for i in range(len(COARSE))}
TEMPLATE = "[MASK]: {question}"


def read_trec(path: Path):
    """(line number, {"question", "label", "idx"}) of a CogComp TREC file (Latin-1: TREC.train has one
    byte above 0x7F, which LM-BFF's UTF-8 csv writes as the same character)."""
    with path.open(encoding="latin-1") as f:
        for lineno, line in enumerate(f, start=1):
            tag, _, question = line.rstrip("\n").partition(" ")
            coarse = tag.partition(":")[0]  # the fine class (after the colon) is not used by LM-BFF or MeZO
            if coarse not in COARSE or not question:
                raise DataError(f"{path}:{lineno}: expected 'COARSE:fine question', got {line[:60]!r}")
            yield lineno, {"question": question, "label": COARSE.index(coarse), "idx": lineno - 1}


def render(record: dict) -> Prompt:
    question = record["question"]
    return Prompt(
        context=f"{question}\nAnswer type:",
        candidates=WORDS,
        label=label_index(record["label"], _LABELS, f"trec record idx={record.get('idx')}"),
        masked=masked_prompt("trec", TEMPLATE, WORDS, question=question),
    )


# Online: SetFit/TREC-QC, json with no script: train.jsonl / test.jsonl, written from the same
# train_5500.label / TREC_10.label by its prepare.py with text, label, label_text, label_original,
# label_coarse, label_coarse_text, label_coarse_original (https://huggingface.co/datasets/SetFit/TREC-QC).
# The class is read by its name (label_coarse_original, e.g. "DESC"): prepare.py numbers classes in order of
# first appearance, not LM-BFF's. CogComp/trec, the previous id, still ships only its trec.py script, which
# `datasets` >= 4 refuses; a script-free copy of it (data.hf_datasets) has text, coarse_label (ClassLabel
# ABBR, ENTY, DESC, HUM, LOC, NUM), fine_label and is read too.
_HF_COARSE = ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")


def normalise_hf(row: dict, i: int) -> dict:
    if "label_coarse_original" in row:
        coarse = row["label_coarse_original"]
    else:
        coarse = _HF_COARSE[row["coarse_label"]]
    if coarse not in COARSE:
        raise DataError(f"trec HF row {i}: coarse class {coarse!r} is not one of {COARSE}")
    return {"question": row["text"], "label": COARSE.index(coarse), "idx": i}


TASK = Task(
    name="trec",
    label="TREC",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    hf_dataset=("SetFit/TREC-QC", None),  # see _HF_COARSE
    id_of=lambda r: str(r["idx"]),
    normalise_hf=normalise_hf,
    rephrase_fields=("question",),
    masked_lm=True,
    offline_files=("trec/TREC.train", "trec/TREC.test"),
    read_file=read_trec,
    hf_splits=("train", "test"),
    kshot_format="csv",
)
