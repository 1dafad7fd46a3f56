# Shared helpers: config validation (before any job runs), result paths, code hashes.

import math

from snakemake.exceptions import WorkflowError

from balancebench.config import ConfigError, validate_config
from balancebench.provenance import code_hash

try:
    validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err))

RESULTS = config["results_dir"]


def result(path):
    """A path under the results directory."""
    return f"{RESULTS}/{path}"


def log_path(name):
    return f"{RESULTS}/logs/{name}.log"


def bench_path(name):
    return f"{RESULTS}/benchmarks/{name}.tsv"


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


METHODS = list(config["balancing"]["methods"])
SEEDS = list(config["training"]["seeds"])
GRID = list(config["balancing"]["constant_grid"]["energy_weights"])
GRID_SEED = config["balancing"]["constant_grid"]["seed"]
if GRID_SEED is None:
    GRID_SEED = SEEDS[0]
# training settings without the seed list: adding a seed must not rerun the models already trained
TRAINING = {k: v for k, v in config["training"].items() if k != "seeds"}
USE_GRID = "constant" in METHODS and config["balancing"]["constant_grid"]["enabled"]


def method_params(method):
    """The method's parameters from config (balancing.params.<method>), defaults filled by the registry."""
    return dict(config["balancing"]["params"].get(method, {}))


def train_inputs(wildcards):
    """The CG dataset, plus the grid-search winner for the constant method."""
    inputs = {"dataset": result("cg/dataset.h5")}
    if wildcards.method == "constant" and USE_GRID:
        inputs["selected"] = result("models/constant_grid/selected.json")
    return inputs


def all_targets():
    """Every stage: atomistic reference, CG data, models, simulations, metrics, statistics and report files."""
    targets = [
        result("atomistic/trajectory.h5"),
        result("atomistic/observables.json"),
        result("atomistic/figures/liquid.png"),
        result("cg/dataset.h5"),
        result("metrics/metrics.csv"),
        result("metrics/prescreen.csv"),
    ]
    targets += expand(result("simulations/{method}/seed{seed}/structure.png"), method=METHODS, seed=SEEDS)
    return targets
