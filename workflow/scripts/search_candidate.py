"""Rule search_candidate: train one candidate, run the task's evaluation if an objective is one of its metrics,
its errors on the training and validation splits if an objective is train_error / val_error, write its objectives."""

import time
from pathlib import Path

from balancebench.fileio import read_csv, read_json
from balancebench.search.evaluate import evaluate_candidate, split_errors
from balancebench.search.space import SearchSpec, apply_parameters
from balancebench.training import train_model
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    start = time.perf_counter()
    task, vocabulary = job.task, job.search_vocabulary
    spec = SearchSpec.from_config(smk.wildcards.variant, smk.params.search, vocabulary)
    cand = read_json(smk.input.candidates)["candidates"][int(smk.wildcards.c)]
    params, overrides = apply_parameters(cand["params"], smk.params.method, smk.params.method_params, vocabulary)
    training = {**smk.params.training, **spec.training, **overrides}
    dataset = task.read_dataset(smk.input.dataset)
    out = Path(smk.output.status).parent
    job.logger.info("candidate %s: %s -> params %s, training overrides %s", cand["index"], cand["params"],
                    params, {**spec.training, **overrides})
    result = train_model(dataset, smk.params.model, training, smk.params.method, params, smk.params.seed,
                         out_dir=out, checkpoint=smk.params.checkpoint, threads=smk.threads,
                         variant=smk.wildcards.variant, task=task,
                         provenance=job.provenance(variant=smk.wildcards.variant, candidate=cand))
    evaluation = None
    if spec.needs_evaluation:
        evaluation = task.candidate_evaluation(out, dataset, job.config, spec, smk.params.seed, dict(smk.input),
                                               smk.threads, job)
        job.logger.info("candidate evaluation %s: %s", evaluation["status"], evaluation["reason"])
    references = task.dataset_references(dataset, task.loss_settings(training))
    status = read_json(smk.output.status)
    split = None
    if spec.split_objectives and status.get("status") == "completed":  # seed 001's pair: errors on the splits
        split = split_errors(task, spec, out, dataset, task.loss_settings(training), references)
        job.logger.info("candidate %s: split errors %s", cand["index"], split)
    record = evaluate_candidate(spec, status, read_csv(smk.output.log), references, evaluation,
                                seconds=time.perf_counter() - start, split=split)
    job.logger.info("candidate %s: %s %s", cand["index"], record["status"], record["objectives"])
    job.write_json(smk.output.evaluation, {**record, "candidate": cand})
    for name in ("model.pt", "hparams.json"):  # only the objectives are needed downstream; keep the directory small
        (out / name).unlink(missing_ok=True)
