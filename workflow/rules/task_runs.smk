# A multi-task run (config key `tasks`, e.g. config/tasks.yaml): one module of this workflow per run, each
# with the config its file would have alone (balancebench.config.task_runs), its rules named <run>_<rule>
# and its outputs in its own results_dir. Every run's config is validated here, before any job runs.

from snakemake.exceptions import WorkflowError

from balancebench.config import ConfigError, cross_task_settings, task_runs

try:
    TASK_RUNS = task_runs(config["tasks"], "config/config.yaml")
    CROSS_TASK = cross_task_settings(config)
except ConfigError as err:
    raise WorkflowError(str(err))


for task_run in TASK_RUNS:
    task_run_module = f"{task_run}_"

    module:
        name: task_run_module
        snakefile:
            "../../Snakefile"
        config:
            TASK_RUNS[task_run]

    use rule * from task_run_module as task_run_module*


# The verdict across runs (balancebench.stats.cross_task): Friedman over the runs as blocks.
rule cross_task:
    input:
        **{run: getattr(rules, f"{run}_stats_tables").output.ranking for run in TASK_RUNS},
    output:
        blocks=f"{CROSS_TASK['results_dir']}/blocks.csv",
        mean_ranks=f"{CROSS_TASK['results_dir']}/mean_ranks.csv",
        friedman=f"{CROSS_TASK['results_dir']}/friedman.csv",
        posthoc=f"{CROSS_TASK['results_dir']}/posthoc.csv",
        summary=f"{CROSS_TASK['results_dir']}/summary.md",
        figure=f"{CROSS_TASK['results_dir']}/critical_difference.png",
    log:
        f"{CROSS_TASK['results_dir']}/cross_task.log",
    conda:
        "../../envs/stats.yaml"
    params:
        alpha=CROSS_TASK["alpha"],
        posthoc=CROSS_TASK["posthoc"],
        runs=list(TASK_RUNS),
    script:
        "../scripts/cross_task.py"


workflow.localrules("cross_task")


# what rule all (Snakefile) asks for: every run's own rule all, and the verdict across them
RUN_TARGETS = [getattr(rules, f"{run}_all").input for run in TASK_RUNS] + [rules.cross_task.output]
