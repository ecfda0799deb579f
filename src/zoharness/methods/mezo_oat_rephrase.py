"""MeZO+OAT-Rephrase (arXiv 2506.17264): MeZO trained on a training set that an LLM rewriter, briefed on
how MeZO optimizes, has rephrased, and that an LLM judge has filtered (zoharness.rephrase).

The rephrased set is an input file made by the `rephrase` rule (rules/methods/mezo_oat_rephrase.smk):
resources/rephrased/<rewriter>/<task>/seed<seed>.jsonl. Rejected rewrites train on the original
example. Evaluation uses the task's original dev and test sets. The optimizer is MeZO's, unchanged,
with MeZO's parameters (so a suite compares the two at the same lr and steps).
"""

from dataclasses import dataclass

from zoharness.methods import mezo, require

LABEL = "MeZO+OAT-Rephrase"
VERSION = 1
INPUTS = ("rephrased",)
DEFAULT_REWRITER = "smollm2-135m-oat"


@dataclass(frozen=True)
class Params(mezo.Params):
    rewriter: str = DEFAULT_REWRITER  # a built-in rewriter or one under the suite's `rewriters:`

    def __post_init__(self):
        super().__post_init__()
        require(bool(self.rewriter), f"rewriter must name a rewriter, got {self.rewriter!r}")


num_steps = mezo.num_steps


def build(model, params: Params, seed: int, rephrased: str):
    return mezo.build(model, params, seed)


def train_examples(params: Params, task, examples: list, rephrased: str) -> list:
    """The split's training examples with accepted rewrites substituted (rejected: the original)."""
    from zoharness.rephrase.pipeline import load_rephrased

    return load_rephrased(rephrased, task, examples)
