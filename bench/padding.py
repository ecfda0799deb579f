"""Compute spent on padding: right-padded vs packed batches, on the real data and the embedded tokenizer.

    python bench/padding.py                            # tasks of MeZO's OPT half, seed-0 split, batch 16 and 8
    python bench/padding.py --tasks sst2 copa --out bench/out/padding.json

For each task: the training sampler's batches over one epoch of MeZO's 1000 training examples (ZO's batch of
16 and FT's batch of 8: the same examples a run sees), and the evaluation's length-sorted batches of its 500
dev examples. "padding" is positions the forward computes that hold no token, per real token. Packing
also makes attention compute each row's full row x row scores (zoharness.scoring.PACK_ROW_TOKENS bounds it);
that is reported as attention positions per real one. No model forward is run: this counts positions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness import scoring  # noqa: E402
from zoharness.data import DataUnavailableError, load_split, make_split  # noqa: E402
from zoharness.io import DataError, write_json_atomic  # noqa: E402
from zoharness.tasks import get_task  # noqa: E402
from zoharness.train import BatchSampler  # noqa: E402

DEFAULT_TASKS = ("sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "record", "squad", "drop")


def _count(batches) -> dict:
    real = padded = packed = attn_padded = attn_packed = 0
    for batch_padded, batch_packed in batches:
        real += batch_padded.n_tokens
        padded += batch_padded.n_padding
        packed += batch_packed.n_padding
        # score-matrix entries per row (causal halves ignored alike): width² per row
        attn_padded += batch_padded.input_ids.shape[0] * batch_padded.input_ids.shape[1] ** 2
        attn_packed += batch_packed.input_ids.shape[0] * batch_packed.input_ids.shape[1] ** 2
    return {
        "real_tokens": real,
        "padding_padded": padded / real,
        "padding_packed": packed / real,
        "attention_entries_ratio_packed_to_padded": attn_packed / max(1, attn_padded),
        # score entries per real token: the mean row width each token attends over (masked or not)
        "attention_width_per_token_padded": attn_padded / real,
        "attention_width_per_token_packed": attn_packed / real,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-ref", default=str(ROOT / "resources/models/smollm2-135m/model_ref.json"))
    ap.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--out", default=str(ROOT / "bench/out/padding.json"))
    args = ap.parse_args(argv)
    if not Path(args.model_ref).exists():
        print(
            f"{args.model_ref}: not found; prepare it first: make run (or its prepare_model job)",
            file=sys.stderr,
        )
        return 2
    from zoharness import models

    _, tok = models.load(args.model_ref)  # the tokenizer is what matters; loading the model is seconds
    data = ROOT / "data"
    out = {
        "command": "python bench/padding.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "tasks": {},
    }
    for name in args.tasks:
        task = get_task(name)
        try:  # MeZO's 1000/500; small tasks (CB, COPA, ...) take the task's own dev size, as the suites do
            try:
                manifest = make_split(name, data, 0, 1000, 500, 1000)
            except DataUnavailableError:
                raise
            except DataError:
                manifest = make_split(name, data, 0, 1000, None, 1000)
        except DataUnavailableError as e:
            print(f"{name:8s} skipped: {str(e).partition(': ')[2].split('.')[0]}", flush=True)
            continue
        split = load_split(manifest, data)
        objective = scoring.objective_for(task.kind)
        train = [
            scoring.encode(tok, task.prompt(ex), args.max_length, objective=objective) for ex in split.train
        ]
        row = {}
        for batch_size in (16, 8):
            sampler = BatchSampler(len(train), batch_size, seed=0)
            batches = []
            for step in range(sampler.steps_per_epoch):
                examples = [train[i] for i in sampler.indices(step)]
                pair = (
                    scoring.collate(examples, tok.pad_token_id),
                    scoring.collate(examples, tok.pad_token_id, pack=True),
                )
                batches.append(pair)
            row[f"train_batch_{batch_size}"] = _count(batches)
        if task.kind != "generation":  # generation tasks are evaluated by greedy decoding, not scored
            dev = [scoring.encode(tok, task.prompt(ex), args.max_length) for ex in split.dev]
            order = sorted(range(len(dev)), key=lambda i: dev[i].length)
            chunks = [[dev[i] for i in order[s : s + 32]] for s in range(0, len(order), 32)]
            row["eval_sorted_batch_32"] = _count(
                [
                    (scoring.collate(c, tok.pad_token_id), scoring.collate(c, tok.pad_token_id, pack=True))
                    for c in chunks
                ]
            )
        out["tasks"][name] = row
        cells = "  ".join(
            f"{k}: pad {v['padding_padded']:.2f} -> {v['padding_packed']:.3f}, "
            f"attn width {v['attention_width_per_token_padded']:.0f} -> {v['attention_width_per_token_packed']:.0f}"
            for k, v in row.items()
        )
        print(f"{name:8s} {cells}", flush=True)
    write_json_atomic(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
