"""Peak memory and latency statistics (CPU: peak RSS; CUDA: peak allocated/reserved)."""

from __future__ import annotations

import resource
import sys

import numpy as np


def peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


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
