"""Method registry. A method is one module (or a package) in this folder, found by its file name (its id),
exporting:

  LABEL    display name (tables, figures); never used in a path
  VERSION  int; bump it to invalidate the method's cached results on purpose
  Params   frozen dataclass; defaults cite their source; __post_init__ validates ranges (types are
           checked from the annotations by resolve_params); a field added to a method that already has
           recorded runs is declared with added_later(default), so those runs' configs stay unchanged
  num_steps(params, n_train, kind=None) -> int   optimisation steps the run takes (0: evaluation only);
           kind is the task's kind (classification, multiple_choice, generation) or None when unknown
  build(model, params, seed, **inputs) -> zoharness.trainer.Trainer, or None for an evaluation-only
           method. Trainer's no-op defaults: can_replay, replay(record), trajectory_header(),
           extra_metrics() (merged into metrics.json), save(out_dir); step(batch, index) is required.
  SMOKE_PARAMS  dict of parameter overrides for a few fast steps on the tests' tiny model (the
           registry-wide contract, 5-step, replay and resume tests read it)
  smoke_inputs(model, train_examples, out_dir) -> {name: path}   with INPUTS: stand-in input files
           for those tests (a random mask, an unchanged rephrased set)
Optional (method_hooks() below fills the defaults of the first three):
  INPUTS   tuple of names of extra input files (a mask, a rephrased train set); a rule file under
           rules/methods/ builds each kind and registers it in INPUT_FILES by that name; build then
           receives them as keyword arguments (paths)
  train_examples(params, task, examples, **inputs) -> list[Example]   the training examples to use
           instead of the split's (a rephrased train set)
  eval_prompts(params, task, train, examples, split, seed) -> list[Prompt]   the prompts to evaluate
           instead of the task's own (ICL prepends demonstrations)
  check_variant(name, params, suite)   a suite check at parse time (raise ValueError; e.g. a rewriter
           that must exist); zoharness.config calls it for every variant of the method
  COMMANDS  dotted name of the module whose register(subparsers) adds the method's own subcommands
           (masks, rephrasings, its tables and figures); methods sharing a package share it
  COMPARE_WITH  the method id its own figures draw as the baseline (named via the imported module)
  CAUSAL_ONLY  a sentence saying why the method runs on causal LMs only (ICL's demonstrations); a suite
           pairing it with a masked LM fails at parse time with it (zoharness.config)
  MEMORY_FACTOR  peak device memory of a run as a multiple of its weights, for scheduler sizing
           (zoharness.cluster: GPUs and memory a job asks for); default 1, a forward-only method
  SHARDABLE  True when a run given several GPUs shards the model with FSDP, one process per GPU started by
           torchrun (zoharness.distributed: full fine-tuning); otherwise several GPUs hold one process's
           model spread layer by layer (device_map="auto")
  SEED_INDEPENDENT  True when a run's test predictions do not depend on its seed (zero-shot on the
           fixed test sample): one seed then carries no hidden seed-to-seed spread, and a claim
           against it can be decided at n=1 (zoharness.claims); default False

Shared modules (cli, config, tables, plotting) and the shared rules never name a method
(tests/test_method_seams.py). Listing or validating methods imports no implementation (torch is
imported inside build()).
"""

from __future__ import annotations

import dataclasses
import pkgutil
from types import ModuleType

from zoharness.registry import check_name, load_module


def _discover() -> dict[str, str]:
    """Every module or package in this folder is a method, named after its file (no list to edit).
    pkgutil reads the folder only: nothing is imported until get_method()."""
    return {
        info.name: f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    }


_MODULES = _discover()


def method_ids() -> list[str]:
    return sorted(_MODULES)


def check_method(name: str) -> str:
    return check_name("method", name, method_ids())


def get_method(name: str) -> ModuleType:
    return load_module("method", name, _MODULES)


def expected_forwards(method: str, params: dict, n_train: int, n_eval: int, kind: str | None = None) -> int:
    """A run's expected cost in example forwards, to start a suite's longest runs first (the train rule's
    priority): steps × batch × forwards per example per step, plus n_eval (its evaluation, one forward
    each). Forwards per step: the module's forwards_per_step(params) where it declares one (ZO-SGD-Cons's
    five); else 2q for a ZO method (Params with eps), 3 for a first-order one (a backward costs about two
    forwards). A ranking, not a prediction of seconds: update passes and sequence lengths are left out."""
    module = get_method(method)
    resolved = module.Params(**params)
    steps = module.num_steps(resolved, n_train, kind)
    per_step = getattr(module, "forwards_per_step", None)
    if per_step is not None:
        forwards = per_step(resolved)
    elif hasattr(resolved, "eps"):
        forwards = 2 * getattr(resolved, "queries", 1)
    else:
        forwards = 3
    return int(steps * getattr(resolved, "batch_size", 1) * forwards + n_eval)


def resolve_params(method: str, overrides: dict | None, where: str = "config") -> dict:
    """Validated, complete parameters (defaults filled) as a plain dict.

    Every override is first checked against the `Params` annotations (one generic check, so a new
    method gets it without code): a bool is not a number, an int field takes only an int (not 2.0),
    a float field takes a finite float or an int (converted, so the resolved JSON reads the same
    either way), a tuple/list is checked element by element (and its length), a str field takes a
    str. Errors name the method actually requested: a subclass's inherited range check ("mezo.lr
    must be > 0") reads "mezo_oat_rephrase.lr must be > 0".
    """
    import typing

    module = get_method(method)
    fields = {f.name for f in dataclasses.fields(module.Params)}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise ValueError(
            f"{where}: unknown parameter(s) {unknown} for method {method!r}; valid: {sorted(fields)}"
        )
    hints = typing.get_type_hints(module.Params)
    try:
        checked = {k: _typed(v, hints.get(k), f"{method}.{k}") for k, v in (overrides or {}).items()}
        params = module.Params(**checked)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {_under_method(str(e), method, module.Params, fields)}") from None
    resolved = dataclasses.asdict(params)
    for f in dataclasses.fields(module.Params):
        if f.metadata.get(OMIT_IF_DEFAULT) and resolved[f.name] == f.default:
            del resolved[f.name]
    return resolved


OMIT_IF_DEFAULT = "zoharness_omit_if_default"


def added_later(default):
    """A Params field added after runs were recorded: left out of the resolved parameters while it holds
    its default, so earlier runs' run_config.json (and Snakemake's params hash) stay the same and their
    cached results stay valid; Params(**recorded) fills it back in."""
    return dataclasses.field(default=default, metadata={OMIT_IF_DEFAULT: True})


def _typed(value, tp, label: str):
    """`value` checked against the annotation `tp` (ints become floats where a float is expected);
    ValueError naming `label` (method.key), the value and the expected type otherwise. Annotations
    other than int, float, str, bool, tuple/list of those and unions are left to __post_init__."""
    import math
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arm in (a for a in args if a is not type(None)):
            try:
                return _typed(value, arm, label)
            except ValueError:
                pass
        raise _type_error(value, tp, label)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _type_error(value, tp, label)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _type_error(value, tp, label, f"; it takes {len(args)} elements, not {len(value)}")
            arms = args
        else:
            arms = [args[0] if args else None] * len(value)
        items = [_typed(v, a, f"{label}[{i}]") for i, (v, a) in enumerate(zip(value, arms, strict=True))]
        return tuple(items) if origin is tuple else items
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(value, tp, label)
        try:
            converted = float(value)
        except OverflowError:
            converted = math.inf
        if not math.isfinite(converted):
            raise ValueError(f"{label} must be a finite float, got {value!r}")
        return converted
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _type_error(value, tp, label)
    if tp in (str, bool) and not isinstance(value, tp):
        raise _type_error(value, tp, label)
    return value


def _type_error(value, tp, label: str, detail: str = "") -> ValueError:
    import typing

    expected = tp.__name__ if typing.get_origin(tp) is None and isinstance(tp, type) else str(tp)
    if tp is int and isinstance(value, float) and value.is_integer():
        detail += f"; write {int(value)}"
    return ValueError(
        f"{label} must be {expected}, got {value!r} ({type(value).__name__}){detail}{_yaml_hint(value, tp)}"
    )


def _yaml_hint(value, tp) -> str:
    """YAML 1.1 reads 1e-3 (no dot) and 1.0e3 (no exponent sign) as strings: say how to write them."""
    import math
    import typing
    from decimal import Decimal

    numeric = {tp, *typing.get_args(tp)} & {int, float}
    if not isinstance(value, str) or not numeric:
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    text = value.strip()
    plain = format(Decimal(text.replace("_", "")), "f")
    if float in numeric and "e" in text.lower():
        mantissa, _, exponent = text.lower().partition("e")
        mantissa += "" if "." in mantissa else ".0"
        exponent = exponent if exponent[:1] in ("+", "-") else "+" + exponent
        return f"; {value!r} is a string in YAML: write {mantissa}e{exponent} or {plain}"
    return f"; {value!r} is a string in YAML: write {plain} without quotes"


def _under_method(message: str, method: str, params_cls: type, fields: set[str]) -> str:
    """A Params error reported under the method requested: an inherited check's prefix ("mezo.")
    becomes `method`'s, and a message without one gets it."""
    import re

    prefix = __name__ + "."
    for cls in params_cls.__mro__:
        if cls.__module__.startswith(prefix):
            base = cls.__module__[len(prefix) :].split(".")[0]
            if message.startswith(base + "."):
                return method + message[len(base) :]
    first = re.match(r"\w+", message)
    return f"{method}.{message}" if first and first.group() in fields else f"{method}: {message}"


def require(cond: bool, message: str) -> None:
    """Range check used by Params.__post_init__ (raises ValueError quoting the value)."""
    if not cond:
        raise ValueError(message)


from collections.abc import Callable  # noqa: E402  (the hooks accessor below; kept apart from the registry)


def _same_examples(params, task, examples, **inputs) -> list:
    return examples


def _task_prompts(params, task, train, examples, split: str, seed: int) -> list:
    return [task.prompt(ex) for ex in examples]


@dataclasses.dataclass(frozen=True)
class MethodHooks:
    """A method module's optional module-level hooks (see the docstring above), defaults filled in."""

    inputs: tuple[str, ...] = ()  # INPUTS: names of the extra input files build() takes
    train_examples: Callable = _same_examples  # (params, task, examples, **inputs) -> examples
    eval_prompts: Callable = _task_prompts  # (params, task, train, examples, split, seed) -> prompts


def method_hooks(module: ModuleType) -> MethodHooks:
    """The one place a method module's optional hooks are looked up; the loop and replay call these."""
    return MethodHooks(
        inputs=tuple(getattr(module, "INPUTS", ())),
        train_examples=getattr(module, "train_examples", _same_examples),
        eval_prompts=getattr(module, "eval_prompts", _task_prompts),
    )
