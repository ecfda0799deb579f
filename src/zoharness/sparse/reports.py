"""sparse-ZO-int4's own reports: the masks table and the density and memory figures, from tables only
(the mask rule's stats files; the suite's details table). No torch here: figure jobs stay light."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zoharness.io import read_json, write_text_atomic
from zoharness.plotting import plt, save_figure
from zoharness.tables import read_details

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


MEMORY_PARTS = (  # metrics.json key -> legend
    ("memory_base_bytes", "frozen base (4-bit codes + scales, or dense)"),
    ("memory_delta_values_bytes", "sparse delta values (fp32)"),
    ("memory_delta_indices_bytes", "sparse delta indices"),
    ("memory_frozen_other_bytes", "embeddings, norms, head"),
    ("model_bytes", "model weights (dense)"),
    ("zo_noise_cache_bytes", "z cache"),
    ("train_transient_peak_bytes", "step transients (activations, dequantized matrix)"),
)


def _means_by_task_and_variant(rows: pd.DataFrame) -> pd.DataFrame:
    """Numeric metrics averaged over seeds per (task, variant), with the variant's text columns."""
    runs = rows.groupby(["task", "variant"], sort=False).mean(numeric_only=True).reset_index()
    text = [c for c in ("method", "label", "sparse_base", "sparse_mask") if c in rows]
    return runs.merge(rows.drop_duplicates("variant")[["variant", *text]], on="variant")


def density_figure(rows: pd.DataFrame, suite: str, dense: str | None):
    """Accuracy vs density: the sparse runs (those with a sparse_density), the dense method `dense` at
    density 1, untrained runs as reference lines; means over seeds. `rows`: one row per run, the
    details table's layout."""
    untrained = rows[rows["steps"] == 0]  # zero-shot: a reference line
    rows = rows[rows["steps"] > 0]
    runs = _means_by_task_and_variant(rows)
    tasks = list(dict.fromkeys(runs["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = runs[runs["task"] == task]
        sparse = sub[sub["sparse_density"].notna()] if "sparse_density" in sub else sub.iloc[:0]
        groups = sparse.groupby([sparse["sparse_mask"], sparse["sparse_base"]], sort=False)
        for (mask_name, base), g in groups:
            g = g.sort_values("sparse_density")
            style = "o-" if len(g) > 1 else "s"
            ax.plot(g["sparse_density"], 100 * g["test_score"], style, label=f"mask {mask_name}, base {base}")
        for _, r in sub[sub["method"] == dense].iterrows():
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
    return fig


def memory_figure(rows: pd.DataFrame, suite: str):
    """Resident memory by component per trained method (means over seeds). A resumed run's measured
    memory covers only the process that finished it: it is left out of the means; a method with no
    other run keeps its figures, hatched and labelled as partial."""
    from zoharness.tables import partial_runs

    rows = rows[rows["steps"] > 0]
    partial = partial_runs(rows)
    only_partial = set(rows.loc[partial, "variant"]) - set(rows.loc[~partial, "variant"])
    mem = _means_by_task_and_variant(rows[~partial | rows["variant"].isin(only_partial)])
    mem = mem.drop_duplicates("variant")
    # runs recorded before the memory keys existed have nothing to stack
    known = [k for k in ("model_bytes", "memory_base_bytes") if k in mem]
    mem = mem[mem[known].notna().any(axis=1)] if known else mem.iloc[:0]
    hatched = mem["variant"].isin(only_partial).to_numpy()
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(mem) + 1.5))
    left = np.zeros(len(mem))
    for key, legend in MEMORY_PARTS:
        if key not in mem:
            continue
        values = mem[key].fillna(0).to_numpy() / 2**20
        if key == "model_bytes" and "memory_base_bytes" in mem:  # sparse runs list their parts instead
            values = np.where(mem["memory_base_bytes"].isna(), values, 0)
        if values.any():
            bars = ax.barh(np.arange(len(mem)), values, left=left, label=legend)
            for bar in np.asarray(bars.patches, dtype=object)[hatched]:
                bar.set(hatch="//", alpha=0.5)
            left += values
    labels = [
        f"{lab}\n(resumed: last process only)" if h else lab
        for lab, h in zip(mem["label"], hatched, strict=True)
    ]
    ax.set_yticks(np.arange(len(mem)), labels)
    ax.set(
        xlabel="MiB (CPU: transients are RSS growth during the steps, an upper bound)",
        title=f"Memory by component: suite {suite}",
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def sparse_figures(details_csv, out_dir, suite: str, dense: str | None) -> list[Path]:
    """The `sparse_figures` rule: sparse-density and sparse-memory from the suite's details table."""
    rows = read_details(details_csv)
    return save_figure(density_figure(rows, suite, dense), out_dir, "sparse-density") + save_figure(
        memory_figure(rows, suite), out_dir, "sparse-memory"
    )
