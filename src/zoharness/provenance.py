"""run_info.json: what produced a run (code version, packages, machine)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("zoharness", "torch", "transformers", "tokenizers", "safetensors", "numpy", "gguf", "snakemake")


def git_state(cwd: str | Path = ".") -> dict:
    def run(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)

    try:
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        # Tracked source changes only: results/ and logs are untracked or ignored outputs.
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def run_info(device, model_ref: dict, threads: int) -> dict:
    from zoharness.profiling import device_name

    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        # The vector ISA torch's CPU kernels dispatch to (AVX2, AVX512, ...): float results of the same code
        # can differ at rounding level between machines that differ here.
        "cpu_capability": cpu_capability(),
        "torch_threads": threads,
        "device": str(device),
        "device_name": device_name(device),
        "model_ref": model_ref,
    }
