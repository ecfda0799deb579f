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
            n = min(len(r) for r in runs)
            mean = np.mean([r[:n] for r in runs], axis=0)
            window = max(1, n // 25)
            ax.plot(
                np.arange(len(_smooth(mean, window))) + window,
                _smooth(mean, window),
                label=f"{label} (seeds={len(runs)})",
            )
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
