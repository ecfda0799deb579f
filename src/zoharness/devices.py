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
