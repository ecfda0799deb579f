"""FT(prefix): first-order prefix tuning with AdamW, the same prefix as MeZO(prefix) (5 tokens, every
attention layer's keys and values, initialised from real activations of random vocabulary tokens drawn
from the run seed; zoharness.prefix), the base frozen: MeZO(prefix)'s backpropagation twin (MeZO, arXiv
2305.17333, Tables 1 and 22). Epochs and batch are FT's (MeZO Table 15). MeZO gives no FT(prefix) lr for
OPT (Table 22 reports its memory only): 1e-2 is MeZO(prefix)'s; tune per suite. The saved weights are the
prefix tensors alone (zoharness.prefix.load_prefix puts them back onto the base model).
"""

from dataclasses import dataclass

from zoharness.methods import fo, mezo_prefix

LABEL = "FT (prefix)"
VERSION = 1
# Scheduler sizing (zoharness.cluster): the frozen weights and the activations kept for backward (an estimate)
MEMORY_FACTOR = 2
SMOKE_PARAMS = {**fo.SMOKE_PARAMS, "lr": 1e-2}
num_steps = fo.num_steps


@dataclass(frozen=True)
class Params(fo.Params):
    lr: float = 1e-2  # MeZO(prefix)'s lr (no FT(prefix) grid for OPT in MeZO); tune per suite
    prefix_tokens: int = 5  # MeZO: 5 prefix tokens

    def __post_init__(self):
        super().__post_init__()
        mezo_prefix.check_prefix(self, "fo_prefix")


def build(model, params: Params, seed: int):
    from zoharness.prefix import KIND, inject_prefix

    return fo.AdapterFO(model, params, inject_prefix(model, params.prefix_tokens, seed), KIND)
