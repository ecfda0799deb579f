"""MeZO+OAT-Rephrase's own reports: the rephrasing table (acceptance, tokens, cost) from the rephrase
rule's stats files, and the figure of rephrased-data runs against their baseline, from tables only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zoharness.io import read_json, write_text_atomic
from zoharness.plotting import plot_mean_loss, plt, save_figure
from zoharness.tables import read_curves


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


def rephrase_figure(
    runs: pd.DataFrame, curves: pd.DataFrame, stats: pd.DataFrame, suite: str, methods: list[str]
):
    """Runs on rephrased data against their baseline: test/dev accuracy, training loss, and what the
    judge kept. One row per task. `methods`: the method ids to show, in bar order (the baseline first);
    `runs`: the suite's runs table; `curves`: its curves table; `stats`: the rephrase table."""
    runs = runs[runs["method"].isin(methods)]
    curves = curves[curves["method"].isin(methods)]
    tasks = list(dict.fromkeys(runs["task"]))
    fig, axes = plt.subplots(len(tasks), 3, figsize=(16, 4 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks, strict=True):
        by_label = {lab: g for lab, g in runs[runs["task"] == task].groupby("label", sort=False)}
        labels = sorted(by_label, key=lambda lab: methods.index(by_label[lab]["method"].iloc[0]))
        ax = row[0]
        width = 0.38
        for j, split in enumerate(("test", "dev")):
            means = [100 * np.mean(list(by_label[lab][f"{split}_score"])) for lab in labels]
            bars = ax.bar(np.arange(len(labels)) + (j - 0.5) * width, means, width, label=split)
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        ax.set_xticks(np.arange(len(labels)), [lab.replace("+", "+\n") for lab in labels], fontsize=8)
        ax.set(ylabel="accuracy or F1 (%)", title=f"{task}: original dev/test sets", ylim=(0, 100))
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax = row[1]
        task_curves = curves[curves["task"] == task]
        for lab in labels:
            losses = [
                run.sort_values("step")["loss"].to_numpy()
                for _, run in task_curves[task_curves["label"] == lab].groupby(
                    ["model", "variant", "seed"], sort=False
                )
            ]
            plot_mean_loss(ax, losses, lab)
        ax.set(
            xlabel="step",
            ylabel="train loss on its own train set (moving avg)",
            title=f"{task}: training loss",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax = row[2]
        task_stats = [s for s in stats.to_dict("records") if s["task"] == task]
        names = [f"{s['rewriter']}\nseed {s['seed']}" for s in task_stats]
        accepted = [100 * s["accepted"] / s["examples"] for s in task_stats]
        kept = [100 * s["kept_original"] / s["examples"] for s in task_stats]
        dropped = [100 * s["dropped"] / s["examples"] for s in task_stats]
        y = np.arange(len(task_stats))
        ax.barh(y, accepted, label="rephrased (judge accepted)")
        ax.barh(y, kept, left=accepted, label="original kept (rejected / invalid / malformed)")
        if any(dropped):
            ax.barh(y, dropped, left=np.add(accepted, kept), label="dropped")
        for i, a in enumerate(accepted):
            ax.text(a + 1, i, f"{a:.1f}% rephrased", va="center", fontsize=8)
        ax.set_yticks(y, names, fontsize=8)
        ax.set(xlabel="% of training examples", title=f"{task}: what the training set holds", xlim=(0, 100))
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.subplots_adjust(wspace=0.45)  # room for the rewriter names left of the last panel
    fig.suptitle(f"MeZO on rephrased training data: suite {suite}", fontsize=10)
    return fig


def rephrase_figures(runs_csv, curves_csv, table_csv, out_dir, suite: str, methods: list[str]) -> list[Path]:
    """The `rephrase_figure` rule: rephrase.{png,pdf} from the suite's runs and curves tables and the
    rephrase table."""
    runs = pd.read_csv(runs_csv)
    figure = rephrase_figure(runs, read_curves(curves_csv), pd.read_csv(table_csv), suite, methods)
    return save_figure(figure, out_dir, "rephrase")
