"""AdamW's optimizer step on SmolLM2-135M-sized parameters: torch's for-loop (the CPU default), foreach and
fused implementations, interleaved, medians over repeats. FO (methods/fo.py) uses fused.

    python bench/adamw_step.py [--threads 2] [--repeats 5] [--out bench/out/adamw_step.json]

Parameter shapes: one 28.3M tensor (the tied embedding) and 30 of 3.54M (a layer's linear weights); 134.5M
values in all, as the embedded model. Gradients are random: the step's cost does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness.io import write_json_atomic  # noqa: E402
from zoharness.profiling import host_record  # noqa: E402

IMPLEMENTATIONS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench/out/adamw_step.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = [torch.nn.Parameter(torch.randn(n)) for n in [28_311_552] + [3_538_944] * 30]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    optimizers = {name: torch.optim.AdamW(params, lr=1e-5, **kw) for name, kw in IMPLEMENTATIONS.items()}
    times = {name: [] for name in optimizers}
    for r in range(1 + args.repeats):  # round 0 allocates the optimizer states: not timed
        for name, opt in optimizers.items():
            t0 = time.perf_counter()
            opt.step()
            if r:
                times[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, med in medians.items():
        print(f"AdamW {name:9s} step median {med:.3f} s")
    write_json_atomic(
        args.out,
        {
            "command": "python bench/adamw_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "parameters": sum(p.numel() for p in params),
            "threads": args.threads,
            "step_median_s": medians,
            "step_times_s": times,
            **host_record(torch.device("cpu")),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
