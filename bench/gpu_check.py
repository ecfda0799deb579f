"""One-command GPU check (issue 18): the CUDA paths of every method, NF4 on CUDA, and memory and latency at
paper shapes against MeZO's Table 22/23 and SensZOQ's "< 8 GiB", in a few minutes on one GPU.

    make gpu-check                                                   # CUDA if torch sees one, else CPU shapes
    PYTHONPATH=src python bench/gpu_check.py --device cuda --out-dir $OUT   # a GPU machine with torch+transformers
    python bench/gpu_check.py --figure-only bench/out/gpu_check.json        # redraw figure + summary from the JSON

Checks, in this order (a check that runs out of --budget-s is recorded as skipped; the JSON is rewritten
atomically after every check and every memory row, so a killed run leaves what it had measured):
  methods    every method of the registry on the tests' tiny Llama (random init): a few steps of its smoke
             settings on --device with finite losses; every method that can replay rebuilds the trained
             weights bit for bit from its JSON records on a fresh copy (the registry tests' code path);
             evaluation-only methods run one objective forward
  bnb_nf4    bitsandbytes NF4 quantize/dequantize of a 4096x4096 float16 matrix on the device: error,
             bytes, and agreement of the codes with the CPU's
  memory     peak memory of zero-shot (the objective's forward), MeZO and FT (AdamW; and FT (prefix)) steps
             on OPT-1.3B and OPT-2.7B shapes (random init) with MultiRC-length sequences (400 tokens):
             CUDA max allocated/reserved, measured in-process with the peaks reset per measurement; on CPU
             tiny-to-small OPT shapes, peak RSS above the runtime's, each measurement in a fresh process
  sparse_7b  sparse-ZO-int4 (the method's own build: NF4 base, float32 delta, a random mask of density 1e-3)
             on a Llama-2-7B shape: peak memory of its steps against SensZOQ's "< 8 GiB"
  latency    MeZO step latency on an OPT-13B shape (float16, batch 16 x 400 tokens) next to MeZO Table 23's
             2.702 s/step (A100), for both noise generators, with the forward's time (step / 2 forwards)

Precision, as in MeZO: zero-shot and MeZO hold float16 weights; FT and FT (prefix) hold float32 weights and
compute under float16 autocast (mixed precision, what MeZO's FT ran with; no loss scaling, a few steps only).
On CPU everything is float32. Models are randomly initialised from the architecture's config (no download),
so the numbers are about shapes, not accuracy.

Outputs (--out-dir, default bench/out): gpu_check.json, gpu_check.md (summary) and gpu_check_fig3.png (MeZO
Figure 3's layout: peak memory against model size, one line per method, Table 22's values as hollow markers,
drawn from the JSON alone by draw_figure). Needs torch and transformers; peft, bitsandbytes, scikit-learn and
matplotlib are imported where a check needs them, and a missing one is recorded as "skipped: <package> missing".
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness.io import write_json_atomic, write_text_atomic  # noqa: E402  (torch-free)

SCHEMA = 1
TABLE22 = ROOT / "bench/data/mezo_table22.csv"
TABLE23_S_PER_STEP = 2.702  # MeZO Table 23: OPT-13B MeZO step, batch 16, one A100 (as quoted in issue 18)
SENSZOQ_CLAIM_BYTES = 8 * 2**30  # SensZOQ (arXiv 2406.02913): fine-tunes Llama2-7B in "less than 8 GiB"
A100_BYTES = 80 * 2**30  # one A100 80GB, the paper's GPU (81920 MiB, as nvidia-smi reports it)

# Architectures from each model's config.json on the Hugging Face hub (facebook/opt-1.3b, facebook/opt-2.7b,
# facebook/opt-13b, meta-llama/Llama-2-7b-hf): hidden size, FFN width, layers, heads. OPT's other fields are
# OPTConfig's defaults, which are those models' (vocab 50272, 2048 positions, pre-LayerNorm, ReLU, biases,
# word_embed_proj_dim = hidden size, tied head).
OPT = {
    "opt-1.3b": (2048, 8192, 24, 32),
    "opt-2.7b": (2560, 10240, 32, 32),
    "opt-6.7b": (4096, 16384, 32, 32),
    "opt-13b": (5120, 20480, 40, 40),
    "opt-30b": (7168, 28672, 48, 56),
    "opt-66b": (9216, 36864, 64, 72),
    # CPU stand-ins: OPT's vocabulary and layout at hidden 64..512 (3.4M to 52M parameters)
    "opt-h64": (64, 256, 2, 4),
    "opt-h128": (128, 512, 4, 4),
    "opt-h256": (256, 1024, 6, 8),
    "opt-h512": (512, 2048, 8, 8),
}
LLAMA = {
    "llama2-7b": (4096, 11008, 32, 32),  # vocab 32000, 4096 positions, untied head
    "llama-h256": (256, 688, 4, 4),  # CPU stand-in (19.5M parameters)
}

# What a plain run measures, per device. Batches are MeZO Table 15's training batches (MeZO 16, FT 8);
# zero-shot uses MeZO's, so "MeZO ÷ zero-shot" compares the same forward.
SETTINGS = {
    "cuda": {
        "memory_shapes": ["opt-1.3b", "opt-2.7b"],
        "memory_methods": ["zero_shot", "mezo", "fo", "fo_prefix"],
        "seq_len": 400,  # MeZO Table 22 / Figure 3: MultiRC, 400 tokens per example on average
        "sparse_shape": "llama2-7b",
        "sparse_seq_lens": [64, 400],
        "latency_shape": "opt-13b",
        "latency_seq_len": 400,
    },
    "cpu": {
        "memory_shapes": ["opt-h64", "opt-h128", "opt-h256", "opt-h512"],
        "memory_methods": ["zero_shot", "mezo", "fo"],
        "seq_len": 64,
        "sparse_shape": "llama-h256",
        "sparse_seq_lens": [64],
        "latency_shape": "opt-h256",
        "latency_seq_len": 64,
    },
}
BATCH = {"zero_shot": 16, "mezo": 16, "fo": 8, "fo_prefix": 8}
MEMORY_PARAMS = {"mezo": {"lr": 1e-7}, "fo": {"lr": 1e-5}, "fo_prefix": {"lr": 1e-2}, "zero_shot": {}}
FIRST_ORDER = ("fo", "fo_prefix")  # float32 weights + float16 autocast on CUDA (mixed precision)
CHECKS = ("methods", "bnb_nf4", "memory", "sparse_7b", "latency")
# Table 22's columns -> the measured method drawn in the same colour
PAPER_METHODS = {"zero_shot_mezo": "mezo", "icl": None, "prefix_ft": "fo_prefix", "ft": "fo"}
PAPER_LABELS = {"zero_shot_mezo": "zero-shot/MeZO", "icl": "ICL", "prefix_ft": "prefix FT", "ft": "FT"}
COLOURS = {
    "zero_shot": "tab:gray",
    "mezo": "tab:blue",
    "fo_prefix": "tab:orange",
    "fo": "tab:red",
    "icl": "tab:green",
}
LABELS = {"zero_shot": "Zero-shot", "mezo": "MeZO", "fo_prefix": "FT (prefix)", "fo": "FT (AdamW)"}


# --- small helpers ---------------------------------------------------------------------------------------


def skip_reason(exc: BaseException) -> str | None:
    """'skipped: <package> missing' for a missing optional package, None for a real failure."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"skipped: {exc.name.split('.')[0]} missing"
    text = str(exc)
    if "needs bitsandbytes" in text:  # zoharness.sparse.layers wraps the ImportError
        return "skipped: bitsandbytes missing"
    return None


def failure(exc: BaseException) -> str:
    return skip_reason(exc) or f"failed: {type(exc).__name__}: {str(exc)[:500]}"


def build_model(shape: str, dtype: str, device):
    """A randomly initialised model of the shape, built directly on the device in `dtype`, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, OPTConfig

    if shape in OPT:
        h, ffn, layers, heads = OPT[shape]
        cfg = OPTConfig(
            hidden_size=h,
            ffn_dim=ffn,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            word_embed_proj_dim=h,
        )
    else:
        h, ffn, layers, heads = LLAMA[shape]
        cfg = LlamaConfig(
            hidden_size=h,
            intermediate_size=ffn,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            vocab_size=32000,
            max_position_embeddings=4096,
        )
    torch.manual_seed(0)
    with torch.device(device):
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
        except TypeError:  # transformers < 4.56 names it torch_dtype
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=getattr(torch, dtype))
    return model.eval()


def count_parameters(shape: str) -> int:
    import torch

    model = build_model(shape, "float32", torch.device("meta"))
    return sum(p.numel() for p in model.parameters())


def synthetic_batch(vocab_size: int, batch: int, seq_len: int):
    """batch x seq_len random tokens scored the way the harness scores a two-candidate classification
    prompt (scoring.encode's single-token path: the head applied at the last position only)."""
    import torch

    from zoharness import scoring

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab_size, (batch, seq_len), generator=g).tolist()
    examples = [
        scoring.EncodedExample(
            (tuple(row),),
            ((0, seq_len - 1, 5, 0), (0, seq_len - 1, 6, 1)),
            2,
            b % 2,
            (b % 2,),
            "classification",
        )
        for b, row in enumerate(ids)
    ]
    return scoring.collate(examples, pad_id=1)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, fn) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def free_cuda(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def runtime_baseline(shape: str, device) -> int | None:
    """CPU: the RSS of the runtime alone, read once the model's code is imported (a meta-device build of the
    shape imports it) and before any weight exists; None on CUDA, where allocator stats start at zero."""
    if device.type != "cpu":
        return None
    import torch

    from zoharness import profiling

    build_model(shape, "float32", torch.device("meta"))
    profiling.release_free_memory()
    return profiling._status_bytes("VmRSS")


def phase_peaks(device, start: dict, runtime_rss: int | None) -> dict:
    """The phase's peak as the figure's one number (peak_bytes) plus the raw figures behind it: CUDA max
    allocated (and reserved); on CPU the peak RSS above the RSS of the runtime alone (torch, transformers)."""
    import torch

    from zoharness import profiling

    out = profiling.train_phase_peaks(device, start)
    if device.type == "cuda":
        out["cuda_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated(device))
        out["cuda_peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved(device))
        out["peak_bytes"] = out["cuda_peak_allocated_bytes"]
        out["measure"] = "cuda max_memory_allocated (weights + method state + transients)"
    else:
        out["cpu_runtime_rss_bytes"] = runtime_rss
        out["peak_bytes"] = out["train_peak_bytes"] - runtime_rss
        out["measure"] = "peak RSS (VmHWM) minus the RSS after importing torch/transformers, one process"
    return out


# --- checks ----------------------------------------------------------------------------------------------


def _tiny_batches(tok, examples, n_steps: int, device, size: int = 4):
    """The registry tests' batches (tests/test_methods.py): SST-2 prompts, 4 per batch, 96 tokens."""
    from zoharness import scoring
    from zoharness.tasks import get_task

    task = get_task("sst2")
    enc = [scoring.encode(tok, task.prompt(e), 96) for e in examples]
    return [
        scoring.collate(enc[size * i : size * i + size], tok.pad_token_id).to(device) for i in range(n_steps)
    ]


def one_method(method: str, ref: Path, train, work: Path, device, n_steps: int) -> dict:
    """A method's smoke steps on `device`, and for a replayable one the replay of its records on a fresh copy."""
    import torch

    from zoharness import models, scoring
    from zoharness.methods import get_method

    t0 = time.perf_counter()
    m = get_method(method)
    row = {"method": method, "label": m.LABEL}
    model, tok = models.load(ref, "float32", str(device))
    inputs = m.smoke_inputs(model, train, work) if getattr(m, "INPUTS", ()) else {}
    params = m.Params(**m.SMOKE_PARAMS)
    impl = m.build(model, params, 3, **inputs)
    batches = _tiny_batches(tok, train, n_steps, device)
    if impl is None:
        with torch.no_grad():
            losses = [float(scoring.loss(model, batches[0]))]
        row.update(kind="evaluation only", steps=0, losses=losses, replay="n/a (no steps)")
    else:
        records = [impl.step(batch, i) for i, batch in enumerate(batches)]
        losses = [float(r["loss"]) for r in records]
        row.update(kind="trains", steps=len(records), losses=losses)
        if impl.can_replay:
            base, _ = models.load(ref, "float32", str(device))
            replayed = m.build(base, params, 3, **inputs)
            for record in json.loads(json.dumps(records)):  # as read back from the log
                replayed.replay(record)
            a, b = model.state_dict(), base.state_dict()
            differ = [k for k in a if not torch.equal(a[k], b[k])]
            untouched, _ = models.load(ref, "float32", str(device))
            m.build(untouched, params, 3, **inputs)
            moved = any(not torch.equal(a[k], v) for k, v in untouched.state_dict().items())
            if differ:
                row["replay"] = f"MISMATCH in {len(differ)} tensors, e.g. {differ[0]}"
            else:
                row["replay"] = "exact" if moved else "exact, but the steps moved no weight"
            row["replay_tensors"] = len(a)
        else:
            row["replay"] = "n/a (no replayable trajectory)"
    row["finite"] = all(math.isfinite(x) for x in losses)
    row["device"] = str(next(model.parameters()).device)
    ok = row["finite"] and not str(row["replay"]).startswith(("MISMATCH", "exact, but"))
    row["status"] = "ok" if ok else "failed"
    row["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return row


def check_methods(args, device, report) -> dict:
    import tempfile

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        return _check_methods(args, device, report, Path(tmp))


def _check_methods(args, device, report, work: Path) -> dict:
    from zoharness import models
    from zoharness.data import load_split, make_split
    from zoharness.methods import method_ids

    ref = work / "tiny-llama" / "model_ref.json"
    models.prepare("tiny-llama", "tiny:llama", ref.parent)
    manifest = make_split("sst2", ROOT / "data", seed=0, num_train=24, num_dev=8, num_test=12)
    train = load_split(manifest, ROOT / "data").train
    ids = args.methods or method_ids()
    out = {
        "model": "tiny:llama (zoharness.models, random init, float32)",
        "steps": args.method_steps,
        "rows": [],
    }
    for method in ids:
        (work / method).mkdir(parents=True, exist_ok=True)
        if report.remaining() < 10:
            out["rows"].append({"method": method, "status": "skipped: budget"})
            continue
        try:
            row = one_method(method, ref, train, work / method, device, args.method_steps)
        except Exception as e:  # one method's failure is its row, not the check's end
            row = {"method": method, "status": failure(e)}
        out["rows"].append(row)
        report.put("methods", {**out, "status": "running"})
    statuses = [r["status"] for r in out["rows"]]
    out["status"] = "ok" if all(s == "ok" or s.startswith("skipped") for s in statuses) else "failed"
    out["summary"] = {s: statuses.count(s) for s in sorted(set(statuses))}
    return out


def check_bnb_nf4(args, device, report) -> dict:
    import bitsandbytes.functional as bnbf
    import torch

    g = torch.Generator().manual_seed(0)
    w_cpu = (torch.randn(4096, 4096, generator=g) * 0.02).to(torch.float16)
    w = w_cpu.to(device)
    t = time.perf_counter()
    codes, state = bnbf.quantize_4bit(w, blocksize=64, quant_type="nf4")
    back = bnbf.dequantize_4bit(codes, state)
    sync(device)
    elapsed = time.perf_counter() - t
    out = {
        "matrix": [4096, 4096],
        "dtype": "float16",
        "blocksize": 64,
        "bitsandbytes": getattr(__import__("bitsandbytes"), "__version__", None),
        "codes_bytes": codes.numel() * codes.element_size(),
        "relative_error": float((back.float() - w.float()).norm() / w.float().norm()),
        "quantize_dequantize_s": elapsed,
        "codes_device": str(codes.device),
    }
    if device.type != "cpu":
        try:  # the same matrix quantized by bitsandbytes' CPU backend
            codes_cpu, state_cpu = bnbf.quantize_4bit(w_cpu, blocksize=64, quant_type="nf4")
            out["codes_equal_to_cpu_fraction"] = float(
                (codes_cpu.flatten() == codes.cpu().flatten()).float().mean()
            )
            out["absmax_max_abs_diff_to_cpu"] = float(
                (state_cpu.absmax.float() - state.absmax.cpu().float()).abs().max()
            )
        except Exception as e:
            out["cpu_comparison"] = failure(e)
    out["status"] = "ok" if out["relative_error"] < 0.2 and codes.device.type == device.type else "failed"
    return out


def measure_memory(
    shape: str, method: str, device, warmup: int, steps: int, seq_len: int, threads: int
) -> dict:
    """One (shape, method) measurement: build, reset the peaks, warm-up + timed steps, read the peaks."""
    import contextlib

    import torch

    from zoharness import profiling, scoring
    from zoharness.methods import get_method

    torch.set_num_threads(threads)
    runtime_rss = runtime_baseline(shape, device)
    free_cuda(device)
    amp = device.type == "cuda" and method in FIRST_ORDER
    weights = "float16" if device.type == "cuda" and not amp else "float32"
    model = build_model(shape, weights, device)
    n_params = sum(p.numel() for p in model.parameters())
    batch = synthetic_batch(model.config.vocab_size, BATCH[method], seq_len).to(device)
    m = get_method(method)
    impl = m.build(model, m.Params(**MEMORY_PARAMS[method]), 0)
    autocast = torch.autocast("cuda", dtype=torch.float16) if amp else contextlib.nullcontext()
    losses = []

    def run(i):
        with autocast:
            if impl is None:
                with torch.no_grad():
                    losses.append(float(scoring.loss(model, batch)))
            else:
                losses.append(float(impl.step(batch, i)["loss"]))

    start = profiling.train_phase_start(device)
    times = [timed(device, lambda i=i: run(i)) for i in range(warmup + steps)]
    row = {
        "shape": shape,
        "parameters": n_params,
        "method": method,
        "label": m.LABEL,
        "batch": BATCH[method],
        "seq_len": seq_len,
        "weights_dtype": weights,
        "compute": "float16 autocast" if amp else weights,
        "warmup": warmup,
        "steps": steps,
        "losses": losses,
        "finite": all(math.isfinite(x) for x in losses),
        **phase_peaks(device, start, runtime_rss),
        **profiling.latency_stats(times, skip_warmup=warmup),
        "step_times_s": times,
    }
    if impl is not None:
        row["method_state"] = impl.extra_metrics()
    row["status"] = "ok" if row["finite"] else "failed: non-finite loss"
    return row  # the model goes with this frame; the next measurement's free_cuda returns its memory


def _memory_child(shape, method, args, timeout: float) -> dict:
    """measure_memory in a fresh process (CPU: peak RSS is per process)."""
    cmd = [
        sys.executable,
        __file__,
        "--device",
        "cpu",
        "--child",
        shape,
        method,
        "--threads",
        str(args.threads),
    ]
    cmd += ["--warmup", str(args.warmup), "--steps", str(args.steps), "--seq-len", str(args.seq_len)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        return {
            "shape": shape,
            "method": method,
            "status": f"failed: rc {done.returncode}: {done.stderr[-800:]}",
        }
    return json.loads(lines[-1][len("RESULT ") :])


def memory_ratios(rows: list[dict]) -> dict:
    """Per shape: each method's peak ÷ zero-shot's, and FT ÷ MeZO."""
    out = {}
    for shape in dict.fromkeys(r["shape"] for r in rows):
        peak = {r["method"]: r["peak_bytes"] for r in rows if r["shape"] == shape and r.get("status") == "ok"}
        ratios = {}
        if "zero_shot" in peak:
            ratios.update(
                {f"{m}/zero_shot": v / peak["zero_shot"] for m, v in peak.items() if m != "zero_shot"}
            )
        if "fo" in peak and "mezo" in peak:
            ratios["fo/mezo"] = peak["fo"] / peak["mezo"]
        out[shape] = ratios
    return out


def check_memory(args, device, report) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    out = {
        "setting": {
            "seq_len": args.seq_len,
            "batch": {m: BATCH[m] for m in args.memory_methods},
            "tokens": "random ids, every row full length (no padding); objective: 2-candidate classification",
            "warmup": args.warmup,
            "steps": args.steps,
        },
        "rows": [],
    }
    jobs = [(shape, method) for shape in args.shapes for method in args.memory_methods]

    def one(job):
        shape, method = job
        if report.remaining() < (15 if device.type == "cpu" else 60):  # a 2.7B MeZO row takes ~1 min on CUDA
            return {"shape": shape, "method": method, "status": "skipped: budget"}
        try:
            if device.type == "cpu":
                return _memory_child(shape, method, args, report.remaining())
            return measure_memory(shape, method, device, args.warmup, args.steps, args.seq_len, args.threads)
        except Exception as e:
            free_cuda(device)
            return {"shape": shape, "method": method, "status": failure(e)}

    # CPU: --jobs processes at a time (each its own RSS); CUDA: one after another in this process
    workers = args.jobs if device.type == "cpu" else 1
    with ThreadPoolExecutor(workers) as pool:
        for row in pool.map(one, jobs):
            out["rows"].append(row)
            out["ratios"] = memory_ratios(out["rows"])
            report.put("memory", {**out, "status": "running"})
    out["status"] = "ok" if all(r.get("status") == "ok" for r in out["rows"]) else "partial"
    return out


def check_sparse_7b(args, device, report) -> dict:
    import tempfile

    import torch

    from zoharness import profiling
    from zoharness.methods import sparse_zo_int4
    from zoharness.sparse import mask

    shape = SETTINGS[device.type]["sparse_shape"]
    density = 1e-3
    dtype = "float16" if device.type == "cuda" else "float32"
    free_cuda(device)
    runtime_rss = runtime_baseline(shape, device)
    t0 = time.perf_counter()
    model = build_model(shape, dtype, device)
    n_params = sum(p.numel() for p in model.parameters())
    shapes = mask.eligible_shapes(model)
    g = torch.Generator(device=device).manual_seed(0)
    # a random mask of the size of a sensitivity mask, per matrix (global top-k of scores would need all
    # 6.5e9 of them at once); drawn on the device, where randperm of 45M entries takes milliseconds
    indices = {
        n: torch.randperm(s[0] * s[1], device=device, generator=g)[: max(1, round(density * s[0] * s[1]))]
        .sort()
        .values.cpu()
        for n, s in shapes.items()
    }
    params = sparse_zo_int4.Params(lr=1e-4, base="nf4", density=density, mask="random")
    with tempfile.TemporaryDirectory(prefix="gpu_check-mask-") as tmp:
        path = Path(tmp) / "mask.safetensors"
        mask.save(path, indices, shapes, {"corpus": "random per matrix (gpu_check)", "density": density})
        impl = sparse_zo_int4.build(model, params, 0, mask=str(path))
    del indices
    free_cuda(device)
    out = {
        "shape": shape,
        "parameters": n_params,
        "weights_dtype": dtype,
        "density": density,
        "selected": sum(t.numel() for t in impl.zo.noise.tensors),
        "memory_by_component_bytes": impl.memory,
        "build_s": time.perf_counter() - t0,
        "claim": "SensZOQ (arXiv 2406.02913): fine-tuning Llama2-7B in less than 8 GiB",
        "claim_bytes": SENSZOQ_CLAIM_BYTES,
        "rows": [],
    }
    for seq_len in args.sparse_seq_lens:
        if report.remaining() < 20:
            out["rows"].append({"seq_len": seq_len, "status": "skipped: budget"})
            continue
        batch = synthetic_batch(model.config.vocab_size, 16, seq_len).to(device)
        start = profiling.train_phase_start(device)
        losses = []
        times = [
            timed(device, lambda i=i, losses=losses, batch=batch: losses.append(impl.step(batch, i)["loss"]))
            for i in range(args.warmup + args.steps)
        ]
        row = {
            "batch": 16,
            "seq_len": seq_len,
            "losses": losses,
            **phase_peaks(device, start, runtime_rss),
            **profiling.latency_stats(times, skip_warmup=args.warmup),
        }
        worst = max(row["peak_bytes"], row.get("cuda_peak_reserved_bytes", 0))
        row["below_claim"] = worst < SENSZOQ_CLAIM_BYTES
        row["status"] = "ok" if all(math.isfinite(x) for x in losses) else "failed: non-finite loss"
        out["rows"].append(row)
        report.put("sparse_7b", {**out, "status": "running"})
    out["claim_applies"] = device.type == "cuda" and shape == "llama2-7b"
    out["status"] = "ok" if all(r["status"] == "ok" for r in out["rows"]) else "partial"
    return out


def philox_estimate(report, n_params: int, out: dict) -> float:
    """Seconds a Philox MeZO step will take at n_params: scaled from the memory check's MeZO rows (Philox, the
    default), else 30 torch-noise steps' worth."""
    rows = report.data["checks"].get("memory", {}).get("rows", [])
    mezo_rows = [r for r in rows if r.get("method") == "mezo" and r.get("status") == "ok"]
    if mezo_rows:
        r = max(mezo_rows, key=lambda r: r["parameters"])
        return r["step_latency_median_s"] * n_params / r["parameters"]
    return 30 * out["phases"]["mezo_torch"]["step_latency_median_s"]


def check_latency(args, device, report) -> dict:
    """Forward, MeZO step (torch noise) and MeZO step (Philox, the default) on one model, phase by phase,
    each phase's peak memory recorded too (zero-shot and MeZO points for the figure)."""
    import torch

    from zoharness import profiling, scoring
    from zoharness.methods import get_method, mezo

    shape = SETTINGS[device.type]["latency_shape"]
    seq_len = SETTINGS[device.type]["latency_seq_len"]
    dtype = "float16" if device.type == "cuda" else "float32"
    runtime_rss = runtime_baseline(shape, device)
    free_cuda(device)
    model = build_model(shape, dtype, device)
    n_params = sum(p.numel() for p in model.parameters())
    batch = synthetic_batch(model.config.vocab_size, 16, seq_len).to(device)
    out = {
        "shape": shape,
        "parameters": n_params,
        "weights_dtype": dtype,
        "batch": 16,
        "seq_len": seq_len,
        "table23_s_per_step": TABLE23_S_PER_STEP,
        "table23_setting": "MeZO Table 23: OPT-13B, MeZO step, batch 16, one A100 80GB (as quoted in issue 18)",
        "phases": {},
        "memory_rows": [],
    }
    warmup, steps = args.warmup, max(args.steps, 3)

    def phase(name, fn, n_warm, n_steps):
        start = profiling.train_phase_start(device)
        times = [timed(device, lambda i=i: fn(i)) for i in range(n_warm + n_steps)]
        res = {
            **phase_peaks(device, start, runtime_rss),
            **profiling.latency_stats(times, skip_warmup=n_warm),
        }
        res["step_times_s"] = times
        out["phases"][name] = res
        report.put("latency", {**out, "status": "running"})
        return res

    def memory_row(method, name):
        out["memory_rows"].append(
            {
                "shape": shape,
                "parameters": n_params,
                "method": method,
                "label": get_method(method).LABEL,
                "batch": 16,
                "seq_len": seq_len,
                "weights_dtype": dtype,
                "peak_bytes": out["phases"][name]["peak_bytes"],
                "status": "ok",
                "from": f"latency phase {name}",
            }
        )

    with torch.no_grad():
        fwd = phase("forward", lambda i: float(scoring.loss(model, batch)), warmup, steps)
    memory_row("zero_shot", "forward")
    for noise in ("torch", "philox"):
        impl = mezo.build(model, mezo.Params(lr=1e-7, noise=noise), 0)
        if noise == "philox":  # the default generator: torch ops on CUDA (the C kernel is CPU-only), slow
            estimate = philox_estimate(report, n_params, out)
            if report.remaining() < 60 + 2 * estimate:
                out["phases"]["mezo_philox"] = {"status": f"skipped: budget (~{estimate:.0f} s a step)"}
                continue
            res = phase("mezo_philox", lambda i, impl=impl: impl.step(batch, i), 0, 1)
        else:
            res = phase("mezo_torch", lambda i, impl=impl: impl.step(batch, i), warmup, steps)
        res["ratio_to_2_forwards"] = res["step_latency_median_s"] / (2 * fwd["step_latency_median_s"])
        res["ratio_to_table23"] = res["step_latency_median_s"] / TABLE23_S_PER_STEP
    memory_row("mezo", "mezo_philox" if "peak_bytes" in out["phases"]["mezo_philox"] else "mezo_torch")
    out["status"] = "ok"
    return out


# --- the report ------------------------------------------------------------------------------------------


class Report:
    """The JSON being built; rewritten atomically whenever a check or a row completes."""

    def __init__(self, path: Path, header: dict, budget_s: float):
        self.path, self.t0, self.budget_s = path, time.perf_counter(), budget_s
        self.data = {**header, "checks": {}, "status": "running"}

    def remaining(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def put(self, name: str, result: dict) -> None:
        self.data["checks"][name] = json_safe(result)
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        write_json_atomic(self.path, self.data)


def json_safe(obj):
    """obj with every non-finite float as a string ("nan", "inf"): the JSON is strict, and a diverged loss
    must be reported, not crash the report."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def header(args, device) -> dict:
    import torch

    from zoharness.profiling import device_name

    try:
        import transformers

        tf_version = transformers.__version__
    except Exception:
        tf_version = None
    return {
        "schema": SCHEMA,
        "command": " ".join(["python bench/gpu_check.py", *args.argv]),
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": tf_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "quick": args.quick,
        "budget_s": args.budget_s,
        "threads": args.threads,
        "note": "randomly initialised models: memory and latency of the shapes, not of trained weights",
    }


# --- figure and summary (from the JSON alone; no torch) --------------------------------------------------


def read_table22(path: Path = TABLE22) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    for r in rows:
        r["parameters"], r["memory_gb"], r["gpus"] = (
            int(r["parameters"]),
            float(r["memory_gb"]),
            int(r["gpus"]),
        )
    return rows


def measured_rows(data: dict) -> list[dict]:
    """Every memory measurement of the run: the memory check's rows and the latency check's phases."""
    checks = data.get("checks", {})
    rows, seen = [], set()
    for r in [*checks.get("memory", {}).get("rows", []), *checks.get("latency", {}).get("memory_rows", [])]:
        key = (r.get("method"), r.get("parameters"))  # a shape both checks measured: the memory check's
        if r.get("status") == "ok" and r.get("peak_bytes") and key not in seen:
            seen.add(key)
            rows.append(r)
    return rows


def _params_label(x, _pos=None) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= scale:
            return f"{x / scale:g}{unit}"
    return f"{x:g}"


def draw_figure(json_path, out_png, table22: Path = TABLE22) -> Path:
    """MeZO Figure 3's layout from a gpu_check JSON: peak memory (GiB) against parameters (log-log), one line
    per measured method (filled markers) and Table 22's values (hollow markers, dashed, 'paper (A100)')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    data = json.loads(Path(json_path).read_text(encoding="utf-8"))
    rows = measured_rows(data)
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    handles = []
    for method in ("zero_shot", "mezo", "fo_prefix", "fo"):
        pts = sorted({(r["parameters"], r["peak_bytes"]) for r in rows if r["method"] == method})
        if not pts:
            continue
        x, y = zip(*pts, strict=True)
        # zero-shot as a broad pale band under the others: MeZO's line lies on it where their peaks agree
        wide = method == "zero_shot"
        style = {
            "color": COLOURS[method],
            "marker": "o",
            "linewidth": 5 if wide else 1.6,
            "markersize": 8 if wide else 5,
            "alpha": 0.4 if wide else 1.0,
        }
        ax.plot(x, [v / 2**30 for v in y], "-", zorder=2 if wide else 3, **style)
        batch = next(r["batch"] for r in rows if r["method"] == method)
        handles.append(Line2D([], [], label=f"{LABELS[method]} (batch {batch}, this run)", **style))
    paper = read_table22(table22)
    for col, measured in PAPER_METHODS.items():
        pts = sorted((r["parameters"], r["memory_gb"]) for r in paper if r["method"] == col)
        if not pts:
            continue
        colour = COLOURS[measured or "icl"]
        x, y = zip(*pts, strict=True)
        ax.plot(x, y, ":", color=colour, linewidth=0.9, alpha=0.8)
        ax.plot(x, y, "o", markerfacecolor="none", markeredgecolor=colour, markersize=7, markeredgewidth=1.4)
        handles.append(
            Line2D(
                [],
                [],
                color=colour,
                marker="o",
                markerfacecolor="none",
                linestyle=":",
                label=f"paper (A100): {PAPER_LABELS[col]}",
            )
        )
    ax.axhline(A100_BYTES / 2**30, color="black", linewidth=0.8, linestyle="-.", alpha=0.6)
    ax.text(
        0.5,
        A100_BYTES / 2**30 * 1.12,
        "one A100 (80 GB)",
        fontsize=7,
        alpha=0.7,
        ha="center",
        va="bottom",
        transform=ax.get_yaxis_transform(),
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_params_label))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.set_xlabel("model size (parameters)")
    ax.set_ylabel("peak memory (GiB; paper: GB as printed)")
    dev = data.get("device", "?")
    seq = data.get("checks", {}).get("memory", {}).get("setting", {}).get("seq_len", "?")
    what = "CUDA max allocated" if dev == "cuda" else "peak RSS above the runtime's"
    ax.set_title(
        f"Peak memory vs model size (MeZO Fig. 3 layout)\nthis run: {data.get('device_name', dev)}, "
        f"{what}, {seq} tokens/example, random init",
        fontsize=9,
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="upper left", ncol=2, frameon=False)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return out_png


def _gib(b) -> str:
    return "–" if b is None else f"{b / 2**30:.2f}"


def write_summary(json_path, out_md, table22: Path = TABLE22) -> Path:
    """A short markdown summary of a gpu_check JSON (no torch)."""
    data = json.loads(Path(json_path).read_text(encoding="utf-8"))
    checks = data.get("checks", {})
    paper = {(r["model"], r["method"]): r for r in read_table22(table22)}
    lines = [
        f"# gpu_check: {data.get('device_name')} ({data.get('device')})",
        "",
        f"`{data.get('command')}`; torch {data.get('torch')} (CUDA {data.get('cuda')}), transformers "
        f"{data.get('transformers')}; {data.get('elapsed_s')} s of a {data.get('budget_s')} s budget; "
        f"status **{data.get('status')}**. Random-init models: shapes, not accuracy.",
        "",
    ]
    m = checks.get("methods")
    if m:
        lines += [
            f"## Methods on {data.get('device')} ({m.get('model')}, {m.get('steps')} steps): {m.get('status')}",
            "",
            "| method | kind | losses | replay | status |",
            "|---|---|---|---|---|",
        ]
        for r in m.get("rows", []):
            losses = ", ".join(f"{x:.4f}" for x in r.get("losses", []))
            lines.append(
                f"| `{r['method']}` | {r.get('kind', '')} | {losses} | {r.get('replay', '')} | {r['status']} |"
            )
        lines.append("")
    b = checks.get("bnb_nf4")
    if b:
        lines += [f"## bitsandbytes NF4: {b.get('status')}", ""]
        if "relative_error" in b:
            extra = ""
            if "codes_equal_to_cpu_fraction" in b:
                extra = f"; codes equal to the CPU's: {100 * b['codes_equal_to_cpu_fraction']:.2f}%"
            lines += [
                f"4096×4096 float16 on {b.get('codes_device')}: relative error {b['relative_error']:.4f}, "
                f"{b['codes_bytes'] / 2**20:.1f} MiB of codes, {b['quantize_dequantize_s']:.3f} s{extra}.",
                "",
            ]
    mem = checks.get("memory")
    if mem:
        s = mem.get("setting", {})
        lines += [
            f"## Peak memory (GiB): {mem.get('status')}",
            "",
            f"{s.get('seq_len')} tokens per example; batch "
            + ", ".join(f"{LABELS.get(k, k)} {v}" for k, v in s.get("batch", {}).items())
            + f"; {s.get('warmup')} warm-up + "
            f"{s.get('steps')} steps. "
            + (
                "CUDA: max allocated (reserved beside it); the CUDA context is not counted."
                if data.get("device") == "cuda"
                else "CPU: peak RSS above the runtime's, one process per row; the paper column does not apply."
            ),
            "",
            "| shape | params | method | weights (compute) | peak | reserved | ÷ zero-shot | paper Table 22 (GB) | step (s) |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|",
        ]
        ratios = mem.get("ratios", {})
        for r in mem.get("rows", []):
            if r.get("status") != "ok":
                lines.append(f"| {r['shape']} | | {r['method']} | | | | | | {r.get('status')} |")
                continue
            col = {
                "zero_shot": "zero_shot_mezo",
                "mezo": "zero_shot_mezo",
                "fo": "ft",
                "fo_prefix": "prefix_ft",
            }
            p = paper.get((r["shape"], col.get(r["method"], "")))
            ratio = ratios.get(r["shape"], {}).get(
                f"{r['method']}/zero_shot", 1.0 if r["method"] == "zero_shot" else None
            )
            lines.append(
                f"| {r['shape']} | {r['parameters'] / 1e6:.1f}M | {r['label']} (batch {r['batch']}) | "
                f"{r['weights_dtype']} ({r['compute']}) | {_gib(r['peak_bytes'])} | "
                f"{_gib(r.get('cuda_peak_reserved_bytes'))} | {'' if ratio is None else f'{ratio:.2f}'} | "
                f"{'' if p is None else format(p['memory_gb'], 'g')} | {r.get('step_latency_median_s') or 0:.3f} |"
            )
        lines.append("")
    sp = checks.get("sparse_7b")
    if sp and sp.get("rows") is not None:
        lines += [
            f"## sparse-ZO-int4 on {sp.get('shape')} ({sp.get('parameters', 0) / 1e9:.2f}B parameters): {sp.get('status')}",
            "",
            f"{sp.get('claim')}; NF4 base, density {sp.get('density')} ({sp.get('selected')} trained values); "
            f"the claim applies: {sp.get('claim_applies')}.",
            "",
            "| batch × tokens | peak (GiB) | reserved (GiB) | < 8 GiB | step (s) |",
            "|---|---:|---:|---|---:|",
        ]
        for r in sp["rows"]:
            if r.get("status") != "ok":
                lines.append(f"| 16 × {r.get('seq_len')} | | | | {r.get('status')} |")
                continue
            lines.append(
                f"| {r['batch']} × {r['seq_len']} | {_gib(r['peak_bytes'])} | {_gib(r.get('cuda_peak_reserved_bytes'))} | "
                f"{'yes' if r['below_claim'] else 'NO'} | {r.get('step_latency_median_s') or 0:.3f} |"
            )
        lines.append("")
    la = checks.get("latency")
    if la and la.get("phases"):
        lines += [
            f"## Step latency on {la.get('shape')} ({la.get('parameters', 0) / 1e9:.2f}B, {la.get('weights_dtype')}, "
            f"batch {la.get('batch')} × {la.get('seq_len')}): {la.get('status')}",
            "",
            f"{la.get('table23_setting')}: {la.get('table23_s_per_step')} s/step.",
            "",
            "| phase | median (s) | ÷ 2 forwards | ÷ Table 23 | peak (GiB) |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, r in la["phases"].items():
            if "step_latency_median_s" not in r:
                lines.append(f"| {name} | {r.get('status')} | | | |")
                continue
            r2 = r.get("ratio_to_2_forwards")
            r23 = r.get("ratio_to_table23")
            lines.append(
                f"| {name} | {r['step_latency_median_s']:.3f} | {'' if r2 is None else f'{r2:.2f}'} | "
                f"{'' if r23 is None else f'{r23:.2f}'} | {_gib(r.get('peak_bytes'))} |"
            )
        lines.append("")
    for name in ("memory", "sparse_7b", "latency"):  # a check that stopped before its first row
        c = checks.get(name)
        if c and str(c.get("status", "")).startswith(("skipped", "failed")) and not c.get("rows"):
            lines.append(f"- `{name}`: {c['status']}")
    lines += ["", f"Figure: `{Path(out_md).with_name(Path(out_md).stem + '_fig3.png').name}`.", ""]
    out_md = Path(out_md)
    write_text_atomic(out_md, "\n".join(lines))
    return out_md


# --- main ------------------------------------------------------------------------------------------------


def make_carry(target: Path, cuda_versions: list[str]) -> Path:
    """target/bitsandbytes: the installed package without the native libraries of other CUDA versions and
    backends (122 MB -> ~5 MB for CUDA 13.0), for PYTHONPATH=target on a machine without bitsandbytes.
    The libraries are loaded with ctypes, so the copy does not depend on the Python version."""
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("bitsandbytes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bitsandbytes is not installed here (make setup installs it)")
    src = Path(next(iter(spec.submodule_search_locations)))
    keep = {"libbitsandbytes_cpu.so", *(f"libbitsandbytes_cuda{v}.so" for v in cuda_versions)}

    def ignore(folder, names):
        return [n for n in names if n.startswith("libbitsandbytes_") and n not in keep] + ["__pycache__"]

    dest = target / "bitsandbytes"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, ignore=ignore)
    for info in src.parent.glob("bitsandbytes-*.dist-info"):  # importlib.metadata.version finds it there
        shutil.rmtree(target / info.name, ignore_errors=True)
        shutil.copytree(info, target / info.name)
    missing = sorted(keep - {p.name for p in dest.glob("libbitsandbytes_*")})
    if missing:
        raise SystemExit(
            f"{src} has no {missing}; available: {sorted(p.name for p in src.glob('libbitsandbytes_*'))}"
        )
    return dest


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="cuda | cpu | auto (cuda when torch sees one)")
    ap.add_argument("--out-dir", default=str(ROOT / "bench/out"))
    ap.add_argument("--stem", default="gpu_check", help="file names: STEM.json, STEM.md, STEM_fig3.png")
    ap.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget for all checks (8 min)")
    ap.add_argument("--quick", action="store_true", help="fewer steps, first memory shape only")
    ap.add_argument("--checks", nargs="+", default=list(CHECKS), choices=CHECKS)
    ap.add_argument(
        "--methods", nargs="+", default=None, help="methods check: these ids (default: the registry)"
    )
    ap.add_argument("--shapes", nargs="+", default=None, help=f"memory shapes, of {sorted(OPT)}")
    ap.add_argument("--memory-methods", nargs="+", default=None, choices=sorted(BATCH))
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or 2)
    ap.add_argument("--jobs", type=int, default=2, help="CPU memory measurements run at once (processes)")
    ap.add_argument(
        "--figure-only", metavar="JSON", help="redraw the figure and summary from a JSON, then exit"
    )
    ap.add_argument(
        "--count-params", action="store_true", help="print the parameters of every shape, then exit"
    )
    ap.add_argument(
        "--make-carry",
        metavar="DIR",
        help="copy this environment's bitsandbytes into DIR, with the native libraries of --carry-cuda only "
        "(the GPU machine lacks it; a whole wheel is too big to travel), then exit",
    )
    ap.add_argument("--carry-cuda", nargs="+", default=["130"], help="CUDA versions' libraries to copy")
    ap.add_argument("--child", nargs=2, metavar=("SHAPE", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None) -> int:
    args = parse(argv)
    out_dir = Path(args.out_dir)
    if args.figure_only:
        src = Path(args.figure_only)
        print(draw_figure(src, out_dir / f"{args.stem}_fig3.png"))
        print(write_summary(src, out_dir / f"{args.stem}.md"))
        return 0
    if args.make_carry:
        print(make_carry(Path(args.make_carry), args.carry_cuda))
        return 0
    import torch

    if args.count_params:
        for shape in [*OPT, *LLAMA]:
            print(f"{shape:12s} {count_parameters(shape)}")
        return 0
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    setting = SETTINGS[device.type]
    args.shapes = args.shapes or setting["memory_shapes"][: 1 if args.quick else None]
    args.memory_methods = args.memory_methods or setting["memory_methods"]
    args.seq_len = args.seq_len or setting["seq_len"]
    args.sparse_seq_lens = setting["sparse_seq_lens"][: 1 if args.quick else None]
    # two steps at least: FT's peak comes in its second step (AdamW's moments exist from the first on)
    args.warmup = args.warmup if args.warmup is not None else 1
    args.steps = args.steps if args.steps is not None else (1 if args.quick or device.type == "cuda" else 2)
    args.method_steps = 2 if args.quick else 3
    if args.child:
        row = measure_memory(*args.child, device, args.warmup, args.steps, args.seq_len, args.threads)
        print("RESULT " + json.dumps(row))
        return 0
    torch.set_num_threads(args.threads)
    json_path = out_dir / f"{args.stem}.json"
    report = Report(json_path, header(args, device), args.budget_s)
    runners = {
        "methods": check_methods,
        "bnb_nf4": check_bnb_nf4,
        "memory": check_memory,
        "sparse_7b": check_sparse_7b,
        "latency": check_latency,
    }
    minimum = {"methods": 30, "bnb_nf4": 10, "memory": 30, "sparse_7b": 60, "latency": 60}
    for name in CHECKS:
        if name not in args.checks:
            continue
        if report.remaining() < minimum[name] * (0.2 if device.type == "cpu" else 1):
            report.put(name, {"status": "skipped: budget"})
            continue
        t0 = time.perf_counter()
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            result = runners[name](args, device, report)
        except Exception as e:
            result = {**report.data["checks"].get(name, {}), "status": failure(e)}
            free_cuda(device)
        result["elapsed_s"] = round(time.perf_counter() - t0, 1)
        report.put(name, result)
        print(f"[gpu_check] {name}: {result['status']} ({result['elapsed_s']} s)", flush=True)
    report.data["status"] = "complete" if report.remaining() > 0 else "over budget"
    report.write()
    try:
        print(draw_figure(json_path, out_dir / f"{args.stem}_fig3.png"))
    except Exception as e:  # matplotlib may be missing on a bare GPU machine: redraw with --figure-only
        print(f"[gpu_check] figure: {failure(e)}", flush=True)
    print(write_summary(json_path, out_dir / f"{args.stem}.md"))
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
