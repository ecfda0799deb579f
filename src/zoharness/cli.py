"""`python -m zoharness <command>`: every Snakemake rule calls one of these, so every step also runs
(and is tested) without Snakemake."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoharness.io import BackendUnavailableError, DataError, sha256_file, write_json_atomic


def _cmd_list(args) -> int:
    from zoharness.methods import get_method, method_ids
    from zoharness.models import BUILTIN_MODELS
    from zoharness.tasks import task_ids

    print("models: ", ", ".join(f"{k} ({v})" for k, v in BUILTIN_MODELS.items()))
    print("tasks:  ", ", ".join(task_ids()))
    print("methods:", ", ".join(f"{m} ({get_method(m).LABEL})" for m in method_ids()))
    return 0


def _cmd_check_config(args) -> int:
    from zoharness.config import load_suite, runs

    cfg = load_suite(args.config)
    print(f"{args.config}: valid; {len(runs(cfg))} runs")
    return 0


def _cmd_prepare_model(args) -> int:
    from zoharness.models import prepare

    ref = prepare(args.slug, args.source, args.out_dir)
    print(json.dumps(ref, indent=2))
    return 0


def _cmd_split(args) -> int:
    from zoharness.data import make_split

    manifest = make_split(
        args.task, args.data_dir, args.seed, args.num_train, args.num_dev, args.num_test, args.source
    )
    write_json_atomic(args.out, manifest)
    print(f"{args.out}: {manifest['n']}")
    return 0


def _cmd_fetch_data(args) -> int:
    from zoharness.data import fetch_online

    info = fetch_online(args.task, args.out_dir, args.hf_dataset or None)
    print(json.dumps(info, indent=2))
    return 0


def _cmd_run_config(args) -> int:
    spec = json.loads(args.spec)
    spec["split_sha256"] = sha256_file(args.split)
    write_json_atomic(args.out, spec)
    return 0


def _cmd_train(args) -> int:
    from zoharness.train import train

    inputs = {}
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DataError(f"--input {item!r}: expected NAME=PATH")
        inputs[name] = path
    metrics = train(
        args.run_config, args.split, args.model_ref, args.out_dir, threads=args.threads, inputs=inputs
    )
    keys = ("metric", "dev_score", "test_score", "steps", "train_time_s", "step_latency_median_s")
    print(json.dumps({k: metrics[k] for k in keys}))
    return 0


def _cmd_sensitivity(args) -> int:
    import torch

    from zoharness.sparse.pipeline import sensitivity

    if args.threads:
        torch.set_num_threads(args.threads)
    info = sensitivity(args.model_ref, args.corpus, args.out, args.data_dir, args.split, args.device)
    print(json.dumps({k: v for k, v in info.items() if k != "shapes"}, indent=2))
    return 0


def _cmd_rephrase(args) -> int:
    from zoharness.rephrase.client import EndpointError
    from zoharness.rephrase.run import rephrase_split
    from zoharness.rephrase.settings import RewriterConfigError, check, resolve

    try:
        cfg = json.loads(args.settings) if args.settings else resolve(args.rewriter)
        check(args.rewriter, cfg)
        if args.threads and cfg["server"]["threads"] is None:
            cfg["server"]["threads"] = args.threads
        rephrase_split(
            args.rewriter, cfg, args.split, args.data_dir, args.out, args.stats, args.cache_dir,
            log=lambda msg: print(msg, flush=True), server_log=args.server_log,
        )  # fmt: skip
    except (EndpointError, RewriterConfigError) as e:
        print(f"zoharness rephrase: error: {e}", file=sys.stderr)
        return 2
    return 0


def _cmd_mask(args) -> int:
    from zoharness.sparse.pipeline import build_mask

    stats = build_mask(args.model_ref, args.corpus, args.density, args.selection, args.out, args.sensitivity)
    print(json.dumps({k: v for k, v in stats.items() if not k.startswith("per_")}, indent=2))
    return 0


def _cmd_table(args) -> int:
    from zoharness.tables import write_tables

    write_tables(args.metrics, args.suite, args.out_csv, args.out_md, args.out_runs_csv)
    print(Path(args.out_md).read_text())
    return 0


def _cmd_scorecard(args) -> int:
    from zoharness.scorecard import write_scorecard

    write_scorecard(args.metrics, args.reference, args.suite, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def _cmd_figures(args) -> int:
    from zoharness.plotting import accuracy_bars, loss_curves

    for p in loss_curves(args.logs, args.out_dir, args.suite) + accuracy_bars(
        args.table, args.out_dir, args.suite
    ):
        print(p)
    return 0


def _cmd_sparse_figures(args) -> int:
    from zoharness.plotting import sparse_figures

    for p in sparse_figures(args.metrics, args.out_dir, args.suite):
        print(p)
    return 0


def _cmd_mask_table(args) -> int:
    from zoharness.tables import write_mask_table

    write_mask_table(args.stats, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def _cmd_rephrase_table(args) -> int:
    from zoharness.tables import write_rephrase_table

    write_rephrase_table(args.stats, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def _cmd_rephrase_figure(args) -> int:
    from zoharness.plotting import rephrase_figure

    for path in rephrase_figure(args.metrics, args.stats, args.out_dir, args.suite):
        print(path)
    return 0


def _cmd_replay(args) -> int:
    """Rebuild a ZO run's final weights from the base model and its train log."""
    from zoharness.replay import replay_run

    replay_run(args.run_dir, args.model_ref, out_dir=args.out)
    print(f"replayed weights written to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoharness", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list built-in models, tasks and methods").set_defaults(fn=_cmd_list)

    s = sub.add_parser("check-config", help="validate a suite config")
    s.add_argument("config")
    s.set_defaults(fn=_cmd_check_config)

    s = sub.add_parser("prepare-model", help="materialise a model source into a local folder")
    s.add_argument("--slug", required=True)
    s.add_argument("--source", required=True)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(fn=_cmd_prepare_model)

    s = sub.add_parser("split", help="sample train/dev/test (MeZO protocol) and write the split manifest")
    s.add_argument("--task", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--data-dir", required=True)
    s.add_argument("--num-train", type=int, required=True)
    s.add_argument("--num-dev", type=lambda v: None if v in ("None", "null", "") else int(v), default=None)
    s.add_argument("--num-test", type=int, required=True)
    s.add_argument("--source", choices=("offline", "online"), default="offline")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_split)

    s = sub.add_parser("fetch-data", help="save a task's Hugging Face dataset as jsonl (online source)")
    s.add_argument("--task", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--hf-dataset", default="", help='override, "path[:config]"')
    s.set_defaults(fn=_cmd_fetch_data)

    s = sub.add_parser("run-config", help="write run_config.json (spec + split manifest hash)")
    s.add_argument("--spec", required=True, help="JSON of the resolved run spec")
    s.add_argument("--split", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_run_config)

    s = sub.add_parser("train", help="run or resume one run")
    s.add_argument("--run-config", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--model-ref", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--input", action="append", default=[], help="NAME=PATH, a method's extra input file")
    s.set_defaults(fn=_cmd_train)

    s = sub.add_parser("sensitivity", help="squared gradients of the eligible weights on a corpus")
    s.add_argument("--model-ref", required=True)
    s.add_argument("--corpus", required=True, help="wiki-passages | c4 | task-<task>-<suite>")
    s.add_argument("--data-dir", default=None)
    s.add_argument("--split", default=None, help="split manifest (task-gradient corpora)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_sensitivity)

    s = sub.add_parser("mask", help="select a sparse mask from sensitivity scores (or at random)")
    s.add_argument("--model-ref", required=True)
    s.add_argument("--corpus", required=True)
    s.add_argument("--density", type=float, required=True)
    s.add_argument("--selection", default="global")
    s.add_argument("--sensitivity", default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_mask)

    s = sub.add_parser("table", help="build result tables from metrics.json files")
    s.add_argument("--suite", required=True)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("--out-runs-csv", required=True)
    s.add_argument("metrics", nargs="+")
    s.set_defaults(fn=_cmd_table)

    s = sub.add_parser("scorecard", help="a paper's reference numbers beside ours")
    s.add_argument("--suite", required=True)
    s.add_argument("--reference", required=True)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("metrics", nargs="*")
    s.set_defaults(fn=_cmd_scorecard)

    s = sub.add_parser("figures", help="loss curves and accuracy bars from a table and train logs")
    s.add_argument("--suite", required=True)
    s.add_argument("--table", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("logs", nargs="+")
    s.set_defaults(fn=_cmd_figures)

    s = sub.add_parser("sparse-figures", help="accuracy vs density and memory by component (sparse ZO)")
    s.add_argument("--suite", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("metrics", nargs="+")
    s.set_defaults(fn=_cmd_sparse_figures)

    s = sub.add_parser("mask-table", help="a table of the masks a suite uses, from their stats files")
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("stats", nargs="+")
    s.set_defaults(fn=_cmd_mask_table)

    s = sub.add_parser(
        "rephrase", help="rewrite a task's training split with an LLM rewriter + judge (cached)"
    )
    s.add_argument(
        "--rewriter", required=True, help="rewriter name (built-in or from the suite's rewriters:)"
    )
    s.add_argument("--settings", help="the rewriter's resolved settings as JSON (default: the built-in ones)")
    s.add_argument("--split", required=True)
    s.add_argument("--data-dir", required=True)
    s.add_argument("--out", required=True, help="rephrased examples (.jsonl)")
    s.add_argument("--stats", required=True, help="per-task statistics (.json)")
    s.add_argument("--cache-dir", default="resources/rephrase-cache")
    s.add_argument("--server-log", help="where the local server writes its log")
    s.add_argument(
        "--threads", type=int, help="CPU threads of the local server (unless the settings fix them)"
    )
    s.set_defaults(fn=_cmd_rephrase)

    s = sub.add_parser("rephrase-table", help="acceptance/tokens/cost table from the rephrase stats")
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("stats", nargs="+")
    s.set_defaults(fn=_cmd_rephrase_table)

    s = sub.add_parser("rephrase-figure", help="rephrased-data runs vs MeZO: accuracy, loss, acceptance")
    s.add_argument("--suite", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--stats", nargs="+", required=True)
    s.set_defaults(fn=_cmd_rephrase_figure)

    s = sub.add_parser("replay", help="rebuild a ZO run's final weights from its train log")
    s.add_argument("--run-dir", required=True)
    s.add_argument("--model-ref", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_replay)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (DataError, BackendUnavailableError, FileNotFoundError, ValueError) as e:
        print(f"zoharness {args.command}: error: {e}", file=sys.stderr)
        return 2
