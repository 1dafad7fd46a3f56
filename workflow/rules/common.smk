# Shared helpers: config validation (before any job runs), result paths, code hashes.

import math
import os

from snakemake.exceptions import WorkflowError

from balancebench.balancing import default_params
from balancebench.config import ConfigError, run_config
from balancebench.provenance import code_hash
from balancebench.search.space import SearchSpec, SearchVocabulary
from balancebench.seeding import candidate_seed, run_seed
from balancebench.tasks.base import get_task

try:
    if workflow.modifier.namespace is None:
        # the run's config from its files (balancebench.config.run_config): a config file of another task than
        # the demo's brings its whole config, `balancing` is taken whole from the last file that has it (with
        # that file's controls; docs/search.md), a key given twice in one file is refused
        _resolved = run_config(
            workflow.configfiles,
            workflow.overwrite_configfiles,
            workflow.config_settings.overwrite_config,
            config,
        )
        config.clear()
        config.update(_resolved)
    # else: a run of a multi-task config, resolved and validated by balancebench.config.task_runs
except ConfigError as err:
    raise WorkflowError(str(err))

RESULTS = config["results_dir"]
TASK = config["task"]  # balancebench.tasks: the task whose variants this run trains and ranks
TASK_OBJ = get_task(TASK, config)  # configured for this run (Task.configure)


def result(path):
    """A path under the results directory."""
    return f"{RESULTS}/{path}"


def log_path(name):
    return f"{RESULTS}/logs/{name}.log"


def bench_path(name):
    return f"{RESULTS}/benchmarks/{name}.tsv"


# the task's training data (made by its data stage: its own rules, or rule task_data of task_stages.smk)
TASK_DATASET = result(TASK_OBJ.dataset_file)
# the task's code: a change reruns the jobs that run it
TASK_CODE = code_hash(*TASK_OBJ.code_paths())


SEARCH_VOCABULARY = SearchVocabulary.from_task(TASK_OBJ)
VARIANTS = dict(config["balancing"]["variants"])
SEEDS = list(config["training"]["seeds"])
SEED_DESIGN = config["training"]["seed_design"]
# training settings without the seed list: adding a seed must not rerun the models already trained
TRAINING = {k: v for k, v in config["training"].items() if k not in ("seeds", "seed_design", "multiseed")}
MULTISEED = bool(config["training"].get("multiseed", False))  # one train job per variant (all seeds)
# one search run per variant that names a search: results/search/{variant}/
SEARCHES = {
    name: SearchSpec.from_config(v["search"], config["balancing"]["searches"][v["search"]], SEARCH_VOCABULARY)
    for name, v in VARIANTS.items()
    if v.get("search")
}


def variant_method(variant):
    return VARIANTS[variant]["method"]


# Workflow artifacts a method reads through a parameter: the rule that builds each is their producer.
ARTIFACT_PARAMS = {"optimizer_path": "l2o/optimizer.pt"}  # ml2o / gml2o: rule meta_train_l2o


def variant_artifacts(variant):
    """{param: path} of the artifacts the variant's method reads and the variant does not set itself."""
    own = VARIANTS[variant].get("params", {})
    return {
        param: result(path)
        for param, path in ARTIFACT_PARAMS.items()
        if param in default_params(variant_method(variant)) and param not in own
    }


def variant_params(variant):
    """The variant's parameters as configured, its workflow artifacts filled in (other defaults: the registry)."""
    return {**VARIANTS[variant].get("params", {}), **variant_artifacts(variant)}


def variant_seed(variant, seed):
    """The seed the variant trains with at replicate seed ``seed`` (training.seed_design, balancebench.seeding)."""
    return run_seed(int(seed), variant, SEED_DESIGN)


def search_seed(variant):
    """Replicate seed of a search's candidate trainings (null: the first training seed)."""
    seed = SEARCHES[variant].seed
    return SEEDS[0] if seed is None else seed


def search_last_generation(variant):
    return SEARCHES[variant].n_generations - 1


def search_config(variant):
    """The search's config entry (a job param: editing the search reruns it)."""
    return config["balancing"]["searches"][VARIANTS[variant]["search"]]


def told_input(wildcards):
    g = int(wildcards.g)
    return [] if g == 0 else [result(f"search/{wildcards.variant}/gen{g - 1}/told.json")]


def generation_outputs(wildcards):
    spec = SEARCHES[wildcards.variant]
    gen = f"search/{wildcards.variant}/gen{wildcards.g}"
    return {
        "asked": result(f"{gen}/asked.json"),
        "candidates": result(f"{gen}/candidates.json"),
        "evaluations": [result(f"{gen}/c{i}/evaluation.json") for i in range(spec.n_candidates)],
    }


def all_generations(wildcards):
    spec = SEARCHES[wildcards.variant]
    return {
        "told": result(f"search/{wildcards.variant}/gen{spec.n_generations - 1}/told.json"),
        "candidates": [result(f"search/{wildcards.variant}/gen{g}/candidates.json") for g in range(spec.n_generations)],
        "evaluations": [
            result(f"search/{wildcards.variant}/gen{g}/c{i}/evaluation.json")
            for g in range(spec.n_generations)
            for i in range(spec.n_candidates)
        ],
    }


def train_inputs(wildcards):
    """The CG dataset, the artifacts the variant's method reads, and the search's selection if it has one."""
    inputs = {"dataset": TASK_DATASET, **variant_artifacts(wildcards.variant)}
    if wildcards.variant in SEARCHES:
        inputs["selected"] = result(f"search/{wildcards.variant}/selected.json")
    return inputs


def all_targets():
    """Every stage: the task's data and evaluation outputs (task_targets of its rules), models, metrics,
    statistics and report files."""
    targets = [TASK_DATASET, result("metrics/metrics.csv")]
    targets += task_targets()
    targets += expand(result("search/{variant}/front.png"), variant=SEARCHES)
    return targets + kept_outputs()


# every file a later stage reads or a user keeps (rule all asks for each one), so
# a deleted or damaged one (snakemake -f) is rebuilt by a plain `snakemake`, not only when a figure is stale
KEPT_PER_MODEL = [
    "models/{variant}/seed{seed}/model.pt",
    "models/{variant}/seed{seed}/hparams.json",
    "models/{variant}/seed{seed}/train_log.csv",
    "models/{variant}/seed{seed}/status.json",
    "timing/{variant}/seed{seed}.json",
    "metrics/models/{variant}/seed{seed}.json",
]


def kept_outputs():
    """Models, search states and selections, ML2O optimizer, timing, metrics (the task's own: task_targets)."""
    kept = [result("timing/calibration.json"), result("metrics/timing.csv")]
    for pattern in KEPT_PER_MODEL:
        kept += expand(result(pattern), variant=VARIANTS, seed=SEEDS)
    for variant, spec in SEARCHES.items():
        for g in range(spec.n_generations):
            gen = f"search/{variant}/gen{g}"
            kept += [result(f"{gen}/asked.json"), result(f"{gen}/candidates.json"), result(f"{gen}/told.json")]
            for c in range(spec.n_candidates):
                kept += [result(f"{gen}/c{c}/{name}") for name in ("evaluation.json", "status.json", "train_log.csv")]
        kept += [
            result(f"search/{variant}/{name}")
            for name in ("selected.json", "candidates.csv", "pareto.csv", "cost.json")
        ]
    for variant in VARIANTS:
        for path in variant_artifacts(variant).values():  # the ML2O optimizer and its record
            kept += [path, path.rsplit(".", 1)[0] + ".json"]
    return list(dict.fromkeys(kept))


# -- rule pareto (COSMOS fronts, hypervolume, cost; workflow/rules/pareto.smk) --
from balancebench.balancing import get_method as _pareto_get_method

PARETO = config.get("pareto", {})
# numbers (one per loss), or null: the task's (Task.hypervolume_reference); never derived from the run's points
PARETO_REFERENCE = PARETO.get("reference_point")
CONDITIONED_VARIANTS = [
    v for v in VARIANTS if _pareto_get_method(variant_method(v), **variant_params(v)).preference_dim > 0
]


def pareto_models():
    """[variant, seed, model directory] of every final training."""
    return [[v, int(s), result(f"models/{v}/seed{s}")] for v in VARIANTS for s in SEEDS]


def pareto_candidates():
    """[variant, generation, candidate, directory] of every search training."""
    return [
        [v, g, c, result(f"search/{v}/gen{g}/c{c}")]
        for v, spec in SEARCHES.items()
        for g in range(spec.n_generations)
        for c in range(spec.n_candidates)
    ]


def pareto_artifact_records():
    """[variant, record JSON] of every meta-trained artifact a variant reads (its cost counts for that variant)."""
    return [[v, path.rsplit(".", 1)[0] + ".json"] for v in VARIANTS for path in variant_artifacts(v).values()]


def pareto_inputs(wildcards):
    models = pareto_models()
    candidates = pareto_candidates()
    return {
        "dataset": TASK_DATASET,
        "statuses": [f"{d}/status.json" for _, _, d in models],
        "hparams": [f"{d}/hparams.json" for _, _, d in models],
        "logs": [f"{d}/train_log.csv" for _, _, d in models],
        "search_statuses": [f"{d}/status.json" for *_, d in candidates],
        "search_logs": [f"{d}/train_log.csv" for *_, d in candidates],
        "search_candidates": sorted({result(f"search/{v}/gen{g}/candidates.json") for v, g, _, _ in candidates}),
        "artifact_records": sorted({path for _, path in pareto_artifact_records()}),
    }


# A task's rules (workflow/rules/tasks/<task>/) redefine these two; the generic stages
# (task_stages.smk) have no files of their own to keep, and search candidates read only the dataset.
def task_targets():
    """Files of the task's own stages that rule all keeps (beyond models and metrics)."""
    return []


def search_evaluation_inputs(wildcards):
    """Inputs a search candidate's evaluation reads besides the dataset."""
    return {}


# The claims the task checks on this run's results (Task.claim_declarations; rule claims, claims.smk).
CLAIMS = TASK_OBJ.claims(config)


def claims_inputs(wildcards):
    """The statistics' verdict (the rule runs after them) and every result file a declared claim reads."""
    from balancebench.claims import claim_inputs

    return {
        "verdict": rules.stats_tables.output.verdict,
        "claims": [result(p) for p in claim_inputs(CLAIMS)],
    }


def meta_train_inputs(wildcards):
    """The task's dataset when the meta-training family 'task' trains on it (issue 25), else nothing."""
    families = (config.get("l2o", {}).get("meta", {}) or {}).get("families", {}) or {}
    return {"dataset": TASK_DATASET} if "task" in families else {}


# seed 003's transfer pairs (rule l2o_transfer, l2o.smk)
TRANSFER_PAIRS = sorted(((config.get("l2o", {}) or {}).get("transfer", {}) or {}).get("pairs", {}) or {})
