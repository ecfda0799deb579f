# MeZO's sampling protocol per task and seed; the manifest (ids + content hashes) is the split.
# Offline, the split reads the bundled snapshot; online, fetch_data first saves the task's Hugging
# Face dataset as jsonl in the same record schema (once; later runs read the saved files).


# Its output is the marker written last: the data files' names follow the task's Hugging Face splits
# (Task.hf_splits: train and validation, TREC's test, MNLI's validation_matched), see data_inputs.
rule fetch_data:
    localrule: True
    conda:
        CONDA_ENV
    output:
        source=f"{DATA['online_dir']}/{{task}}/source.json",
    wildcard_constraints:
        task=_alternation(dict.fromkeys(get_task(t).name for t in SUITE["tasks"])),  # instances share their task's data
    params:
        out_dir=lambda w, output: os.path.dirname(os.path.dirname(output.source)),
        hf_dataset=lambda w: DATA["hf_datasets"].get(w.task, ""),
    log:
        "logs/fetch_data/{task}.log",
    shell:
        "python -m zoharness fetch-data --task {wildcards.task} --out-dir {params.out_dir:q} "
        "--hf-dataset {params.hf_dataset:q} > {log:q} 2>&1"


# A written split is frozen: split_inputs (rules/common.smk) refuses data changes that would alter it
# while the job graph is built, and a touched but unchanged data file reruns nothing. update(): the
# manifest is not deleted before the job, so the split CLI compares a rerun (after a refetch, say) with
# it as well and refuses the same way.
# A suite's planted trigger (zoharness.plant) goes into the command itself, and only when there is one: a
# new param would change every existing split's recorded params, and Snakemake would redo them and their runs.
_PLANT_JSON = shlex.quote(json.dumps(DATA.get("plant"), sort_keys=True)).replace("{", "{{").replace("}", "}}")
PLANT_ARG = f"--plant {_PLANT_JSON} " if "plant" in DATA else ""
# LM-BFF's k-shot sampling (data.k_shot), passed the same way and for the same reason.
_KSHOT_JSON = shlex.quote(json.dumps(DATA.get("k_shot"), sort_keys=True)).replace("{", "{{").replace("}", "}}")
KSHOT_ARG = f"--k-shot {_KSHOT_JSON} " if "k_shot" in DATA else ""


rule split:
    localrule: True
    conda:
        CONDA_ENV
    input:
        split_inputs,
    output:
        update(SPLIT),
    params:
        data=DATA,
        data_dir=DATA_DIR,
    log:
        f"logs/split/{NAME}/{{task}}/seed{{seed}}.log",
    shell:
        "python -m zoharness split --task {wildcards.task} --seed {wildcards.seed} --data-dir {params.data_dir:q} "
        "--source {params.data[source]} --num-train {params.data[num_train]} --num-dev {params.data[num_dev]} "
        f"--num-test {{params.data[num_test]}} {PLANT_ARG}{KSHOT_ARG}--out {{output:q}} > {{log:q}} 2>&1"
