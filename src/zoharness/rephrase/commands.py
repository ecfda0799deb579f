"""MeZO+OAT-Rephrase's subcommands of `python -m zoharness` (registered through the method modules'
COMMANDS hook; its rule file rules/methods/mezo_oat_rephrase.smk calls them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


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


def _cmd_rephrase_table(args) -> int:
    from zoharness.rephrase.reports import write_rephrase_table

    write_rephrase_table(args.stats, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def _cmd_rephrase_figure(args) -> int:
    from zoharness.rephrase.reports import rephrase_figures

    for path in rephrase_figures(args.runs, args.curves, args.table, args.out_dir, args.suite, args.methods):
        print(path)
    return 0


def register(sub) -> None:
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

    s = sub.add_parser(
        "rephrase-figure", help="rephrased-data runs vs their baseline: accuracy, loss, acceptance"
    )
    s.add_argument("--suite", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--runs", required=True, help="the suite's runs table (<suite>-runs.csv)")
    s.add_argument("--curves", required=True, help="the suite's curves table (<suite>-curves.csv)")
    s.add_argument("--table", required=True, help="the rephrase table (<suite>-rephrase.csv)")
    s.add_argument("--methods", nargs="+", required=True, help="method ids to show, baseline first")
    s.set_defaults(fn=_cmd_rephrase_figure)
