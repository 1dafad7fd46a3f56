"""Rule prescreen: seed 000's pre-screening verdicts (stability, validity, structure) of every model."""

from balancebench.evaluation import read_model_json
from balancebench.tasks.cg_benzene.metrics import prescreen_table
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk):
    records = [read_model_json(path) for path in smk.input.models]
    prescreen_table(records, smk.params.prescreen).to_csv(smk.output.prescreen, index=False)
