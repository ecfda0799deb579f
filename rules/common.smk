# Config validation (at parse time), wildcard constraints and path helpers. Rules only declare.
import json
import os
import re
import shlex

from zoharness.cluster import ClusterConfigError, cluster_file, job_resources, runtime_minutes, site_resources
from zoharness.cluster import load as load_cluster
from zoharness.config import ConfigError, run_spec, runs, validate
from zoharness.data import data_dir, source_files
from zoharness.devices import can_be_cuda, nvidia_device_present
from zoharness.methods import expected_forwards, get_method
from zoharness.tasks import get_task

if "suite" not in config:  # no --configfile: the default suite, with any --config overrides on top
    import yaml

    with open(DEFAULT_CONFIG, encoding="utf-8") as f:  # utf-8: claims may spell "≈"
        config.update({**yaml.safe_load(f), **config})
try:
    SUITE = validate(config, f"suite config {', '.join(map(str, workflow.configfiles)) or DEFAULT_CONFIG}")
except ConfigError as e:
    raise WorkflowError(str(e)) from None

# The one software environment every rule runs in with --software-deployment-method conda, named once
# (a path from the Snakefile's folder, so rules/ and rules/methods/ share it).
CONDA_ENV = os.path.join(workflow.basedir, "envs", "zoharness.yaml")
NAME = SUITE["suite"]
DATA = SUITE["data"]
DATA_DIR = data_dir(DATA)
RUN_DIR = f"results/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}"
SPLIT = f"results/{NAME}/splits/{{task}}/seed{{seed}}.json"
MODEL_REF = "resources/models/{model}/model_ref.json"
TABLE_CSV = f"results/tables/{NAME}.csv"
TABLE_MD = f"results/tables/{NAME}.md"
RUNS_CSV = f"results/tables/{NAME}-runs.csv"
# Long tables the figures read (no figure reads a run folder): every logged step's loss; every scalar
# of every run's metrics.json.
CURVES_CSV = f"results/tables/{NAME}-curves.csv"
DETAILS_CSV = f"results/tables/{NAME}-details.csv"
# A paper suite keeps the paper's numbers beside its config; its scorecard compares them with ours.
REFERENCE = f"config/paper/{NAME}.reference.csv"
SCORECARDS = (
    [f"results/tables/scorecard-{NAME}.csv", f"results/tables/scorecard-{NAME}.md"]
    if os.path.exists(REFERENCE)
    else []
)
# Dev (and test) score at each checkpoint of every trained run (MeZO's best-on-dev protocol).
CHECKPOINTS_CSV = f"results/tables/{NAME}-checkpoints.csv"
FIGURES = [
    f"figures/{NAME}/{kind}.{ext}"
    for kind in ("loss", "accuracy", "checkpoints", "claims", "cost", "memory")
    for ext in ("png", "pdf")
]
# A suite sampling several k-shot sizes (data.k_shot.k a list) also draws accuracy against k (MeZO Figure 2).
KSHOT_FIGURE = (
    [f"figures/{NAME}/kshot.{ext}" for ext in ("png", "pdf")]
    if isinstance(DATA.get("k_shot", {}).get("k"), list)
    else []
)
# The suite's paper claims judged from the runs' per-example test results (zoharness.claims). Always
# built: with no `claims:` the table is empty but says so, and it still checks every run's predictions.
VERDICTS_CSV = f"results/tables/claims-{NAME}.csv"
VERDICTS_MD = f"results/tables/claims-{NAME}.md"
VERDICTS = [VERDICTS_CSV, VERDICTS_MD]
SPLITS_ROOT = os.path.dirname(os.path.dirname(SPLIT))  # results/<suite>/splits

# `snakemake --report` (README: "The report"): a rule wraps each table and figure it writes in one of
# these, so the report lists it under Tables or Figures with its caption (report/<tables|figures>/<kind>.rst,
# a Jinja template) and labels: the kind, the format, the suite, and `RUN_LABELS` on a per-run file. Figures
# are registered as PNG; the PDF beside each is the same drawing (a report lists one row per figure).
REPORT_DIR = os.path.join(workflow.basedir, "report")


def report_table(path, kind, **labels):
    return _reported(path, "Tables", kind, table=kind, **labels)


def report_figure(path, **labels):
    """A figure's file; its kind is the file's stem (figures/<suite>/<kind>.png)."""
    kind = os.path.basename(path).split(".")[0]
    return path if path.endswith(".pdf") else _reported(path, "Figures", kind, figure=kind, **labels)


def _reported(path, category, kind, **labels):
    fmt = os.path.splitext(path)[1].lstrip(".")
    return report(
        path,
        caption=f"{REPORT_DIR}/{category.lower()}/{kind}.rst",
        category=category,
        labels={**labels, "format": fmt, "suite": NAME},
    )


# The labels of a file written per run (its path has these wildcards): model, task, method (the variant), seed.
RUN_LABELS = {"model": "{model}", "task": "{task}", "method": "{variant}", "seed": "{seed}"}


def _alternation(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    model=_alternation(SUITE["models"]),
    task=_alternation(SUITE["tasks"]),
    variant=_alternation(SUITE["variants"]),
    seed=_alternation(SUITE["seeds"]),


def run_dirs():
    return [
        RUN_DIR.format(model=m, task=t, variant=v, seed=s) for m, t, v, s in runs(SUITE)
    ]


def metrics_files(wildcards):
    """Every run's metrics.json, in the suite's run order (tables keep it)."""
    return [f"{d}/metrics.json" for d in run_dirs()]


def run_files(name):
    """An input function: the file `name` of every run, in the suite's run order."""
    return lambda wildcards: [f"{d}/{name}" for d in run_dirs()]


def run_splits(wildcards):
    """The split manifest of every (task, seed) the suite's runs use."""
    pairs = dict.fromkeys((t, s) for _, t, _, s in runs(SUITE))
    return [SPLIT.format(task=t, seed=s) for t, s in pairs]


def data_inputs(task):
    """What a task's split reads, as job inputs: offline, the snapshot's files; online, the marker
    fetch_data writes after the task's files (their names follow the task's Hugging Face splits, so the
    rule declares only the marker). A task instance (sst5@k16) reads its task's data."""
    task = get_task(task)
    if DATA["source"] == "online":
        return [f"{DATA_DIR}/{task.name}/source.json"]
    return [f"{DATA_DIR}/{rel}" for rel in source_files(task, DATA["source"])]


def split_data_files(wildcards):
    """The data files the splits' examples are rebuilt from; ancient, as for the split rule (a touched but
    unchanged file reruns nothing; a changed one is refused against the frozen manifests, split_inputs)."""
    files = {f: None for t in SUITE["tasks"] for f in data_inputs(t)}
    return [ancient(f) for f in files]


def train_logs(wildcards):
    """Every run's train_log.jsonl, in the suite's run order."""
    return [f"{d}/train_log.jsonl" for d in run_dirs()]


def split_inputs(wildcards):
    """The data files a task's split reads (offline: the snapshot; online: what fetch_data saves), held
    to the split's frozen manifest (zoharness.data). Ancient: a touched but unchanged file reruns nothing.
    A change that would alter the split stops the run here, while the job graph is built, leaving every
    file as it was; with ZOHARNESS_ACCEPT_DATA_CHANGES=1 it is reported instead and the manifest marked
    out of date (old mtime, inputs not ancient), so the split and the runs that use it are redone."""
    import sys

    from zoharness.data import ACCEPT_ENV, accepting_data_changes, check_frozen_split

    files = data_inputs(wildcards.task)
    manifest = SPLIT.format(task=wildcards.task, seed=wildcards.seed)
    protocol = {k: DATA[k] for k in ("num_train", "num_dev", "num_test", "source")}
    change = check_frozen_split(
        manifest,
        DATA_DIR,
        wildcards.task,
        int(wildcards.seed),
        **protocol,
        accept=accepting_data_changes(),
        plant=DATA.get("plant"),
        k_shot=DATA.get("k_shot"),
    )
    if change:
        print(f"{ACCEPT_ENV} is set; resampling:\n{change}", file=sys.stderr)
        os.utime(manifest, (1, 1))  # older than the data (an mtime of 0 reads as unknown)
        return files
    return [ancient(f) for f in files]


def spec_json(wildcards):
    return json.dumps(
        run_spec(SUITE, wildcards.model, wildcards.task, wildcards.variant, int(wildcards.seed)),
        sort_keys=True,
    )


def uses_gpu():
    """gpu=1 whenever the job's device can resolve to CUDA (also `auto` on a GPU machine), so the
    profile's gpu=1 limit serialises those jobs."""
    return 1 if can_be_cuda(SUITE["device"]) else 0


# Job sizes for schedulers (zoharness.cluster; the site's facts in profiles/cluster.yaml): every train job's
# host memory, GPUs and time limit from the model's size, the dtype and the method, so the SLURM profile
# (profiles/slurm) and the local profile's gpu limit honour the same numbers. A job that no allocation of
# the site can hold is refused here, while the job graph is built.
try:
    CLUSTER = load_cluster(cluster_file(workflow.basedir))
    TRAIN_SIZES = {
        (model, variant): job_resources(
            model=model,
            method=entry["method"],
            dtype=SUITE["dtype"],
            device=SUITE["device"],
            cluster=CLUSTER,
            models=SUITE["models"],
        )
        for model in SUITE["models"]
        for variant, entry in SUITE["variants"].items()
    }
except ClusterConfigError as e:
    raise WorkflowError(str(e)) from None
# The local profile's gpu total is this machine's GPUs; Snakemake grants a job at most that many, so a job
# sized for more would fail at load (zoharness.devices.check_gpu_memory): say so now.
_gpu_total = getattr(workflow.global_resources.get("gpu"), "value", workflow.global_resources.get("gpu"))
_too_big = sorted(
    {(m, v, size["gpu"]) for (m, v), size in TRAIN_SIZES.items() if _gpu_total and size["gpu"] > _gpu_total}
)
if _too_big and workflow.local_exec:
    from snakemake.logging import logger

    logger.warning(
        f"{len(_too_big)} (model, variant) pair(s) need more GPUs than this workflow may use ({_gpu_total}, the "
        f"profile's gpu resource), e.g. {_too_big[0]}; their jobs will stop at load with the estimate. Run them "
        "through profiles/slurm or on a machine with more GPUs (sizes: profiles/cluster.yaml)"
    )


def _expected_forwards(task, variant):
    entry, data = SUITE["variants"][variant], SUITE["data"]
    n_dev = data["num_dev"] if data.get("num_dev") is not None else data["num_test"] // 2
    n_eval = n_dev * SUITE["eval"]["checkpoints"] + data["num_test"]
    return expected_forwards(entry["method"], entry["params"], data["num_train"], n_eval, get_task(task).kind)


# The train rule's priority: a run's expected example forwards (zoharness.methods.expected_forwards), so among
# the jobs ready to start the longest go first and a suite does not end on one long run beside idle cores.
TRAIN_FORWARDS = {
    (task, variant): _expected_forwards(task, variant)
    for task in SUITE["tasks"]
    for variant in SUITE["variants"]
}


def train_priority(wildcards):
    return TRAIN_FORWARDS[(wildcards.task, wildcards.variant)]


# Snakemake does not pass a job's priority on to the jobs it waits for: a method's input (a mask, a rephrased
# set) runs first, since it is short and a long run waits on it.
INPUTS_FIRST = max(TRAIN_FORWARDS.values(), default=0) + 1


def refuse_cuda_without_gpu():
    """device: cuda, jobs about to run here, and no NVIDIA GPU here: stop before any job starts (the executor
    is known only once the workflow starts, not while the Snakefile is read; a dry run, --lint or a SLURM
    submit host passes)."""
    if SUITE["device"] == "cuda" and workflow.local_exec and not nvidia_device_present():
        raise WorkflowError(
            f"suite {NAME}: device is cuda but this machine has no NVIDIA GPU; run it where one is, submit it "
            "through the cluster profile (snakemake --workflow-profile profiles/slurm), or set device: cpu / auto"
        )


def train_resources():
    """The train rule's resources: per (model, variant) sizes, the site's partition and account."""

    def size(key):
        return lambda wildcards: TRAIN_SIZES[(wildcards.model, wildcards.variant)].get(key, 0)

    return {key: size(key) for key in ("mem_mb", "gpu", "runtime", "cpus_per_gpu")} | site_resources(CLUSTER)


def placement_args(wildcards, resources):
    """On CUDA: the job's GPUs (as granted: Snakemake caps a job at the profile's gpu total) and the size
    estimate the train job checks against their free memory before loading; nothing on CPU."""
    if not resources.gpu:
        return ""
    estimate = TRAIN_SIZES[(wildcards.model, wildcards.variant)]["device_gb"]
    return f"--gpus {resources.gpu} --memory-estimate-gb {estimate} "


def launcher(wildcards, resources):
    """How the train job starts: torchrun with one process per GPU for a SHARDABLE method given several GPUs
    (full fine-tuning with FSDP, zoharness.distributed), else one Python process."""
    if resources.gpu > 1 and getattr(method_module(wildcards.variant), "SHARDABLE", False):
        return f"torchrun --standalone --nproc_per_node {resources.gpu}"
    return "python"


def light_resources(rule_name):
    """Resources of the compute jobs besides training (masks' sensitivity, rephrasing, influence), given
    the name of their rule: the site's partition and account and that rule's time limit."""
    return {"runtime": runtime_minutes(rule_name, CLUSTER)} | site_resources(CLUSTER)


# A method's extra input files (a mask, a rephrased train set) are named in its module's INPUTS. The
# method's own rules file, which builds that kind of input, registers here a function from wildcards
# to the file's path, keyed by the input name. The train rule then adds the files as inputs and passes
# them on as --input NAME=PATH.
INPUT_FILES = {}
# Outputs a method's rule file adds to `rule all` (e.g. its own figures) when the suite uses it.
EXTRA_TARGETS = []


def variant_entry(wildcards):
    return SUITE["variants"][wildcards.variant]


def method_module(variant):
    return get_method(SUITE["variants"][variant]["method"])


def variants_taking(input_name):
    """The suite's variants whose method reads this kind of input file (in the suite's order)."""
    return [v for v in SUITE["variants"] if input_name in getattr(method_module(v), "INPUTS", ())]


def method_inputs(wildcards):
    names = getattr(method_module(wildcards.variant), "INPUTS", ())
    missing = [n for n in names if n not in INPUT_FILES]
    if missing:
        raise WorkflowError(f"no rule file under rules/methods/ builds the input(s) {missing}")
    return {name: INPUT_FILES[name](wildcards) for name in names}


def method_input_args(wildcards, input):
    return " ".join(f"--input {name}={shlex.quote(input[name])}" for name in method_inputs(wildcards))
