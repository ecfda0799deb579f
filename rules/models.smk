# A model source is materialised once (the GGUF is dequantized and saved as safetensors) and shared
# by every run of every suite; runs then load it in well under a second.


rule prepare_model:
    localrule: True
    conda:
        CONDA_ENV
    output:
        MODEL_REF,
    params:
        source=lambda w: SUITE["models"][w.model],
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    shell:
        "python -m zoharness prepare-model --slug {wildcards.model:q} --source {params.source:q} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"
