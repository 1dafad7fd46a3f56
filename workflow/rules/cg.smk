# CG mapping: one bead per molecule (seed 000 Sec. 2.1).


rule cg_map:
    input:
        trajectory=rules.production.output.trajectory,
    output:
        dataset=result("cg/dataset.h5"),
        summary=result("cg/mapping.json"),
    params:
        cg=config["cg"],
        seed=config["seed"],
        code=code_hash("cg.py"),
    resources:
        mem_mb=4000,
    log:
        log_path("cg/cg_map"),
    benchmark:
        bench_path("cg/cg_map")
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/cg_map.py"
