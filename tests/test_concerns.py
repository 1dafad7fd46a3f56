"""Issue 27: per-concern rankings, controls, metric redundancy and the verdict, on constructed tables with known
answers (hand-computed below), plus the demo's controls and the config and CLI errors."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from balancebench.stats import StatsSettings, evaluate, validate_metrics_table
from balancebench.stats.concerns import (
    ConcernError,
    correlation_matrix,
    metric_correlation,
    parse_concern,
    per_concern_weights,
    resolve_concerns,
)

# Three variants, four seeds, groups that never overlap: every Kruskal-Wallis p is 0.0155 (H = 8.77, 2 df) and
# Tukey HSD rejects every pair of distinct groups, so a metric's scores are 1 + the number of better groups.
LOW, MID, HIGH = [1.0, 1.1, 0.9, 1.05], [5.0, 5.1, 4.9, 5.05], [9.0, 9.1, 8.9, 9.05]
GROUPS = {
    # structure (lower is better): A best on both; on s2 B and C are the same population
    "s1": {"A": LOW, "B": MID, "C": HIGH},
    "s2": {"A": LOW, "B": HIGH, "C": [9.05, 8.9, 9.1, 9.0]},
    # dynamics: B best
    "d1": {"A": MID, "B": LOW, "C": HIGH},
    # cost (lower is better): A is the most expensive
    "c1": {"A": HIGH, "B": MID, "C": LOW},
}
CONCERNS = {"structure": ("s1", "s2"), "dynamics": ("d1",), "cost": ("c1",)}


def tidy(groups_by_metric):
    rows = [{"method": method, "seed": str(seed), "metric": metric, "value": repr(float(v)), "status": "completed",
             "direction": "lower"}
            for metric, groups in groups_by_metric.items() for method, values in groups.items()
            for seed, v in enumerate(values)]
    return pd.DataFrame(rows)


def settings(**kw):
    base = dict(concerns=CONCERNS, quality_concerns=("structure", "dynamics"), cost_concerns=("cost",),
                bootstrap_replicates=40, failures_as_metric=False)
    base.update(kw)
    return StatsSettings(**base)


@pytest.fixture(scope="module")
def evaluation():
    return evaluate(validate_metrics_table(tidy(GROUPS)), settings(controls=("C",), main_control="C"))


def test_per_concern_scores_have_the_hand_computed_answer(evaluation):
    """s1: A 1, B 2, C 3; s2: A 1, B = C 2 (same population); d1: B 1, A 2, C 3; c1: C 1, B 2, A 3.
    structure = s1 + s2: A 2, B 4, C 5 -> ranks 1, 2, 3; dynamics: B, A, C; cost: C, B, A."""
    table = evaluation.concern_ranking.set_index(["concern", "method"])
    assert table.loc["structure", "score"].to_dict() == {"A": 2.0, "B": 4.0, "C": 5.0}
    assert table.loc["structure", "rank"].to_dict() == {"A": 1, "B": 2, "C": 3}
    assert table.loc["dynamics", "rank"].to_dict() == {"B": 1, "A": 2, "C": 3}
    assert table.loc["cost", "rank"].to_dict() == {"C": 1, "B": 2, "A": 3}
    assert table.loc[("structure", "A"), "letters"] == "s1 a; s2 a"
    # the paper's total is the plain sum of the four scores: A 1+1+2+3, B 2+2+1+2, C 3+2+3+1
    assert evaluation.ranking["total"].to_dict() == {"B": 7.0, "A": 7.0, "C": 9.0}
    # quality axis = mean over structure and dynamics of the mean metric score; cost = c1's score
    axes = evaluation.quality_cost.set_index("method")
    assert axes.loc["A", "quality"] == pytest.approx((1.0 + 2.0) / 2)
    assert axes.loc["B", "quality"] == pytest.approx((2.0 + 1.0) / 2)
    assert axes.loc["C", "quality"] == pytest.approx((2.5 + 3.0) / 2)
    assert axes["cost"].to_dict() == {"A": 3.0, "B": 2.0, "C": 1.0}
    assert list(axes["control"]) == [False, False, True]


def test_concern_stability_of_separated_groups_is_certain(evaluation):
    stab = evaluation.concern_stability.set_index(["concern", "method"])
    assert stab.loc[("structure", "A"), "p_first"] == 1.0 and stab.loc[("structure", "A"), "p_same_rank"] == 1.0
    assert stab.loc[("cost", "C"), "p_first"] == 1.0
    assert (stab["replicates"] == 40).all()


def test_verdict_names_winners_bootstrap_and_controls(evaluation):
    verdict = evaluation.verdict.set_index("concern")
    assert verdict.loc["structure", "first (kept first by the bootstrap)"] == "A 100 %"
    assert verdict.loc["cost", "first (kept first by the bootstrap)"] == "C (control) 100 %"
    assert verdict.loc["paper's total", "ordering"] == "A = B > C (control)"
    # A and B both beat the control C on the quality axis (1.5 < 2.75)
    assert evaluation.control_note.startswith("2 of 2 balancing methods beat the C control on quality")


def test_no_method_beats_the_main_loss_control_is_said_in_one_sentence():
    groups = {m: {"F": LOW, "X": MID, "Y": HIGH} for m in ("s1", "s2", "d1")}
    groups["c1"] = {"F": MID, "X": LOW, "Y": LOW}
    ev = evaluate(validate_metrics_table(tidy(groups)), settings(controls=("F",), main_control="F"))
    assert ev.control_note.startswith("No balancing method beats the F control on quality (structure + dynamics)")
    assert ev.control_note.count(".") == 1  # one sentence


def test_concerns_leave_the_papers_ranking_and_stability_untouched():
    """Byte-identical ranking.csv and stability.csv with and without concerns (the reproduction stays)."""
    table = validate_metrics_table(tidy(GROUPS))
    plain = evaluate(table, StatsSettings(bootstrap_replicates=40, failures_as_metric=False))
    with_concerns = evaluate(table, settings())
    assert plain.ranking.to_csv() == with_concerns.ranking.to_csv()
    assert plain.stability.to_csv() == with_concerns.stability.to_csv()
    assert plain.power.to_csv() == with_concerns.power.to_csv()


def test_per_concern_preset_counts_each_concern_once():
    metrics = ["s1", "s2", "d1", "c1", "other"]
    assert per_concern_weights(CONCERNS, metrics) == {"s1": 0.5, "s2": 0.5, "d1": 1.0, "c1": 1.0, "other": 0.0}
    ev = evaluate(validate_metrics_table(tidy(GROUPS)), settings(weight_preset="per_concern"))
    # A: (1 + 1) / 2 + 2 + 3 = 6; B: (2 + 2) / 2 + 1 + 2 = 5; C: (3 + 2) / 2 + 3 + 1 = 6.5
    assert ev.ranking["total"].to_dict() == {"B": 5.0, "A": 6.0, "C": 6.5}
    with pytest.raises(ValueError, match="per_concern needs concerns"):
        StatsSettings(weight_preset="per_concern")


def test_rank_correlation_of_monotone_transforms_is_one():
    rng = np.random.default_rng(1)
    x = rng.random(12)
    groups = {"d": {}, "p": {}, "w": {}, "noise": {}}
    for k, method in enumerate(("A", "B", "C")):
        part = x[4 * k: 4 * k + 4]
        groups["d"][method] = list(part)
        groups["p"][method] = list(np.exp(-3 * part))  # decreasing: rho = -1
        groups["w"][method] = list(part**3 + 2)        # increasing: rho = +1
        groups["noise"][method] = list(rng.random(4))
    pairs = metric_correlation(validate_metrics_table(tidy(groups))).set_index(["metric_a", "metric_b"])
    assert pairs.loc[("d", "w"), "spearman"] == pytest.approx(1.0, abs=1e-12)
    assert pairs.loc[("d", "p"), "spearman"] == pytest.approx(-1.0, abs=1e-12)
    assert abs(pairs.loc[("d", "noise"), "spearman"]) < 1.0
    assert (pairs["n_runs"] == 12).all()
    matrix = correlation_matrix(pairs.reset_index())
    assert matrix.loc["w", "d"] == pytest.approx(1.0) and matrix.loc["d", "d"] == 1.0


def test_bad_concerns_name_the_metric():
    metrics = ["s1", "s2", "d1", "c1"]
    with pytest.raises(ConcernError, match="'nope'.*'structure'|'structure'.*'nope'"):
        resolve_concerns({"structure": ["s1", "nope"]}, metrics)
    with pytest.raises(ConcernError, match="'s1' is in two concerns, 'structure' and 'dynamics'"):
        resolve_concerns({"structure": ["s1"], "dynamics": ["s1", "d1"]}, metrics)
    with pytest.raises(ConcernError, match="lists no metric"):
        resolve_concerns({"structure": []}, metrics)
    kept, notes = resolve_concerns({"structure": ["s1", "gr_w1"]}, metrics, strict=False)
    assert kept == {"structure": ("s1",)} and any("gr_w1" in n for n in notes)
    assert parse_concern("structure=d_KS, p_KS") == ("structure", ("d_KS", "p_KS"))
    with pytest.raises(ConcernError, match="NAME=metric"):
        parse_concern("structure")


def test_cli_rank_takes_concerns_and_names_bad_ones(tmp_path, capsys):
    from balancebench.cli import main

    path = tmp_path / "m.csv"
    tidy(GROUPS).to_csv(path, index=False)
    rc = main(["rank", str(path), "--concern", "structure=s1,s2", "--concern", "cost=c1", "--quality", "structure",
               "--cost", "cost", "--bootstrap", "10", "--no-figures", "--quiet", "--out", str(tmp_path / "out")])
    assert rc == 0
    concerns = pd.read_csv(tmp_path / "out" / "concerns.csv")
    assert set(concerns["concern"]) == {"structure", "cost"}
    assert "The verdict" in (tmp_path / "out" / "summary.md").read_text()
    capsys.readouterr()
    assert main(["rank", str(path), "--concern", "structure=s1,nope", "--no-figures", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["rank", str(path), "--concern", "a=s1", "--concern", "b=s1", "--no-figures", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "'s1' is in two concerns" in capsys.readouterr().err


def test_config_names_the_bad_field(demo_config):
    from balancebench.config import ConfigError, validate_config

    bad = dict(demo_config, stats={**demo_config["stats"], "concerns": {"structure": ["d_KS"], "dyn": ["d_KS"]}})
    with pytest.raises(ConfigError, match=r"stats\.concerns\.dyn: metric 'd_KS' is also in concern 'structure'"):
        validate_config(bad)
    bad = dict(demo_config, stats={**demo_config["stats"], "controls": {"variants": ["nope"]}})
    with pytest.raises(ConfigError, match=r"stats\.controls\.variants: nope"):
        validate_config(bad)
    bad = dict(demo_config, stats={**demo_config["stats"], "metric_weights": "per_metric"})
    with pytest.raises(ConfigError, match=r"stats\.metric_weights"):
        validate_config(bad)


def test_demo_config_has_the_controls(repo):
    """Forces only (energy weight 0), equal weights in unit-free form, the best grid weight (constant)."""
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    variants = config["balancing"]["variants"]
    controls = config["stats"]["controls"]
    assert controls["main_loss_only"] == "forces_only"
    assert set(controls["variants"]) == {"forces_only", "equal_unitfree", "constant"}
    assert variants["forces_only"] == {"method": "constant", "params": {"weights": [1.0, 0.0]}}
    assert variants["equal_unitfree"]["params"] == {"weights": [1.0, 1.0], "loss_scale": "target_variance"}
    assert variants["constant"]["search"] == "grid"
    from balancebench.balancing import get_method

    for name in ("forces_only", "equal_unitfree"):
        method = get_method("constant", **variants[name]["params"])
        assert method.initial_coefficients(2).tolist() == variants[name]["params"]["weights"]


def test_benzene_concerns_are_declared_beside_the_metric_registry():
    from balancebench.tasks.cg_benzene.metrics import CONCERNS as BENZENE
    from balancebench.tasks.cg_benzene.metrics import COST_CONCERNS, METRICS, PHYSICS_CONCERNS

    listed = [m for ms in BENZENE.values() for m in ms]
    assert len(listed) == len(set(listed))
    assert set(listed) - {"failed_runs"} <= set(METRICS)
    assert BENZENE["structure"] == ("d_KS", "p_KS", "gr_w1") and BENZENE["dynamics"] == ("s_MSD",)
    assert set(PHYSICS_CONCERNS) | set(COST_CONCERNS) <= set(BENZENE)


def test_verdict_rst_renders_without_docutils_errors(evaluation):
    from docutils.core import publish_parts

    from balancebench.report import verdict_rst

    html = publish_parts(verdict_rst(evaluation), writer="html",
                         settings_overrides={"halt_level": 2, "report_level": 2})["html_body"]
    assert "The verdict" in html and "kept first by the bootstrap" in html and "<li>" not in html


def test_pareto_figure_numbers_the_search_trainings_and_styles_are_distinct(tmp_path):
    from balancebench.pareto import plot_fronts
    from balancebench.plotstyle import style
    from balancebench.tasks.cg_benzene.synthetic import demo_like_front_inputs

    assert len({style(i) for i in range(90)}) == 90
    numbered = plot_fronts(tmp_path / "front.png", *demo_like_front_inputs())
    assert list(numbered["number"]) == list(range(1, 37)) and (tmp_path / "front.png").stat().st_size > 20_000


@pytest.mark.slow
def test_demo_like_table_gives_the_physics_and_correlation_figures(tmp_path):
    """16 variants x 12 metrics through the whole scheme (about 10 s: three post-hoc tests per metric)."""
    from balancebench.report import plot_metric_correlation, plot_physics_vs_cost
    from balancebench.tasks.cg_benzene.synthetic import demo_like_metrics_table

    table = validate_metrics_table(demo_like_metrics_table())
    from balancebench.tasks.cg_benzene.metrics import CONCERNS as BENZENE
    from balancebench.tasks.cg_benzene.metrics import COST_CONCERNS, PHYSICS_CONCERNS

    ev = evaluate(table, StatsSettings(bootstrap_replicates=0, concerns=BENZENE, concerns_strict=False,
                                       quality_concerns=PHYSICS_CONCERNS, cost_concerns=COST_CONCERNS,
                                       controls=("forces_only",), main_control="forces_only"))
    plot_physics_vs_cost(ev.quality_cost, tmp_path / "pvc.png", main_control="forces_only")
    plot_metric_correlation(ev.correlation, tmp_path / "corr.png")
    assert (tmp_path / "pvc.png").stat().st_size > 20_000 and (tmp_path / "corr.png").stat().st_size > 20_000
    pairs = ev.correlation.set_index(["metric_a", "metric_b"])
    assert pairs.loc[("d_KS", "gr_w1"), "spearman"] == pytest.approx(1.0)  # d_KS = 0.26 gr_w1 in this table
    assert math.isnan(ev.quality_cost["quality_q05"].iloc[0])  # no bootstrap, no range


def test_the_demo_controls_train(repo, lj_dataset, tmp_path):
    """forces_only (energy weight 0) and equal_unitfree (loss_scale target_variance) complete a short training and
    log the weights they were given (coef_* are the weights on the raw losses: 1 / Var for the unit-free one)."""
    from balancebench.training import train_model

    variants = yaml.safe_load((repo / "config" / "config.yaml").read_text())["balancing"]["variants"]
    model = {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "num_gaussians": 10, "cutoff": 7.5}
    training = {"max_epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "lr_decay": 0.99, "patience": 5}
    for name in ("forces_only", "equal_unitfree"):
        spec = variants[name]
        result = train_model(lj_dataset, model, training, spec["method"], spec["params"], seed=1,
                             out_dir=tmp_path / name, threads=1)
        assert result.status == "completed", result.reason
        log = pd.read_csv(tmp_path / name / "train_log.csv")
        assert np.isfinite(log[["coef_force", "coef_energy"]].to_numpy()).all()
        if name == "forces_only":
            assert (log["coef_energy"] == 0.0).all() and (log["coef_force"] == 1.0).all()
        else:
            assert (log["coef_force"] != log["coef_energy"]).any()  # 1 / Var(F) against 1 / Var(E)
