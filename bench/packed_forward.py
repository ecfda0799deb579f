"""The training objective's forward on real batches, right-padded vs packed, interleaved in one process.

    python bench/packed_forward.py                       # SST-2, seed-0 split, batches of 16, embedded model
    python bench/packed_forward.py --task rte --batches 8 --out bench/out/packed_forward-rte.json

The batches are the training sampler's first `--batches` batches (what a MeZO run's first steps see); each round
times every batch padded and packed (a MeZO step makes two such forwards). Evaluation: `scoring.evaluate` on the
first `--eval-examples` dev examples with packing on and off. Medians over rounds; ratio = packed / padded.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness import models, scoring  # noqa: E402
from zoharness.data import load_split, make_split  # noqa: E402
from zoharness.io import write_json_atomic  # noqa: E402
from zoharness.profiling import device_name  # noqa: E402
from zoharness.tasks import get_task  # noqa: E402
from zoharness.train import BatchSampler  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-ref", default=str(ROOT / "resources/models/smollm2-135m/model_ref.json"))
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--eval-examples", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/out/packed_forward.json"))
    ap.add_argument(
        "--random-opt",
        action="store_true",
        help="time a randomly initialised OPT-125m-shaped model (MeZO's architecture; it packs with the block "
        "mask) on the embedded tokenizer's ids: speed only, its predictions mean nothing",
    )
    args = ap.parse_args(argv)
    if not Path(args.model_ref).exists():
        print(f"{args.model_ref}: not found; prepare it first (make bench)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model, tok = models.load(args.model_ref)
    model_name = json.loads(Path(args.model_ref).read_text()).get("slug")
    if args.random_opt:
        from transformers import OPTConfig, OPTForCausalLM

        torch.manual_seed(0)
        config = OPTConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id)  # defaults: the OPT-125m shape
        model, model_name = OPTForCausalLM(config).eval(), "random-init OPT-125m shape"
    mode = scoring.packing_mode(model)
    if mode is None:
        print(
            f"{args.model_ref}: this model does not pass the packing probe; nothing to compare",
            file=sys.stderr,
        )
        return 2
    task = get_task(args.task)
    data = ROOT / "data"
    split = load_split(make_split(args.task, data, 0, 1000, 500, 1000), data)
    objective = scoring.objective_for(task.kind)
    train = [scoring.encode(tok, task.prompt(ex), 2048, objective=objective) for ex in split.train]
    sampler = BatchSampler(len(train), args.batch_size, seed=0)
    chosen = [[train[i] for i in sampler.indices(step)] for step in range(args.batches)]
    padded = [scoring.collate(b, tok.pad_token_id) for b in chosen]
    packed = [scoring.collate(b, tok.pad_token_id, pack=mode) for b in chosen]
    dev = [scoring.encode(tok, task.prompt(ex), 2048) for ex in split.dev[: args.eval_examples]]

    def evaluate(pack: bool) -> None:
        model._zoharness_packing = mode if pack else None
        scoring.evaluate(model, dev, tok.pad_token_id, 32)

    times: dict[str, list[float]] = {"padded": [], "packed": [], "eval padded": [], "eval packed": []}
    with torch.no_grad():
        for r in range(1 + args.repeats):  # round 0 warms up
            for name, fn in (
                ("padded", lambda: [scoring.loss(model, b) for b in padded]),
                ("packed", lambda: [scoring.loss(model, b) for b in packed]),
                ("eval padded", lambda: evaluate(False)),
                ("eval packed", lambda: evaluate(True)),
            ):
                t0 = time.perf_counter()
                fn()
                if r:
                    times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    per_forward = {k: med[k] / args.batches for k in ("padded", "packed")}
    result = {
        "command": "python bench/packed_forward.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": model_name,
        "packing_mode": mode,
        "task": args.task,
        "batch_size": args.batch_size,
        "batches": args.batches,
        "real_tokens": sum(b.n_tokens for b in padded),
        "positions_padded": sum(b.input_ids.numel() for b in padded),
        "positions_packed": sum(b.input_ids.numel() for b in packed),
        "forward_median_s": per_forward,
        "forward_ratio_packed_to_padded": per_forward["packed"] / per_forward["padded"],
        "eval_examples": len(dev),
        "eval_median_s": {"padded": med["eval padded"], "packed": med["eval packed"]},
        "eval_ratio_packed_to_padded": med["eval packed"] / med["eval padded"],
        "times_s": times,
        "threads": args.threads,
        "repeats": args.repeats,
        "device": device_name(torch.device("cpu")),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "torch": torch.__version__,
    }
    print(
        f"{args.task}, {args.batches} training batches of {args.batch_size}: forward padded "
        f"{per_forward['padded']:.3f} s, packed {per_forward['packed']:.3f} s "
        f"(x{result['forward_ratio_packed_to_padded']:.2f}); positions {result['positions_padded']} -> "
        f"{result['positions_packed']} for {result['real_tokens']} tokens"
    )
    print(
        f"evaluation of {len(dev)} dev examples (batches of 32): padded {med['eval padded']:.2f} s, packed "
        f"{med['eval packed']:.2f} s (x{result['eval_ratio_packed_to_padded']:.2f})"
    )
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
