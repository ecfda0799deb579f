"""`snakemake --report`: every table and figure a rule writes is registered with a caption and labels, a tiny
suite's report holds all of them, and (where Chromium is installed) the report renders and can be clicked
through (tests/report_check.py, the same check `make report-check` runs on the smoke suite)."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.report_check import (
    CheckFailed,
    build_report,
    check_contents,
    check_in_browser,
    copy_workflow,
    listing,
    read_report,
    suite_outputs,
)

CHROMIUM = Path("/usr/bin/chromium")
TINY = """suite: report-e2e
models: [tiny-llama]
tasks: [sst2]
variants:
  zero_shot: {}
  mezo: {params: {lr: 1.0e-3, eps: 1.0e-3, steps: 2, batch_size: 4}}
  sparse_zo_int4: {params: {lr: 1.0e-2, steps: 2, batch_size: 4, density: 1.0e-2}}
seeds: [0]
data: {num_train: 16, num_dev: 8, num_test: 16}
eval: {batch_size: 16, max_length: 128}
device: cpu
threads: 1
claims:
  - {name: mezo-beats-zero-shot, paper: MeZO, a: mezo, b: zero_shot, direction: ">", source: test}
"""

# Every rule's outputs with their report flags, dumped while the workflow is parsed (`snakemake -l`).
DUMP_RULES = """import json
import os


include: "Snakefile"


def _flag(f):
    r = f.flags.get("report")
    if r is None:
        return None
    caption = r.caption.get_path_or_uri(secret_free=True) if r.caption is not None else None
    return {"caption": caption, "category": r.category, "labels": r.labels}


with open(os.environ["REPORT_RULES_JSON"], "w") as _out:
    json.dump({r.name: [[str(f), _flag(f)] for f in r.output] for r in workflow.rules}, _out)
"""


@pytest.mark.parametrize("suite", ["default", "influence-oat"])
def test_every_table_and_figure_a_rule_writes_is_registered_for_the_report(tmp_path, suite):
    """Static, over the rules: default has the methods' tables and figures, influence-oat adds RapidIn's and the
    per-run rephrase-influence tables. A PDF is the PNG's twin and is not listed."""
    copy_workflow(tmp_path)
    (tmp_path / "dump.smk").write_text(DUMP_RULES)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["REPORT_RULES_JSON"] = str(tmp_path / "rules.json")
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", "dump.smk", "-l", "--configfile", f"config/{suite}.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rules = json.loads((tmp_path / "rules.json").read_text())
    name = "main" if suite == "default" else suite
    seen = set()
    for rule, outputs in rules.items():
        for path, flag in outputs:
            if not path.startswith(("results/tables/", "figures/")):
                assert flag is None, (rule, path)
                continue
            if path.endswith(".pdf"):
                assert flag is None, (rule, path)
                continue
            assert flag is not None, f"rule {rule}: {path} is not registered for the report"
            key = "figure" if path.startswith("figures/") else "table"
            assert flag["category"] == f"{key.title()}s", (rule, path)
            assert (
                Path(flag["caption"]).is_file() and Path(flag["caption"]).parent.parent == tmp_path / "report"
            )
            labels = flag["labels"]
            assert labels["suite"] == name and labels["format"] == path.rsplit(".", 1)[1], (
                rule,
                path,
                labels,
            )
            assert labels[key] == Path(flag["caption"]).stem, (rule, path, labels)
            if "{variant}" in path:  # a file of one run says which
                assert {k: labels[k] for k in ("model", "task", "method", "seed")} == {
                    "model": "{model}",
                    "task": "{task}",
                    "method": "{variant}",
                    "seed": "{seed}",
                }, (rule, path)
            seen.add(labels[key])
    assert {"results", "claims", "curves", "loss", "accuracy", "memory"} <= seen
    if suite == "default":
        assert {"masks", "rephrase", "sparse-density"} <= seen
    else:
        assert {"influence", "influence-validation", "influence-tokens", "rephrase-influence"} <= seen


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    """A tiny suite (three variants with sparse-ZO-int4's own table and figures, one claim) run end to end in
    a copy of the workflow, and its report: (workdir, report zip, the suite's tables and figures)."""
    workdir = tmp_path_factory.mktemp("report")
    copy_workflow(workdir)
    (workdir / "config" / "report-e2e.yaml").write_text(TINY)
    report = build_report(workdir, "config/report-e2e.yaml", cores="2")
    return workdir, report, suite_outputs(workdir, "report-e2e")


@pytest.mark.slow
def test_the_report_holds_every_table_and_figure_of_the_suite_with_labels(tiny_report):
    workdir, report, expected = tiny_report
    assert report.name == "report-report-e2e.zip"
    assert check_contents(report, expected, "report-e2e") == []
    results, categories, _ = read_report(report)
    assert set(categories) == {"Tables", "Figures"}
    tables = {results[p]["labels"]["table"] for p in expected if p.startswith("results/")}
    figures = {results[p]["labels"]["figure"] for p in expected if p.startswith("figures/")}
    # the shared rules' tables and figures, and sparse-ZO-int4's own (rules/methods/)
    assert tables == {"results", "runs", "details", "curves", "checkpoints", "claims"} | {"masks"}
    assert figures == {"loss", "accuracy", "checkpoints", "claims", "cost", "memory"} | {
        "sparse-density",
        "sparse-memory",
    }
    entry = results["results/tables/report-e2e.md"]
    assert entry["labels"] == {"table": "results", "format": "md", "suite": "report-e2e"}
    assert "mean ± sample std over seeds" in entry["caption"]
    with zipfile.ZipFile(report) as z:  # the zip's copy is the file itself
        assert (
            z.read(f"report-report-e2e/{entry['data_uri']}")
            == (workdir / "results/tables/report-e2e.md").read_bytes()
        )
    # a report that lacks a file, or lists a file of another suite, is caught
    problems = check_contents(report, [*expected, "figures/report-e2e/extra.png"], "report-e2e")
    assert problems == ["figures/report-e2e/extra.png is not in the report"]
    assert "lack suite=other" in check_contents(report, expected, "other")[0]


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed (make report-check installs it as root)"
)
def test_the_report_renders_in_chromium_and_an_empty_one_fails(tiny_report, tmp_path):
    _, report, expected = tiny_report
    want = listing(report, expected)
    shots = check_in_browser(report, want, tmp_path / "shots", str(CHROMIUM))
    assert [s.name for s in shots] == ["main.png", "tables.png", "figure-accuracy.png"]
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, shot
    # the same report with no result category (what a suite that registers nothing gives) fails the check
    empty = tmp_path / report.name
    with zipfile.ZipFile(report) as src, zipfile.ZipFile(empty, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("report.html"):
                html = data.decode()
                start = html.index("var categories = ")
                data = (html[:start] + "var categories = {};" + html[html.index("\n", start) :]).encode()
            dst.writestr(item, data)
    with pytest.raises(CheckFailed, match="its menu with Tables and Figures"):
        check_in_browser(empty, want, tmp_path / "empty-shots", str(CHROMIUM), timeout=5)
