"""MeZO step time ÷ (2 × forward time), same model, batch and process; medians over repeats.

    python bench/mezo_step.py                      # embedded SmolLM2-135M, batch 16 x 64 tokens, fp32
    python bench/mezo_step.py --model-ref PATH --repeats 9 --out bench/out/mezo_step.json

"forward" is the training objective's forward (scoring.loss: base model + LM head at the answer
position), the same call a MeZO step makes twice. Variants:
  reference   MeZO's reference style: torch.manual_seed(seed), then z drawn tensor by tensor with
              torch.normal, four passes per step (perturb +ε, perturb -2ε, restore +ε, update).
  torch/none  zoharness ZOSGD with torch.Generator normals (MeZO version 1), z regenerated per pass
              (inference-level memory), restore+update fused (three passes), on `threads` threads.
  torch/step  the same, z kept for the step (one extra copy of the weights): drawn once per step.
  philox/none ZOSGD with counter-based Philox normals generated inside each pass by the C kernel
              (MeZO version 2's default): three fused passes, no z in memory.
  philox/step the same values, z kept for the step.
  philox/none/deferred  philox/none as the training loop runs it: each step's update left pending and
              applied in the next step's first pass, both seeds in one sweep (zoharness.zo: the same
              bits, two sweeps over the weights per step instead of three).
A ratio of 1.0 means the perturbation work is free; 2 forwards are the floor of a MeZO step.

Memory: each variant (and "inference": the objective's forward, twice per round) runs again in a child
process of its own, which resets the peak RSS after loading the model (/proc/self/clear_refs) and reports
the peak over its steps; the ratio to inference's peak is goal 1's second number (--no-memory skips it).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness import models, scoring  # noqa: E402
from zoharness.io import iter_jsonl, write_json_atomic  # noqa: E402
from zoharness.profiling import (  # noqa: E402
    cpu_signature,
    device_name,
    interleaved_times,
    train_phase_peaks,
    train_phase_start,
)
from zoharness.tasks.base import Prompt  # noqa: E402
from zoharness.zo import ZOSGD, trainable_parameters  # noqa: E402


def make_batch(tokenizer, batch: int, seq_len: int) -> scoring.Batch:
    """batch x seq_len real SST-2 text (sentences concatenated, cut to length), SST-2 candidates."""
    records = (r for _, r in iter_jsonl(ROOT / "data/sst2/train.jsonl"))
    text = " ".join(r["sentence"].strip() for _, r in zip(range(4000), records, strict=False))
    ids = tokenizer(text, add_special_tokens=False).input_ids
    prompts = []
    for b in range(batch):
        chunk = tokenizer.decode(ids[b * seq_len : (b + 1) * seq_len - 2]) + " It was"
        prompts.append(Prompt(chunk, (" terrible", " great"), b % 2))
    encoded = [scoring.encode(tokenizer, p, seq_len) for p in prompts]
    return scoring.collate(encoded, tokenizer.pad_token_id)


def settings(args, batch: scoring.Batch, device) -> dict:
    """What every timing in a step benchmark's JSON was measured with."""
    device = torch.device(device)
    return {
        "batch": args.batch,
        "seq_len": args.seq_len,
        "tokens_per_forward": int(batch.n_tokens),
        "dtype": args.dtype,
        # benches without the flag load with zoharness.models.load's default, PyTorch's path
        "cpu_linear": getattr(args, "cpu_linear", "aten"),
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "device": device_name(device),
        **({"cpu": cpu_signature()} if device.type == "cpu" else {}),
        "platform": platform.platform(),
        "torch": torch.__version__,
    }


class ReferenceMeZO:
    """The reference implementation's structure (global RNG reseeded per pass, four passes)."""

    def __init__(self, model, lr, eps):
        self.model, self.lr, self.eps = model, lr, eps
        self.params = [p for _, p in trainable_parameters(model)]

    def _perturb(self, seed, scale):
        torch.manual_seed(seed)
        for p in self.params:
            z = torch.normal(mean=0, std=1, size=p.size(), device=p.device, dtype=p.dtype)
            p.data = p.data + scale * self.eps * z

    @torch.no_grad()
    def step(self, batch, index):
        seed = 1000 + index
        self._perturb(seed, 1)
        lp = float(scoring.loss(self.model, batch))
        self._perturb(seed, -2)
        lm = float(scoring.loss(self.model, batch))
        self._perturb(seed, 1)
        g = (lp - lm) / (2 * self.eps)
        torch.manual_seed(seed)
        for p in self.params:
            z = torch.normal(mean=0, std=1, size=p.size(), device=p.device, dtype=p.dtype)
            p.data = p.data - self.lr * g * z


VARIANTS = ("reference", "torch/none", "torch/step", "philox/none", "philox/step", "philox/none/deferred")


def build_variant(name: str, model, threads: int):
    if name == "reference":
        return ReferenceMeZO(model, lr=1e-7, eps=1e-3)
    generator, cache, *mode = name.split("/")
    zo = ZOSGD(
        model,
        trainable_parameters(model),
        lr=1e-7,
        eps=1e-3,
        run_seed=0,
        cache=cache == "step",
        threads=threads,
        generator=generator,
    )
    zo.defer(mode == ["deferred"])
    return zo


def memory_child(args) -> int:
    """Peak RSS of one variant's steps (or of inference forwards) after the model is loaded."""
    torch.set_num_threads(args.threads)
    model, tok = models.load(args.model_ref, args.dtype, cpu_linear=args.cpu_linear)
    batch = make_batch(tok, args.batch, args.seq_len)
    name = args.memory_child
    impl = None if name == "inference" else build_variant(name, model, args.threads)
    start = train_phase_start(torch.device("cpu"))
    with torch.no_grad():
        for i in range(3):
            if impl is None:
                scoring.loss(model, batch), scoring.loss(model, batch)
            else:
                impl.step(batch, i)
    print(json.dumps(train_phase_peaks(torch.device("cpu"), start)))
    return 0


def measure_memory(args) -> dict:
    out = {}
    for name in ("inference", *VARIANTS):
        cmd = [sys.executable, __file__, "--memory-child", name, "--model-ref", args.model_ref]
        cmd += ["--batch", str(args.batch), "--seq-len", str(args.seq_len), "--threads", str(args.threads)]
        cmd += ["--dtype", args.dtype, "--cpu-linear", args.cpu_linear]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = out["inference"]["train_peak_bytes"]
    for name in out:
        out[name]["peak_ratio_to_inference"] = out[name]["train_peak_bytes"] / base
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-ref", default=str(ROOT / "resources/models/smollm2-135m/model_ref.json"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument(
        "--cpu-linear",
        default="onednn",
        choices=["onednn", "aten"],
        help="fp32 linear layers through oneDNN (the suites' default, zoharness.cpu_linear) or PyTorch's MKL path",
    )
    ap.add_argument("--out", default=str(ROOT / "bench/out/mezo_step.json"))
    ap.add_argument("--no-memory", action="store_true", help="skip the per-variant memory children")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        return memory_child(args)

    if not Path(args.model_ref).exists():
        print(
            f"{args.model_ref}: not found; prepare it first: snakemake --cores all resources/models/smollm2-135m/model_ref.json",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    model, tok = models.load(args.model_ref, args.dtype, cpu_linear=args.cpu_linear)
    batch = make_batch(tok, args.batch, args.seq_len)

    variants = {name: build_variant(name, model, args.threads) for name in VARIANTS}
    phases: dict[str, list[dict]] = {name: [] for name in variants if name != "reference"}

    def ours_step(name, impl, i):
        record = impl.step(batch, i)
        if i >= args.warmup:
            phases[name].append(record["phases_s"])

    calls = {
        "forward": lambda i: scoring.loss(model, batch),
        "full_logits_forward": lambda i: model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ),
        "reference": lambda i: variants["reference"].step(batch, i),
        **{name: (lambda i, name=name: ours_step(name, variants[name], i)) for name in phases},
    }
    times = interleaved_times(calls, args.warmup, args.repeats)
    fwd_med = statistics.median(times["forward"])
    full_med = statistics.median(times["full_logits_forward"])
    result = {
        "command": "python bench/mezo_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model_ref": json.loads(Path(args.model_ref).read_text()).get("slug"),
        **settings(args, batch, "cpu"),
        "forward_median_s": fwd_med,
        "forward_times_s": times["forward"],
        "full_logits_forward_median_s": full_med,
        "variants": {},
    }
    print(
        f"forward (objective) median {fwd_med:.3f} s; full-logits forward {full_med:.3f} s "
        f"[{args.batch}x{args.seq_len}, {args.dtype}, {args.threads} threads, {args.repeats} repeats]"
    )
    for name in variants:
        med = statistics.median(times[name])
        ratio = med / (2 * fwd_med)
        result["variants"][name] = {
            "step_median_s": med,
            "step_times_s": times[name],
            "ratio_to_2_forwards": ratio,
        }
        line = f"{name:20s} step median {med:.3f} s   ratio step/(2*forward) = {ratio:.2f}"
        if name in phases:  # medians of each phase over the timed repeats (ZOSGD's PhaseTimer)
            med_phases = {k: statistics.median(p[k] for p in phases[name]) for k in phases[name][0]}
            result["variants"][name]["phase_medians_s"] = med_phases
            line += "   phases: " + ", ".join(f"{k} {v:.3f}" for k, v in med_phases.items())
        print(line)
    if not args.no_memory:
        result["memory"] = measure_memory(args)
        for name, m in result["memory"].items():
            print(
                f"{name:20s} peak RSS over steps {m['train_peak_bytes'] / 2**30:.3f} GiB = {m['peak_ratio_to_inference']:.3f} x inference"
            )
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
