"""Rule search_tell: tell one generation's objectives to the algorithm and checkpoint its state."""


from balancebench.fileio import read_json
from balancebench.search.driver import tell
from balancebench.search.space import SearchSpec
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    spec = SearchSpec.from_config(smk.wildcards.variant, smk.params.search, job.search_vocabulary)
    evaluations = [read_json(p) for p in smk.input.evaluations]
    tell(spec, int(smk.wildcards.g), smk.input.asked, evaluations, smk.output.told)
    job.logger.info("generation %s told: %d of %d candidates feasible", smk.wildcards.g,
                    sum(e["feasible"] for e in evaluations), len(evaluations))
