"""Rule pareto: fronts, hypervolume rows, chosen preferences, cost table, figure and note (balancebench.pareto)."""

import json
from pathlib import Path

from balancebench.fileio import read_json
from balancebench.pareto import (
    collect,
    cost_table,
    fronts_table,
    plot_fronts,
    summary_note,
    training_seconds,
)
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    task = job.task
    refs = task.dataset_references(task.read_dataset(smk.input.dataset), task.loss_settings(smk.params.training))
    job.logger.info("references (target variances): %s", refs)
    conditioned, finals, costs = {}, {}, []
    for variant, seed, directory in smk.params.models:
        (conditioned if variant in smk.params.conditioned else finals)[(variant, int(seed))] = directory
        seconds, epochs = training_seconds(directory)
        costs.append({"variant": variant, "role": "final", "seconds": seconds, "epochs": epochs})
    candidates, generations = [], {}  # each generation's candidates.json, read once
    for variant, g, c, directory in smk.params.candidates:
        listing = Path(directory).parent / "candidates.json"
        if listing not in generations:
            generations[listing] = read_json(listing)["candidates"]
        listed = generations[listing][int(c)]
        label = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in listed["params"].items())
        candidates.append({"variant": variant, "label": label, "dir": directory, "seed": None,
                           "params": listed["params"]})
        seconds, epochs = training_seconds(directory)
        costs.append({"variant": variant, "role": "grid", "seconds": seconds, "epochs": epochs})
    for variant, record in smk.params.artifact_records:  # e.g. ML2O's meta-training, charged to each user
        seconds = float(read_json(record)["meta_training_seconds"])
        costs.append({"variant": variant, "role": "meta", "seconds": seconds, "epochs": 0})
    # the hypervolume reference point: the config's, else the task's (fixed before the run, never from its points)
    configured = smk.params.reference_point
    reference_point = configured if configured is not None else task.hypervolume_reference(refs)
    setting = "pareto.reference_point" if configured is not None else f"the task {task.name}'s"
    tables = collect(refs, conditioned, finals, candidates, reference_point, task.search_weight_aliases())
    fronts_table(tables["fronts"]).to_csv(smk.output.fronts, index=False)
    tables["chosen"].to_csv(smk.output.chosen, index=False)
    tables["points"].assign(references=json.dumps(refs)).to_csv(smk.output.points, index=False)
    tables["hypervolume"].to_csv(smk.output.hypervolume, index=False)
    tables["hv_summary"].to_csv(smk.output.hv_summary, index=False)
    cost = cost_table(costs)
    cost.to_csv(smk.output.cost, index=False)
    reference_point = tables["reference_point"]
    job.logger.info("hypervolume reference point (%s): %s", setting, reference_point.tolist())
    numbered = plot_fronts(smk.output.figure, tables["fronts"], tables["points"], reference_point,
                           tables["candidates"], axis_labels=task.objective_labels)
    numbered.to_csv(smk.output.candidates, index=False)
    note = summary_note(tables, cost, reference_point, setting=setting)
    Path(smk.output.note).write_text(note)
    job.logger.info("%s", note)
