"""FT(LoRA): first-order fine-tuning of a LoRA adapter (r = 8, α = 16 on q and v, as MeZO(LoRA)) with
AdamW, the base frozen: MeZO(LoRA)'s backpropagation twin (MeZO, arXiv 2305.17333, Tables 1 and 22).
Epochs and batch are FT's (MeZO Table 15); lr is LoRA's scale (tune per suite). The adapter is
initialised from the run seed (zoharness.adapters); the saved weights are the base with it merged in.
"""

from dataclasses import dataclass

from zoharness.methods import fo, mezo_lora

LABEL = "FT (LoRA)"
VERSION = 1
# Scheduler sizing (zoharness.cluster): the frozen weights and the activations kept for backward (an estimate)
MEMORY_FACTOR = 2
SMOKE_PARAMS = {**fo.SMOKE_PARAMS, "lr": 1e-2}
num_steps = fo.num_steps


@dataclass(frozen=True)
class Params(fo.Params):
    lr: float = 1e-4  # LoRA's customary AdamW scale; tune per suite
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        mezo_lora.check_lora(self, "fo_lora")


def build(model, params: Params, seed: int):
    from zoharness.adapters import LORA, inject_lora

    return fo.AdapterFO(model, params, inject_lora(model, mezo_lora.lora_spec(params), seed), LORA)
