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
VERSION = 2  # 2: MeZO's Philox noise (mezo.VERSION 2)
INPUTS = ("rephrased",)
# Its own subcommands (rephrase, rephrase-table, rephrase-figure) and reports live in its package.
COMMANDS = "zoharness.rephrase.commands"
# the same optimizer on the original data, its figure's baseline (named by its module)
COMPARE_WITH = mezo.__name__.rpartition(".")[2]
DEFAULT_REWRITER = "smollm2-135m-oat"
SMOKE_PARAMS = mezo.SMOKE_PARAMS


@dataclass(frozen=True)
class Params(mezo.Params):
    rewriter: str = DEFAULT_REWRITER  # a built-in rewriter or one under the suite's `rewriters:`

    def __post_init__(self):
        super().__post_init__()
        require(bool(self.rewriter), f"rewriter must name a rewriter, got {self.rewriter!r}")


num_steps = mezo.num_steps


def build(model, params: Params, seed: int, rephrased: str):
    return mezo.build(model, params, seed)


def check_variant(name: str, params: dict, suite: dict) -> None:
    """Suite check at parse time: MeZO's (the objective fits the tasks), and the rewriter exists (built in
    or under the suite's `rewriters:`) and its settings are valid."""
    from zoharness.rephrase.settings import RewriterConfigError, resolve

    mezo.check_variant(name, params, suite)
    try:
        resolve(params["rewriter"], suite["rewriters"])
    except RewriterConfigError as e:
        raise ValueError(f"variants.{name}.params.rewriter: {e}") from None


def train_examples(params: Params, task, examples: list, rephrased: str) -> list:
    """The split's training examples with accepted rewrites substituted (rejected: the original)."""
    from zoharness.rephrase.pipeline import load_rephrased

    return load_rephrased(rephrased, task, examples)


def smoke_inputs(model, examples: list, out_dir) -> dict[str, str]:
    """A stand-in rephrase-rule output for the tests: every example kept as its original."""
    from pathlib import Path

    from zoharness.io import dumps, sha256_json

    path = Path(out_dir) / "rephrased.jsonl"
    lines = [
        {"uid": ex.uid, "original_sha256": sha256_json(ex.record), "used": "original", "record": ex.record}
        for ex in examples
    ]
    path.write_text("".join(dumps(line) + "\n" for line in lines), encoding="utf-8")
    return {"rephrased": str(path)}
