

rule table:
    localrule: True
    conda:
        CONDA_ENV
    input:
        metrics=metrics_files,
    output:
        csv=report_table(TABLE_CSV, "results"),
        md=report_table(TABLE_MD, "results"),
        runs=report_table(RUNS_CSV, "runs"),
        details=report_table(DETAILS_CSV, "details"),
    params:
        suite=NAME,
    log:
        f"logs/table/{NAME}.log",
    shell:
        "python -m zoharness table --suite {params.suite} --out-csv {output.csv:q} --out-md {output.md:q} "
        "--out-runs-csv {output.runs:q} --out-details-csv {output.details:q} {input.metrics:q} > {log:q} 2>&1"


rule curves:
    localrule: True
    conda:
        CONDA_ENV
    input:
        logs=train_logs,
        metrics=metrics_files,
    output:
        curves=report_table(CURVES_CSV, "curves"),
        checkpoints=report_table(CHECKPOINTS_CSV, "checkpoints"),
    log:
        f"logs/curves/{NAME}.log",
    shell:
        "python -m zoharness curves --out-csv {output.curves:q} --out-checkpoints-csv {output.checkpoints:q} "
        "{input.logs:q} > {log:q} 2>&1"


rule scorecard:
    localrule: True
    conda:
        CONDA_ENV
    input:
        reference=REFERENCE,
        metrics=metrics_files,
    output:
        csv=report_table(f"results/tables/scorecard-{NAME}.csv", "scorecard"),
        md=report_table(f"results/tables/scorecard-{NAME}.md", "scorecard"),
    params:
        suite=NAME,
    log:
        f"logs/scorecard/{NAME}.log",
    shell:
        "python -m zoharness scorecard --suite {params.suite} --reference {input.reference:q} "
        "--out-csv {output.csv:q} --out-md {output.md:q} {input.metrics:q} > {log:q} 2>&1"


# Verdicts on the suite's `claims:`: each run's per-example test scores, re-derived from its predictions
# and split (checked against its metrics.json), then a paired bootstrap and permutation test per claim.
rule verdicts:
    localrule: True
    conda:
        CONDA_ENV
    input:
        predictions=run_files("predictions.json"),
        run_configs=run_files("run_config.json"),
        metrics=metrics_files,
        splits=run_splits,
        data=split_data_files,
    output:
        csv=report_table(VERDICTS_CSV, "claims"),
        md=report_table(VERDICTS_MD, "claims"),
    params:
        suite=NAME,
        claims=json.dumps(SUITE["claims"]),
        data_dir=DATA_DIR,
        splits_root=SPLITS_ROOT,
        run_dirs=lambda w, input: [os.path.dirname(p) for p in input.run_configs],
    log:
        f"logs/verdicts/{NAME}.log",
    shell:
        "python -m zoharness verdicts --suite {params.suite} --claims-json {params.claims:q} "
        "--data-dir {params.data_dir:q} --splits-root {params.splits_root:q} --out-csv {output.csv:q} "
        "--out-md {output.md:q} {params.run_dirs:q} > {log:q} 2>&1"
