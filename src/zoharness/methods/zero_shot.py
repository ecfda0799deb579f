"""Zero-shot: evaluate the base model with the task prompt; no training (MeZO Table 1 row)."""

from dataclasses import dataclass

LABEL = "Zero-shot"
VERSION = 1
SMOKE_PARAMS: dict = {}
# No training and a fixed test sample: every seed predicts the same (a claim may compare against n=1).
SEED_INDEPENDENT = True


@dataclass(frozen=True)
class Params:
    pass


def num_steps(params: Params, n_train: int, kind: str | None = None) -> int:
    return 0


def build(model, params: Params, seed: int):
    return None
