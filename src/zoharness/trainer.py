"""What the training loop and replay ask of a method's built object: one base class, no-op defaults.

A method's `build(model, params, seed, **inputs)` returns a Trainer, or None for an evaluation-only
method (zero-shot, ICL); `as_trainer` turns that None into `NoTraining`, so the loop has one kind of
object and calls these methods without probing with hasattr. A method overrides what it has:

  step(batch, index) -> dict   one optimisation step; the log record's fields (at least "loss")
  can_replay, replay(record)   re-apply a logged step without forwards (ZO methods: bit-exact)
  trajectory_header() -> dict  merged into the log header (what an independent replay needs)
  extra_metrics() -> dict      merged into metrics.json
  save(out_dir)                the trained weights (default: the whole model)
  defer(on), settle()          let a step leave its update pending, to be fused into the next step's first
                               pass over the weights; settle() applies it (the loop calls it before anything
                               reads the weights: a checkpoint's evaluation, the end of training)

Torch-free: the base holds no tensors, so the method registry stays importable without torch.
"""

from __future__ import annotations

from typing import Any


class Trainer:
    can_replay = False  # True: replay(record) rebuilds a logged step, so a killed run resumes from its log
    model: Any  # the model being trained (set by the subclass); the default save writes it

    def step(self, batch, index: int) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not implement step(batch, index)")

    def replay(self, record: dict) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} cannot replay a logged step (can_replay is False): "
            "its run restarts from step 0 instead of resuming"
        )

    def trajectory_header(self) -> dict:
        return {}

    def defer(self, on: bool) -> None:
        """Let `step` leave its update pending (ZO-SGD applies it in the next step's first pass: the same
        bits, one sweep over the weights fewer). A method without such an update ignores it."""

    def settle(self) -> None:
        """Apply an update a step left pending, so the weights are the trained ones (no-op without one)."""

    def extra_metrics(self) -> dict:
        return {}

    def save(self, out_dir) -> None:
        """The trained weights. A method that trains only part of the model overrides this to write just
        that part (sparse_zo_int4: the sparse delta over a frozen base)."""
        self.settle()
        self.model.save_pretrained(out_dir)


class NoTraining(Trainer):
    """An evaluation-only method (its build returned None): no step to take, nothing to replay."""

    def __init__(self, model):
        self.model = model


def as_trainer(built, model, method_id: str) -> Trainer:
    """The Trainer a method's build returned; None (evaluation only) becomes NoTraining(model)."""
    if built is None:
        return NoTraining(model)
    if not isinstance(built, Trainer):
        raise TypeError(
            f"method {method_id!r}: build() returned a {type(built).__name__}, not a "
            "zoharness.trainer.Trainer (or None for an evaluation-only method)"
        )
    return built
