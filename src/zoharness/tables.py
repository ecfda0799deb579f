"""Result tables from run artifacts: per-run CSV, and MeZO Table 1 layout (rows methods, columns tasks).

Cells are test-set metrics in percent, mean ± sample std over seeds, with the number of seeds n;
a second block gives the dev-set numbers (the only numbers used to choose hyperparameters).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from zoharness.io import read_json, write_text_atomic

RUN_COLUMNS = [
    "model",
    "task",
    "method",
    "method_id",
    "label",
    "seed",
    "metric",
    "dev_score",
    "test_score",
    "n_train",
    "n_dev",
    "n_test",
    "steps",
    "forward_passes",
    "train_time_s",
    "eval_time_s",
    "step_latency_median_s",
    "step_latency_p90_s",
    "peak_rss_bytes",
    "dtype",
    "device",
]


def collect(metrics_paths: list[str | Path]) -> pd.DataFrame:
    rows = [read_json(p) for p in metrics_paths]
    if not rows:
        raise ValueError("no metrics.json files given")
    df = pd.DataFrame(rows)
    for split in ("dev", "test"):  # artifacts written before generation tasks had only *_accuracy
        if f"{split}_score" not in df and f"{split}_accuracy" in df:
            df[f"{split}_score"] = df[f"{split}_accuracy"]
        elif f"{split}_accuracy" in df:
            df[f"{split}_score"] = df[f"{split}_score"].fillna(df[f"{split}_accuracy"])
    for col in RUN_COLUMNS:
        if col not in df:
            df[col] = None
    # Keep the order the runs were given in (the workflow passes them in config order, so rows follow
    # the suite's method order); only seeds are sorted within a (model, task, method).
    df["_order"] = df.groupby(["model", "task", "method"], sort=False).ngroup()  # first-appearance order
    return df.sort_values(["_order", "seed"], kind="stable")[RUN_COLUMNS].reset_index(drop=True)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, task): mean/std over seeds of dev and test metric, in percent."""
    g = runs.groupby(["model", "method", "label", "method_id", "task"], sort=False)
    out = g.agg(
        metric=("metric", "first"),
        test_mean=("test_score", "mean"),
        test_std=("test_score", "std"),
        dev_mean=("dev_score", "mean"),
        dev_std=("dev_score", "std"),
        n_seeds=("seed", "nunique"),
        n_test=("n_test", "max"),
        n_dev=("n_dev", "max"),
    ).reset_index()
    for col in ("test_mean", "test_std", "dev_mean", "dev_std"):
        out[col] = out[col] * 100.0
    return out


def wide(summary: pd.DataFrame) -> pd.DataFrame:
    """Table 1 layout for the CSV: one row per (model, method), per task mean/std/n columns."""
    rows = []
    for (model, method, label), grp in summary.groupby(["model", "method", "label"], sort=False):
        row = {"model": model, "method": method, "label": label}
        for r in grp.itertuples():
            row.update(
                {
                    f"{r.task}": round(r.test_mean, 2),
                    f"{r.task}_std": _round(r.test_std),
                    f"{r.task}_n_seeds": r.n_seeds,
                    f"{r.task}_n_test": r.n_test,
                    f"{r.task}_dev": round(r.dev_mean, 2),
                    f"{r.task}_dev_std": _round(r.dev_std),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _round(x):
    return None if pd.isna(x) else round(float(x), 2)


def _cell(mean, std, n) -> str:
    spread = "" if pd.isna(std) else f" ± {std:.1f}"
    return f"{mean:.1f}{spread} (n={n})"


def markdown(summary: pd.DataFrame, suite: str, task_labels: dict[str, str]) -> str:
    tasks = list(dict.fromkeys(summary["task"]))
    lines = [
        f"# Results: suite `{suite}`",
        "",
        "Test metric (%) as mean ± sample std over seeds, n = seeds: accuracy, or SQuAD-style F1 for "
        "the columns marked (F1). Built from results/"
        f"{suite}/**/metrics.json by `zoharness table`.",
        "",
    ]
    # Variants that share a display name (an lr grid without labels) are told apart by their names.
    names = summary.drop_duplicates(["model", "method"])
    shared = set(names.loc[names.duplicated(["model", "label"], keep=False), "label"])
    for split, key in (("Test", "test"), ("Dev", "dev")):
        lines += [
            f"## {split}",
            "",
            "| model | method | " + " | ".join(task_labels.get(t, t) for t in tasks) + " |",
            "|---|---|" + "---:|" * len(tasks),
        ]
        for (model, _method, label), grp in summary.groupby(["model", "method", "label"], sort=False):
            by_task = {r.task: r for r in grp.itertuples()}
            cells = [
                _cell(
                    getattr(by_task[t], f"{key}_mean"), getattr(by_task[t], f"{key}_std"), by_task[t].n_seeds
                )
                if t in by_task
                else "–"
                for t in tasks
            ]
            shown = f"{label} ({_method})" if label in shared else label
            lines.append(f"| {model} | {shown} | " + " | ".join(cells) + " |")
        n_line = ", ".join(
            f"{task_labels.get(t, t)} {int(summary[summary.task == t][f'n_{key}'].max())}" for t in tasks
        )
        lines += ["", f"Examples per cell ({split.lower()}): {n_line}.", ""]
    selection = select_by_dev(summary)
    if selection:
        lines += [
            "## Hyperparameters selected on dev",
            "",
            "For each base method with several variants, the variant with the best mean dev accuracy.",
            "",
            "| model | task | method | selected variant | dev | test |",
            "|---|---|---|---|---:|---:|",
        ]
        for s in selection:
            lines.append(
                f"| {s['model']} | {task_labels.get(s['task'], s['task'])} | {s['method_id']} | "
                f"{s['method']} | {s['dev_mean']:.1f} | {s['test_mean']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def best_on_dev(variants: pd.DataFrame) -> pd.Series:
    """The summary row with the best mean dev score (ties: the first variant name)."""
    return variants.sort_values(["dev_mean", "method"], ascending=[False, True]).iloc[0]


def select_by_dev(summary: pd.DataFrame) -> list[dict]:
    out = []
    for (model, task, method_id), grp in summary.groupby(["model", "task", "method_id"], sort=False):
        if len(grp) > 1:
            best = best_on_dev(grp)
            out.append(
                {
                    "model": model,
                    "task": task,
                    "method_id": method_id,
                    "method": best["method"],
                    "dev_mean": best["dev_mean"],
                    "test_mean": best["test_mean"],
                }
            )
    return out


def task_label(task) -> str:
    return f"{task.label} (F1)" if task.metric == "f1" else task.label


def write_tables(metrics_paths, suite: str, out_csv, out_md, out_runs_csv) -> pd.DataFrame:
    from zoharness.tasks import get_task

    runs = collect(metrics_paths)
    summary = summarise(runs)
    labels = {t: task_label(get_task(t)) for t in summary["task"].unique()}
    write_text_atomic(out_runs_csv, runs.to_csv(index=False))
    write_text_atomic(out_csv, wide(summary).to_csv(index=False))
    write_text_atomic(out_md, markdown(summary, suite, labels))
    return summary


MASK_COLUMNS = (
    ("corpus", "corpus"),
    ("density_requested", "density"),
    ("selection", "selection"),
    ("selected", "entries"),
    ("score_mass_coverage", "squared-gradient mass held"),
    ("sensitivity_time_s", "sensitivity time (s)"),
    ("sensitivity_peak_bytes", "sensitivity peak memory (bytes)"),
    ("selection_time_s", "selection time (s)"),
    ("index_bytes_on_disk_int32", "index bytes (int32)"),
)


def write_mask_table(stats_paths, out_csv, out_md) -> pd.DataFrame:
    """One row per mask a suite uses, from the mask rule's stats (.json beside each mask)."""
    rows = []
    for path in sorted(set(map(str, stats_paths))):
        s = read_json(path)
        row = {key: s.get(key) for key, _ in MASK_COLUMNS}
        kinds = sorted(s["per_kind"].items(), key=lambda kv: -kv[1]["selected"])
        row["largest share"] = ", ".join(f"{k} {v['selected'] / s['selected']:.0%}" for k, v in kinds[:3])
        row["mask"] = path
        rows.append(row)
    df = pd.DataFrame(rows)
    write_text_atomic(out_csv, df.to_csv(index=False))
    md = ["| " + " | ".join([label for _, label in MASK_COLUMNS] + ["largest share of entries"]) + " |"]
    md.append("|" + "---|" * (len(MASK_COLUMNS) + 1))
    for r in rows:
        cells = []
        for key, _ in MASK_COLUMNS:
            v = r[key]
            if key == "score_mass_coverage":
                cells.append("–" if v is None else f"{100 * v:.1f}%")
            elif key == "sensitivity_peak_bytes":
                cells.append("–" if v is None else f"{v / 2**30:.2f} GiB")
            elif isinstance(v, float):
                cells.append(f"{v:g}" if key == "density_requested" else f"{v:.1f}")
            else:
                cells.append("–" if v is None else str(v))
        md.append("| " + " | ".join(cells + [r["largest share"]]) + " |")
    write_text_atomic(out_md, "Masks (from resources/masks/**/density~*.json)\n\n" + "\n".join(md) + "\n")
    return df


def write_rephrase_table(stats_paths, out_csv, out_md) -> pd.DataFrame:
    """One row per (rewriter, task, seed) a suite rephrases, from the rephrase rule's stats."""
    rows = []
    for path in sorted(set(map(str, stats_paths))):
        s = read_json(path)
        tok = s["tokens"]
        rows.append(
            {
                "rewriter": s["rewriter"],
                "brief": s["brief"],
                "task": s["task"],
                "seed": s["seed"],
                "examples": s["examples"],
                "accepted": s["accepted"],
                "acceptance_rate": s["acceptance_rate"],
                "kept_original": s["kept_original"],
                "dropped": s["dropped"],
                "malformed_replies": s["malformed_replies"],
                "judge_rejections": s["outcomes"].get("rejected by judge", 0),
                "invalid_rewrites": s["outcomes"].get("invalid", 0),
                "tokens_in": sum(t["input"] for t in tok.values()),
                "tokens_out": sum(t["output"] for t in tok.values()),
                "cost_usd": s["cost_usd"],
                "model": s["model"],
                "prompt_version": s["prompt_version"],
                "stats": path,
            }
        )
    df = pd.DataFrame(rows)
    write_text_atomic(out_csv, df.to_csv(index=False))
    cols = ["rewriter", "brief", "task", "seed", "examples", "accepted", "acceptance_rate", "malformed_replies",
            "invalid_rewrites", "judge_rejections", "tokens_in", "tokens_out", "cost_usd"]  # fmt: skip
    md = ["| " + " | ".join(c.replace("_", " ") for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [
            f"{100 * r[c]:.1f}%" if c == "acceptance_rate" else ("–" if r[c] is None else str(r[c]))
            for c in cols
        ]
        md.append("| " + " | ".join(cells) + " |")
    write_text_atomic(
        out_md,
        "Rephrasing (from resources/rephrased/**/seed*.json; rewrites retried up to max attempts, "
        "then the original kept)\n\n" + "\n".join(md) + "\n",
    )
    return df
