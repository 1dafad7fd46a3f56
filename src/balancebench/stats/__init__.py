"""The evaluation scheme of seed 000 (Sec. 2.5, 3.2): Kruskal-Wallis, post-hoc tests, ranking.

- :mod:`~balancebench.stats.table`: read and validate the tidy metrics CSV, directions, failed runs.
- :mod:`~balancebench.stats.hypothesis`: Kruskal-Wallis, Tukey HSD, Dunn and Conover-Iman (Holm).
- :mod:`~balancebench.stats.ranking`: scores, weighted totals, ranks, compact letter display.
- :mod:`~balancebench.stats.scheme`: :func:`evaluate`, the whole scheme on one table.
- :mod:`~balancebench.stats.synthetic`: a synthetic table with the pipeline's metrics.

The rules are written out in docs/statistics.md.
"""

from balancebench.stats.hypothesis import POSTHOCS, StatsError, conover, dunn, kruskal_wallis, posthoc, tukey_hsd
from balancebench.stats.ranking import compact_letter_display, metric_scores, ordering_text, rank_methods
from balancebench.stats.scheme import FAILED_RUNS_METRIC, Evaluation, StatsSettings, evaluate
from balancebench.stats.synthetic import synthetic_metrics_table
from balancebench.stats.table import (
    Direction,
    MetricsTable,
    MetricsTableError,
    load_metrics_table,
    parse_direction,
    read_metrics_csv,
    validate_metrics_table,
)

__all__ = [
    "POSTHOCS", "FAILED_RUNS_METRIC", "Direction", "Evaluation", "MetricsTable", "MetricsTableError", "StatsError",
    "StatsSettings", "compact_letter_display", "conover", "dunn", "evaluate", "kruskal_wallis", "load_metrics_table",
    "metric_scores", "ordering_text", "parse_direction", "posthoc", "rank_methods", "read_metrics_csv",
    "synthetic_metrics_table", "tukey_hsd", "validate_metrics_table",
]
