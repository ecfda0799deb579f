

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
        CURVES_CSV,
    log:
        f"logs/curves/{NAME}.log",
    shell:
        "python -m zoharness curves --out-csv {output:q} {input.logs:q} > {log:q} 2>&1"


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
