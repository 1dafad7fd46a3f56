"""Rule search_candidate: train one candidate, run a short NVT if an objective needs one, write its objectives."""

import json
import time
from pathlib import Path

import torch

from balancebench.cg import read_dataset
from balancebench.fileio import read_csv, read_json
from balancebench.search.evaluate import evaluate_candidate, target_variances
from balancebench.search.space import SearchSpec, apply_parameters
from balancebench.training import train_model
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    start = time.perf_counter()
    spec = SearchSpec.from_config(smk.wildcards.variant, smk.params.search)
    cand = read_json(smk.input.candidates)["candidates"][int(smk.wildcards.c)]
    params, overrides = apply_parameters(cand["params"], smk.params.method, smk.params.method_params)
    training = {**smk.params.training, **spec.training, **overrides}
    dataset = read_dataset(smk.input.dataset)
    out = Path(smk.output.status).parent
    job.logger.info("candidate %s: %s -> params %s, training overrides %s", cand["index"], cand["params"],
                    params, {**spec.training, **overrides})
    result = train_model(dataset, smk.params.model, training, smk.params.method, params, smk.params.seed,
                         out_dir=out, checkpoint=smk.params.checkpoint, threads=smk.threads,
                         variant=smk.wildcards.variant,
                         provenance=job.provenance(variant=smk.wildcards.variant, candidate=cand))
    physics = None
    if spec.needs_simulation:
        from balancebench.metrics import MetricSettings, evaluate_model
        from balancebench.simulation import simulate_model

        torch.set_num_threads(smk.threads)
        sim_config = {**smk.params.simulation, **spec.simulation}
        cfg = dict(smk.params.metrics_config)
        cfg["simulation"] = sim_config
        # the NVT temperature as rule simulate, the metric settings as rule model_metrics
        temperature = sim_config.get("temperature") or cfg["atomistic"]["temperature"]
        simulate_model(out, dataset, sim_config, temperature, smk.params.seed, out / "nvt",
                       provenance=json.dumps(job.provenance(), default=str), log=job.logger)
        physics = evaluate_model(smk.wildcards.variant, smk.params.seed, out, out / "nvt",
                                 Path(smk.input.observables).parent,
                                 settings=MetricSettings.from_config(cfg, temperature=sim_config.get("temperature")))
        job.logger.info("candidate NVT %s: %s", physics["simulation_status"], physics["simulation_reason"])
    var_f, var_e = target_variances(dataset, training.get("energy_loss", "total"))
    status = read_json(smk.output.status)
    evaluation = evaluate_candidate(spec, status, read_csv(smk.output.log), var_f, var_e, physics,
                                    seconds=time.perf_counter() - start)
    job.logger.info("candidate %s: %s %s", cand["index"], evaluation["status"], evaluation["objectives"])
    job.write_json(smk.output.evaluation, {**evaluation, "candidate": cand})
    for name in ("model.pt", "hparams.json"):  # only the objectives are needed downstream; keep the directory small
        (out / name).unlink(missing_ok=True)
