"""Tables and figures from committed fixture artifacts (a real smoke-suite run of tiny-llama)."""

import statistics
from pathlib import Path

import pandas as pd
import pytest

from zoharness.io import read_json, write_json_atomic
from zoharness.plotting import suite_figures
from zoharness.tables import read_curves, read_details, write_curves, write_details, write_tables

FIXTURES = Path(__file__).parent / "fixtures" / "smoke"
METRICS = sorted(FIXTURES.glob("*/*/*/seed*/metrics.json"))
LOGS = sorted(FIXTURES.glob("*/*/*/seed*/train_log.jsonl"))


@pytest.fixture()
def tables(tmp_path):
    paths = {k: tmp_path / f"smoke{k}" for k in (".csv", ".md", "-runs.csv")}
    write_tables(METRICS, "smoke", paths[".csv"], paths[".md"], paths["-runs.csv"])
    return paths


def test_fixtures_cover_three_methods_two_seeds():
    assert len(METRICS) == 6 and len(LOGS) == 6


def test_table_cells_are_mean_and_std_over_seeds(tables):
    wide = pd.read_csv(tables[".csv"]).set_index("variant")
    for method in ("zero_shot", "fo", "mezo"):
        accs = [read_json(p)["test_accuracy"] * 100 for p in METRICS if p.parts[-3] == method]
        assert wide.loc[method, "sst2"] == pytest.approx(round(statistics.mean(accs), 2))
        assert wide.loc[method, "sst2_std"] == pytest.approx(round(statistics.stdev(accs), 2))
        assert wide.loc[method, "sst2_n_seeds"] == 2
        assert wide.loc[method, "sst2_n_test"] == read_json(METRICS[0])["n_test"]
    runs = pd.read_csv(tables["-runs.csv"])
    assert len(runs) == 6 and set(runs["seed"]) == {0, 1}


def test_markdown_has_table1_layout(tables):
    md = tables[".md"].read_text()
    assert "| model | method | SST-2 |" in md
    mezo = [read_json(p)["test_accuracy"] * 100 for p in METRICS if p.parts[-3] == "mezo"]
    cell = f"{statistics.mean(mezo):.1f} ± {statistics.stdev(mezo):.1f} (n=2)"
    assert f"| tiny-llama | MeZO | {cell} |" in md
    assert "## Dev" in md


def test_selection_on_dev_picks_the_best_dev_variant():
    from zoharness.tables import collect, select_by_dev, summarise

    def mean_of(method, key):
        return statistics.mean(read_json(p)[key] for p in METRICS if p.parts[-3] == method)

    # The fixture's FT beats MeZO on test but not on dev, so dev-only selection is observable.
    assert mean_of("mezo", "dev_accuracy") > mean_of("fo", "dev_accuracy")
    assert mean_of("fo", "test_accuracy") > mean_of("mezo", "test_accuracy")
    runs = collect(METRICS)
    runs.loc[runs.variant == "fo", "method"] = "mezo"  # two variants of one method
    [sel] = select_by_dev(summarise(runs))
    assert sel["variant"] == "mezo"
    assert sel["dev_mean"] == pytest.approx(100 * mean_of("mezo", "dev_accuracy"))


def test_curves_and_details_tables_give_back_the_artifacts_exactly(tmp_path):
    """The long tables the figures read hold the logs' losses and metrics.json's scalars bit for bit."""
    from zoharness.trainlog import read_train_log

    curves = write_curves(LOGS, tmp_path / "curves.csv")
    back = read_curves(tmp_path / "curves.csv")
    pd.testing.assert_frame_equal(back, curves, check_dtype=False)
    for log in LOGS:
        m = read_json(log.parent / "metrics.json")
        run = back[(back["variant"] == m["variant"]) & (back["seed"] == m["seed"])]
        assert list(run["loss"]) == [r["loss"] for r in read_train_log(log)[1]]  # exact floats
    write_details(METRICS, tmp_path / "details.csv")
    details = read_details(tmp_path / "details.csv")
    assert len(details) == len(METRICS)
    for row, path in zip(details.to_dict("records"), METRICS, strict=True):
        m = read_json(path)
        for key, value in m.items():
            if isinstance(value, bool | str) or value is None:
                assert row[key] == value or (value is None and pd.isna(row[key])), key
            elif isinstance(value, int | float):
                assert row[key] == value, key  # exact, ints as floats


def test_figures_from_tables(tables, tmp_path):
    write_curves(LOGS, tmp_path / "curves.csv")
    out = tmp_path / "fig"
    paths = suite_figures(tables[".csv"], tmp_path / "curves.csv", out, "smoke")
    assert sorted(p.name for p in paths) == [
        "accuracy.pdf",
        "accuracy.png",
        "cost.pdf",
        "cost.png",
        "loss.pdf",
        "loss.png",
    ]
    for p in paths:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else head.startswith(b"%PDF")
        assert p.stat().st_size > 5000


def test_variants_sharing_a_label_are_told_apart_by_name(tmp_path):
    """An lr grid without labels: every row would read "MeZO"; the table adds the variant's name."""
    import json

    paths = []
    for name, acc in (("mezo_lr1", 0.6), ("mezo_lr2", 0.7)):
        m = {
            **read_json(next(p for p in METRICS if p.parts[-3] == "mezo")),
            "variant": name,
            "test_score": acc,
        }
        path = tmp_path / name / "metrics.json"
        path.parent.mkdir()
        path.write_text(json.dumps(m))
        paths.append(path)
    write_tables(paths, "t", tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t-runs.csv")
    md = (tmp_path / "t.md").read_text()
    assert "| MeZO (mezo_lr1) |" in md and "| MeZO (mezo_lr2) |" in md


def test_artifacts_of_the_old_layout_are_refused_clearly(tmp_path):
    """Format 1 called the variant "method" and the method "method_id": refused, naming file and fix."""
    import json

    from zoharness.io import ArtifactFormatError

    m = read_json(next(p for p in METRICS if p.parts[-3] == "mezo"))
    old = {k: v for k, v in m.items() if k not in ("artifact_format", "variant")}
    old.update(method=m["variant"], method_id=m["method"])
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(old))
    with pytest.raises(
        ArtifactFormatError, match=r"metrics.json: run artifact in format 1, .* rerun its suite"
    ):
        write_tables([path], "t", tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t-runs.csv")
    assert not (tmp_path / "t.csv").exists()


def _with_curve(tmp_path, path, curve, best_step):
    """A fixture run's metrics.json with a constructed checkpoint curve."""
    metrics = read_json(path)
    metrics.update(dev_curve=curve, best_step=best_step)
    out = tmp_path / path.relative_to(FIXTURES)
    write_json_atomic(out, metrics)
    return out


def test_checkpoints_table_and_figure_and_claims_figure(tables, tmp_path):
    from zoharness.tables import write_checkpoints

    mezo = [p for p in METRICS if p.parts[-3] == "mezo"]
    zero_shot = next(p for p in METRICS if p.parts[-3] == "zero_shot")
    paths = [
        _with_curve(
            tmp_path,
            mezo[0],
            [
                {"step": 2, "dev_score": 0.75, "test_score": 0.5},
                {"step": 5, "dev_score": 0.5, "test_score": 0.625},
            ],
            2,
        ),
        _with_curve(tmp_path, mezo[1], [{"step": 2, "dev_score": 0.5}, {"step": 5, "dev_score": 0.625}], 5),
        zero_shot,  # evaluation only: no checkpoints
    ]
    table = write_checkpoints(paths, tmp_path / "checkpoints.csv")
    assert list(table["step"]) == [2, 5, 2, 5] and list(table["best"]) == [True, False, False, True]
    assert list(table["dev_score"]) == [0.75, 0.5, 0.5, 0.625]
    assert table["test_score"].isna().tolist() == [False, False, True, True]
    claims = pd.DataFrame(
        [
            {"claim": "x-beats-y", "a": "x", "b": "y", "direction": ">", "margin": 0.0, "model": "m", "task": "t",
             "effect": 0.05, "ci_low": 0.01, "ci_high": 0.09, "verdict": "supported"},
            {"claim": "x-like-y", "a": "x", "b": "y", "direction": "≈", "margin": 0.02, "model": "m", "task": "t",
             "effect": -0.01, "ci_low": -0.04, "ci_high": 0.02, "verdict": "inconclusive"},
        ]
    )  # fmt: skip
    claims.to_csv(tmp_path / "claims.csv", index=False)
    write_curves(LOGS, tmp_path / "curves.csv")
    out = suite_figures(
        tables[".csv"],
        tmp_path / "curves.csv",
        tmp_path / "fig",
        "smoke",
        tmp_path / "checkpoints.csv",
        tmp_path / "claims.csv",
    )
    assert {p.name for p in out} >= {"checkpoints.png", "checkpoints.pdf", "claims.png", "claims.pdf"}
    assert all(p.stat().st_size > 5000 for p in out)
