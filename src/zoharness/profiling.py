"""Peak memory and latency statistics (CPU: peak RSS; CUDA: peak allocated/reserved)."""

from __future__ import annotations

import resource
import sys

import numpy as np


def peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


def tensor_bytes(tensors) -> int:
    """Bytes held by the tensors, each counted once (tied weights appear twice in a model's lists)."""
    unique = {id(t): t for t in tensors if t is not None}
    return sum(t.numel() * t.element_size() for t in unique.values())


def _status_bytes(field: str) -> int | None:
    """A /proc/self/status memory field (VmRSS, VmHWM) in bytes; None where there is no procfs."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc malloc_trim), so RSS counts live memory: a model loaded
    in float32 and then quantized otherwise keeps the float32 pages in RSS after they are freed."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def train_phase_start(device) -> dict:
    """Memory resident when the training loop starts (model, method state), with the peak reset, so
    the loop's own peak can be read afterwards (process-lifetime peaks include loading and quantizing)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return {"measure": "cuda_allocated", "start": int(torch.cuda.memory_allocated(device))}
    release_free_memory()
    reset = _reset_peak_rss()
    return {"measure": "cpu_rss" if reset else None, "start": _status_bytes("VmRSS")}


def train_phase_peaks(device, start: dict) -> dict:
    """The training loop's memory: resident at its start, its peak, and the difference, which for ZO
    methods is activations plus transient weights (a dequantized matrix). On CPU it is RSS, which
    also counts allocator slack, so read it as an upper bound."""
    import torch

    if start["measure"] == "cuda_allocated":
        peak = int(torch.cuda.max_memory_allocated(device))
    elif start["measure"] == "cpu_rss":
        peak = _status_bytes("VmHWM")
    else:
        return {}
    return {
        "train_resident_at_start_bytes": start["start"],
        "train_peak_bytes": peak,
        "train_transient_peak_bytes": peak - start["start"],
        "train_memory_measure": start["measure"],
    }


def cuda_peaks(device) -> dict:
    import torch

    if getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return {}
    return {
        "cuda_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
        "cuda_peak_reserved_bytes": int(torch.cuda.max_memory_reserved(device)),
    }


def latency_stats(seconds: list[float], skip_warmup: int = 3) -> dict:
    """Median and p90 over timed steps, skipping the first few (allocator and cache warm-up)."""
    timed = seconds[skip_warmup:] if len(seconds) > skip_warmup else seconds
    if not timed:
        return {"step_latency_median_s": None, "step_latency_p90_s": None, "timed_steps": 0}
    arr = np.asarray(timed)
    return {
        "step_latency_median_s": float(np.median(arr)),
        "step_latency_p90_s": float(np.percentile(arr, 90)),
        "timed_steps": int(arr.size),
    }


def device_name(device) -> str:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "cpu"


def cpu_signature() -> dict:
    """The CPU's vendor family and model and the vector ISA torch dispatches to: hosts sold under one name
    ("AMD EPYC") differ by 2x in speed and round some kernels differently, so benchmarks record this."""
    from zoharness.provenance import cpu_capability

    info = {"cpu_capability": cpu_capability()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and key.strip() not in info:
                    info[key.strip()] = value.strip()
                if line.strip() == "":
                    break
    except OSError:
        pass
    return info


def host_record(device) -> dict:
    """What a benchmark's JSON says about where it ran: the device's name, on CPU its family, model and vector ISA
    (cpu_signature), the OS and torch's version."""
    import platform

    import torch

    return {
        "device": device_name(device),
        **({"cpu": cpu_signature()} if torch.device(device).type == "cpu" else {}),
        "platform": platform.platform(),
        "torch": torch.__version__,
    }


def interleaved_times(calls: dict, warmup: int, repeats: int, sync=None) -> dict[str, list[float]]:
    """Wall times of each call over `repeats` rounds after `warmup` ones, every round timing each call
    once, so slow drift of a shared machine (thermal, other load) hits all calls alike. `sync` (e.g.
    CUDA synchronize) runs before and after each call. Calls receive the round index."""
    import time

    import torch

    times = {name: [] for name in calls}
    with torch.no_grad():
        for r in range(warmup + repeats):
            for name, fn in calls.items():
                if sync:
                    sync()
                t0 = time.perf_counter()
                fn(r)
                if sync:
                    sync()
                if r >= warmup:
                    times[name].append(time.perf_counter() - t0)
    return times
