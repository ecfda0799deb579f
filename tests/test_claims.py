"""Claims: per-example scores re-derived from a run's predictions and split, cells paired over seeds, the
verdict table and its markdown, and the `zoharness verdicts` command. Runs are written by hand (no model),
on a real 12-example SST-2 split made by zoharness.data."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from tests.helpers import suite
from zoharness.claims import (
    AT_N1,
    COLUMNS,
    RunScores,
    paired,
    run_scores,
    split_manifest_path,
    split_test_examples,
    to_markdown,
    verdict_table,
)
from zoharness.cli import main
from zoharness.config import run_spec
from zoharness.data import make_split
from zoharness.io import ARTIFACT_FORMAT, DataError, sha256_file, write_json_atomic
from zoharness.tasks import get_task
from zoharness.verdicts import Claim, judge

N_TEST = 12
CLAIM = {
    "name": "mezo-beats-zero-shot",
    "paper": "MeZO",
    "a": "mezo",
    "b": "zero_shot",
    "direction": ">",
    "margin": 0.0,
    "source": "Table 1",
    "tasks": ["sst2"],
}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """results/<suite>/splits for seeds 0 and 1, and the (shared) test examples' gold labels."""
    root = tmp_path_factory.mktemp("splits")
    for seed in (0, 1):
        manifest = make_split("sst2", DATA, seed, num_train=16, num_dev=8, num_test=N_TEST)
        write_json_atomic(split_manifest_path(root, "sst2", seed), manifest)
    examples = split_test_examples(split_manifest_path(root, "sst2", 0), DATA)
    task = get_task("sst2")
    return root, [ex.uid for ex in examples], [task.prompt(ex).label for ex in examples]


def write_run(root, splits, variant, seed, correct, test_score=None, ids=None, label=None, dev_score=None):
    """A finished run's three files; `correct` = the first k test examples are predicted right. With
    `label`, the variant is a MeZO variant shown under that label (a grid point)."""
    splits_root, test_ids, labels = splits
    run_dir = root / variant / f"seed{seed}"
    entry = {} if label is None else {"method": "mezo", "label": label}
    cfg = suite({variant: entry}, seeds=[0, 1])
    spec = run_spec(cfg, "tiny-llama", "sst2", variant, seed)
    spec["split_sha256"] = sha256_file(split_manifest_path(splits_root, "sst2", seed))
    write_json_atomic(run_dir / "run_config.json", spec)
    right = np.arange(N_TEST) < correct
    preds = [lab if ok else 1 - lab for lab, ok in zip(labels, right, strict=True)]
    test = [{"id": i, "prediction": p} for i, p in zip(ids or test_ids, preds, strict=True)]
    write_json_atomic(run_dir / "predictions.json", {"dev": [], "test": test})
    score = right.mean() if test_score is None else test_score
    metrics = {
        "artifact_format": ARTIFACT_FORMAT,
        "suite": "t",
        "test_score": float(score),
        "dev_score": dev_score,
    }
    write_json_atomic(run_dir / "metrics.json", metrics)
    return run_dir


def test_scores_are_rederived_and_match_the_runs_test_score(tmp_path, splits):
    run_dir = write_run(tmp_path, splits, "mezo", 0, correct=9)
    run = run_scores(run_dir, DATA, splits[0])
    assert (run.model, run.task, run.variant, run.seed) == ("tiny-llama", "sst2", "mezo", 0)
    assert run.ids == tuple(splits[1])
    assert run.scores.tolist() == [1.0] * 9 + [0.0] * 3
    assert run.scores.mean() == json.loads((run_dir / "metrics.json").read_text())["test_score"]


def test_generation_is_scored_by_f1_and_classification_by_correct_candidate():
    from zoharness.claims import _score
    from zoharness.tasks.base import Example

    squad = get_task("squad")
    with open(DATA / "squad" / "validation.jsonl") as f:
        record = json.loads(f.readline())
    example = Example("test:0", record)
    gold = squad.prompt(example).answers[0]  # "Denver Broncos"
    assert _score(squad, example, gold, "w") == 1.0
    assert _score(squad, example, "the Broncos", "w") == pytest.approx(2 / 3)  # F1 of 1 token in 1 vs 2
    with pytest.raises(DataError, match=r"w: a generated answer \(string\) was expected, got 1"):
        _score(squad, example, 1, "w")
    sst2 = get_task("sst2")
    positive = Example("test:1", {"sentence": "great .", "label": 1, "idx": 1})
    assert [_score(sst2, positive, p, "w") for p in (1, 0)] == [1.0, 0.0]
    for bad in (True, 2, "1"):
        with pytest.raises(DataError, match=r"^w: "):
            _score(sst2, positive, bad, "w")


def test_prediction_ids_out_of_order_name_the_file(tmp_path, splits):
    ids = list(splits[1])
    ids[0], ids[1] = ids[1], ids[0]
    run_dir = write_run(tmp_path, splits, "mezo", 0, correct=9, ids=ids)
    with pytest.raises(
        DataError, match=r"mezo/seed0/predictions.json: test prediction ids differ .*position 0"
    ):
        run_scores(run_dir, DATA, splits[0])


def test_a_test_score_that_disagrees_is_refused_with_both_numbers(tmp_path, splits):
    run_dir = write_run(tmp_path, splits, "mezo", 0, correct=9, test_score=0.7)
    with pytest.raises(DataError, match=r"metrics.json: test_score 0.7 differs from 0.75"):
        run_scores(run_dir, DATA, splits[0])


def test_a_run_on_another_split_is_refused(tmp_path, splits):
    run_dir = write_run(tmp_path, splits, "mezo", 0, correct=9)
    spec = json.loads((run_dir / "run_config.json").read_text())
    write_json_atomic(run_dir / "run_config.json", {**spec, "split_sha256": "0" * 64})
    with pytest.raises(DataError, match=r"run_config.json: the run was trained on another split"):
        run_scores(run_dir, DATA, splits[0])


def test_claim_table_one_seed_against_two(tmp_path, splits):
    # zero-shot: 3/12 right (one seed); MeZO: 9/12 and 6/12 right (two seeds). The one-seed cell is
    # compared with each seed: effect = ((0.75 - 0.25) + (0.50 - 0.25)) / 2 = 0.375.
    dirs = [
        write_run(tmp_path, splits, "zero_shot", 0, correct=3),
        write_run(tmp_path, splits, "mezo", 0, correct=9),
        write_run(tmp_path, splits, "mezo", 1, correct=6),
    ]
    df = verdict_table([CLAIM], dirs, DATA, splits[0], suite="t")
    assert list(df.columns) == COLUMNS and len(df) == 1
    row = df.iloc[0]
    assert (row.model, row.task, row.a, row.b) == ("tiny-llama", "sst2", "mezo", "zero_shot")
    assert (row.n_a, row.n_b, row.n_examples) == (2, 1, N_TEST)
    assert row.effect == pytest.approx(0.375, abs=1e-12)

    right = np.arange(N_TEST)[None, :] < np.array([[9], [6]])
    expected = judge(
        Claim(CLAIM["name"], "mezo", "zero_shot", ">"),
        right.astype(float),
        (np.arange(N_TEST) < 3).astype(float)[None, :],
        n_resamples=10_000,
        seed=0,
    )
    # zero-shot's one seed is exact (SEED_INDEPENDENT): the interval decides
    assert row.verdict == row.ci_verdict == expected.verdict == "supported"
    assert (row.ci_low, row.ci_high, row.p_value) == (expected.ci_low, expected.ci_high, expected.p_value)
    # one seed of a trained method decides nothing, whatever its interval says
    flipped = {**CLAIM, "name": "y", "a": "zero_shot", "b": "mezo", "direction": "<"}
    one_mezo_seed = verdict_table([flipped], dirs[:2], DATA, splits[0]).iloc[0]
    assert (one_mezo_seed.n_a, one_mezo_seed.n_b) == (1, 1)
    assert one_mezo_seed.verdict == AT_N1 and one_mezo_seed.ci_verdict == "supported"
    assert np.isnan(one_mezo_seed.p_value)  # "inconclusive: n=1", never a p-value
    assert "| – | **inconclusive at n=1** (CI alone: supported) |" in to_markdown(
        pd.DataFrame([one_mezo_seed])
    )
    # A claim only on other tasks of the suite would have no rows; a missing variant is named.
    with pytest.raises(
        DataError, match=r"claim 'x' on tiny-llama · sst2: no runs of variant, label or method 'fo'"
    ):
        verdict_table([{**CLAIM, "name": "x", "b": "fo"}], dirs, DATA, splits[0])
    with pytest.raises(DataError, match=r"a run of suite 't', not 'main'"):
        verdict_table([CLAIM], dirs, DATA, splits[0], suite="main")


def test_a_label_is_the_variant_with_the_best_dev_score(tmp_path, splits):
    """A paper's lr grid shown as one row ("MeZO"): the claim compares the grid point dev picks (mean
    over seeds), never the one test would pick."""
    dirs = [
        write_run(tmp_path, splits, "zero_shot", 0, correct=3),
        write_run(tmp_path, splits, "mezo_lr1", 0, correct=11, label="MeZO", dev_score=0.5),  # best on test
        write_run(tmp_path, splits, "mezo_lr1", 1, correct=11, label="MeZO", dev_score=0.7),
        write_run(tmp_path, splits, "mezo_lr2", 0, correct=6, label="MeZO", dev_score=0.625),  # best on dev
        write_run(tmp_path, splits, "mezo_lr2", 1, correct=6, label="MeZO", dev_score=0.625),
    ]
    row = verdict_table([{**CLAIM, "a": "MeZO"}], dirs, DATA, splits[0], suite="t").iloc[0]
    assert (row.a, row.a_variant, row.b_variant, row.n_a) == ("MeZO", "mezo_lr2", "zero_shot", 2)
    assert row.effect == pytest.approx(0.25, abs=1e-12)  # 6/12 - 3/12
    assert "MeZO (mezo_lr2, best dev) > zero_shot" in to_markdown(pd.DataFrame([row]))
    with pytest.raises(DataError, match="not every run has a dev score"):
        verdict_table(
            [{**CLAIM, "a": "MeZO"}],
            [*dirs, write_run(tmp_path, splits, "mezo_lr3", 0, 1, label="MeZO")],
            DATA,
            splits[0],
        )


def test_a_method_name_is_its_variant_with_the_best_dev_score(tmp_path, splits):
    """The method zoo labels each grid point on its own ("MeZO lr=1e-5"): a claim names the method, and dev
    picks the grid point, as the table's "Hyperparameters selected on dev" does."""
    dirs = [
        write_run(tmp_path, splits, "zero_shot", 0, correct=3),
        write_run(tmp_path, splits, "mezo_lr1", 0, correct=11, label="MeZO lr=1", dev_score=0.5),
        write_run(tmp_path, splits, "mezo_lr2", 0, correct=6, label="MeZO lr=2", dev_score=0.625),
    ]
    row = verdict_table([{**CLAIM, "a": "mezo"}], dirs, DATA, splits[0], suite="t").iloc[0]
    assert (row.a_variant, row.b_variant, row.n_a) == ("mezo_lr2", "zero_shot", 1)
    # a label wins over a method of the same name, even with a worse dev score
    pinned = write_run(tmp_path, splits, "pinned", 0, correct=1, label="mezo", dev_score=0.1)
    row = verdict_table([{**CLAIM, "a": "mezo"}], [*dirs, pinned], DATA, splits[0], suite="t").iloc[0]
    assert row.a_variant == "pinned"


def _cell(seeds, n=4):
    ids = tuple(f"test:{i}" for i in range(n))
    return {s: RunScores(f"r{s}", "t", "m", "sst2", "v", "mezo", s, ids, np.full(n, s / 10)) for s in seeds}


def test_cells_with_several_seeds_are_paired_on_the_shared_seeds():
    a, b, n_a, n_b = paired(_cell([0, 1, 2]), _cell([2, 1, 3]), "claim c")
    assert (n_a, n_b) == (2, 2)
    assert a[:, 0].tolist() == b[:, 0].tolist() == [0.1, 0.2]  # seeds 1 and 2, in order, in both
    a, b, n_a, n_b = paired(_cell([0, 1]), _cell([3]), "claim c")
    assert (a.shape, b.shape, n_a, n_b) == ((2, 4), (1, 4), 2, 1)  # judge broadcasts the one seed
    with pytest.raises(
        DataError, match=r"claim c: a has seeds \[0, 1\] and b has seeds \[2, 3\], none in common"
    ):
        paired(_cell([0, 1]), _cell([2, 3]), "claim c")
    with pytest.raises(DataError, match=r"claim c: a and b were scored on different test examples"):
        paired(_cell([0]), _cell([0], n=5), "claim c")


def _row(**over):
    row = dict(zip(COLUMNS, [None] * len(COLUMNS), strict=True))
    row.update(paper="MeZO", claim="mezo-beats-zero-shot", source="Table 1", model="m", task="sst2")
    row.update(a="mezo", b="zero_shot", n_a=2, n_b=1, n_examples=872, direction=">", margin=0.0)
    row.update(
        effect=0.2024, ci_low=0.1712, ci_high=0.2341, p_value=0.0012345, mde=0.0456, verdict="supported"
    )
    row.update(ci_verdict=row["verdict"])
    row.update(over)
    return row


def test_markdown_in_percentage_points_with_bold_verdicts():
    df = pd.DataFrame(
        [
            _row(),
            _row(claim="mezo-comparable-to-ft", b="fo", direction="≈", margin=0.02, n_b=2, n_a=1)
            | dict(
                effect=-0.006,
                ci_low=-0.031,
                ci_high=0.019,
                p_value=0.3,
                verdict=AT_N1,
                ci_verdict="inconclusive",
            ),
        ],
        columns=COLUMNS,
    )
    md = to_markdown(df, "main")
    assert md.startswith("# Claims: suite `main`")
    assert "paired percentile bootstrap over test examples and seeds" in md
    assert "sign-flip permutation test" in md and "from the 95% CI" in md
    lines = md.splitlines()
    first = next(line for line in lines if line.startswith("| MeZO | mezo-beats-zero-shot"))
    assert "| mezo > zero_shot |" in first and "| 2, 1 | 872 |" in first
    assert "| +20.2 [+17.1, +23.4] | 4.6 | 0.0012 | **supported** |" in first
    second = next(line for line in lines if "mezo-comparable-to-ft" in line)
    assert "| mezo ≈ fo (±2.0) |" in second
    assert "| -0.6 [-3.1, +1.9] |" in second
    assert "| 0.3 | **inconclusive at n=1** (CI alone: inconclusive) |" in second
    empty = to_markdown(pd.DataFrame(columns=COLUMNS), "main")
    assert "| paper | claim |" in empty and "declares no claims" in empty


def test_cli_writes_csv_and_markdown(tmp_path, splits, capsys):
    dirs = [
        write_run(tmp_path, splits, "zero_shot", 0, correct=3),
        write_run(tmp_path, splits, "mezo", 0, correct=9),
    ]
    common = ["verdicts", "--suite", "t", "--data-dir", str(DATA), "--splits-root", str(splits[0])]
    out_csv, out_md = tmp_path / "tables" / "claims-t.csv", tmp_path / "tables" / "claims-t.md"
    outs = ["--out-csv", str(out_csv), "--out-md", str(out_md)]
    assert main([*common, "--claims-json", json.dumps([CLAIM]), *outs, *map(str, dirs)]) == 0
    df = pd.read_csv(out_csv)
    assert list(df.columns) == COLUMNS and df.loc[0, "effect"] == pytest.approx(0.5)
    assert "| MeZO | mezo-beats-zero-shot |" in out_md.read_text()

    assert main([*common, "--claims-json", "[]", *outs, *map(str, dirs)]) == 0
    assert out_csv.read_text().strip() == ",".join(COLUMNS)
    assert "declares no claims" in out_md.read_text()

    assert main([*common, "--claims-json", '[{"name": "x"}]', *outs]) == 2
    assert "claim 0 ('x') lacks ['paper', 'a', 'b', 'direction', 'source']" in capsys.readouterr().err


def test_scores_of_a_real_run_match_its_metrics(tmp_path, model_refs):
    # What train writes (not a hand-made run): zero-shot on the tiny Llama, 12 test examples.
    import shutil

    from tests.helpers import make_run
    from zoharness.train import train

    run_dir, split = make_run(tmp_path, "zero_shot")
    metrics = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    splits_root = tmp_path / "splits"
    split_manifest_path(splits_root, "sst2", 0).parent.mkdir(parents=True)
    shutil.copy(split, split_manifest_path(splits_root, "sst2", 0))
    run = run_scores(run_dir, DATA, splits_root)
    assert len(run.scores) == metrics["n_test"] == N_TEST
    assert run.scores.mean() == pytest.approx(metrics["test_score"], abs=1e-12)
