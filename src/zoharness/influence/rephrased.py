"""Are rephrased training examples more or less influential than originals? (issue 15, part 6)

For a MeZO+OAT-Rephrase run, RapidIn scores every training example against test queries (the model's own
predictions). An example's influence is its score averaged over the queries: positive, it pushed the
test predictions the way the model makes them (helpful); negative, the other way. The rephrased set
(zoharness.rephrase) marks which examples the run trained on as rewrites ("used": "rephrased") and which
as originals. Two comparisons, stated as measured:

  within the run   rephrased vs original examples of the OAT run: means, the difference with a bootstrap
                   95% CI (scipy.stats.bootstrap, 10,000 resamples, seed 0), a two-sided Mann-Whitney U
                   test, for the signed influence and for its magnitude |influence|;
  against MeZO     the same examples in the plain MeZO run of the same seed (where the rephrased ones
                   were trained as originals): the paired change, OAT minus MeZO, of the rephrased
                   examples against that of the originals (which both runs saw as they are), with the
                   same CI and test. The runs' models differ only through the rewritten texts (one seed,
                   one batch order), so a change beyond the originals' is the rewrite's.

Torch-free: it reads scores.safetensors (zoharness.influence.report) and the rephrased jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import bootstrap, mannwhitneyu

from zoharness.influence.report import read_scores
from zoharness.io import DataError, write_text_atomic

CONFIDENCE = 0.95
RESAMPLES = 10_000


def rephrased_ids(path) -> set[str]:
    """Ids of the examples whose rewrite was used for training (the rest trained as originals)."""
    ids, seen = set(), 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
                uid, used = entry["uid"], entry["used"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(
                    f"{path}:{lineno}: not a rephrased-set line with 'uid' and 'used': {e}"
                ) from None
            seen += 1
            if used == "rephrased":
                ids.add(uid)
    if not seen:
        raise DataError(f"{path}: no examples")
    return ids


def influence_per_example(scores_path, scorer: str | None = None) -> tuple[pd.Series, dict]:
    """Each training example's score averaged over the queries (largest K unless `scorer` names a
    tensor), indexed by example id; and the file's metadata."""
    meta, tensors = read_scores(scores_path)
    name = scorer or f"k{max(meta['ks'])}"
    if name not in tensors:
        raise DataError(f"{scores_path}: no tensor {name!r} (has {sorted(tensors)})")
    return pd.Series(tensors[name].mean(axis=0), index=meta["train_ids"], name=name), meta


def _compare(a: np.ndarray, b: np.ndarray) -> dict:
    """mean(a) - mean(b), its bootstrap CI, and the two-sided Mann-Whitney U p-value."""
    diff = float(a.mean() - b.mean())
    ci = bootstrap(
        (a, b),
        lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis),
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        random_state=np.random.default_rng(0),
    ).confidence_interval
    return {
        "difference": diff,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p_mann_whitney": float(mannwhitneyu(a, b, alternative="two-sided").pvalue),
    }


def _row(comparison: str, quantity: str, a: np.ndarray, b: np.ndarray) -> dict:
    return {
        "comparison": comparison,
        "quantity": quantity,
        "n_rephrased": len(a),
        "n_original": len(b),
        "mean_rephrased": float(a.mean()),
        "mean_original": float(b.mean()),
        **_compare(a, b),
    }


def rephrase_influence(oat_scores, rephrased_jsonl, mezo_scores=None) -> tuple[pd.DataFrame, dict]:
    """The comparison rows (module docstring) and the runs' identities."""
    oat, meta = influence_per_example(oat_scores)
    ids = rephrased_ids(rephrased_jsonl)
    is_rephrased = oat.index.isin(sorted(ids))
    if min(is_rephrased.sum(), (~is_rephrased).sum()) < 2:
        raise DataError(
            f"{rephrased_jsonl}: {int(is_rephrased.sum())} of the {len(oat)} examples of {oat_scores} were "
            "rephrased; the comparison needs at least 2 of each, rephrased and original"
        )
    rows = [
        _row("within the OAT run", "influence", oat[is_rephrased].to_numpy(), oat[~is_rephrased].to_numpy()),
        _row(
            "within the OAT run",
            "|influence|",
            oat[is_rephrased].abs().to_numpy(),
            oat[~is_rephrased].abs().to_numpy(),
        ),
    ]
    info = {"oat": meta}
    if mezo_scores is not None:
        mezo, mezo_meta = influence_per_example(mezo_scores)
        if sorted(mezo.index) != sorted(oat.index):
            raise DataError(
                f"{mezo_scores} and {oat_scores} rank different training examples (another split?)"
            )
        if mezo_meta["query_ids"] != meta["query_ids"]:
            raise DataError(f"{mezo_scores} and {oat_scores} were scored for different queries")
        change = oat - mezo.reindex(oat.index)
        rows.append(
            _row(
                "OAT minus MeZO, per example",
                "influence",
                change[is_rephrased].to_numpy(),
                change[~is_rephrased].to_numpy(),
            )
        )
        info["baseline"] = mezo_meta
    return pd.DataFrame(rows), info


def _markdown(table: pd.DataFrame, info: dict) -> str:
    oat = info["oat"]
    lines = [
        f"# Influence of rephrased vs original training examples ({oat['model']} · {oat['task']} · seed {oat['seed']})",
        "",
        f"RapidIn scores (K={max(oat['ks'])}) of every training example of the {oat['label']} run against "
        f"{len(oat['query_ids'])} test queries (target: {oat.get('target', 'predicted')}), averaged over the "
        "queries: positive = pushed the test predictions the way the model makes them. Difference = rephrased "
        f"minus original, {int(CONFIDENCE * 100)}% bootstrap CI, two-sided Mann-Whitney U p. "
        + (
            f"'OAT minus MeZO' pairs each example with itself in the {info['baseline']['label']} run of the same seed."
            if "baseline" in info
            else ""
        ),
        "",
        "| comparison | quantity | n rephrased | n original | mean rephrased | mean original | difference [95% CI] | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.comparison} | {r.quantity} | {r.n_rephrased} | {r.n_original} | {r.mean_rephrased:+.4f} | "
            f"{r.mean_original:+.4f} | {r.difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {r.p_mann_whitney:.3g} |"
        )
    lines += [
        "",
        "One seed, one run per method: this says how these two runs' examples differ, not a method property.",
    ]
    return "\n".join(lines) + "\n"


def write_rephrase_influence(oat_scores, rephrased_jsonl, out_csv, out_md, mezo_scores=None) -> pd.DataFrame:
    table, info = rephrase_influence(oat_scores, rephrased_jsonl, mezo_scores)
    write_text_atomic(Path(out_csv), table.to_csv(index=False))
    write_text_atomic(Path(out_md), _markdown(table, info))
    return table
