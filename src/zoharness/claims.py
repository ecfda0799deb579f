"""Verdicts on a suite's paper claims, from the runs' per-example test results.

A suite's `claims:` (zoharness.config) each compare two of its variants, e.g. "MeZO > zero-shot". A table
cell is a mean, and whether two means differ depends on the noise behind them, so the verdict needs every
test example's metric, not the mean: zoharness.verdicts.judge takes them as [n_seeds, n_examples].

Runs do not store per-example scores; they store their predictions (predictions.json: the candidate index,
or the generated answer). This module re-derives each example's score from the prediction and the split's
test examples, with the metric the training loop used (train.evaluate_prompts: argmax candidate in
`Prompt.correct`, or SQuAD-style F1 over `Prompt.answers`), and refuses to go on unless the mean equals the
run's own metrics.json test_score: the re-derivation is checked, not trusted.

Cells and pairing (what `judge` expects):
  * a cell is one (model, task, variant): its runs' vectors stacked over seeds in seed order. Every seed
    is scored on the same test examples (zoharness.data samples the test set with a fixed seed), which is
    checked, so column j is the same example in every row and in both cells of a claim;
  * a one-seed cell (a deterministic baseline such as zero-shot) is broadcast by `judge` against the
    other; two cells with several seeds are paired on the seeds both have, and n_a, n_b in the table are
    the seeds used.

Pandas and numpy only at import (no torch): scipy comes with zoharness.verdicts when a table is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zoharness.io import DataError, check_artifact_format, read_json, sha256_file, write_text_atomic

# Fixed so a rerun on the same runs writes the same table (judge is deterministic for a given seed).
BOOTSTRAP_SEED = 0
N_RESAMPLES = 10_000
CONFIDENCE = 0.95
# The mean of the re-derived scores against metrics.json's test_score: both are means of the same floats,
# summed in another order at most (sum / n there, numpy's pairwise sum here).
SCORE_TOLERANCE = 1e-9

COLUMNS = [
    "paper",
    "claim",
    "source",
    "model",
    "task",
    "a",
    "b",
    "n_a",
    "n_b",
    "n_examples",
    "direction",
    "margin",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "mde",
    "verdict",
    "ci_verdict",
    "a_variant",
    "b_variant",
]
# The verdict of a claim with a one-seed cell of a seed-dependent (trained) method: its CI misses the
# seed-to-seed spread, so it decides nothing; "ci_verdict" keeps what the interval alone would say.
AT_N1 = "inconclusive at n=1"


@dataclass(frozen=True)
class RunScores:
    """One run's test metric per example, in the split's test order."""

    run_dir: str
    suite: str
    model: str
    task: str
    variant: str
    method: str
    seed: int
    ids: tuple[str, ...]
    scores: np.ndarray  # [n_examples], metric units (0/1 correctness or F1 in [0, 1])
    label: str = ""  # the variant's table label (a claim may name it: the best variant on dev)
    dev_score: float = math.nan


def split_manifest_path(splits_root, task: str, seed: int) -> Path:
    """Where the workflow writes a split manifest below results/<suite>/splits (rules/common.smk SPLIT)."""
    return Path(splits_root) / task / f"seed{seed}.json"


def split_test_examples(manifest_path, data_dir) -> list:
    """The split's test examples, rebuilt from the data files and checked against the manifest's hashes.

    Only the test file is read: load_split on the whole manifest would also read and render the train
    pool (67k lines for SST-2, about a second per manifest) for examples no verdict uses."""
    from zoharness.data import load_split
    from zoharness.tasks import get_task

    manifest = read_json(manifest_path)
    task = get_task(manifest["task"])
    # A planted trigger (data.plant) edits training examples only: with no train pool read, it has nothing to
    # apply to, and the test examples are the data file's either way.
    unplanted = {k: v for k, v in manifest.items() if k not in ("plant", "planted")}
    test_file = task.file("test", manifest.get("source", "offline"))
    test_only = {
        **unplanted,
        "files": {test_file: manifest["files"].get(test_file)},
        "splits": {"train": [], "dev": [], "test": manifest["splits"]["test"]},
    }
    return load_split(test_only, data_dir, str(manifest_path)).test


def _score(task, example, prediction, where: str) -> float:
    """One example's metric, as train.evaluate_prompts computes it (the method's eval prompts change only
    the context, never the candidates, `correct` or the answers)."""
    from zoharness.answer_metrics import f1_score
    from zoharness.tasks.base import GENERATION

    prompt = task.prompt(example)
    if task.kind == GENERATION:
        if not isinstance(prediction, str):
            raise DataError(f"{where}: a generated answer (string) was expected, got {prediction!r}")
        return f1_score(prediction, prompt.answers)
    # bool is an int in Python; an index of True is a writer's bug, not candidate 1.
    if isinstance(prediction, bool) or not isinstance(prediction, int):
        raise DataError(f"{where}: a candidate index (integer) was expected, got {prediction!r}")
    if not 0 <= prediction < len(prompt.candidates):
        raise DataError(f"{where}: candidate index {prediction} outside {len(prompt.candidates)} candidates")
    return 1.0 if prediction in prompt.correct else 0.0


def run_scores(run_dir, data_dir, splits_root, cache: dict | None = None) -> RunScores:
    """Re-derive a run's per-example test scores (see the module doc); every check names the file."""
    from zoharness.tables import read_metrics
    from zoharness.tasks import get_task

    run_dir = Path(run_dir)
    config_path, predictions_path = run_dir / "run_config.json", run_dir / "predictions.json"
    metrics_path = run_dir / "metrics.json"
    cfg = check_artifact_format(read_json(config_path), config_path)
    try:
        task_name, seed = cfg["task"], int(cfg["seed"])
        suite, model, variant, method = cfg["suite"], cfg["model"], cfg["variant"], cfg["method"]
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{config_path}: no usable suite/task/seed/model/variant/method ({e!r})") from None

    manifest_path = split_manifest_path(splits_root, task_name, seed)
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: split manifest of {run_dir} not found")
    recorded = cfg.get("split_sha256")
    if recorded is not None and recorded != sha256_file(manifest_path):
        raise DataError(
            f"{config_path}: the run was trained on another split than {manifest_path} (split_sha256 "
            f"differs); rerun the workflow so the run and its split agree"
        )
    # Runs of one seed share a manifest: `cache` (manifest path -> test examples) reads it once per table.
    cache = {} if cache is None else cache
    key = str(manifest_path)
    if key not in cache:
        cache[key] = split_test_examples(manifest_path, data_dir)
    examples = cache[key]

    predictions = read_json(predictions_path)
    test = predictions.get("test") if isinstance(predictions, dict) else None
    if not isinstance(test, list) or not all(isinstance(p, dict) and "id" in p for p in test):
        raise DataError(f"{predictions_path}: expected {{'test': [{{'id', 'prediction'}}, ...]}}")
    ids = [p["id"] for p in test]
    expected = [ex.uid for ex in examples]
    if ids != expected:
        first = next(
            (i for i, (x, y) in enumerate(zip(ids, expected, strict=False)) if x != y),
            min(len(ids), len(expected)),
        )
        raise DataError(
            f"{predictions_path}: test prediction ids differ from the split's test ids ({manifest_path}): "
            f"{len(ids)} predictions for {len(expected)} examples, first difference at position {first} "
            f"({(ids + [None])[first]!r} for {(expected + [None])[first]!r})"
        )

    task = get_task(task_name)
    scores = np.array(
        [
            _score(task, ex, p.get("prediction"), f"{predictions_path}: test[{i}] (id {ex.uid!r})")
            for i, (ex, p) in enumerate(zip(examples, test, strict=True))
        ],
        dtype=float,
    )
    metrics = read_metrics(metrics_path)
    reported = metrics.get("test_score")
    mean = float(scores.mean())
    if not isinstance(reported, int | float) or not math.isclose(
        mean, reported, rel_tol=0, abs_tol=SCORE_TOLERANCE
    ):
        raise DataError(
            f"{metrics_path}: test_score {reported!r} differs from {mean!r}, the mean of the per-example "
            f"scores re-derived from {predictions_path}; the predictions and metrics of this run disagree"
        )
    dev_score = metrics.get("dev_score")
    return RunScores(
        str(run_dir),
        suite,
        model,
        task_name,
        variant,
        method,
        seed,
        tuple(expected),
        scores,
        label=str(cfg.get("label", variant)),
        dev_score=math.nan if dev_score is None else float(dev_score),
    )


def cells(runs: list[RunScores]) -> dict[tuple[str, str, str], dict[int, RunScores]]:
    """(model, task, variant) -> {seed: run}, keys in the order the runs came; one run per seed."""
    out: dict[tuple[str, str, str], dict[int, RunScores]] = {}
    for run in runs:
        cell = out.setdefault((run.model, run.task, run.variant), {})
        if run.seed in cell:
            raise DataError(
                f"{run.run_dir} and {cell[run.seed].run_dir}: two runs of {run.model} · {run.task} · "
                f"{run.variant} with seed {run.seed}"
            )
        cell[run.seed] = run
    return out


def resolve_side(name: str, model: str, task: str, by_cell: dict, what: str) -> str:
    """The variant a claim's side names on (model, task): the variant itself; or, for a label several
    variants share (a learning-rate grid shown as one row, "MeZO") or else a method's registry name whose
    variants carry labels of their own (the method zoo's "mezo" over "MeZO lr=1e-5" and "MeZO lr=3e-5"),
    the one with the best mean dev score over its seeds (as the paper picks its grid point; ties: the first
    in run order). Test never decides. Variant names win over labels, labels over methods."""
    if (model, task, name) in by_cell:
        return name
    here = [
        (variant, next(iter(cell.values())))
        for (m, t, variant), cell in by_cell.items()
        if (m, t) == (model, task)
    ]
    labelled = [variant for variant, run in here if run.label == name] or [
        variant for variant, run in here if run.method == name
    ]
    if not labelled:
        raise DataError(f"{what}: no runs of variant, label or method {name!r} among the run folders given")
    dev = {v: float(np.mean([run.dev_score for run in by_cell[model, task, v].values()])) for v in labelled}
    if any(math.isnan(d) for d in dev.values()):
        raise DataError(f"{what}: {name!r} names {labelled}, but not every run has a dev score to pick by")
    return max(labelled, key=lambda v: (dev[v], -labelled.index(v)))


def cell_matrix(cell: dict[int, RunScores], seeds=None) -> tuple[np.ndarray, tuple[str, ...]]:
    """The cell's scores over `seeds` (default all, sorted) as [n_seeds, n_examples], and the test ids."""
    seeds = sorted(cell) if seeds is None else list(seeds)
    runs = [cell[s] for s in seeds]
    ids = runs[0].ids
    for run in runs[1:]:
        if run.ids != ids:
            raise DataError(
                f"{run.run_dir} and {runs[0].run_dir}: seeds of one cell were scored on different test "
                "examples; the harness samples one fixed test set, so the splits disagree"
            )
    return np.stack([run.scores for run in runs]), ids


def paired(cell_a: dict[int, RunScores], cell_b: dict[int, RunScores], what: str):
    """(A, B, n_a, n_b) for judge: a one-seed cell as it is (judge broadcasts it), otherwise the seeds
    both cells have, sorted so that row i of A and of B is the same seed."""
    if len(cell_a) == 1 or len(cell_b) == 1:
        seeds_a, seeds_b = sorted(cell_a), sorted(cell_b)
    else:
        seeds_a = seeds_b = sorted(set(cell_a) & set(cell_b))
        if not seeds_a:
            raise DataError(
                f"{what}: a has seeds {sorted(cell_a)} and b has seeds {sorted(cell_b)}, none in common; "
                "seeds are paired, so give both variants a common seed (or one of them a single seed)"
            )
    (a, ids_a), (b, ids_b) = cell_matrix(cell_a, seeds_a), cell_matrix(cell_b, seeds_b)
    if ids_a != ids_b:
        raise DataError(f"{what}: a and b were scored on different test examples; examples are paired")
    return a, b, len(seeds_a), len(seeds_b)


REQUIRED_KEYS = ("name", "paper", "a", "b", "direction", "source")


def parse_claims(text: str, where: str = "--claims-json") -> list[dict]:
    """A suite's `claims:` as JSON (what the workflow passes, already validated by zoharness.config),
    checked for the keys a table row needs so a hand-written list fails with a message, not a KeyError."""
    import json

    try:
        claims = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg} at position {e.pos})") from None
    if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
        raise DataError(f"{where}: expected a JSON list of claims (objects), got {text[:80]!r}")
    for i, claim in enumerate(claims):
        missing = [k for k in REQUIRED_KEYS if k not in claim]
        if missing:
            raise DataError(f"{where}: claim {i} ({claim.get('name')!r}) lacks {missing}")
    return claims


def verdict_table(
    claims: list[dict],
    run_dirs,
    data_dir,
    splits_root,
    *,
    suite: str | None = None,
    n_resamples: int = N_RESAMPLES,
) -> pd.DataFrame:
    """One row per claim x model x task (columns: COLUMNS), from the runs in `run_dirs`.

    `claims` are a validated suite's `claims:` entries (zoharness.config: margin and tasks filled in; a
    claim without tasks is tested on every task the runs have). Effects and intervals in metric units.
    With `suite`, a run of another suite is refused (its variants could share names with this one's)."""
    from zoharness.verdicts import Claim, judge

    cache: dict = {}
    runs = [run_scores(d, data_dir, splits_root, cache) for d in run_dirs]
    for run in runs:
        if suite is not None and run.suite != suite:
            raise DataError(f"{run.run_dir}/run_config.json: a run of suite {run.suite!r}, not {suite!r}")
    by_cell = cells(runs)
    models = list(dict.fromkeys(model for model, _, _ in by_cell))
    run_tasks = list(dict.fromkeys(task for _, task, _ in by_cell))
    rows = []
    for spec in claims:
        claim = Claim(spec["name"], spec["a"], spec["b"], spec["direction"], float(spec.get("margin", 0)))
        for model in models:
            for task in spec.get("tasks") or run_tasks:
                what = f"claim {claim.name!r} on {model} · {task}"
                va, vb = (resolve_side(side, model, task, by_cell, what) for side in (claim.a, claim.b))
                a, b, n_a, n_b = paired(by_cell[model, task, va], by_cell[model, task, vb], what)
                v = judge(claim, a, b, n_resamples=n_resamples, confidence=CONFIDENCE, seed=BOOTSTRAP_SEED)
                one_seed = [
                    variant
                    for variant, n in ((va, n_a), (vb, n_b))
                    if n == 1 and not _seed_independent(by_cell[model, task, variant])
                ]
                rows.append(
                    {
                        "paper": spec["paper"],
                        "claim": claim.name,
                        "source": spec["source"],
                        "model": model,
                        "task": task,
                        "a": claim.a,
                        "b": claim.b,
                        "n_a": n_a,
                        "n_b": n_b,
                        "n_examples": v.n_examples,
                        "direction": claim.direction,
                        "margin": claim.margin,
                        "effect": v.effect,
                        "ci_low": v.ci_low,
                        "ci_high": v.ci_high,
                        # A one-seed trained cell tests nothing about training: no p-value to misread.
                        "p_value": math.nan if one_seed else v.p_value,
                        "mde": v.mde,
                        # One seed of a trained method: the interval covers test-example noise only,
                        # and one seed never shows that a method is better, whatever the interval says.
                        "verdict": AT_N1 if one_seed else v.verdict,
                        "ci_verdict": v.verdict,
                        "a_variant": va,
                        "b_variant": vb,
                    }
                )
    return pd.DataFrame(rows, columns=COLUMNS)


def _seed_independent(cell: dict[int, RunScores]) -> bool:
    from zoharness.methods import get_method

    return all(getattr(get_method(run.method), "SEED_INDEPENDENT", False) for run in cell.values())


def _pp(x: float, sign: bool = True) -> str:
    """Metric units as percentage points, one decimal ("+20.2"); a rounded -0.0 prints as +0.0 (or 0.0)."""
    value = round(100 * x, 1) + 0.0
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def _p(p: float) -> str:
    return "–" if p is None or math.isnan(p) else f"{p:.2g}"


def _cell(text) -> str:
    """Free text from the suite config in a markdown table cell: a "|" would end the cell."""
    return str(text).replace("|", "\\|")


def _side(name: str, variant) -> str:
    """A claim's side as tested: a label shows the variant dev picked for it."""
    return name if not isinstance(variant, str) or variant in ("", name) else f"{name} ({variant}, best dev)"


def _statement(r) -> str:
    a, b = _side(r.a, getattr(r, "a_variant", None)), _side(r.b, getattr(r, "b_variant", None))
    if r.direction == "≈":
        return f"{a} ≈ {b} (±{_pp(r.margin, sign=False)})"
    if r.margin:
        sign = "+" if r.direction == ">" else "−"
        return f"{a} {r.direction} {b} {sign} {_pp(r.margin, sign=False)}"
    return f"{a} {r.direction} {b}"


def _verdict(r) -> str:
    if r.verdict == AT_N1:
        return f"**{AT_N1}** (CI alone: {r.ci_verdict})"
    return f"**{r.verdict}**"


def to_markdown(df: pd.DataFrame, suite: str | None = None) -> str:
    """The verdict table for people: percentage points, the interval beside the effect, bold verdicts."""
    title = f"# Claims: suite `{suite}`" if suite else "# Claims"
    lines = [
        title,
        "",
        "Each row tests one paper claim on one model and task. effect = mean(a) − mean(b) of the test metric "
        "(accuracy, or F1 for generation tasks) in percentage points (pp). n (a, b): the seeds of a and of b "
        "used (two cells with several seeds are paired on the seeds both have; a one-seed cell is compared "
        "with every seed of the other); examples: the test examples every seed is scored on (the same ones "
        "for a and b, so the comparison is paired).",
        "",
        f"CI: {CONFIDENCE:.0%} paired percentile bootstrap over test examples and seeds "
        f"({N_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}). p: paired sign-flip permutation test of the "
        "per-example differences against the claim's margin (TOST for ≈). MDE: the smallest effect beyond "
        "the margin this n would detect with 80% power. The verdict comes from the 95% CI alone: "
        "supported when it lies beyond the margin on the claim's side (inside ±margin for ≈), contradicted "
        "when it lies entirely on the other side of the margin (outside ±margin for ≈), else inconclusive.",
        "",
        "A one-seed cell carries no seed-to-seed spread. That is exact for a method whose predictions do not "
        "depend on the seed (zero-shot on the fixed test sample), but one seed of a trained method never "
        "shows that it is better: such a row reads **inconclusive at n=1**, with what the interval alone "
        "(test-example noise only) would say beside it.",
        "",
        "Built from the runs' predictions.json (scores re-derived and checked against metrics.json) by "
        "`zoharness verdicts`.",
        "",
        "| paper | claim | tested | source | model | task | n (a, b) | examples | effect [95% CI] (pp) "
        "| MDE (pp) | p | verdict |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in df.itertuples():
        ci = f"{_pp(r.effect)} [{_pp(r.ci_low)}, {_pp(r.ci_high)}]"
        lines.append(
            f"| {_cell(r.paper)} | {_cell(r.claim)} | {_statement(r)} | {_cell(r.source)} | "
            f"{r.model} | {r.task} | {r.n_a}, {r.n_b} | "
            f"{r.n_examples} | {ci} | {_pp(r.mde, sign=False)} | {_p(r.p_value)} | {_verdict(r)} |"
        )
    if df.empty:
        lines += ["", "This suite declares no claims (`claims:` in its config)."]
    return "\n".join(lines) + "\n"


def write_verdicts(claims, run_dirs, data_dir, splits_root, suite: str, out_csv, out_md) -> pd.DataFrame:
    df = verdict_table(claims, run_dirs, data_dir, splits_root, suite=suite)
    write_text_atomic(out_csv, df.to_csv(index=False))
    write_text_atomic(out_md, to_markdown(df, suite))
    return df
