"""ZO-SGD-Sign (ZO-Bench, Zhang et al. 2024, arXiv 2402.11592; ZO-signSGD of Liu et al. 2019, signSGD of
Bernstein et al. 2018 on the ZO estimate). Two readings, a parameter:
  sign: "estimate" (default; the algorithm as ZO-signSGD states it): θ ← θ − lr·sign(ĝ), ĝ = g·z (q = 1) or
        (1/q)Σ g_j z_j: every weight moves by exactly lr, so lr is on the scale of one weight's change per
        step (1e-6..1e-5 for a 135M model), not MeZO's;
  sign: "projected" (ZO-Bench's code, zo-bench/trainer.py, its default "signOpt_orig" branch): the sign of
        the projected gradient only, θ ← θ − lr·sign(g)·z (q > 1: (1/q)Σ sign(g_j) z_j), MeZO's step with
        |g| replaced by 1.
No state: memory is MeZO's (inference level).

One seam overridden: the update rule (zoharness.zo.StatefulZO.apply).
"""

from dataclasses import dataclass

from zoharness.methods import mezo, require

LABEL = "ZO-SGD-Sign"
VERSION = 1
SMOKE_PARAMS = {**mezo.SMOKE_PARAMS, "lr": 1e-4}
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks


SIGNS = ("estimate", "projected")


@dataclass(frozen=True)
class Params(mezo.Params):
    lr: float = 1e-6  # per-coordinate step; ZO-Bench tunes it per model (suites set it)
    sign: str = "estimate"  # sign of ĝ (ZO-signSGD) | "projected": sign(g)·z (ZO-Bench's code)

    def __post_init__(self):
        super().__post_init__()
        require(self.sign in SIGNS, f"zo_sgd_sign.sign must be one of {SIGNS}, got {self.sign!r}")


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _engine(sign: str):
    """Built on first use: the registry lists methods without importing torch."""
    from zoharness.zo import ZOSGD, StatefulZO

    class SignZO(StatefulZO):
        UPDATE = "restore, then signSGD on the estimate: θ+=εz; θ-=lr·sign(g·z) (sign(0)=0)"

        def apply(self, i, t, direction, scale, lr):
            t.sub_(direction.sign().to(t.dtype), alpha=lr * _sign(scale))

    class ProjectedSignZO(ZOSGD):
        UPDATE = "SGD on the projected gradient's sign, fused with the restore: θ+=(ε-lr·sign(g))z"

        def update(self, seed, grad, lr):
            super().update(seed, _sign(grad), lr)

        def update_directions(self, seeds, grads, lr):
            super().update_directions(seeds, [_sign(g) for g in grads], lr)

    return SignZO if sign == "estimate" else ProjectedSignZO


def build(model, params: Params, seed: int):
    return mezo.build(model, params, seed, zo_class=_engine(params.sign))
