"""Method parameters are checked against their Params annotations when the suite is validated: a
wrong type names the method, the key, the value and the expected type (with YAML's string trap
explained), and a shipped config resolves to exactly what it wrote (no spec hash changes)."""

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import suite
from zoharness.config import ConfigError, load_suite
from zoharness.methods import OMIT_IF_DEFAULT, get_method, method_ids, resolve_params

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "config").glob("*.yaml")) + sorted((ROOT / "config" / "paper").glob("*.yaml"))


def _error(method: str, params: dict) -> str:
    with pytest.raises(ConfigError) as e:
        suite({"v": {"method": method, "params": params}})
    return str(e.value)


@pytest.mark.parametrize(
    "method,params,expected",
    [
        # YAML 1.1 reads 1e-3 (no dot) as a string
        ("mezo", {"lr": "1e-3"}, "mezo.lr must be float, got '1e-3' (str); '1e-3' is a string in YAML: "
         "write 1.0e-3 or 0.001"),
        ("mezo", {"lr": "1.0e3"}, "write 1.0e+3 or 1000"),  # no exponent sign: a string too
        ("mezo", {"lr": True}, "mezo.lr must be float, got True (bool)"),
        ("mezo", {"steps": 2.5}, "mezo.steps must be int, got 2.5 (float)"),
        ("mezo", {"steps": 2.0}, "mezo.steps must be int, got 2.0 (float); write 2"),  # strict
        ("mezo", {"batch_size": False}, "mezo.batch_size must be int, got False (bool)"),
        ("mezo", {"steps": "16"}, "mezo.steps must be int, got '16' (str); '16' is a string in YAML: "
         "write 16 without quotes"),
        ("mezo", {"lr": float("inf")}, "mezo.lr must be a finite float, got inf"),
        ("mezo", {"eps": float("nan")}, "mezo.eps must be a finite float, got nan"),
        ("mezo", {"z_cache": 1}, "mezo.z_cache must be str, got 1 (int)"),
        ("fo", {"betas": [0.9]}, "fo.betas must be tuple[float, float], got [0.9] (list); it takes 2 "
         "elements, not 1"),
        ("fo", {"betas": [0.9, "0.999"]}, "fo.betas[1] must be float, got '0.999' (str)"),
        ("fo", {"betas": 0.9}, "fo.betas must be tuple[float, float], got 0.9 (float)"),
        ("sparse_zo_int4", {"density": "1e-3"}, "sparse_zo_int4.density must be float, got '1e-3' (str)"),
        ("icl", {"num_demos": 4.0}, "icl.num_demos must be int, got 4.0 (float)"),
        # a subclass's Params: the error names the method asked for, not its base
        ("mezo_oat_rephrase", {"lr": "1e-3"}, "mezo_oat_rephrase.lr must be float, got '1e-3' (str)"),
    ],
)  # fmt: skip
def test_a_wrong_type_names_method_key_value_and_type(method, params, expected):
    message = _error(method, params)
    assert "variants.v.params" in message and expected in message
    assert "not supported between" not in message


def test_a_yaml_string_number_fails_at_load_time(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "suite: s\nmodels: [tiny-llama]\ntasks: [sst2]\nseeds: [0]\n"
        f"data: {{dir: {ROOT / 'data'}}}\nvariants:\n  mezo: {{params: {{lr: 1e-3, steps: 5}}}}\n"
    )
    with pytest.raises(
        ConfigError, match=r"s\.yaml: variants\.mezo\.params: mezo\.lr must be float, got '1e-3'"
    ):
        load_suite(path)


def test_an_int_for_a_float_is_converted():
    params = suite({"fo": {"params": {"lr": 1, "weight_decay": 0, "betas": [0.9, 1]}}})["variants"]["fo"][
        "params"
    ]
    assert params["lr"] == 1.0 and isinstance(params["lr"], float)
    assert isinstance(params["weight_decay"], float) and params["betas"] == (0.9, 1.0)
    assert json.dumps(params["lr"]) == "1.0"


@pytest.mark.parametrize(
    "method,params,expected",
    [
        ("mezo_oat_rephrase", {"lr": -1.0}, "mezo_oat_rephrase.lr must be > 0, got -1.0"),
        ("mezo_generic_rephrase", {"eps": 0.0}, "mezo_generic_rephrase.eps must be > 0, got 0.0"),
        ("mezo", {"lr": -1.0}, "mezo.lr must be > 0, got -1.0"),
        ("sparse_zo_int4", {"density": 2.0}, "sparse_zo_int4.density must be in (0, 1], got 2.0"),
    ],
)
def test_a_range_error_names_the_method_asked_for(method, params, expected):
    message = _error(method, params)
    assert f"variants.v.params: {expected}" in message
    if method != "mezo":
        assert "mezo." not in message


def test_every_method_resolves_its_defaults_and_keeps_their_types():
    for m in method_ids():
        resolved = resolve_params(m, {})
        assert resolve_params(m, resolved) == resolved  # resolving is idempotent
        fields = get_method(m).Params.__dataclass_fields__.values()
        # every field, except one added later at its default (methods.added_later)
        assert resolved.keys() == {f.name for f in fields if not f.metadata.get(OMIT_IF_DEFAULT)}


def _raw_methods(path: Path) -> dict:
    raw = yaml.safe_load(path.read_text())
    spec = raw["variants"] if "variants" in raw else raw["methods"]  # the frozen paper suite: old key
    spec = {name: {} for name in spec} if isinstance(spec, list) else spec
    return {name: dict(entry or {}) for name, entry in spec.items()}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_resolve_to_what_they_wrote(path):
    """The check never rewrites a shipped value (e.g. an int where a float is expected), so every
    run's spec, and with it its run_config.json and Snakemake's params hash, stays the same."""
    cfg = load_suite(path)
    for name, entry in _raw_methods(path).items():
        resolved = cfg["variants"][name]["params"]
        for key, value in (entry.get("params") or {}).items():
            assert json.dumps(resolved[key]) == json.dumps(value), (name, key)


@pytest.mark.parametrize(
    "run_config",
    sorted((ROOT / "tests" / "fixtures").rglob("run_config.json")),
    ids=lambda p: str(p.parent.relative_to(ROOT / "tests" / "fixtures")),
)
def test_recorded_run_configs_resolve_unchanged(run_config):
    cfg = json.loads(run_config.read_text())
    resolved = resolve_params(cfg["method"], cfg["params"])
    assert json.dumps(resolved, sort_keys=True) == json.dumps(cfg["params"], sort_keys=True)
