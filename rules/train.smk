# One run = run_config.json (everything that defines it) -> train -> metrics/log/provenance.
# run_config is rewritten when the resolved spec (the `spec` param) or the split changes, which is
# what makes Snakemake retrain; comments or unrelated config keys do not.


rule run_config:
    localrule: True
    conda:
        CONDA_ENV
    input:
        split=SPLIT,
    output:
        f"{RUN_DIR}/run_config.json",
    params:
        spec=spec_json,
    log:
        f"logs/run_config/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}.log",
    shell:
        "python -m zoharness run-config --spec {params.spec:q} --split {input.split:q} --out {output:q} > {log:q} 2>&1"


rule train:
    conda:
        CONDA_ENV
    input:
        unpack(method_inputs),
        run_config=f"{RUN_DIR}/run_config.json",
        split=SPLIT,
        model_ref=MODEL_REF,
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        train_log=f"{RUN_DIR}/train_log.jsonl",
        run_info=f"{RUN_DIR}/run_info.json",
        predictions=f"{RUN_DIR}/predictions.json",
    params:
        out_dir=lambda w, output: os.path.dirname(output.metrics),
        method_inputs=method_input_args,
        placement=placement_args,
        launcher=launcher,
    threads: SUITE["threads"]
    priority: train_priority
    resources:
        **train_resources(),
    log:
        f"logs/train/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"benchmarks/train/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}.tsv"
    shell:
        "{params.launcher} -m zoharness train --run-config {input.run_config:q} --split {input.split:q} "
        "--model-ref {input.model_ref:q} --out-dir {params.out_dir:q} --threads {threads} {params.placement}{params.method_inputs} > {log:q} 2>&1"
