"""Result tables from run artifacts: per-run CSV, and MeZO Table 1 layout (rows methods, columns tasks).

Cells are test-set metrics in percent, mean ± sample std over seeds, with the number of seeds n;
a second block gives the dev-set numbers (the only numbers used to choose hyperparameters).

Two long tables carry what figures need, so no figure reads a run folder: <suite>-curves.csv (one row
per logged step: the training loss) and <suite>-details.csv (one row per scalar in each run's
metrics.json). Their readers give floats back bit for bit (repr in; pandas >= 3 and json parse it
round-trip exact, which tests/test_tables.py checks).
Method-specific tables (masks, rephrasing) live in their methods' packages.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from zoharness.io import check_artifact_format, read_json, write_text_atomic
from zoharness.trainlog import read_train_log

RUN_COLUMNS = [
    "model",
    "task",
    "variant",
    "method",
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
# Added only when some run was resumed, so tables of runs trained in one process keep their layout.
PARTIAL_COLUMNS = ["resumed_at_step", "measurements_complete"]


def partial_runs(df: pd.DataFrame) -> pd.Series:
    """Runs whose wall time and memory cover only the process that finished them (they were resumed);
    runs written before metrics.json had the flag count as complete."""
    if "measurements_complete" not in df:
        return pd.Series(False, index=df.index)
    return df["measurements_complete"].eq(False)


def read_metrics(path) -> dict:
    """A run's metrics.json, refused clearly when an older harness wrote it in another layout."""
    return check_artifact_format(read_json(path), path)


def collect(metrics_paths: list[str | Path]) -> pd.DataFrame:
    rows = [read_metrics(p) for p in metrics_paths]
    if not rows:
        raise ValueError("no metrics.json files given")
    df = pd.DataFrame(rows)
    columns = RUN_COLUMNS + (PARTIAL_COLUMNS if partial_runs(df).any() else [])
    for col in columns:
        if col not in df:
            df[col] = None
    if "resumed_at_step" in columns:
        df["resumed_at_step"] = pd.to_numeric(df["resumed_at_step"]).astype("Int64")
    # Keep the order the runs were given in (the workflow passes them in config order, so rows follow
    # the suite's variant order); only seeds are sorted within a (model, task, variant).
    df["_order"] = df.groupby(["model", "task", "variant"], sort=False).ngroup()  # first-appearance order
    return df.sort_values(["_order", "seed"], kind="stable")[columns].reset_index(drop=True)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, variant, task): mean/std over seeds of dev and test metric, in percent."""
    g = runs.groupby(["model", "variant", "label", "method", "task"], sort=False)
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
    """Table 1 layout for the CSV: one row per (model, variant), per task mean/std/n columns."""
    rows = []
    for (model, variant, label), grp in summary.groupby(["model", "variant", "label"], sort=False):
        row = {"model": model, "variant": variant, "label": label}
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


def resumed_runs(runs: pd.DataFrame) -> list[str]:
    """One line per partial run, for the markdown's note."""
    return [
        f"{r.model} · {r.task} · {r.variant} seed {r.seed} (resumed at step {r.resumed_at_step})"
        for r in runs[partial_runs(runs)].itertuples()
    ]


def markdown(summary: pd.DataFrame, suite: str, task_labels: dict[str, str], resumed: list[str] = ()) -> str:
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
    names = summary.drop_duplicates(["model", "variant"])
    shared = set(names.loc[names.duplicated(["model", "label"], keep=False), "label"])
    for split, key in (("Test", "test"), ("Dev", "dev")):
        lines += [
            f"## {split}",
            "",
            "| model | method | " + " | ".join(task_labels.get(t, t) for t in tasks) + " |",
            "|---|---|" + "---:|" * len(tasks),
        ]
        for (model, variant, label), grp in summary.groupby(["model", "variant", "label"], sort=False):
            by_task = {r.task: r for r in grp.itertuples()}
            cells = [
                _cell(
                    getattr(by_task[t], f"{key}_mean"), getattr(by_task[t], f"{key}_std"), by_task[t].n_seeds
                )
                if t in by_task
                else "–"
                for t in tasks
            ]
            shown = f"{label} ({variant})" if label in shared else label
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
                f"| {s['model']} | {task_labels.get(s['task'], s['task'])} | {s['method']} | "
                f"{s['variant']} | {s['dev_mean']:.1f} | {s['test_mean']:.1f} |"
            )
        lines.append("")
    if resumed:  # their metrics stand; their wall time and memory cover only the last process
        lines += [
            "## Resumed runs",
            "",
            "These runs were stopped (killed, or failed) and resumed: their metrics and step times are "
            "complete, but the wall time and memory figures in their metrics.json cover only the process "
            "that finished them (per-process figures under `segments`).",
            "",
            *(f"- {r}" for r in resumed),
            "",
        ]
    return "\n".join(lines)


def best_on_dev(variants: pd.DataFrame) -> pd.Series:
    """The summary row with the best mean dev score (ties: the first variant name)."""
    return variants.sort_values(["dev_mean", "variant"], ascending=[False, True]).iloc[0]


def select_by_dev(summary: pd.DataFrame) -> list[dict]:
    out = []
    for (model, task, method), grp in summary.groupby(["model", "task", "method"], sort=False):
        if len(grp) > 1:
            best = best_on_dev(grp)
            out.append(
                {
                    "model": model,
                    "task": task,
                    "method": method,
                    "variant": best["variant"],
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
    write_text_atomic(out_md, markdown(summary, suite, labels, resumed_runs(runs)))
    return summary


RUN_KEYS = ["model", "task", "variant", "method", "label", "seed"]  # what names a run in the long tables


CURVE_COLUMNS = ["step", "loss", "forward_passes"]


def _cumulative(counts: list) -> list:
    """Running sum of per-step counts; None throughout when any step lacks its count."""
    if any(c is None for c in counts):
        return [None] * len(counts)
    return np.cumsum(counts, dtype=np.int64).tolist()


def write_curves(log_paths: list[str | Path], out_csv) -> pd.DataFrame:
    """Training loss per logged step of every run (runs in the order given; evaluation-only runs have
    no steps). Reads each train_log.jsonl and the metrics.json beside it, both rule inputs."""
    frames = []
    for path in log_paths:
        metrics = read_metrics(Path(path).parent / "metrics.json")
        _, records = read_train_log(path)
        frame = pd.DataFrame(
            {
                "step": [r["step"] for r in records],
                "loss": [r["loss"] for r in records],
                # forward passes spent up to and including this step (ZO-Bench's cost axis): 2q per ZO
                # step, 1 per FO step (its backward is not a forward); empty for logs without the count
                "forward_passes": _cumulative([r.get("forward_passes") for r in records]),
            }
        )
        frames.append(frame.assign(**{k: metrics[k] for k in RUN_KEYS})[RUN_KEYS + CURVE_COLUMNS])
    curves = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_KEYS + CURVE_COLUMNS)
    )
    write_text_atomic(out_csv, curves.to_csv(index=False))
    return curves


def read_curves(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"model": str, "task": str, "variant": str, "method": str})


CHECKPOINT_COLUMNS = ["step", "dev_score", "test_score", "best"]


def write_checkpoints(metrics_paths: list[str | Path], out_csv) -> pd.DataFrame:
    """Dev (and test, with eval.test_curve) score at every checkpoint of every trained run, from its
    metrics.json's dev_curve; `best` marks the checkpoint the run reported (MeZO's best-on-dev). Runs
    written before checkpoints were recorded, and evaluation-only runs, have none."""
    rows = []
    for path in metrics_paths:
        metrics = read_metrics(path)
        run = {k: metrics[k] for k in RUN_KEYS}
        for entry in metrics.get("dev_curve", []):
            rows.append(
                {
                    **run,
                    "step": entry["step"],
                    "dev_score": entry["dev_score"],
                    "test_score": entry.get("test_score"),
                    "best": entry["step"] == metrics["best_step"],
                }
            )
    table = pd.DataFrame(rows, columns=RUN_KEYS + CHECKPOINT_COLUMNS)
    write_text_atomic(out_csv, table.to_csv(index=False))
    return table


def write_details(metrics_paths: list[str | Path], out_csv) -> pd.DataFrame:
    """Every scalar of every run's metrics.json, one row per (run, key), runs in the order given."""
    rows = []
    for path in metrics_paths:
        metrics = read_metrics(path)
        run = {k: metrics[k] for k in RUN_KEYS}
        for key, value in metrics.items():
            if key not in RUN_KEYS and (value is None or isinstance(value, bool | int | float | str)):
                rows.append({**run, "key": key, "value": _encode(value)})
    details = pd.DataFrame(rows, columns=RUN_KEYS + ["key", "value"])
    write_text_atomic(out_csv, details.to_csv(index=False))
    return details


def _encode(value) -> str:
    # JSON spelling keeps types apart in one text column: "true", "null", "0.1", "\"nf4\"".
    return json.dumps(value, allow_nan=False)


def read_details(path) -> pd.DataFrame:
    """The details table back as one row per run (metrics.json's scalars as columns, exact values)."""
    long = pd.read_csv(path, dtype=str, keep_default_na=False)
    if long.empty:
        return pd.DataFrame(columns=RUN_KEYS)
    long["value"] = [json.loads(v) for v in long["value"]]
    long["seed"] = long["seed"].astype(int)
    long["_run"] = long.groupby(RUN_KEYS, sort=False).ngroup()
    wide = long.pivot(index="_run", columns="key", values="value")
    runs = long.drop_duplicates("_run").set_index("_run")[RUN_KEYS]
    out = runs.join(wide).reset_index(drop=True)
    keys = list(dict.fromkeys(long["key"]))  # metrics.json's key order
    out = out[RUN_KEYS + keys]
    for key in keys:  # columns holding only numbers (or nulls) become numeric, as read_json gave them
        values = [v for v in out[key] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = pd.array([float("nan") if v is None else v for v in out[key]], dtype="float64")
        else:
            out[key] = out[key].where(out[key].notna(), None)
    return out
