"""The verdict across runs (balancebench.stats.cross_task): Friedman over runs as blocks, Nemenyi, Demsar's CD."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss

from balancebench.config import ConfigError, cross_task_settings
from balancebench.stats.cross_task import (
    critical_difference,
    cross_task_blocks,
    cross_task_verdict,
    plot_critical_difference,
    summary_markdown,
)
from balancebench.stats.hypothesis import StatsError


def ranking(**totals) -> pd.DataFrame:
    return pd.DataFrame({"method": list(totals), "total": list(totals.values()), "rank": ss.rankdata(list(totals.values()))})


def test_blocks_rank_the_common_methods_within_each_run_and_list_the_others():
    blocks, left_out = cross_task_blocks({
        "cg": ranking(a=10.0, b=30.0, c=20.0, only_cg=5.0),
        "digits": ranking(c=1.0, a=3.0, b=3.0),
    })
    assert list(blocks.columns) == ["a", "b", "c"]
    assert blocks.loc["cg"].tolist() == [1.0, 3.0, 2.0]  # only_cg's 5 does not shift the others' ranks
    assert blocks.loc["digits"].tolist() == [2.5, 2.5, 1.0]  # average ranks for ties
    assert left_out == {"only_cg": ["digits"]}


def test_critical_difference_matches_demsars_table():
    # Demsar (2006) Table 5(a): q_0.05 = 1.960 (k=2), 2.569 (k=4), 3.164 (k=10); CD = q sqrt(k(k+1)/(6N))
    for k, q in ((2, 1.960), (4, 2.569), (10, 3.164)):
        assert critical_difference(k, 7) == pytest.approx(q * math.sqrt(k * (k + 1) / (6 * 7)), rel=2e-3)


def test_friedman_over_runs_equals_scipy_and_the_sentence_names_the_winner():
    rng = np.random.default_rng(1)
    runs = {f"run{i}": ranking(best=1.0 + rng.random(), mid=5.0 + rng.random(), worst=9.0 + rng.random())
            for i in range(20)}  # CD(k=3, N=20) = 0.74 < 1: the best is told apart from the second
    verdict = cross_task_verdict(runs)
    blocks = verdict["blocks"].to_numpy()
    expected = ss.friedmanchisquare(*blocks.T)
    row = verdict["friedman"].iloc[0]
    assert row["statistic"] == pytest.approx(expected.statistic) and row["p"] == pytest.approx(expected.pvalue)
    assert verdict["mean_ranks"]["method"].tolist() == ["best", "mid", "worst"]
    assert verdict["sentence"].startswith("best wins across the 20 runs")


def test_two_runs_cannot_show_a_winner_and_the_sentence_says_so():
    verdict = cross_task_verdict({"a": ranking(x=1.0, y=2.0), "b": ranking(x=1.0, y=2.0)})
    assert verdict["friedman"].iloc[0]["p"] >= 0.05  # N = 2, k = 2: p >= 0.157
    assert verdict["sentence"].startswith("No method wins across the 2 runs")


def test_a_winner_not_told_apart_from_the_second():
    # ranks a 1, b 2, c and d 3/4 in turn: Friedman rejects, but a - b = 1 < CD(k=4, N=6) = 1.91
    runs = {f"r{i}": ranking(a=1.0, b=2.0, c=3.0 + i % 2, d=4.0 - i % 2) for i in range(6)}
    verdict = cross_task_verdict(runs)
    assert "no single one wins" in verdict["sentence"] and "a has the best mean rank" in verdict["sentence"]


def test_too_few_runs_or_common_methods_are_refused():
    with pytest.raises(StatsError, match="at least 2 runs"):
        cross_task_verdict({"a": ranking(x=1.0, y=2.0)})
    with pytest.raises(StatsError, match="fewer than 2 methods ran in every run"):
        cross_task_verdict({"a": ranking(x=1.0, y=2.0), "b": ranking(x=1.0, z=2.0)})


def test_outputs_are_written(tmp_path):
    runs = {f"r{i}": ranking(a=1.0 + i % 3, b=2.0, c=3.0) for i in range(5)}
    verdict = cross_task_verdict(runs)
    plot_critical_difference(tmp_path / "cd.png", verdict)
    assert (tmp_path / "cd.png").stat().st_size > 0
    text = summary_markdown(verdict)
    assert "| method | mean rank | within CD of the best |" in text and "| r0 |" in text


def test_cross_task_settings_are_validated_naming_the_field():
    assert cross_task_settings({}) == {"results_dir": "results/cross_task", "alpha": 0.05, "posthoc": "nemenyi"}
    with pytest.raises(ConfigError, match="config error at cross_task.posthoc"):
        cross_task_settings({"cross_task": {"posthoc": "tukey"}})
    with pytest.raises(ConfigError, match="config error at cross_task: .*'alfa'"):
        cross_task_settings({"cross_task": {"alfa": 0.1}})


def test_friedman_of_two_groups_is_the_formula():
    """k = 2 (scipy's friedmanchisquare needs 3): Q = 12/(n k (k+1)) sum R_j^2 - 3 n (k+1), tie-corrected; with
    two groups it equals the sign test's chi-squared (n_plus - n_minus)^2 / (n_plus + n_minus) when no block ties."""
    from balancebench.stats.blocked import friedman

    blocks = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [2.0, 3.0, 4.0, 5.0, 1.0]})  # x lower in 4 of 5
    result = friedman(blocks)
    assert result.statistic == pytest.approx((4 - 1) ** 2 / 5)
    assert result.pvalue == pytest.approx(ss.chi2.sf((4 - 1) ** 2 / 5, 1))
