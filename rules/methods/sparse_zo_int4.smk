# sparse-ZO-int4's extra inputs: sensitivity scores per (model, corpus), then a mask per (density,
# selection), cached under resources/masks/ and shared by every task and suite that asks for the same
# one (task-gradient masks carry the task and suite in their corpus name: they read the suite's split,
# that of the suite's first seed). Helpers live in the package (zoharness.sparse, the method module).
from zoharness.methods import sparse_zo_int4 as _sparse
from zoharness import sparse as _sparse_lib

MASKS = "resources/masks/{model}/{corpus}"

# Every variant whose method trains on a mask (the method and its ablations).
MASK_VARIANTS = variants_taking("mask")
INPUT_FILES["mask"] = lambda w: (
    _sparse.mask_stem(_sparse.Params(**variant_entry(w)["params"]), w.model, w.task, NAME) + ".safetensors"
)


rule sensitivity:
    conda:
        CONDA_ENV
    priority: INPUTS_FIRST
    input:
        unpack(
            lambda w: _sparse_lib.sensitivity_inputs(
                w.corpus, DATA["dir"], lambda task: SPLIT.format(task=task, seed=SUITE["seeds"][0])
            )
        ),
        model_ref=MODEL_REF,
    output:
        scores=f"{MASKS}/sensitivity.safetensors",
        info=f"{MASKS}/sensitivity.json",
    wildcard_constraints:
        corpus=r"wiki-passages|c4|task-[a-z0-9]+-.+",
    params:
        # task corpora read the suite's split (and its data folder); wiki-passages the bundled files
        args=lambda w, input: (
            f"--data-dir {shlex.quote(DATA_DIR)} --split {shlex.quote(input.split)}"
            if "split" in input.keys()
            else f"--data-dir {shlex.quote(DATA['dir'])}"
        ),
        device=SUITE["device"],
    threads: SUITE["threads"]
    resources:
        gpu=uses_gpu(),
        **light_resources("sensitivity"),
    log:
        "logs/sensitivity/{model}/{corpus}.log",
    benchmark:
        "benchmarks/sensitivity/{model}/{corpus}.tsv"
    shell:
        "python -m zoharness sensitivity --model-ref {input.model_ref:q} --corpus {wildcards.corpus:q} "
        "{params.args} --device {params.device} --threads {threads} --out {output.scores:q} > {log:q} 2>&1"


rule mask:
    localrule: True
    conda:
        CONDA_ENV
    priority: INPUTS_FIRST
    input:
        # a committed mask when the suite sets mask_cache and one exists, else the scores (none if random)
        unpack(
            lambda w: _sparse_lib.mask_inputs(w.model, w.corpus, w.density, w.selection, SUITE["mask_cache"], MASKS)
        ),
        model_ref=MODEL_REF,
    output:
        mask=f"{MASKS}/density~{{density}}-{{selection}}.safetensors",
        stats=f"{MASKS}/density~{{density}}-{{selection}}.json",
    wildcard_constraints:
        corpus=r"wiki-passages|c4|random|task-[a-z0-9]+-.+",
        density=r"[0-9.e+-]+",
        selection="global|per_matrix",
    params:
        source=lambda w, input: _sparse_lib.mask_source_args(input),
    log:
        "logs/mask/{model}/{corpus}/density~{density}-{selection}.log",
    benchmark:
        "benchmarks/mask/{model}/{corpus}/density~{density}-{selection}.tsv"
    shell:
        "python -m zoharness mask --model-ref {input.model_ref:q} --corpus {wildcards.corpus:q} "
        "--density {wildcards.density} --selection {wildcards.selection} {params.source} "
        "--out {output.mask:q} > {log:q} 2>&1"


# Accuracy vs density, memory by component and the masks' stats, when the suite runs the method.
SPARSE_FIGURES = [f"figures/{NAME}/sparse-{kind}.{ext}" for kind in ("density", "memory") for ext in ("png", "pdf")]
MASK_TABLES = [f"results/tables/{NAME}-masks.csv", f"results/tables/{NAME}-masks.md"]
if MASK_VARIANTS:
    EXTRA_TARGETS += SPARSE_FIGURES + MASK_TABLES


rule mask_table:
    localrule: True
    conda:
        CONDA_ENV
    input:
        stats=lambda w: sorted(
            {
                _sparse.mask_stem(_sparse.Params(**SUITE["variants"][me]["params"]), m, t, NAME) + ".json"
                for m, t, me, _ in runs(SUITE)
                if me in MASK_VARIANTS
            }
        ),
    output:
        csv=report_table(MASK_TABLES[0], "masks"),
        md=report_table(MASK_TABLES[1], "masks"),
    log:
        f"logs/mask_table/{NAME}.log",
    shell:
        "python -m zoharness mask-table --out-csv {output.csv:q} --out-md {output.md:q} {input.stats:q} > {log:q} 2>&1"


rule sparse_figures:
    localrule: True
    conda:
        CONDA_ENV
    input:
        details=DETAILS_CSV,
    output:
        [report_figure(f) for f in SPARSE_FIGURES],
    params:
        suite=NAME,
        out_dir=lambda w, output: os.path.dirname(output[0]),
        dense=_sparse.COMPARE_WITH,
    log:
        f"logs/sparse_figures/{NAME}.log",
    shell:
        "python -m zoharness sparse-figures --suite {params.suite} --out-dir {params.out_dir:q} "
        "--details {input.details:q} --dense {params.dense} > {log:q} 2>&1"
