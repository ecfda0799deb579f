"""RapidIn's caching and retrieval stages (zoharness.influence: gradients, cache, retrieve) on the tiny
Llama and 24 SST-2 training examples: per-example gradients equal a hand computation and leave the model
as it was, the cache round-trips to float16 and refuses another sketch or gradient layout, a failed build
leaves nothing behind, and sketched influence tracks the exact one."""

import copy
import dataclasses

import pytest
import torch
from scipy.stats import spearmanr

from tests.conftest import DATA
from zoharness import models, scoring
from zoharness.data import load_split
from zoharness.influence import cache, retrieve
from zoharness.influence.gradients import (
    example_gradients,
    parameter_header,
    query_examples,
    trainable_parameters,
)
from zoharness.influence.rapidgrad import RapidGrad
from zoharness.io import DataError
from zoharness.tasks import get_task

MAX_LENGTH = 96
N_QUERIES = 6


def _encode(tok, examples, objective):
    # As train.py's _encode_train does for the train set (SST-2 trains as classification).
    task = get_task("sst2")
    return [scoring.encode(tok, task.prompt(ex), MAX_LENGTH, objective=objective) for ex in examples]


@pytest.fixture(scope="module")
def setup(model_refs, small_split):
    """The tiny Llama, its 24 train examples, 6 test queries (target: the model's prediction), and every
    example's normalised gradient over all parameters, computed once for the module's read-only tests."""
    model, tok = models.load(model_refs["llama"])
    split = load_split(small_split, DATA)
    objective = scoring.objective_for(get_task("sst2").kind)
    train = _encode(tok, split.train, objective)
    gold_queries = _encode(tok, split.test[:N_QUERIES], "classification")
    queries = query_examples(model, gold_queries, tok.pad_token_id)
    params = trainable_parameters(model)
    grads = torch.stack(list(example_gradients(model, train, tok.pad_token_id, params)))
    query_grads = torch.stack(list(example_gradients(model, queries, tok.pad_token_id, params)))
    return {
        "model": model,
        "tok": tok,
        "train": train,
        "ids": [ex.uid for ex in split.train],
        "test": split.test[:N_QUERIES],
        "gold_queries": gold_queries,
        "queries": queries,
        "params": params,
        "grads": grads,
        "query_grads": query_grads,
    }


def _header_extra(setup, params=None, **over):
    extra = {
        "example_ids": setup["ids"],
        "model": "tiny-llama",
        "parameters": parameter_header(params or setup["params"]),
    }
    extra.update(over)
    return extra


def _by_hand(model, ex, pad_id):
    """loss.backward() on a fresh copy, then each parameter's .grad over its own norm, concatenated."""
    twin = copy.deepcopy(model)
    twin.zero_grad(set_to_none=True)
    scoring.loss(twin, scoring.collate([ex], pad_id)).backward()
    return torch.cat([p.grad.reshape(-1) / p.grad.norm() for _, p in twin.named_parameters()])


def test_example_gradient_equals_backward_on_a_copy_and_leaves_the_model_untouched(model_refs, setup):
    model, tok = models.load(model_refs["llama"])
    model.train()  # example_gradients must evaluate in eval mode and give the mode back
    params = trainable_parameters(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    marker = params[3][1]
    marker.grad = torch.full_like(marker, 0.5)  # an accumulated .grad that must survive
    train = setup["train"]
    examples = [train[0], next(ex for ex in train if ex.label != train[0].label)]  # one of each label
    got = list(example_gradients(model, examples, tok.pad_token_id, params))

    assert model.training
    assert torch.equal(marker.grad, torch.full_like(marker, 0.5))
    assert all(p.grad is None for _, p in params if p is not marker)
    assert all(p.requires_grad for _, p in params)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    model.eval()
    dim = sum(p.numel() for _, p in params)
    for ex, g in zip(examples, got, strict=True):
        assert g.dtype == torch.float32 and g.shape == (dim,)
        torch.testing.assert_close(g, _by_hand(model, ex, tok.pad_token_id), rtol=1e-5, atol=1e-6)
        # Every tensor's block has norm 1: |g|^2 is the number of tensors.
        assert g.norm().item() ** 2 == pytest.approx(len(params), rel=1e-5)
    assert len(params) == 20  # tied lm_head counted once (as embed_tokens)


def test_parameter_subset_is_the_matching_slice_and_unknown_names_are_refused(model_refs, setup):
    model, tok = models.load(model_refs["llama"])
    full = trainable_parameters(model)
    names = [n for n, _ in full]
    offsets = torch.tensor([0] + [p.numel() for _, p in full]).cumsum(0).tolist()
    pick = [5, 0, 12]  # listed out of order: the layout follows the model's order
    subset = trainable_parameters(model, [names[i] for i in pick])
    assert [n for n, _ in subset] == [names[i] for i in sorted(pick)]
    got = next(example_gradients(model, setup["train"][:1], tok.pad_token_id, subset))
    want = torch.cat([setup["grads"][0, offsets[i] : offsets[i + 1]] for i in sorted(pick)])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)

    with pytest.raises(
        ValueError, match=r"unknown parameter 'model\.layers\.9\.mlp\.up_proj\.weight'"
    ) as err:
        trainable_parameters(model, [names[0], "model.layers.9.mlp.up_proj.weight"])
    assert "model.layers.1.mlp.up_proj.weight" in str(err.value)  # a close valid name is suggested
    with pytest.raises(ValueError, match="more than once"):
        trainable_parameters(model, [names[0], names[0]])

    # A frozen parameter: left out by default, its gradient given when named, its flag restored.
    frozen = dict(model.named_parameters())[names[5]]
    frozen.requires_grad_(False)
    assert names[5] not in [n for n, _ in trainable_parameters(model)]
    again = next(example_gradients(model, setup["train"][:1], tok.pad_token_id, subset))
    torch.testing.assert_close(again, got, rtol=1e-5, atol=1e-6)
    assert not frozen.requires_grad and frozen.grad is None


def test_non_finite_loss_names_the_example(model_refs, setup):
    model, tok = models.load(model_refs["llama"])
    calls = []

    def nan_on_third_forward(module, args, output):
        # The embeddings are tied to the LM head, so a NaN weight row would poison every example's
        # log-softmax; a hook poisons one example's forward instead.
        calls.append(1)
        return output * float("nan") if len(calls) == 3 else None

    model.get_input_embeddings().register_forward_hook(nan_on_third_forward)
    train, i = setup["train"], 2
    model.train()  # the mode to restore when the generator fails
    gen = example_gradients(model, train[: i + 1], tok.pad_token_id, trainable_parameters(model))
    assert all(torch.isfinite(next(gen)).all() for _ in range(i))  # examples before i are fine
    with pytest.raises(FloatingPointError, match=rf"example {i} .*non-finite loss \(nan\)"):
        next(gen)
    assert model.training


def test_query_target_is_the_prediction_by_default_or_the_gold_label(setup):
    model, tok, gold = setup["model"], setup["tok"], setup["gold_queries"]
    predictions = scoring.evaluate(model, gold, tok.pad_token_id, batch_size=4)["predictions"]
    assert [q.label for q in setup["queries"]] == predictions
    assert query_examples(model, gold, tok.pad_token_id, target="gold") == gold
    predicted = query_examples(model, gold, tok.pad_token_id)
    assert [q.label for q in predicted] == predictions
    assert [dataclasses.replace(q, label=g.label) for q, g in zip(predicted, gold, strict=True)] == gold
    # Where the model is wrong, the query's gradient is that of another loss than the gold one's.
    wrong = [i for i, (q, g) in enumerate(zip(predicted, gold, strict=True)) if q.label != g.label]
    assert wrong, "the random tiny model should get some of the 6 queries wrong"
    a, b = example_gradients(model, [predicted[wrong[0]], gold[wrong[0]]], tok.pad_token_id, setup["params"])
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="objective 'lm'"):
        query_examples(model, _encode(tok, setup["test"][:1], "lm"), tok.pad_token_id)
    with pytest.raises(ValueError, match="target must be one of"):
        query_examples(model, gold, tok.pad_token_id, target="label")


def test_cache_round_trips_to_float16_and_is_byte_identical(setup, tmp_path):
    grads, n = setup["grads"], len(setup["ids"])
    rg = RapidGrad(grads.shape[1], (256, 4096), seed=3)
    extra = _header_extra(setup)
    # block=5 does not divide 24: the last block is short.
    header = cache.build_cache(iter(grads), n, rg, tmp_path / "a.safetensors", extra, block=5)
    cache.build_cache(iter(grads), n, rg, tmp_path / "b.safetensors", extra, block=7)
    a, b = (tmp_path / "a.safetensors").read_bytes(), (tmp_path / "b.safetensors").read_bytes()
    assert a == b

    wanted = {"sketch": rg.header(), **extra}
    loaded_header, sketches = cache.load_cache(tmp_path / "a.safetensors", wanted)
    assert loaded_header == header and header["n"] == n and header["dtype"] == "float16"
    assert header["parameters"]["names"][0] == "model.embed_tokens.weight"
    direct = rg.sketch_batch(grads)
    for k in rg.ks:
        assert sketches[k].dtype == torch.float16 and sketches[k].shape == (n, k)
        # Within float16 rounding (half an ulp, 2^-11 relative) of sketching the gradients directly.
        err = (sketches[k].float() - direct[k]).abs()
        assert bool((err <= direct[k].abs() * 2**-10 + 1e-7).all())
    assert 2 * n * sum(rg.ks) < len(a) <= cache.estimate_bytes(n, rg.ks, extra)


def test_cache_of_another_sketch_or_gradient_layout_is_refused(setup, tmp_path):
    grads, n = setup["grads"], len(setup["ids"])
    rg = RapidGrad(grads.shape[1], 256, seed=0)
    path = tmp_path / "c.safetensors"
    cache.build_cache(iter(grads), n, rg, path, _header_extra(setup))

    def wanted(sketch=rg, **over):
        return {"sketch": sketch.header(), **_header_extra(setup, **over)}

    with pytest.raises(DataError, match=r"c\.safetensors: header seed is 0, but the run asks for 1"):
        cache.load_cache(path, wanted(RapidGrad(grads.shape[1], 256, seed=1)))
    with pytest.raises(DataError, match=r"header ks is \[256\], but the run asks for \[512\]"):
        cache.load_cache(path, wanted(RapidGrad(grads.shape[1], 512, seed=0)))
    subset = trainable_parameters(setup["model"], [setup["params"][0][0]])
    with pytest.raises(
        DataError,
        match=r"header parameters\.dim is 90560, but the run asks for 16512; header parameters\.names is .*",
    ):
        cache.load_cache(path, wanted(parameters=parameter_header(subset)))
    swapped = list(reversed(setup["ids"]))
    with pytest.raises(DataError, match=r"header example_ids is .*\(first difference at index 0: 'train:"):
        cache.load_cache(path, wanted(example_ids=swapped))
    with pytest.raises(DataError, match="header model is 'tiny-llama', but the run asks for 'tiny-opt'"):
        cache.load_cache(path, wanted(model="tiny-opt"))
    cache.load_cache(path, wanted())  # the matching header still loads


def test_interrupted_or_short_build_leaves_no_file(setup, tmp_path):
    grads, n = setup["grads"], len(setup["ids"])
    rg = RapidGrad(grads.shape[1], 256, seed=0)
    extra = _header_extra(setup)

    def killed_midway():
        yield from grads[:10]
        raise RuntimeError("killed at example 10")

    with pytest.raises(RuntimeError, match="killed at example 10"):
        cache.build_cache(killed_midway(), n, rg, tmp_path / "new.safetensors", extra, block=4)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="expected 24 gradients, got 23"):
        cache.build_cache(iter(grads[:23]), n, rg, tmp_path / "new.safetensors", extra)
    assert list(tmp_path.iterdir()) == []

    # A failed rebuild keeps the previous cache as it was, and no temporary file.
    old = tmp_path / "old.safetensors"
    cache.build_cache(iter(grads), n, rg, old, extra)
    before = old.read_bytes()
    with pytest.raises(RuntimeError):
        cache.build_cache(killed_midway(), n, rg, old, extra)
    assert old.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["old.safetensors"]


def test_retrieval_from_the_cache_equals_retrieval_from_fresh_sketches(setup, tmp_path):
    grads, ids = setup["grads"], setup["ids"]
    rg = RapidGrad(grads.shape[1], 4096, seed=5)
    path = tmp_path / "r.safetensors"
    cache.build_cache(iter(grads), len(ids), rg, path, _header_extra(setup), block=8)
    _, cached = cache.load_cache(path, {"sketch": rg.header(), **_header_extra(setup)})
    query = rg.sketch_batch(setup["query_grads"])[4096]
    fresh = rg.sketch_batch(grads)[4096]

    from_cache = retrieve.scores(cached[4096], query, block=5)
    torch.testing.assert_close(from_cache, query @ cached[4096].float().T, rtol=1e-6, atol=1e-5)
    from_fresh = retrieve.scores(fresh, query)
    torch.testing.assert_close(from_cache, from_fresh, rtol=0, atol=2e-2)  # float16 storage only
    top_cache, top_fresh = retrieve.top_k(from_cache, ids, 3), retrieve.top_k(from_fresh, ids, 3)
    assert len(top_cache) == N_QUERIES
    for a, b in zip(top_cache, top_fresh, strict=True):
        assert [i for i, _ in a["helpful"]] == [i for i, _ in b["helpful"]]
        assert [i for i, _ in a["harmful"]] == [i for i, _ in b["harmful"]]
        assert a["helpful"][0][1] >= a["helpful"][-1][1] >= a["harmful"][-1][1] >= a["harmful"][0][1]
    with pytest.raises(ValueError, match="sketches of another K"):
        retrieve.scores(cached[4096], query[:, :256])


def test_sketched_influence_tracks_the_exact_one(setup):
    grads, query_grads = setup["grads"], setup["query_grads"]
    exact = retrieve.exact_scores(grads, query_grads).flatten().numpy()

    def rho(k):
        rg = RapidGrad(grads.shape[1], k, seed=0)
        sketched = retrieve.scores(rg.sketch_batch(grads)[k], rg.sketch_batch(query_grads)[k])
        return spearmanr(sketched.flatten().numpy(), exact).statistic

    # D = 90560; the estimate's variance is about (|u|^2 |v|^2 + <u,v>^2)/K, with |u|^2 = 20 tensors.
    large, small = rho(16384), rho(16)
    assert large > 0.99
    assert 0 < small < large


def test_an_example_is_its_own_most_influential_example(setup):
    # Per-tensor normalisation makes every tensor's block a unit vector, so <g, h> = sum over tensors of
    # cosines <= the number of tensors, with equality for h = g only (unless two examples' gradients
    # point the same way in every tensor). Unnormalised, a large-gradient example could outrank g itself.
    grads, ids = setup["grads"], setup["ids"]
    self_scores = retrieve.exact_scores(grads, grads)
    n_tensors = len(setup["params"])
    torch.testing.assert_close(self_scores.diagonal(), torch.full((len(ids),), float(n_tensors)))
    off = self_scores - torch.diag(self_scores.diagonal()) - 1e9 * torch.eye(len(ids))
    assert bool((off.max(dim=1).values < n_tensors - 0.1).all())
    assert [row["helpful"][0][0] for row in retrieve.top_k(self_scores, ids, 1)] == ids


@pytest.mark.parametrize("task_name", ["sst2", "squad"])
def test_token_wise_rows_sum_to_the_example_gradient_and_its_influence(model_refs, task_name):
    """Token-wise influence: one row per target token (SST-2: the two candidates' tokens, cross-entropy;
    SQuAD: the answer's tokens, teacher forcing) and the rows add up to the example's normalised gradient,
    so the tokens' influences on a query add up to the example's."""
    from zoharness.data import make_split
    from zoharness.influence.gradients import token_gradients

    model, tok = models.load(model_refs["llama"])
    task = get_task(task_name)
    split = load_split(make_split(task_name, DATA, 0, num_train=6, num_dev=0, num_test=2), DATA)
    objective = scoring.objective_for(task.kind)
    train = [scoring.encode(tok, task.prompt(ex), 256, objective=objective) for ex in split.train]
    params = trainable_parameters(model)
    query = next(example_gradients(model, [train[-1]], tok.pad_token_id, params))
    for ex, whole in zip(
        train[:3], example_gradients(model, train[:3], tok.pad_token_id, params), strict=False
    ):
        rows, info = token_gradients(model, ex, tok.pad_token_id, params)
        assert rows.shape == (len(ex.entries), whole.numel()) and len(info) == len(ex.entries)
        if task_name == "squad":
            assert len(info) > 1  # an answer of several tokens
        torch.testing.assert_close(rows.sum(0), whole, rtol=1e-4, atol=1e-5)
        token_scores = rows.double() @ query.double()
        assert float(token_scores.sum()) == pytest.approx(
            float(whole.double() @ query.double()), rel=1e-4, abs=1e-4
        )
