"""Rule search_ask: the candidates of one generation (pymoo ask from the told state; grid: its values)."""


from balancebench.search.driver import ask
from balancebench.search.space import SearchSpec
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    spec = SearchSpec.from_config(smk.wildcards.variant, smk.params.search, job.search_vocabulary)
    told = smk.input[0] if len(smk.input) else None
    candidates = ask(spec, int(smk.wildcards.g), smk.params.seed, smk.wildcards.variant, told, smk.output.asked)
    for cand in candidates:
        job.logger.info("generation %s candidate %d: %s", smk.wildcards.g, cand["index"], cand["params"])
    job.write_json(smk.output.candidates, {"search": spec.name, "kind": spec.kind, "candidates": candidates})
