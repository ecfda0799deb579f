"""MeZO's checkpoint protocol: evaluate on dev every 1/N of the steps, report the best dev checkpoint.

MeZO (arXiv 2305.17333, its run scripts: 20,000 steps, an evaluation every 4,000) keeps the checkpoint
with the best dev score and reports its test score. Here a checkpoint costs no storage for a method that
can replay its log (ZO): the best one is a step index, and the weights are rebuilt by replaying the log
to it. A method that cannot replay (FO) keeps one copy of its weights in memory, taken when the dev
score improves.

Torch-free, below the training loop: tables and figures read curves without importing torch.
"""

from __future__ import annotations


def checkpoint_steps(total: int, n: int) -> list[int]:
    """The steps after which dev is evaluated: round(total·k/n) for k = 1..n, distinct and ≥ 1; the last
    is always `total` (the run's end). [] for an evaluation-only run (total 0)."""
    if total <= 0:
        return []
    if n < 1:
        raise ValueError(f"eval.checkpoints must be >= 1, got {n}")
    return sorted({max(1, round(total * k / n)) for k in range(1, n + 1)})


def best_checkpoint(curve: list[dict]) -> dict:
    """The entry of `curve` ({"step", "dev_score", ...}, in step order) with the highest dev score; on a
    tie the earliest (a later checkpoint must improve to replace it, as MeZO's trainer does)."""
    if not curve:
        raise ValueError("no checkpoint to choose from")
    best = curve[0]
    for entry in curve[1:]:
        if entry["dev_score"] > best["dev_score"]:
            best = entry
    return best


def curve_from_records(records: list[dict]) -> list[dict]:
    """The checkpoints a train log holds ({"step": steps done, **scores}), in step order; the run's last
    step is evaluated after the loop and is not among them."""
    return [{"step": r["step"] + 1, **r["checkpoint"]} for r in records if "checkpoint" in r]
