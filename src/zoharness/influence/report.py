"""The planted-trigger validation of RapidIn, from its output files only: tables and one figure.

A few training examples got a rare phrase inserted and their label flipped ("planted"); a model tuned on
them learns the backdoor, so for a triggered test query a working influence method must rank exactly
those examples first. Per explained run the influence stage writes scores.safetensors (float32 [query,
train] matrices: `exact`, the gradient inner products, where computed, and `k<K>`, RapidIn's K-sized
sketch estimate of them) and summary.json (backdoor accuracies, timings). For each scorer and each
query, the planted examples are the positives of a ranking of the training set:
  auPRC          sklearn's average precision: the mean precision at each planted example's rank. A random
                 ranking scores about the planted fraction, a perfect one 1.
  auROC          the chance that a planted example outranks a clean one: random 0.5, perfect 1, reversed 0.
  P@k, R@k       the share of the top k that is planted, and of the planted that is in the top k; k is the
                 number of planted examples unless top_k is given (then P@k = R@k).
  vs exact       for the sketches only: Spearman's rank correlation with the exact scores, and the share of
                 the exact top k that the sketch's top k keeps (how much compression changed the answer).
Each table cell is the mean over queries, with the sample standard deviation over queries beside it.
The "random" row is the expectation under a uniformly random ranking, estimated from `random_repeats`
seeded random rankings (numpy default_rng(seed)); the positives are the same for every query, so a
random ranking's metrics do not depend on the query and one ranking per repeat is enough.
Ties: sklearn gives tied scores their average (AP, AUC); top k takes a stable argsort of -score, so tied
examples keep training-set order. Spearman is NaN for a query whose scores are all equal. No torch here: the report jobs stay light.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import safe_open
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from zoharness.io import DataError, read_json, read_safetensors_json, write_text_atomic
from zoharness.plotting import plt, save_figure

METADATA_KEY = "zoharness.influence_scores"
IDENTITY = ("model", "task", "variant", "label", "seed", "queries")
RUN_IDENTITY = ("model", "task", "variant", "label", "seed")
# The top k for the fidelity overlap when nothing was planted (ordinary queries) and no top_k was asked.
FALLBACK_TOP_K = 10
RANKING_METRICS = ("auprc", "auroc", "precision_at_k", "recall_at_k")
FIDELITY_METRICS = ("spearman_vs_exact", "top_k_overlap_vs_exact")
COLUMNS = [
    *IDENTITY,
    "scorer",
    "K",
    "k",
    "n_queries",
    "n_train",
    "n_planted",
    "planted_fraction",
    *(f"{m}{sd}" for m in RANKING_METRICS + FIDELITY_METRICS for sd in ("", "_sd")),
    "scores",
]
# More runs than this and the figure shows one panel per variant (its first seed).
MAX_PANELS = 6
RANDOM_NOTE = (
    "Positives: the planted training examples; k = the number of planted examples (unless top_k was "
    "given). The random row is the expected value under a uniformly random ranking (seeded random "
    "rankings): auPRC ≈ the planted fraction, auROC ≈ 0.5. Cells: mean ± sd over queries."
)


def read_scores(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The scores file's metadata and its [query, train] matrices (`exact` if computed, `k<K>` per K),
    checked against its ids; a DataError naming the file otherwise."""
    path = Path(path)
    meta = read_safetensors_json(path, METADATA_KEY, "a scores file of zoharness.influence")
    with safe_open(str(path), framework="numpy") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
    missing = [
        key for key in ("query_ids", "train_ids", "ks", "exact", "planted_ids", *IDENTITY) if key not in meta
    ]
    if missing:
        raise DataError(f"{path}: scores metadata lacks {', '.join(missing)}")
    unknown = sorted(set(meta["planted_ids"]) - set(meta["train_ids"]))
    if unknown:
        raise DataError(f"{path}: {len(unknown)} planted ids are not in train_ids, e.g. {unknown[:3]}")
    names = [f"k{k}" for k in meta["ks"]] + (["exact"] if meta["exact"] else [])
    return meta, {name: _checked_tensor(path, meta, tensors, name) for name in names}


def _checked_tensor(path: Path, meta: dict, tensors: dict, name: str) -> np.ndarray:
    shape = (len(meta["query_ids"]), len(meta["train_ids"]))
    if name not in tensors:
        raise DataError(f"{path}: no tensor {name!r} (metadata: ks={meta['ks']}, exact={meta['exact']})")
    if tensors[name].shape != shape:
        raise DataError(
            f"{path}: tensor {name!r} has shape {list(tensors[name].shape)}, but the ids give "
            f"{shape[0]} queries × {shape[1]} training examples"
        )
    if not np.isfinite(tensors[name]).all():
        raise DataError(f"{path}: tensor {name!r} holds {int((~np.isfinite(tensors[name])).sum())} NaN/inf")
    return tensors[name]


def _planted_mask(meta: dict) -> np.ndarray:
    planted = set(meta["planted_ids"])
    return np.array([t in planted for t in meta["train_ids"]], dtype=bool)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores; ties keep training-set order (stable sort)."""
    return np.argsort(-scores, kind="stable")[:k]


def _ranking_metrics(scores: np.ndarray, positives: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per row of `scores` (one ranking of the training set): auPRC, auROC, P@k, R@k; NaN without
    planted examples (and auROC NaN when every example is planted: it needs both classes)."""
    out = {name: np.full(len(scores), np.nan) for name in RANKING_METRICS}
    n_planted = int(positives.sum())
    if n_planted == 0:
        return out
    for i, row in enumerate(scores):
        hits = positives[_top(row, k)].sum()
        out["auprc"][i] = average_precision_score(positives, row)
        if n_planted < len(positives):
            out["auroc"][i] = roc_auc_score(positives, row)
        out["precision_at_k"][i], out["recall_at_k"][i] = hits / k, hits / n_planted
    return out


def _fidelity(estimate: np.ndarray, exact: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per query: Spearman between the sketch's and the exact scores, and the share of the exact top k
    that the sketch's top k keeps."""
    pairs = list(zip(estimate, exact, strict=True))
    return {
        "spearman_vs_exact": np.array([spearmanr(e, x).statistic for e, x in pairs]),
        "top_k_overlap_vs_exact": np.array(
            [len(np.intersect1d(_top(e, k), _top(x, k))) / k for e, x in pairs]
        ),
    }


def _row(base: dict, scorer: str, K: int | None, per_query: dict[str, np.ndarray]) -> dict:
    row = base | {"scorer": scorer, "K": K}
    for name in RANKING_METRICS + FIDELITY_METRICS:
        values = per_query.get(name, np.array([np.nan]))
        row[name] = float(np.mean(values))
        # Sample sd (ddof=1): the queries are a sample of the triggered inputs; undefined for one query.
        row[f"{name}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return row


def validation_rows(path, top_k: int | None = None, random_repeats: int = 100, seed: int = 0) -> list[dict]:
    """One row per scorer of one scores file: "exact" (if present), "rapidgrad K=<K>" per K ascending,
    and "random", the expected values under a random ranking estimated from `random_repeats` seeded
    random rankings (default_rng(seed)); its sd is over those rankings. Metrics are the means over
    queries (sd in `<metric>_sd`); see the module docstring. k = top_k, else the number of planted
    examples, else (nothing planted) FALLBACK_TOP_K, at most the training-set size."""
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    meta, tensors = read_scores(path)
    positives = _planted_mask(meta)
    n_train, n_planted = len(positives), int(positives.sum())
    k = min(n_train, top_k or n_planted or FALLBACK_TOP_K)
    base = {key: meta[key] for key in IDENTITY} | {
        "k": k,
        "n_queries": len(meta["query_ids"]),
        "n_train": n_train,
        "n_planted": n_planted,
        "planted_fraction": n_planted / n_train if n_train else float("nan"),
        "scores": str(path),
    }
    exact = tensors["exact"].astype(np.float64) if "exact" in tensors else None
    rows = [] if exact is None else [_row(base, "exact", None, _ranking_metrics(exact, positives, k))]
    for K in sorted(int(K) for K in meta["ks"]):
        sketch = tensors[f"k{K}"].astype(np.float64)
        per_query = _ranking_metrics(sketch, positives, k)
        if exact is not None:
            per_query |= _fidelity(sketch, exact, k)
        rows.append(_row(base, f"rapidgrad K={K}", K, per_query))
    random_scores = np.random.default_rng(seed).random((random_repeats, n_train))
    rows.append(_row(base, "random", None, _ranking_metrics(random_scores, positives, k)))
    return rows


def read_summary(path) -> dict:
    """summary.json of one explained run, with the keys the tables use; a DataError naming it otherwise."""
    summary = read_json(path)
    missing = [key for key in ("backdoor", "timing", *RUN_IDENTITY) if key not in summary]
    timing = summary.get("timing") or {}
    missing += [
        f"timing.{key}"
        for key in ("query_gradients_s", "retrieve_s", "exact_s", "n_queries", "n_train")
        if key not in timing
    ]
    if missing:
        raise DataError(f"{path}: influence summary lacks {', '.join(missing)}")
    return summary


def _num(value, decimals: int = 3) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{decimals}f}"


def _mean_sd(mean, sd) -> str:
    return _num(mean) if pd.isna(sd) else f"{_num(mean)} ± {_num(sd)}"


def _seconds(value) -> str:
    """Two decimals; two significant digits under 0.1 s, so a fast per-query time does not read 0.00."""
    if value is None or pd.isna(value):
        return "–"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.2g}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(map(str, cells)) + " |" for cells in rows]
        + [""]
    )


def _ranking_table(rows: pd.DataFrame) -> list[str]:
    header = ["variant", "label", "seed", "queries", "scorer", "k", "auPRC", "auROC", "P@k", "R@k"]
    header += ["Spearman vs exact", "top-k overlap vs exact"]
    return _md_table(
        header,
        [
            [r.variant, r.label, r.seed, r.queries, r.scorer, r.k, _mean_sd(r.auprc, r.auprc_sd)]
            + [_mean_sd(r.auroc, r.auroc_sd), _num(r.precision_at_k), _num(r.recall_at_k)]
            + [_mean_sd(r.spearman_vs_exact, r.spearman_vs_exact_sd), _num(r.top_k_overlap_vs_exact)]
            for r in rows.itertuples(index=False)
        ],
    )


def _backdoor_table(summaries: list[dict]) -> list[str]:
    rows = []
    for s in summaries:
        b = s["backdoor"] or {}
        rows.append([s["variant"], s["label"], s["seed"], b.get("n", "–")])
        rows[-1] += [
            _num(b.get(key)) for key in ("clean_accuracy", "triggered_accuracy", "attack_success_rate")
        ]
    header = ["variant", "label", "seed", "n", "clean accuracy", "triggered accuracy", "attack success rate"]
    return ["Backdoor (from summary.json; – where not evaluated):", ""] + _md_table(header, rows)


def _timing_table(summaries: list[dict]) -> list[str]:
    """Seconds in total and per query; the speed-up is exact_s / retrieve_s[K]."""
    ks = sorted({int(K) for s in summaries for K in s["timing"]["retrieve_s"]})
    header = ["variant", "label", "seed", "queries", "train", "query gradients s (per query)"]
    header += [f"retrieve K={K} s (per query)" for K in ks] + ["exact s (per query)"]
    header += [f"speed-up K={K}" for K in ks]
    rows = []
    for s in summaries:
        t, n = s["timing"], max(int(s["timing"]["n_queries"]), 1)
        retrieve = {int(K): v for K, v in t["retrieve_s"].items()}

        def both(v, n=n):
            return "–" if v is None else f"{_seconds(v)} ({_seconds(v / n)})"

        speed = [t["exact_s"] / retrieve[K] if t["exact_s"] and retrieve.get(K) else None for K in ks]
        rows.append(
            [s["variant"], s["label"], s["seed"], t["n_queries"], t["n_train"], both(t["query_gradients_s"])]
            + [both(retrieve.get(K)) for K in ks]
            + [both(t["exact_s"])]
            + ["–" if x is None else f"{x:.1f}×" for x in speed]
        )
    return ["Timing (seconds, per query in parentheses):", ""] + _md_table(header, rows)


def _markdown(table: pd.DataFrame, summaries: list[dict]) -> str:
    lines = ["# Influence validation: planted trigger (RapidIn)", "", RANDOM_NOTE, ""]
    sections = set(zip(table["model"], table["task"], strict=True))
    sections = sorted(sections | {(s["model"], s["task"]) for s in summaries})
    for model, task in sections:
        lines += [f"## {model} · {task}", ""]
        lines += _ranking_table(table[(table["model"] == model) & (table["task"] == task)])
        runs = [s for s in summaries if (s["model"], s["task"]) == (model, task)]
        if runs:
            lines += _backdoor_table(runs) + _timing_table(runs)
    return "\n".join(lines)


def write_validation_table(
    scores_paths, summary_paths, out_csv, out_md, *, top_k=None, random_repeats=100, seed=0
) -> pd.DataFrame:
    """Every scorer row of every scores file into one CSV (COLUMNS), and a markdown report: per (model,
    task) the ranking table, and from the summaries a backdoor and a timing table."""
    rows = [
        row
        for path in sorted(set(map(str, scores_paths)))
        for row in validation_rows(path, top_k=top_k, random_repeats=random_repeats, seed=seed)
    ]
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"K": "Int64"})
    table = table.sort_values(["model", "task", "variant", "seed", "queries"], kind="stable")
    summaries = [read_summary(p) for p in sorted(set(map(str, summary_paths)))]
    summaries.sort(key=lambda s: (s["model"], s["task"], s["variant"], s["seed"]))
    write_text_atomic(out_csv, table.to_csv(index=False))
    write_text_atomic(out_md, _markdown(table, summaries))
    return table


def _figure_runs(scores_paths) -> tuple[list[tuple[dict, dict]], bool]:
    """The scores files with planted examples, in run order; one per variant (its first seed) when there
    are more than MAX_PANELS. Also whether that reduction happened."""
    runs = [read_scores(p) for p in sorted(set(map(str, scores_paths)))]
    runs = [(m, t) for m, t in runs if m["planted_ids"]]
    runs.sort(key=lambda r: (r[0]["model"], r[0]["task"], r[0]["variant"], r[0]["queries"], r[0]["seed"]))
    if len(runs) <= MAX_PANELS:
        return runs, False
    first: dict[tuple, tuple[dict, dict]] = {}
    for meta, tensors in runs:
        first.setdefault(tuple(meta[k] for k in ("model", "task", "variant", "queries")), (meta, tensors))
    return list(first.values()), True


def _pr_panel(ax, meta: dict, tensors: dict) -> None:
    """Precision–recall of the planted examples, training set ranked by the mean score over queries."""
    positives = _planted_mask(meta)
    names = (["exact"] if "exact" in tensors else []) + [f"k{K}" for K in sorted(int(K) for K in meta["ks"])]
    for i, name in enumerate(names):
        pooled = tensors[name].astype(np.float64).mean(axis=0)
        precision, recall, _ = precision_recall_curve(positives, pooled)
        scorer = "exact" if name == "exact" else f"rapidgrad K={name[1:]}"
        ap = average_precision_score(positives, pooled)
        # exact dashed and on top: a sketch that matches it would otherwise hide it.
        style = {"color": "black", "linestyle": "--", "zorder": 3} if name == "exact" else {"color": f"C{i}"}
        ax.step(recall, precision, where="post", label=f"{scorer}: auPRC {ap:.3f}", **style)
    fraction = positives.mean()
    ax.axhline(fraction, color="gray", linestyle=":", label=f"random: auPRC ≈ {fraction:.3f}")
    ax.set(xlabel="recall (planted)", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")


def validation_figure(scores_paths, out_dir) -> list[Path]:
    """influence-validation.{png,pdf}: one panel per explained run (variant, seed) with planted examples,
    or per variant (first seed) when there are more than MAX_PANELS runs; one PR curve per scorer."""
    runs, first_seed_only = _figure_runs(scores_paths)
    fig, axes = plt.subplots(1, max(len(runs), 1), figsize=(4.6 * max(len(runs), 1), 4.0), squeeze=False)
    for ax, (meta, tensors) in zip(axes[0], runs, strict=False):
        _pr_panel(ax, meta, tensors)
        seed = f"seed {meta['seed']}" + (" (first seed)" if first_seed_only else "")
        run = f"{meta['label']} ({meta['variant']}), {seed}, {meta['queries']} queries"
        ax.set_title(f"{meta['model']} · {meta['task']}\n{run}", fontsize=9)
    if not runs:
        axes[0][0].text(0.5, 0.5, "no scores file with planted examples", ha="center")
    title = "Planted examples: precision–recall, training set ranked by the mean score over queries"
    fig.suptitle(title + ("; first seed of each variant" if first_seed_only else ""), fontsize=9, y=1.04)
    return save_figure(fig, out_dir, "influence-validation")


# Training examples shown per query in the token figure.
TOKEN_FIGURE_EXAMPLES = 5


def _wrap(text: str, width: int = 95) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or "(empty)"


def _token_lines(doc: dict) -> list[tuple[str, str]]:
    """(text, colour) lines of one run's panel: its first query and that query's top helpful examples."""
    query = doc["queries"][0]
    label = query["candidates"][query["label"]] if query.get("candidates") else query["label"]
    lines = [
        (
            f"{doc['label']} ({doc['variant']}), seed {doc['seed']}. Query {query['id']}, gradient for {label!r}:",
            "black",
        ),
        (_wrap(query["text"]), "black"),
    ]
    for rank, ex in enumerate(query["helpful"][:TOKEN_FIGURE_EXAMPLES], 1):
        total = sum(t["influence"] for t in ex["tokens"])
        lines.append(
            (f"#{rank} {ex['id']} (RapidIn K={doc['K']}: {ex['score']:+.3f}; exact: {total:+.3f})", "dimgray")
        )
        lines.append((_wrap(ex["text"]), "black"))
        shown = ex["tokens"][:12]
        chips = "   ".join(f"{t['text']!r} {t['influence']:+.3f}" for t in shown)
        more = f"   ... {len(ex['tokens']) - len(shown)} more" if len(ex["tokens"]) > len(shown) else ""
        lines.append(("target tokens: " + chips + more, "firebrick" if total >= 0 else "steelblue"))
    return lines


def token_figure(tokens_paths, out_dir) -> list[Path]:
    """influence-tokens.{png,pdf}: for the first query of each explained run (tokens.json from
    `influence-tokens`), the query and its most helpful training examples, each with its target tokens and
    their token-wise influence (the tokens' values add up to the example's exact influence; red: the
    example helps the query's label, blue: it does not)."""
    docs = [d for d in (read_json(p) for p in tokens_paths) if d["queries"]]
    panels = [_token_lines(d) for d in docs] or [[("no token-wise influence computed", "black")]]
    heights = [sum(t.count("\n") + 1 for t, _ in lines) + 1 for lines in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(11, 0.17 * sum(heights) + 0.4),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, lines, height in zip(axes[:, 0], panels, heights, strict=True):
        ax.axis("off")
        y = 1.0
        for text, colour in lines:
            ax.text(
                0, y, text, transform=ax.transAxes, va="top", fontsize=7.5, color=colour, family="monospace"
            )
            y -= (text.count("\n") + 1) / height
    fig.suptitle(
        "Token-wise influence: a query's most helpful training examples and their target tokens", fontsize=9
    )
    return save_figure(fig, out_dir, "influence-tokens")
