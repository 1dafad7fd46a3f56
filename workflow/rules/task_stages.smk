# The data and evaluation stages of a task without rules of its own (balancebench.tasks.base.Task: own_rules
# False): rule task_data makes its dataset with Task.make_dataset, rule evaluate_model evaluates one trained
# model with Task.evaluate (the training metrics are the core's). docs/tasks.md.


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
        seed=lambda wc: int(wc.seed),
        code=code_hash("evaluation.py", "training.py") + TASK_CODE,
    script:
        "../scripts/evaluate_model.py"
