# The metrics of every trained model (the task's evaluation stage writes one JSON per model:
# metrics/models/{variant}/seed{seed}.json) gathered into the tidy table the statistics read.


rule collect_metrics:
    input:
        models=expand(result("metrics/models/{variant}/seed{seed}.json"), variant=VARIANTS, seed=SEEDS),
        hypervolume=result("pareto/hypervolume.csv"),  # rule pareto: one extra metric row per variant and seed
    output:
        table=report(
            result("metrics/metrics.csv"),
            caption="../report/metrics_table.rst",
            category="Evaluation scheme",
            subcategory="Metrics",
        ),
        timing=result("metrics/timing.csv"),
    log:
        log_path("metrics/collect"),
    benchmark:
        bench_path("metrics/collect")
    conda:
        "../../envs/stats.yaml"
    params:
        task=TASK,
        code=code_hash("evaluation.py") + TASK_CODE,
    script:
        "../scripts/collect_metrics.py"
