# Config validation (at parse time), wildcard constraints and path helpers. Rules only declare.
import json
import os
import re

from zoharness.config import ConfigError, run_spec, runs, validate

if "suite" not in config:  # no --configfile: the default suite, with any --config overrides on top
    import yaml

    with open(DEFAULT_CONFIG) as f:
        config.update({**yaml.safe_load(f), **config})
try:
    SUITE = validate(config, f"suite config {', '.join(map(str, workflow.configfiles)) or DEFAULT_CONFIG}")
except ConfigError as e:
    raise WorkflowError(str(e)) from None

NAME = SUITE["suite"]
RUN_DIR = f"results/{NAME}/{{model}}/{{task}}/{{method}}/seed{{seed}}"
SPLIT = f"results/{NAME}/splits/{{task}}/seed{{seed}}.json"
MODEL_REF = "resources/models/{model}/model_ref.json"
TABLE_CSV = f"results/tables/{NAME}.csv"
TABLE_MD = f"results/tables/{NAME}.md"
RUNS_CSV = f"results/tables/{NAME}-runs.csv"
FIGURES = [f"figures/{NAME}/{kind}.{ext}" for kind in ("loss", "accuracy") for ext in ("png", "pdf")]


def _alternation(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    model=_alternation(SUITE["models"]),
    task=_alternation(SUITE["tasks"]),
    method=_alternation(SUITE["methods"]),
    seed=_alternation(SUITE["seeds"]),


def run_dirs():
    return [
        RUN_DIR.format(model=m, task=t, method=me, seed=s) for m, t, me, s in runs(SUITE)
    ]


def spec_json(wildcards):
    return json.dumps(
        run_spec(SUITE, wildcards.model, wildcards.task, wildcards.method, int(wildcards.seed)),
        sort_keys=True,
    )


def uses_gpu():
    return 1 if SUITE["device"] == "cuda" else 0
