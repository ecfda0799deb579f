"""MeZO (Malladi et al. 2023, arXiv 2305.17333): ZO-SGD with in-place, seed-replayed perturbations.

Defaults are the paper's (Appendix E, Table 15, OPT-13B): batch 16, ε = 1e-3, 20,000 steps, constant lr
from {1e-6, 1e-7}; no weight decay. Suites override lr/steps for other models (see config/).
"""

from dataclasses import dataclass

from zoharness.methods import added_later, require

# Kept here, not imported from scoring: listing methods imports no torch
OBJECTIVES = ("loss", "accuracy", "f1")
OBJECTIVE_KINDS = {
    "loss": ("classification", "multiple_choice", "generation"),
    "accuracy": ("classification",),
    "f1": ("generation",),
}

LABEL = "MeZO"
VERSION = 2  # 2: Philox noise generated inside the passes (noise: philox) is the default
# A few fast steps on the tests' tiny model (contract, 5-step, replay and resume tests use them).
SMOKE_PARAMS = {"lr": 1e-3, "batch_size": 4, "steps": 5}


@dataclass(frozen=True)
class Params:
    lr: float = 1e-6  # MeZO Table 15 grid {1e-6, 1e-7}
    eps: float = 1e-3  # MeZO Table 15
    batch_size: int = 16  # MeZO Table 15
    steps: int = 20000  # MeZO Table 15 (OPT-13B)
    # "none": regenerate z in every pass (MeZO's inference-level memory); "step": keep the step's z
    # (one extra copy of the weights) so it is drawn once per step. Bit-identical results either way.
    z_cache: str = "none"
    noise_threads: int = 0  # threads drawing noise on CPU; 0 = torch.get_num_threads()
    # "philox": counter-based Philox4x32-10 normals generated inside each weight pass (a C kernel on CPU,
    # torch ops elsewhere; the same values on every machine and device); "torch": torch.Generator's
    # normal_ (version 1's noise; faster than philox's torch-op fallback on CUDA).
    noise: str = "philox"
    # ZO-Bench's query budget: directional estimates averaged per step (2q forwards); 1 = MeZO's step
    queries: int = added_later(1)
    # "loss": cross-entropy (the task's training objective); MeZO Table 3's non-differentiable objectives:
    # "accuracy", minus the batch accuracy (classification tasks); "f1", minus the batch's mean SQuAD F1 of
    # the greedy answers, decoded as the evaluator decodes (generation tasks; zoharness.scoring.negative_f1)
    objective: str = added_later("loss")

    def __post_init__(self):
        require(self.lr > 0, f"mezo.lr must be > 0, got {self.lr}")
        require(self.eps > 0, f"mezo.eps must be > 0, got {self.eps}")
        require(self.batch_size >= 1, f"mezo.batch_size must be >= 1, got {self.batch_size}")
        require(self.steps >= 1, f"mezo.steps must be >= 1, got {self.steps}")
        require(
            self.z_cache in ("none", "step"), f"mezo.z_cache must be 'none' or 'step', got {self.z_cache!r}"
        )
        require(self.noise_threads >= 0, f"mezo.noise_threads must be >= 0, got {self.noise_threads}")
        require(
            self.noise in ("philox", "torch"), f"mezo.noise must be 'philox' or 'torch', got {self.noise!r}"
        )
        require(self.queries >= 1, f"mezo.queries must be >= 1, got {self.queries}")
        require(
            self.objective in OBJECTIVES,
            f"mezo.objective must be one of {OBJECTIVES}, got {self.objective!r}",
        )


def num_steps(params: Params, n_train: int, kind: str | None = None) -> int:
    return params.steps


def build(model, params: Params, seed: int, zo_class=None):
    """MeZO's engine over every trainable weight; a variant passes its ZOSGD subclass as zo_class."""
    import torch

    from zoharness.zo import ZOSGD, trainable_parameters

    threads = params.noise_threads or torch.get_num_threads()
    return (zo_class or ZOSGD)(
        model,
        trainable_parameters(model),
        lr=params.lr,
        eps=params.eps,
        run_seed=seed,
        cache=params.z_cache == "step",
        threads=threads,
        generator=params.noise,
        queries=params.queries,
        objective=params.objective,
    )


def check_variant(name: str, params: dict, suite: dict) -> None:
    """Suite check at parse time: the objective is defined for every task of the suite."""
    from zoharness.tasks import get_task

    objective = params.get("objective", "loss")
    kinds = OBJECTIVE_KINDS[objective]
    wrong = [t for t in suite["tasks"] if get_task(t).kind not in kinds]
    if wrong:
        raise ValueError(
            f"variants.{name}.params.objective: {objective!r} is defined for {' and '.join(kinds)} tasks only; "
            f"task(s) {wrong} are not"
        )
