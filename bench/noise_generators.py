"""Cost of drawing MeZO's z on CPU: nanoseconds per float32 Gaussian, drawn and added to a weight tensor.

    python bench/noise_generators.py                 # 20 tensors of 3.5M values (~ the model's linear layers)
    python bench/noise_generators.py --threads 2 --out bench/out/noise_generators.json

A MeZO step without a z cache draws z three times (perturb, flip, restore+update), so on the embedded
SmolLM2-135M (134.5M values) every ns/sample here costs 3 x 0.13 s per step; two forwards of the
benchmark batch take about 5 s on this machine (bench/mezo_step.py). Candidates, each a documented, seedable Gaussian:
  torch normal_       what zoharness uses: one torch.Generator (mt19937) per tensor, tensors on `threads` threads
  numpy <bitgen>      numpy.random.Generator(<bitgen>).standard_normal(dtype=float32, out=...) (ziggurat)
  inductor randn      torch.compile'd `w.add_(torch.randn(w.shape) * c)`: inductor's counter-based (Philox)
                      random in one fused loop; seeded through torch.manual_seed before each call
  philox fill         zoharness.philox's C kernel (Philox4x32-10 + Box–Muller) writing z to memory, then an axpy
  philox fused        the same kernel generating z inside the pass `w += c * z` (what MeZO version 2 does)
  axpy only           w += c * z with z already in memory: the memory traffic of a pass
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness import philox  # noqa: E402
from zoharness.io import write_json_atomic  # noqa: E402
from zoharness.profiling import device_name  # noqa: E402


def best_ns_per_sample(fn, n_samples: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e9 / n_samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tensors", type=int, default=20)
    ap.add_argument("--size", type=int, default=3_500_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-inductor", action="store_true", help="no torch.compile (it needs a C++ compiler)")
    ap.add_argument("--out", default=str(ROOT / "bench/out/noise_generators.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pool = ThreadPoolExecutor(args.threads)
    n = args.tensors * args.size
    weights = [torch.randn(args.size) for _ in range(args.tensors)]
    zs = [torch.empty(args.size) for _ in range(args.tensors)]
    results: dict[str, float] = {}

    def on_pool(fn):
        return lambda: list(pool.map(fn, range(args.tensors)))

    gens = [torch.Generator().manual_seed(i) for i in range(args.tensors)]

    def torch_normal(i):
        weights[i].add_(zs[i].normal_(0.0, 1.0, generator=gens[i]), alpha=1e-3)

    results["torch normal_ + axpy"] = best_ns_per_sample(on_pool(torch_normal), n, args.repeats)
    for bitgen in ("PCG64", "SFC64", "Philox"):

        def numpy_normal(i, bitgen=bitgen):
            g = np.random.Generator(getattr(np.random, bitgen)(i))
            g.standard_normal(args.size, dtype=np.float32, out=zs[i].numpy())
            weights[i].add_(zs[i], alpha=1e-3)

        results[f"numpy {bitgen} ziggurat + axpy"] = best_ns_per_sample(
            on_pool(numpy_normal), n, args.repeats
        )
    if philox.kernel_available():

        def philox_fill(i):
            weights[i].add_(philox.fill(zs[i], i), alpha=1e-3)

        results["philox kernel fill + axpy"] = best_ns_per_sample(on_pool(philox_fill), n, args.repeats)
        results["philox kernel fused axpy"] = best_ns_per_sample(
            on_pool(lambda i: philox.axpy_(weights[i], i, 1e-3)), n, args.repeats
        )
        results["philox kernel fill only"] = best_ns_per_sample(
            on_pool(lambda i: philox.fill(zs[i], i)), n, args.repeats
        )
    results["axpy only (z in memory)"] = best_ns_per_sample(
        on_pool(lambda i: weights[i].add_(zs[i], alpha=1e-3)), n, args.repeats
    )
    compile_s = None
    if not args.skip_inductor:

        @torch.compile(dynamic=True)
        def fused(w, c):
            w.add_(torch.randn(w.shape, device=w.device) * c)

        t0 = time.perf_counter()
        torch.manual_seed(0)
        fused(weights[0], 1e-3)
        compile_s = time.perf_counter() - t0

        def inductor_all():
            for i, w in enumerate(weights):
                torch.manual_seed(i)
                fused(w, 1e-3)

        results["inductor randn + axpy (fused)"] = best_ns_per_sample(inductor_all, n, args.repeats)
    for name, ns in results.items():
        print(f"{name:34s} {ns:6.2f} ns/sample   ({ns * 134.5e6 / 1e9:.3f} s per draw of 134.5M)")
    write_json_atomic(
        args.out,
        {
            "command": "python bench/noise_generators.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "ns_per_sample": results,
            "samples": n,
            "threads": args.threads,
            "repeats": args.repeats,
            "inductor_compile_s": compile_s,
            "device": device_name(torch.device("cpu")),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
