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


def plot_mean_loss(ax, runs: list[np.ndarray], label: str, **style) -> None:
    """One line: the seeds' losses cut to the shortest run, averaged, then a moving average of n/25 steps."""
    n = min(len(r) for r in runs)
    window = max(1, n // 25)
    smoothed = _smooth(np.mean([r[:n] for r in runs], axis=0), window)
    ax.plot(np.arange(len(smoothed)) + window, smoothed, label=f"{label} (seeds={len(runs)})", **style)


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


def loss_figure(curves: pd.DataFrame, suite: str, note: str = ""):
    """One panel per (model, task); one line per method (mean over seeds, moving average); `note` (what
    the lines are) goes under the title."""
    by_panel = seed_losses(curves)
    panels = sorted(by_panel)
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 3.8), squeeze=False, layout="constrained"
    )
    for ax, key in zip(axes[0], panels, strict=False):
        for i, (label, runs) in enumerate(sorted(by_panel[key].items())):
            plot_mean_loss(ax, runs, label, **line_style(i))
        ax.set(title=f"{key[0]} · {key[1]}", xlabel="step", ylabel="train loss (moving avg)")
        ax.grid(alpha=0.3)
        place_legend(ax, len(by_panel[key]))
    if not panels:
        axes[0][0].text(0.5, 0.5, "no training runs", ha="center")
    fig.suptitle(f"Training loss: suite {suite}" + (f"\n{note}" if note else ""), fontsize=10)
    return fig


def accuracy_figure(wide: pd.DataFrame, suite: str, task_labels: dict[str, str]):
    """Test metric per method (accuracy; F1 for generation tasks), one group per task, error bars =
    std over seeds."""
    tasks = [c for c in wide.columns if f"{c}_std" in wide.columns and not c.endswith("_dev")]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 * len(tasks) * max(1, len(wide)) / 2), 3.8))
    width = 0.8 / max(len(wide), 1)
    # records, not itertuples: a task instance's column (sst5@k16) is no Python identifier
    for i, row in enumerate(wide.to_dict("records")):
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


def checkpoint_figure(checkpoints: pd.DataFrame, suite: str):
    """Dev (solid) and test (dashed, where the suite scores it: eval.test_curve) score at each checkpoint,
    one panel per (model, task), one colour per method: the mean over seeds, a band of ± one std, and a
    dot on each seed's reported (best-on-dev) checkpoint."""
    panels = sorted(checkpoints.groupby(["model", "task"]).groups) if len(checkpoints) else []
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 3.8), squeeze=False)
    for ax, (model, task) in zip(axes[0], panels, strict=False):
        panel = checkpoints[(checkpoints["model"] == model) & (checkpoints["task"] == task)]
        for i, (label, runs) in enumerate(sorted(panel.groupby("label"), key=lambda kv: kv[0])):
            colour = f"C{i}"
            n = runs["seed"].nunique()
            for split, style in (("dev", "-"), ("test", "--")):
                scores = runs.dropna(subset=[f"{split}_score"]).groupby("step")[f"{split}_score"]
                if not len(scores):
                    continue
                mean, std = 100 * scores.mean(), 100 * scores.std().fillna(0)
                name = f"{label} ({split}, seeds={n})"
                ax.plot(mean.index, mean.to_numpy(), style, color=colour, marker=".", label=name)
                ax.fill_between(mean.index, mean - std, mean + std, color=colour, alpha=0.12, linewidth=0)
            best = runs[runs["best"].astype(bool)]
            ax.plot(best["step"], 100 * best["dev_score"], "o", color=colour, markersize=6, alpha=0.6)
        ax.set(title=f"{model} · {task}", xlabel="step", ylabel="score (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if not panels:
        axes[0][0].text(
            0.5, 0.5, "no checkpoints (evaluation-only runs, or eval.checkpoints unset)", ha="center"
        )
    fig.suptitle(
        f"Dev (solid) and test (dashed) at each checkpoint; dots: reported (best dev): suite {suite}",
        fontsize=9,
    )
    return fig


def claims_figure(claims: pd.DataFrame, suite: str):
    """One row per judged claim: the effect (a − b, percentage points) and its 95% CI, the zero line, and
    the claim's margin (a band ±margin for "≈", a line at the threshold for ">" and "<"); each row
    names its verdict."""
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * max(len(claims), 1) + 1.4))
    if claims.empty:
        ax.text(0.5, 0.5, "no claims judged", ha="center", transform=ax.transAxes)
    colours = {"supported": "C2", "contradicted": "C3"}
    for y, row in enumerate(claims.itertuples(index=False)):
        effect, low, high, margin = 100 * row.effect, 100 * row.ci_low, 100 * row.ci_high, 100 * row.margin
        colour = colours.get(row.verdict, "C7")
        ax.errorbar(effect, y, xerr=[[effect - low], [high - effect]], fmt="o", color=colour, capsize=4)
        if row.direction == "≈":
            ax.fill_betweenx([y - 0.4, y + 0.4], -margin, margin, color="C0", alpha=0.12, linewidth=0)
        elif margin:
            ax.plot([margin if row.direction == ">" else -margin] * 2, [y - 0.4, y + 0.4], ":", color="C0")
        ax.annotate(
            row.verdict, (high, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=7
        )
    ax.axvline(0, color="black", linewidth=0.8)
    multi = claims[["model", "task"]].drop_duplicates().shape[0] > 1 if len(claims) else False
    ax.set_yticks(
        range(len(claims)),
        [
            f"{r.claim} ({r.a} {r.direction} {r.b})" + (f"\n{r.model} · {r.task}" if multi else "")
            for r in claims.itertuples(index=False)
        ],
        fontsize=7,
    )
    ax.invert_yaxis()
    ax.set(
        xlabel="effect a − b, test metric (percentage points), 95% paired bootstrap CI",
        title=f"Claims: suite {suite}",
    )
    ax.grid(axis="x", alpha=0.3)
    return fig


def suite_figures(
    table_csv, curves_csv, out_dir, suite: str, checkpoints_csv=None, claims_csv=None, details_csv=None
) -> list[Path]:
    """The `figures` rule: loss.{png,pdf} and cost.{png,pdf} (loss against forward passes) from the curves
    table (past MAX_LINES lines, each method's dev-selected variant: `dev_selected`), accuracy.{png,pdf}
    from the table, and, when given, checkpoints.{png,pdf} (dev/test curves),
    claims.{png,pdf} (effects with CIs) and memory.{png,pdf} (bytes by component, from the details)."""
    from zoharness.tables import read_curves, task_label
    from zoharness.tasks import get_task

    wide = pd.read_csv(table_csv)
    tasks = [c for c in wide.columns if f"{c}_std" in wide.columns and not c.endswith("_dev")]
    labels = {t: task_label(get_task(t)) for t in tasks}
    curves, note = dev_selected(read_curves(curves_csv), wide)
    paths = save_figure(loss_figure(curves, suite, note), out_dir, "loss") + save_figure(
        accuracy_figure(wide, suite, labels), out_dir, "accuracy"
    )
    paths += save_figure(cost_figure(curves, suite, note), out_dir, "cost")
    if checkpoints_csv is not None:
        table = pd.read_csv(checkpoints_csv, dtype={"model": str, "task": str, "variant": str, "label": str})
        paths += save_figure(checkpoint_figure(table, suite), out_dir, "checkpoints")
    if claims_csv is not None:
        claims = pd.read_csv(
            claims_csv, dtype={"model": str, "task": str}, keep_default_na=False, na_values=[""]
        )
        paths += save_figure(claims_figure(claims, suite), out_dir, "claims")
    if details_csv is not None:
        from zoharness.tables import read_details

        paths += save_figure(memory_figure(read_details(details_csv), suite), out_dir, "memory")
    return paths


def cost_figure(curves: pd.DataFrame, suite: str, note: str = ""):
    """Training loss against forward passes spent (ZO-Bench's cost axis: a ZO step costs 2q forwards, an
    FO step one forward and one backward), one panel per (model, task), one line per method (mean over
    seeds, moving average); runs whose logs carry no forward-pass count are left out. `note` (what the
    lines are, e.g. dev-selected variants) goes under the title."""
    have = curves.dropna(subset=["forward_passes"]) if "forward_passes" in curves else curves.iloc[0:0]
    panels = sorted({(m, t) for m, t in zip(have["model"], have["task"], strict=True)})
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 4.2), squeeze=False, layout="constrained"
    )
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no forward-pass counts in the curves table", ha="center", va="center")
        axes[0, 0].set_axis_off()
        return fig
    for ax, (model, task) in zip(axes[0], panels, strict=False):
        panel = have[(have["model"] == model) & (have["task"] == task)]
        for i, (label, runs) in enumerate(panel.groupby("label", sort=False)):
            seeds = [r.sort_values("step") for _, r in runs.groupby(["variant", "seed"], sort=False)]
            n = min(len(r) for r in seeds)
            window = max(1, n // 25)
            loss = _smooth(np.mean([r["loss"].to_numpy()[:n] for r in seeds], axis=0), window)
            passes = np.mean([r["forward_passes"].to_numpy(dtype=float)[:n] for r in seeds], axis=0)
            ax.plot(passes[window - 1 :], loss, label=f"{label} (seeds={len(seeds)})", **line_style(i))
        ax.set(
            xscale="log", xlabel="forward passes (cumulative; FO's backward not counted)", ylabel="train loss"
        )
        ax.set_title(f"{model} · {task}", fontsize=10)
        place_legend(ax, len(panel["label"].unique()))
        ax.grid(alpha=0.3)
    fig.suptitle(f"Loss against forward passes: suite {suite}" + (f"\n{note}" if note else ""), fontsize=11)
    return fig


def line_style(i: int) -> dict:
    """Colour and dash for the i-th line: ten colours, then the next dash pattern, so 40 lines stay apart."""
    return {"color": f"C{i % 10}", "linestyle": ["-", "--", ":", "-."][(i // 10) % 4]}


def place_legend(ax, n_lines: int) -> None:
    """Inside the axes for a few lines; outside, to the right, once it would cover the curves."""
    if n_lines <= 6:
        ax.legend(fontsize=7)
    else:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


# More lines than this in one panel and a suite's grid is drawn as its dev-selected variants only
MAX_LINES = 12


def dev_selected(
    curves: pd.DataFrame, wide: pd.DataFrame, max_lines: int = MAX_LINES
) -> tuple[pd.DataFrame, str]:
    """Past `max_lines` lines in a panel, the curves of each method's dev-selected variant only (a sweep of
    learning-rate grids draws one line per method, as the table's "selected on dev" section reads), with a
    note saying so. Up to `max_lines`, and where no method has more than one variant, the curves unchanged:
    an ablation or a single grid keeps every variant's line. Selection is zoharness.tables.best_on_dev on the
    table's mean dev score of each (model, task, variant); a variant without a dev score is never selected
    over one with it."""
    from zoharness.tables import best_on_dev

    if curves.empty or "method" not in curves or "variant" not in wide:
        return curves, ""
    if curves.groupby(["model", "task"])["label"].nunique().max() <= max_lines:
        return curves, ""
    keep = []
    grid = False
    for (model, task, _method), grp in curves.groupby(["model", "task", "method"], sort=False):
        variants = list(dict.fromkeys(grp["variant"]))
        dev_col = f"{task}_dev"
        if len(variants) == 1 or dev_col not in wide:
            keep.extend((model, task, v) for v in variants)
            continue
        grid = True
        rows = wide[(wide["model"] == model) & wide["variant"].isin(variants)]
        scored = pd.DataFrame({"variant": rows["variant"], "dev_mean": pd.to_numeric(rows[dev_col])})
        scored = scored.dropna()
        chosen = best_on_dev(scored)["variant"] if len(scored) else variants[0]
        keep.append((model, task, chosen))
    if not grid:
        return curves, ""
    keep = set(keep)
    mask = [k in keep for k in zip(curves["model"], curves["task"], curves["variant"], strict=True)]
    return curves[mask], "each method's dev-selected variant (best mean dev score over its grid)"


# Memory a method holds beyond the model's weights, by metrics.json key suffix (every method reports its
# own under these names): exact tensor bytes, not measured peaks.
MEMORY_COMPONENTS = {
    "_optimizer_state_bytes": "optimizer state",
    "_noise_cache_bytes": "z cache",
    "_tangent_bytes": "jvp tangent",
}


def memory_components(runs: pd.DataFrame) -> pd.DataFrame:
    """From the details table read back one row per run (tables.read_details): per (model, task, label),
    the mean over seeds of weights (model_bytes less the adapter), adapter, optimizer state, z cache and jvp
    tangent (exact bytes), and the training loop's measured peak above its start
    (train_transient_peak_bytes: activations, gradients, temporaries; RSS on CPU, an upper bound)."""

    def column(name):
        return (
            pd.to_numeric(runs[name], errors="coerce")
            if name in runs
            else pd.Series(np.nan, index=runs.index)
        )

    out = pd.DataFrame(runs[["model", "task", "label"]])
    adapter = column("adapter_bytes").fillna(0)
    out["weights"] = column("model_bytes") - adapter
    out["adapter"] = adapter
    for suffix, name in MEMORY_COMPONENTS.items():
        cols = [c for c in runs.columns if isinstance(c, str) and c.endswith(suffix)]
        out[name] = sum((column(c).fillna(0) for c in cols), pd.Series(0.0, index=runs.index))
    out["measured training peak above start"] = column("train_transient_peak_bytes")
    return out.groupby(["model", "task", "label"], sort=False).mean()


def memory_figure(details: pd.DataFrame, suite: str):
    """Stacked exact bytes by component per method (left), and the measured training peak above the loop's
    start (right), for the suite's first (model, task)."""
    table = memory_components(details)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.45 * max(len(table), 4) + 1.5))
    if table.empty:
        left.text(0.5, 0.5, "no runs", ha="center", va="center")
        return fig
    model, task = table.index[0][:2]
    one = table.loc[(model, task)]
    gib = 2**30
    parts = ["weights", "adapter", *MEMORY_COMPONENTS.values()]
    bottom = np.zeros(len(one))
    for part in parts:
        values = one[part].fillna(0).to_numpy() / gib
        if values.any():
            left.barh(one.index, values, left=bottom, label=part)
            bottom += values
    left.set(xlabel="GiB (exact tensor bytes, mean over seeds)", title="held through training")
    left.legend(fontsize=7)
    peak = one["measured training peak above start"].to_numpy() / gib
    right.barh(one.index, np.nan_to_num(peak), color="tab:gray")
    right.set(xlabel="GiB (RSS on CPU: an upper bound)", title="training loop's peak above its start")
    right.set_yticks([])
    for ax in (left, right):
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Memory by method: suite {suite}, {model} · {task}", fontsize=11)
    return fig
