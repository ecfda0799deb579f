"""The suite figures every suite now gets: loss against forward passes (cost) and memory by component,
from the curves and details tables only."""

import json

import pandas as pd

from zoharness.plotting import cost_figure, memory_components, suite_figures
from zoharness.tables import read_curves, read_details, write_curves, write_details


def _run(tmp_path, name, method, forward_passes, extra):
    run = tmp_path / name
    run.mkdir()
    header = {"header": {"method": method}}
    steps = [{"step": i, "loss": 1.0 / (i + 1), "forward_passes": forward_passes} for i in range(4)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [header, *steps]))
    metrics = {"model": "m", "task": "sst2", "variant": name, "method": method, "label": name.upper(), "seed": 0,
               "artifact_format": 2, "model_bytes": 1000, **extra}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_curves_carry_cumulative_forward_passes_and_the_cost_figure_plots_them(tmp_path):
    zo = _run(tmp_path, "zo", "mezo", 4, {})  # q = 2
    fo = _run(tmp_path, "fo", "fo", 1, {})
    curves = write_curves([zo / "train_log.jsonl", fo / "train_log.jsonl"], tmp_path / "curves.csv")
    assert curves[curves["variant"] == "zo"]["forward_passes"].tolist() == [4, 8, 12, 16]
    assert curves[curves["variant"] == "fo"]["forward_passes"].tolist() == [1, 2, 3, 4]
    fig = cost_figure(read_curves(tmp_path / "curves.csv"), "s")
    (ax,) = fig.axes[:1]
    xs = sorted(line.get_xdata().max() for line in ax.get_lines())
    assert xs == [4, 16] and ax.get_xscale() == "log"


def test_a_curves_table_without_counts_gives_a_figure_that_says_so():
    old = pd.DataFrame({"model": ["m"], "task": ["t"], "variant": ["v"], "method": ["x"], "label": ["X"],
                        "seed": [0], "step": [0], "loss": [1.0]})  # fmt: skip
    fig = cost_figure(old, "s")
    assert "no forward-pass counts" in fig.axes[0].texts[0].get_text()


def test_memory_components_split_weights_adapter_and_state(tmp_path):
    runs = [
        _run(tmp_path, "lora", "mezo_lora", 2, {"adapter_bytes": 100, "zo_optimizer_state_bytes": 0}),
        _run(
            tmp_path,
            "adam",
            "zo_adam",
            2,
            {"zo_optimizer_state_bytes": 2000, "zo_noise_cache_bytes": 0, "train_transient_peak_bytes": 50},
        ),  # fmt: skip
        _run(tmp_path, "fg", "forward_grad", 1, {"fg_tangent_bytes": 1000}),
    ]
    write_details([r / "metrics.json" for r in runs], tmp_path / "details.csv")
    table = memory_components(read_details(tmp_path / "details.csv")).loc[("m", "sst2")]
    assert table.loc["LORA", ["weights", "adapter"]].tolist() == [900, 100]
    assert table.loc["ADAM", "optimizer state"] == 2000 and table.loc["ADAM", "weights"] == 1000
    assert table.loc["ADAM", "measured training peak above start"] == 50
    assert table.loc["FG", "jvp tangent"] == 1000 and table.loc["FG", "optimizer state"] == 0


def test_suite_figures_write_cost_and_memory_for_the_smoke_fixtures(tmp_path):
    from pathlib import Path

    from zoharness.tables import write_tables

    fixtures = Path(__file__).parent / "fixtures" / "smoke"
    metrics = sorted(fixtures.glob("*/*/*/seed*/metrics.json"))
    logs = [m.parent / "train_log.jsonl" for m in metrics if (m.parent / "train_log.jsonl").exists()]
    write_tables(metrics, "smoke", tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "runs.csv")
    curves = write_curves(logs, tmp_path / "curves.csv")
    write_details(metrics, tmp_path / "details.csv")
    assert curves.groupby("method")["forward_passes"].max().to_dict() == {"fo": 4, "mezo": 10}
    paths = suite_figures(tmp_path / "t.csv", tmp_path / "curves.csv", tmp_path / "figs", "smoke",
                          details_csv=tmp_path / "details.csv")  # fmt: skip
    names = {p.name for p in paths}
    assert {"cost.png", "cost.pdf", "memory.png", "memory.pdf"} <= names
    assert all(p.stat().st_size > 0 for p in paths)


def _curves(rows):
    cols = ["model", "task", "variant", "method", "label", "seed", "step", "loss", "forward_passes"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def test_a_grid_draws_only_each_methods_dev_selected_variant():
    from zoharness.plotting import dev_selected

    curves = _curves(
        [("m", "sst2", v, meth, v.upper(), s, 0, 1.0, 2)
         for v, meth in [("mezo_a", "mezo"), ("mezo_b", "mezo"), ("fo_a", "fo")] for s in (0, 1)]
    )  # fmt: skip
    wide = pd.DataFrame(
        {"model": ["m"] * 3, "variant": ["mezo_a", "mezo_b", "fo_a"], "label": ["A", "B", "F"],
         "sst2": [60.0, 55.0, 80.0], "sst2_std": [1.0, 1.0, 1.0], "sst2_dev": [70.0, 72.5, 81.0]}
    )  # fmt: skip
    assert dev_selected(curves, wide)[0].equals(curves)  # three lines: an ablation's size, all drawn
    kept, note = dev_selected(curves, wide, max_lines=2)
    # mezo_b wins on dev although mezo_a has the better test score: selection never looks at test
    assert sorted(set(kept["variant"])) == ["fo_a", "mezo_b"] and len(kept) == 4
    assert "dev-selected" in note
    fig = cost_figure(kept, "s", note)
    assert len(fig.axes[0].get_lines()) == 2 and "dev-selected" in fig._suptitle.get_text()


def test_without_a_grid_the_curves_are_drawn_as_they_are():
    from zoharness.plotting import dev_selected

    curves = _curves(
        [("m", "sst2", "mezo", "mezo", "MeZO", 0, 0, 1.0, 2), ("m", "sst2", "fo", "fo", "FT", 0, 0, 1.0, 1)]
    )
    wide = pd.DataFrame({"model": ["m", "m"], "variant": ["mezo", "fo"], "sst2_dev": [60.0, 70.0]})
    kept, note = dev_selected(curves, wide, max_lines=1)
    assert kept.equals(curves) and note == ""


def test_many_lines_get_distinct_styles_and_a_legend_outside_the_axes():
    from zoharness.plotting import line_style

    curves = _curves(
        [("m", "sst2", f"v{i}", f"meth{i}", f"V{i}", 0, s, 1.0, s + 1) for i in range(12) for s in range(3)]
    )
    ax = cost_figure(curves, "s").axes[0]
    styles = {(line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
    assert len(styles) == 12 and line_style(0) != line_style(10)
    assert ax.get_legend()._bbox_to_anchor is not None  # anchored beside the axes
