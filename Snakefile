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


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/training.smk"


# The task's own stages (data, evaluation) where it has rules, else the generic ones (docs/tasks.md).
if TASK_OBJ.rules:

    include: TASK_OBJ.rules

else:

    include: "workflow/rules/task_stages.smk"


include: "workflow/rules/search.smk"
include: "workflow/rules/l2o.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/pareto.smk"
include: "workflow/rules/claims.smk"


# Cheap aggregation rules run on the submitting host under a cluster executor (profiles/slurm):
# a SLURM job each would cost more in queueing and status latency than the work itself.
localrules:
    all,
    search_ask,
    search_tell,
    search_select,
    collect_metrics,
    pareto,
    stats_tables,
    stats_figures,
    stats,
    claims,


rule all:
    default_target: True
    input:
        all_targets(),
        rules.stats.input,
        rules.pareto.output,
        rules.claims.output,
