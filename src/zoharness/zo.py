"""Seed-replayed Gaussian perturbations and the ZO-SGD (MeZO) step.

The noise convention (also written into every ZO trajectory header, so another implementation can
replay a run):
  * step seed:   s_t = int(numpy.random.SeedSequence([run_seed, t]).generate_state(1, numpy.uint32)[0])
  * tensor seed: the i-th trainable tensor (named_parameters() order, tied weights once) uses
                 k_i = int(numpy.random.SeedSequence(s_t).generate_state(n_tensors, numpy.uint64)[i])
  * noise:       z_i = torch.empty(shape_i, dtype=float32, device=D).normal_(0, 1, generator=G) where G is
                 a torch.Generator on device D seeded with manual_seed(k_i); added to the weight in the
                 weight's dtype (z_i.to(weight.dtype)).
One generator per tensor makes tensors independent of each other, so they can be drawn in parallel
threads (two CPU threads halve the cost here) and a z can be regenerated for any tensor alone.

A step, MeZO Algorithm 1 with restore and update fused (θ += (ε - lr·g)·z instead of θ += ε·z followed
by θ -= lr·g·z: identical in exact arithmetic, one rounding and one pass over the weights fewer):
  θ += ε z;  L+ = L(θ);  θ -= 2ε z;  L- = L(θ);  g = (L+ - L-) / (2ε);  θ += (ε - lr·g) z
Replaying the three weight updates of each logged step (no forward passes) rebuilds the final weights
bit for bit, because it repeats the same floating-point operations on the same z.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from zoharness import scoring


class NonFiniteLossError(FloatingPointError):
    pass


def step_seed(run_seed: int, step: int) -> int:
    return int(np.random.SeedSequence([run_seed, step]).generate_state(1, np.uint32)[0])


def tensor_seeds(zo_seed: int, n_tensors: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence(zo_seed).generate_state(n_tensors, np.uint64)]


def trainable_parameters(model) -> list[tuple[str, torch.Tensor]]:
    """named_parameters() order; tied weights appear once (named_parameters de-duplicates them)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


class SeededNoise:
    """Adds coeff·z(seed) to a list of tensors in place, z regenerated from the seed or cached per step.

    cache=False keeps MeZO's inference-level memory (z is regenerated in every pass, one tensor at a
    time); cache=True keeps one step's z (one extra copy of the trainable weights) so it is drawn once
    per step instead of three times. Both produce bit-identical weights: the z values are the same.
    """

    def __init__(self, named_tensors: list[tuple[str, torch.Tensor]], cache: bool = False, threads: int = 1):
        self.names = [n for n, _ in named_tensors]
        self.tensors = [t for _, t in named_tensors]
        self.cache = cache
        self.generators = [torch.Generator(device=t.device) for t in self.tensors]
        # zeros, not empty: the pages are touched now, so memory measured from the training loop's
        # start counts the cache as resident rather than as a step transient
        self._buffers = (
            [torch.zeros(t.shape, dtype=torch.float32, device=t.device) for t in self.tensors]
            if cache
            else None
        )
        self._cached_seed: int | None = None
        on_cpu = all(t.device.type == "cpu" for t in self.tensors)
        # Threads help only on CPU; CUDA kernels are asynchronous already.
        self._pool = ThreadPoolExecutor(threads) if on_cpu and threads > 1 else None
        # Largest tensors first so the threads finish together.
        self._order = sorted(range(len(self.tensors)), key=lambda i: -self.tensors[i].numel())

    def _draw(self, i: int, seed: int, out: torch.Tensor | None) -> torch.Tensor:
        t = self.tensors[i]
        z = out if out is not None else torch.empty(t.shape, dtype=torch.float32, device=t.device)
        return z.normal_(0.0, 1.0, generator=self.generators[i].manual_seed(seed))

    @torch.no_grad()  # grad mode is thread-local: worker threads need their own no_grad
    def _axpy_one(self, i: int, seed: int, coeff: float, fill_cache: bool) -> None:
        if self._buffers is not None:
            z = self._draw(i, seed, self._buffers[i]) if fill_cache else self._buffers[i]
        else:
            z = self._draw(i, seed, None)
        t = self.tensors[i]
        t.add_(z if t.dtype == torch.float32 else z.to(t.dtype), alpha=coeff)

    @torch.no_grad()
    def axpy(self, zo_seed: int, coeff: float) -> None:
        """tensors += coeff · z(zo_seed)."""
        seeds = tensor_seeds(zo_seed, len(self.tensors))
        fill = self._buffers is not None and self._cached_seed != zo_seed
        if self._pool is None:
            for i in self._order:
                self._axpy_one(i, seeds[i], coeff, fill)
        else:
            list(self._pool.map(lambda i: self._axpy_one(i, seeds[i], coeff, fill), self._order))
        if fill:
            self._cached_seed = zo_seed

    @property
    def cache_bytes(self) -> int:
        """Memory held by the per-step z cache (0 without cache)."""
        return sum(b.numel() * b.element_size() for b in self._buffers or [])

    def noise(self, zo_seed: int, i: int) -> torch.Tensor:
        """z for tensor i at this seed (tests and other implementations' cross-checks)."""
        return self._draw(i, tensor_seeds(zo_seed, len(self.tensors))[i], None)

    def convention(self) -> dict:
        dev = str(self.tensors[0].device) if self.tensors else "cpu"
        return {
            "distribution": "standard normal",
            "step_seed": "int(numpy.random.SeedSequence([run_seed, step]).generate_state(1, numpy.uint32)[0])",
            "tensor_seed": "int(numpy.random.SeedSequence(step_seed).generate_state(n_tensors, numpy.uint64)[i])",
            "generator": f"torch.Generator(device={dev!r}).manual_seed(tensor_seed), one per tensor",
            "draw": "torch.empty(shape, dtype=torch.float32, device=device).normal_(0, 1, generator=g)",
            "noise_dtype": "float32",
            "applied_as": "weight.add_(z.to(weight.dtype), alpha=coeff)",
            "parameter_order": "model.named_parameters() (requires_grad only; tied weights once)",
            "tensors": [
                [n, list(t.shape), str(t.dtype).removeprefix("torch.")]
                for n, t in zip(self.names, self.tensors, strict=True)
            ],
            "torch_version": torch.__version__,
        }


class ZOSGD:
    """MeZO's ZO-SGD over a set of tensors (all weights for MeZO; a sparse subset for later methods)."""

    def __init__(
        self, model, named_tensors, *, lr: float, eps: float, run_seed: int, cache: bool, threads: int
    ):
        self.model, self.lr, self.eps, self.run_seed = model, lr, eps, run_seed
        self.noise = SeededNoise(named_tensors, cache=cache, threads=threads)

    def _loss(self, batch) -> float:
        return float(scoring.loss(self.model, batch))

    @torch.no_grad()
    def step(self, batch, index: int) -> dict:
        seed = step_seed(self.run_seed, index)
        self.noise.axpy(seed, self.eps)
        loss_plus = self._loss(batch)
        self.noise.axpy(seed, -2.0 * self.eps)
        loss_minus = self._loss(batch)
        if not (math.isfinite(loss_plus) and math.isfinite(loss_minus)):
            self.noise.axpy(seed, self.eps)  # restore θ before stopping
            raise NonFiniteLossError(f"step {index}: loss is not finite (L+={loss_plus}, L-={loss_minus})")
        grad = (loss_plus - loss_minus) / (2.0 * self.eps)
        self.noise.axpy(seed, self.eps - self.lr * grad)
        return {
            "loss": (loss_plus + loss_minus) / 2.0,
            "loss_plus": loss_plus,
            "loss_minus": loss_minus,
            "zo_seed": seed,
            "projected_grad": grad,
            "lr": self.lr,
            "forward_passes": 2,
        }

    @torch.no_grad()
    def replay(self, record: dict) -> None:
        """Apply a logged step's weight updates (the same operations as `step`, without forwards)."""
        seed, grad, lr = record["zo_seed"], record["projected_grad"], record["lr"]
        self.noise.axpy(seed, self.eps)
        self.noise.axpy(seed, -2.0 * self.eps)
        self.noise.axpy(seed, self.eps - lr * grad)

    def extra_metrics(self) -> dict:
        """Memory the method adds on top of inference (the z cache), for metrics.json."""
        return {
            "zo_trainable_parameters": sum(t.numel() for t in self.noise.tensors),
            "zo_noise_cache_bytes": self.noise.cache_bytes,
        }

    def trajectory_header(self) -> dict:
        return {
            "zo": {
                "eps": self.eps,
                "run_seed": self.run_seed,
                "noise": self.noise.convention(),
                "step": "θ+=εz; L+; θ-=2εz; L-; g=(L+-L-)/(2ε); θ+=(ε-lr·g)z",
            }
        }
