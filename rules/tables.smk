

rule table:
    conda:
        "../envs/zoharness.yaml"
    input:
        metrics=lambda w: [f"{d}/metrics.json" for d in run_dirs()],
    output:
        csv=TABLE_CSV,
        md=TABLE_MD,
        runs=RUNS_CSV,
        details=DETAILS_CSV,
    params:
        suite=NAME,
    log:
        f"logs/{NAME}/table.log",
    shell:
        "python -m zoharness table --suite {params.suite} --out-csv {output.csv:q} --out-md {output.md:q} "
        "--out-runs-csv {output.runs:q} --out-details-csv {output.details:q} {input.metrics:q} > {log:q} 2>&1"


rule curves:
    conda:
        "../envs/zoharness.yaml"
    input:
        logs=lambda w: [f"{d}/train_log.jsonl" for d in run_dirs()],
        metrics=lambda w: [f"{d}/metrics.json" for d in run_dirs()],
    output:
        CURVES_CSV,
    log:
        f"logs/{NAME}/curves.log",
    shell:
        "python -m zoharness curves --out-csv {output:q} {input.logs:q} > {log:q} 2>&1"


rule scorecard:
    conda:
        "../envs/zoharness.yaml"
    input:
        reference=REFERENCE,
        metrics=lambda w: [f"{d}/metrics.json" for d in run_dirs()],
    output:
        csv=f"results/tables/scorecard-{NAME}.csv",
        md=f"results/tables/scorecard-{NAME}.md",
    params:
        suite=NAME,
    log:
        f"logs/{NAME}/scorecard.log",
    shell:
        "python -m zoharness scorecard --suite {params.suite} --reference {input.reference:q} "
        "--out-csv {output.csv:q} --out-md {output.md:q} {input.metrics:q} > {log:q} 2>&1"
