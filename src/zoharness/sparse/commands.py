"""sparse-ZO-int4's subcommands of `python -m zoharness` (registered through the method module's
COMMANDS hook; its rule file rules/methods/sparse_zo_int4.smk calls them)."""

from __future__ import annotations

import json
from pathlib import Path


def _cmd_sensitivity(args) -> int:
    import torch

    from zoharness.sparse.pipeline import sensitivity

    if args.threads:
        torch.set_num_threads(args.threads)
    info = sensitivity(args.model_ref, args.corpus, args.out, args.data_dir, args.split, args.device)
    print(json.dumps({k: v for k, v in info.items() if k != "shapes"}, indent=2))
    return 0


def _cmd_mask(args) -> int:
    from zoharness.sparse.pipeline import build_mask, copy_cached_mask

    if args.from_cache:
        stats = copy_cached_mask(
            args.model_ref, args.corpus, args.density, args.selection, args.from_cache, args.out
        )
    else:
        stats = build_mask(
            args.model_ref, args.corpus, args.density, args.selection, args.out, args.sensitivity
        )
    print(json.dumps({k: v for k, v in stats.items() if not k.startswith("per_")}, indent=2))
    return 0


def _cmd_mask_table(args) -> int:
    from zoharness.sparse.reports import write_mask_table

    write_mask_table(args.stats, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def _cmd_sparse_figures(args) -> int:
    from zoharness.sparse.reports import sparse_figures

    for p in sparse_figures(args.details, args.out_dir, args.suite, args.dense):
        print(p)
    return 0


def register(sub) -> None:
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
    s.add_argument(
        "--from-cache", default=None, help="a committed mask (resources/mask-cache/...) to check and install"
    )
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_mask)

    s = sub.add_parser("mask-table", help="a table of the masks a suite uses, from their stats files")
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("stats", nargs="+")
    s.set_defaults(fn=_cmd_mask_table)

    s = sub.add_parser("sparse-figures", help="accuracy vs density and memory by component (sparse ZO)")
    s.add_argument("--suite", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--details", required=True, help="the suite's details table (<suite>-details.csv)")
    s.add_argument("--dense", default=None, help="method id drawn at density 1 (the dense baseline)")
    s.set_defaults(fn=_cmd_sparse_figures)
