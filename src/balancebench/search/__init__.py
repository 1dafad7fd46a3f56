"""Searches that select a variant's parameters before its seeds train (docs/search.md).

A search proposes candidates (parameter sets), each trained once (one Snakemake job), and
turns their objectives into one selection. Kinds: ``grid`` (every value of one parameter),
``nsde`` (NSGA-II with differential-evolution operators, pymoo ``NSDE``) and ``de`` (the
single-objective baseline, pymoo ``DE`` on the sum of the objectives). The evolutionary kinds
are driven by ask/tell with the algorithm's state (a checksummed JSON history, no pickle) written after
every ask and tell, so Snakemake unrolls the generations as rules and a killed search resumes where it stopped.
"""

from balancebench.search.space import (
    SEARCH_KINDS,
    Dimension,
    SearchSpace,
    SearchSpec,
    SearchVocabulary,
    apply_parameters,
    check_search,
    search_parameters,
)

__all__ = [
    "SEARCH_KINDS",
    "Dimension",
    "SearchSpace",
    "SearchSpec",
    "SearchVocabulary",
    "apply_parameters",
    "check_search",
    "search_parameters",
]
