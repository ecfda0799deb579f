"""FO: full-parameter fine-tuning with backpropagation and AdamW (MeZO's FT baseline).

Defaults follow MeZO Table 15 (FT with full parameters): 5 epochs, batch 8, constant lr from
{1e-5, 5e-5, 8e-5}, no weight decay. MeZO's FT ran with mixed precision; here the weights' dtype is
the run's `dtype` (float32 by default), recorded in run_config.json.

AdamW is torch's fused implementation (one kernel per step over all parameters): on 2 CPU cores it takes
0.14 s per step for SmolLM2-135M against 0.85 s for the default for-loop (version 2; same update rule,
different rounding).
"""

import math
from dataclasses import dataclass

from zoharness.methods import added_later, require
from zoharness.trainer import Trainer

LABEL = "FT (AdamW)"
VERSION = 2  # 2: fused AdamW
# Scheduler sizing (zoharness.cluster): peak device memory / weights. MeZO Table 22 (OPT, float16): FT with Adam
# needs about 10x the weights (27 GB for 1.3B, 55 GB for 2.7B; MeZO 4 and 7 GB).
MEMORY_FACTOR = 10
# Full fine-tuning of a model larger than one GPU: FSDP over the job's GPUs (zoharness.distributed)
SHARDABLE = True
SMOKE_PARAMS = {"lr": 1e-3, "batch_size": 4, "epochs": 1}


@dataclass(frozen=True)
class Params:
    lr: float = 1e-5  # MeZO Table 15 grid {1e-5, 5e-5, 8e-5}
    epochs: int = 5  # MeZO Table 15
    batch_size: int = 8  # MeZO Table 15
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW defaults (HF Trainer)
    adam_eps: float = 1e-8
    # A fixed number of steps instead of epochs (MeZO's RoBERTa FT: 1K steps, Table 15); None: epochs decide.
    steps: int | None = added_later(None)

    def __post_init__(self):
        require(self.lr > 0, f"fo.lr must be > 0, got {self.lr}")
        require(self.epochs >= 1, f"fo.epochs must be >= 1, got {self.epochs}")
        require(self.steps is None or self.steps >= 1, f"fo.steps must be >= 1 (or null), got {self.steps}")
        require(self.batch_size >= 1, f"fo.batch_size must be >= 1, got {self.batch_size}")
        require(self.weight_decay >= 0, f"fo.weight_decay must be >= 0, got {self.weight_decay}")
        object.__setattr__(self, "betas", tuple(self.betas))


def num_steps(params: Params, n_train: int, kind: str | None = None) -> int:
    if getattr(params, "steps", None) is not None:
        return params.steps
    return params.epochs * math.ceil(n_train / params.batch_size)


def adamw(trainable, params: Params):
    import torch

    from zoharness.distributed import param_groups

    return torch.optim.AdamW(
        param_groups(trainable),
        lr=params.lr,
        betas=params.betas,
        eps=params.adam_eps,
        weight_decay=params.weight_decay,
        fused=True,
    )


class _FO(Trainer):
    """Backpropagation over the trainable parameters (every weight, unless the method froze some first:
    train_all=False keeps the requires_grad flags the model has, e.g. a LoRA adapter's)."""

    def __init__(
        self,
        model,
        params,
        make_optimizer=adamw,
        describe: str = "torch.optim.AdamW(fused=True)",
        train_all: bool = True,
    ):
        self.model = model
        if train_all:
            for p in model.parameters():
                p.requires_grad_(True)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.trainable, params)
        self.lr, self.describe = params.lr, describe

    def step(self, batch, index: int) -> dict:
        import torch

        from zoharness import distributed, scoring
        from zoharness.zo import NonFiniteLossError

        loss = scoring.loss(self.model, batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"step {index}: loss is not finite ({float(loss)})")
        loss.backward()
        if distributed.launched():  # FSDP averaged the sharded blocks' gradients; the replicated rest here
            distributed.average_replicated_grads(self.trainable)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": float(loss.detach()), "lr": self.lr, "forward_passes": 1}

    def trajectory_header(self) -> dict:
        return {"optimizer": self.describe}

    def extra_metrics(self) -> dict:
        """Trainable parameters and the optimizer state's bytes (AdamW: two copies; SGD: none)."""
        state = sum(
            v.numel() * v.element_size()
            for per_param in self.optimizer.state.values()
            for v in per_param.values()
            if hasattr(v, "numel") and v.dim() > 0
        )
        return {
            "fo_trainable_parameters": sum(p.numel() for p in self.trainable),
            "fo_optimizer_state_bytes": state,
        }


def build(model, params: Params, seed: int):
    return _FO(model, params)


class AdapterFO(_FO):
    """Backpropagation over an adapter only (zoharness.adapters.AdapterKind: LoRA, a prefix), the base frozen
    by the adapter's injection: described in the header, its bytes in metrics.json, saved its way."""

    def __init__(self, model, params, adapter: dict, kind):
        super().__init__(model, params, train_all=False)
        self.adapter, self.kind = adapter, kind

    def trajectory_header(self) -> dict:
        return {**super().trajectory_header(), "adapter": self.adapter}

    def extra_metrics(self) -> dict:
        return {**super().extra_metrics(), "adapter_bytes": self.kind.measure(self.model)}

    def save(self, out_dir) -> None:
        self.kind.save(self.model, out_dir, self.adapter)
