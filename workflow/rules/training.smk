# Training of the task's model per {variant} x {seed} (seed 000 Sec. 2.2, 2.4). A variant with a search
# trains with the search's selection (workflow/rules/search.smk). docs/training.md, docs/search.md.

TRAIN_CODE = code_hash("training.py", "balancing", "l2o", "pareto.py", "timing.py") + TASK_CODE


# the files of one trained run: rule train writes them, simulate and model_metrics read them
TRAINED = {
    "model": "models/{variant}/seed{seed}/model.pt",
    "hparams": "models/{variant}/seed{seed}/hparams.json",
    "log": "models/{variant}/seed{seed}/train_log.csv",
    "status": "models/{variant}/seed{seed}/status.json",
    # counted work (FLOPs) of the trained configuration's first epochs: machine-free; the rule
    # model_metrics turns it into t_ep / sigma_ep with the machine calibration (docs/metrics.md)
    "work": "timing/{variant}/seed{seed}.json",
}
WORK_COUNTING = {k: config["metrics"]["timing"][k] for k in ("epochs", "max_steps")}


wildcard_constraints:
    variant="|".join(VARIANTS),
    seed=r"\d+",


if MULTISEED:

    # training.multiseed: one job per variant trains every seed in one process (balancebench.multiseed:
    # the seeds' forward passes batched by torch.func.vmap; for a GPU that one small model leaves idle).
    # Same files per seed as the one-seed rule; no checkpoint: a killed job retrains its seeds (same numbers).
    rule train:
        input:
            unpack(train_inputs),
        output:
            model=expand(result(TRAINED["model"]), seed=SEEDS, allow_missing=True),
            hparams=expand(result(TRAINED["hparams"]), seed=SEEDS, allow_missing=True),
            log=expand(result(TRAINED["log"]), seed=SEEDS, allow_missing=True),
            status=expand(result(TRAINED["status"]), seed=SEEDS, allow_missing=True),
            work=expand(result(TRAINED["work"]), seed=SEEDS, allow_missing=True),
        log:
            log_path("models/{variant}/seeds"),
        benchmark:
            bench_path("models/{variant}/seeds")
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=4000 * len(SEEDS),
            gpu=0,
            runtime=240 * len(SEEDS),
        params:
            task=TASK,
            model=config["model"],
            training=TRAINING,
            variant=lambda wc: wc.variant,
            method=lambda wc: variant_method(wc.variant),
            method_params=lambda wc: variant_params(wc.variant),
            seeds=lambda wc: [variant_seed(wc.variant, s) for s in SEEDS],
            replicates=SEEDS,
            seed_design=SEED_DESIGN,
            work_counting=WORK_COUNTING,
            code=TRAIN_CODE + code_hash("multiseed.py"),
        script:
            "../scripts/train_seeds.py"

else:

    rule train:
        input:
            unpack(train_inputs),
        output:
            model=result(TRAINED["model"]),
            hparams=result(TRAINED["hparams"]),
            log=result(TRAINED["log"]),
            status=result(TRAINED["status"]),
            work=result(TRAINED["work"]),
        log:
            log_path("models/{variant}/seed{seed}"),
        benchmark:
            bench_path("models/{variant}/seed{seed}")
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            gpu=0,
            runtime=240,
        params:
            task=TASK,
            model=config["model"],
            training=TRAINING,
            variant=lambda wc: wc.variant,
            method=lambda wc: variant_method(wc.variant),
            method_params=lambda wc: variant_params(wc.variant),
            seed=lambda wc: variant_seed(wc.variant, wc.seed),
            replicate=lambda wc: int(wc.seed),
            seed_design=SEED_DESIGN,
            checkpoint=lambda wc: result(f"checkpoints/{wc.variant}/seed{wc.seed}.pt"),
            work_counting=WORK_COUNTING,
            code=TRAIN_CODE,
        script:
            "../scripts/train.py"


rule timing_calibration:
    """FLOP rate of one reference training step on this machine: the seconds per FLOP shared by every run."""
    input:
        dataset=TASK_DATASET,
    output:
        calibration=result("timing/calibration.json"),
    log:
        log_path("timing/calibration"),
    benchmark:
        bench_path("timing/calibration")
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        timing=config["metrics"]["timing"],
        model=config["model"],
        training=TRAINING,
        seed=config["seed"],
        device=config["training"]["device"],
        task=TASK,
        code=code_hash("timing.py", "training.py") + TASK_CODE,
    script:
        "../scripts/stats_timing_calibration.py"
