"""Rule search_select: all candidates, the Pareto set per generation, the figure, the cost and the selection."""


from balancebench.balancing import default_params
from balancebench.fileio import read_json
from balancebench.search.selection import candidates_table, cost, pareto_sets, plot_progress, select
from balancebench.search.space import SearchSpec, search_parameters
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    spec = SearchSpec.from_config(smk.wildcards.variant, smk.params.search, job.search_vocabulary)
    evaluations = [read_json(p) for p in smk.input.evaluations]
    table = candidates_table([e["candidate"] for e in evaluations], evaluations, spec.objectives)
    fronts = pareto_sets(table, spec.objectives, spec.kind)
    table.to_csv(smk.output.candidates, index=False)
    fronts.to_csv(smk.output.pareto, index=False)
    # fallback: the variant's configured values of the searched parameters (registry defaults otherwise)
    configured = {**default_params(smk.params.method), **smk.params.method_params}
    targets = search_parameters(configured, job.search_vocabulary)
    fallback = {}
    vocabulary = job.search_vocabulary
    weights = configured.get("weights") or [1.0] * len(vocabulary.loss_names)  # null: A_i = 1 for each loss
    alias_index = dict(vocabulary.weight_aliases)
    for name in spec.parameters:
        if targets.get(name) == "weights":
            fallback[name] = float(weights[alias_index[name]])
        elif targets.get(name) == "training":
            fallback[name] = float(smk.params.training[name])
        else:
            fallback[name] = configured[name]
    selected = select(table, spec.objectives, spec.kind, fallback)
    total = cost(table)
    plot_progress(table, fronts, spec.objectives, spec.kind, smk.output.figure,
                  title=f"{smk.wildcards.variant}: {spec.kind} search, {total['trainings']} trainings")
    job.logger.info("candidates:\n%s", table.to_string(index=False))
    job.logger.info("selection: %s; cost %s", selected, total)
    job.write_json(smk.output.cost, {**total, "search": spec.name, "kind": spec.kind})
    # the loss the values belong to (e.g. training.loss: taylorglo) trains the variant too, fallback or not
    selected["training"] = spec.loss_training(job.search_vocabulary)
    job.write_json(smk.output.selected, {**selected, "search": spec.name, "kind": spec.kind, "cost": total})
