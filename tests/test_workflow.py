"""The Snakemake workflow: parse-time validation, the planned DAG, one tiny end-to-end run, lint."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT
from zoharness.config import load_suite, runs

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(cwd, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def planned(stdout: str) -> dict[str, int]:
    stats = stdout.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def test_dry_run_plans_models_x_tasks_x_methods_x_seeds(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/smoke.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    suite = _suite("smoke")
    n_runs = len(runs(suite))  # every (model, task, method, seed), with per-method seed lists
    assert n_runs == sum(len(e["seeds"] or suite["seeds"]) for e in suite["variants"].values())
    assert jobs["train"] == n_runs and jobs["run_config"] == n_runs
    assert jobs["split"] == len(suite["tasks"]) * len(suite["seeds"])
    assert jobs["prepare_model"] == len(suite["models"]) and jobs["table"] == 1 and jobs["figures"] == 1
    assert jobs["verdicts"] == 1
    # the sparse variant's mask: sensitivity scores, then top-k (one of each for its one mask)
    assert jobs["sensitivity"] == 1 and jobs["mask"] == 1 and jobs["sparse_figures"] == 1


def _suite(name):
    return load_suite(ROOT / "config" / f"{name}.yaml")


def test_default_suite_plans_its_runs(workdir):
    n = len(runs(_suite("default")))
    (workdir / "resources").mkdir()
    (workdir / "resources" / "mask-cache").symlink_to(ROOT / "resources" / "mask-cache")
    out = snakemake(workdir, "-n", "-p")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    assert jobs["train"] == n
    assert "results/tables/main.csv" in out.stdout
    # sparse-ZO's mask comes from the committed cache: no sensitivity pass, unless the suite turns it off
    assert jobs["mask"] == 1 and "sensitivity" not in jobs
    assert (
        "--from-cache 'resources/mask-cache/smollm2-135m/wiki-passages/density~0.001-global.safetensors'"
        in out.stdout
    )
    out = snakemake(workdir, "-n", "--config", "mask_cache=False")
    assert out.returncode == 0, out.stderr
    assert planned(out.stdout)["sensitivity"] == 1


@pytest.mark.parametrize(
    "override,message",
    [
        ("variants=[mezzo]", "unknown method 'mezzo'. Did you mean 'mezo'"),
        ("tasks=[sst3]", "unknown task 'sst3'"),
    ],
)
def test_bad_config_fails_at_parse_time(workdir, override, message):
    out = snakemake(workdir, "-n", "--configfile", "config/smoke.yaml", "--config", override)
    assert out.returncode != 0
    assert message in out.stdout + out.stderr


def test_schema_error_names_file_and_key(workdir):
    text = (workdir / "config" / "smoke.yaml").read_text().replace("num_train: 16", "num_train: 0")
    (workdir / "config" / "bad.yaml").write_text(text)
    out = snakemake(workdir, "-n", "--configfile", "config/bad.yaml")
    assert out.returncode != 0
    assert "bad.yaml: invalid suite config" in out.stdout + out.stderr
    assert "data.num_train: 0 is less than the minimum of 1" in out.stdout + out.stderr


def test_lint_is_clean(workdir):
    out = snakemake(workdir, "--lint")
    assert out.returncode == 0 and "Congratulations" in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.mark.slow
def test_tiny_end_to_end_run_then_nothing_to_do(workdir):
    out = snakemake(workdir, "--cores", "2", "--configfile", "config/smoke.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    for rel in (
        "results/tables/smoke.csv",
        "results/tables/smoke.md",
        "results/tables/claims-smoke.csv",
        "results/tables/claims-smoke.md",
        "figures/smoke/loss.png",
        "figures/smoke/accuracy.pdf",
        "figures/smoke/checkpoints.png",
        "figures/smoke/claims.pdf",
        "figures/smoke/sparse-density.png",
        "figures/smoke/sparse-memory.pdf",
        "resources/masks/tiny-llama/wiki-passages/density~0.01-global.json",
    ):
        assert (workdir / rel).stat().st_size > 0, rel
    done = list((workdir / "results" / "smoke").glob("tiny-llama/sst2/*/seed*/metrics.json"))
    assert len(done) == len(runs(_suite("smoke")))
    # eval.checkpoints: 2: every trained run has two checkpoints in the table, one of them reported
    checkpoints = pd.read_csv(workdir / "results/tables/smoke-checkpoints.csv")
    trained = checkpoints.groupby(["variant", "seed"])
    assert trained.ngroups == len(runs(_suite("smoke"))) - len(_suite("smoke")["seeds"])  # all but zero-shot
    assert (trained.size() == 2).all() and (trained["best"].sum() == 1).all()
    again = snakemake(workdir, "-n", "--configfile", "config/smoke.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_paper_suite_plans_every_cell_with_fetch_and_scorecard(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/paper/mezo-opt13b.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    # 11 tasks x (zero-shot + ICL + 3 FT lrs + 2 MeZO lrs), one seed; the online source fetches each task.
    assert jobs["train"] == 11 * 7 and jobs["fetch_data"] == 11 and jobs["split"] == 11
    assert jobs["scorecard"] == 1 and "results/tables/scorecard-mezo-opt13b.md" in out.stdout
    # its claims (MeZO > zero-shot, > ICL, ≈ FT) end in a verdict table beside the scorecard
    assert jobs["verdicts"] == 1 and "results/tables/claims-mezo-opt13b.md" in out.stdout


def test_roberta_paper_suite_plans_both_k_and_ends_with_figure_2(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/paper/mezo-roberta.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    # 6 tasks x 2 k; zero-shot on one seed, the other 24 variants on five; one fetch per task, not per k
    assert jobs["train"] == 12 * (1 + 24 * 5) and jobs["split"] == 12 * 5 and jobs["fetch_data"] == 6
    assert jobs["kshot_figure"] == 1 and "figures/mezo-roberta/kshot.pdf" in out.stdout
    assert jobs["scorecard"] == 1 and "results/mezo-roberta/splits/trec@k512/seed100.json" in out.stdout


def test_table_3_suites_plan_both_objectives_with_scorecards(workdir):
    """MeZO Table 3 as two suites: RoBERTa-large at k = 512 (MeZO on accuracy) and OPT-13B on SQuAD (MeZO
    (prefix) on F1), each beside zero-shot, FT and MeZO on cross-entropy, each with its scorecard and claims."""
    out = snakemake(workdir, "-n", "--configfile", "config/paper/mezo-table3-roberta.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    # 4 tasks x (zero-shot on one seed + 3 FT + 3 MeZO + 3 MeZO-on-accuracy lrs on five); one k: no Figure 2
    assert jobs["train"] == 4 * (1 + 9 * 5) and jobs["split"] == 4 * 5 and jobs["fetch_data"] == 4
    assert "kshot_figure" not in jobs and "results/mezo-table3-roberta/splits/trec/seed100.json" in out.stdout
    assert jobs["scorecard"] == 1 and "results/tables/scorecard-mezo-table3-roberta.md" in out.stdout
    assert jobs["verdicts"] == 1 and "results/tables/claims-mezo-table3-roberta.md" in out.stdout
    out = snakemake(workdir, "-n", "--configfile", "config/paper/mezo-table3-opt13b.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    # SQuAD x (zero-shot + 3 FT + 3 MeZO + 3 MeZO (prefix)-on-F1 lrs), one seed
    assert jobs["train"] == 1 + 3 + 3 + 3 and jobs["fetch_data"] == 1 and jobs["split"] == 1
    assert jobs["scorecard"] == 1 and "results/tables/scorecard-mezo-table3-opt13b.md" in out.stdout
    assert jobs["verdicts"] == 1 and "results/tables/claims-mezo-table3-opt13b.md" in out.stdout


def test_masked_lm_k_shot_suite_end_to_end_draws_accuracy_against_k(workdir):
    """The masked-LM path through the workflow: tiny RoBERTa, two k, LM-BFF splits, the table and Figure 2."""
    config = workdir / "config" / "mlm-e2e.yaml"
    config.write_text(
        "suite: mlm-e2e\nmodels: [tiny-roberta]\ntasks: [trec]\nseeds: [13]\n"
        "variants: {zero_shot: {}, mezo: {params: {lr: 1.0e-3, eps: 1.0e-3, steps: 2, batch_size: 4}}}\n"
        "data: {k_shot: {k: [2, 4]}, num_test: 12}\neval: {batch_size: 16, max_length: 96}\n"
        "device: cpu\nthreads: 1\n"
    )
    out = snakemake(workdir, "--cores", "2", "--configfile", str(config))
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(workdir / "results/tables/mlm-e2e.csv")
    assert {"trec@k2", "trec@k4"} <= set(table.columns) and len(table) == 2
    split = load_suite(config)  # the instances the workflow ran
    assert split["tasks"] == ["trec@k2", "trec@k4"]
    for ext in ("png", "pdf"):
        assert (workdir / f"figures/mlm-e2e/kshot.{ext}").stat().st_size > 1000
    manifest = pd.read_json(workdir / "results/mlm-e2e/splits/trec@k4/seed13.json", typ="series")
    assert manifest["protocol"]["k_shot"] == 4 and sum(manifest["n_per_class"]["train"].values()) == 24


def test_sparse_ablation_suite_plans_one_mask_per_distinct_mask_and_shares_the_scores(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/sparse-zo-ablations.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    # MeZO + six sparse variants; the dense-base ablation reuses the default mask, and the three
    # wiki-passages densities share one sensitivity pass (the other is the task-gradient corpus)
    assert jobs["train"] == 7 and jobs["mask"] == 5 and jobs["sensitivity"] == 2
    assert "resources/masks/smollm2-135m/task-sst2-sparse-zo-ablations/sensitivity.safetensors" in out.stdout


def test_offline_all_suite_plans_every_offline_task(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/offline-all.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    assert jobs["train"] == 9 * 4 and jobs["split"] == 9 and "fetch_data" not in jobs


def test_offline_suite_asking_for_drop_fails_at_parse_time(workdir):
    out = snakemake(workdir, "-n", "--config", "tasks=[drop]")
    assert out.returncode != 0
    err = out.stdout + out.stderr
    assert "task drop is not available offline" in err and "source: online" in err


def test_default_suite_plans_one_rephrase_job_per_rewriter_with_its_table(workdir):
    out = snakemake(workdir, "-n")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    assert jobs["rephrase"] == 2 and jobs["rephrase_table"] == 1  # the OAT brief and the generic ablation
    for rewriter in ("smollm2-135m-oat", "smollm2-135m-generic"):
        assert f"resources/rephrased/{rewriter}/sst2/seed0.jsonl" in out.stdout
    assert "results/tables/main-rephrase.md" in out.stdout


def test_hosted_rewriter_suite_plans_without_a_key_or_network(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/oat-rephrase-openai.yaml")
    assert out.returncode == 0, out.stderr
    assert planned(out.stdout)["rephrase"] == 2
    assert "resources/rephrased/gpt-4o-mini-oat/sst2/seed0.jsonl" in out.stdout


def test_influence_suite_plans_a_cache_and_a_retrieval_per_explained_run(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/influence.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    explained = _suite("influence")["influence"]["variants"]
    assert (
        jobs["influence_cache"] == jobs["influence_retrieve"] == len(explained)
        and jobs["influence_table"] == 1
    )
    assert "results/influence/influence/smollm2-135m/sst2/fo/seed0/triggered/scores.safetensors" in out.stdout
    assert "figures/influence/influence-validation.png" in out.stdout


def test_method_zoo_suite_plans_every_grid_point_and_its_cost_and_memory_figures(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/method-zoo.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    variants = _suite("method-zoo")["variants"]
    assert (
        jobs["train"] == len(runs(_suite("method-zoo"))) == 54
    )  # 26 trained variants x 2 seeds, 2 at seed 0
    methods = {v["method"] for v in variants.values()}
    assert {
        "lp",
        "fo_sgd",
        "fo_lora",
        "mezo_lora",
        "zo_sgd_sign",
        "zo_sgd_cons",
        "zo_adam",
        "forward_grad",
    } <= methods
    assert "figures/method-zoo/memory.png" in out.stdout and "figures/method-zoo/cost.png" in out.stdout


def test_influence_oat_suite_plans_the_rephrase_influence_table(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/influence-oat.yaml")
    assert out.returncode == 0, out.stderr
    jobs = planned(out.stdout)
    assert jobs["influence_cache"] == 2 and jobs["rephrase_influence"] == 1 and jobs["rephrase"] == 1
    # the plain MeZO run's scores are the paired baseline
    assert (
        "--baseline-scores results/influence-oat/influence/smollm2-135m/sst2/mezo/seed0/test/scores.safetensors"
        in out.stdout
    )
