

rule table:
    conda:
        CONDA_ENV
    input:
        metrics=metrics_files,
    output:
        csv=TABLE_CSV,
        md=TABLE_MD,
        runs=RUNS_CSV,
        details=DETAILS_CSV,
    params:
        suite=NAME,
    log:
        f"logs/table/{NAME}.log",
    shell:
        "python -m zoharness table --suite {params.suite} --out-csv {output.csv:q} --out-md {output.md:q} "
        "--out-runs-csv {output.runs:q} --out-details-csv {output.details:q} {input.metrics:q} > {log:q} 2>&1"


rule curves:
    conda:
        CONDA_ENV
    input:
        logs=train_logs,
        metrics=metrics_files,
    output:
        curves=CURVES_CSV,
        checkpoints=CHECKPOINTS_CSV,
    log:
        f"logs/curves/{NAME}.log",
    shell:
        "python -m zoharness curves --out-csv {output.curves:q} --out-checkpoints-csv {output.checkpoints:q} "
        "{input.logs:q} > {log:q} 2>&1"


rule scorecard:
    conda:
        CONDA_ENV
    input:
        reference=REFERENCE,
        metrics=metrics_files,
    output:
        csv=f"results/tables/scorecard-{NAME}.csv",
        md=f"results/tables/scorecard-{NAME}.md",
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
    conda:
        CONDA_ENV
    input:
        predictions=run_files("predictions.json"),
        run_configs=run_files("run_config.json"),
        metrics=metrics_files,
        splits=run_splits,
        data=split_data_files,
    output:
        csv=VERDICTS_CSV,
        md=VERDICTS_MD,
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
