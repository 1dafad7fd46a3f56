"""Rule stats_tables: the evaluation scheme on the metrics table -> results/stats/*.csv, summary.md, verdict.

The concerns (per-concern rankings, the physics and cost axes) are the task's declaration in
the task (balancebench.tasks, ``Task.concerns``) unless stats.concerns / stats.concern_axes override them.
"""

from pathlib import Path

from balancebench.report import TABLE_FILES, write_tables
from balancebench.stats import StatsSettings, evaluate, load_metrics_table
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    task = job.task
    settings = StatsSettings.from_config(smk.params.stats, seed_design=smk.params.seed_design,
                                         task_concerns=task.concerns, task_axes=task.concern_axes)
    table = load_metrics_table(smk.input.metrics, directions=settings.directions)
    if table.defaulted:
        job.logger.warning("no direction for %s: assumed 'lower is better'", ", ".join(table.defaulted))
    evaluation = evaluate(table, settings)
    out_dir = Path(smk.output.kruskal).parent
    figures = [Path(smk.output.summary).parent / "figures" / name
               for name in ("physics_vs_cost.png", "metric_correlation.png", "boxplots.png")]
    paths = write_tables(evaluation, out_dir, figures=[str(f.relative_to(out_dir)) for f in figures])
    for name, filename in TABLE_FILES.items():
        assert str(paths[name]) == str(smk.output[name]), (paths[name], smk.output[name])
    job.logger.info("ordering: %s (design %s)", evaluation.ordering, settings.design)
    if evaluation.control_note:
        job.logger.info("%s", evaluation.control_note)
    job.write_json(smk.output.evaluation, evaluation.summary(), metrics_table=str(smk.input.metrics))
