"""FO-SGD: full-parameter fine-tuning with backpropagation and plain SGD (ZO-Bench's first-order
baseline beside FO-Adam, arXiv 2402.11592), torch.optim.SGD without momentum by default: no optimizer
state, so its memory is the weights, their gradients and the activations. Epochs and batch as FT's
(MeZO Table 15); lr is SGD's scale (ZO-Bench tunes it per model; suites set it).
"""

from dataclasses import dataclass

from zoharness.methods import fo, require

LABEL = "FT (SGD)"
VERSION = 1
# Scheduler sizing (zoharness.cluster): weights, their gradients and the activations kept for backward (an
# estimate: no optimizer state, unlike fo's 10x)
MEMORY_FACTOR = 3
# Full fine-tuning of a model larger than one GPU: FSDP over the job's GPUs (zoharness.distributed)
SHARDABLE = True
SMOKE_PARAMS = {"lr": 1e-2, "batch_size": 4, "epochs": 1}
num_steps = fo.num_steps


@dataclass(frozen=True)
class Params:
    lr: float = 1e-3  # SGD's scale; tune per suite
    epochs: int = 5  # MeZO Table 15 (FT)
    batch_size: int = 8  # MeZO Table 15 (FT)
    momentum: float = 0.0  # plain SGD (ZO-Bench's FO-SGD)
    weight_decay: float = 0.0

    def __post_init__(self):
        require(self.lr > 0, f"fo_sgd.lr must be > 0, got {self.lr}")
        require(self.epochs >= 1, f"fo_sgd.epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"fo_sgd.batch_size must be >= 1, got {self.batch_size}")
        require(0 <= self.momentum < 1, f"fo_sgd.momentum must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, f"fo_sgd.weight_decay must be >= 0, got {self.weight_decay}")


def sgd(trainable, params: Params):
    import torch

    from zoharness.distributed import param_groups

    return torch.optim.SGD(
        param_groups(trainable), lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay
    )


def build(model, params: Params, seed: int):
    describe = f"torch.optim.SGD(momentum={params.momentum}, weight_decay={params.weight_decay})"
    return fo._FO(model, params, make_optimizer=sgd, describe=describe)
