"""Scorecards: the paper's numbers beside ours, from metrics.json artifacts; frozen paper suites."""

import hashlib

import pandas as pd
import pytest

from tests.conftest import ROOT
from zoharness.config import load_suite
from zoharness.io import ARTIFACT_FORMAT, DataError, write_json_atomic
from zoharness.scorecard import build, markdown, read_reference

PAPER = ROOT / "config" / "paper"


def test_paper_files_are_frozen():
    """A published paper suite and its reference numbers never change (FROZEN.sha256)."""
    for line in (PAPER / "FROZEN.sha256").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((PAPER / name).read_bytes()).hexdigest() == digest, f"{name} changed"


def test_the_seven_row_suite_has_every_table_1_row_and_the_same_numbers():
    """mezo-opt13b-table1: the first suite's reference numbers, every method id filled, each run by a variant."""
    first = read_reference(PAPER / "mezo-opt13b.reference.csv")
    ref = read_reference(PAPER / "mezo-opt13b-table1.reference.csv")
    keys = ["table", "model", "task", "paper_method", "metric", "value"]
    assert ref[keys].equals(first[keys])
    assert ref["method_id"].astype(bool).all()
    suite = load_suite(PAPER / "mezo-opt13b-table1.yaml")
    run_methods = {v["method"] for v in suite["variants"].values()}
    assert (
        set(ref["method_id"])
        == run_methods
        == {"zero_shot", "icl", "lp", "fo", "mezo", "mezo_lora", "mezo_prefix"}
    )
    assert suite["tasks"] == list(dict.fromkeys(ref["task"]))


def test_reference_matches_mezo_table_1_and_the_suite():
    ref = read_reference(PAPER / "mezo-opt13b.reference.csv")
    assert len(ref) == 7 * 11 and set(ref["table"]) == {"MeZO Table 1"}
    cell = ref[(ref.task == "squad") & (ref.paper_method == "MeZO")].iloc[0]
    assert cell.value == 84.7 and cell.metric == "f1"
    assert ref[(ref.task == "copa") & (ref.paper_method == "ICL")].iloc[0].value == 87.0
    suite = load_suite(PAPER / "mezo-opt13b.yaml")
    assert suite["tasks"] == list(dict.fromkeys(ref["task"]))
    implemented = {m["method"] for m in suite["variants"].values()}
    assert set(ref["method_id"]) - {""} == implemented


def _metrics(tmp_path, method, method_id, task, seed, test, dev):
    path = tmp_path / method / task / f"seed{seed}" / "metrics.json"
    write_json_atomic(
        path,
        {
            "model": "m",
            "task": task,
            "artifact_format": ARTIFACT_FORMAT,
            "variant": method,
            "method": method_id,
            "label": method_id,
            "seed": seed,
            "metric": "accuracy",
            "dev_score": dev,
            "test_score": test,
            "n_test": 10,
            "n_dev": 5,
        },
    )
    return path


def test_scorecard_picks_the_dev_best_variant_and_reports_seeds(tmp_path):
    ref = tmp_path / "ref.csv"
    ref.write_text(
        "table,model,task,paper_method,method_id,metric,value\n"
        "T1,X,rte,MeZO,mezo,accuracy,66.1\nT1,X,rte,LP,,accuracy,68.6\nT1,X,cb,MeZO,mezo,accuracy,67.9\n"
    )
    paths = [
        _metrics(tmp_path, "mezo_a", "mezo", "rte", 0, 0.50, 0.60),
        _metrics(tmp_path, "mezo_a", "mezo", "rte", 1, 0.60, 0.60),
        _metrics(tmp_path, "mezo_b", "mezo", "rte", 0, 0.90, 0.40),  # best test, worse dev: not chosen
    ]
    card = build(paths, ref)
    ok = card[card.status == "ok"].iloc[0]
    assert ok.variant == "mezo_a" and ok.ours_mean == 55.0 and ok.n_seeds == 2 and ok.seeds == "0 1"
    assert ok.delta_points == pytest.approx(55.0 - 66.1)
    assert list(card.status) == ["ok", "not implemented", "not run"]
    md = markdown(card, "s", ref)
    assert "| rte | MeZO | accuracy | 66.1 | 55.0 ± 7.1 | 2 (0 1) | 10 | mezo_a | -11.1 |" in md
    assert "| cb | MeZO | accuracy | 67.9 | not run |" in md


def test_bad_reference_names_the_file_and_the_problem(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("table,task,value\nT,rte,1\n")
    with pytest.raises(DataError, match=r"r.csv: missing column\(s\) \['model', 'paper_method'"):
        read_reference(bad)
    bad.write_text("table,model,task,paper_method,method_id,metric,value\nT,X,rte,M,mezo,accuracy,n/a\n")
    with pytest.raises(DataError, match=r"r.csv:2: value 'n/a' is not a number"):
        read_reference(bad)
    assert isinstance(pd.read_csv(bad), pd.DataFrame)


def test_the_roberta_suite_has_every_table_18_cell_and_runs_each_row():
    """mezo-roberta: MeZO Table 18's 9 rows x 6 tasks x k in {16, 512}, with the paper's std; every method id
    is a method the suite runs, on the suite's task instances; anchor cells as printed in the paper."""
    ref = read_reference(PAPER / "mezo-roberta.reference.csv")
    assert len(ref) == 9 * 6 * 2 and set(ref["table"]) == {"MeZO Table 18"}
    suite = load_suite(PAPER / "mezo-roberta.yaml")
    assert suite["tasks"] == list(dict.fromkeys(ref["task"]))
    assert set(ref["method_id"]) == {v["method"] for v in suite["variants"].values()}
    cell = ref.set_index(["task", "paper_method"])
    assert cell.loc[("trec@k16", "MeZO")].value == 76.9 and cell.loc[("trec@k512", "MeZO")].value == 94.3
    assert cell.loc[("trec@k512", "FT")].value == 97.3 and cell.loc[("trec@k512", "FT")]["std"] == "0.2"
    assert cell.loc[("sst5@k16", "Zero-shot")].value == cell.loc[("sst5@k512", "Zero-shot")].value == 35.5
    assert cell.loc[("rte@k16", "Zero-shot")].value == 51.4
    assert suite["data"]["k_shot"] == {"k": [16, 512], "allow_short_classes": True}
    assert suite["seeds"] == [13, 21, 42, 87, 100] and suite["models"]["roberta-large"].startswith("hf-mlm:")
