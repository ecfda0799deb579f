"""The forward-gradient method (Baydin et al. 2022, "Gradients without backpropagation"; ZO-Bench's FG,
arXiv 2402.11592): the exact directional derivative ∇L(θ)·z by forward-mode AD (torch.func.jvp), one
forward carrying the tangent z instead of MeZO's two perturbed forwards, then θ ← θ − lr·(∇L·z)·z.
z follows MeZO's seeded noise convention, so replay and resume are bit-exact (the update is the same
axpy along z as MeZO's). Memory on top of inference: the tangent (a copy of the trainable weights) and
the forward's tangent activations (zoharness.zo.ForwardGradient).
"""

from dataclasses import dataclass

from zoharness.methods import mezo, require

LABEL = "Forward-Grad"
VERSION = 2  # 2: the jvp goes through F.linear on oneDNN-routed models (version 1 got a 0 derivative there)
# Scheduler sizing (zoharness.cluster): the weights and a tangent of the same size (torch.func.jvp)
MEMORY_FACTOR = 2
SMOKE_PARAMS = mezo.SMOKE_PARAMS
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks


@dataclass(frozen=True)
class Params(mezo.Params):
    lr: float = 1e-6  # MeZO's scale: the estimate has the same variance structure as MeZO's at ε → 0

    def __post_init__(self):
        super().__post_init__()
        # a step function's derivative is zero almost everywhere: only the differentiable objective
        require(self.objective == "loss", f"forward_grad.objective must be 'loss', got {self.objective!r}")


def forwards_per_step(params: Params) -> int:
    """One forward carrying tangents, about three plain ones (zoharness.methods.expected_forwards)."""
    return 3 * params.queries


def build(model, params: Params, seed: int):
    from zoharness.zo import ForwardGradient

    return mezo.build(model, params, seed, zo_class=ForwardGradient)
