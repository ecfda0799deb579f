"""Generation tasks: SQuAD-style answer metrics, greedy decoding, and the teacher-forcing objective."""

import pytest
import torch

from zoharness import generation, scoring
from zoharness.answer_metrics import exact_match, f1_score, normalize_answer
from zoharness.tasks.base import Prompt


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The Broncos", "broncos"),
        ("  Denver   Broncos. ", "denver broncos"),
        ("an apple, a pear & the fig!", "apple pear fig"),
        ("theory", "theory"),  # 'the' inside a word stays
        ("Über-Größe", "übergröße"),
        ("", ""),
    ],
)
def test_normalisation(text, normal):
    assert normalize_answer(text) == normal


def test_exact_match_and_f1_on_known_strings():
    assert exact_match("the Denver Broncos", ["Denver Broncos"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos"]) == 0.0
    # precision 1/1, recall 1/2 -> F1 2/3
    assert f1_score("Denver", ["Denver Broncos"]) == pytest.approx(2 / 3)
    # max over references
    assert f1_score("Carolina Panthers", ["Denver Broncos", "the Panthers"]) == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: pred 'a a b' vs gold 'a b' (articles aside, use words)
    assert f1_score("cat cat dog", ["cat dog"]) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert f1_score("", ["Denver"]) == 0.0
    assert f1_score("The", ["a"]) == 1.0  # both normalise to empty: a match
    assert f1_score("24–10", ["24–10"]) == 1.0  # the en dash is not ASCII punctuation: kept on both sides


def _greedy_reference(model, ids, stops, max_new):
    """Full forward per step, no cache, no padding: what greedy decoding means."""
    ids = list(ids)
    out = []
    for _ in range(max_new):
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        nxt = int(logits.argmax())
        out.append(nxt)
        ids.append(nxt)
        if nxt in stops:
            break
    return out


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_batched_left_padded_decoding_equals_unbatched_greedy(arch, model_refs):
    from zoharness import models

    model, tok = models.load(model_refs[arch])
    contexts = [
        tuple(tok(t, add_special_tokens=False).input_ids)
        for t in ("Q: a\nA:", "Question: longer one\nAnswer:", "x")
    ]
    got = generation.greedy_answers(model, tok, contexts, batch_size=3, max_new_tokens=12)
    stops = set(generation.stop_token_ids(tok))
    for ctx, answer in zip(contexts, got, strict=True):
        ref = tok.decode(_greedy_reference(model, ctx, stops, 12), skip_special_tokens=True)
        assert answer == ref.split("\n")[0].strip()


def test_generation_context_keeps_room_for_the_answer(model_refs):
    from zoharness import models

    _, tok = models.load(model_refs["llama"])
    p = Prompt(context="z" * 300 + "Question?\nAnswer:", candidates=(" yes",), label=0, answers=("yes",))
    ids = generation.encode_context(tok, p, max_length=128)
    assert len(ids) == 128 - generation.MAX_NEW_TOKENS
    assert tok.decode(list(ids)).endswith("Question?\nAnswer:")


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_teacher_forcing_loss_equals_the_causal_lm_loss_on_the_answer(arch, model_refs):
    """Objective "lm" = HF's causal-LM loss with every non-answer label masked (-100), token mean."""
    from zoharness import models

    model, tok = models.load(model_refs[arch], dtype="float64")
    prompts = [
        Prompt(context="Context: sky\nAnswer:", candidates=(" blue sky",), label=0, answers=("blue sky",)),
        Prompt(context="Q\nA:", candidates=(" no",), label=0, answers=("no",)),
    ]
    enc = [scoring.encode(tok, p, 64, objective="lm") for p in prompts]
    batch = scoring.collate(enc, tok.pad_token_id)
    ours = scoring.loss(model, batch)
    input_ids, labels, attention = [], [], []
    width = batch.input_ids.shape[1]
    for p in prompts:
        ctx = tok(p.context, add_special_tokens=False).input_ids
        ans = tok(p.candidates[0], add_special_tokens=False).input_ids
        pad = width - len(ctx) - len(ans)
        input_ids.append(ctx + ans + [tok.pad_token_id] * pad)
        labels.append([-100] * len(ctx) + ans + [-100] * pad)
        attention.append([1] * (len(ctx) + len(ans)) + [0] * pad)
    ref = model(
        input_ids=torch.tensor(input_ids), attention_mask=torch.tensor(attention), labels=torch.tensor(labels)
    ).loss
    # HF computes its loss in float32 (it upcasts logits to float32), ours in the model's float64.
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)


def test_multiple_correct_candidates_count_as_correct(tiny):
    model, tok = tiny
    p = Prompt(context="pick:", candidates=(" a", " b", " c"), label=0, correct=(0, 1, 2))
    res = scoring.evaluate(model, [scoring.encode(tok, p, 32)], tok.pad_token_id, 4)
    assert res["accuracy"] == 1.0  # whatever the argmax, every candidate is correct
