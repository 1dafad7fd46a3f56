"""Rule build_system: random sparse benzene box -> LAMMPS data file."""

from balancebench.tasks.cg_benzene.atomistic.builder import build_benzene_box, write_lammps_data
from balancebench.workflow_io import snakemake_job

with snakemake_job(snakemake) as job:  # noqa: F821 (snakemake is injected)
    md = snakemake.params.md  # noqa: F821
    system = build_benzene_box(md["n_molecules"], md["start_density"], seed=snakemake.params.seed)  # noqa: F821
    write_lammps_data(system, snakemake.output.data, title=f"OPLS-AA benzene, seed {snakemake.params.seed}")  # noqa: F821
    job.logger.info("built %d molecules in a %.3f A box", system.n_molecules, system.box)
