"""Shared figures and figure helpers. A figure is built from tables only (DataFrames in, a matplotlib
Figure out; the CLI reads the tables and saves): never a run folder, a model, torch or the training loop.
Methods' own figures (zoharness.<package>.reports) use the helpers here."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def plot_mean_loss(ax, runs: list[np.ndarray], label: str) -> None:
    """One line: the seeds' losses cut to the shortest run, averaged, then a moving average of n/25 steps."""
    n = min(len(r) for r in runs)
    window = max(1, n // 25)
    smoothed = _smooth(np.mean([r[:n] for r in runs], axis=0), window)
    ax.plot(np.arange(len(smoothed)) + window, smoothed, label=f"{label} (seeds={len(runs)})")


def save_figure(fig, out_dir: str | Path, stem: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    # Fixed metadata keeps the PDF bytes reproducible.
    fig.savefig(paths[0], dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(
        paths[1], bbox_inches="tight", metadata={"CreationDate": None, "Creator": None, "Producer": None}
    )
    plt.close(fig)
    return paths


def seed_losses(curves: pd.DataFrame) -> dict[tuple, dict[str, list[np.ndarray]]]:
    """(model, task) -> label -> one loss array per run, runs in table order."""
    out: dict[tuple, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for (model, task, label, _variant, _seed), run in curves.groupby(
        ["model", "task", "label", "variant", "seed"], sort=False
    ):
        out[(model, task)][label].append(run.sort_values("step")["loss"].to_numpy())
    return out


def loss_figure(curves: pd.DataFrame, suite: str):
    """One panel per (model, task); one line per method (mean over seeds, moving average)."""
    by_panel = seed_losses(curves)
    panels = sorted(by_panel)
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 3.8), squeeze=False)
    for ax, key in zip(axes[0], panels, strict=False):
        for label, runs in sorted(by_panel[key].items()):
            plot_mean_loss(ax, runs, label)
        ax.set(title=f"{key[0]} · {key[1]}", xlabel="step", ylabel="train loss (moving avg)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no training runs", ha="center")
    fig.suptitle(f"Training loss: suite {suite}", fontsize=10)
    return fig


def accuracy_figure(wide: pd.DataFrame, suite: str, task_labels: dict[str, str]):
    """Test metric per method (accuracy; F1 for generation tasks), one group per task, error bars =
    std over seeds."""
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
    ax.set_xticks(np.arange(len(tasks)), [task_labels.get(t, t) for t in tasks])
    ax.set(ylabel="test accuracy or F1 (%)", title=f"Test metric: suite {suite}")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return fig


def suite_figures(table_csv, curves_csv, out_dir, suite: str) -> list[Path]:
    """The `figures` rule: loss.{png,pdf} from the curves table, accuracy.{png,pdf} from the table."""
    from zoharness.tables import read_curves, task_label
    from zoharness.tasks import get_task

    wide = pd.read_csv(table_csv)
    tasks = [c for c in wide.columns if f"{c}_std" in wide.columns and not c.endswith("_dev")]
    labels = {t: task_label(get_task(t)) for t in tasks}
    return save_figure(loss_figure(read_curves(curves_csv), suite), out_dir, "loss") + save_figure(
        accuracy_figure(wide, suite, labels), out_dir, "accuracy"
    )
