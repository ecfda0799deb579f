# RapidIn (zoharness.influence), for a suite with an `influence:` block: per explained run, the training
# set's gradient sketches are cached once (influence_cache), then the queries are scored against them
# (influence_retrieve); one table and one figure gather every explained run (influence_table). The model
# explained is the run's reported checkpoint: ZO runs replay their trajectory, FT runs load the weights
# train saved because run_spec marks explained variants save_weights (zoharness.influence.explain).
from zoharness.config import explained_variants

INFLUENCE = SUITE.get("influence")
INFLUENCE_DIR = f"results/{NAME}/influence/{{model}}/{{task}}/{{variant}}/seed{{seed}}"
INFLUENCE_CACHE = f"{INFLUENCE_DIR}/cache.safetensors"
INFLUENCE_OUT = f"{INFLUENCE_DIR}/{{queries}}"
INFLUENCE_SCORES = f"{INFLUENCE_OUT}/scores.safetensors"
INFLUENCE_TABLES = [f"results/tables/{NAME}-influence.csv", f"results/tables/{NAME}-influence.md"]
INFLUENCE_FIGURE = [
    f"figures/{NAME}/influence-{kind}.{ext}" for kind in ("validation", "tokens") for ext in ("png", "pdf")
]


INFLUENCE_SETTINGS = json.dumps(INFLUENCE, sort_keys=True)
# The retrieval outputs of every explained run, in the suite's run order (the table's inputs).
INFLUENCE_RUN_OUTS = [
    INFLUENCE_OUT.format(model=m, task=t, variant=v, seed=s, queries=INFLUENCE["queries"])
    for m, t, v, s in runs(SUITE)
    if v in explained_variants(SUITE)
]

if INFLUENCE:
    EXTRA_TARGETS += INFLUENCE_TABLES + INFLUENCE_FIGURE

    rule influence_cache:
        conda:
            CONDA_ENV
        input:
            metrics=f"{RUN_DIR}/metrics.json",
            train_log=f"{RUN_DIR}/train_log.jsonl",
            run_config=f"{RUN_DIR}/run_config.json",
            split=SPLIT,
            model_ref=MODEL_REF,
            data=split_data_files,
        output:
            INFLUENCE_CACHE,
        params:
            run_dir=lambda w, input: os.path.dirname(input.metrics),
            settings=INFLUENCE_SETTINGS,
        threads: SUITE["threads"]
        resources:
            **light_resources("influence_cache"),
        log:
            f"logs/influence_cache/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}.log",
        benchmark:
            f"benchmarks/influence_cache/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}.tsv"
        shell:
            "python -m zoharness influence-cache --run-dir {params.run_dir:q} --split {input.split:q} "
            "--model-ref {input.model_ref:q} --settings {params.settings:q} --threads {threads} "
            "--out {output:q} > {log:q} 2>&1"

    rule influence_retrieve:
        conda:
            CONDA_ENV
        input:
            cache=INFLUENCE_CACHE,
            metrics=f"{RUN_DIR}/metrics.json",
            train_log=f"{RUN_DIR}/train_log.jsonl",
            split=SPLIT,
            model_ref=MODEL_REF,
            data=split_data_files,
        output:
            scores=INFLUENCE_SCORES,
            topk=f"{INFLUENCE_OUT}/topk.json",
            summary=f"{INFLUENCE_OUT}/summary.json",
        wildcard_constraints:
            queries=INFLUENCE["queries"],
        params:
            run_dir=lambda w, input: os.path.dirname(input.metrics),
            out_dir=lambda w, output: os.path.dirname(output.scores),
            settings=INFLUENCE_SETTINGS,
        threads: SUITE["threads"]
        resources:
            **light_resources("influence_retrieve"),
        log:
            f"logs/influence_retrieve/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}/{{queries}}.log",
        benchmark:
            f"benchmarks/influence_retrieve/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}/{{queries}}.tsv"
        shell:
            "python -m zoharness influence-retrieve --run-dir {params.run_dir:q} --split {input.split:q} "
            "--model-ref {input.model_ref:q} --settings {params.settings:q} --threads {threads} "
            "--cache {input.cache:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"

    rule influence_tokens:
        conda:
            CONDA_ENV
        input:
            topk=f"{INFLUENCE_OUT}/topk.json",
            metrics=f"{RUN_DIR}/metrics.json",
            train_log=f"{RUN_DIR}/train_log.jsonl",
            split=SPLIT,
            model_ref=MODEL_REF,
            data=split_data_files,
        output:
            f"{INFLUENCE_OUT}/tokens.json",
        wildcard_constraints:
            queries=INFLUENCE["queries"],
        params:
            run_dir=lambda w, input: os.path.dirname(input.metrics),
            settings=INFLUENCE_SETTINGS,
        threads: SUITE["threads"]
        resources:
            **light_resources("influence_tokens"),
        log:
            f"logs/influence_tokens/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}/{{queries}}.log",
        benchmark:
            f"benchmarks/influence_tokens/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}/{{queries}}.tsv"
        shell:
            "python -m zoharness influence-tokens --run-dir {params.run_dir:q} --split {input.split:q} "
            "--model-ref {input.model_ref:q} --settings {params.settings:q} --threads {threads} "
            "--topk {input.topk:q} --out {output:q} > {log:q} 2>&1"

    rule influence_table:
        localrule: True
        conda:
            CONDA_ENV
        input:
            scores=[f"{d}/scores.safetensors" for d in INFLUENCE_RUN_OUTS],
            summaries=[f"{d}/summary.json" for d in INFLUENCE_RUN_OUTS],
            tokens=[f"{d}/tokens.json" for d in INFLUENCE_RUN_OUTS],
        output:
            csv=report_table(INFLUENCE_TABLES[0], "influence"),
            md=report_table(INFLUENCE_TABLES[1], "influence"),
            figure=[report_figure(f) for f in INFLUENCE_FIGURE],
        params:
            figure_dir=lambda w, output: os.path.dirname(output.figure[0]),
        log:
            f"logs/influence_table/{NAME}.log",
        shell:
            "python -m zoharness influence-table --scores {input.scores:q} --summaries {input.summaries:q} "
            "--tokens {input.tokens:q} --out-csv {output.csv:q} --out-md {output.md:q} --figure-dir {params.figure_dir:q} "
            "> {log:q} 2>&1"
