"""sparse-ZO-int4 step time vs dense MeZO step time, same model, batch and process; medians over repeats.

    python bench/sparse_zo_step.py                       # embedded SmolLM2-135M, batch 16 x 64, fp32, CPU
    python bench/sparse_zo_step.py --device cuda --dtype bfloat16 --out bench/out/sparse_zo_step-cuda.json

Variants (each its own copy of the model):
  mezo/none        dense MeZO (zoharness ZOSGD, z regenerated per pass: inference-level memory)
  mezo/step        dense MeZO with the step's z cached (the default suite's setting)
  sparse/nf4       sparse-ZO-int4: frozen NF4 base (bitsandbytes) + float32 delta on the mask
  sparse/dense     the same mask on an unquantized base (the 16-bit-base ablation; the run's dtype here)
For each: the whole step (2 forwards + perturb/restore/update), the objective's forward alone, and
the perturb+update work alone (the step's three axpy passes over the trained tensors, no forward).
The mask is the cached wiki-passages mask when it exists (else a random one of the same density:
step time depends on the number of entries, not on which).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from mezo_step import make_batch, settings  # noqa: E402

from zoharness import models, scoring  # noqa: E402
from zoharness.io import write_json_atomic  # noqa: E402
from zoharness.profiling import interleaved_times  # noqa: E402
from zoharness.sparse import layers, mask  # noqa: E402
from zoharness.zo import ZOSGD, step_seed, trainable_parameters  # noqa: E402

DEFAULT_MASK = ROOT / "resources/masks/smollm2-135m/wiki-passages/density~0.001-global.safetensors"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-ref", default=str(ROOT / "resources/models/smollm2-135m/model_ref.json"))
    ap.add_argument("--mask", default=str(DEFAULT_MASK))
    ap.add_argument("--density", type=float, default=1e-3, help="for the random mask when --mask is missing")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "bench/out/sparse_zo_step.json"))
    args = ap.parse_args(argv)
    if not Path(args.model_ref).exists():
        print(f"{args.model_ref}: not found; run `make bench` (it prepares the model)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def load():
        return models.load(args.model_ref, args.dtype, device)

    model, tok = load()
    batch = make_batch(tok, args.batch, args.seq_len).to(device)
    if Path(args.mask).exists():
        indices, meta = mask.load(args.mask, model)
        mask_info = {"path": str(Path(args.mask).relative_to(ROOT)), "corpus": meta.get("corpus")}
    else:
        shapes = mask.eligible_shapes(model)
        indices = mask.select(mask.random_scores(shapes, 0), args.density)
        mask_info = {"path": None, "corpus": "random", "density": args.density}

    impls, owners = {}, {}
    for cache in (False, True):
        name = f"mezo/{'step' if cache else 'none'}"
        impls[name] = ZOSGD(
            model,
            trainable_parameters(model),
            lr=1e-7,
            eps=1e-3,
            run_seed=0,
            cache=cache,
            threads=args.threads,
        )
        owners[name] = model
    for base in ("nf4", "dense"):
        m, _ = load()
        deltas = layers.sparsify(m, indices, base)
        impls[f"sparse/{base}"] = ZOSGD(m, deltas, lr=1e-7, eps=1e-3, run_seed=0, cache=False, threads=1)
        owners[f"sparse/{base}"] = m

    def axpy3(impl, i):  # the step's weight passes without its forwards
        seed = step_seed(0, i)
        impl.noise.axpy(seed, 1e-3)
        impl.noise.axpy(seed, -2e-3)
        impl.noise.axpy(seed, 1e-3)

    calls = {}
    for name, impl in impls.items():
        calls[f"{name} step"] = lambda i, impl=impl: impl.step(batch, i)
        calls[f"{name} perturb+update"] = lambda i, impl=impl: axpy3(impl, i)
    calls["dense forward"] = lambda i: scoring.loss(model, batch)
    calls["sparse/nf4 forward"] = lambda i: scoring.loss(owners["sparse/nf4"], batch)
    calls["sparse/dense forward"] = lambda i: scoring.loss(owners["sparse/dense"], batch)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    times = interleaved_times(calls, args.warmup, args.repeats, sync)
    med = {name: statistics.median(t) for name, t in times.items()}
    ratios = {
        "sparse/nf4 step / mezo/none step": med["sparse/nf4 step"] / med["mezo/none step"],
        "sparse/nf4 step / mezo/step step": med["sparse/nf4 step"] / med["mezo/step step"],
        "sparse/dense step / mezo/none step": med["sparse/dense step"] / med["mezo/none step"],
        "sparse/nf4 perturb+update / mezo/none perturb+update": med["sparse/nf4 perturb+update"]
        / med["mezo/none perturb+update"],
        "sparse/nf4 forward / dense forward": med["sparse/nf4 forward"] / med["dense forward"],
        "sparse/dense forward / dense forward": med["sparse/dense forward"] / med["dense forward"],
    }
    result = {
        "command": "python bench/sparse_zo_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model_ref": json.loads(Path(args.model_ref).read_text()).get("slug"),
        "mask": mask_info,
        "selected_entries": int(sum(i.numel() for i in indices.values())),
        **settings(args, batch, device),
        "median_s": med,
        "times_s": times,
        "ratios": ratios,
    }
    for name, value in med.items():
        print(f"{name:32s} median {value:8.4f} s")
    for name, value in ratios.items():
        print(f"{name:55s} {value:8.4f}")
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
