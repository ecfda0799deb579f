"""`zoharness influence-cache | influence-retrieve | influence-table`: the CLI the influence rules call
(rules/influence.smk). Heavy imports happen inside the commands, so `zoharness --help` stays fast."""

from __future__ import annotations

import json


def _settings(text: str) -> dict:
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--settings is not JSON (the suite's influence block): {e}") from None
    if not isinstance(settings, dict):
        raise ValueError("--settings must be a JSON object (the suite's influence block)")
    return settings


def _cmd_cache(args) -> int:
    from zoharness.influence.explain import cache_stage

    cache_stage(args.run_dir, args.split, args.model_ref, _settings(args.settings), args.out, args.threads)
    return 0


def _cmd_retrieve(args) -> int:
    from zoharness.influence.explain import retrieve_stage

    summary = retrieve_stage(
        args.run_dir,
        args.split,
        args.model_ref,
        _settings(args.settings),
        args.cache,
        args.out_dir,
        args.threads,
    )
    print(json.dumps({k: summary[k] for k in ("backdoor", "timing")}, indent=1))
    return 0


def _cmd_tokens(args) -> int:
    from zoharness.influence.explain import tokens_stage

    doc = tokens_stage(
        args.run_dir, args.split, args.model_ref, _settings(args.settings), args.topk, args.out, args.threads
    )
    print(f"token-wise influence of {len(doc['queries'])} queries' top examples in {doc['seconds']:.1f} s")
    return 0


def _cmd_table(args) -> int:
    from zoharness.influence.report import token_figure, validation_figure, write_validation_table

    if len(args.scores) != len(args.summaries):
        raise ValueError(f"{len(args.scores)} --scores files but {len(args.summaries)} --summaries")
    write_validation_table(args.scores, args.summaries, args.out_csv, args.out_md)
    if args.figure_dir:
        validation_figure(args.scores, args.figure_dir)
        if args.tokens:
            token_figure(args.tokens, args.figure_dir)
    return 0


def _cmd_rephrase(args) -> int:
    from zoharness.influence.rephrased import write_rephrase_influence

    table = write_rephrase_influence(
        args.scores, args.rephrased, args.out_csv, args.out_md, args.baseline_scores
    )
    print(table.to_string(index=False))
    return 0


def _run_args(s) -> None:
    s.add_argument("--run-dir", required=True, help="results/<suite>/<model>/<task>/<variant>/seed<seed>")
    s.add_argument("--split", required=True, help="the run's split manifest")
    s.add_argument("--model-ref", required=True, help="the base model's model_ref.json")
    s.add_argument("--settings", required=True, help="the suite's influence block as JSON")
    s.add_argument("--threads", type=int, help="torch CPU threads")


def register(sub) -> None:
    s = sub.add_parser("influence-cache", help="RapidIn: sketch every training example's gradient of a run")
    _run_args(s)
    s.add_argument("--out", required=True, help="the cache (.safetensors)")
    s.set_defaults(fn=_cmd_cache)

    s = sub.add_parser("influence-retrieve", help="RapidIn: score a run's queries against its cache")
    _run_args(s)
    s.add_argument("--cache", required=True, help="the run's cache (influence-cache --out)")
    s.add_argument("--out-dir", required=True, help="scores.safetensors, topk.json, summary.json go here")
    s.set_defaults(fn=_cmd_retrieve)

    s = sub.add_parser(
        "influence-tokens", help="RapidIn: token-wise influence of the top examples of a retrieval"
    )
    _run_args(s)
    s.add_argument("--topk", required=True, help="the retrieval's topk.json")
    s.add_argument("--out", required=True, help="tokens.json")
    s.set_defaults(fn=_cmd_tokens)

    s = sub.add_parser("influence-table", help="RapidIn validation: planted examples found, fidelity, timing")
    s.add_argument("--scores", nargs="+", required=True)
    s.add_argument("--summaries", nargs="+", required=True)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("--tokens", nargs="*", default=[], help="tokens.json files: the token-wise figure too")
    s.add_argument("--figure-dir", help="also the precision-recall figure (and the token figure) here")
    s.set_defaults(fn=_cmd_table)

    s = sub.add_parser(
        "influence-rephrase", help="RapidIn on an OAT-Rephrase run: rephrased vs original examples' influence"
    )
    s.add_argument("--scores", required=True, help="the rephrase run's scores.safetensors")
    s.add_argument("--rephrased", required=True, help="the rephrased set the run trained on (.jsonl)")
    s.add_argument(
        "--baseline-scores", help="the plain MeZO run's scores.safetensors (same seed and queries)"
    )
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.set_defaults(fn=_cmd_rephrase)
