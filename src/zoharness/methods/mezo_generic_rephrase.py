"""Ablation of MeZO+OAT-Rephrase: the same rewriter, judge and MeZO, but the rewriter's brief says nothing
about optimization (prompts/rephrase/<version>/brief-generic.md). The difference between the two
isolates the "optimization-aware" part of the brief."""

from dataclasses import dataclass

from zoharness.methods import mezo_oat_rephrase as _oat

LABEL = "MeZO+generic-rephrase"
VERSION = 2  # 2: MeZO's Philox noise (mezo.VERSION 2)
INPUTS = _oat.INPUTS
COMMANDS = _oat.COMMANDS
COMPARE_WITH = _oat.COMPARE_WITH
SMOKE_PARAMS = _oat.SMOKE_PARAMS


@dataclass(frozen=True)
class Params(_oat.Params):
    rewriter: str = "smollm2-135m-generic"


num_steps = _oat.num_steps
build = _oat.build
train_examples = _oat.train_examples
smoke_inputs = _oat.smoke_inputs
check_variant = _oat.check_variant
