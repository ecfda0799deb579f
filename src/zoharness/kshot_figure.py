"""MeZO's Figure 2 in its layout, from a k-shot suite's table: test accuracy against k (examples per class),
one panel per task, one line per method label (for a grid, the variant dev picks at each k; its mean over seeds,
error bars ± one std), with the paper's values (config/paper/<suite>.reference.csv: mean and std per cell)
overlaid as dashed lines, in the colour of the suite's label of the same name.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from zoharness.tasks import get_task, split_task_id  # noqa: E402


def _instances(wide: pd.DataFrame) -> dict[str, list[tuple[int, str]]]:
    """task -> [(k, instance column)] for the table's k-shot task instances, in table order."""
    out: dict[str, list[tuple[int, str]]] = {}
    for col in wide.columns:
        task, k = split_task_id(col)
        if k is not None and f"{col}_std" in wide.columns:
            out.setdefault(task, []).append((k, col))
    return {task: sorted(cols) for task, cols in out.items()}


def _reference_std(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def best_on_dev(wide: pd.DataFrame, col: str) -> pd.DataFrame:
    """Per (model, label), the variant with the best mean dev score on task instance `col` (a label that is a
    learning-rate grid: the point dev picks, as the paper), as rows (model, label, mean, std)."""
    rows = []
    for (model, label), grp in wide.groupby(["model", "label"], sort=False):
        dev = grp[f"{col}_dev"].astype(float)
        if dev.notna().any():
            best = grp.loc[dev.idxmax()]
            rows.append({"model": model, "label": label, "mean": best[col], "std": best[f"{col}_std"]})
    return pd.DataFrame(rows, columns=["model", "label", "mean", "std"])


def kshot_figure(wide: pd.DataFrame, suite: str, reference: pd.DataFrame | None = None):
    panels = _instances(wide)
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.6 * max(len(panels), 1), 3.6), squeeze=False)
    colours = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(wide["label"]))}
    several_models = wide["model"].nunique() > 1
    for ax, (task, cols) in zip(axes[0], panels.items(), strict=False):
        ks = [k for k, _ in cols]
        points = pd.concat([best_on_dev(wide, c).assign(k=k) for k, c in cols], ignore_index=True)
        for (model, label), grp in points.groupby(["model", "label"], sort=False):
            ax.errorbar(
                grp["k"],
                grp["mean"].astype(float),
                yerr=grp["std"].astype(float).fillna(0),
                marker="o",
                capsize=3,
                color=colours[label],
                label=f"{model} {label}" if several_models else label,
            )
        if reference is not None:
            by_cell = reference[reference["task"].isin([c for _, c in cols])]
            for method, grp in by_cell.groupby("paper_method", sort=False):
                at = {c: k for k, c in cols}
                ax.errorbar(
                    [at[t] for t in grp["task"]],
                    grp["value"],
                    yerr=[_reference_std(v) for v in grp.get("std", [None] * len(grp))],
                    marker="x",
                    linestyle="--",
                    capsize=2,
                    alpha=0.6,
                    color=colours.get(method, "0.5"),
                    label=f"paper: {method}",
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set(title=get_task(task).label, xlabel="k (examples per class)", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no k-shot task instances", ha="center")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(labels), 6))
    rows_of_legend = -(-len(labels) // 6) if handles else 0
    fig.suptitle(f"Accuracy against k (MeZO Figure 2 layout): suite {suite}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 * rows_of_legend, 1, 0.95))
    return fig


def write_kshot_figure(table_csv, out_dir, suite: str, reference_csv=None):
    from zoharness.plotting import save_figure
    from zoharness.scorecard import read_reference

    wide = pd.read_csv(table_csv)
    reference = read_reference(reference_csv) if reference_csv else None
    return save_figure(kshot_figure(wide, suite, reference), out_dir, "kshot")
