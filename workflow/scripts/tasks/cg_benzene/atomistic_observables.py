"""Rule atomistic_observables: g(r), MSD, density, U_A of the molecule centres of mass, and the figure."""



from balancebench.fileio import read_csv, read_json
from balancebench.tasks.cg_benzene.reference import plot_liquid, trajectory_observables
from balancebench.workflow_io import snakemake_job

EXPERIMENTAL_DENSITY_340K = 0.829  # g/cm^3, docs/atomistic.md

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    p = smk.params.observables
    obs = trajectory_observables(
        smk.input.trajectory, bin_width=p["rdf_bin_width"], r_max=p["rdf_r_max"],
        msd_fit_start=p["msd_fit_start"], msd_max_lag_fraction=p["msd_max_lag_fraction"],
        msd_slope_fraction=p["msd_slope_fraction"], viscosity=p["viscosity"],
    )
    equilibration = read_json(smk.input.equilibration)
    obs.summary["npt_mean_density"] = equilibration["npt_mean_density"]
    obs.summary["npt_density_std"] = equilibration["npt_density_std"]
    obs.rdf.to_csv(smk.output.rdf, index=False)
    obs.msd.to_csv(smk.output.msd, index=False)
    obs.series.to_csv(smk.output.series, index=False)
    trace = read_csv(smk.input.trace)
    plot_liquid(obs, trace, smk.output.figure, experimental_density=EXPERIMENTAL_DENSITY_340K,
                title=f"liquid benzene, {obs.summary['n_particles']} molecules")
    job.write_json(smk.output.observables, obs.summary)
