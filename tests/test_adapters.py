"""LoRA adapters for MeZO(LoRA) and FT(LoRA): the base stays byte-identical, the init is a function of the
run seed, the merged save computes what the adapted model computes, and bad targets are refused."""

import copy

import pytest
import torch

from zoharness import scoring
from zoharness.methods import get_method
from zoharness.tasks import get_task


def _batch(tok, split, n=4):
    from tests.conftest import DATA
    from zoharness.data import load_split

    task = get_task("sst2")
    examples = load_split(split, DATA).train[:n]
    return scoring.collate([scoring.encode(tok, task.prompt(e), 128) for e in examples], tok.pad_token_id)


def _build(method, model, seed=0, **params):
    m = get_method(method)
    return m.build(model, m.Params(**{**m.SMOKE_PARAMS, **params}), seed)


def _base(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}


@pytest.mark.parametrize("method", ["mezo_lora", "fo_lora"])
def test_training_the_adapter_leaves_every_base_weight_byte_identical(method, tiny, small_split):
    model, tok = tiny
    before = _base(model)
    trainer = _build(method, model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in trainable} == {"q_proj", "v_proj"}
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    batch = _batch(tok, small_split)
    for t in range(3):
        trainer.step(batch, t)
    for name, p in model.named_parameters():
        if "lora_" in name:
            continue
        assert torch.equal(p, before[name.replace(".base_layer", "")]), name
    assert any(not torch.equal(p, lora_before[n]) for n, p in model.named_parameters() if "lora_" in n)
    assert trainer.extra_metrics()["adapter_bytes"] == sum(
        p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" in n
    )


def test_the_adapter_init_is_a_function_of_the_run_seed(tiny):
    model, _ = tiny
    a, b, c = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    _build("mezo_lora", a, seed=3), _build("mezo_lora", b, seed=3), _build("mezo_lora", c, seed=4)
    lora = lambda m: {n: p for n, p in m.named_parameters() if "lora_" in n}  # noqa: E731
    assert all(torch.equal(x, y) for x, y in zip(lora(a).values(), lora(b).values(), strict=True))
    assert any(not torch.equal(x, y) for x, y in zip(lora(a).values(), lora(c).values(), strict=True))
    # B starts at zero: the adapted model computes the base model's function before the first step
    assert all(not p.any() for n, p in lora(a).items() if "lora_B" in n)
    header = _build("mezo_lora", copy.deepcopy(model), seed=3).trajectory_header()["zo"]["adapter"]
    assert header["r"] == 8 and header["alpha"] == 16.0
    assert header["init_seed"] and "kaiming_uniform_" in header["init"]


def test_the_merged_save_computes_what_the_adapted_model_computes(tiny, small_split, tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = tiny
    trainer = _build("mezo_lora", model, lr=0.5)
    batch = _batch(tok, small_split)
    for t in range(3):
        trainer.step(batch, t)
    trainer.save(tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora_" in n for n, _ in reloaded.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(
            scoring.loss(reloaded, batch), scoring.loss(model, batch), atol=1e-5, rtol=0
        )


def test_lora_targets_that_match_nothing_are_refused_listing_the_models_layers(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match=r"lora_targets \['qkv'\] match no linear layer.*'q_proj'"):
        _build("mezo_lora", model, lora_targets=["qkv"])


@pytest.mark.parametrize("key,value", [("lora_r", 0), ("lora_alpha", 0.0), ("lora_targets", [])])
def test_bad_adapter_params_name_the_key_and_value(key, value):
    from zoharness.methods import resolve_params

    with pytest.raises(ValueError, match=rf"mezo_lora\.{key} must"):
        resolve_params("mezo_lora", {key: value})
