"""Devices, decided without importing torch (the Snakefile asks at parse time)."""

from __future__ import annotations

import glob


def nvidia_device_present() -> bool:
    """An NVIDIA GPU's device node exists on this machine (what `device: auto` would pick up)."""
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def can_be_cuda(device: str) -> bool:
    """Whether a job with this `device:` setting may run on CUDA here: `cuda` always, `auto` when the
    machine has an NVIDIA device. A SLURM login node may have none: declare `device: cuda` there."""
    return device == "cuda" or (device == "auto" and nvidia_device_present())


def pick_device(requested: str):
    """The torch.device for a `device:` setting (auto: CUDA when torch sees one); imports torch."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run_config asks for device 'cuda' but torch sees no CUDA device")
    return torch.device(requested)


class PlacementError(RuntimeError):
    """A job's model cannot be placed on the devices it was given (too little memory, too few GPUs)."""


def check_gpu_memory(gpus: int, estimate_gb: float | None, what: str) -> None:
    """Before loading: refuse a job whose GPUs cannot hold the scheduler's estimate (zoharness.cluster), with
    both numbers named, rather than an out-of-memory error deep inside a step. Imports torch."""
    import torch

    visible = torch.cuda.device_count()
    if gpus > visible:
        raise PlacementError(f"{what}: the job asks for {gpus} GPUs but torch sees {visible}")
    if estimate_gb is None:
        return
    free = sum(torch.cuda.mem_get_info(i)[0] for i in range(gpus)) / 2**30
    if estimate_gb > free:
        raise PlacementError(
            f"{what}: needs about {estimate_gb:.1f} GB of GPU memory (zoharness.cluster's estimate from "
            f"profiles/cluster.yaml) but its {gpus} GPU(s) have {free:.1f} GB free; give the job more GPUs "
            "(site.gpu_memory_gb, site.max_gpus_per_job) or a smaller model"
        )


def spread_device_map(gpus: int) -> dict:
    """from_pretrained's arguments that spread a model over the job's GPUs, layer by layer (MeZO's
    `device_map='auto'` for 30B/66B), never offloading to CPU or disk: an offloaded weight is reloaded from
    its copy at every forward, so the in-place perturbations and updates of ZO would be lost."""
    import torch

    return {
        "device_map": "auto",
        "max_memory": {i: torch.cuda.mem_get_info(i)[0] for i in range(gpus)},
    }


def check_no_offload(model) -> None:
    """A spread model keeps every weight on a GPU (see spread_device_map)."""
    offloaded = sorted(
        {str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()} & {"cpu", "disk"}
    )
    if offloaded:
        raise PlacementError(
            f"the model does not fit the job's GPUs: accelerate placed layers on {offloaded}; ask for more GPUs"
        )
