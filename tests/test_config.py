"""Suite configs: schema errors name the key; unknown names list the valid ones."""

from pathlib import Path

import pytest

from zoharness.config import ConfigError, load_suite, run_spec, runs, validate

ROOT = Path(__file__).resolve().parents[1]
BASE = {"suite": "x", "models": ["tiny-llama"], "tasks": ["sst2"], "variants": ["mezo"], "seeds": [0]}


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_are_valid(path):
    cfg = load_suite(path)
    per_method = sum(len(m["seeds"] or cfg["seeds"]) for m in cfg["variants"].values())
    assert len(runs(cfg)) == len(cfg["models"]) * len(cfg["tasks"]) * per_method


def test_a_method_can_narrow_the_seeds():
    cfg = validate({**BASE, "variants": {"zero_shot": {"seeds": [0]}, "mezo": {}}, "seeds": [0, 1]})
    assert runs(cfg) == [
        ("tiny-llama", "sst2", "zero_shot", 0),
        ("tiny-llama", "sst2", "mezo", 0),
        ("tiny-llama", "sst2", "mezo", 1),
    ]
    with pytest.raises(
        ConfigError, match=r"variants.mezo.seeds \[5\] are not among the suite's seeds \[0, 1\]"
    ):
        validate({**BASE, "variants": {"mezo": {"seeds": [5]}}, "seeds": [0, 1]})


@pytest.mark.parametrize(
    "key,value,valid",
    [
        ("models", ["smolm2-135m"], "smollm2-135m"),
        ("tasks", ["sst-2"], "sst2"),
        ("variants", ["mezzo"], "mezo"),
    ],
)
def test_unknown_names_list_the_valid_ones(key, value, valid):
    with pytest.raises(ConfigError, match=rf"Did you mean '{valid}'\?.*Valid .*{valid}"):
        validate({**BASE, key: value})


def test_schema_error_names_the_key():
    with pytest.raises(ConfigError, match=r"data\.num_train: -3 is less than the minimum of 1"):
        validate({**BASE, "data": {"num_train": -3}})
    with pytest.raises(ConfigError, match=r"<top level>: 'seeds' is a required property"):
        validate({k: v for k, v in BASE.items() if k != "seeds"})
    with pytest.raises(
        ConfigError, match=r"Additional properties are not allowed \('epoch' was unexpected\)"
    ):
        validate({**BASE, "epoch": 3})


def test_method_params_are_checked_at_parse_time():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['learning_rate'\] for method 'mezo'"):
        validate({**BASE, "variants": {"mezo": {"params": {"learning_rate": 1e-6}}}})
    with pytest.raises(ConfigError, match=r"mezo.eps must be > 0, got -0.001"):
        validate({**BASE, "variants": {"mezo": {"params": {"eps": -1e-3}}}})


def test_hf_models_need_a_pinned_revision():
    with pytest.raises(ConfigError, match=r"hf:<id>@<revision>"):
        validate({**BASE, "models": {"opt-13b": "hf:facebook/opt-13b"}})
    cfg = validate({**BASE, "models": {"opt-13b": "hf:facebook/opt-13b@main"}})
    assert cfg["models"]["opt-13b"] == "hf:facebook/opt-13b@main"


def test_variants_resolve_to_distinct_runs_with_defaults_filled():
    cfg = validate(
        {
            **BASE,
            "variants": {
                "mezo_a": {"method": "mezo", "params": {"lr": 1e-5}},
                "mezo_b": {"method": "mezo", "params": {"lr": 1e-6}},
            },
        }
    )
    a, b = (run_spec(cfg, "tiny-llama", "sst2", m, 0) for m in ("mezo_a", "mezo_b"))
    assert a["method"] == b["method"] == "mezo" and a["params"]["lr"] != b["params"]["lr"]
    assert a["params"]["eps"] == 1e-3 and a["method_version"] >= 1 and a["label"] == "MeZO"


def test_malformed_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_suite(bad)


def test_the_old_methods_key_still_reads_and_both_keys_are_refused():
    """Suites written before the rename (the frozen paper suite among them) list variants under
    `methods:`; they resolve exactly as with `variants:`."""
    old = {k: v for k, v in BASE.items() if k != "variants"}
    assert validate({**old, "methods": ["mezo"]}) == validate(BASE)
    with pytest.raises(ConfigError, match="both `variants:` and `methods:`"):
        validate({**BASE, "methods": ["mezo"]})


CLAIM = {"name": "c", "paper": "MeZO", "a": "mezo", "b": "zero_shot", "direction": ">", "source": "Table 1"}


def _with_claims(*claims):
    return {**BASE, "variants": ["zero_shot", "mezo", "fo"], "claims": list(claims)}


def test_claims_default_to_empty_and_are_normalised():
    assert validate(BASE)["claims"] == []
    cfg = validate(_with_claims(CLAIM, {**CLAIM, "name": "d", "b": "fo", "direction": "≈", "margin": 0.02}))
    assert cfg["claims"] == [
        {**CLAIM, "margin": 0.0, "tasks": ["sst2"]},
        {**CLAIM, "name": "d", "b": "fo", "direction": "≈", "margin": 0.02, "tasks": ["sst2"]},
    ]


@pytest.mark.parametrize(
    "claims,message",
    [
        (
            [{**CLAIM, "b": "zeroshot"}],
            r"claims\.0 \('c'\): b: unknown variant, label or method 'zeroshot'. Did you mean 'zero_shot'\? The suite's ",
        ),
        ([CLAIM, {**CLAIM, "b": "fo"}], r"claims\.1 \('c'\): duplicate claim name 'c'"),
        ([{**CLAIM, "direction": ">="}], r"claims\.0\.direction: '>=' is not one of \['>', '<', '≈'\]"),
        ([{**CLAIM, "direction": "≈"}], r"claims\.0 \('c'\): direction '≈' needs margin > 0 .*got 0"),
        ([{**CLAIM, "margin": -0.1}], r"claims\.0\.margin: -0.1 is less than the minimum of 0"),
        ([{**CLAIM, "tasks": ["rte"]}], r"claims\.0 \('c'\): tasks \['rte'\] are not among the suite's"),
        ([{**CLAIM, "b": "mezo"}], r"a and b are both 'mezo'"),
        ([{**CLAIM, "ref": "x"}], r"Additional properties are not allowed \('ref' was unexpected\)"),
        ([{k: v for k, v in CLAIM.items() if k != "source"}], r"claims\.0: 'source' is a required property"),
    ],
)
def test_bad_claims_are_refused_naming_the_claim(claims, message):
    with pytest.raises(ConfigError, match=message):
        validate(_with_claims(*claims))
