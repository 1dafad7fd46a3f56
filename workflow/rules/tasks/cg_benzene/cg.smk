# CG mapping: one bead per molecule (seed 000 Sec. 2.1).


rule cg_map:
    input:
        trajectory=rules.production.output.trajectory,
    output:
        dataset=result("cg/dataset.h5"),
        summary=result("cg/mapping.json"),
    log:
        log_path("cg/cg_map"),
    benchmark:
        bench_path("cg/cg_map")
    conda:
        "../../../../envs/train.yaml"
    resources:
        mem_mb=4000,
    params:
        cg=config["cg"],
        seed=config["seed"],
        code=code_hash("tasks/cg_benzene/cg.py"),
    script:
        "../../../scripts/tasks/cg_benzene/cg_map.py"
