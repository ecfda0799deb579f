"""Suite configuration: schema validation, name checks, and resolution into one spec per run.

Imported by the Snakefile at parse time, so it imports nothing heavy: a bad config fails before any
job starts, naming the key (schema errors) or listing the valid names (unknown model/task/method).
"""

from __future__ import annotations

import copy
import difflib
import itertools
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from zoharness import models
from zoharness.io import ARTIFACT_FORMAT
from zoharness.methods import check_method, get_method, resolve_params
from zoharness.tasks import check_task


class ConfigError(ValueError):
    pass


def schema() -> dict:
    # utf-8 whatever the locale: the schema (and suites) spell the "≈" of an equivalence claim.
    text = resources.files("zoharness").joinpath("schema/suite.schema.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _fill_defaults(node: dict, sch: dict) -> None:
    for key, sub in sch.get("properties", {}).items():
        if "default" in sub and key not in node:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(node[key], sub)


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate(config: dict, where: str = "config") -> dict:
    """Validate and normalise a suite config; returns a new dict with defaults filled in."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: a suite config is a mapping, got {type(config).__name__}")
    config = _legacy_methods_key(config, where)
    sch = schema()
    errors = sorted(
        jsonschema.Draft202012Validator(sch).iter_errors(config), key=lambda e: list(e.absolute_path)
    )
    if errors:
        lines = [f"  {_path(e)}: {e.message}" for e in errors[:10]]
        raise ConfigError(f"{where}: invalid suite config\n" + "\n".join(lines))
    cfg = copy.deepcopy(config)
    _fill_defaults(cfg, sch)
    cfg["models"] = _normalise_models(cfg["models"], where)
    for t in cfg["tasks"]:
        _checked(check_task, t, f"{where}: tasks")
    cfg["tasks"] = _task_instances(cfg, where)
    _check_data(cfg, where)
    cfg["variants"] = _normalise_variants(cfg["variants"], where)
    _check_model_kinds(cfg, where)
    _check_variants(cfg, where)
    for key in ("tasks", "seeds"):
        if len(set(cfg[key])) != len(cfg[key]):
            raise ConfigError(f"{where}: {key} has duplicates: {cfg[key]}")
    for name, entry in cfg["variants"].items():
        extra = sorted(set(entry["seeds"] or []) - set(cfg["seeds"]))
        if extra:
            raise ConfigError(
                f"{where}: variants.{name}.seeds {extra} are not among the suite's seeds {cfg['seeds']}"
            )
    cfg["claims"] = _normalise_claims(cfg, where)
    _check_influence(cfg, where)
    return cfg


def _task_instances(cfg: dict, where: str) -> list[str]:
    """The suite's task ids: with several k-shot sizes (data.k_shot.k a list), every task once per k as
    `<task>@k<k>` (zoharness.tasks), k-major (MeZO Table 18's blocks); otherwise the tasks as written."""
    from zoharness.tasks import instance_id, split_task_id

    k_shot = cfg["data"].get("k_shot")
    ks = k_shot["k"] if k_shot else None
    written = [t for t in cfg["tasks"] if split_task_id(t)[1] is not None]
    if written:
        raise ConfigError(
            f"{where}: tasks {written}: list plain task ids; data.k_shot.k (a list of k) makes the instances"
        )
    if not isinstance(ks, list):
        return list(cfg["tasks"])
    if len(set(ks)) != len(ks):
        raise ConfigError(f"{where}: data.k_shot.k has duplicates: {ks}")
    return [instance_id(t, k) for k in ks for t in cfg["tasks"]]


def _check_influence(cfg: dict, where: str) -> None:
    """The `influence:` block against the rest of the suite (its shape is the schema's)."""
    spec = cfg.get("influence")
    if spec is None:
        return
    unknown = [v for v in spec["variants"] if v not in cfg["variants"]]
    if unknown:
        raise ConfigError(
            f"{where}: influence.variants {unknown} are not variants of the suite {list(cfg['variants'])}"
        )
    if spec["queries"] == "triggered" and "plant" not in cfg["data"]:
        raise ConfigError(
            f"{where}: influence.queries is 'triggered' but the suite plants no trigger (data.plant)"
        )
    if spec["target"] == "planted" and "plant" not in cfg["data"]:
        raise ConfigError(
            f"{where}: influence.target is 'planted' but the suite plants no trigger (data.plant)"
        )
    odd = [k for k in spec["ks"] if k & (k - 1)]
    if odd:
        raise ConfigError(
            f"{where}: influence.ks {odd} are not powers of two (RapidGrad pads to a multiple of every K)"
        )
    if len(set(spec["ks"])) != len(spec["ks"]):
        raise ConfigError(f"{where}: influence.ks has duplicates: {spec['ks']}")


def _legacy_methods_key(config: dict, where: str) -> dict:
    """Suites written before the rename list their variants under `methods:` (the frozen paper suites
    do): read it as `variants:`. Both at once is ambiguous."""
    if "methods" not in config:
        return config
    if "variants" in config:
        raise ConfigError(
            f"{where}: both `variants:` and `methods:` (its old name) are given; keep `variants:`"
        )
    return {("variants" if k == "methods" else k): v for k, v in config.items()}


def _check_data(cfg: dict, where: str) -> None:
    from zoharness.data import DataUnavailableError, pool_layout
    from zoharness.tasks import get_task

    for t in cfg["tasks"]:
        try:
            pool_layout(get_task(t), cfg["data"]["source"])
        except DataUnavailableError as e:
            raise ConfigError(f"{where}: tasks: {e}") from None
    if "plant" in cfg["data"]:
        from zoharness import plant
        from zoharness.io import DataError

        for t in cfg["tasks"]:
            try:
                plant.check_spec(cfg["data"]["plant"], get_task(t))
            except DataError as e:
                raise ConfigError(f"{where}: {e}") from None
    unknown = sorted(set(cfg["data"]["hf_datasets"]) - set(cfg["tasks"]))
    if unknown:
        raise ConfigError(
            f"{where}: data.hf_datasets names task(s) {unknown} that are not in tasks {cfg['tasks']}"
        )


def _check_model_kinds(cfg: dict, where: str) -> None:
    """A masked LM (models.model_kind) scores classes at a mask token: every task needs a masked-LM template
    (so no generation task), and every method must work on it (no CAUSAL_ONLY)."""
    from zoharness.tasks import get_task

    masked = [slug for slug, source in cfg["models"].items() if models.model_kind(source) == models.MLM]
    if not masked:
        return
    for t in cfg["tasks"]:
        task = get_task(t)
        if not task.masked_lm:
            raise ConfigError(
                f"{where}: task {t} ({task.kind}) has no masked-LM prompt template, so masked LM(s) {masked} "
                "cannot run it; masked LMs run the tasks whose module sets masked_lm=True (MeZO Table 13's "
                "prompts: sst2, sst5, snli, mnli, rte, trec)"
            )
    for name, entry in cfg["variants"].items():
        reason = getattr(get_method(entry["method"]), "CAUSAL_ONLY", None)
        if reason:
            raise ConfigError(
                f"{where}: variants.{name}: method {entry['method']} runs on causal LMs only ({reason}), and "
                f"the suite has masked LM(s) {masked}"
            )


def _check_variants(cfg: dict, where: str) -> None:
    """A method's own suite checks (its `check_variant` hook: e.g. that a rewriter it names exists),
    before any job runs. The shared config never reads a method's parameters itself."""
    for name, entry in cfg["variants"].items():
        check = getattr(get_method(entry["method"]), "check_variant", None)
        if check is not None:
            _checked(lambda e, n=name, c=check: c(n, e["params"], cfg), entry, where)


def _checked(check, value, where):
    try:
        return check(value)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def _normalise_models(spec, where) -> dict[str, str]:
    spec = dict.fromkeys(spec) if isinstance(spec, list) else spec
    out = {}
    for slug, source in spec.items():
        if source is None:
            source = _checked(models.source_for, slug, f"{where}: models")
        out[slug] = _checked(models.check_source, source, f"{where}: models.{slug}")
    return out


def _normalise_variants(spec, where) -> dict[str, dict]:
    """name -> {method, label, params, seeds}; a bare list names each variant after its method."""
    spec = {name: {} for name in spec} if isinstance(spec, list) else spec
    out = {}
    for name, entry in spec.items():
        entry = dict(entry or {})
        method_id = _checked(check_method, entry.get("method", name), f"{where}: variants.{name}")
        params = _checked(
            lambda p, m=method_id, n=name: resolve_params(m, p, f"variants.{n}.params"),
            entry.get("params"),
            where,
        )
        label = entry.get("label") or get_method(method_id).LABEL
        out[name] = {"method": method_id, "label": label, "params": params, "seeds": entry.get("seeds")}
    return out


def _normalise_claims(cfg: dict, where: str) -> list[dict]:
    """Each claim with margin and tasks filled in, checked against this suite's variants and tasks.

    The checks mirror zoharness.verdicts.Claim's, which is not imported here: it pulls in scipy, and
    this module runs at Snakemake's parse time."""
    out, seen = [], set()
    for i, claim in enumerate(cfg["claims"]):
        name = claim["name"]
        at = f"{where}: claims.{i} ({name!r})"
        if name in seen:
            raise ConfigError(f"{at}: duplicate claim name {name!r}; claim names must be unique")
        seen.add(name)
        # A side names a variant, a label that variants share, or a method (a grid: the best on dev is
        # compared; zoharness.claims.resolve_side).
        labels = list(dict.fromkeys(entry["label"] for entry in cfg["variants"].values()))
        methods = list(dict.fromkeys(entry["method"] for entry in cfg["variants"].values()))
        for side in ("a", "b"):
            if (
                claim[side] not in cfg["variants"]
                and claim[side] not in labels
                and claim[side] not in methods
            ):
                close = difflib.get_close_matches(claim[side], [*cfg["variants"], *labels, *methods], n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{at}: {side}: unknown variant, label or method {claim[side]!r}.{hint} The suite's "
                    f"variants: {', '.join(cfg['variants'])}; labels: {', '.join(labels)}; methods: "
                    f"{', '.join(methods)}"
                )
        if claim["a"] == claim["b"]:
            raise ConfigError(f"{at}: a and b are both {claim['a']!r}; a claim compares two variants")
        margin = float(claim.get("margin", 0))
        if claim["direction"] == "≈" and margin <= 0:
            raise ConfigError(
                f"{at}: direction '≈' needs margin > 0 (the tolerance within which a and b count as "
                f"comparable, in metric units: 0.02 = 2 points), got {margin:g}"
            )
        tasks = claim.get("tasks") or list(cfg["tasks"])
        unknown = [t for t in tasks if t not in cfg["tasks"]]
        if unknown:
            raise ConfigError(f"{at}: tasks {unknown} are not among the suite's tasks {cfg['tasks']}")
        out.append({**claim, "margin": margin, "tasks": tasks})
    return out


def load_suite(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return validate(raw, str(path))


def runs(cfg: dict) -> list[tuple[str, str, str, int]]:
    """Every (model, task, variant, seed) of the suite, in key order (a variant may narrow the seeds)."""
    return [
        (model, task, variant, seed)
        for model, task, variant in itertools.product(cfg["models"], cfg["tasks"], cfg["variants"])
        for seed in cfg["seeds"]
        if seed in (cfg["variants"][variant]["seeds"] or cfg["seeds"])
    ]


# The shared engine's numerics (scoring, batching, the ZO step) for every method: bump it when a change
# moves results at rounding level or more, so Snakemake reruns every run.
#   1  right-padded batches
#   2  packed batches where the model supports them (zoharness.scoring), step phases in the log
#   3  fp32 linear layers on the CPU through oneDNN (zoharness.cpu_linear; the run config's cpu_linear)
ENGINE_VERSION = 3


def run_spec(cfg: dict, model: str, task: str, variant: str, seed: int) -> dict:
    """Everything that defines a run except the split manifest's hash (added when written)."""
    entry = cfg["variants"][variant]
    return {
        "artifact_format": ARTIFACT_FORMAT,
        "suite": cfg["suite"],
        "model": model,
        "model_source": cfg["models"][model],
        "task": task,
        "variant": variant,
        "method": entry["method"],
        "method_version": get_method(entry["method"]).VERSION,
        "engine_version": ENGINE_VERSION,
        "label": entry["label"],
        "params": entry["params"],
        "seed": int(seed),
        "precision": {"weights": cfg["dtype"], "zo_noise": "float32", "update": cfg["dtype"]},
        "device": cfg["device"],
        "cpu_linear": cfg["cpu_linear"],
        "data": cfg["data"],
        "eval": cfg["eval"],
        # Only in suites that explain this variant (zoharness.influence): a run that cannot replay saves
        # its weights. Absent otherwise, so other suites' run configs, and their cached runs, stay as they are.
        **({"save_weights": True} if variant in explained_variants(cfg) else {}),
    }


def explained_variants(cfg: dict) -> list[str]:
    """The variants whose runs a suite's `influence:` block explains (none without the block)."""
    if "influence" not in cfg:
        return []
    return list(cfg["influence"]["variants"] or cfg["variants"])
