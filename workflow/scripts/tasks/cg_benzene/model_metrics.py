"""Rule model_metrics: the ten metrics of one model (seed 000 Sec. 2.3) and its g(r) / MSD figure.

t_ep / sigma_ep: the run's counted work (written by rule train) at this machine's calibration."""

from pathlib import Path

from balancebench.calibration import timing_record
from balancebench.fileio import read_json
from balancebench.tasks.cg_benzene.cg import read_dataset
from balancebench.tasks.cg_benzene.metrics import (
    MetricSettings,
    evaluate_model,
    training_u_per_molecule,
    write_model_json,
)
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    cfg = smk.params.config
    settings = MetricSettings.from_config(cfg, temperature=cfg["simulation"]["temperature"])
    timing = timing_record(read_json(smk.input.work),
                           read_json(smk.input.calibration))
    record = evaluate_model(smk.wildcards.variant, int(smk.wildcards.seed), Path(smk.input.train_status).parent,
                            Path(smk.input.sim_status).parent, Path(smk.input.observables).parent,
                            settings=settings, figure=smk.output.figure, timing=timing,
                            u_reference=training_u_per_molecule(read_dataset(smk.input.dataset)))
    write_model_json(smk.output.metrics, record, provenance=job.provenance())
