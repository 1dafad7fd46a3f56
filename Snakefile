# balancebench: which loss-balancing method should you use? A physics-grounded benchmark.
#
#   snakemake --cores 2                                   the demo (config/config.yaml)
#   snakemake --profile profiles/paper                    the published protocol
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
#
# Stages: the task's data stage -> training per variant x seed (and the searches) -> the task's
# evaluation of each model -> metrics -> statistics. A task with rules of its own brings them
# (workflow/rules/tasks/<task>/); see docs/tasks.md and docs/ARCHITECTURE.md.

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# The library comes from this checkout's src/ for the Snakefile and for every job (local, conda
# env, SLURM job step: PYTHONPATH is inherited): envs/*.yaml pin only third-party packages, and a
# job never runs an older installed copy than the code its code hash describes.
SRC = os.path.join(workflow.basedir, "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != SRC:
    # set, not required: the linter's envvars check is about variables a user must provide
    os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))


# Snakemake says only "not valid JSON or YAML" for a config file with a syntax error: name the line and column
# (for a --configfile, which Snakemake reads before this file: `balancebench check-config FILE`, README)
from balancebench.config import ConfigError, read_yaml

try:
    read_yaml("config/config.yaml")
except ConfigError as err:
    raise WorkflowError(str(err))


configfile: "config/config.yaml"


# A multi-task run (config key `tasks`: run name -> config file; config/tasks.yaml): each run is this workflow
# as a module with the run's resolved config, its rules named <run>_<rule>, its outputs in its own results_dir.
# Inside a module `tasks` is absent (balancebench.config.task_runs refuses a nested list), so it is one run.
if config.get("tasks") and workflow.modifier.namespace is None:

    include: "workflow/rules/task_runs.smk"

else:

    include: "workflow/rules/run.smk"


# Included files cannot set the default target (Snakemake restores it after an include): it is set here.
rule all:
    default_target: True
    input:
        RUN_TARGETS,
