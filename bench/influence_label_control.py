"""The label control of the planted-trigger validation (`make influence`): are the planted examples found
because of the trigger, or only because they carry the planted label?

Every planted example has the planted label, and so has about half the training set. A scorer that only
matched labels would rank the planted examples level with the clean examples of that label (auROC 0.5 among
them). This scores the planted examples against the clean training examples of the planted label only,
per query, from the influence suite's artifacts (scores.safetensors and the split manifest):

    python bench/influence_label_control.py                # results/influence/... of the influence suite
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zoharness.data import load_split  # noqa: E402
from zoharness.influence.report import read_scores  # noqa: E402
from zoharness.io import read_json  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="influence")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--variants", nargs="+", default=["fo", "mezo"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default="data")
    args = ap.parse_args(argv)
    manifest = read_json(f"results/{args.suite}/splits/{args.task}/seed{args.seed}.json")
    split = load_split(manifest, args.data_dir)
    planted_label = manifest["plant"]["label"]
    label = {ex.uid: ex.record["label"] for ex in split.train}
    for variant in args.variants:
        path = f"results/{args.suite}/influence/{args.model}/{args.task}/{variant}/seed{args.seed}/triggered/scores.safetensors"
        meta, tensors = read_scores(path)
        planted = set(meta["planted_ids"])
        keep = [i for i, u in enumerate(meta["train_ids"]) if u in planted or label[u] == planted_label]
        positives = np.array([meta["train_ids"][i] in planted for i in keep])
        for name in ["exact", *(f"k{k}" for k in meta["ks"])]:
            if name not in tensors:
                continue
            aucs = [roc_auc_score(positives, row[keep]) for row in tensors[name]]
            print(
                f"{variant} {name}: {int(positives.sum())} planted vs {int((~positives).sum())} clean examples of "
                f"label {planted_label}: auROC {np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f} over {len(aucs)} queries"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
