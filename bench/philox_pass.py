"""One Philox noise pass over the embedded model's weights: this kernel and dispatch against an earlier commit's.

    python bench/philox_pass.py                                  # against 503c6c7, 1 and 2 threads
    python bench/philox_pass.py --against 503c6c7 --repeats 9 --out bench/out/philox_pass-zen5.json

A MeZO step without a z cache spends its noise phase in these passes (zoharness.zo.PhiloxNoise): with the
training loop's deferral, one two-seed pass (`axpy2`: the last step's update and this step's +εz) and one
one-seed pass (`axpy`: −2εz) per step. Variants, each over the model's trainable tensors in 4M-value chunks,
largest first, timed interleaved in every round:
  earlier kernel, a call per chunk   the kernel source at --against, one Python call per chunk on a thread
                                     pool (how PhiloxNoise ran a pass up to 503c6c7)
  this kernel, a call per chunk      the current source, the same dispatch (the kernel change alone)
  this kernel, one call per thread   PhiloxNoise as it runs now: philox.sweep, each thread one C call that
                                     takes chunks from a shared counter
Every variant computes the same values (tests/test_philox.py); this also checks that each variant's pass leaves
the first 4,096 values of the largest tensor as the first variant's did.
Reported: ns per weight value, median and best over the rounds, and each variant's median ÷ the first's.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness import models, philox  # noqa: E402
from zoharness.io import write_json_atomic  # noqa: E402
from zoharness.profiling import host_record  # noqa: E402
from zoharness.zo import PhiloxNoise, tensor_seeds, trainable_parameters  # noqa: E402

DEFAULT_MODEL_REF = ROOT / "resources/models/smollm2-135m/model_ref.json"


def kernel_at(rev: str, cache_dir: Path) -> ctypes.CDLL:
    """The kernel source as of git revision `rev`, built with this checkout's flags."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/zoharness/kernels/philox_gauss.c"],
        capture_output=True,
        check=True,
    ).stdout
    path = cache_dir / f"philox_gauss-{rev}.c"
    path.write_bytes(source)
    lib = ctypes.CDLL(str(philox._build(cache_dir, source_path=path)))
    u64, f32, ptr = ctypes.c_uint64, ctypes.c_float, ctypes.c_void_p
    lib.zo_philox_gauss_axpy.argtypes = [ptr, u64, u64, u64, f32]
    lib.zo_philox_gauss_axpy2.argtypes = [ptr, u64, u64, u64, f32, u64, f32]
    return lib


def per_chunk(lib, tensors, chunks, pool):
    """A pass as one Python call per chunk, on the pool's threads (or this one)."""

    def run(seeds_a, coeff_a, seeds_b=None, coeff_b=0.0):
        def one(chunk):
            i, lo, hi = chunk
            x = tensors[i].view(-1)[lo:hi]
            if seeds_b is None:
                lib.zo_philox_gauss_axpy(x.data_ptr(), lo, hi - lo, seeds_a[i], coeff_a)
            else:
                lib.zo_philox_gauss_axpy2(x.data_ptr(), lo, hi - lo, seeds_a[i], coeff_a, seeds_b[i], coeff_b)

        if pool is None:
            for chunk in chunks:
                one(chunk)
        else:
            list(pool.map(one, chunks))

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-ref", default=str(DEFAULT_MODEL_REF))
    ap.add_argument(
        "--against", default="503c6c7", help="the git revision whose kernel source to time beside"
    )
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (page faults, thread start)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not philox.kernel_available():
        raise SystemExit("philox_pass.py: the C kernel is unavailable here (no compiler?)")
    model, _ = models.load(args.model_ref)
    named = trainable_parameters(model)
    tensors = [t.data for _, t in named]
    n_values = sum(t.numel() for t in tensors)
    cache_dir = Path(tempfile.mkdtemp(prefix="philox_pass-"))
    earlier, current = kernel_at(args.against, cache_dir), philox._load()
    results = {}
    for threads in args.threads:
        noise = PhiloxNoise(named, threads=threads)
        pool = ThreadPoolExecutor(threads) if threads > 1 else None
        variants = {
            f"earlier kernel ({args.against}), a call per chunk": per_chunk(
                earlier, tensors, noise._chunks, pool
            ),
            "this kernel, a call per chunk": per_chunk(current, tensors, noise._chunks, pool),
            "this kernel, one call per thread": noise._sweep,
        }
        for op in ("axpy", "axpy2"):
            times = {name: [] for name in variants}
            for r in range(args.warmup + args.repeats):
                seeds_a, seeds_b = (
                    tensor_seeds(2 * r + 1, len(tensors)),
                    tensor_seeds(2 * r + 2, len(tensors)),
                )
                head = tensors[0].view(-1)[:4096]  # each variant starts from these values and must agree
                start_state, first_result = head.clone(), None
                for name, run in variants.items():
                    head.copy_(start_state)
                    t0 = time.perf_counter()
                    if op == "axpy":
                        run(seeds_a, 1e-3)
                    else:
                        run(seeds_a, 1e-3, seeds_b, -1e-3)
                    if r >= args.warmup:
                        times[name].append(time.perf_counter() - t0)
                    if first_result is None:
                        first_result = head.clone()
                    elif not torch.equal(head, first_result):
                        raise SystemExit(
                            f"philox_pass.py: {name} computed other values than the first variant"
                        )
                    # take the noise off again, so the weights stay near the model's (to rounding)
                    if op == "axpy":
                        run(seeds_a, -1e-3)
                    else:
                        run(seeds_b, 1e-3, seeds_a, -1e-3)
                head.copy_(start_state)
            first = statistics.median(next(iter(times.values())))
            for name, ts in times.items():
                med = statistics.median(ts)
                results[f"{threads}T {op}: {name}"] = {
                    "median_ns_per_value": med * 1e9 / n_values,
                    "best_ns_per_value": min(ts) * 1e9 / n_values,
                    "median_over_first": med / first,
                }
                print(
                    f"{threads}T {op:5s} {name:44s} median {med * 1e9 / n_values:.3f}  best "
                    f"{min(ts) * 1e9 / n_values:.3f} ns/value  ({med / first:.2f}x)"
                )
    if args.out:
        write_json_atomic(
            args.out,
            {
                "command": "python bench/philox_pass.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "values": n_values,
                "repeats": args.repeats,
                "results": results,
                **host_record(torch.device("cpu")),
            },
        )
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
