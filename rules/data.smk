# MeZO's sampling protocol per task and seed; the manifest (ids + content hashes) is the split.


rule split:
    conda:
        "../envs/zoharness.yaml"
    output:
        SPLIT,
    params:
        data=SUITE["data"],
    log:
        f"logs/{NAME}/splits/{{task}}/seed{{seed}}.log",
    shell:
        "python -m zoharness split --task {wildcards.task} --seed {wildcards.seed} --data-dir {params.data[dir]:q} "
        "--num-train {params.data[num_train]} --num-dev {params.data[num_dev]} "
        "--num-test {params.data[num_test]} --out {output:q} > {log:q} 2>&1"
