# balancebench: which loss-balancing method should you use? A physics-grounded benchmark.
#
#   snakemake --cores 2                                   the demo (config/config.yaml)
#   snakemake --profile profiles/paper                    the published protocol
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
#
# Stages (one rule file each): atomistic MD (LAMMPS) -> CG mapping -> training per
# method x seed -> CG NVT (ASE) -> metrics -> statistics. See docs/ARCHITECTURE.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/atomistic.smk"
include: "workflow/rules/cg.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/l2o.smk"
include: "workflow/rules/simulation.smk"
include: "workflow/rules/stats.smk"


rule all:
    input:
        all_targets(),
        rules.stats.input,
    default_target: True
