# The data and evaluation stages of a task without rules of its own (balancebench.tasks.base.Task: own_rules
# False): rule task_data makes its dataset with Task.make_dataset, rule evaluate_model evaluates a trained
# model with Task.evaluate (the training metrics are the core's): one per job, or with training.multiseed every seed
# of a variant in one job. docs/tasks.md.


rule task_data:
    output:
        dataset=TASK_DATASET,
    log:
        log_path("data/task_data"),
    benchmark:
        bench_path("data/task_data")
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        task=TASK,
        config=config,
        seed=config["seed"],
        code=TASK_CODE,
    script:
        "../scripts/task_data.py"


if MULTISEED:

    # training.multiseed: one job per variant evaluates every seed's model in one process, as rule train
    # trained them (the same file per seed as the one-seed rule; the gain is the process start-up and imports)
    rule evaluate_model:
        input:
            model=expand(result(TRAINED["model"]), seed=SEEDS, allow_missing=True),
            hparams=expand(result(TRAINED["hparams"]), seed=SEEDS, allow_missing=True),
            status=expand(result(TRAINED["status"]), seed=SEEDS, allow_missing=True),
            log=expand(result(TRAINED["log"]), seed=SEEDS, allow_missing=True),
            work=expand(result(TRAINED["work"]), seed=SEEDS, allow_missing=True),
            calibration=rules.timing_calibration.output.calibration,
            dataset=TASK_DATASET,
        output:
            metrics=expand(result("metrics/models/{variant}/seed{seed}.json"), seed=SEEDS, allow_missing=True),
        log:
            log_path("metrics/{variant}/seeds"),
        benchmark:
            bench_path("metrics/{variant}/seeds")
        conda:
            "../../envs/train.yaml"
        threads: 1
        params:
            task=TASK,
            config=config,
            seeds=SEEDS,
            code=code_hash("evaluation.py", "training.py") + TASK_CODE,
        script:
            "../scripts/evaluate_model.py"

else:

    rule evaluate_model:
        input:
            model=result(TRAINED["model"]),
            hparams=result(TRAINED["hparams"]),
            status=result(TRAINED["status"]),
            log=result(TRAINED["log"]),
            work=result(TRAINED["work"]),
            calibration=rules.timing_calibration.output.calibration,
            dataset=TASK_DATASET,
        output:
            metrics=result("metrics/models/{variant}/seed{seed}.json"),
        log:
            log_path("metrics/{variant}/seed{seed}"),
        benchmark:
            bench_path("metrics/{variant}/seed{seed}")
        conda:
            "../../envs/train.yaml"
        threads: 1
        params:
            task=TASK,
            config=config,
            seeds=lambda wc: [int(wc.seed)],
            code=code_hash("evaluation.py", "training.py") + TASK_CODE,
        script:
            "../scripts/evaluate_model.py"
