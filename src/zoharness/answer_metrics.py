"""SQuAD v1.1-style answer metrics (used by MeZO for SQuAD and DROP): normalised exact match and
token-level F1, each the maximum over the reference answers.

Normalisation (the official SQuAD v1.1 evaluation's rules): lowercase, drop punctuation, drop the
articles a/an/the, collapse whitespace.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers) -> float:
    pred = normalize_answer(prediction)
    return float(max(pred == normalize_answer(a) for a in answers))


def _f1(prediction: str, answer: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not pred or not gold:
        # Both empty (e.g. an answer that is only an article) count as a match, one empty as a miss.
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, answers) -> float:
    return max(_f1(prediction, a) for a in answers)
