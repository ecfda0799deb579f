"""Seed-replayed perturbations and the ZO step (MeZO's ZO-SGD), split into three seams a variant overrides:

  noise distribution   SeededNoise.draw (Gaussian here; a subclass draws Rademacher signs, ...)
  gradient estimate    ZOSGD.estimate / ZOSGD.replay_estimate (two-sided SPSA, one direction)
  update rule          ZOSGD.update (SGD fused with the restore here; momentum, sign, ... override it)

Each piece describes itself in the trajectory header (noise convention, "estimator", "update"), so an
independent implementation can replay a run from the log alone.

The noise convention (also written into every ZO trajectory header, so another implementation can
replay a run):
  * step seed:   s_t = int(numpy.random.SeedSequence([run_seed, t]).generate_state(1, numpy.uint32)[0])
  * tensor seed: the i-th trainable tensor (named_parameters() order, tied weights once) uses
                 k_i = int(numpy.random.SeedSequence(s_t).generate_state(n_tensors, numpy.uint64)[i])
  * noise, generator "philox" (PhiloxNoise, MeZO's default): z_i[j] is a pure function of (k_i, j),
                 Philox4x32-10 + Box–Muller as spelled out in zoharness/kernels/philox_gauss.c; a pass
                 θ += c·z generates z inside the pass (no z buffer) and adds fl32(c·z) cast to the weight's
                 dtype. The same values on every machine, thread count and device.
  * noise, generator "torch" (SeededNoise): z_i = torch.empty(shape_i, dtype=float32, device=D)
                 .normal_(0, 1, generator=G), G a torch.Generator on D seeded with manual_seed(k_i)
                 (another distribution replaces only the draw); added as weight.add_(z.to(dtype), alpha=c).
One seed per tensor makes tensors independent of each other, so they can be drawn in parallel threads
and a z can be regenerated for any tensor alone. A Philox pass splits the tensors into 4M-value chunks,
largest first, and each thread makes one C call that takes chunks from a shared counter (philox.sweep):
which thread does a chunk changes no value.

A step, MeZO Algorithm 1 with restore and update fused (θ += (ε - lr·g)·z instead of θ += ε·z followed
by θ -= lr·g·z: identical in exact arithmetic, one rounding and one pass over the weights fewer):
  θ += ε z;  L+ = L(θ);  θ -= 2ε z;  L- = L(θ);  g = (L+ - L-) / (2ε);  θ += (ε - lr·g) z
Replaying the three weight updates of each logged step (no forward passes) rebuilds the final weights
bit for bit, because it repeats the same floating-point operations on the same z.

In the training loop the update is deferred (ZOSGD.defer): step t leaves θ at θ - εz_t with its update
pending, and step t+1's first pass applies both, element by element, in one sweep over the weights:
θ ← (θ + fl(c_t·z_t)) + fl(ε·z_{t+1}), c_t = ε - lr·g_t, each sum rounded to float32 as the two separate
passes round it (zoharness.philox.axpy2_). The weights are the same bits as without deferral; a step makes two
sweeps instead of three. `settle()` applies a pending update alone: the loop calls it before a checkpoint's
evaluation and at the end, replay never defers. Only plain ZO-SGD with q = 1 and the Philox generator without
a z cache defers (the pass that fuses two seeds is the Philox kernel's).

The query budget q (ZO-Bench's, arXiv 2402.11592): a step averages q directional estimates. Direction 0
uses the step seed (so q = 1 is the plain step, bit for bit); direction j >= 1 uses
int(numpy.random.SeedSequence([run_seed, step, j]).generate_state(1, numpy.uint32)[0]). Each direction's
estimate restores θ (θ += εz_j) before the next, then the update applies ĝ = (1/q) Σ_j g_j z_j: plain SGD as
q passes θ += (-lr·g_j/q) z_j, a stateful rule (momentum, sign, Adam) per tensor on ĝ summed in float32.
The log records every direction's seed and projected gradient; the step's forward passes are 2q.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from zoharness import philox, scoring
from zoharness.profiling import tensor_bytes
from zoharness.trainer import Trainer


class NonFiniteLossError(FloatingPointError):
    pass


class PhaseTimer:
    """Seconds per phase of a step (noise, passes, forward_plus, forward_minus, sync), reset by `pop`.

    A pass over the weights draws each tensor's z and applies it, both on the pool's threads: its wall
    time is split between "noise" and "passes" in proportion to the threads' seconds in each (on CUDA,
    where kernels run asynchronously, the pass is timed whole, synchronised, as "passes"). The Philox
    kernel generates z inside the pass, in registers: its passes are timed whole as "noise" (the memory
    traffic hides under the arithmetic; bench/noise_generators.py measures the two apart)."""

    def __init__(self):
        self.totals: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.totals[phase] = self.totals.get(phase, 0.0) + seconds

    def pop(self) -> dict[str, float]:
        out, self.totals = self.totals, {}
        return out


def step_seed(run_seed: int, step: int) -> int:
    return int(np.random.SeedSequence([run_seed, step]).generate_state(1, np.uint32)[0])


def direction_seeds(run_seed: int, step: int, queries: int) -> list[int]:
    """The seeds of a step's q directions: the step seed first, so q = 1 is the plain step."""
    extra = [
        int(np.random.SeedSequence([run_seed, step, j]).generate_state(1, np.uint32)[0])
        for j in range(1, queries)
    ]
    return [step_seed(run_seed, step), *extra]


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

    The distribution is one seam: a subclass overrides `draw` (and DISTRIBUTION/DRAW, which the
    trajectory header quotes); seeding, threads, the cache and the in-place passes stay shared.
    """

    DISTRIBUTION = "standard normal"
    DRAW = "torch.empty(shape, dtype=torch.float32, device=device).normal_(0, 1, generator=g)"
    GENERATOR = "torch.Generator(device={device!r}).manual_seed(tensor_seed), one per tensor"
    APPLIED_AS = "weight.add_(z.to(weight.dtype), alpha=coeff)"

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
        self.timer = PhaseTimer()
        on_cpu = all(t.device.type == "cpu" for t in self.tensors)
        self._on_cpu = on_cpu
        # Threads help only on CPU; CUDA kernels are asynchronous already.
        self._pool = ThreadPoolExecutor(threads) if on_cpu and threads > 1 else None
        self._threads = threads
        # Largest tensors first so the threads finish together.
        self._order = sorted(range(len(self.tensors)), key=lambda i: -self.tensors[i].numel())

    def draw(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Fill the float32 tensor z in place with one draw from the distribution (the seam to override).
        It must consume only `generator`, so a tensor's z is a pure function of its seed."""
        return z.normal_(0.0, 1.0, generator=generator)

    def _draw(self, i: int, seed: int, out: torch.Tensor | None) -> torch.Tensor:
        t = self.tensors[i]
        z = out if out is not None else torch.empty(t.shape, dtype=torch.float32, device=t.device)
        return self.draw(z, self.generators[i].manual_seed(seed))

    def _z(self, i: int, seed: int, fill_cache: bool) -> torch.Tensor:
        if self._buffers is None:
            return self._draw(i, seed, None)
        return self._draw(i, seed, self._buffers[i]) if fill_cache else self._buffers[i]

    def _run(self, fn, tasks) -> None:
        """fn(task) for every task, on the pool's threads when there is one; on CUDA, synchronised after,
        so the caller's timer covers the kernels."""
        if self._pool is None:
            for task in tasks:
                fn(task)
        else:
            list(self._pool.map(fn, tasks))
        if not self._on_cpu:
            torch.cuda.synchronize()

    @torch.no_grad()
    def foreach(self, zo_seed: int, fn) -> None:
        """fn(i, tensor, z) for every tensor with its z at this seed, largest tensors first, on the pool's
        threads when there is one. Update rules that need more than an axpy (momentum, sign) use it."""
        start = time.perf_counter()
        seeds = tensor_seeds(zo_seed, len(self.tensors))
        fill = self._buffers is not None and self._cached_seed != zo_seed
        spent = [0.0, 0.0]  # thread-seconds drawing, applying
        lock = threading.Lock()

        @torch.no_grad()  # grad mode is thread-local: worker threads need their own no_grad
        def one(i: int) -> None:
            t0 = time.perf_counter()
            z = self._z(i, seeds[i], fill)
            t1 = time.perf_counter()
            fn(i, self.tensors[i], z)
            t2 = time.perf_counter()
            with lock:
                spent[0] += t1 - t0
                spent[1] += t2 - t1

        self._run(one, self._order)
        if fill:
            self._cached_seed = zo_seed
        if not self._on_cpu:
            self.timer.add("passes", time.perf_counter() - start)
            return
        wall = time.perf_counter() - start
        drawn = wall * spent[0] / (sum(spent) or 1.0)
        self.timer.add("noise", drawn)
        self.timer.add("passes", wall - drawn)

    def axpy(self, zo_seed: int, coeff: float) -> None:
        """tensors += coeff · z(zo_seed)."""
        self.foreach(
            zo_seed, lambda i, t, z: t.add_(z if t.dtype == torch.float32 else z.to(t.dtype), alpha=coeff)
        )

    fuses = False  # True: axpy2 makes one sweep over the weights (PhiloxNoise without a cache)

    def axpy2(self, seed_a: int, coeff_a: float, seed_b: int, coeff_b: float) -> None:
        """axpy(seed_a, coeff_a) then axpy(seed_b, coeff_b): the same bits, in one sweep where `fuses`."""
        self.axpy(seed_a, coeff_a)
        self.axpy(seed_b, coeff_b)

    @torch.no_grad()
    def foreach_sum(self, zo_seeds: list[int], coeffs: list[float], fn) -> None:
        """fn(i, tensor, d) for every tensor with d = Σ_j coeffs[j]·z_j(zo_seeds[j]) (float32, summed in
        that order); one tensor-sized buffer per thread, the z cache bypassed. A stateful update rule's
        q-direction path (the estimate ĝ of one tensor at a time)."""
        start = time.perf_counter()
        seeds = [tensor_seeds(s, len(self.tensors)) for s in zo_seeds]

        @torch.no_grad()
        def one(i: int) -> None:
            t = self.tensors[i]
            d = torch.zeros(t.shape, dtype=torch.float32, device=t.device)
            z = torch.empty_like(d)
            for k, c in zip(seeds, coeffs, strict=True):
                d.add_(self._draw(i, k[i], z), alpha=c)
            fn(i, t, d)

        self._run(one, self._order)
        self.timer.add("passes", time.perf_counter() - start)

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
            "distribution": self.DISTRIBUTION,
            "step_seed": "int(numpy.random.SeedSequence([run_seed, step]).generate_state(1, numpy.uint32)[0])",
            "tensor_seed": "int(numpy.random.SeedSequence(step_seed).generate_state(n_tensors, numpy.uint64)[i])",
            "generator": self.GENERATOR.format(device=dev),
            "draw": self.DRAW,
            "noise_dtype": "float32",
            "applied_as": self.APPLIED_AS,
            "parameter_order": "model.named_parameters() (requires_grad only; tied weights once)",
            "tensors": [
                [n, list(t.shape), str(t.dtype).removeprefix("torch.")]
                for n, t in zip(self.names, self.tensors, strict=True)
            ],
            "torch_version": torch.__version__,
        }


class PhiloxNoise(SeededNoise):
    """Standard normal z from the counter-based Philox generator (zoharness.philox), generated inside
    each pass: `axpy` never materialises z, so a step costs three fused passes over the weights and no
    memory beyond them. Tensors are split into chunks for the threads (z[j] depends on j, not on the
    chunking). `foreach` and the cache still draw z into buffers, with the same values."""

    DRAW = philox.CONVENTION
    GENERATOR = "counter-based Philox4x32-10 keyed by tensor_seed (no generator state)"
    APPLIED_AS = "weight += (coeff * z, rounded to float32).to(weight.dtype); float32 weights: two roundings"
    CHUNK = 1 << 22  # elements per thread task: small enough to balance two threads over 135M weights

    def __init__(self, named_tensors, cache: bool = False, threads: int = 1):
        super().__init__(named_tensors, cache=cache, threads=threads)
        self._chunks = [
            (i, lo, min(lo + self.CHUNK, self.tensors[i].numel()))
            for i in self._order
            for lo in range(0, self.tensors[i].numel(), self.CHUNK)
        ]

    def draw(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise TypeError("PhiloxNoise draws from a seed, not a torch.Generator: use _draw(i, seed, out)")

    def _draw(self, i: int, seed: int, out: torch.Tensor | None) -> torch.Tensor:
        t = self.tensors[i]
        z = out if out is not None else torch.empty(t.shape, dtype=torch.float32, device=t.device)
        return philox.fill(z, seed)

    def _sweep(
        self, seeds_a: list[int], coeff_a: float, seeds_b: list[int] | None = None, coeff_b: float = 0.0
    ):
        """tensors += coeff_a·z(seeds_a), then += coeff_b·z(seeds_b) when given, generated in one pass over
        every chunk of every tensor on the pool's threads, timed as "noise" (the kernel generates z inside
        the pass). With the kernel each thread makes one C call that takes chunks from a shared counter;
        otherwise (CUDA, other dtypes, no compiler) one axpy_/axpy2_ call per chunk. The same values."""
        start = time.perf_counter()
        run = philox.sweep(self.tensors, self._chunks, seeds_a, coeff_a, seeds_b, coeff_b)
        if run is not None:
            if self._pool is None:
                run()
            else:
                for done in [self._pool.submit(run) for _ in range(self._threads)]:
                    done.result()
        else:

            @torch.no_grad()
            def one(chunk) -> None:
                i, lo, hi = chunk
                x = self.tensors[i].view(-1)[lo:hi]
                if seeds_b is None:
                    philox.axpy_(x, seeds_a[i], coeff_a, start=lo)
                else:
                    philox.axpy2_(x, seeds_a[i], coeff_a, seeds_b[i], coeff_b, start=lo)

            self._run(one, self._chunks)
        self.timer.add("noise", time.perf_counter() - start)
        self.timer.add("passes", 0.0)

    def axpy(self, zo_seed: int, coeff: float) -> None:
        """tensors += coeff · z(zo_seed), z generated in the pass (with the cache: read from it)."""
        if self._buffers is not None:
            self.foreach(zo_seed, lambda i, t, z: t.add_((z * coeff).to(t.dtype)))
            return
        self._sweep(tensor_seeds(zo_seed, len(self.tensors)), coeff)

    @property
    def fuses(self) -> bool:
        return self._buffers is None

    def axpy2(self, seed_a: int, coeff_a: float, seed_b: int, coeff_b: float) -> None:
        """tensors += coeff_a·z(seed_a), then += coeff_b·z(seed_b), element by element in one sweep (each
        sum rounded as two axpy passes round it: the same bits); with the cache, two passes."""
        if self._buffers is not None:
            super().axpy2(seed_a, coeff_a, seed_b, coeff_b)
            return
        n = len(self.tensors)
        self._sweep(tensor_seeds(seed_a, n), coeff_a, tensor_seeds(seed_b, n), coeff_b)


NOISE_GENERATORS = {"philox": PhiloxNoise, "torch": SeededNoise}


class ZOSGD(Trainer):
    """MeZO's ZO-SGD over a set of tensors (all weights for MeZO; a sparse subset for later methods).

    A step is estimate (leaves the weights at θ - εz) then update (from there to the next θ). Variants
    subclass it and override one seam: `noise_class` (the distribution), `estimate`/`replay_estimate`
    (the gradient estimate) or `update` (the update rule), each with its header description. Replay
    repeats a logged step's weight operations in the same order, so any variant whose update is a
    function of (seed, logged projected gradient, lr, its own state) replays bit for bit.
    """

    can_replay = True
    noise_class = SeededNoise
    ESTIMATOR = "two-sided SPSA, one direction: θ+=εz; L+; θ-=2εz; L-; g=(L+-L-)/(2ε)"
    UPDATE = "SGD fused with the restore: θ+=(ε-lr·g)z"

    def __init__(
        self,
        model,
        named_tensors,
        *,
        lr: float,
        eps: float,
        run_seed: int,
        cache: bool,
        threads: int,
        generator: str = "torch",
        queries: int = 1,
        objective: str = "loss",
    ):
        if queries < 1:
            raise ValueError(f"queries must be >= 1, got {queries}")
        if objective not in scoring.TRAIN_OBJECTIVES:
            raise ValueError(
                f"objective must be one of {sorted(scoring.TRAIN_OBJECTIVES)}, got {objective!r}"
            )
        self.model, self.lr, self.eps, self.run_seed = model, lr, eps, run_seed
        self.queries, self.objective = queries, objective
        noise_class = self.noise_class
        if generator != "torch":
            # the generator replaces the standard normal draw; a variant with its own distribution
            # draws from torch generators and says so
            if noise_class is not SeededNoise:
                raise ValueError(
                    f"{type(self).__name__} draws {noise_class.DISTRIBUTION!r} noise from torch generators: "
                    f"set noise: torch (got {generator!r})"
                )
            noise_class = NOISE_GENERATORS[generator]
        self.noise = noise_class(named_tensors, cache=cache, threads=threads)
        self._defer = False
        self._pending: tuple[int, float] | None = None  # (seed, coefficient) of a deferred update

    def _loss(self, batch, phase: str) -> float:
        """The objective at the current weights; times the forward and the host sync (float()) apart."""
        t0 = time.perf_counter()
        loss = scoring.objective_fn(self.objective)(self.model, batch)
        t1 = time.perf_counter()
        value = float(loss)  # waits for the device: on CUDA most of the forward shows up here
        self.noise.timer.add(phase, t1 - t0)
        self.noise.timer.add("sync", time.perf_counter() - t1)
        return value

    def defer(self, on: bool) -> None:
        self.settle()
        self._defer = on

    def _defers(self) -> bool:
        """Deferral is plain ZO-SGD's (its step, estimate and update, q = 1) over a noise that fuses passes."""
        cls = type(self)
        return (
            self._defer
            and self.queries == 1
            and self.noise.fuses
            and (cls.step, cls.estimate, cls.update) == (ZOSGD.step, ZOSGD.estimate, ZOSGD.update)
        )

    @torch.no_grad()
    def settle(self) -> None:
        if self._pending is not None:
            (seed, coeff), self._pending = self._pending, None
            self.noise.axpy(seed, coeff)

    def _perturb(self, seed: int) -> None:
        """θ += εz, after a pending update in the same sweep (the same bits as applying it first)."""
        if self._pending is None:
            self.noise.axpy(seed, self.eps)
        else:
            (pending_seed, coeff), self._pending = self._pending, None
            self.noise.axpy2(pending_seed, coeff, seed, self.eps)

    @torch.no_grad()
    def step(self, batch, index: int) -> dict:
        self.noise.timer.pop()
        if self.queries == 1:
            seed = step_seed(self.run_seed, index)
            record = self.estimate(batch, seed, index)
            if self._defers():  # update() later, in the next step's first pass (or settle)
                self._pending = (seed, self.update_coefficient(record["projected_grad"], self.lr))
            else:
                self.update(seed, record["projected_grad"], self.lr)
        else:
            seeds = direction_seeds(self.run_seed, index, self.queries)
            record = self.estimate_directions(batch, seeds, index)
            self.update_directions(seeds, record["projected_grads"], self.lr)
        record["phases_s"] = self.noise.timer.pop()
        return record

    def estimate_directions(self, batch, seeds: list[int], index: int) -> dict:
        """q estimates, each restored (θ unchanged after); the record lists every direction's."""
        parts = []
        for seed in seeds:
            parts.append(self.estimate(batch, seed, index))
            self.restore(seed)
        record = {
            "loss": sum(p["loss"] for p in parts) / len(parts),
            "zo_seeds": seeds,
            "projected_grads": [p["projected_grad"] for p in parts],
            "lr": self.lr,
            "forward_passes": sum(p["forward_passes"] for p in parts),
        }
        for key in ("loss_plus", "loss_minus"):
            if key in parts[0]:
                record[key + "es"] = [p[key] for p in parts]
        return record

    def restore(self, seed: int) -> None:
        """Back to θ from where `estimate` leaves the weights (θ - εz)."""
        self.noise.axpy(seed, self.eps)

    def update_directions(self, seeds: list[int], grads: list[float], lr: float) -> None:
        """From θ to the step's new weights along ĝ = (1/q) Σ g_j z_j: SGD, one pass per direction."""
        self.axpy_directions(seeds, grads, -lr)

    def axpy_directions(self, seeds: list[int], grads: list[float], coeff: float) -> None:
        """θ += coeff·ĝ, ĝ = (1/q) Σ g_j z_j, as one axpy per direction (coefficient coeff·g_j/q)."""
        q = len(seeds)
        for seed, grad in zip(seeds, grads, strict=True):
            self.noise.axpy(seed, coeff * grad / q)

    @staticmethod
    def directions(record: dict) -> tuple[list[int], list[float]]:
        """A logged step's (seeds, projected gradients): one direction (q = 1) or the query budget's q."""
        if "zo_seeds" in record:
            return record["zo_seeds"], record["projected_grads"]
        return [record["zo_seed"]], [record["projected_grad"]]

    def estimate(self, batch, seed: int, index: int) -> dict:
        """The projected gradient from two forwards; leaves θ at θ - εz. Returns the step's log record."""
        self._perturb(seed)
        loss_plus = self._loss(batch, "forward_plus")
        self.noise.axpy(seed, -2.0 * self.eps)
        loss_minus = self._loss(batch, "forward_minus")
        if not (math.isfinite(loss_plus) and math.isfinite(loss_minus)):
            self.noise.axpy(seed, self.eps)  # restore θ before stopping
            raise NonFiniteLossError(f"step {index}: loss is not finite (L+={loss_plus}, L-={loss_minus})")
        grad = (loss_plus - loss_minus) / (2.0 * self.eps)
        return {
            "loss": (loss_plus + loss_minus) / 2.0,
            "loss_plus": loss_plus,
            "loss_minus": loss_minus,
            "zo_seed": seed,
            "projected_grad": grad,
            "lr": self.lr,
            "forward_passes": 2,
        }

    def replay_estimate(self, seed: int) -> None:
        """`estimate`'s weight operations without its forwards."""
        self.noise.axpy(seed, self.eps)
        self.noise.axpy(seed, -2.0 * self.eps)

    def update_coefficient(self, grad: float, lr: float) -> float:
        """c of the update θ += c·z from θ - εz: restore and SGD in one (the float64 value the pass rounds)."""
        return self.eps - lr * grad

    def update(self, seed: int, grad: float, lr: float) -> None:
        """From θ - εz (where `estimate` leaves the weights) to the step's new weights."""
        self.noise.axpy(seed, self.update_coefficient(grad, lr))

    @torch.no_grad()
    def replay(self, record: dict) -> None:
        """Apply a logged step's weight updates (the same operations as `step`, without forwards)."""
        self.settle()
        if "zo_seeds" not in record:
            self.replay_estimate(record["zo_seed"])
            self.update(record["zo_seed"], record["projected_grad"], record["lr"])
            return
        for seed in record["zo_seeds"]:
            self.replay_estimate(seed)
            self.restore(seed)
        self.update_directions(record["zo_seeds"], record["projected_grads"], record["lr"])

    def state_bytes(self) -> int:
        """Optimizer state held on top of the weights (0 for SGD; a momentum buffer is a full copy)."""
        return 0

    def extra_metrics(self) -> dict:
        """Memory the method adds on top of inference (the z cache, optimizer state), for metrics.json."""
        return {
            "zo_trainable_parameters": sum(t.numel() for t in self.noise.tensors),
            "zo_noise_cache_bytes": self.noise.cache_bytes,
            "zo_optimizer_state_bytes": self.state_bytes(),
        }

    def trajectory_header(self) -> dict:
        # q and the objective are described only when they are not MeZO's, so a log written before they
        # existed still has this header (and resumes)
        extra = {}
        if self.queries != 1:
            extra.update(
                queries=self.queries,
                direction_seed="j=0: step_seed; j>=1: "
                "int(numpy.random.SeedSequence([run_seed, step, j]).generate_state(1, numpy.uint32)[0])",
                queries_update="each direction restored after its estimate; then SGD: θ+=(-lr·g_j/q)z_j for j "
                "in order; a stateful rule: apply(ĝ), ĝ=Σ_j (g_j/q)·z_j summed in float32 in order",
            )
        if self.objective != "loss":
            extra["objective"] = (
                f"{self.objective}: zoharness.scoring.{scoring.TRAIN_OBJECTIVES[self.objective]}"
            )
        return {
            "zo": {
                "eps": self.eps,
                "run_seed": self.run_seed,
                "noise": self.noise.convention(),
                "estimator": self.ESTIMATOR,
                "update": self.UPDATE,
                "step": f"{self.ESTIMATOR}; {self.UPDATE}",
                **extra,
            }
        }


class StatefulZO(ZOSGD):
    """A ZO update rule that is not an axpy along z (momentum, sign, Adam): one seam,
    `apply(i, tensor, direction, scale, lr)`, where tensor i's gradient estimate is scale·direction
    (float32). With q = 1 the direction is the step's z and scale its projected gradient, applied in the
    same pass over each tensor as the restore; with q > 1 it is ĝ (zoharness.zo's docstring), scale 1."""

    def begin_update(self) -> None:
        """Called once before each update (Adam's step count)."""

    def apply(self, i: int, t: torch.Tensor, direction: torch.Tensor, scale: float, lr: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement apply()")

    def update(self, seed: int, grad: float, lr: float) -> None:
        self.begin_update()

        def one(i, t, z):  # restore and update in one pass over each tensor: z is drawn once
            t.add_(z.to(t.dtype), alpha=self.eps)
            self.apply(i, t, z, grad, lr)

        self.noise.foreach(seed, one)

    def update_directions(self, seeds: list[int], grads: list[float], lr: float) -> None:
        self.begin_update()
        q = len(seeds)
        self.noise.foreach_sum(seeds, [g / q for g in grads], lambda i, t, d: self.apply(i, t, d, 1.0, lr))


class _LossOf(torch.nn.Module):
    """scoring.loss as a module's forward, so torch.func.functional_call can swap the model's parameters
    (tied weights included) for the duration of one call."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, batch):
        return scoring.loss(self.inner, batch)


class ForwardGradient(ZOSGD):
    """The forward-gradient method (Baydin et al. 2022; ZO-Bench's "FG"): the directional derivative
    ∇L(θ)·z computed exactly by forward-mode AD (torch.func.jvp: one forward carrying the tangent z,
    about the cost of 1.5 to 3 plain forwards), then MeZO's update θ -= lr·g·z. No perturbation, so
    nothing to restore. Memory on top of inference: the tangent (a float copy of the trainable weights in
    their dtype) and the forward's tangent activations. Attention runs on SDPA's math kernel during the
    jvp (the fused CPU/CUDA kernels have no forward-mode derivative)."""

    ESTIMATOR = "forward-mode directional derivative: L, g = torch.func.jvp(L, θ, z) (z the step's noise)"
    UPDATE = "SGD along z: θ+=(-lr·g)z"

    def estimate(self, batch, seed: int, index: int) -> dict:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        if self.objective != "loss":  # a step function's derivative is zero almost everywhere
            raise ValueError(
                f"the forward gradient needs the differentiable objective, not {self.objective!r}"
            )

        t0 = time.perf_counter()
        primals = {f"inner.{n}": t for n, t in zip(self.noise.names, self.noise.tensors, strict=True)}
        seeds = tensor_seeds(seed, len(self.noise.tensors))
        tangents = {
            name: self.noise._draw(i, seeds[i], None).to(t.dtype)
            for i, (name, t) in enumerate(primals.items())
        }
        t1 = time.perf_counter()
        wrapper = _LossOf(self.model)

        def loss_at(params):
            return torch.func.functional_call(wrapper, params, (batch,))

        with sdpa_kernel(SDPBackend.MATH):
            loss, grad = torch.func.jvp(loss_at, (primals,), (tangents,))
        t2 = time.perf_counter()
        loss, grad = float(loss), float(grad)
        self.noise.timer.add("noise", t1 - t0)
        self.noise.timer.add("forward_jvp", t2 - t1)
        self.noise.timer.add("sync", time.perf_counter() - t2)
        if not (math.isfinite(loss) and math.isfinite(grad)):
            raise NonFiniteLossError(
                f"step {index}: loss or its directional derivative is not finite ({loss}, {grad})"
            )
        return {
            "loss": loss,
            "zo_seed": seed,
            "projected_grad": grad,
            "lr": self.lr,
            "forward_passes": 1,
        }

    def restore(self, seed: int) -> None:
        """The estimate leaves θ as it was."""

    def replay_estimate(self, seed: int) -> None:
        """No weight operations in the estimate."""

    def update(self, seed: int, grad: float, lr: float) -> None:
        self.noise.axpy(seed, -lr * grad)

    def extra_metrics(self) -> dict:
        # The tangent is one tensor per trainable tensor, in its dtype: known without a step (a run that
        # evaluates its best checkpoint replays into a fresh trainer that never ran estimate).
        return {**super().extra_metrics(), "fg_tangent_bytes": tensor_bytes(self.noise.tensors)}
