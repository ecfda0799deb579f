"""Peak memory and step latency of sparse-ZO-int4 vs dense MeZO at paper-scale shapes (random init).

    python bench/sparse_zo_profile.py --device cuda --shapes llama2-7b opt-6.7b   # on a GPU
    python bench/sparse_zo_profile.py                                            # CPU: scaled-down shape

Memory and latency need no trained weights, so every model here is randomly initialised from the
architecture's config (no download): the numbers are about shapes, not accuracy. Each (shape, method)
runs in its own process, so peaks do not leak between them:
  sparse_zo_int4  NF4 base (bitsandbytes, blocksize 64) + float32 delta at density 1e-3 (a random mask
                  of the same size as a sensitivity mask), ZO on the delta
  mezo            dense MeZO in --dtype (z regenerated per pass)
  sensitivity     mask generation: forward + backward per sequence, squared gradients summed in float32
Measured: resident memory after building (CUDA allocated, or RSS), peak during the timed steps
(CUDA max allocated/reserved, or VmHWM), median/p90 step latency after warm-up. Batch: --batch x
--seq-len random tokens, causal-LM loss.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SHAPES = {
    # Llama-2-7B: hidden 4096, MLP 11008, 32 layers, 32 heads, vocab 32000 (its config.json)
    "llama2-7b": (
        "llama",
        {
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32000,
        },
    ),
    # OPT-6.7B: hidden 4096, FFN 16384, 32 layers, 32 heads, vocab 50272
    "opt-6.7b": (
        "opt",
        {
            "hidden_size": 4096,
            "ffn_dim": 16384,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "vocab_size": 50272,
            "word_embed_proj_dim": 4096,
        },
    ),
    "opt-1.3b": (
        "opt",
        {
            "hidden_size": 2048,
            "ffn_dim": 8192,
            "num_hidden_layers": 24,
            "num_attention_heads": 32,
            "vocab_size": 50272,
            "word_embed_proj_dim": 2048,
        },
    ),
    # a seconds-long check of the script itself
    "llama-tiny": (
        "llama",
        {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "vocab_size": 512,
        },
    ),
    # CPU stand-in: Llama-2-7B at 1/4 width and 1/4 depth
    "llama2-7b/16": (
        "llama",
        {
            "hidden_size": 1024,
            "intermediate_size": 2752,
            "num_hidden_layers": 8,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "vocab_size": 32000,
        },
    ),
}
METHODS = ("sparse_zo_int4", "mezo", "sensitivity")


def build_model(shape: str, dtype, device):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, OPTConfig

    arch, kw = SHAPES[shape]
    cfg = (LlamaConfig if arch == "llama" else OPTConfig)(max_position_embeddings=2048, **kw)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model.eval()


def _memory(device) -> int:
    import torch

    from zoharness.profiling import _status_bytes

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return int(torch.cuda.memory_allocated(device))
    return _status_bytes("VmRSS")


def one(shape: str, method: str, args) -> dict:
    import torch

    from zoharness import profiling
    from zoharness.sparse import calibration, layers, mask
    from zoharness.zo import ZOSGD, trainable_parameters

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = build_model(shape, dtype, device)
    n_params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(
        0,
        model.config.vocab_size,
        (args.batch, args.seq_len),
        device=device,
        generator=torch.Generator(device=device).manual_seed(0),
    )
    out = {"shape": shape, "method": method, "parameters": n_params}
    if method == "sensitivity":
        seqs = [ids[i] for i in range(min(args.steps, args.batch))]
        start = profiling.train_phase_start(device)
        scores, info = calibration.squared_gradients(model, calibration.lm_losses(model, seqs, device))
        out.update(
            profiling.train_phase_peaks(device, start),
            seconds_per_sequence=info["time_s"] / len(seqs),
            sequence_length=args.seq_len,
            score_bytes=sum(s.numel() * 4 for s in scores.values()),
        )
        return out
    if method == "sparse_zo_int4":
        shapes = mask.eligible_shapes(model)
        g = torch.Generator().manual_seed(0)
        # a random mask of the right size, drawn per matrix in proportion to its size (global top-k of
        # uniform scores would need all N scores at once: 26 GB at 7B)
        indices = {
            n: torch.randperm(s[0] * s[1], generator=g)[: max(1, round(args.density * s[0] * s[1]))]
            .sort()
            .values
            for n, s in shapes.items()
        }
        tensors = layers.sparsify(model, indices, "nf4")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        out["memory_by_component_bytes"] = layers.memory_by_component(model)
    else:
        tensors = trainable_parameters(model)
    out["build_s"] = time.perf_counter() - t0
    zo = ZOSGD(
        model,
        tensors,
        lr=1e-7,
        eps=1e-3,
        run_seed=0,
        cache=False,
        threads=args.threads if device.type == "cpu" else 1,
    )
    zo._loss = lambda batch: float(model(input_ids=batch, labels=batch).loss)  # causal-LM objective
    out["resident_after_build_bytes"] = _memory(device)
    start = profiling.train_phase_start(device)
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            zo.step(ids, i)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t)
    out.update(
        {
            **profiling.train_phase_peaks(device, start),
            **profiling.latency_stats(times, skip_warmup=args.warmup),
        }
    )
    out["step_times_s"] = times
    if device.type == "cuda":
        out["cuda_peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved(device))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shapes", nargs="+", default=None, help=f"of {sorted(SHAPES)}")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--dtype", default=None, help="default: float16 on cuda, float32 on cpu")
    ap.add_argument("--density", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one", nargs=2, metavar=("SHAPE", "METHOD"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    args.dtype = args.dtype or ("float16" if args.device == "cuda" else "float32")
    if args.one:
        print("RESULT " + json.dumps(one(*args.one, args)))
        return 0
    shapes = args.shapes or (["llama2-7b", "opt-6.7b"] if args.device == "cuda" else ["llama2-7b/16"])
    passthrough = [
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--density",
        str(args.density),
        "--batch",
        str(args.batch),
        "--seq-len",
        str(args.seq_len),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
    ]
    rows = []
    for shape in shapes:
        for method in args.methods:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", shape, method, *passthrough],
                capture_output=True,
                text=True,
            )
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not lines:
                rows.append({"shape": shape, "method": method, "error": proc.stderr.strip()[-2000:]})
                print(f"{shape} {method}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(lines[-1][len("RESULT ") :])
            rows.append(row)
            print(
                f"{shape:14s} {method:15s} peak {row.get('train_peak_bytes', 0) / 2**30:6.2f} GiB  "
                f"step {row.get('step_latency_median_s') or row.get('seconds_per_sequence', 0):.3f} s"
            )
    import torch

    from zoharness.io import write_json_atomic
    from zoharness.profiling import device_name

    out = args.out or str(ROOT / f"bench/out/sparse_zo_profile-{args.device}.json")
    write_json_atomic(
        out,
        {
            "command": "python bench/sparse_zo_profile.py "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "device": device_name(torch.device(args.device)),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "dtype": args.dtype,
            "batch": args.batch,
            "seq_len": args.seq_len,
            "density": args.density,
            "steps": args.steps,
            "warmup": args.warmup,
            "note": "randomly initialised models: memory and latency of the shapes, not of trained weights",
            "rows": rows,
        },
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
