"""Rule collect_metrics: the tidy table (method, seed, metric, value, status, ...) of every model's metrics JSON
and the provenance of t_ep / sigma_ep (balancebench.evaluation)."""

import pandas as pd

from balancebench.evaluation import metric_order, read_model_json, tidy_table, timing_table, write_tidy_csv
from balancebench.fileio import read_csv
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    records = [read_model_json(path) for path in smk.input.models]
    table = tidy_table(records, metric_order(job.task))
    hypervolume = read_csv(smk.input.hypervolume)  # rule pareto's rows (weight 0 in the ranking by default)
    write_tidy_csv(smk.output.table, pd.concat([table, hypervolume.reindex(columns=table.columns)], ignore_index=True))
    timing_table(records).to_csv(smk.output.timing, index=False)
