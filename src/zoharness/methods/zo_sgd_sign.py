"""ZO-SGD-Sign (ZO-Bench, Zhang et al. 2024, arXiv 2402.11592; signSGD of Bernstein et al. 2018 on the
ZO estimate): θ ← θ − lr·sign(ĝ), ĝ = g·z (q = 1) or (1/q)Σ g_j z_j. The step size is the same for every
coordinate, so lr is on the scale of one weight's change per step (1e-6..1e-5 for a 135M model), not
MeZO's. No state: memory is MeZO's (inference level).

One seam overridden: the update rule (zoharness.zo.StatefulZO.apply).
"""

from dataclasses import dataclass

from zoharness.methods import mezo

LABEL = "ZO-SGD-Sign"
VERSION = 1
SMOKE_PARAMS = {**mezo.SMOKE_PARAMS, "lr": 1e-4}
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks


@dataclass(frozen=True)
class Params(mezo.Params):
    lr: float = 1e-6  # per-coordinate step; ZO-Bench tunes it per model (suites set it)


def _engine():
    """Built on first use: the registry lists methods without importing torch."""
    from zoharness.zo import StatefulZO

    class SignZO(StatefulZO):
        UPDATE = "restore, then signSGD on the estimate: θ+=εz; θ-=lr·sign(g·z) (sign(0)=0)"

        def apply(self, i, t, direction, scale, lr):
            sign = (scale > 0) - (scale < 0)
            t.sub_(direction.sign().to(t.dtype), alpha=lr * sign)

    return SignZO


def build(model, params: Params, seed: int):
    return mezo.build(model, params, seed, zo_class=_engine())
