# The suite's shared figures, from its tables only.


rule figures:
    localrule: True
    conda:
        CONDA_ENV
    input:
        table=TABLE_CSV,
        curves=CURVES_CSV,
        checkpoints=CHECKPOINTS_CSV,
        claims=VERDICTS_CSV,
        details=DETAILS_CSV,
    output:
        [report_figure(f) for f in FIGURES],
    params:
        suite=NAME,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        f"logs/figures/{NAME}.log",
    shell:
        "python -m zoharness figures --suite {params.suite} --table {input.table:q} --curves {input.curves:q} "
        "--checkpoints {input.checkpoints:q} --claims {input.claims:q} --details {input.details:q} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"


rule kshot_figure:
    localrule: True
    conda:
        CONDA_ENV
    input:
        table=TABLE_CSV,
        reference=[REFERENCE] if SCORECARDS else [],
    output:
        [report_figure(f) for f in KSHOT_FIGURE],
    params:
        suite=NAME,
        out_dir=lambda w, output: os.path.dirname(output[0]),
        reference=lambda w, input: f"--reference {input.reference}" if input.reference else "",
    log:
        f"logs/figures/{NAME}-kshot.log",
    shell:
        "python -m zoharness kshot-figure --suite {params.suite} --table {input.table:q} {params.reference} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"
