"""ICL: in-context learning baseline (MeZO Table 1): no training; every evaluated example gets its own
set of demonstrations drawn from the run's train split, each demonstration the task prompt completed
with its gold answer, joined by a blank line, then the example's own prompt.

MeZO samples 32 demonstrations per test example; contexts longer than eval.max_length are
left-truncated (the example's prompt is kept, the earliest demonstrations are cut), as MeZO does.
"""

from dataclasses import dataclass

from zoharness.methods import require

LABEL = "ICL"
VERSION = 1
CAUSAL_ONLY = "its demonstrations are concatenated into one causal prompt"
SMOKE_PARAMS: dict = {}
_SPLIT_STREAM = {"dev": 0, "test": 1}


@dataclass(frozen=True)
class Params:
    num_demos: int = 32  # MeZO: 32 demonstrations
    separator: str = "\n\n"  # between demonstrations and before the example

    def __post_init__(self):
        require(self.num_demos >= 1, f"icl.num_demos must be >= 1, got {self.num_demos}")


def num_steps(params: Params, n_train: int, kind: str | None = None) -> int:
    return 0


def build(model, params: Params, seed: int):
    return None


def demonstration_indices(n_train: int, num_demos: int, seed: int, split: str, position: int):
    """Indices into the train split for one evaluated example: a pure function of (seed, split,
    position), so reruns and resumed runs see the same demonstrations."""
    import numpy as np

    rng = np.random.default_rng([seed, _SPLIT_STREAM[split], position])
    return rng.permutation(n_train)[: min(num_demos, n_train)]


def eval_prompts(params: Params, task, train, examples, split: str, seed: int):
    import dataclasses

    demos = [task.prompt(ex).demonstration() for ex in train]
    prompts = []
    for position, ex in enumerate(examples):
        own = task.prompt(ex)
        picked = demonstration_indices(len(train), params.num_demos, seed, split, position)
        prefix = "".join(demos[i] + params.separator for i in picked)
        prompts.append(dataclasses.replace(own, context=prefix + own.context))
    return prompts
