# MeZO+OAT-Rephrase's extra input: the training split rewritten by an LLM rewriter and filtered by an
# LLM judge (zoharness.rephrase), one file per (rewriter, task, seed) under resources/rephrased/, with
# every request/response cached under resources/rephrase-cache/<rewriter>/<task>.jsonl (commit it to
# let others replay the rephrasing offline: a full cache makes zero requests and starts no server).
# The ablation mezo_generic_rephrase uses the same rule with a rewriter whose brief omits optimization.
from zoharness.rephrase import prompts as _prompts
from zoharness.rephrase import settings as _rephrase

REPHRASED = "resources/rephrased/{rewriter}/{task}/seed{seed}"
# Every variant whose method trains on a rephrased set (the OAT brief and the generic ablation).
REPHRASE_VARIANTS = variants_taking("rephrased")
REWRITERS = sorted({SUITE["variants"][v]["params"]["rewriter"] for v in REPHRASE_VARIANTS})

INPUT_FILES["rephrased"] = lambda w: (
    REPHRASED.format(rewriter=variant_entry(w)["params"]["rewriter"], task=w.task, seed=w.seed) + ".jsonl"
)


rule rephrase:
    conda:
        CONDA_ENV
    priority: INPUTS_FIRST
    input:
        split=SPLIT,
        prompts=lambda w: [
            str(_rephrase.PROMPTS_DIR / _rephrase.resolve(w.rewriter, SUITE["rewriters"])["prompt_version"] / f)
            for f in _prompts.PROMPT_FILES
        ],
    output:
        rephrased=f"{REPHRASED}.jsonl",
        stats=f"{REPHRASED}.json",
    wildcard_constraints:
        rewriter=_alternation(REWRITERS or ["-"]),
    params:
        settings=lambda w: json.dumps(_rephrase.resolve(w.rewriter, SUITE["rewriters"]), sort_keys=True),
        data_dir=DATA_DIR,
    threads: SUITE["threads"]
    resources:
        **light_resources("rephrase"),
    log:
        "logs/rephrase/{rewriter}/{task}/seed{seed}.log",
    benchmark:
        "benchmarks/rephrase/{rewriter}/{task}/seed{seed}.tsv"
    shell:
        "python -m zoharness rephrase --rewriter {wildcards.rewriter} --settings {params.settings:q} "
        "--split {input.split:q} --data-dir {params.data_dir:q} --out {output.rephrased:q} --stats {output.stats:q} "
        "--threads {threads} --server-log logs/rephrase/{wildcards.rewriter}/{wildcards.task}/seed{wildcards.seed}.server.log "
        "> {log:q} 2>&1"


# Acceptance, outcomes, tokens and cost per (rewriter, task, seed), and a figure against MeZO, when the
# suite rephrases.
REPHRASE_TABLES = [f"results/tables/{NAME}-rephrase.csv", f"results/tables/{NAME}-rephrase.md"]
REPHRASE_FIGURE = [f"figures/{NAME}/rephrase.png", f"figures/{NAME}/rephrase.pdf"]
REPHRASE_STATS = sorted(
    {
        REPHRASED.format(rewriter=SUITE["variants"][me]["params"]["rewriter"], task=t, seed=s) + ".json"
        for _, t, me, s in runs(SUITE)
        if me in REPHRASE_VARIANTS
    }
)
if REWRITERS:
    EXTRA_TARGETS += REPHRASE_TABLES + REPHRASE_FIGURE


rule rephrase_table:
    localrule: True
    conda:
        CONDA_ENV
    input:
        stats=REPHRASE_STATS,
    output:
        csv=report_table(REPHRASE_TABLES[0], "rephrase"),
        md=report_table(REPHRASE_TABLES[1], "rephrase"),
    log:
        f"logs/rephrase_table/{NAME}.log",
    shell:
        "python -m zoharness rephrase-table --out-csv {output.csv:q} --out-md {output.md:q} {input.stats:q} > {log:q} 2>&1"


rule rephrase_figure:
    localrule: True
    conda:
        CONDA_ENV
    input:
        runs=RUNS_CSV,
        curves=CURVES_CSV,
        table=REPHRASE_TABLES[0],
    output:
        [report_figure(f) for f in REPHRASE_FIGURE],
    params:
        suite=NAME,
        out_dir=lambda w, output: os.path.dirname(output[0]),
        # the baseline (the same optimizer on the original data), then the rephrase methods in the
        # suite's order
        methods=lambda w: list(
            dict.fromkeys(
                [method_module(v).COMPARE_WITH for v in REPHRASE_VARIANTS]
                + [SUITE["variants"][v]["method"] for v in REPHRASE_VARIANTS]
            )
        ),
    log:
        f"logs/rephrase_figure/{NAME}.log",
    shell:
        "python -m zoharness rephrase-figure --suite {params.suite} --out-dir {params.out_dir:q} "
        "--runs {input.runs:q} --curves {input.curves:q} --table {input.table:q} --methods {params.methods} "
        "> {log:q} 2>&1"


# RapidIn on the rephrase runs, when the suite's influence block explains them (rules/influence.smk): are
# the rephrased training examples more or less influential than the originals, within the run and
# against the same examples in the suite's plain MeZO run of the same seed (when that one is explained too).
_BASELINES = [
    v
    for v in explained_variants(SUITE)
    if SUITE["variants"][v]["method"] in {method_module(r).COMPARE_WITH for r in REPHRASE_VARIANTS}
]
REPHRASE_INFLUENCE = f"results/tables/{NAME}-rephrase-influence-{{model}}-{{task}}-{{variant}}-seed{{seed}}"
if INFLUENCE:
    EXTRA_TARGETS += [
        f"{REPHRASE_INFLUENCE}.{ext}".format(model=m, task=t, variant=v, seed=s)
        for m, t, v, s in runs(SUITE)
        if v in REPHRASE_VARIANTS and v in explained_variants(SUITE)
        for ext in ("csv", "md")
    ]

    rule rephrase_influence:
        localrule: True
        conda:
            CONDA_ENV
        input:
            scores=lambda w: INFLUENCE_SCORES.format(**w, queries=INFLUENCE["queries"]),
            rephrased=INPUT_FILES["rephrased"],
            baseline=lambda w: [
                INFLUENCE_SCORES.format(**{**w, "variant": v}, queries=INFLUENCE["queries"]) for v in _BASELINES[:1]
            ],
        output:
            csv=report_table(f"{REPHRASE_INFLUENCE}.csv", "rephrase-influence", **RUN_LABELS),
            md=report_table(f"{REPHRASE_INFLUENCE}.md", "rephrase-influence", **RUN_LABELS),
        wildcard_constraints:
            variant=_alternation(REPHRASE_VARIANTS or ["-"]),
        params:
            baseline=lambda w, input: f"--baseline-scores {shlex.quote(input.baseline[0])}" if input.baseline else "",
        log:
            f"logs/rephrase_influence/{NAME}/{{model}}/{{task}}/{{variant}}/seed{{seed}}.log",
        shell:
            "python -m zoharness influence-rephrase --scores {input.scores:q} --rephrased {input.rephrased:q} "
            "{params.baseline} --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
