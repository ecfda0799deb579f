"""Reproduction scorecards: a paper's reported numbers (config/paper/<suite>.reference.csv) beside ours.

One row per reference cell: the paper's value, ours as mean ± sample std over seeds with n and the seed
list, and the difference (ours - paper, in points). Where the suite has several variants of a method
(learning-rate grids), the variant with the best mean dev score is compared, as the papers select.
Reference rows whose method the harness does not implement (method_id empty) or the suite did not run
say so instead of a number. An optional `label` column narrows a row to the suite's variants of that label:
where a suite runs one method under two settings a paper reports as two rows (MeZO Table 3: cross-entropy
and accuracy), each row compares the best-on-dev variant among its own label's; a blank label, or no column,
takes every variant of the method.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from zoharness.io import DataError, write_text_atomic
from zoharness.tables import best_on_dev, collect, summarise

REFERENCE_COLUMNS = ["table", "model", "task", "paper_method", "method_id", "metric", "value"]


def read_reference(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: reference file not found")
    ref = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {REFERENCE_COLUMNS}")
    for i, v in enumerate(ref["value"], start=2):
        try:
            float(v)
        except ValueError:
            raise DataError(f"{path}:{i}: value {v!r} is not a number") from None
    ref["value"] = ref["value"].astype(float)
    return ref


def build(metrics_paths, reference_csv) -> pd.DataFrame:
    ref = read_reference(reference_csv)
    runs = collect(metrics_paths) if metrics_paths else None
    summary = summarise(runs) if runs is not None else None
    rows = []
    for r in ref.itertuples(index=False):
        base = {
            "table": r.table,
            "task": r.task,
            "paper_method": r.paper_method,
            "metric": r.metric,
            "paper_model": r.model,
            "paper": r.value,
        }
        if not r.method_id:
            rows.append({**base, "status": "not implemented"})
            continue
        cands = (
            summary[(summary.task == r.task) & (summary.method == r.method_id)]
            if summary is not None
            else pd.DataFrame()
        )
        label = getattr(r, "label", "")  # optional column: this row's variants are that label's only
        if label and not cands.empty:
            cands = cands[cands.label == label]
        if cands.empty:
            rows.append({**base, "status": "not run"})
            continue
        for model, grp in cands.groupby("model", sort=False):
            best = best_on_dev(grp)
            seeds = sorted(
                runs[(runs.model == model) & (runs.task == r.task) & (runs.variant == best["variant"])][
                    "seed"
                ]
            )
            rows.append(
                {
                    **base,
                    "model": model,
                    "variant": best["variant"],
                    "ours_mean": round(float(best["test_mean"]), 2),
                    "ours_std": None if pd.isna(best["test_std"]) else round(float(best["test_std"]), 2),
                    "n_seeds": int(best["n_seeds"]),
                    "seeds": " ".join(str(s) for s in seeds),
                    "n_test": int(best["n_test"]),
                    "delta_points": round(float(best["test_mean"]) - r.value, 2),
                    "status": "ok",
                }
            )
    card = pd.DataFrame(rows)
    for col in ("n_seeds", "n_test"):  # integers, blank where a cell was not run
        if col in card:
            card[col] = card[col].astype("Int64")
    return card


def markdown(card: pd.DataFrame, suite: str, reference_csv) -> str:
    lines = [
        f"# Scorecard: suite `{suite}` against {', '.join(dict.fromkeys(card['table']))}",
        "",
        f"Paper values from `{reference_csv}`; ours are test metrics (%) from results/{suite}/**/metrics.json, "
        "mean ± sample std over seeds (the best-on-dev variant where the suite has several). "
        "Δ = ours - paper, in points.",
        "",
        "| task | method | metric | paper | ours | n seeds (seeds) | n test | variant | Δ |",
        "|---|---|---|---:|---:|---|---:|---|---:|",
    ]
    for r in card.itertuples(index=False):
        if r.status != "ok":
            lines.append(f"| {r.task} | {r.paper_method} | {r.metric} | {r.paper:.1f} | {r.status} | | | | |")
            continue
        spread = "" if pd.isna(r.ours_std) else f" ± {r.ours_std:.1f}"
        lines.append(
            f"| {r.task} | {r.paper_method} | {r.metric} | {r.paper:.1f} | {r.ours_mean:.1f}{spread} | "
            f"{r.n_seeds} ({r.seeds}) | {r.n_test} | {r.variant} | {r.delta_points:+.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_scorecard(metrics_paths, reference_csv, suite: str, out_csv, out_md) -> pd.DataFrame:
    card = build(metrics_paths, reference_csv)
    write_text_atomic(out_csv, card.to_csv(index=False))
    write_text_atomic(out_md, markdown(card, suite, reference_csv))
    return card
