# CG force-field training per {method} x {seed}, and the grid search of the constant
# method's coefficients (seed 000 Sec. 2.2, 2.4). docs/training.md.

TRAIN_CODE = code_hash("model.py", "neighbors.py", "training.py", "balancing", "cg.py")


wildcard_constraints:
    method="|".join(METHODS),
    seed=r"\d+",
    index=r"\d+",


rule train_constant_grid:
    """One point of the constant-coefficient grid (force weight 1, energy weight from the grid)."""
    input:
        dataset=rules.cg_map.output.dataset,
    output:
        model=result("models/constant_grid/w{index}/model.pt"),
        hparams=result("models/constant_grid/w{index}/hparams.json"),
        log=result("models/constant_grid/w{index}/train_log.csv"),
        status=result("models/constant_grid/w{index}/status.json"),
    params:
        model=config["model"],
        training=TRAINING,
        method="constant",
        method_params=lambda wc: {**method_params("constant"), "weights": [1.0, GRID[int(wc.index)]]},
        seed=GRID_SEED,
        checkpoint=lambda wc: result(f"checkpoints/constant_grid/w{wc.index}.pt"),
        code=TRAIN_CODE,
    threads: 1
    resources:
        mem_mb=4000,
        gpu=0,
        runtime=240,
    log:
        log_path("models/constant_grid/w{index}"),
    benchmark:
        bench_path("models/constant_grid/w{index}")
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train.py"


rule select_constant:
    """The grid point with the lowest validation criterion; its weights train `constant` for every seed."""
    input:
        statuses=expand(result("models/constant_grid/w{index}/status.json"), index=range(len(GRID))),
        hparams=expand(result("models/constant_grid/w{index}/hparams.json"), index=range(len(GRID))),
    output:
        selected=result("models/constant_grid/selected.json"),
        table=report(
            result("models/constant_grid/grid.csv"),
            category="Training",
            caption="../report/constant_grid.rst",
        ),
    params:
        code=code_hash("training.py"),
    log:
        log_path("models/constant_grid/select"),
    benchmark:
        bench_path("models/constant_grid/select")
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/select_constant.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        model=result("models/{method}/seed{seed}/model.pt"),
        hparams=result("models/{method}/seed{seed}/hparams.json"),
        log=result("models/{method}/seed{seed}/train_log.csv"),
        status=result("models/{method}/seed{seed}/status.json"),
    params:
        model=config["model"],
        training=TRAINING,
        method=lambda wc: wc.method,
        method_params=lambda wc: method_params(wc.method),
        seed=lambda wc: int(wc.seed),
        checkpoint=lambda wc: result(f"checkpoints/{wc.method}/seed{wc.seed}.pt"),
        code=TRAIN_CODE,
    threads: 1
    resources:
        mem_mb=4000,
        gpu=0,
        runtime=240,
    log:
        log_path("models/{method}/seed{seed}"),
    benchmark:
        bench_path("models/{method}/seed{seed}")
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train.py"
