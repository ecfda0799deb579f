"""Packed batches: the same examples, the same per-example losses as padding (within float rounding), and
almost no compute on padding, for every task kind; models that cannot pack fall back to padding."""

import random

import pytest
import torch

from tests.conftest import DATA
from zoharness import models, scoring
from zoharness.data import load_split, make_split
from zoharness.tasks import get_task
from zoharness.train import BatchSampler

# float32, a 2-layer model: packed and padded log-probabilities differ only by GEMM shapes' rounding.
LOGPROB_TOL = 1e-5
# Positions computed that hold no token, per real token: issue 13's bound.
MAX_PADDING = 0.10
# One task per kind: classification, multiple choice, generation (teacher forcing on the gold answer).
TASKS = ("sst2", "copa", "squad")


def _encoded(tokenizer, task_name: str, objective: str | None = None, n_train: int = 64):
    task = get_task(task_name)
    split = load_split(make_split(task_name, DATA, seed=0, num_train=n_train, num_dev=8, num_test=8), DATA)
    objective = objective or scoring.objective_for(task.kind)
    return [scoring.encode(tokenizer, task.prompt(ex), 512, objective=objective) for ex in split.train]


def test_pack_rows_places_every_sequence_once_in_order_within_bounds():
    rng = random.Random(0)
    for trial in range(200):
        lengths = [rng.randint(1, rng.choice((20, 300, 900))) for _ in range(rng.randint(1, 40))]
        rows = scoring.pack_rows(lengths, target=256)
        flat = [i for row in rows for i in row]
        assert sorted(flat) == list(range(len(lengths))), trial
        assert all(row == sorted(row) for row in rows)  # original order kept within a row
        width = max(sum(lengths[i] for i in row) for row in rows)
        assert width <= 2 * max(256, max(lengths))
        # never worse than one sequence per row (right padding)
        assert len(rows) * width <= len(lengths) * max(lengths)
        assert scoring.pack_rows(lengths, target=256) == rows  # deterministic


@pytest.mark.parametrize("arch", ["llama", "opt"])
@pytest.mark.parametrize("task_name", TASKS)
def test_packed_losses_equal_padded(model_refs, task_name, arch):
    """Llama packs by position ids, OPT by the spelled-out block mask (scoring.packing_mode)."""
    model, tok = models.load(model_refs[arch])
    mode = scoring.packing_mode(model)
    assert mode is not None
    encoded = _encoded(tok, task_name)
    for start in range(0, len(encoded), 16):
        chunk = encoded[start : start + 16]
        padded = scoring.collate(chunk, tok.pad_token_id)
        packed = scoring.collate(chunk, tok.pad_token_id, pack=mode)
        # the same examples in the same order: labels, candidates and the scored entries agree
        assert torch.equal(packed.labels, padded.labels)
        assert torch.equal(packed.candidate_mask, padded.candidate_mask)
        assert torch.equal(packed.entry_target, padded.entry_target)
        assert packed.n_tokens == padded.n_tokens
        with torch.no_grad():
            lp_padded = scoring.token_logprobs(model, padded)
            lp_packed = scoring.token_logprobs(model, packed)
            assert float((lp_packed - lp_padded).abs().max()) <= LOGPROB_TOL
            if padded.objective == "classification":
                s_padded = scoring.candidate_scores(model, padded)
                s_packed = scoring.candidate_scores(model, packed)
                finite = torch.isfinite(s_padded)
                assert torch.equal(finite, torch.isfinite(s_packed))
                assert float((s_packed[finite] - s_padded[finite]).abs().max()) <= LOGPROB_TOL
            loss_padded, loss_packed = scoring.loss(model, padded), scoring.loss(model, packed)
            assert abs(float(loss_packed) - float(loss_padded)) <= LOGPROB_TOL * max(1.0, float(loss_padded))


@pytest.mark.parametrize("task_name", TASKS)
def test_training_and_scoring_batches_spend_at_most_10_percent_on_padding(tiny, task_name):
    """The training sampler's batches (ZO: 16, FO: 8 examples) and the evaluation's length-sorted batches."""
    _, tok = tiny
    encoded = _encoded(tok, task_name, n_train=128)
    for batch_size in (16, 8):
        sampler = BatchSampler(len(encoded), batch_size, seed=0)
        real = pad = pad_before = 0
        for step in range(2 * sampler.steps_per_epoch):
            examples = [encoded[i] for i in sampler.indices(step)]
            batch = scoring.collate(examples, tok.pad_token_id, pack=True)
            real, pad = real + batch.n_tokens, pad + batch.n_padding
            pad_before += scoring.collate(examples, tok.pad_token_id).n_padding
        assert pad / real <= MAX_PADDING, (task_name, batch_size, pad / real)
        assert pad <= pad_before
    scored = _encoded(tok, task_name, objective="classification", n_train=128)
    order = sorted(range(len(scored)), key=lambda i: scored[i].length)
    real = pad = 0
    for start in range(0, len(order), 32):
        batch = scoring.collate([scored[i] for i in order[start : start + 32]], tok.pad_token_id, pack=True)
        real, pad = real + batch.n_tokens, pad + batch.n_padding
    assert pad / real <= MAX_PADDING


def test_evaluate_packed_matches_padded_predictions(tiny):
    model, tok = tiny
    encoded = _encoded(tok, "copa", objective="classification", n_train=32)
    packed = scoring.evaluate(model, encoded, tok.pad_token_id, batch_size=8)
    model._zoharness_packing = False  # force the padded path on the same model
    padded = scoring.evaluate(model, encoded, tok.pad_token_id, batch_size=8)
    assert packed["predictions"] == padded["predictions"]
    assert packed["n_tokens"] == padded["n_tokens"]
    assert packed["n_padding"] <= MAX_PADDING * packed["n_tokens"] < padded["n_padding"]


def test_probe_verdict_matches_what_the_model_computes(model_refs):
    """Whatever a model's code does with position ids, the probe's mode is what the model really computes:
    the packed batch it selects equals the padded one. Llama-family code masks by position ids; transformers
    5.23's OPT builds its mask without them, so packing by positions alone mixes sequences there and OPT
    gets the block-diagonal mask spelled out (MeZO's own models pack too)."""
    expected = {"llama": "positions", "opt": "block_mask"}
    for arch in ("llama", "opt"):
        model, tok = models.load(model_refs[arch])
        encoded = _encoded(tok, "sst2", n_train=16)
        mode = scoring.packing_mode(model)
        assert mode == expected[arch], arch
        assert _packed_diff(model, tok, encoded, mode) <= LOGPROB_TOL, arch
        assert _packed_diff(model, tok, encoded, "block_mask") <= LOGPROB_TOL, arch  # right for both
        if arch == "opt":
            assert _packed_diff(model, tok, encoded, "positions") > LOGPROB_TOL  # why OPT needs the mask
        batch = scoring.collate(encoded, tok.pad_token_id, pack=mode)
        assert batch.n_padding <= MAX_PADDING * batch.n_tokens


@torch.no_grad()
def _packed_diff(model, tok, encoded, pack) -> float:
    """Largest |log p| difference between the packed batch and the padded one."""
    want = scoring.token_logprobs(model, scoring.collate(encoded, tok.pad_token_id))
    got = scoring.token_logprobs(model, scoring.collate(encoded, tok.pad_token_id, pack=pack))
    return float((got - want).abs().max())


def test_collate_refuses_an_unknown_packing_mode(tiny):
    _, tok = tiny
    with pytest.raises(ValueError, match="pack must be False, True or one of"):
        scoring.collate(_encoded(tok, "sst2", n_train=4), tok.pad_token_id, pack="rows")
