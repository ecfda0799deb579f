"""`python -m zoharness <command>`: every Snakemake rule calls one of these, so every step also runs
(and is tested) without Snakemake."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoharness.influence import commands as influence_commands
from zoharness.io import BackendUnavailableError, DataError, read_json, sha256_file, write_json_atomic


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
    from zoharness.data import accepting_data_changes, make_split, refuse_changed_split

    plant = json.loads(args.plant) if args.plant else None
    k_shot = json.loads(args.k_shot) if args.k_shot else None
    manifest = make_split(
        args.task,
        args.data_dir,
        args.seed,
        args.num_train,
        args.num_dev,
        args.num_test,
        args.source,
        plant,
        k_shot,
    )
    if Path(args.out).exists():  # frozen: rewritten with the same content, or for another request
        accept = args.accept_data_changes or accepting_data_changes()
        change = refuse_changed_split(read_json(args.out), manifest, args.out, args.data_dir, accept)
        if change:
            print(f"accepted data change; resampled:\n{change}")
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
        args.run_config,
        args.split,
        args.model_ref,
        args.out_dir,
        threads=args.threads,
        inputs=inputs,
        gpus=args.gpus,
        memory_estimate_gb=args.memory_estimate_gb,
    )
    keys = ("metric", "dev_score", "test_score", "steps", "train_time_s", "step_latency_median_s")
    print(json.dumps({k: metrics[k] for k in keys}))
    return 0


def _cmd_table(args) -> int:
    from zoharness.tables import write_details, write_tables

    write_tables(args.metrics, args.suite, args.out_csv, args.out_md, args.out_runs_csv)
    write_details(args.metrics, args.out_details_csv)
    print(Path(args.out_md).read_text())
    return 0


def _cmd_curves(args) -> int:
    from zoharness.tables import write_curves

    curves = write_curves(args.logs, args.out_csv)
    print(f"{args.out_csv}: {len(curves)} steps of {curves.groupby(['variant', 'seed']).ngroups} runs")
    if args.out_checkpoints_csv:
        from zoharness.tables import write_checkpoints

        table = write_checkpoints(
            [Path(p).parent / "metrics.json" for p in args.logs], args.out_checkpoints_csv
        )
        print(f"{args.out_checkpoints_csv}: {len(table)} checkpoints")
    return 0


def _cmd_scorecard(args) -> int:
    from zoharness.scorecard import write_scorecard

    write_scorecard(args.metrics, args.reference, args.suite, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def _cmd_verdicts(args) -> int:
    from zoharness.claims import parse_claims, write_verdicts

    claims = parse_claims(args.claims_json)
    df = write_verdicts(
        claims, args.run_dirs, args.data_dir, args.splits_root, args.suite, args.out_csv, args.out_md
    )
    print(f"{args.out_md}: {len(df)} verdict(s) on {len(claims)} claim(s) from {len(args.run_dirs)} runs")
    print(Path(args.out_md).read_text())
    return 0


def _cmd_figures(args) -> int:
    from zoharness.plotting import suite_figures

    for p in suite_figures(
        args.table, args.curves, args.out_dir, args.suite, args.checkpoints, args.claims, args.details
    ):
        print(p)
    return 0


def _cmd_kshot_figure(args) -> int:
    from zoharness.kshot_figure import write_kshot_figure

    for p in write_kshot_figure(args.table, args.out_dir, args.suite, args.reference):
        print(p)
    return 0


def _replay_upto(args) -> int | None:
    """--upto as a step count: "best" is the checkpoint the run reported (metrics.json best_step; all steps
    for a run written before checkpoints were recorded), "last" every logged step."""
    if args.upto == "last":
        return None
    if args.upto == "best":
        metrics_path = Path(args.run_dir) / "metrics.json"
        if not metrics_path.exists():
            raise DataError(f"{metrics_path}: not found; --upto best needs a completed run (or pass a step)")
        return read_json(metrics_path).get("best_step")
    try:
        upto = int(args.upto)
    except ValueError:
        raise DataError(f"--upto {args.upto!r}: expected best, last or a number of steps") from None
    if upto < 0:
        raise DataError(f"--upto {upto}: a number of steps must be >= 0")
    return upto


def _cmd_replay(args) -> int:
    """Rebuild a ZO run's weights from the base model and its train log (by default at the checkpoint the
    run reported); the base and every input are checked against what the run recorded, and
    replay_info.json says what was used."""
    from zoharness.replay import REPLAY_INFO, replay

    inputs = {}
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DataError(f"--input {item!r}: expected NAME=PATH")
        if name in inputs:
            raise DataError(f"--input {name}: given twice ({inputs[name]!r} and {path!r})")
        inputs[name] = path
    _, info = replay(args.run_dir, args.model_ref, out_dir=args.out, upto=_replay_upto(args), inputs=inputs)
    print(
        f"replayed {info['steps_replayed']} of {info['total_steps']} steps; weights written to {args.out} "
        f"(base and inputs used: {Path(args.out) / REPLAY_INFO})"
    )
    return 0


def _add_method_commands(sub) -> None:
    """Subcommands a method owns (its masks, rephrasings, reports): a method module names the module
    that registers them in COMMANDS (`register(subparsers)`); methods sharing a package share it."""
    import importlib

    from zoharness.methods import get_method, method_ids

    owners = {getattr(get_method(m), "COMMANDS", None) for m in method_ids()} - {None}
    for name in sorted(owners):
        importlib.import_module(name).register(sub)


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

    s = sub.add_parser(
        "split",
        help="sample train/dev/test (MeZO protocol) and write the split manifest; an existing --out is "
        "frozen: a resample that changes it because the data changed is refused",
    )
    s.add_argument("--task", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--data-dir", required=True)
    s.add_argument("--num-train", type=int, required=True)
    s.add_argument("--num-dev", type=lambda v: None if v in ("None", "null", "") else int(v), default=None)
    s.add_argument("--num-test", type=int, required=True)
    s.add_argument("--source", choices=("offline", "online"), default="offline")
    s.add_argument(
        "--plant", default="", help="JSON of the suite's data.plant (zoharness.plant); empty: none"
    )
    s.add_argument(
        "--k-shot",
        default="",
        help="JSON of the suite's data.k_shot (LM-BFF's k-shot sampling, zoharness.kshot); empty: MeZO's protocol",
    )
    s.add_argument("--out", required=True)
    s.add_argument(
        "--accept-data-changes",
        action="store_true",
        help="replace a frozen --out whose data changed (also: ZOHARNESS_ACCEPT_DATA_CHANGES=1)",
    )
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
    s.add_argument(
        "--gpus", type=int, default=1, help="the job's GPUs on CUDA (more than one: the model is spread)"
    )
    s.add_argument(
        "--memory-estimate-gb",
        type=float,
        default=None,
        help="the scheduler's device-memory estimate (zoharness.cluster), checked before loading on CUDA",
    )
    s.set_defaults(fn=_cmd_train)

    s = sub.add_parser("table", help="build result tables from metrics.json files")
    s.add_argument("--suite", required=True)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("--out-runs-csv", required=True)
    s.add_argument("--out-details-csv", required=True, help="every scalar of every run (long format)")
    s.add_argument("metrics", nargs="+")
    s.set_defaults(fn=_cmd_table)

    s = sub.add_parser("curves", help="the training loss of every logged step (long format)")
    s.add_argument("--out-csv", required=True)
    s.add_argument(
        "--out-checkpoints-csv", help="also the dev/test score at each checkpoint (from each metrics.json)"
    )
    s.add_argument("logs", nargs="+", help="train_log.jsonl files (the metrics.json beside each is read)")
    s.set_defaults(fn=_cmd_curves)

    s = sub.add_parser("scorecard", help="a paper's reference numbers beside ours")
    s.add_argument("--suite", required=True)
    s.add_argument("--reference", required=True)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("metrics", nargs="*")
    s.set_defaults(fn=_cmd_scorecard)

    s = sub.add_parser(
        "verdicts",
        help="judge the suite's paper claims from the runs' per-example test results (effect, CI, verdict)",
    )
    s.add_argument("--suite", required=True)
    s.add_argument("--claims-json", required=True, help="the suite's validated `claims:` as a JSON list")
    s.add_argument("--data-dir", required=True, help="the folder the splits' data files are read from")
    s.add_argument("--splits-root", required=True, help="results/<suite>/splits: <task>/seed<seed>.json")
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument(
        "run_dirs", nargs="*", help="run folders (run_config.json, predictions.json, metrics.json)"
    )
    s.set_defaults(fn=_cmd_verdicts)

    s = sub.add_parser("figures", help="loss curves and accuracy bars from the suite's tables")
    s.add_argument("--suite", required=True)
    s.add_argument("--table", required=True)
    s.add_argument("--curves", required=True)
    s.add_argument("--checkpoints", help="the checkpoints table (zoharness curves --out-checkpoints-csv)")
    s.add_argument("--claims", help="the claims table (zoharness verdicts)")
    s.add_argument(
        "--details", help="the run details table (zoharness table --out-details-csv): memory figure"
    )
    s.add_argument("--out-dir", required=True)
    s.set_defaults(fn=_cmd_figures)

    s = sub.add_parser("kshot-figure", help="accuracy against k (MeZO Figure 2) from a k-shot suite's table")
    s.add_argument("--suite", required=True)
    s.add_argument("--table", required=True)
    s.add_argument(
        "--reference", help="the paper suite's reference csv (overlaid; its std column as error bars)"
    )
    s.add_argument("--out-dir", required=True)
    s.set_defaults(fn=_cmd_kshot_figure)

    s = sub.add_parser("replay", help="rebuild a ZO run's weights from its train log")
    s.add_argument("--run-dir", required=True)
    s.add_argument("--model-ref", required=True, help="the run's base model (its hash is checked)")
    s.add_argument("--out", required=True)
    s.add_argument(
        "--upto",
        default="best",
        help="steps to replay: best (default: the best dev checkpoint, whose scores the run reports), "
        "last (every logged step) or a number",
    )
    s.add_argument(
        "--input",
        action="append",
        default=[],
        help="NAME=PATH, a method's extra input file (default: the path in the train log's header, "
        "from the current directory); its sha256 must match the header's",
    )
    s.set_defaults(fn=_cmd_replay)
    _add_method_commands(sub)
    influence_commands.register(sub)  # RapidIn (rules/influence.smk)
    return p


def _run_path(args) -> str | None:
    """The run a command works on: train's --out-dir, else the command's main path argument."""
    for name in ("out_dir", "run_dir", "out", "config", "out_csv"):
        value = getattr(args, name, None)
        if value:
            return str(value)
    return None


def _filesystem(path) -> str:
    """The mount point of the filesystem that holds `path` (or its nearest existing parent)."""
    import os

    p = os.path.abspath(path)
    while not os.path.exists(p):
        p = os.path.dirname(p)
    while not os.path.ismount(p):
        p = os.path.dirname(p)
    return p


def _param_type_error(args) -> str | None:
    """A TypeError in a run whose run_config.json holds parameters of the wrong type (written by
    hand, or before types were checked) becomes the parameter check's message; None otherwise."""
    from zoharness.methods import resolve_params

    run_dir = getattr(args, "run_dir", None)
    path = getattr(args, "run_config", None) or (run_dir and str(Path(run_dir) / "run_config.json"))
    if not path:
        return None
    try:
        cfg = json.loads(Path(path).read_text())
        method, params = cfg["method"], cfg["params"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        resolve_params(method, params, f"{path}: params")
    except ValueError as e:
        return f"{e}; fix the params in the suite config and rerun the workflow (it rewrites run_config.json)"
    except (TypeError, AttributeError):
        return None
    return None


def _known_failure(args, e: BaseException) -> str | None:
    """The one-line message for a failure of the run rather than of the code (a diverged loss, a full
    disk, a missing permission, a parameter of the wrong type); None for a bug (keep the traceback)."""
    import errno
    import os

    run = _run_path(args)
    where = (f"run {run}: " if args.command == "train" else f"{run}: ") if run else ""
    zo = sys.modules.get("zoharness.zo")  # loaded whenever it raised: no torch import here
    if zo is not None and isinstance(e, zo.NonFiniteLossError):
        return f"{where}{e}: lower lr or eps, or check the data"
    if isinstance(e, OSError) and e.errno is not None:
        path = e.filename or run or "."
        reason = e.strerror or os.strerror(e.errno)
        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            resume = ": the run resumes from its log" if args.command == "train" else ""
            return f"{where}{reason}: {path}: free space on {_filesystem(path)} and rerun{resume}"
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{where}{reason}: {path}: check write permission on {path}"
    if isinstance(e, TypeError):
        message = _param_type_error(args)
        return message and f"{where}{message}"
    return None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (DataError, BackendUnavailableError, FileNotFoundError, ValueError) as e:
        print(f"zoharness {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (FloatingPointError, OSError, TypeError) as e:
        message = _known_failure(args, e)
        if message is None:
            raise
        print(f"zoharness {args.command}: error: {message}", file=sys.stderr)
        return 2
