"""What a job asks a scheduler for: memory, GPUs, time, partition; derived from the model's size, the suite's
dtype and the method, with the site's facts from profiles/cluster.yaml (the file's header gives the formulas).

The Snakefile calls job_resources() at parse time for every train job, so the SLURM profile (profiles/slurm)
and the local profile (its gpu limit) honour the same numbers, and a job that cannot fit the site's largest
allocation is refused before anything is submitted. No torch here: parse time stays light.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import yaml

from zoharness.devices import can_be_cuda
from zoharness.methods import get_method
from zoharness.models import model_table

CLUSTER_ENV = "ZOHARNESS_CLUSTER"
DEFAULT_CLUSTER_FILE = "profiles/cluster.yaml"
# The tests' tiny models (zoharness.models._tiny_model) have well under a million parameters.
TINY_PARAMS = 1_000_000
# "opt-13b", "Llama-2-7b-hf", "SmolLM2-135M-Instruct", "opt-1.3b": a number and a unit, not inside a word.
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([bBmM])(?![A-Za-z0-9])")
_UNIT = {"b": 1e9, "m": 1e6}
_SITE_KEYS = {"partition", "account", "gpu_memory_gb", "max_gpus_per_job", "cpus_per_gpu", "runtime_minutes"}
_SIZING_KEYS = {
    "bytes_per_param",
    "memory_factor",
    "activation_overhead_gb",
    "host_memory_factor",
    "host_overhead_gb",
}


class ClusterConfigError(ValueError):
    pass


def cluster_file(base_dir: str | Path = ".") -> Path:
    """The cluster file in use: $ZOHARNESS_CLUSTER, else profiles/cluster.yaml under base_dir."""
    return Path(os.environ.get(CLUSTER_ENV) or Path(base_dir) / DEFAULT_CLUSTER_FILE)


def load(path: str | Path) -> dict:
    """The cluster file, checked: unknown or missing keys and non-positive sizes are errors naming the key."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClusterConfigError(f"{path}: no such cluster file (set {CLUSTER_ENV} or restore it)") from None
    if not isinstance(cfg, dict):
        raise ClusterConfigError(f"{path}: expected a mapping with site, sizing and model_params")
    for block, keys in (("site", _SITE_KEYS), ("sizing", _SIZING_KEYS)):
        got = cfg.get(block)
        if not isinstance(got, dict):
            raise ClusterConfigError(f"{path}: `{block}` must be a mapping with keys {sorted(keys)}")
        if set(got) != keys:
            raise ClusterConfigError(
                f"{path}: `{block}` has unknown keys {sorted(set(got) - keys)} and lacks {sorted(keys - set(got))}"
            )
    site, sizing = cfg["site"], cfg["sizing"]
    for key in ("gpu_memory_gb", "max_gpus_per_job", "cpus_per_gpu"):
        _positive(path, f"site.{key}", site[key])
    for key in ("activation_overhead_gb", "host_memory_factor", "host_overhead_gb"):
        _positive(path, f"sizing.{key}", sizing[key], allow_zero=True)
    runtime = site["runtime_minutes"]
    if not isinstance(runtime, dict) or "default" not in runtime:
        raise ClusterConfigError(
            f"{path}: site.runtime_minutes must map rule names to minutes, with `default`"
        )
    for rule, minutes in runtime.items():
        _positive(path, f"site.runtime_minutes.{rule}", minutes)
    for dtype, nbytes in sizing["bytes_per_param"].items():
        _positive(path, f"sizing.bytes_per_param.{dtype}", nbytes)
    for method, factor in (sizing["memory_factor"] or {}).items():
        _positive(path, f"sizing.memory_factor.{method}", factor)
    for slug, n in (cfg.get("model_params") or {}).items():
        _positive(path, f"model_params.{slug}", n)
    return {**cfg, "model_params": cfg.get("model_params") or {}, "path": str(path)}


def _positive(path, key, value, allow_zero=False) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (value > 0 or allow_zero and value == 0)
    )
    if not ok:
        raise ClusterConfigError(
            f"{path}: {key} = {value!r}; expected a {'non-negative' if allow_zero else 'positive'} number"
        )


def parameters_from_name(source: str) -> float | None:
    """The parameter count a model's id states ("facebook/opt-13b" -> 13e9), or None. The last number with a
    unit wins ("Llama-2-7b" -> 7e9)."""
    found = _SIZE.findall(source.rsplit("/", 1)[-1].split("@")[0])
    if not found:
        return None
    number, unit = found[-1]
    return float(number) * _UNIT[unit.lower()]


def model_parameters(slug: str, cluster: dict, models: dict[str, str] | None = None) -> float:
    """Parameters of a suite's model: the cluster file's model_params, else the tiny models' bound, else
    what its id says; otherwise an error naming the key to set."""
    if slug in cluster["model_params"]:
        return float(cluster["model_params"][slug])
    source = model_table(models).get(slug, slug)
    if source.startswith("tiny:"):
        return float(TINY_PARAMS)
    n = parameters_from_name(source)
    if n is None:
        raise ClusterConfigError(
            f"{cluster['path']}: cannot tell how many parameters model {slug!r} ({source}) has from its name; "
            f"add `model_params: {{{slug}: <count>}}`"
        )
    return n


def memory_factor(method: str, cluster: dict) -> float:
    """Peak device memory of a run as a multiple of its weights: the cluster file's entry, else the
    method's MEMORY_FACTOR (default 1: a forward-only method holds the weights and activations)."""
    table = cluster["sizing"]["memory_factor"] or {}
    if method in table:
        return float(table[method])
    return float(getattr(get_method(method), "MEMORY_FACTOR", 1.0))


def runtime_minutes(rule: str, cluster: dict) -> int:
    table = cluster["site"]["runtime_minutes"]
    return int(table.get(rule, table["default"]))


def job_resources(
    *, model: str, method: str, dtype: str, device: str, cluster: dict, models: dict | None = None
) -> dict:
    """The resources of one train job: mem_mb (host), gpu (0 on CPU), runtime, cpus_per_gpu, and the
    site's slurm_partition / slurm_account when set, with the estimate's inputs beside them (`estimate`)."""
    sizing, site = cluster["sizing"], cluster["site"]
    if dtype not in sizing["bytes_per_param"]:
        raise ClusterConfigError(
            f"{cluster['path']}: sizing.bytes_per_param has no entry for dtype {dtype!r}"
        )
    params = model_parameters(model, cluster, models)
    weights_gb = params * sizing["bytes_per_param"][dtype] / 2**30
    device_gb = weights_gb * memory_factor(method, cluster) + sizing["activation_overhead_gb"]
    host_gb = weights_gb * sizing["host_memory_factor"] + sizing["host_overhead_gb"]
    gpus = 0
    if can_be_cuda(device):
        gpus = max(1, math.ceil(device_gb / site["gpu_memory_gb"]))
        if gpus > site["max_gpus_per_job"]:
            raise ClusterConfigError(
                f"model {model!r} with method {method!r} needs about {device_gb:.0f} GB of GPU memory "
                f"({params / 1e9:.2f}B parameters x {sizing['bytes_per_param'][dtype]} bytes x "
                f"{memory_factor(method, cluster):g} + {sizing['activation_overhead_gb']} GB): {gpus} GPUs of "
                f"{site['gpu_memory_gb']} GB, more than site.max_gpus_per_job = {site['max_gpus_per_job']} "
                f"in {cluster['path']}"
            )
    else:
        host_gb += device_gb
    out = {
        "mem_mb": int(math.ceil(host_gb * 1024)),
        "gpu": gpus,
        "runtime": runtime_minutes("train", cluster),
        "device_gb": round(device_gb, 1),  # not a resource: the train job checks it against its GPUs
    }
    if gpus:
        out["cpus_per_gpu"] = int(site["cpus_per_gpu"])
    out.update(site_resources(cluster))
    return out


def site_resources(cluster: dict) -> dict:
    """The SLURM partition and account every job gets, where the site names them."""
    site = cluster["site"]
    return {f"slurm_{key}": str(site[key]) for key in ("partition", "account") if site[key] not in (None, "")}
