"""Prefix tuning (Li & Liang 2021) as MeZO runs it (arXiv 2305.17333, Table 1 "MeZO (prefix)"; MeZO's
large_models/prefix.py): P virtual tokens whose key and value states, in every attention layer, are the
trainable parameters; the base model is frozen (requires_grad False) and never written.

How the prefix enters the model. transformers 5.x calls every attention layer's kernel through
`AttentionInterface` (ALL_ATTENTION_FUNCTIONS), with the layer's key/value states [B, H_kv, S, D]
after rotary embedding and after the KV cache's update. A wrapper registered there under
"zoharness_prefix_<base>" (base: the model's own "sdpa" or "eager") prepends the layer's prefix keys
and values, expanded over the batch, and P leading attention-mask columns that every query may see,
then calls the base kernel. The same name is registered in the mask interface with the base's mask
builder, so the model builds the masks it always builds (padding, packed sequences by position ids,
a 4-D block mask passed in); the wrapper only widens them:
  * a boolean mask gets P True columns, a float (additive) one P zero columns;
  * no mask with sdpa means sdpa's is_causal (upper-left aligned); with several queries the wrapper spells
    that causal mask out, since the keys are now longer than the queries; one query sees every key;
  * a packed row: every packed sequence sees the same prefix (the columns are shared by all rows).
The KV cache holds only the sequence's own keys (the prefix is prepended at every call, after the cache
update), so cached generation and cache-free scoring compute the same function, and the positions the
model derives from the cache length stay the sequence's own.

Parameters: `prefix_keys` and `prefix_values` on each attention module, [H_kv, P, D] in the model's dtype
(MeZO keeps [P, hidden]; the element order differs, the distribution of MeZO's per-element noise does not).
They come in named_parameters order (per layer: keys, then values), which fixes the ZO noise convention.

Init (MeZO's init_by_real_act): P token ids drawn uniformly from [0, vocab_size) by a CPU torch.Generator
seeded with zoharness.adapters.init_seed(run_seed); one forward of the frozen model on them, and each
layer's key and value states for those tokens (post-rotary for Llama: the keys as the model computed them
at positions 0..P-1) become the prefix. Positions: the sequence keeps its own positions 0..n-1, as in
MeZO's code (the prefix enters as a past_key_value inside the attention, invisible to the position
computation). The init is a forward pass, so it is deterministic on one machine and device but not
bit-identical across devices; the header records its token ids and the sha256 of its bytes.

Deviations from MeZO's code: the prefix enters through transformers' attention interface instead of a
patched attention forward; MeZO's generation appends P mask columns at the model level once a cache
exists, which moves OPT's learned positions by P after the first generated token; here they do not move.
Only models whose attention goes through AttentionInterface with the "sdpa" or "eager" kernel are
supported (Llama- and OPT-family code in transformers 5.x); another is refused by name.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from zoharness.adapters import init_seed

IMPLEMENTATION = "zoharness_prefix_"  # + the base kernel's name
BASES = ("sdpa", "eager")
KEYS, VALUES = "prefix_keys", "prefix_values"
SAVE_FILE = "prefix.safetensors"
PREFIX_INIT = (
    "init_by_real_act (MeZO): token ids torch.randint(0, vocab_size, (P,)) from "
    "torch.Generator().manual_seed(init_seed) on CPU; one forward of the frozen model on them; each attention "
    "layer's key and value states (post-rotary) for those tokens"
)
POSITIONS = (
    "sequence positions unchanged (0..n-1); prefix keys as computed for the init tokens at positions 0..P-1 "
    "(MeZO's prefix.py)"
)

_capture: dict | None = None  # module -> (key, value) while the init forward runs


def _base_kernel(module, base: str):
    """The kernel the model would have called: transformers' sdpa, or the model file's own eager one."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if base == "sdpa":
        return ALL_ATTENTION_FUNCTIONS["sdpa"]
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise RuntimeError(f"{type(module).__name__}'s module has no eager_attention_forward to wrap")
    return eager


def _widen_mask(mask, n_prefix: int, query, key, causal: bool, base: str):
    """The mask for [prefix; keys]: every query may see every prefix position, the rest as given."""
    if mask is None:
        if base != "sdpa" or not causal or query.shape[2] == 1:
            return None  # eager: no mask is no masking; sdpa with one query sees every key
        # sdpa's is_causal is upper-left aligned (query i sees keys 0..i); with the prefix in front the
        # keys outnumber the queries, so spell it out
        q, s = query.shape[2], key.shape[2]
        mask = torch.arange(s, device=query.device)[None] <= torch.arange(q, device=query.device)[:, None]
        mask = mask[None, None]
    if mask.shape[-1] != key.shape[2]:
        raise RuntimeError(
            f"attention mask covers {mask.shape[-1]} keys, the layer has {key.shape[2]}: cannot add the prefix"
        )
    fill = True if mask.dtype == torch.bool else 0.0
    columns = torch.full((*mask.shape[:-1], n_prefix), fill, dtype=mask.dtype, device=mask.device)
    return torch.cat([columns, mask], dim=-1)


def _attention(base: str):
    def attention(module, query, key, value, attention_mask, **kwargs):
        if _capture is not None:
            if module in _capture:
                raise RuntimeError(f"{type(module).__name__} ran twice in one forward: cannot place a prefix")
            _capture[module] = (key.detach().clone(), value.detach().clone())
        keys = getattr(module, KEYS, None)
        if keys is not None:
            batch = key.shape[0]
            causal = kwargs.get("is_causal")
            causal = getattr(module, "is_causal", True) if causal is None else causal
            attention_mask = _widen_mask(attention_mask, keys.shape[1], query, key, causal, base)
            values = getattr(module, VALUES)
            key = torch.cat([keys.to(key.dtype)[None].expand(batch, -1, -1, -1), key], dim=2)
            value = torch.cat([values.to(value.dtype)[None].expand(batch, -1, -1, -1), value], dim=2)
        return _base_kernel(module, base)(module, query, key, value, attention_mask, **kwargs)

    return attention


def _register(base: str) -> str:
    """Registers the wrapper and its mask builder (the base's) under one name; idempotent."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    name = IMPLEMENTATION + base
    AttentionInterface.register(name, _attention(base))
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


def _switch(model) -> str:
    """The model's attention switched to the prefix wrapper around its own kernel; returns the base."""
    base = model.config._attn_implementation
    if base and base.startswith(IMPLEMENTATION):
        raise ValueError(f"{type(model).__name__} already carries a prefix")
    if base not in BASES:
        raise ValueError(
            f"prefix tuning wraps the 'sdpa' or 'eager' attention kernel; {type(model).__name__} uses {base!r}"
        )
    name = _register(base)
    model.set_attn_implementation(name)
    if model.config._attn_implementation != name:
        raise ValueError(
            f"{type(model).__name__} does not let its attention implementation be set, so it cannot carry a "
            "prefix (its attention does not go through transformers' AttentionInterface)"
        )
    return base


def _forget_packing_probe(model) -> None:
    """scoring.packing_mode caches its answer on the model object: the prefixed model is asked again."""
    if hasattr(model, "_zoharness_packing"):
        del model._zoharness_packing


def init_tokens(model, run_seed: int, n_prefix: int) -> tuple[int, list[int]]:
    """(init seed, token ids): uniform over the vocabulary (MeZO's torch.randint), seeded on CPU."""
    seed = init_seed(run_seed)
    vocab = int(getattr(model.config, "vocab_size", None) or model.get_input_embeddings().num_embeddings)
    generator = torch.Generator().manual_seed(seed)
    return seed, torch.randint(0, vocab, (n_prefix,), generator=generator).tolist()


@torch.no_grad()
def _real_activations(model, token_ids: list[int]) -> dict:
    """{attention module: (key [H_kv, P, D], value)} from one forward of the model on the tokens."""
    global _capture
    device = next(model.parameters()).device
    _capture = {}
    try:
        model.base_model(input_ids=torch.tensor([token_ids], device=device), use_cache=False)
        captured = _capture
    finally:
        _capture = None
    layers = getattr(model.config, "num_hidden_layers", None)
    if not captured or (layers is not None and len(captured) != layers):
        raise ValueError(
            f"{type(model).__name__}: {len(captured)} attention layer(s) of {layers} went through transformers' "
            "AttentionInterface; prefix tuning needs every layer to"
        )
    return {m: (k[0], v[0]) for m, (k, v) in captured.items()}


def _attach(model, tensors: dict) -> None:
    """{attention module: (keys, values)} registered as the trainable prefix; everything else frozen."""
    for p in model.parameters():
        p.requires_grad_(False)
    for module, (keys, values) in tensors.items():
        # contiguous copies: the captured states are transposed views, and ZO's passes flatten each tensor
        module.register_parameter(KEYS, torch.nn.Parameter(keys.contiguous().clone()))
        module.register_parameter(VALUES, torch.nn.Parameter(values.contiguous().clone()))


def prefix_parameters(model) -> list[tuple[str, torch.Tensor]]:
    """The prefix tensors in named_parameters order."""
    return [(n, p) for n, p in model.named_parameters() if n.rpartition(".")[2] in (KEYS, VALUES)]


def prefix_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for _, p in prefix_parameters(model))


def _digest(model) -> str:
    h = hashlib.sha256()
    for name, p in prefix_parameters(model):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def inject_prefix(model, n_prefix: int, run_seed: int) -> dict:
    """Freezes the model and gives every attention layer a prefix of n_prefix tokens initialised from real
    activations (MeZO's init_by_real_act); returns the header's description."""
    import transformers

    base = _switch(model)
    seed, tokens = init_tokens(model, run_seed, n_prefix)
    _attach(model, _real_activations(model, tokens))
    _forget_packing_probe(model)
    keys = prefix_parameters(model)[0][1]
    return {
        "kind": "prefix",
        "tokens": n_prefix,
        "init": PREFIX_INIT,
        "init_seed": seed,
        "init_token_ids": tokens,
        "init_sha256": _digest(model),
        "layout": f"{KEYS}/{VALUES} [H_kv, P, D] = {list(keys.shape)} per attention layer, post-rotary keys",
        "positions": POSITIONS,
        "attention": f"{IMPLEMENTATION}{base}: transformers {transformers.__version__} AttentionInterface "
        f"wrapper around {base!r}, the prefix prepended to every layer's keys/values and mask",
    }


def save_prefix(model, out_dir, description: dict) -> None:
    """out_dir/prefix.safetensors: the prefix tensors by parameter name, the description as metadata.
    A prefix cannot be merged into the weights: load it onto the base model with load_prefix."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().cpu().contiguous() for n, p in prefix_parameters(model)}
    save_file(tensors, str(out / SAVE_FILE), metadata={"zoharness_prefix": json.dumps(description)})


def load_prefix(model, path) -> dict:
    """The base model (as loaded by zoharness.models.load) carrying a saved prefix: its attention switched
    to the prefix wrapper, each tensor set on the module its name says; returns the saved description."""
    from safetensors import safe_open

    path = Path(path)
    file = path / SAVE_FILE if path.is_dir() else path
    with safe_open(str(file), framework="pt") as f:
        description = json.loads(f.metadata()["zoharness_prefix"])
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    _switch(model)
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    modules = {}
    for name, t in tensors.items():
        owner, _, kind = name.rpartition(".")
        modules.setdefault(model.get_submodule(owner), {})[kind] = t.to(device, dtype)
    _attach(model, {m: (kv[KEYS], kv[VALUES]) for m, kv in modules.items()})
    _forget_packing_probe(model)
    return description


def _kind():
    from zoharness.adapters import AdapterKind

    return AdapterKind(prefix_bytes, save_prefix)


KIND = _kind()  # the trainers' view of a prefix (zoharness.adapters.AdapterKind)
