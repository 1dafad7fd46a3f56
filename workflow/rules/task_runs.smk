# A multi-task run (config key `tasks`, e.g. config/tasks.yaml): one module of this workflow per run, each
# with the config its file would have alone (balancebench.config.task_runs), its rules named <run>_<rule>
# and its outputs in its own results_dir. Every run's config is validated here, before any job runs.

from snakemake.exceptions import WorkflowError

from balancebench.config import ConfigError, task_runs

try:
    TASK_RUNS = task_runs(config["tasks"], "config/config.yaml")
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


# what rule all (Snakefile) asks for: every run's own rule all
RUN_TARGETS = [getattr(rules, f"{run}_all").input for run in TASK_RUNS]
