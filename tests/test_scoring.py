"""Candidate scoring: the gathered-logits path and the single-token path equal the plain definition."""

import pytest
import torch

from zoharness import scoring
from zoharness.tasks.base import Prompt

PROMPTS = [
    Prompt("the film was a joy It was", (" terrible", " great"), 1),
    Prompt("dull It was", (" terrible", " great"), 0),
    Prompt("a long, long, winding and rather tedious story It was", (" bad", " fine", " superb"), 2),
]


def reference_scores(model, tokenizer, prompt):
    """Mean log-likelihood of each candidate's tokens from a plain full forward of context+candidate."""
    ctx = tokenizer(prompt.context, add_special_tokens=False).input_ids
    out = []
    for cand in prompt.candidates:
        ids = tokenizer(cand, add_special_tokens=False).input_ids
        seq = torch.tensor([ctx + ids])
        logp = torch.log_softmax(model(input_ids=seq).logits[0].double(), -1)
        out.append(sum(logp[len(ctx) + t - 1, tok].item() for t, tok in enumerate(ids)) / len(ids))
    return out


@pytest.mark.parametrize("arch", ["llama", "opt"])
@torch.no_grad()
def test_batched_scores_equal_plain_forward(model_refs, arch):
    from zoharness import models

    model, tok = models.load(model_refs[arch])
    encoded = [scoring.encode(tok, p, 256) for p in PROMPTS]
    scores = scoring.candidate_scores(model, scoring.collate(encoded, tok.pad_token_id))
    for i, p in enumerate(PROMPTS):
        ref = reference_scores(model, tok, p)
        got = scores[i, : len(p.candidates)].tolist()
        assert got == pytest.approx(ref, abs=1e-4)
    # CB-like rows with fewer candidates are masked out, never argmax'd.
    assert torch.isinf(scores[0, 2]) and scores[0, 2] < 0


@torch.no_grad()
def test_single_token_path_equals_generic_path(tiny):
    model, tok = tiny
    # With the byte-level tokenizer, single characters are single tokens.
    prompts = [Prompt("good movie. answer:", ("A", "B"), 0), Prompt("bad", ("A", "B", "C"), 2)]
    fast = [scoring.encode(tok, p, 256) for p in prompts]
    slow = [scoring.encode(tok, p, 256, single_token_fast_path=False) for p in prompts]
    assert [len(e.sequences) for e in fast] == [1, 1]
    assert [len(e.sequences) for e in slow] == [2, 3]
    a = scoring.candidate_scores(model, scoring.collate(fast, tok.pad_token_id))
    b = scoring.candidate_scores(model, scoring.collate(slow, tok.pad_token_id))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@torch.no_grad()
def test_right_padding_does_not_change_scores(tiny):
    model, tok = tiny
    enc = [scoring.encode(tok, p, 256) for p in PROMPTS]
    alone = scoring.candidate_scores(model, scoring.collate(enc[1:2], tok.pad_token_id))
    padded = scoring.candidate_scores(model, scoring.collate(enc, tok.pad_token_id))[1:2, :2]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=0)


def test_left_truncation_keeps_the_answer_slot(tiny):
    _, tok = tiny
    e = scoring.encode(tok, Prompt("x" * 500 + " It was", (" no", " yes"), 0), max_length=64)
    # the context is cut to fit the longest candidate (" yes", 4 bytes): 60 context tokens + candidate
    assert [len(s) for s in e.sequences] == [63, 64]
    assert tok.decode(e.sequences[0]).endswith("xx It was no")
    assert tok.decode(e.sequences[1]).endswith("x It was yes")


def test_loss_is_cross_entropy_over_candidate_scores(tiny):
    model, tok = tiny
    batch = scoring.collate([scoring.encode(tok, p, 256) for p in PROMPTS[:2]], tok.pad_token_id)
    scores = scoring.candidate_scores(model, batch)
    expected = -torch.log_softmax(scores, -1)[torch.arange(2), batch.labels].mean()
    torch.testing.assert_close(scoring.loss(model, batch), expected)


def test_evaluate_counts_correct_predictions(tiny):
    model, tok = tiny
    enc = [scoring.encode(tok, p, 256) for p in PROMPTS]
    res = scoring.evaluate(model, enc, tok.pad_token_id, batch_size=2)
    with torch.no_grad():
        scores = scoring.candidate_scores(model, scoring.collate(enc, tok.pad_token_id))
    pred = scores.argmax(-1).tolist()
    assert res["predictions"] == pred
    assert res["accuracy"] == sum(p == e.label for p, e in zip(pred, enc, strict=True)) / 3
