# One run: one task, its variants and seeds (the Snakefile includes this, alone or as a module per run of
# a multi-task config: workflow/rules/task_runs.smk).

import os


report: "../report/workflow.rst"


include: "common.smk"
include: "training.smk"


# The task's own stages (data, evaluation) where it has rules, else the generic ones (docs/tasks.md).
if TASK_OBJ.rules:

    include: os.path.join(workflow.basedir, TASK_OBJ.rules)

else:

    include: "task_stages.smk"


include: "search.smk"
include: "l2o.smk"
include: "evaluation.smk"
include: "stats.smk"
include: "pareto.smk"
include: "claims.smk"


# Cheap aggregation rules run on the submitting host under a cluster executor (profiles/slurm):
# a SLURM job each would cost more in queueing and status latency than the work itself. (A call, not the
# `localrules:` keyword: in a run of a multi-task config the names carry the run's prefix.)
workflow.localrules(
    *map(
        workflow.modifier.modify_rulename,
        [
            "all",
            "search_ask",
            "search_tell",
            "search_select",
            "collect_metrics",
            "pareto",
            "stats_tables",
            "stats_figures",
            "stats",
            "claims",
        ],
    )
)


# what rule all (Snakefile) asks for: every stage of this run
RUN_TARGETS = [all_targets(), rules.stats.input, rules.pareto.output, rules.claims.output]
