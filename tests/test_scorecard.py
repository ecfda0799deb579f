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


def _metrics(tmp_path, method, method_id, task, seed, test, dev, label=None):
    path = tmp_path / method / task / f"seed{seed}" / "metrics.json"
    write_json_atomic(
        path,
        {
            "model": "m",
            "task": task,
            "artifact_format": ARTIFACT_FORMAT,
            "variant": method,
            "method": method_id,
            "label": label or method_id,
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


def test_a_reference_label_narrows_a_row_to_that_labels_variants(tmp_path):
    """MeZO Table 3 reports MeZO twice (cross-entropy, accuracy): the optional `label` column makes each row
    compare the best-on-dev variant of its own label, not the best of every MeZO variant; blank: any variant."""
    ref = tmp_path / "ref.csv"
    ref.write_text(
        "table,model,task,paper_method,method_id,metric,value,label\n"
        "T3,X,sst2,Cross entropy (MeZO),mezo,accuracy,93.3,MeZO\n"
        "T3,X,sst2,Accuracy (MeZO),mezo,accuracy,92.7,MeZO (accuracy)\n"
        "T3,X,sst2,any MeZO,mezo,accuracy,93.0,\n"
    )
    paths = [
        _metrics(tmp_path, "mezo_ce", "mezo", "sst2", 0, 0.93, 0.80, label="MeZO"),
        _metrics(tmp_path, "mezo_acc", "mezo", "sst2", 0, 0.91, 0.90, label="MeZO (accuracy)"),
    ]
    card = build(paths, ref)
    assert list(card.status) == ["ok", "ok", "ok"]
    assert list(card.variant) == ["mezo_ce", "mezo_acc", "mezo_acc"]  # the last: best dev of both labels
    assert list(card.ours_mean) == [93.0, 91.0, 91.0]
    only_ce = build(paths[:1], ref)
    assert list(only_ce.status) == ["ok", "not run", "ok"]


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


@pytest.mark.parametrize(
    ("suite_name", "model", "tasks", "f1_row"),
    [
        ("mezo-table3-roberta", "RoBERTa-large", ["sst2", "sst5", "snli", "trec"], [92.7, 48.9, 82.7, 68.6]),
        ("mezo-table3-opt13b", "OPT-13B", ["squad"], [78.5]),
    ],
)
def test_the_table_3_suites_hold_its_numbers_and_run_each_row(suite_name, model, tasks, f1_row):
    """MeZO Table 3's four rows per column, as printed; each row's method id and label name variants the suite
    runs, and the accuracy/F1 row's variants set the non-differentiable objective."""
    ref = read_reference(PAPER / f"{suite_name}.reference.csv")
    assert set(ref["table"]) == {"MeZO Table 3"} and set(ref["model"]) == {model}
    rows = ["Zero-shot", "Cross entropy (FT)", "Cross entropy (MeZO)", "Accuracy/F1 (MeZO)"]
    assert list(dict.fromkeys(ref["paper_method"])) == rows and len(ref) == 4 * len(tasks)
    assert list(ref[ref.paper_method == rows[3]]["value"]) == f1_row
    suite = load_suite(PAPER / f"{suite_name}.yaml")
    assert suite["tasks"] == tasks == list(dict.fromkeys(ref["task"]))
    variants = suite["variants"].values()
    for r in ref.itertuples():
        matching = [
            v for v in variants if v["method"] == r.method_id and (not r.label or v["label"] == r.label)
        ]
        assert matching, (r.paper_method, r.task)
        objectives = {v["params"].get("objective", "loss") for v in matching}
        if r.paper_method == rows[3]:
            assert objectives == {"accuracy" if model == "RoBERTa-large" else "f1"}
        else:
            assert objectives == {"loss"}
        assert "MeZO arXiv 2305.17333 Table 3" in r.note


def test_table_3_roberta_cross_entropy_rows_are_table_18s_k512_cells():
    """Table 3's zero-shot and cross-entropy RoBERTa rows are the k = 512 cells of Table 18 (mezo-roberta's
    reference), as the notes say; SQuAD's zero-shot and MeZO cells are Table 1's."""
    table3 = read_reference(PAPER / "mezo-table3-roberta.reference.csv")
    table18 = read_reference(PAPER / "mezo-roberta.reference.csv").set_index(["task", "paper_method"])
    same = {"Zero-shot": "Zero-shot", "Cross entropy (FT)": "FT", "Cross entropy (MeZO)": "MeZO"}
    for r in table3[table3.paper_method.isin(list(same))].itertuples():
        assert table18.loc[(f"{r.task}@k512", same[r.paper_method])].value == r.value, r
        assert "equals mezo-roberta.reference.csv" in r.note
    squad = read_reference(PAPER / "mezo-table3-opt13b.reference.csv").set_index("paper_method")
    table1 = read_reference(PAPER / "mezo-opt13b-table1.reference.csv")
    table1 = table1[table1.task == "squad"].set_index("paper_method")
    assert squad.loc["Zero-shot"].value == table1.loc["Zero-shot"].value == 46.2
    assert squad.loc["Cross entropy (MeZO)"].value == table1.loc["MeZO"].value == 84.7
    # Table 3's FT cell is not Table 1's FT (84.9); the note says so
    assert squad.loc["Cross entropy (FT)"].value == 84.2 != table1.loc["FT"].value
