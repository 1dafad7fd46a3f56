"""The evaluation scheme: golden R values, ranking rules, letters, failed runs, table validation."""

import itertools

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
import scipy.stats as ss
from statsmodels.stats.multicomp import pairwise_tukeyhsd
from statsmodels.stats.multitest import multipletests

from balancebench.config import load_config, validate_config
from balancebench.stats import (
    FAILED_RUNS_METRIC,
    Direction,
    MetricsTableError,
    StatsError,
    StatsSettings,
    compact_letter_display,
    conover,
    dunn,
    evaluate,
    kruskal_wallis,
    metric_scores,
    parse_direction,
    rank_methods,
    tukey_hsd,
    validate_metrics_table,
)
from balancebench.stats.hypothesis import adjust_pvalues

# --------------------------------------------------------------------------- golden R data (REFERENCES.md sec. 3)

PLANT_GROWTH = {
    "ctrl": [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14],
    "trt1": [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69],
    "trt2": [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26],
}
INSECT_SPRAYS = {
    "A": [10, 7, 20, 14, 14, 12, 10, 23, 17, 20, 14, 13],
    "B": [11, 17, 21, 11, 16, 14, 17, 17, 19, 21, 7, 13],
    "C": [0, 1, 7, 2, 3, 1, 2, 1, 3, 0, 1, 4],
    "D": [3, 5, 12, 6, 4, 3, 5, 5, 5, 5, 2, 4],
    "E": [3, 5, 3, 5, 3, 6, 1, 1, 3, 2, 6, 4],
    "F": [11, 9, 15, 22, 15, 16, 13, 10, 26, 26, 24, 13],
}
# R TukeyHSD rows "b-a": diff = mean(b) - mean(a)
PLANT_TUKEY = {("ctrl", "trt1"): (-0.371, 0.3908711), ("ctrl", "trt2"): (0.494, 0.1979960),
               ("trt1", "trt2"): (0.865, 0.0120064)}
PLANT_DUNN_HOLM = {("ctrl", "trt1"): 0.263684, ("ctrl", "trt2"): 0.182328, ("trt1", "trt2"): 0.015001}
INSECT_TUKEY = {("A", "B"): (0.8333333, 0.9951810), ("A", "F"): (2.1666667, 0.7542147),
                ("C", "D"): (2.8333333, 0.4920707), ("B", "F"): (None, 0.9603075)}


def _by_name(result):
    """{(a, b): (mean_b - mean_a, p)} for both orientations of every pair (the diff flips sign)."""
    out = {}
    for row in result.pairs.itertuples(index=False):
        out[(row.group_a, row.group_b)] = (row.mean_diff, row.pvalue)
        out[(row.group_b, row.group_a)] = (-row.mean_diff, row.pvalue)
    return out


def _shuffled(groups, order):
    return {name: groups[name] for name in order}


@pytest.mark.parametrize("order", [["ctrl", "trt1", "trt2"], ["trt2", "ctrl", "trt1"]])
def test_plant_growth_matches_r(order):
    groups = _shuffled(PLANT_GROWTH, order)
    kw = kruskal_wallis(groups)
    assert kw.statistic == pytest.approx(7.9882, abs=5e-5)  # R prints 4 decimals
    assert kw.pvalue == pytest.approx(0.01842, abs=5e-6)
    assert kw.df == 2
    tukey = _by_name(tukey_hsd(groups))
    for pair, (diff, p) in PLANT_TUKEY.items():
        assert tukey[pair][0] == pytest.approx(diff, abs=1e-6)
        assert tukey[pair][1] == pytest.approx(p, abs=1e-6)
    dunn_p = _by_name(dunn(groups, "holm"))
    for pair, p in PLANT_DUNN_HOLM.items():
        assert dunn_p[pair][1] == pytest.approx(p, abs=1e-6)


@pytest.mark.parametrize("order", [list("ABCDEF"), list("FEDCBA")])
def test_insect_sprays_matches_r(order):
    groups = _shuffled(INSECT_SPRAYS, order)
    kw = kruskal_wallis(groups)
    assert kw.statistic == pytest.approx(54.691, abs=5e-4)
    assert kw.pvalue == pytest.approx(1.511e-10, rel=1e-3)
    tukey = _by_name(tukey_hsd(groups))
    for pair, (diff, p) in INSECT_TUKEY.items():
        if diff is not None:
            assert tukey[pair][0] == pytest.approx(diff, abs=1e-6)
        assert tukey[pair][1] == pytest.approx(p, abs=1e-6)


def test_statsmodels_tukey_agrees_when_aligned_by_name():
    """statsmodels orders groups with np.unique and reports mean(g2) - mean(g1): aligned by name it agrees."""
    groups = _shuffled(INSECT_SPRAYS, list("FEDCBA"))
    ours = _by_name(tukey_hsd(groups))
    values = np.concatenate([np.asarray(v, float) for v in groups.values()])
    labels = np.repeat(list(groups), [len(v) for v in groups.values()])
    sm = pairwise_tukeyhsd(values, labels)
    for (g1, g2), diff, p in zip(itertools.combinations(sm.groupsunique, 2), sm.meandiffs, sm.pvalues):
        assert ours[(g1, g2)][0] == pytest.approx(diff, abs=1e-12)
        assert ours[(g1, g2)][1] == pytest.approx(p, abs=1e-6)


def test_conover_follows_the_conover_iman_formula():
    """t = |Rbar_i - Rbar_j| / sqrt(S2 (N - 1 - H) / (N - k) (1/n_i + 1/n_j)), N - k df, Holm."""
    groups = INSECT_SPRAYS
    values = np.concatenate([np.asarray(v, float) for v in groups.values()])
    labels = np.repeat(list(groups), [len(v) for v in groups.values()])
    ranks = ss.rankdata(values)
    n, k = values.size, len(groups)
    h = ss.kruskal(*groups.values()).statistic
    s2 = (np.sum(ranks**2) - n * (n + 1) ** 2 / 4) / (n - 1)
    pairs = list(itertools.combinations(groups, 2))
    raw = []
    for a, b in pairs:
        ra, rb = ranks[labels == a].mean(), ranks[labels == b].mean()
        se = np.sqrt(s2 * (n - 1 - h) / (n - k) * (1 / len(groups[a]) + 1 / len(groups[b])))
        raw.append(2 * ss.t.sf(abs(ra - rb) / se, n - k))
    expected = dict(zip(pairs, multipletests(raw, method="holm")[1]))
    ours = _by_name(conover(groups, "holm"))
    for pair, p in expected.items():
        assert ours[pair][1] == pytest.approx(p, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
def test_p_adjustment_matches_statsmodels(method):
    rng = np.random.default_rng(7)
    for m in (1, 2, 6, 10, 15):
        p = rng.uniform(0, 0.3, m)
        p[rng.random(m) < 0.3] = p[0]  # ties
        assert adjust_pvalues(p, method) == pytest.approx(multipletests(p, method=method)[1], abs=1e-15)


def test_tests_refuse_nan():
    with pytest.raises(StatsError, match="NaN"):
        tukey_hsd({"a": [1.0, 2.0, np.nan], "b": [3.0, 4.0, 5.0]})
    with pytest.raises(StatsError, match="NaN"):
        kruskal_wallis({"a": [1.0, 2.0], "b": [np.nan, 4.0]})


def test_identical_values_are_no_difference_not_nan():
    kw = kruskal_wallis({"a": [1.0, 1.0], "b": [1.0, 1.0]})
    assert (kw.statistic, kw.pvalue) == (0.0, 1.0) and "identical" in kw.note


def test_tukey_with_zero_within_group_variance():
    """scipy gives NaN here; equal means -> p = 1, different means -> p = 0."""
    result = _by_name(tukey_hsd({"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0], "c": [1.0, 1.0, 1.0]}))
    assert result[("a", "b")][1] == 0.0
    assert result[("a", "c")][1] == 1.0


# --------------------------------------------------------------------------- tables for the scheme


def tidy(groups_by_metric, directions=None, status=None):
    """A tidy table from {metric: {method: [values]}}; ``status`` maps (method, seed, metric) -> status (value empty)."""
    rows = []
    status = status or {}
    for metric, groups in groups_by_metric.items():
        for method, values in groups.items():
            for seed, value in enumerate(values):
                st = status.get((method, seed, metric), "completed")
                rows.append({"method": method, "seed": str(seed), "metric": metric,
                             "value": "" if st != "completed" else repr(float(value)), "status": st})
    frame = pd.DataFrame(rows)
    if directions:
        frame["direction"] = frame["metric"].map(lambda m: directions.get(m, ("lower", None))[0])
        frame["target"] = frame["metric"].map(lambda m: "" if directions.get(m, ("lower", None))[1] is None
                                              else str(directions[m][1]))
    return frame


SEPARATED = {"A": [1.0, 1.1, 0.9, 1.05, 0.95], "B": [5.0, 5.1, 4.9, 5.05, 4.95], "C": [9.0, 9.1, 8.9, 9.05, 8.95]}


def run(frame, **settings):
    table = validate_metrics_table(frame, directions=settings.pop("directions", None))
    return evaluate(table, StatsSettings(**settings))


# --------------------------------------------------------------------------- ranking


def test_score_rule_and_competition_ranks():
    assert metric_scores(["A", "B", "C"], [("A", "C")]) == {"A": 1, "B": 1, "C": 2}
    assert metric_scores(["A", "B", "C"], [], untestable=["B"]) == {"A": 1, "B": 3, "C": 1}
    scores = pd.DataFrame({"m1": [1, 1, 2, 3], "m2": [1, 2, 1, 1]}, index=["W", "X", "Y", "Z"])
    ranked = rank_methods(scores)
    assert list(ranked.index) == ["W", "X", "Y", "Z"]
    assert list(ranked["rank"]) == [1, 2, 2, 4]
    weighted = rank_methods(scores, {"m2": 0.0})
    assert list(weighted.index) == ["W", "X", "Y", "Z"] and list(weighted["rank"]) == [1, 1, 3, 4]
    with pytest.raises(ValueError, match="m3"):
        rank_methods(scores, {"m3": 1.0})


@pytest.mark.parametrize("posthoc", ["tukey", "dunn", "conover"])
def test_all_equal_methods_are_all_tied(posthoc):
    rng = np.random.default_rng(1)
    same = rng.normal(size=5)
    frame = tidy({f"m{i}": {name: same for name in "PQRST"} for i in range(3)})
    ev = run(frame, posthoc=posthoc)
    assert set(ev.ranking["rank"]) == {1}
    assert ev.ordering == "P = Q = R = S = T"
    assert (ev.letters["letters"] == "a").all()


@pytest.mark.parametrize("posthoc", ["tukey", "dunn", "conover"])
def test_one_clearly_best_method_is_first(posthoc):
    rng = np.random.default_rng(2)
    noise = lambda: rng.normal(0, 0.1, 6)  # noqa: E731
    best = {"low": 0.0, "high": 10.0, "temp": 340.0}
    others = {"low": [5, 6, 7], "high": [5, 6, 7], "temp": [350, 330, 355]}
    groups = {metric: {"X": best[metric] + noise(), **{f"o{i}": v + noise() for i, v in enumerate(others[metric])}}
              for metric in best}
    frame = tidy(groups, directions={"low": ("lower", None), "high": ("higher", None), "temp": ("target", 340)})
    ev = run(frame, posthoc=posthoc)
    assert ev.ranking.index[0] == "X" and (ev.ranking["rank"] == 1).sum() == 1
    assert (ev.letters.loc[ev.letters["method"] == "X", "score"] == 1).all()


def test_non_transitive_equivalence_is_deterministic():
    """A ~ B and B ~ C but A better than C (lower): A = B = 1, C = 2; letters a, ab, b; any row order."""
    groups = {"m": {"A": [0.0, 1.0, 2.0, 3.0, 4.0], "B": [2.0, 3.0, 4.0, 5.0, 6.0], "C": [4.0, 5.0, 6.0, 7.0, 8.0]}}
    frame = tidy(groups)
    ev = run(frame, posthoc_alpha=0.05, screening=0.35)
    pairs = ev.posthoc.set_index(["group_a", "group_b"])["reject"]
    assert not pairs[("A", "B")] and not pairs[("B", "C")] and pairs[("A", "C")]
    scores = ev.ranking["m"].to_dict()
    assert scores == {"A": 1, "B": 1, "C": 2}
    letters = ev.letters[ev.letters["metric"] == "m"].set_index("method")["letters"].to_dict()
    assert letters == {"A": "a", "B": "ab", "C": "b"}
    assert ev.ordering == "A = B > C"
    reordered = run(frame.iloc[::-1].reset_index(drop=True), posthoc_alpha=0.05)
    assert reordered.ranking["m"].to_dict() == scores
    assert reordered.letters[reordered.letters["metric"] == "m"].set_index("method")["letters"].to_dict() == letters


def test_closest_to_target_tests_the_deviation():
    """ON: mean exactly on target but spread +-5; NEAR: 1 above target with little spread.

    Tested on |x - 340| NEAR is better; with direction 'higher' (testing x) FAR would win.
    """
    on = [335.0, 345.0, 334.0, 346.0, 335.5, 344.5]
    near = [341.0, 341.1, 340.9, 341.05, 340.95, 341.0]
    far = [360.0, 361.0, 359.0, 360.5, 359.5, 360.0]
    frame = tidy({"mean_T": {"ON": on, "NEAR": near, "FAR": far}}, directions={"mean_T": ("target", 340.0)})
    ev = run(frame)
    scores = ev.ranking["mean_T"].to_dict()
    assert scores["NEAR"] < scores["ON"] < scores["FAR"]
    assert ev.kruskal.loc[0, "tested"] == "|x - 340|"
    higher = run(frame, directions={"mean_T": Direction("higher")}).ranking["mean_T"].to_dict()
    assert higher["FAR"] == 1 and higher["ON"] > 1 and higher["NEAR"] > 1


def test_higher_is_better_direction():
    ev = run(tidy({"p": SEPARATED}, directions={"p": ("higher", None)}))
    assert ev.ordering == "C > B > A"


def test_metric_weights_change_the_total():
    groups = {"m1": SEPARATED, "m2": {"A": SEPARATED["C"], "B": SEPARATED["B"], "C": SEPARATED["A"]}}
    frame = tidy(groups)
    assert set(run(frame).ranking["rank"]) == {1}  # A wins m1, C wins m2, B second in both: 4, 4, 4
    weighted = run(frame, metric_weights={"m1": 2.0})
    assert weighted.ordering == "A > B > C"
    with pytest.raises(ValueError, match="nope"):
        run(frame, metric_weights={"nope": 1.0})


# --------------------------------------------------------------------------- compact letter display


def _shares_letter(letters, a, b):
    return bool(set(letters[a]) & set(letters[b]))


def test_letters_encode_exactly_the_non_significant_pairs():
    rng = np.random.default_rng(3)
    names = list("ABCDEFG")
    for _ in range(200):
        different = {pair for pair in itertools.combinations(names, 2) if rng.random() < 0.4}
        letters = compact_letter_display(names, different)
        for a, b in itertools.combinations(names, 2):
            assert _shares_letter(letters, a, b) == ((a, b) not in different), (different, letters)
        # scikit-posthocs' set-intersection CLD encodes the same relation
        p = pd.DataFrame(1.0, index=names, columns=names)
        for a, b in different:
            p.loc[a, b] = p.loc[b, a] = 0.001
        theirs = sp.compact_letter_display(p, alpha=0.05).str.replace(" ", "").to_dict()
        for a, b in itertools.combinations(names, 2):
            assert _shares_letter(theirs, a, b) == _shares_letter(letters, a, b)


def test_letter_a_goes_to_the_best_method():
    assert compact_letter_display(["best", "mid", "worst"], [("best", "worst")]) == {
        "best": "a", "mid": "ab", "worst": "b"}
    assert compact_letter_display(["x", "y"], []) == {"x": "a", "y": "a"}


# --------------------------------------------------------------------------- failed runs


def test_failed_run_is_excluded_explicitly_and_never_changes_other_verdicts():
    """A failed run in C: the A-B verdict equals the one without that run, and is counted everywhere.

    The naive path (a NaN in the value column fed to statsmodels) silently never rejects.
    """
    groups = {"m": {"A": [1.0, 1.2, 0.8, 1.1, 0.9], "B": [1.6, 1.8, 1.4, 1.7, 1.5],
                    "C": [2.0, 2.2, 1.9, 2.1, 200.0]}}
    failed = tidy(groups, status={("C", 4, "m"): "unstable"})
    dropped = tidy(groups)
    dropped = dropped[~((dropped["method"] == "C") & (dropped["seed"] == "4"))].reset_index(drop=True)
    ev_failed = run(failed, posthoc_alpha=0.05, failed_values="exclude")
    ev_dropped = run(dropped, posthoc_alpha=0.05, failed_values="exclude")
    key = ["metric", "group_a", "group_b"]
    only_m = [ev.posthoc[ev.posthoc["metric"] == "m"].set_index(key)[["p_adj", "reject"]]
              for ev in (ev_failed, ev_dropped)]
    assert len(only_m[0]) == 3
    pd.testing.assert_frame_equal(*only_m)
    ab = ev_failed.posthoc.set_index(["group_a", "group_b"]).loc[("A", "B")]
    assert ab["reject"] and ab["better"] == "A"
    # counted and shown
    assert ev_failed.kruskal.loc[0, "n_failed"] == 1
    assert ev_failed.posthoc.set_index(["group_a", "group_b"]).loc[("A", "C"), "failed_b"] == 1
    letters = ev_failed.letters.set_index(["metric", "method"])
    assert letters.loc[("m", "C"), "n_failed"] == 1 and letters.loc[("m", "C"), "n_valid"] == 4
    assert ev_failed.ranking.loc["C", "n_failed_runs"] == 1
    assert ev_failed.table.failed_runs()[["method", "seed", "status"]].values.tolist() == [["C", "4", "unstable"]]
    # the pitfall this guards against: one NaN makes statsmodels keep every pair
    values = np.array(groups["m"]["A"] + groups["m"]["B"] + groups["m"]["C"][:4] + [np.nan])
    naive = pairwise_tukeyhsd(values, np.repeat(["A", "B", "C"], 5), alpha=0.05)
    assert not naive.reject.any()


def test_a_failed_runs_reason_is_said_once():
    """Metrics repeat a run's failure with more or less detail; the failed-runs table gives each fact once."""
    frame = tidy({"m": {"A": [1.0, 1.1, 0.9], "B": [2.0, 2.1, 1.9]},
                  "n": {"A": [1.0, 1.1, 0.9], "B": [2.0, 2.1, 1.9]},
                  "k": {"A": [1.0, 1.1, 0.9], "B": [2.0, 2.1, 1.9]}},
                 status={("B", 0, m): "diverged" for m in "mnk"})
    detail = "training diverged: loss exploded at epoch 5"
    frame["reason"] = ""
    b0 = (frame["method"] == "B") & (frame["seed"] == "0")
    frame.loc[b0, "reason"] = ["training diverged", detail, detail + "; counted up to the divergence"]
    failed = run(frame, failed_values="exclude").table.failed_runs()
    assert failed["reason"].tolist() == [detail + "; counted up to the divergence"]


def test_method_with_too_few_valid_runs_is_untestable_and_last():
    groups = {"m": {"A": [1.0, 1.1, 0.9, 1.05], "B": [5.0, 5.1, 4.9, 5.05], "C": [0.0, 0.1, 0.2, 0.3]}}
    frame = tidy(groups, status={("C", s, "m"): "diverged" for s in range(3)})
    ev = run(frame, failed_values="exclude")
    assert ev.ranking.loc["C", "m"] == 3  # k methods: scored last although its one value is the lowest
    assert ev.kruskal.loc[0, "n_methods"] == 2
    assert "untestable" in ev.kruskal.loc[0, "note"] and "C (1 valid)" in ev.kruskal.loc[0, "note"]
    pairs = ev.posthoc[ev.posthoc["metric"] == "m"]
    assert set(pairs["group_a"]) | set(pairs["group_b"]) == {"A", "B"}
    letters = ev.letters[ev.letters["metric"] == "m"].set_index("method")
    assert letters.loc["C", "letters"] == "" and not letters.loc["C", "testable"]
    assert any("untestable" in n for n in ev.notes)


def test_failed_runs_count_against_their_method():
    ok = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02]
    groups = {"m": {"A": ok, "B": ok, "C": ok}}
    frame = tidy(groups, status={("C", s, "m"): "unstable" for s in range(4)})
    ev = run(frame)
    assert FAILED_RUNS_METRIC in ev.ranking.columns
    assert ev.ranking.loc["C", FAILED_RUNS_METRIC] > 1
    assert ev.ranking.index[-1] == "C"
    no_metric = run(frame, failures_as_metric=False)
    assert FAILED_RUNS_METRIC not in no_metric.ranking.columns


def test_missing_and_invalid_rows_are_excluded_but_not_run_failures():
    groups = {"m": SEPARATED, "n": SEPARATED}
    frame = tidy(groups, status={("A", 0, "m"): "invalid", ("B", 1, "n"): "missing"})
    ev = run(frame)
    assert ev.kruskal.set_index("metric").loc["m", "n_failed"] == 1
    assert len(ev.table.failed_runs()) == 0
    assert len(ev.table.excluded_rows()) == 2


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.drop(columns=["status"]), "missing required column.*status"),
    (lambda f: f.assign(value=f["value"].where(f.index != 3, "abc")), r"non-numeric.*line 5.*'abc'"),
    (lambda f: f.assign(value=f["value"].where(f.index != 2, "")), "completed row.*without a finite value.*line 4"),
    (lambda f: f.assign(value=f["value"].where(f.index != 2, "nan")), "completed row.*without a finite value"),
    (lambda f: f.assign(status=f["status"].where(f.index != 0, "failed")), "status must be one of.*'failed'"),
    (lambda f: pd.concat([f, f.iloc[[0]]]), "duplicate"),
    (lambda f: f[~((f["method"] == "B") & (f["seed"] != "0"))], "only one seed for method.*B"),
    (lambda f: f[f["method"] == "A"], "only one method"),
    (lambda f: f.assign(direction="target"), "no target value"),
    (lambda f: f.assign(direction=np.where(np.arange(len(f)) % 2 == 0, "lower", "higher")), "conflicting directions"),
    (lambda f: f.assign(direction="sideways"), "sideways"),
])
def test_bad_tables_say_what_is_wrong(mutate, message):
    frame = tidy({"m": SEPARATED})
    with pytest.raises(MetricsTableError, match=message):
        validate_metrics_table(mutate(frame).reset_index(drop=True))


def test_directions_precedence_and_defaults():
    frame = tidy({"m": SEPARATED, "t": SEPARATED}, directions={"t": ("target", 5.0)})
    frame.loc[frame["metric"] == "m", "direction"] = ""
    table = validate_metrics_table(frame)
    assert table.defaulted == ("m",) and table.directions["t"] == Direction("target", 5.0)
    overridden = validate_metrics_table(frame, directions={"t": Direction("higher")})
    assert overridden.directions["t"] == Direction("higher")
    with pytest.raises(MetricsTableError, match="not in the table"):
        validate_metrics_table(frame, directions={"typo": Direction("lower")})


def test_parse_direction():
    assert parse_direction("mean_T=target:340") == ("mean_T", Direction("target", 340.0))
    assert parse_direction("p_KS=higher") == ("p_KS", Direction("higher"))
    for bad in ("mean_T", "mean_T=target", "mean_T=target:abc", "x=lower:3", "x=up"):
        with pytest.raises(MetricsTableError):
            parse_direction(bad)


def test_settings_from_the_configs(repo):
    assert StatsSettings.from_config(validate_config({})["stats"]) == StatsSettings(bootstrap_replicates=200)
    paper = StatsSettings.from_config(load_config(repo / "config" / "paper.yaml")["stats"])
    assert (paper.alpha, paper.screening, paper.posthoc_alpha, paper.posthoc) == (0.1, 0.35, 0.35, "tukey")
    custom = StatsSettings.from_config(validate_config(
        {"stats": {"directions": {"mean_T": {"direction": "target", "target": 340}}}})["stats"])
    assert custom.directions == {"mean_T": Direction("target", 340.0)}


# --------------------------------------------------------------------------- issue 13: a verdict that holds

from balancebench.stats import ordering_text, synthetic_metrics_table  # noqa: E402
from balancebench.stats.blocked import blocked_posthoc, complete_blocks, friedman  # noqa: E402
from balancebench.stats.robustness import (  # noqa: E402
    _replicate_ranks,
    _tested_matrix,
    power_table,
    seeds_needed,
)
from balancebench.tasks.cg_benzene.metrics import METRICS  # noqa: E402

# R's friedman.test example (Hollander & Wolfe, RoundingTimes: 22 players x 3 base-running methods). R 4.2.2:
#   friedman.test(RoundingTimes): Friedman chi-squared = 11.1428571429, df = 2, p-value = 0.00380504077551
#   Nemenyi, R: ptukey(|Rbar_i - Rbar_j| / sqrt(k (k+1) / (6 n)) * sqrt(2), k, Inf, lower.tail = FALSE)
#   Conover, R: 2 * pt(|R_i - R_j| / sqrt(2 (n A - sum R_j^2) / ((n-1)(k-1))), (n-1)(k-1), lower.tail = FALSE)
ROUNDING_TIMES = np.array([
    5.40, 5.50, 5.55, 5.85, 5.70, 5.75, 5.20, 5.60, 5.50, 5.55, 5.50, 5.40, 5.90, 5.85, 5.70, 5.45, 5.55, 5.60,
    5.40, 5.40, 5.35, 5.45, 5.50, 5.35, 5.25, 5.15, 5.00, 5.85, 5.80, 5.70, 5.25, 5.20, 5.10, 5.65, 5.55, 5.45,
    5.60, 5.35, 5.45, 5.05, 5.00, 4.95, 5.50, 5.50, 5.40, 5.45, 5.55, 5.50, 5.55, 5.55, 5.35, 5.45, 5.50, 5.55,
    5.50, 5.45, 5.25, 5.65, 5.60, 5.40, 5.70, 5.65, 5.55, 6.30, 6.30, 6.25]).reshape(22, 3)
ROUNDING_R = {"friedman": (11.1428571429, 2, 0.00380504077551),
              "nemenyi": {("RoundOut", "NarrowAngle"): 0.637427167019, ("RoundOut", "WideAngle"): 0.00440982044545,
                          ("NarrowAngle", "WideAngle"): 0.0613707592552},
              "conover": {("RoundOut", "NarrowAngle"): 0.301209021439, ("RoundOut", "WideAngle"): 0.000691453476085,
                          ("NarrowAngle", "WideAngle"): 0.0122828573479}}


def _rounding_blocks():
    return pd.DataFrame(ROUNDING_TIMES, columns=["RoundOut", "NarrowAngle", "WideAngle"])


def test_friedman_and_its_posthocs_match_r():
    blocks = _rounding_blocks()
    result = friedman(blocks)
    assert (result.statistic, result.df, result.pvalue) == pytest.approx(ROUNDING_R["friedman"], abs=1e-6)
    for test in ("nemenyi", "conover"):
        pairs = blocked_posthoc(blocks, test, p_adjust="bonferroni" if test == "conover" else "holm").pairs
        got = {(r.group_a, r.group_b): r.pvalue for r in pairs.itertuples()}
        for pair, p in ROUNDING_R[test].items():
            expected = min(1.0, 3 * p) if test == "conover" else p  # conover: Bonferroni over the 3 pairs
            assert got[pair] == pytest.approx(expected, abs=1e-6), (test, pair)


def test_blocked_path_of_the_scheme_reproduces_r_and_auto_design():
    rows = [{"method": m, "seed": str(s), "metric": "time", "value": repr(float(v)), "status": "completed"}
            for s, row in enumerate(ROUNDING_TIMES) for m, v in zip(["RoundOut", "NarrowAngle", "WideAngle"], row)]
    ev = run(pd.DataFrame(rows), design="blocked", blocked_posthoc="nemenyi", posthoc_alpha=0.05)
    k = ev.kruskal.iloc[0]
    assert k["test"] == "friedman" and k["pvalue"] == pytest.approx(ROUNDING_R["friedman"][2], abs=1e-6)
    # at 0.05 only RoundOut-WideAngle is rejected (p 0.0044): WideAngle beats RoundOut, NarrowAngle ties both
    assert ev.ordering == "NarrowAngle = WideAngle > RoundOut"
    stats = validate_config({})["stats"]
    assert StatsSettings.from_config(stats, seed_design="paired").design == "blocked"
    assert StatsSettings.from_config(stats, seed_design="independent").design == "independent"
    assert StatsSettings.from_config(stats).design == "independent"


def test_incomplete_blocks_are_dropped_and_named():
    wide = _rounding_blocks()
    wide.iloc[3, 1] = np.nan
    blocks, dropped = complete_blocks(wide)
    assert len(blocks) == 21 and dropped == ["3"]


def _all_failed_table(variant="ratio"):
    table = synthetic_metrics_table(n_seeds=5, failed_runs={(variant, s): "diverged" for s in range(5)}, seed=0)
    return table.astype(str).replace("nan", "")


@pytest.mark.parametrize("design, posthoc", [("independent", "tukey"), ("independent", "dunn"),
                                             ("independent", "conover"), ("blocked", "tukey")])
def test_variant_whose_every_run_failed_ranks_last(design, posthoc):
    ev = run(_all_failed_table(), design=design, posthoc=posthoc)
    assert ev.ranking.index[-1] == "ratio" and ev.ranking["rank"].iloc[-1] > ev.ranking["rank"].iloc[-2]
    for metric in ev.metrics:
        if ev.settings.weight(metric):
            assert ev.ranking.loc["ratio", metric] == ev.ranking[metric].max()


def test_variant_whose_every_run_failed_ranks_last_through_the_cli(tmp_path, capsys):
    from balancebench.cli import main

    path = tmp_path / "failed.csv"
    _all_failed_table().to_csv(path, index=False)
    assert main(["rank", str(path), "--out", str(tmp_path / "out"), "--no-figures", "--quiet",
                 "--bootstrap", "10"]) == 0
    ranking = pd.read_csv(tmp_path / "out" / "ranking.csv")
    assert ranking["method"].iloc[-1] == "ratio"


@pytest.mark.long  # about 25 s; the ranking of failed runs is also checked at unit level: pytest -m long
def test_variant_whose_every_run_failed_ranks_last_through_snakemake(repo, tmp_path):
    import subprocess
    import sys

    import yaml

    table = tmp_path / "failed.csv"
    _all_failed_table().to_csv(table, index=False)
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    config["stats"]["metrics_table"] = str(table)
    config.setdefault("stats", {})["bootstrap"] = {"replicates": 10, "seed": 0}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "stats", "--cores", "1", "--configfile", str(cfg)],
                          cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranking = pd.read_csv(tmp_path / "results" / "stats" / "ranking.csv")
    assert ranking["method"].iloc[-1] == "ratio"
    summary = (tmp_path / "results" / "stats" / "summary.md").read_text()
    assert "Rank stability" in summary and "Seeds per variant" in summary


def test_failed_values_enter_as_the_worst_and_exclusion_is_the_alternative():
    groups = {"m": {"A": [1.0, 1.1, 0.9, 1.05, 0.95], "B": [5.0, 5.1, 4.9, 5.05, 4.95],
                    "C": [0.1, 0.2, 0.0, 0.15, 0.05]}}
    frame = tidy(groups, status={("C", s, "m"): "unstable" for s in range(3)})
    worst = run(frame, posthoc="dunn")
    letters = worst.letters[worst.letters["metric"] == "m"].set_index("method")
    assert letters.loc["C", "tested_mean"] > letters.loc["B", "tested_mean"]  # 3 of 5 worse than every value
    assert "3 failed value(s) entered as the worst value" in worst.kruskal.loc[0, "note"]
    excluded = run(frame, posthoc="dunn", failed_values="exclude")
    letters = excluded.letters[excluded.letters["metric"] == "m"].set_index("method")
    assert letters.loc["C", "tested_mean"] == pytest.approx(0.1)


def test_censored_values_enter_tied_with_the_largest():
    groups = {"N_ep": {"A": [10, 12, 11, 13], "B": [30, 28, 29, 31], "C": [15, 14, 50, 50]}}
    frame = tidy(groups)
    frame.loc[(frame["method"] == "C") & frame["seed"].isin(["2", "3"]), "status"] = "censored"
    ev = run(frame, posthoc="dunn")
    assert "2 censored value(s)" in ev.kruskal.loc[0, "note"]
    assert ev.letters[ev.letters["metric"] == "N_ep"].set_index("method").loc["C", "n_valid"] == 4


def test_paper_table_2_decisions_through_the_score_rule():
    """Seed 000's Table 2 (Tukey at 0.35) through score = 1 + #significantly better (REFERENCES.md sec. 5).

    mean diff = mean(B) - mean(A); metrics absent from Table 2 were not screened: everyone scores 1. N_ep, t_ep,
    sigma_ep, Delta U and CV_T are lower-is-better; s_MSD read as higher-is-better gives the referee's ordering
    Original SA > Weighted SA > Constant = Ratio > Normalized SA, lower-is-better separates Ratio from Constant.
    Neither is the paper's Table 3 (Weighted SA > Constant > Ratio = Original SA > Normalized SA).
    """
    names = {"constant": "Constant", "ratio": "Ratio"}
    table2 = [  # group A, group B, then (mean diff, reject) for N_ep, t_ep, sigma_ep, Delta U, CV_T, s_MSD
        ("constant", "ratio", (77.0, 0), (-0.250, 0), (0.014, 0), (16.237, 0), (16.237, 0), (-0.018, 0)),
        ("constant", "Normalized SA", (797.0, 1), (-12.972, 1), (-0.294, 1), (4.381, 0), (50.383, 1), (-0.040, 1)),
        ("constant", "Original SA", (207.2, 0), (-12.523, 1), (-0.382, 1), (1.627, 0), (-0.638, 0), (-0.019, 0)),
        ("constant", "Weighted SA", (401.0, 1), (-12.943, 1), (-0.221, 1), (-0.414, 0), (15.701, 0), (-0.011, 0)),
        ("ratio", "Normalized SA", (720.0, 1), (-12.722, 1), (-0.308, 1), (-2.860, 0), (34.594, 1), (-0.022, 0)),
        ("ratio", "Original SA", (130.2, 0), (-12.273, 1), (-0.395, 1), (-5.613, 0), (-16.875, 0), (0.007, 0)),
        ("ratio", "Weighted SA", (324.0, 1), (-12.693, 1), (-0.235, 1), (-7.613, 0), (-0.536, 0), (0.007, 0)),
        ("Normalized SA", "Original SA", (-589.8, 1), (0.449, 0), (-0.086, 0), (-2.753, 0), (-51.468, 1),
         (0.022, 0)),
        ("Normalized SA", "Weighted SA", (-396.0, 1), (0.029, 0), (0.074, 0), (-4.794, 0), (-35.130, 1), (0.029, 0)),
        ("Original SA", "Weighted SA", (193.8, 0), (-0.420, 0), (0.16, 1), (-2.041, 0), (16.339, 0), (0.007, 0)),
    ]
    methods = ["Constant", "Ratio", "Original SA", "Weighted SA", "Normalized SA"]
    tested = ["N_ep", "t_ep", "sigma_ep", "delta_U", "CV_T", "s_MSD"]

    def ordering(s_msd_higher):
        scores = pd.DataFrame(1, index=methods, columns=[n for n, m in METRICS.items() if m.paper])
        for j, metric in enumerate(tested):
            better = []
            for a, b, *cols in table2:
                a, b = names.get(a, a), names.get(b, b)
                diff, reject = cols[j]
                if reject:
                    higher = metric == "s_MSD" and s_msd_higher
                    a_better = diff < 0 if higher else diff > 0
                    better.append((a, b) if a_better else (b, a))
            scores[metric] = pd.Series(metric_scores(methods, better))
        assert len(scores.columns) == 10
        return ordering_text(rank_methods(scores))

    assert ordering(True) == "Original SA > Weighted SA > Constant = Ratio > Normalized SA"
    assert ordering(False) == "Original SA > Weighted SA > Ratio > Constant > Normalized SA"
    # the paper's Table 3 totals (19, 21, 21, 17, 22) give a different ordering than either
    paper = pd.DataFrame({"total": [19, 21, 21, 17, 22]}, index=methods)
    assert ordering_text(rank_methods(paper)) == "Weighted SA > Constant > Ratio = Original SA > Normalized SA"


def test_paper_config_ranks_exactly_the_ten_paper_metrics(repo):
    settings = StatsSettings.from_config(load_config(repo / "config" / "paper.yaml")["stats"])
    weighted = [m for m in [*METRICS, FAILED_RUNS_METRIC] if settings.weight(m) > 0]
    assert weighted == [n for n, m in METRICS.items() if m.paper] and len(weighted) == 10


# --------------------------------------------------------------------------- stability and power


def _synthetic(groups, n_metrics=2):
    return tidy({f"m{i}": groups for i in range(n_metrics)})


def test_rank_stability_known_answers_and_determinism():
    separated = run(_synthetic(SEPARATED), bootstrap_replicates=100, bootstrap_seed=3)
    st = separated.stability.set_index("method")
    assert separated.ordering == "A > B > C"
    assert (st["p_same_rank"] >= 0.99).all() and st["p_same_ranks"].iloc[0] >= 0.99
    again = run(_synthetic(SEPARATED), bootstrap_replicates=100, bootstrap_seed=3)
    pd.testing.assert_frame_equal(separated.stability, again.stability)
    equal = {m: [1.0, 1.0, 1.0, 1.0, 1.0] for m in "ABC"}
    tied = run(_synthetic(equal), bootstrap_replicates=50)
    assert tied.ordering == "A = B = C" and (tied.stability["rank"] == 1).all()
    assert (tied.stability["p_same_rank"] == 1.0).all()


def test_rank_stability_is_low_for_noise():
    rng = np.random.default_rng(1)
    noise = {m: list(rng.normal(size=5)) for m in "ABCD"}
    ev = run(tidy({f"m{i}": noise for i in range(3)}), posthoc="dunn", bootstrap_replicates=100)
    assert ev.stability["p_same_ranks"].iloc[0] < 0.9


@pytest.mark.parametrize("design, posthoc, blocked_posthoc", [
    ("independent", "tukey", "conover"), ("independent", "dunn", "conover"), ("independent", "conover", "conover"),
    ("blocked", "tukey", "conover"), ("blocked", "tukey", "nemenyi")])
def test_bootstrap_inner_loop_reproduces_the_full_scheme(design, posthoc, blocked_posthoc):
    """The numpy fast path of the bootstrap gives the full evaluation's ranks on the observed table."""
    frame = synthetic_metrics_table(n_seeds=5, failed_runs={("ratio", 1): "unstable", ("softadapt", 3): "diverged"},
                                    seed=4).astype(str).replace("nan", "")
    ev = run(frame, design=design, posthoc=posthoc, blocked_posthoc=blocked_posthoc)
    methods = list(ev.table.methods)
    seeds = {m: list(ev.table.runs.loc[ev.table.runs["method"] == m, "seed"]) for m in methods}
    fast = _replicate_ranks(_tested_matrix(ev), methods, seeds, ev.settings, design == "blocked")
    np.testing.assert_array_equal(fast, ev.ranking["rank"].reindex(methods).to_numpy())


def test_seeds_needed_known_answers():
    # two-sample, d = 1, alpha 0.05, power 0.8: 2 (1.95996 + 0.84162)^2 = 15.70 -> 16
    assert seeds_needed(1.0, 0.05, 0.8, paired=False) == 16
    assert seeds_needed(1.0, 0.05, 0.8, paired=True) == 8
    assert seeds_needed(0.0, 0.05, 0.8, paired=False) == np.inf
    assert seeds_needed(np.inf, 0.05, 0.8, paired=False) == 2
    ev = run(_synthetic(SEPARATED, 1), posthoc="tukey")
    power = power_table(ev)
    assert len(power) == 3 and power["reject"].all() and (power["seeds_needed"] <= 5).all()
    equal = run(_synthetic({m: [1.0, 2.0, 3.0, 4.0] for m in "AB"}, 1))
    assert power_table(equal)["seeds_needed"].iloc[0] == np.inf
