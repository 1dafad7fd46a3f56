"""Rule claims: the seed papers' claims declared by the task, checked on this run (balancebench.claims)."""

from pathlib import Path

from balancebench.claims import elsewhere_links, evaluate, write
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    task = job.task
    claims = task.claims(dict(smk.config))
    table = evaluate(claims, smk.params.results_dir, dict(smk.config))
    out_dir = Path(smk.output.csv).parent
    links = elsewhere_links(smk.params.elsewhere, smk.params.base_dir, out_dir)
    write(table, out_dir, task.name, links)
    for row in table.itertuples(index=False):
        job.logger.info("%s: %s %s (p = %s) %s", row.claim, row.status, row.verdict, row.p, row.why)
