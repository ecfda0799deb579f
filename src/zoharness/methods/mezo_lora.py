"""MeZO(LoRA) (MeZO, arXiv 2305.17333, Table 1): MeZO's ZO-SGD over a LoRA adapter (r = 8, α = 16 on the
attention's q and v projections), the base frozen and untouched. Settings are MeZO Table 16's (lr grid
{1e-4, 5e-5}, ε = 1e-2). The adapter is peft's LoRA, initialised from the run seed on CPU
(zoharness.adapters), so the run replays and resumes bit for bit from the base model and its log.
The saved weights (Trainer.save) are the base with the adapter merged in.
"""

from dataclasses import dataclass

from zoharness.methods import mezo, require
from zoharness.trainer import Trainer

LABEL = "MeZO (LoRA)"
VERSION = 1
SMOKE_PARAMS = {**mezo.SMOKE_PARAMS, "lr": 1e-2}
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks


@dataclass(frozen=True)
class Params(mezo.Params):
    lr: float = 1e-4  # MeZO Table 16 grid {1e-4, 5e-5}
    eps: float = 1e-2  # MeZO Table 16
    lora_r: int = 8  # MeZO Table 16
    lora_alpha: float = 16.0  # MeZO Table 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")  # MeZO: the attention's query and value

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        check_lora(self, "mezo_lora")


def check_lora(params, method: str) -> None:
    require(params.lora_r >= 1, f"{method}.lora_r must be >= 1, got {params.lora_r}")
    require(params.lora_alpha > 0, f"{method}.lora_alpha must be > 0, got {params.lora_alpha}")
    require(bool(params.lora_targets), f"{method}.lora_targets must name at least one module, got ()")


class AdapterZO(Trainer):
    """A ZO engine over an adapter (zoharness.adapters.AdapterKind: LoRA, a prefix): the adapter described in
    the header, its bytes in metrics.json, the trained model saved the adapter's way."""

    can_replay = True

    def __init__(self, model, zo, adapter: dict, kind):
        self.model, self.zo, self.adapter, self.kind = model, zo, adapter, kind

    def step(self, batch, index: int) -> dict:
        return self.zo.step(batch, index)

    def replay(self, record: dict) -> None:
        self.zo.replay(record)

    def defer(self, on: bool) -> None:
        self.zo.defer(on)

    def settle(self) -> None:
        self.zo.settle()

    def trajectory_header(self) -> dict:
        header = self.zo.trajectory_header()
        header["zo"]["adapter"] = self.adapter
        return header

    def extra_metrics(self) -> dict:
        return {**self.zo.extra_metrics(), "adapter_bytes": self.kind.measure(self.model)}

    def save(self, out_dir) -> None:
        self.settle()
        self.kind.save(self.model, out_dir, self.adapter)


def lora_spec(params):
    from zoharness.adapters import LoraSpec

    return LoraSpec(params.lora_r, params.lora_alpha, params.lora_targets)


def build(model, params: Params, seed: int):
    from zoharness.adapters import LORA, inject_lora

    adapter = inject_lora(model, lora_spec(params), seed)
    return AdapterZO(model, mezo.build(model, params, seed), adapter, LORA)
