"""ZO-Adam (ZO-Bench, Zhang et al. 2024, arXiv 2402.11592; ZO-AdaMM of Chen et al. 2019): Adam on the
ZO gradient estimate ĝ = g·z (q = 1) or (1/q)Σ g_j z_j, with torch.optim.Adam's bias-corrected update:
m ← β1 m + (1−β1) ĝ; v ← β2 v + (1−β2) ĝ²; θ ← θ − lr·m̂/(√v̂ + eps). m and v are float32 copies of the
trainable weights: memory is inference + two copies (metrics.json: zo_optimizer_state_bytes), the price
ZO-Bench reports for it. Defaults: Adam's (β 0.9/0.999, eps 1e-8); lr from ZO-Bench's grid is per
model, suites set it.

One seam overridden: the update rule (zoharness.zo.StatefulZO.apply). The step count is part of the
state; replay re-runs the updates from m = v = 0, so replay and resume stay bit-exact.
"""

import functools
import math
from dataclasses import dataclass

from zoharness.methods import mezo, require

LABEL = "ZO-Adam"
VERSION = 1
# Scheduler sizing (zoharness.cluster): the weights and Adam's two moments (float32)
MEMORY_FACTOR = 3
SMOKE_PARAMS = {**mezo.SMOKE_PARAMS, "lr": 1e-4}
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks


@dataclass(frozen=True)
class Params(mezo.Params):
    lr: float = 1e-5  # Adam-scale step; tune per suite
    betas: tuple[float, float] = (0.9, 0.999)  # torch.optim.Adam defaults
    adam_eps: float = 1e-8  # torch.optim.Adam default

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "betas", tuple(self.betas))
        for k, b in enumerate(self.betas):
            require(0 <= b < 1, f"zo_adam.betas[{k}] must be in [0, 1), got {b}")
        require(self.adam_eps > 0, f"zo_adam.adam_eps must be > 0, got {self.adam_eps}")


def _engine():
    """Built on first use: the registry lists methods without importing torch."""
    import torch

    from zoharness.zo import StatefulZO

    class AdamZO(StatefulZO):
        def __init__(self, *args, betas, adam_eps, **kw):
            super().__init__(*args, **kw)
            self.beta1, self.beta2 = betas
            self.adam_eps = adam_eps
            self.UPDATE = (
                "restore, then Adam on ĝ=g·z (m, v float32, start at 0; t counts updates): θ+=εz; "
                "m=β1·m+(1-β1)ĝ; v=β2·v+(1-β2)ĝ²; θ-=(lr/(1-β1^t))·m/(√v/√(1-β2^t)+eps); "
                f"β={tuple(betas)}, eps={adam_eps}"
            )
            self.m = [torch.zeros(t.shape, dtype=torch.float32, device=t.device) for t in self.noise.tensors]
            self.v = [torch.zeros_like(m) for m in self.m]
            self.t = 0

        def begin_update(self):
            self.t += 1

        def apply(self, i, t, direction, scale, lr):
            m = self.m[i].mul_(self.beta1).add_(direction, alpha=(1 - self.beta1) * scale)
            v = (
                self.v[i]
                .mul_(self.beta2)
                .addcmul_(direction, direction, value=(1 - self.beta2) * scale * scale)
            )
            step = lr / (1 - self.beta1**self.t)
            denom = v.sqrt().div_(math.sqrt(1 - self.beta2**self.t)).add_(self.adam_eps)
            t.sub_(m.div(denom).to(t.dtype), alpha=step)

        def state_bytes(self):
            return sum(x.numel() * x.element_size() for x in (*self.m, *self.v))

    return AdamZO


def build(model, params: Params, seed: int):
    engine = functools.partial(_engine(), betas=params.betas, adam_eps=params.adam_eps)
    return mezo.build(model, params, seed, zo_class=engine)
