# The task cg_benzene's own stages (seed 000): the atomistic reference in LAMMPS, the CG mapping (its data
# stage: TASK_DATASET = cg/dataset.h5) and, per trained model, a CG NVT run with ASE and its ten metrics (its
# evaluation stage: metrics/models/{variant}/seed{seed}.json), plus the pre-screening table.


def md_runtime_minutes(config, phase):
    """A conservative wall-time estimate (minutes) for SLURM from the step count.

    Throughput model measured on 2 cores (docs/atomistic.md): about 27,000 / N_molecules
    steps per second, scaled down by half for safety; never below 10 minutes.
    """
    md = config["atomistic"]
    ps = {
        "equilibrate": md["compress"]["duration"] + md["npt"]["duration"] + md["npt"]["rescale_duration"],
        "production": md["nvt"]["duration"],
    }[phase]
    steps = ps * 1000.0 / md["timestep"]
    steps_per_second = 0.5 * 27000.0 / md["n_molecules"]
    return max(10, math.ceil(steps / steps_per_second / 60.0))


def task_targets():
    """The task's own kept outputs beside the generic ones (rule all)."""
    targets = [
        result("atomistic/trajectory.h5"),
        result("atomistic/observables.json"),
        result("atomistic/figures/liquid.png"),
        result("metrics/prescreen.csv"),
    ]
    for name in ("trajectory.h5", "thermo.csv", "status.json", "structure.png"):
        targets += expand(result(f"simulations/{{variant}}/seed{{seed}}/{name}"), variant=VARIANTS, seed=SEEDS)
    return targets


def search_evaluation_inputs(wildcards):
    """What a search candidate's physics objectives read besides the model: the atomistic reference."""
    return {"observables": result("atomistic/observables.json")}


include: "atomistic.smk"
include: "cg.smk"
include: "simulation.smk"
