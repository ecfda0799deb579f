"""MeZO(prefix) (MeZO, arXiv 2305.17333, Table 1): MeZO's ZO-SGD over a prefix (Li & Liang 2021) of 5 virtual
tokens, every attention layer's prefix keys and values the trainable tensors, the base frozen and
untouched. Settings are MeZO Table 16's (lr grid {1e-2, 1e-3}, ε = 1e-1). The prefix is initialised from
real activations of random vocabulary tokens (MeZO's init_by_real_act), drawn from the run seed
(zoharness.prefix, which states the design and its deviations from MeZO's code), so the run replays and
resumes bit for bit from the base model and its log on the same machine.
The saved weights (Trainer.save) are the prefix tensors alone: a prefix cannot be merged into the base;
zoharness.prefix.load_prefix puts them back onto the base model.
"""

from dataclasses import dataclass

from zoharness.methods import mezo, mezo_lora, require

LABEL = "MeZO (prefix)"
VERSION = 1
SMOKE_PARAMS = {**mezo.SMOKE_PARAMS, "lr": 1e-2}
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks


@dataclass(frozen=True)
class Params(mezo.Params):
    lr: float = 1e-2  # MeZO Table 16 grid {1e-2, 1e-3}
    eps: float = 1e-1  # MeZO Table 16
    prefix_tokens: int = 5  # MeZO: 5 prefix tokens

    def __post_init__(self):
        super().__post_init__()
        check_prefix(self, "mezo_prefix")


def check_prefix(params, method: str) -> None:
    require(params.prefix_tokens >= 1, f"{method}.prefix_tokens must be >= 1, got {params.prefix_tokens}")


def build(model, params: Params, seed: int):
    from zoharness.prefix import KIND, inject_prefix

    adapter = inject_prefix(model, params.prefix_tokens, seed)
    return mezo_lora.AdapterZO(model, mezo.build(model, params, seed), adapter, KIND)
