

rule figures:
    conda:
        "../envs/zoharness.yaml"
    input:
        table=TABLE_CSV,
        logs=lambda w: [f"{d}/train_log.jsonl" for d in run_dirs()],
    output:
        FIGURES,
    params:
        suite=NAME,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        f"logs/{NAME}/figures.log",
    shell:
        "python -m zoharness figures --suite {params.suite} --table {input.table:q} --out-dir {params.out_dir:q} "
        "{input.logs:q} > {log:q} 2>&1"
