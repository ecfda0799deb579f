# Config validation (at parse time), wildcard constraints and path helpers. Rules only declare.
import json
import os
import re
import shlex

from zoharness.config import ConfigError, run_spec, runs, validate
from zoharness.data import data_dir, source_files
from zoharness.tasks import get_task

if "suite" not in config:  # no --configfile: the default suite, with any --config overrides on top
    import yaml

    with open(DEFAULT_CONFIG) as f:
        config.update({**yaml.safe_load(f), **config})
try:
    SUITE = validate(config, f"suite config {', '.join(map(str, workflow.configfiles)) or DEFAULT_CONFIG}")
except ConfigError as e:
    raise WorkflowError(str(e)) from None

NAME = SUITE["suite"]
DATA = SUITE["data"]
DATA_DIR = data_dir(DATA)
RUN_DIR = f"results/{NAME}/{{model}}/{{task}}/{{method}}/seed{{seed}}"
SPLIT = f"results/{NAME}/splits/{{task}}/seed{{seed}}.json"
MODEL_REF = "resources/models/{model}/model_ref.json"
TABLE_CSV = f"results/tables/{NAME}.csv"
TABLE_MD = f"results/tables/{NAME}.md"
RUNS_CSV = f"results/tables/{NAME}-runs.csv"
# A paper suite keeps the paper's numbers beside its config; its scorecard compares them with ours.
REFERENCE = f"config/paper/{NAME}.reference.csv"
SCORECARDS = (
    [f"results/tables/scorecard-{NAME}.csv", f"results/tables/scorecard-{NAME}.md"]
    if os.path.exists(REFERENCE)
    else []
)
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


def split_inputs(wildcards):
    """The data files a task's split reads (offline: the snapshot; online: what fetch_data saves)."""
    return [f"{DATA_DIR}/{rel}" for rel in source_files(get_task(wildcards.task), DATA["source"])]


def spec_json(wildcards):
    return json.dumps(
        run_spec(SUITE, wildcards.model, wildcards.task, wildcards.method, int(wildcards.seed)),
        sort_keys=True,
    )


def uses_gpu():
    return 1 if SUITE["device"] == "cuda" else 0


# A method that needs extra files (a mask, a rephrased train set) registers a function here from its
# rules/methods/<id>.smk: wildcards -> {input name: path}. The train rule adds them as inputs and
# passes them on as --input NAME=PATH; the method module lists the same names in INPUTS.
METHOD_INPUTS = {}
# Outputs a method's rule file adds to `rule all` (e.g. its own figures) when the suite uses it.
EXTRA_TARGETS = []


def method_entry(wildcards):
    return SUITE["methods"][wildcards.method]


def method_inputs(wildcards):
    fn = METHOD_INPUTS.get(method_entry(wildcards)["method"])
    return fn(wildcards) if fn else {}


def method_input_args(wildcards, input):
    return " ".join(f"--input {name}={shlex.quote(input[name])}" for name in method_inputs(wildcards))
