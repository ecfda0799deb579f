"""Figures from tables and train logs only (never a model): loss vs step, accuracy bars."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from zoharness.io import read_json  # noqa: E402


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def _plot_mean_loss(ax, runs: list[np.ndarray], label: str) -> None:
    """One line: the seeds' losses cut to the shortest run, averaged, then a moving average of n/25 steps."""
    n = min(len(r) for r in runs)
    window = max(1, n // 25)
    smoothed = _smooth(np.mean([r[:n] for r in runs], axis=0), window)
    ax.plot(np.arange(len(smoothed)) + window, smoothed, label=f"{label} (seeds={len(runs)})")


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    # Fixed metadata keeps the PDF bytes reproducible.
    fig.savefig(paths[0], dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(
        paths[1], bbox_inches="tight", metadata={"CreationDate": None, "Creator": None, "Producer": None}
    )
    plt.close(fig)
    return paths


def loss_curves(log_paths: list[str | Path], out_dir: str | Path, suite: str) -> list[Path]:
    """One panel per (model, task); one line per method (mean over seeds, moving average)."""
    from zoharness.train import read_train_log

    curves: dict[tuple, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for path in log_paths:
        path = Path(path)
        metrics = read_json(path.parent / "metrics.json")
        _, records = read_train_log(path)
        if records:
            curves[(metrics["model"], metrics["task"])][metrics["label"]].append(
                np.array([r["loss"] for r in records])
            )
    panels = sorted(curves)
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 3.8), squeeze=False)
    for ax, key in zip(axes[0], panels, strict=False):
        for label, runs in sorted(curves[key].items()):
            _plot_mean_loss(ax, runs, label)
        ax.set(title=f"{key[0]} · {key[1]}", xlabel="step", ylabel="train loss (moving avg)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no training runs", ha="center")
    fig.suptitle(f"Training loss: suite {suite}", fontsize=10)
    return _save(fig, Path(out_dir), "loss")


def accuracy_bars(table_csv: str | Path, out_dir: str | Path, suite: str) -> list[Path]:
    """Test metric per method (accuracy; F1 for generation tasks), one group per task, error bars =
    std over seeds."""
    wide = pd.read_csv(table_csv)
    tasks = [c for c in wide.columns if f"{c}_std" in wide.columns and not c.endswith("_dev")]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 * len(tasks) * max(1, len(wide)) / 2), 3.8))
    width = 0.8 / max(len(wide), 1)
    for i, row in enumerate(wide.itertuples(index=False)):
        row = row._asdict()
        means = [row[t] for t in tasks]
        stds = [0 if pd.isna(row[f"{t}_std"]) else row[f"{t}_std"] for t in tasks]
        x = np.arange(len(tasks)) + (i - (len(wide) - 1) / 2) * width
        name = row["label"] if wide["model"].nunique() == 1 else f"{row['model']} {row['label']}"
        bars = ax.bar(x, means, width, yerr=stds, capsize=3, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    from zoharness.tables import task_label
    from zoharness.tasks import get_task

    ax.set_xticks(np.arange(len(tasks)), [task_label(get_task(t)) for t in tasks])
    ax.set(ylabel="test accuracy or F1 (%)", title=f"Test metric: suite {suite}")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(out_dir), "accuracy")


SPARSE_METHOD = "sparse_zo_int4"
MEMORY_PARTS = (  # metrics.json key -> legend
    ("memory_base_bytes", "frozen base (4-bit codes + scales, or dense)"),
    ("memory_delta_values_bytes", "sparse delta values (fp32)"),
    ("memory_delta_indices_bytes", "sparse delta indices"),
    ("memory_frozen_other_bytes", "embeddings, norms, head"),
    ("model_bytes", "model weights (dense)"),
    ("zo_noise_cache_bytes", "z cache"),
    ("train_transient_peak_bytes", "step transients (activations, dequantized matrix)"),
)


def sparse_figures(metrics_paths: list[str | Path], out_dir: str | Path, suite: str) -> list[Path]:
    """Accuracy vs density (sparse-ZO runs; full-model MeZO at density 1) and resident memory by
    component per method, from the runs' metrics.json (mean over seeds)."""
    rows = pd.DataFrame([read_json(p) for p in metrics_paths])
    untrained = rows[rows["steps"] == 0]  # zero-shot: a reference line
    rows = rows[rows["steps"] > 0]
    runs = rows.groupby(["task", "method"], sort=False).mean(numeric_only=True).reset_index()
    text = [c for c in ("method_id", "label", "sparse_base", "sparse_mask") if c in rows]
    runs = runs.merge(rows.drop_duplicates("method")[["method", *text]], on="method")
    paths = []
    tasks = list(dict.fromkeys(runs["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = runs[runs["task"] == task]
        sparse = sub[sub["method_id"] == SPARSE_METHOD]
        groups = sparse.groupby([sparse["sparse_mask"], sparse["sparse_base"]], sort=False)
        for (mask_name, base), g in groups:
            g = g.sort_values("sparse_density")
            style = "o-" if len(g) > 1 else "s"
            ax.plot(g["sparse_density"], 100 * g["test_score"], style, label=f"mask {mask_name}, base {base}")
        for _, r in sub[sub["method_id"] == "mezo"].iterrows():
            ax.plot([1.0], [100 * r["test_score"]], "k*", markersize=10, label=f"{r['label']} (density 1)")
        for label, g in untrained[untrained["task"] == task].groupby("label"):
            ax.axhline(
                100 * g["test_score"].mean(), color="gray", linestyle="--", label=f"{label} (no training)"
            )
        ax.set_xscale("log")
        ax.set(
            xlabel="trained fraction of the linear weights (density)",
            ylabel="test metric (%)",
            title=f"{task}: accuracy vs density",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"sparse ZO: suite {suite}", fontsize=10)
    paths += _save(fig, Path(out_dir), "sparse-density")

    mem = runs.drop_duplicates("method")
    # runs recorded before the memory keys existed have nothing to stack
    known = [k for k in ("model_bytes", "memory_base_bytes") if k in mem]
    mem = mem[mem[known].notna().any(axis=1)] if known else mem.iloc[:0]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(mem) + 1.5))
    left = np.zeros(len(mem))
    for key, legend in MEMORY_PARTS:
        if key not in mem:
            continue
        values = mem[key].fillna(0).to_numpy() / 2**20
        if key == "model_bytes" and "memory_base_bytes" in mem:  # sparse runs list their parts instead
            values = np.where(mem["memory_base_bytes"].isna(), values, 0)
        if values.any():
            ax.barh(np.arange(len(mem)), values, left=left, label=legend)
            left += values
    ax.set_yticks(np.arange(len(mem)), mem["label"])
    ax.set(
        xlabel="MiB (CPU: transients are RSS growth during the steps, an upper bound)",
        title=f"Memory by component: suite {suite}",
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    paths += _save(fig, Path(out_dir), "sparse-memory")
    return paths


REPHRASE_METHODS = ("mezo", "mezo_oat_rephrase", "mezo_generic_rephrase")


def rephrase_figure(metrics_paths, stats_paths, out_dir: str | Path, suite: str) -> list[Path]:
    """MeZO on rephrased data vs MeZO: test/dev accuracy, training loss, and what the judge kept.

    One row per task; reads the runs' metrics.json and train logs and the rephrase stats only."""
    from zoharness.train import read_train_log

    runs = [(Path(p), read_json(p)) for p in metrics_paths]
    runs = [(p, m) for p, m in runs if m["method_id"] in REPHRASE_METHODS]
    stats = [read_json(p) for p in stats_paths]
    tasks = list(dict.fromkeys(m["task"] for _, m in runs))
    fig, axes = plt.subplots(len(tasks), 3, figsize=(16, 4 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks, strict=True):
        by_label: dict[str, list] = defaultdict(list)
        for path, m in runs:
            if m["task"] == task:
                by_label[m["label"]].append((path, m))
        labels = sorted(by_label, key=lambda lab: REPHRASE_METHODS.index(by_label[lab][0][1]["method_id"]))
        ax = row[0]
        width = 0.38
        for j, split in enumerate(("test", "dev")):
            means = [100 * np.mean([m[f"{split}_score"] for _, m in by_label[lab]]) for lab in labels]
            bars = ax.bar(np.arange(len(labels)) + (j - 0.5) * width, means, width, label=split)
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        ax.set_xticks(np.arange(len(labels)), [lab.replace("+", "+\n") for lab in labels], fontsize=8)
        ax.set(ylabel="accuracy or F1 (%)", title=f"{task}: original dev/test sets", ylim=(0, 100))
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax = row[1]
        for lab in labels:
            losses = [
                np.array([r["loss"] for r in read_train_log(p.parent / "train_log.jsonl")[1]])
                for p, _ in by_label[lab]
            ]
            _plot_mean_loss(ax, losses, lab)
        ax.set(
            xlabel="step",
            ylabel="train loss on its own train set (moving avg)",
            title=f"{task}: training loss",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax = row[2]
        task_stats = [s for s in stats if s["task"] == task]
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
    return _save(fig, Path(out_dir), "rephrase")
