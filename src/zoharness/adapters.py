"""Parameter-efficient adapters for the method zoo: LoRA through peft, seeded so a ZO run over the
adapter keeps MeZO's replay (the base model plus the same adapter init plus the logged steps).

peft's own LoRA init draws lora_A from torch's global generator on the layer's device. Here the adapter
is injected by peft and then A is re-drawn from one CPU torch.Generator seeded from the run seed, in
named_parameters order, with peft's distribution (kaiming_uniform_, a=√5), and B is zero (peft's default),
so the initial adapter is the same on every machine and device. The base weights are frozen
(requires_grad False) and never written: the trainable set is the adapter.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

LORA_INIT = "lora_A: torch.nn.init.kaiming_uniform_(a=sqrt(5)) drawn on CPU from torch.Generator().manual_seed(init_seed), tensors in named_parameters order; lora_B: 0"


@dataclass(frozen=True)
class LoraSpec:
    r: int
    alpha: float
    targets: tuple[str, ...]


def init_seed(run_seed: int) -> int:
    """The adapter's init seed: a pure function of the run seed, apart from the ZO step seeds."""
    return int(np.random.SeedSequence([run_seed, 0x10A]).generate_state(1, np.uint32)[0])


def linear_module_names(model) -> list[str]:
    """The last name component of every nn.Linear in the model (what peft's target_modules match)."""
    return sorted(
        {name.rpartition(".")[2] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    )


def inject_lora(model, spec: LoraSpec, run_seed: int) -> dict:
    """Freezes the model and injects LoRA into `spec.targets` in place; returns the header's description.
    A target matching no linear layer is refused, listing the model's linear layer names."""
    import peft

    names = linear_module_names(model)
    missing = [t for t in spec.targets if t not in names]
    if missing:
        raise ValueError(
            f"lora_targets {missing} match no linear layer of {type(model).__name__}; its linear layers are "
            f"named {names}"
        )
    for p in model.parameters():
        p.requires_grad_(False)
    config = peft.LoraConfig(
        r=spec.r, lora_alpha=spec.alpha, target_modules=list(spec.targets), lora_dropout=0.0, bias="none"
    )
    peft.inject_adapter_in_model(config, model)
    seed = init_seed(run_seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name:
                fresh = torch.empty(p.shape, dtype=torch.float32)
                torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
                p.copy_(fresh.to(p.dtype))
            elif "lora_B" in name:
                p.zero_()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if not trainable or any("lora_" not in n for n in trainable):
        raise RuntimeError(f"peft left an unexpected trainable set: {trainable[:8]}")
    return {
        "kind": "lora",
        "r": spec.r,
        "alpha": spec.alpha,
        "scaling": spec.alpha / spec.r,
        "targets": list(spec.targets),
        "init": LORA_INIT,
        "init_seed": seed,
        "library": f"peft {peft.__version__} (inject_adapter_in_model, dropout 0, no bias)",
    }


def merged_copy(model):
    """A plain copy of the model with every LoRA layer merged into its base weight (W + (α/r)·B·A) and
    unwrapped: save_pretrained then writes a model that loads without peft."""
    from peft.tuners.lora import LoraLayer

    merged = copy.deepcopy(model)
    for name, module in list(merged.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = merged.get_submodule(parent_name) if parent_name else merged
            setattr(parent, child, module.get_base_layer())
    return merged


def adapter_bytes(model) -> int:
    """Bytes of the adapter's parameters (the trainable set)."""
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" in n)


@dataclass(frozen=True)
class AdapterKind:
    """What a trainer over an adapter needs to know of it: its bytes (metrics.json adapter_bytes) and how the
    trained model is saved (LoRA: merged into a plain model; a prefix: its tensors alone)."""

    measure: Callable  # (model) -> int
    save: Callable  # (model, out_dir, description) -> None


LORA = AdapterKind(
    adapter_bytes, lambda model, out_dir, description: merged_copy(model).save_pretrained(out_dir)
)
