"""Method registry. A method is one module exporting:

  LABEL    display name (tables, figures); never used in a path
  VERSION  int; bump it to invalidate the method's cached results on purpose
  Params   frozen dataclass; defaults cite their source; __post_init__ validates ranges
  num_steps(params, n_train) -> int   optimisation steps the run takes (0: evaluation only)
  build(model, params, seed, **inputs) -> object with step(batch, index) -> dict (at least "loss"),
                                optionally replay(record) and trajectory_header() (ZO methods)
                                and extra_metrics() -> dict (merged into metrics.json)
  INPUTS   optional tuple of names of extra input files (a mask, a rephrased train set) that the
           method's rule file declares; build then receives them as keyword arguments (paths)
  train_examples(params, task, examples, **inputs) -> list[Example]   optional: the training examples
                                to use instead of the split's (a rephrased train set)
  eval_prompts(params, task, train, examples, split, seed) -> list[Prompt]   optional: the prompts to
                                evaluate instead of the task's own (ICL prepends demonstrations)

Listing or validating methods imports no implementation (torch is imported inside build()).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType

from zoharness.registry import check_name, load_module

_MODULES = {
    "zero_shot": "zoharness.methods.zero_shot",
    "fo": "zoharness.methods.fo",
    "mezo": "zoharness.methods.mezo",
    "icl": "zoharness.methods.icl",
    "sparse_zo_int4": "zoharness.methods.sparse_zo_int4",
    "mezo_oat_rephrase": "zoharness.methods.mezo_oat_rephrase",
    "mezo_generic_rephrase": "zoharness.methods.mezo_generic_rephrase",
}


def method_ids() -> list[str]:
    return sorted(_MODULES)


def check_method(name: str) -> str:
    return check_name("method", name, method_ids())


def get_method(name: str) -> ModuleType:
    return load_module("method", name, _MODULES)


def resolve_params(method: str, overrides: dict | None, where: str = "config") -> dict:
    """Validated, complete parameters (defaults filled) as a plain dict."""
    module = get_method(method)
    fields = {f.name for f in dataclasses.fields(module.Params)}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise ValueError(
            f"{where}: unknown parameter(s) {unknown} for method {method!r}; valid: {sorted(fields)}"
        )
    try:
        params = module.Params(**(overrides or {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None
    return dataclasses.asdict(params)


def require(cond: bool, message: str) -> None:
    """Range check used by Params.__post_init__ (raises ValueError quoting the value)."""
    if not cond:
        raise ValueError(message)
