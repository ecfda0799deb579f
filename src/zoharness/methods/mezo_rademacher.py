"""MeZO with Rademacher perturbations: z has independent ±1 entries (probability 1/2 each) instead of
standard normal ones. This is SPSA's original perturbation (Spall 1992, IEEE TAC 37(3)): for the same
E[z zᵀ] = I the estimate g·z has lower variance (E z⁴ = 1 against 3 for a Gaussian), and drawing
signs is cheaper than drawing normals. Everything else (ε, step, update, replay) is MeZO's.

One seam overridden: the noise distribution (zoharness.zo.SeededNoise.draw).
"""

from dataclasses import dataclass

from zoharness.methods import mezo, require

LABEL = "MeZO (Rademacher z)"
VERSION = 1
SMOKE_PARAMS = mezo.SMOKE_PARAMS
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks


@dataclass(frozen=True)
class Params(mezo.Params):
    noise: str = "torch"  # the signs come from torch generators (random_), as in version 1

    def __post_init__(self):
        super().__post_init__()
        require(self.noise == "torch", f"mezo_rademacher.noise must be 'torch', got {self.noise!r}")


def _engine():
    """Built on first use: the registry lists methods without importing torch."""
    from zoharness.zo import ZOSGD, SeededNoise

    class RademacherNoise(SeededNoise):
        DISTRIBUTION = "Rademacher: independent ±1, probability 1/2 each"
        # random_(0, 2) draws integers serially from the generator: the same z on any thread count.
        DRAW = "torch.empty(shape, dtype=torch.float32, device=device).random_(0, 2, generator=g).mul_(2).sub_(1)"

        def draw(self, z, generator):
            return z.random_(0, 2, generator=generator).mul_(2.0).sub_(1.0)

    class RademacherZO(ZOSGD):
        noise_class = RademacherNoise

    return RademacherZO


def build(model, params: Params, seed: int):
    return mezo.build(model, params, seed, zo_class=_engine())
