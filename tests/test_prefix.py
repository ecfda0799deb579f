"""Prefix tuning for MeZO(prefix) and FT(prefix) (zoharness.prefix): the prefix acts exactly as real context
would, packed and padded batches agree with it, cached generation matches cache-free scoring, the base
stays byte-identical, the init is a function of the run seed, and bad settings are refused by name."""

import copy

import pytest
import torch

from zoharness import models, prefix, scoring
from zoharness.methods import get_method, resolve_params
from zoharness.tasks import get_task

# float32, 2-layer tiny models: two computations of the same function differ only by GEMM shapes' rounding
# (tests/test_packing.py's bound)
TOL = 1e-5
ARCHS = ("llama", "opt")
TEXT = "the movie was a quiet triumph, and"


def _load(model_refs, arch, kernel="sdpa"):
    model, tok = models.load(model_refs[arch])
    model.set_attn_implementation(kernel)  # the prefix wraps either kernel the model runs
    return model, tok


def _build(method, model, seed=0, **params):
    m = get_method(method)
    return m.build(model, m.Params(**{**m.SMOKE_PARAMS, **params}), seed)


def _stir(model, seed=0, scale=1.0):
    """Moves the prefix off its init (as training would), so a check cannot pass on init-specific luck."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in prefix.prefix_parameters(model):
            p.add_(scale * torch.randn(p.shape, generator=g))


def _encoded(tok, task_name, n=16):
    from tests.conftest import DATA
    from zoharness.data import load_split, make_split

    task = get_task(task_name)
    split = load_split(make_split(task_name, DATA, seed=0, num_train=n, num_dev=4, num_test=4), DATA)
    objective = scoring.objective_for(task.kind)
    return [scoring.encode(tok, task.prompt(ex), 160, objective=objective) for ex in split.train]


@pytest.mark.parametrize("kernel", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ARCHS)
def test_the_initial_prefix_acts_exactly_as_its_init_tokens_would_as_real_context(model_refs, arch, kernel):
    """Initialised from real activations of tokens T, the prefixed model on X, with X's positions continuing
    after T's (P..P+n-1), computes what the plain model computes for X in T+X: every layer's keys and values
    for T in the concatenated run are those of the init run on T alone (causal attention)."""
    model, tok = _load(model_refs, arch, kernel)
    plain = copy.deepcopy(model)
    header = prefix.inject_prefix(model, 5, run_seed=7)
    assert model.config._attn_implementation == prefix.IMPLEMENTATION + kernel
    t = header["init_token_ids"]
    x = tok(TEXT, add_special_tokens=False).input_ids
    with torch.no_grad():
        concatenated = plain(input_ids=torch.tensor([t + x])).logits[0, len(t) :]
        shifted = torch.arange(len(t), len(t) + len(x))[None]
        prefixed = model(input_ids=torch.tensor([x]), position_ids=shifted).logits[0]
        # at its own positions 0..n-1 (MeZO's, what training uses) the prefix still changes the function
        own = model(input_ids=torch.tensor([x])).logits[0]
        alone = plain(input_ids=torch.tensor([x])).logits[0]
    torch.testing.assert_close(prefixed, concatenated, atol=TOL, rtol=0)
    assert float((own - alone).abs().max()) > 100 * TOL


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task_name", ["sst2", "copa"])
def test_packed_and_padded_batches_give_the_same_losses_with_the_prefix(model_refs, arch, task_name):
    """The packing probe runs after build and still packs (Llama by position ids, OPT by block mask): every
    packed sequence sees the prefix, as its padded row does."""
    model, tok = _load(model_refs, arch)
    want = scoring.packing_mode(copy.deepcopy(model))
    plain = copy.deepcopy(model)
    prefix.inject_prefix(model, 5, run_seed=0)
    _stir(model)
    mode = scoring.packing_mode(model)
    assert mode == want and mode is not None
    encoded = _encoded(tok, task_name)
    padded = scoring.collate(encoded, tok.pad_token_id)
    packed = scoring.collate(encoded, tok.pad_token_id, pack=mode)
    assert packed.input_ids.shape[0] < padded.input_ids.shape[0]  # several sequences share a row
    with torch.no_grad():
        lp_padded = scoring.token_logprobs(model, padded)
        lp_packed = scoring.token_logprobs(model, packed)
        lp_plain = scoring.token_logprobs(plain, padded)
        loss_padded, loss_packed = scoring.loss(model, padded), scoring.loss(model, packed)
    assert float((lp_packed - lp_padded).abs().max()) <= TOL
    assert abs(float(loss_packed) - float(loss_padded)) <= TOL * max(1.0, float(loss_padded))
    assert float((lp_padded - lp_plain).abs().max()) > 100 * TOL  # the prefix is in the path


@pytest.mark.parametrize("method", ["mezo_prefix", "fo_prefix"])
@pytest.mark.parametrize("arch", ARCHS)
def test_training_the_prefix_leaves_every_base_weight_byte_identical(method, arch, model_refs, small_split):
    from tests.conftest import DATA
    from zoharness.data import load_split

    model, tok = _load(model_refs, arch)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _build(method, model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    n_layers = model.config.num_hidden_layers
    assert trainable == [n for n, _ in prefix.prefix_parameters(model)] and len(trainable) == 2 * n_layers
    init = {n: p.detach().clone() for n, p in prefix.prefix_parameters(model)}
    task = get_task("sst2")
    examples = load_split(small_split, DATA).train[:4]
    batch = scoring.collate([scoring.encode(tok, task.prompt(e), 128) for e in examples], tok.pad_token_id)
    for step in range(3):
        trainer.step(batch, step)
    for name, p in model.named_parameters():
        if name in init:
            continue
        assert p.dtype == before[name].dtype and torch.equal(p, before[name]), name
    assert all(not torch.equal(p, init[n]) for n, p in prefix.prefix_parameters(model))
    assert trainer.extra_metrics()["adapter_bytes"] == sum(p.numel() * 4 for p in init.values())


def test_the_init_is_a_function_of_the_run_seed(tiny):
    from zoharness.adapters import init_seed

    model, _ = tiny
    a, b, c = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    ha, hb, hc = (prefix.inject_prefix(m, 5, s) for m, s in ((a, 3), (b, 3), (c, 4)))
    pa, pb, pc = (dict(prefix.prefix_parameters(m)) for m in (a, b, c))
    assert all(torch.equal(pa[n], pb[n]) for n in pa) and ha == hb
    assert all(not torch.equal(pa[n], pc[n]) for n in pa)
    assert ha["init_token_ids"] != hc["init_token_ids"] and ha["init_sha256"] != hc["init_sha256"]
    assert ha["init_seed"] == init_seed(3) and len(ha["init_token_ids"]) == 5
    assert all(0 <= t < model.config.vocab_size for t in ha["init_token_ids"])
    # the header's record is enough to redo the draw
    assert prefix.init_tokens(model, 3, 5) == (ha["init_seed"], ha["init_token_ids"])
    # [H_kv, P, D] per layer: the tiny Llama has 2 key/value heads of 16 dims
    assert pa["model.layers.0.self_attn.prefix_keys"].shape == (2, 5, 16)
    header = _build("mezo_prefix", copy.deepcopy(model), seed=3).trajectory_header()["zo"]["adapter"]
    assert header == ha


@pytest.mark.parametrize("kernel", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ARCHS)
def test_cached_generation_equals_cache_free_greedy_scoring(model_refs, arch, kernel):
    """model.generate (KV cache, left-padded batch as zoharness.generation) against a loop of full forwards
    on each context alone: the same tokens, and the same logits at every step."""
    model, tok = _load(model_refs, arch, kernel)
    plain = copy.deepcopy(model)
    prefix.inject_prefix(model, 5, run_seed=1)
    _stir(model, scale=3.0)
    contexts = [tok(t, add_special_tokens=False).input_ids for t in (TEXT, "a dull, tired film")]
    width, steps = max(map(len, contexts)), 6
    ids = torch.full((2, width), tok.pad_token_id)
    mask = torch.zeros((2, width), dtype=torch.long)
    for row, c in enumerate(contexts):
        ids[row, width - len(c) :], mask[row, width - len(c) :] = torch.tensor(c), 1
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            num_beams=1,
            pad_token_id=tok.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        for row, c in enumerate(contexts):
            seq = list(c)
            for step in range(steps):
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
                torch.testing.assert_close(out.logits[step][row], logits, atol=TOL, rtol=0)
                seq.append(int(logits.argmax()))
            assert out.sequences[row, width:].tolist() == seq[len(c) :]
        first_plain = plain(input_ids=torch.tensor([contexts[0]])).logits[0, -1]
    assert float((out.logits[0][0] - first_plain).abs().max()) > 100 * TOL


def test_the_saved_prefix_loads_back_onto_the_base(model_refs, small_split, tmp_path):
    model, tok = _load(model_refs, "llama")
    trainer = _build("mezo_prefix", model, lr=0.5)
    batch = scoring.collate(_encoded(tok, "sst2", n=4), tok.pad_token_id)
    for step in range(2):
        trainer.step(batch, step)
    trainer.save(tmp_path / "weights")
    assert [p.name for p in (tmp_path / "weights").iterdir()] == [prefix.SAVE_FILE]
    base, _ = _load(model_refs, "llama")
    assert prefix.load_prefix(base, tmp_path / "weights") == trainer.adapter
    with torch.no_grad():
        assert torch.equal(scoring.loss(base, batch), scoring.loss(model, batch))
    assert [n for n, p in base.named_parameters() if p.requires_grad] == [
        n for n, _ in prefix.prefix_parameters(model)
    ]


@pytest.mark.parametrize("method", ["mezo_prefix", "fo_prefix"])
def test_bad_prefix_params_name_the_key_and_value(method):
    with pytest.raises(ValueError, match=rf"{method}\.prefix_tokens must be >= 1, got 0"):
        resolve_params(method, {"prefix_tokens": 0})


def test_models_the_prefix_cannot_reach_are_refused_by_name(tiny):
    model, _ = tiny
    other = copy.deepcopy(model)
    other.config._attn_implementation_internal = "flash_attention_2"
    with pytest.raises(
        ValueError, match=r"wraps the 'sdpa' or 'eager' attention kernel.*'flash_attention_2'"
    ):
        prefix.inject_prefix(other, 5, 0)
    prefix.inject_prefix(model, 5, 0)
    with pytest.raises(ValueError, match="already carries a prefix"):
        prefix.inject_prefix(model, 5, 0)
