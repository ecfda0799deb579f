"""ZO-SGD-Cons (ZO-Bench, Zhang et al. 2024, arXiv 2402.11592, the "conservative" ZO-SGD): after MeZO's
estimate, the batch loss is evaluated at θ, θ − lr·ĝ and θ + lr·ĝ, and the step keeps the lowest of the
three (ties: the SGD move, then θ). A step never raises the batch loss it started from, at the price of
three more forwards (2q + 3 per step; forward_passes in the log).

Order of the weight operations (replay repeats them, so replay and resume are bit-exact):
  estimate and restore (as MeZO, q directions); L0 = L(θ); θ += lr·ĝ → L(θ+); θ −= 2lr·ĝ → L(θ−);
  then from θ−: keep (SGD move), or θ += lr·ĝ (back to θ), or θ += 2lr·ĝ (θ+).
The SGD move (the common case) ends exactly at the weights its loss was measured at; the other two
return there up to one rounding per weight. ĝ's moves are axpy passes along each direction
(coefficient ±lr·g_j/q), so the method keeps MeZO's inference-level memory.

ZO-Bench's code (zo-bench/trainer.py, zo_conserv_step) evaluates θ − lr·ĝ first and then θ + lr·ĝ, and
breaks ties differently (between the two moves it keeps θ + lr·ĝ); the kept point, the minimum of the
three losses, is the same otherwise. Evaluating θ + lr·ĝ first here makes the common case, the SGD move,
end exactly at the weights whose loss was measured.
"""

from dataclasses import dataclass

from zoharness.methods import mezo

LABEL = "ZO-SGD-Cons"
VERSION = 1
SMOKE_PARAMS = mezo.SMOKE_PARAMS
num_steps = mezo.num_steps
check_variant = mezo.check_variant  # the objective fits the suite's tasks

CHOICES = ("minus", "none", "plus")  # preference order on ties: the SGD move first


@dataclass(frozen=True)
class Params(mezo.Params):
    pass


def _engine():
    """Built on first use: the registry lists methods without importing torch."""
    import torch

    from zoharness.zo import ZOSGD, direction_seeds

    class ConservativeZO(ZOSGD):
        UPDATE = (
            "conservative: restore; L0=L(θ); θ+=lr·ĝ; L+=L(θ); θ-=2lr·ĝ; L-=L(θ); keep argmin of "
            "(L-, L0, L+) in that order: from θ-lr·ĝ, none / +lr·ĝ / +2lr·ĝ; ĝ moves as axpy along each z_j "
            "with coefficient c·g_j/q"
        )

        @torch.no_grad()
        def step(self, batch, index: int) -> dict:
            self.noise.timer.pop()
            seeds = direction_seeds(self.run_seed, index, self.queries)
            record = self.estimate_directions(batch, seeds, index) if self.queries > 1 else None
            if record is None:
                record = self.estimate(batch, seeds[0], index)
                self.restore(seeds[0])
            grads = self.directions(record)[1]
            losses = {"none": self._loss(batch, "forward_current")}
            self.axpy_directions(seeds, grads, self.lr)
            losses["plus"] = self._loss(batch, "forward_candidate")
            self.axpy_directions(seeds, grads, -2.0 * self.lr)
            losses["minus"] = self._loss(batch, "forward_candidate")
            choice = min(CHOICES, key=lambda c: (losses[c], CHOICES.index(c)))
            self._finish(seeds, grads, choice, self.lr)
            record.update(
                cons_losses={c: losses[c] for c in CHOICES},
                cons_choice=choice,
                forward_passes=record["forward_passes"] + 3,
                phases_s=self.noise.timer.pop(),
            )
            return record

        def _finish(self, seeds, grads, choice, lr):
            if choice != "minus":
                self.axpy_directions(seeds, grads, lr if choice == "none" else 2.0 * lr)

        @torch.no_grad()
        def replay(self, record: dict) -> None:
            seeds, grads = self.directions(record)
            for seed in seeds:
                self.replay_estimate(seed)
                self.restore(seed)
            self.axpy_directions(seeds, grads, record["lr"])
            self.axpy_directions(seeds, grads, -2.0 * record["lr"])
            self._finish(seeds, grads, record["cons_choice"], record["lr"])

    return ConservativeZO


def forwards_per_step(params: Params) -> int:
    """The estimate's 2q forwards plus L(θ) and the two candidates (zoharness.methods.expected_forwards)."""
    return 2 * params.queries + 3


def build(model, params: Params, seed: int):
    return mezo.build(model, params, seed, zo_class=_engine())
