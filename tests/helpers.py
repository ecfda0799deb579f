"""Build a real run directory (split manifest + run_config.json) the way the workflow does."""

from pathlib import Path

from tests.conftest import DATA
from zoharness.config import run_spec, validate
from zoharness.data import data_dir, make_split
from zoharness.io import sha256_file, write_json_atomic


def suite(methods: dict, task: str = "sst2", **over) -> dict:
    raw = {
        "suite": "t",
        "models": ["tiny-llama"],
        "tasks": [task],
        "variants": methods,
        "seeds": [0],
        "data": {"dir": str(DATA), "num_train": 16, "num_dev": 8, "num_test": 12},
        "eval": {"batch_size": 8, "max_length": 96},
        "device": "cpu",
        "threads": 1,
    }
    raw.update(over)
    return validate(raw)


def make_run(
    root: Path,
    method: str,
    params: dict | None = None,
    seed: int = 0,
    method_id: str | None = None,  # the method, when the variant has another name
    task: str = "sst2",
    **suite_over,
):
    cfg = suite({method: {"method": method_id or method, "params": params or {}}}, task, **suite_over)
    split_path = root / f"split-{task}-seed{seed}.json"
    if not split_path.exists():
        d = cfg["data"]
        manifest = make_split(
            task, data_dir(d), seed, d["num_train"], d["num_dev"], d["num_test"], d["source"]
        )
        write_json_atomic(split_path, manifest)
    run_dir = root / method / f"seed{seed}"
    spec = run_spec(cfg, "tiny-llama", task, method, seed)
    spec["split_sha256"] = sha256_file(split_path)
    write_json_atomic(run_dir / "run_config.json", spec)
    return run_dir, split_path
