"""lm-eval cross-check on the real model: zero-shot accuracy of the harness vs lm-evaluation-harness on
the same prompts and the same test examples (the issue's bar: within 0.5 points per task).

The harness side is read from run artifacts (results/<suite>/<model>/<task>/zero_shot/seed0/
{metrics,predictions}.json, written by the workflow); lm-eval scores the prompts the harness renders
for the same split manifest. Run the zero-shot runs first, e.g.
    snakemake $(for t in sst2 rte cb boolq wsc wic multirc; do
      echo results/offline-all/smollm2-135m/$t/zero_shot/seed0/metrics.json; done) \
      --cores all --configfile config/offline-all.yaml
    python bench/lm_eval_crosscheck.py
Writes bench/out/lm_eval_crosscheck.json; exits 1 when a task differs by more than the tolerance.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness import lm_eval_check  # noqa: E402
from zoharness.config import load_suite  # noqa: E402
from zoharness.data import data_dir, load_split  # noqa: E402
from zoharness.io import read_json, write_json_atomic  # noqa: E402
from zoharness.tasks import get_task  # noqa: E402

CLASSIFICATION = ["sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/offline-all.yaml")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tasks", nargs="+", default=CLASSIFICATION)
    ap.add_argument("--tolerance", type=float, default=0.5, help="points")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default="bench/out/lm_eval_crosscheck.json")
    args = ap.parse_args()
    os.chdir(ROOT)
    cfg = load_suite(args.config)
    suite, max_length = cfg["suite"], cfg["eval"]["max_length"]
    ref = read_json(f"resources/models/{args.model}/model_ref.json")
    model_dir = Path(f"resources/models/{args.model}") / ref["weights_dir"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HF_HOME", str(Path(tmp) / "hf"))  # lm-eval's dataset cache stays private
        names, harness = {}, {}
        for t in args.tasks:
            run = Path(f"results/{suite}/{args.model}/{t}/zero_shot/seed0")
            split_path = Path(f"results/{suite}/splits/{t}/seed0.json")
            task = get_task(t)
            split = load_split(read_json(split_path), data_dir(cfg["data"]), str(split_path))
            names[t] = lm_eval_check.write_task(
                t, [task.prompt(ex) for ex in split.test], [ex.uid for ex in split.test], tmp
            )
            harness[t] = (read_json(run / "metrics.json"), read_json(run / "predictions.json")["test"])
        t0 = time.perf_counter()
        got = lm_eval_check.evaluate(model_dir, tmp, list(names.values()), args.batch_size, max_length)
        lm_eval_s = time.perf_counter() - t0
    for t, name in names.items():
        metrics, preds = harness[t]
        theirs = got[name]
        assert theirs["ids"] == [p["id"] for p in preds], f"{t}: example order differs"
        their_pred = [max(range(len(ll)), key=ll.__getitem__) for ll in theirs["loglikelihoods"]]
        same = sum(int(a == p["prediction"]) for a, p in zip(their_pred, preds, strict=True))
        rows.append(
            {
                "task": t,
                "n": theirs["n"],
                "harness_acc": round(100 * metrics["test_accuracy"], 2),
                "lm_eval_acc": round(100 * theirs["acc"], 2),
                "diff_points": round(100 * (theirs["acc"] - metrics["test_accuracy"]), 2),
                "same_prediction": same,
            }
        )
    ok = all(abs(r["diff_points"]) <= args.tolerance for r in rows)
    result = {
        "command": "python bench/lm_eval_crosscheck.py " + " ".join(sys.argv[1:]),
        "suite": suite,
        "model": args.model,
        "max_length": max_length,
        "tolerance_points": args.tolerance,
        "lm_eval_seconds": round(lm_eval_s, 1),
        "tasks": rows,
        "all_within_tolerance": ok,
    }
    write_json_atomic(args.out, result)
    print("| task | n | harness | lm-eval | diff (pt) | same prediction |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['task']} | {r['n']} | {r['harness_acc']:.2f} | {r['lm_eval_acc']:.2f} | "
            f"{r['diff_points']:+.2f} | {r['same_prediction']}/{r['n']} |"
        )
    print(f"all within {args.tolerance} points: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
