"""ZO-SGD with heavy-ball momentum (ZO-SGD-MMT in ZO-Bench, Zhang et al. 2024, arXiv 2402.11592):
MeZO's two-sided estimate, then m ← β·m + g·z and θ ← θ − lr·m. The momentum buffer is a float32 copy
of the trainable weights, so memory is inference + one copy (metrics.json: zo_optimizer_state_bytes),
the price ZO-Bench reports for it. β = 0.9 is torch.optim.SGD's customary value; suites may tune it.

One seam overridden: the update rule (zoharness.zo.StatefulZO.apply). Replay re-runs the same operations
from m = 0, so resume and replay stay bit-exact.
"""

import functools
from dataclasses import dataclass

from zoharness.methods import mezo, require

LABEL = "ZO-SGD-MMT"
VERSION = 2  # 2: MeZO's Philox noise (mezo.VERSION 2)
# Scheduler sizing (zoharness.cluster): the weights and the momentum buffer
MEMORY_FACTOR = 2
SMOKE_PARAMS = mezo.SMOKE_PARAMS
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks


@dataclass(frozen=True)
class Params(mezo.Params):
    momentum: float = 0.9  # β

    def __post_init__(self):
        super().__post_init__()
        require(0 <= self.momentum < 1, f"zo_sgd_momentum.momentum must be in [0, 1), got {self.momentum}")


def _engine():
    """Built on first use: the registry lists methods without importing torch."""
    import torch

    from zoharness.zo import StatefulZO

    class MomentumZO(StatefulZO):
        def __init__(self, *args, momentum: float, **kw):
            super().__init__(*args, **kw)
            self.beta = momentum
            self.UPDATE = f"restore, then heavy-ball momentum (m float32, starts at 0): θ+=εz; m=β·m+g·z; θ-=lr·m; β={momentum}"
            self.m = [torch.zeros(t.shape, dtype=torch.float32, device=t.device) for t in self.noise.tensors]

        def apply(self, i, t, direction, scale, lr):
            m = self.m[i].mul_(self.beta).add_(direction, alpha=scale)
            t.sub_(m.to(t.dtype), alpha=lr)

        def state_bytes(self):
            return sum(m.numel() * m.element_size() for m in self.m)

    return MomentumZO


def build(model, params: Params, seed: int):
    return mezo.build(model, params, seed, zo_class=functools.partial(_engine(), momentum=params.momentum))
