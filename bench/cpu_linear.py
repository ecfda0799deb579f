"""fp32 linear layers on the CPU: PyTorch's path (MKL sgemm) against oneDNN (zoharness.cpu_linear).

    python bench/cpu_linear.py                       # embedded SmolLM2-135M, 1 and 2 threads
    python bench/cpu_linear.py --out bench/out/cpu_linear.json --repeats 9

Two levels, each timed interleaved (every round times both backends) with medians over rounds:
  gemm     each distinct linear shape of the model, at the suite's rows per ZO step (~208 real tokens of
           SST-2 per batch of 16), forward only: GFLOPS per backend
  forward  the training objective's forward (scoring.loss) on 16 packed SST-2 train prompts, the call a
           MeZO step makes twice; and forward + backward (FT's step without the optimizer)
Also the largest difference between the two backends' losses (rounding level: both are IEEE fp32).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness import cpu_linear, models, scoring  # noqa: E402
from zoharness.io import iter_jsonl, write_json_atomic  # noqa: E402
from zoharness.profiling import cpu_signature, interleaved_times  # noqa: E402
from zoharness.tasks.base import Prompt  # noqa: E402

BACKENDS = ("aten", "onednn")


def sst2_batch(model, tokenizer, n: int) -> scoring.Batch:
    """The first n SST-2 train sentences as the suite prompts them (a template stand-in), packed as the
    suite packs them for this model (zoharness.scoring.packing_mode)."""
    records = (r for _, r in iter_jsonl(ROOT / "data/sst2/train.jsonl"))
    prompts = [
        Prompt(r["sentence"].strip() + " It was", (" terrible", " great"), int(r["label"]))
        for _, r in zip(range(n), records, strict=False)
    ]
    encoded = [scoring.encode(tokenizer, p, 256) for p in prompts]
    return scoring.collate(encoded, tokenizer.pad_token_id, pack=scoring.packing_mode(model) or False)


def gemm_rows(model, rows: int, warmup: int, repeats: int) -> list[dict]:
    shapes = sorted({tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)})
    out = []
    g = torch.Generator().manual_seed(0)
    for n_out, n_in in shapes:
        if n_out > 10 * n_in:  # the LM head: run at scored positions only, not at every row
            continue
        x, w = torch.randn(rows, n_in, generator=g), torch.randn(n_out, n_in, generator=g)
        calls = {
            "aten": lambda _r, x=x, w=w: torch.nn.functional.linear(x, w),
            "onednn": lambda _r, x=x, w=w: cpu_linear.linear(x, w),
        }
        times = interleaved_times(calls, warmup, repeats * 5)
        flops = 2 * rows * n_in * n_out
        row = {"shape": [rows, n_in, n_out]}
        for name in BACKENDS:
            row[f"{name}_gflops"] = round(flops / statistics.median(times[name]) / 1e9, 1)
        row["speedup"] = round(row["onednn_gflops"] / row["aten_gflops"], 2)
        out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-ref", default=str(ROOT / "resources/models/smollm2-135m/model_ref.json"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/out/cpu_linear.json"))
    args = ap.parse_args(argv)
    if not cpu_linear.available():
        print("this torch build has no oneDNN: nothing to compare", file=sys.stderr)
        return 2
    if not Path(args.model_ref).exists():
        print(
            f"{args.model_ref}: not found; prepare it first: "
            "snakemake --cores all resources/models/smollm2-135m/model_ref.json",
            file=sys.stderr,
        )
        return 2
    loaded = {name: models.load(args.model_ref, cpu_linear=name) for name in BACKENDS}
    tokenizer = loaded["aten"][1]
    batch = sst2_batch(loaded["aten"][0], tokenizer, 16)
    with torch.no_grad():
        losses = {name: float(scoring.loss(m, batch)) for name, (m, _) in loaded.items()}

    def forward(model):
        scoring.loss(model, batch)  # interleaved_times runs calls under no_grad

    def forward_backward(model):
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            scoring.loss(model, batch).backward()

    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "cpu": cpu_signature(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "model_ref": args.model_ref,
        "batch_tokens": int(batch.input_ids.numel()),
        "loss": losses,
        "loss_abs_difference": abs(losses["aten"] - losses["onednn"]),
        "threads": {},
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        times = interleaved_times(
            {
                **{f"forward/{n}": (lambda _r, m=m: forward(m)) for n, (m, _) in loaded.items()},
                **{
                    f"forward_backward/{n}": (lambda _r, m=m: forward_backward(m))
                    for n, (m, _) in loaded.items()
                },
            },
            args.warmup,
            args.repeats,
        )
        medians = {k: statistics.median(v) for k, v in times.items()}
        result["threads"][str(threads)] = {
            "gemm": gemm_rows(loaded["aten"][0], result["batch_tokens"], args.warmup, args.repeats),
            "median_s": {k: round(v, 4) for k, v in medians.items()},
            "forward_speedup": round(medians["forward/aten"] / medians["forward/onednn"], 2),
            "forward_backward_speedup": round(
                medians["forward_backward/aten"] / medians["forward_backward/onednn"], 2
            ),
        }
        print(
            f"{threads} thread(s): forward {medians['forward/aten']:.3f} s (aten) vs "
            f"{medians['forward/onednn']:.3f} s (oneDNN), x{result['threads'][str(threads)]['forward_speedup']}; "
            f"forward+backward x{result['threads'][str(threads)]['forward_backward_speedup']}"
        )
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
