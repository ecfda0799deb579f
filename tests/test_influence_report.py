"""The planted-trigger report of RapidIn (zoharness.influence.report) on synthetic scores files."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file

from zoharness.influence.report import (
    COLUMNS,
    FALLBACK_TOP_K,
    METADATA_KEY,
    RANDOM_NOTE,
    read_scores,
    validation_figure,
    validation_rows,
    write_validation_table,
)
from zoharness.io import DataError, write_json_atomic

N_TRAIN, N_QUERIES = 400, 8
# Planted examples in the middle of the training set, so that a tie broken by training-set order
# cannot put them first by accident.
PLANTED = list(range(150, 170))


def _meta(**overrides) -> dict:
    meta = {
        "query_ids": [f"q{i}" for i in range(N_QUERIES)],
        "train_ids": [f"t{i}" for i in range(N_TRAIN)],
        "ks": [4096, 256, 65536],
        "exact": True,
        "planted_ids": [f"t{i}" for i in PLANTED],
        "model": "tiny",
        "task": "sst2",
        "variant": "mezo",
        "label": "MeZO",
        "seed": 0,
        "queries": "triggered",
    }
    return meta | overrides


def _tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """exact ranks the planted examples first; k256 reverses it, k4096 equals it, k65536 is independent."""
    rng = np.random.default_rng(seed)
    exact = rng.normal(size=(N_QUERIES, N_TRAIN)).astype(np.float32)
    exact[:, PLANTED] += 100.0
    return {
        "exact": exact,
        "k256": -exact,
        "k4096": exact.copy(),
        "k65536": rng.normal(size=(N_QUERIES, N_TRAIN)).astype(np.float32),
    }


def _write_scores(path: Path, tensors: dict, meta: dict | None, raw_metadata: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = raw_metadata if raw_metadata is not None else {METADATA_KEY: json.dumps(meta)}
    save_file(tensors, str(path), metadata=metadata)
    return path


def _write_summary(path: Path, seed: int, backdoor: dict | None = None) -> Path:
    write_json_atomic(
        path,
        {
            "backdoor": backdoor,
            "timing": {
                "query_gradients_s": 4.0,
                "retrieve_s": {"256": 0.5, "4096": 1.0, "65536": 2.0},
                "exact_s": 10.0,
                "n_queries": N_QUERIES,
                "n_train": N_TRAIN,
            },
            "model": "tiny",
            "task": "sst2",
            "variant": "mezo",
            "label": "MeZO",
            "seed": seed,
        },
    )
    return path


def _by_scorer(rows: list[dict]) -> dict[str, dict]:
    return {row["scorer"]: row for row in rows}


def test_rows_per_scorer_in_order(tmp_path):
    rows = validation_rows(_write_scores(tmp_path / "s.safetensors", _tensors(), _meta()))
    assert [r["scorer"] for r in rows] == [
        "exact",
        "rapidgrad K=256",
        "rapidgrad K=4096",
        "rapidgrad K=65536",
        "random",
    ]
    assert [r["K"] for r in rows] == [None, 256, 4096, 65536, None]
    assert all(set(r) == set(COLUMNS) for r in rows)
    row = rows[0]
    assert (row["n_queries"], row["n_train"], row["n_planted"], row["k"]) == (N_QUERIES, N_TRAIN, 20, 20)
    assert row["planted_fraction"] == pytest.approx(20 / N_TRAIN)
    assert (row["model"], row["label"], row["seed"], row["queries"]) == ("tiny", "MeZO", 0, "triggered")


def test_perfect_reversed_and_fidelity(tmp_path):
    rows = _by_scorer(validation_rows(_write_scores(tmp_path / "s.safetensors", _tensors(), _meta())))
    perfect = rows["exact"]
    for name in ("auprc", "auroc", "precision_at_k", "recall_at_k"):
        assert perfect[name] == 1.0 and perfect[f"{name}_sd"] == 0.0
    assert math.isnan(perfect["spearman_vs_exact"])  # exact is not compared with itself
    reversed_ = rows["rapidgrad K=256"]
    assert reversed_["auroc"] == 0.0 and reversed_["precision_at_k"] == 0.0
    assert reversed_["spearman_vs_exact"] == pytest.approx(-1.0)
    same = rows["rapidgrad K=4096"]
    assert same["spearman_vs_exact"] == pytest.approx(1.0) and same["top_k_overlap_vs_exact"] == 1.0
    assert same["auprc"] == 1.0
    # Under independence Spearman's rho has sd ≈ 1/sqrt(n - 1) per query; the mean over the queries has
    # sd 1/sqrt(q (n - 1)) ≈ 0.018 here, so 4 of those is a bound a correct implementation fails ~1e-4.
    independent = rows["rapidgrad K=65536"]
    assert abs(independent["spearman_vs_exact"]) < 4 / math.sqrt(N_QUERIES * (N_TRAIN - 1))
    assert independent["top_k_overlap_vs_exact"] < 0.3  # chance: k / n = 0.05


def test_random_row_matches_random_ranking_expectations(tmp_path):
    repeats = 400
    rows = validation_rows(
        _write_scores(tmp_path / "s.safetensors", _tensors(), _meta()), random_repeats=repeats
    )
    random = _by_scorer(rows)["random"]
    n, r = N_TRAIN, len(PLANTED)
    # The expected AP of a uniformly random ranking is (H_n + (r-1)/(n-1) (n - H_n)) / n: the planted
    # fraction r/n plus a small-sample excess (0.063 vs 0.050 here). The estimate is a mean of `repeats`
    # draws, so it is checked against the exact value within 4 standard errors (its own sd / sqrt(repeats)),
    # and against the planted fraction within that excess plus the same 4 standard errors.
    harmonic = sum(1 / i for i in range(1, n + 1))
    expected_ap = (harmonic + (r - 1) / (n - 1) * (n - harmonic)) / n
    se = 4 * random["auprc_sd"] / math.sqrt(repeats)
    assert random["auprc"] == pytest.approx(expected_ap, abs=se)
    assert abs(random["auprc"] - r / n) <= (expected_ap - r / n) + se
    # auROC: expectation 0.5 exactly (Mann-Whitney), same 4-standard-error tolerance.
    assert random["auroc"] == pytest.approx(0.5, abs=4 * random["auroc_sd"] / math.sqrt(repeats))
    # P@k = R@k (k = number planted) has expectation r/n: hypergeometric.
    assert random["precision_at_k"] == pytest.approx(
        r / n, abs=4 * random["precision_at_k_sd"] / math.sqrt(repeats)
    )
    # Seeded: the same seed gives the same estimate.
    again = _by_scorer(validation_rows(tmp_path / "s.safetensors", random_repeats=repeats))["random"]
    assert again["auprc"] == random["auprc"]


def test_top_k_override(tmp_path):
    rows = _by_scorer(
        validation_rows(_write_scores(tmp_path / "s.safetensors", _tensors(), _meta()), top_k=40)
    )
    assert rows["exact"]["k"] == 40
    assert rows["exact"]["precision_at_k"] == 0.5 and rows["exact"]["recall_at_k"] == 1.0


def test_no_planted_examples_keeps_fidelity(tmp_path):
    path = _write_scores(tmp_path / "s.safetensors", _tensors(), _meta(planted_ids=[], queries="test"))
    rows = _by_scorer(validation_rows(path))
    assert rows["exact"]["k"] == FALLBACK_TOP_K and rows["exact"]["n_planted"] == 0
    for row in rows.values():
        assert math.isnan(row["auprc"]) and math.isnan(row["auroc"]) and math.isnan(row["precision_at_k"])
    assert rows["rapidgrad K=4096"]["spearman_vs_exact"] == pytest.approx(1.0)
    assert rows["rapidgrad K=4096"]["top_k_overlap_vs_exact"] == 1.0


def test_without_exact_no_fidelity(tmp_path):
    tensors = {k: v for k, v in _tensors().items() if k != "exact"}
    rows = validation_rows(_write_scores(tmp_path / "s.safetensors", tensors, _meta(exact=False)))
    assert [r["scorer"] for r in rows][0] == "rapidgrad K=256"
    assert all(math.isnan(r["spearman_vs_exact"]) for r in rows)


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("no metadata", "no 'zoharness.influence_scores' metadata"),
        ("missing key", "lacks planted_ids"),
        ("shape", "has shape \\[8, 399\\]"),
        ("unknown planted", "planted ids are not in train_ids"),
        ("nan", "NaN/inf"),
        ("missing tensor", "no tensor 'k256'"),
    ],
)
def test_bad_scores_files_name_the_file(tmp_path, case, pattern):
    path = tmp_path / "bad" / "scores.safetensors"
    tensors, meta, raw = _tensors(), _meta(), None
    if case == "no metadata":
        raw = {"other": "1"}
    elif case == "missing key":
        del meta["planted_ids"]
    elif case == "shape":
        tensors["k4096"] = tensors["k4096"][:, :-1].copy()
    elif case == "unknown planted":
        meta["planted_ids"] = ["t1", "nope"]
    elif case == "nan":
        tensors["k65536"][2, 3] = np.nan
    elif case == "missing tensor":
        del tensors["k256"]
    _write_scores(path, tensors, meta, raw)
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*" + pattern):
        read_scores(path)


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "scores.safetensors"
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match=re.escape(str(path))):
        read_scores(path)


def test_write_validation_table(tmp_path):
    scores, summaries = [], []
    for seed in (0, 1):
        run = tmp_path / f"seed{seed}"
        scores.append(_write_scores(run / "scores.safetensors", _tensors(seed), _meta(seed=seed)))
        backdoor = {"n": 50, "clean_accuracy": 0.9, "triggered_accuracy": 0.1, "attack_success_rate": 0.875}
        summaries.append(_write_summary(run / "summary.json", seed, backdoor if seed == 0 else None))
    out_csv, out_md = tmp_path / "out" / "influence.csv", tmp_path / "out" / "influence.md"
    write_validation_table(scores, summaries, out_csv, out_md, random_repeats=20)
    table = pd.read_csv(out_csv)
    assert list(table.columns) == COLUMNS
    assert len(table) == 2 * 5
    assert table.groupby("seed")["scorer"].apply(list).loc[0] == [
        "exact",
        "rapidgrad K=256",
        "rapidgrad K=4096",
        "rapidgrad K=65536",
        "random",
    ]
    assert (table.loc[table["scorer"] == "exact", "auprc"] == 1.0).all()
    md = out_md.read_text()
    assert "## tiny · sst2" in md and RANDOM_NOTE in md
    assert (
        "| mezo | MeZO | 0 | triggered | exact | 20 | 1.000 ± 0.000 | 1.000 ± 0.000 | 1.000 | 1.000 |" in md
    )
    assert "0.875" in md  # attack success rate from the summary
    assert "| 1 | – | – | – | – |" in md  # seed 1 has no backdoor evaluation
    assert "20.0×" in md and "4.00 (0.50)" in md  # speed-up exact/retrieve K=256; gradient s, per query


def test_summary_missing_key_names_file(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"backdoor": None, "timing": {}, "model": "m"})
    scores = _write_scores(tmp_path / "scores.safetensors", _tensors(), _meta())
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*timing.query_gradients_s"):
        write_validation_table([scores], [path], tmp_path / "t.csv", tmp_path / "t.md", random_repeats=2)


def test_validation_figure(tmp_path):
    paths = [_write_scores(tmp_path / f"s{s}.safetensors", _tensors(s), _meta(seed=s)) for s in (0, 1)]
    paths.append(
        _write_scores(tmp_path / "test.safetensors", _tensors(), _meta(planted_ids=[], queries="test"))
    )
    out = validation_figure(paths, tmp_path / "fig")
    assert [p.name for p in out] == ["influence-validation.png", "influence-validation.pdf"]
    assert all(p.stat().st_size > 0 for p in out)
    # Many seeds: one panel per variant (first seed); still one png and one pdf.
    many = [_write_scores(tmp_path / f"m{s}.safetensors", _tensors(s), _meta(seed=s)) for s in range(7)]
    assert all(p.exists() for p in validation_figure(many, tmp_path / "fig-many"))


def test_report_does_not_import_torch():
    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}
    code = "import sys, zoharness.influence.report; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)
