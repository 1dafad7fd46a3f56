"""The claims table (balancebench.claims): verdicts from hand-computed exact p-values, statuses for a claim whose
inputs did not run, is not built or breaks, the files it writes, and the task declarations (multidigits' seed 002
claims on a constructed results directory, pinn's anchors, cg_benzene's links)."""

import math

import numpy as np
import pandas as pd
import pytest

from balancebench.claims import (
    COLUMNS,
    Claim,
    ClaimResult,
    MissingInput,
    elsewhere_links,
    evaluate,
    one_sample,
    trend,
    two_groups,
    verdict,
    write,
)


def test_verdict_reads_both_one_sided_p_values():
    assert verdict(0.01, 0.9) == "reproduced"
    assert verdict(0.9, 0.01) == "reversed"
    assert verdict(0.2, 0.3) == "not reproduced"
    assert verdict(0.01, 0.01) == "reversed"  # significant both ways (a non-inferiority margin): it does not match
    assert verdict(None, None) == "not reproduced"
    with pytest.raises(ValueError, match="verdict"):
        ClaimResult("", None, None, 0, "", None, "holds", "")


def test_mann_whitney_p_values_are_the_exact_ones():
    """a = (1, 2, 3) below b = (4, 5, 6): the one ordering of C(6, 3) = 20 that extreme, p = 1/20 = 0.05 exactly;
    the other side p = 1."""
    p, p_rev, note = two_groups([1, 2, 3], [4, 5, 6], lower_is_better=True)
    assert p == pytest.approx(1 / 20) and p_rev == pytest.approx(1.0)
    assert "smallest p the exact test can give is 0.05" in note
    # four against four: 1/C(8, 4) = 1/70; a margin: a = (2..5) all below 2 x b = (5.2..5.8) (non-inferiority)
    # while a's median 3.5 is above b's 2.75
    p, p_rev, note = two_groups([2, 3, 4, 5], [2.6, 2.7, 2.8, 2.9], margin=2.0)
    assert p == pytest.approx(1 / 70) and note == ""
    assert p_rev > 0.05
    # a failed run (inf) ranks worst
    p, _, _ = two_groups([1, 2, np.inf], [3, 4, 5])
    # a's ranks {1, 2, 6}, sum 9; the 3-subsets of 1..6 with a sum <= 9: {123, 124, 125, 134, 126, 135, 234}: 7/20
    assert p == pytest.approx(7 / 20)
    assert two_groups([1.0], [2.0, 3.0])[0] is None


def test_wilcoxon_and_spearman_p_values():
    """Five positive differences: the exact one-sided signed-rank p is 1/2^5 = 0.03125; two values: 0.25 at best."""
    p, p_rev, note = one_sample([1.1, 1.2, 1.3, 1.4, 1.5], 1.0)
    assert p == pytest.approx(1 / 32) and p_rev == pytest.approx(1.0) and note == ""
    p, p_rev, note = one_sample([0.5, 0.6, 0.7, 0.8, 0.9], 1.0, higher_is_claim=False)
    assert p == pytest.approx(1 / 32)
    p, _, note = one_sample([1.1, 1.2], 1.0)
    assert p == pytest.approx(0.25) and "smallest p" in note
    rho, p, p_rev, _ = trend([0, 0, 2, 2, 8, 8], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert rho == pytest.approx(np.corrcoef([1.5, 1.5, 3.5, 3.5, 5.5, 5.5], [1, 2, 3, 4, 5, 6])[0, 1])
    assert p < 0.05 < p_rev
    assert trend([1, 1, 1], [1, 2, 3])[0] is None


def _claim(cid, check=None, **kw):
    return Claim(cid, "seed 999", f"{cid} holds.", "1.0", check, **kw)


def test_evaluate_gives_a_status_for_every_claim(tmp_path):
    (tmp_path / "metrics").mkdir()
    pd.DataFrame({"method": ["a", "a", "b", "b"], "seed": [1, 2, 1, 2], "metric": "err",
                  "value": [1.0, 2.0, 3.0, np.nan], "status": ["completed"] * 3 + ["diverged"]}).to_csv(
        tmp_path / "metrics" / "metrics.csv", index=False)

    def good(inputs):
        a = inputs.metric("a", "err")
        b = inputs.metric("b", "err", failed_value=math.inf)
        assert b.tolist() == [3.0, math.inf]
        assert inputs.metric("b", "err").tolist() == [3.0]  # completed only
        p, p_rev, note = two_groups(a, b)
        return ClaimResult("a 1.5", 1.5, 0.7, 2, "Mann-Whitney U", p, verdict(p, p_rev), "because" + note)

    def absent(inputs):
        return inputs.metric("zzz", "err")

    def broken(inputs):
        raise ZeroDivisionError("x")

    claims = [_claim("ok", good, inputs=("metrics/metrics.csv",)), _claim("absent", absent),
              _claim("nofile", lambda i: i.csv("pareto/fronts.csv")), _claim("broken", broken),
              _claim("norun", good, missing="not in this config: no b"), _claim("later", pending="built elsewhere")]
    table = evaluate(claims, tmp_path, {})
    assert list(table.columns) == COLUMNS
    by = table.set_index("claim")
    assert by.loc["ok", "status"] == "checked" and by.loc["ok", "verdict"] == "not reproduced"
    assert by.loc["ok", "p"] == pytest.approx(1 / 6)  # a = {1, 2} below b = {3, inf}: 1 of C(4, 2) = 6
    assert by.loc["absent", "status"] == "not run" and "zzz" in by.loc["absent", "why"]
    assert by.loc["nofile", "status"] == "not run" and "pareto/fronts.csv is missing" in by.loc["nofile", "why"]
    assert by.loc["broken", "status"] == "failed" and "ZeroDivisionError" in by.loc["broken", "why"]
    assert by.loc["norun", "status"] == "not run" and by.loc["norun", "why"] == "not in this config: no b"
    assert by.loc["later", "status"] == "not built"
    paths = write(table, tmp_path / "out", "toy", [{"task": "other", "config": "c.yaml", "table": "../x/claims.md",
                                                     "exists": False}])
    assert pd.read_csv(paths["csv"])["claim"].tolist() == ["ok", "absent", "nofile", "broken", "norun", "later"]
    md = paths["md"].read_text()
    assert "| ok | seed 999 | 1.0 | a 1.5 | Mann-Whitney U | 0.167 | not reproduced |" in md
    assert "*not built*" in md and "[../x/claims.md](../x/claims.md) (not made yet)" in md
    assert "<table" in paths["html"].read_text()
    assert MissingInput.__name__ in repr(MissingInput("x"))


def test_claim_inputs_skip_claims_that_will_not_run():
    from balancebench.claims import claim_inputs

    claims = [_claim("a", inputs=("x.csv", "y.csv")), _claim("b", inputs=("y.csv", "z.csv"), missing="no"),
              _claim("c", inputs=("w.csv",), pending="later"), _claim("d", inputs=("x.csv", "v.csv"))]
    assert claim_inputs(claims) == ["x.csv", "y.csv", "v.csv"]


# -- the tasks' declarations --------------------------------------------------------------------------------------
MD_CONFIG = {"training": {"seeds": [1, 2, 3, 4, 5]},
             "balancing": {"variants": {"constant": {"method": "constant", "search": "grid"},
                                        "cosmos": {"method": "cosmos"},
                                        "cosmos_lambda0": {"method": "cosmos", "params": {"penalty": 0.0}},
                                        "cosmos_lambda8": {"method": "cosmos", "params": {"penalty": 8.0}},
                                        "mgda": {"method": "mgda"}},
                           "searches": {"grid": {"kind": "grid", "parameter": "weight_right", "values": [0.3, 3]}}}}


def _md_results(tmp_path, cosmos_point, seconds):
    """A results tree: each COSMOS seed's front is one point (f, f) in CE / ln 10 (its HV at (2, 2) nats is
    (2 - f ln 10)^2 nats^2); the grid: two trainings whose points give a hand-computable HV."""
    ln10 = math.log(10)
    rows = []
    for variant, penalty in (("cosmos", 2.0), ("cosmos_lambda0", 0.0), ("cosmos_lambda8", 8.0)):
        for seed in range(1, 6):
            spread = 0.01 * penalty + 0.001 * seed  # wider with lambda: a trend the test must find
            f = cosmos_point[seed - 1] if variant == "cosmos" else 0.5
            for ray, (a, b) in enumerate([(f, f), (f - spread, f + spread)] if variant != "cosmos" else [(f, f)]):
                rows.append({"variant": variant, "seed": seed, "ray": ray, "f_left": a, "f_right": b})
    (tmp_path / "pareto").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "pareto" / "fronts.csv", index=False)
    # grid points in nats (0.5, 1.0) and (1.0, 0.5): HV at (2, 2) = 1.5 * 1.0 + 1.0 * 0.5 = 2.0 nats^2
    pd.DataFrame({"number": [1, 2], "method": ["constant", "constant"], "label": ["w=0.3", "w=3"],
                  "f_left": [0.5 / ln10, 1.0 / ln10], "f_right": [1.0 / ln10, 0.5 / ln10]}).to_csv(
        tmp_path / "pareto" / "search_candidates.csv", index=False)
    pd.DataFrame({"variant": ["constant"]}).to_csv(tmp_path / "pareto" / "cost.csv", index=False)
    for c, sec in enumerate((10.0, 10.0)):
        d = tmp_path / "search" / "constant" / "gen0" / f"c{c}"
        d.mkdir(parents=True)
        pd.DataFrame({"epoch": [1, 2], "seconds": [sec / 2, sec / 2]}).to_csv(d / "train_log.csv", index=False)
    for seed, sec in enumerate(seconds, start=1):
        d = tmp_path / "models" / "cosmos" / f"seed{seed}"
        d.mkdir(parents=True)
        pd.DataFrame({"epoch": [1], "seconds": [sec]}).to_csv(d / "train_log.csv", index=False)


def test_multidigits_seed002_claims_on_constructed_results(tmp_path):
    """COSMOS fronts of one point (f, f): HV (2 - f ln 10)^2 nats^2 against the grid's 2.0. Five seeds whose ratios
    all exceed 0.97: reproduced (p = 1/32); the cost 8 s per training against the grid's 20 s, ratio 0.4 < 2/k = 1:
    reproduced; the fronts widen with lambda: reproduced."""
    from balancebench.tasks.base import get_task
    from balancebench.tasks.multidigits.claims import cosmos_claims

    ln10 = math.log(10)
    f = [(2 - math.sqrt(2.0 * r)) / ln10 for r in (1.0, 1.01, 1.02, 1.03, 1.04)]  # HV ratios 1.00 .. 1.04
    _md_results(tmp_path, f, [8.0, 8.0, 8.0, 8.0, 9.0])
    claims = get_task("multidigits").claims(MD_CONFIG)
    assert [c.id for c in claims] == [c.id for c in cosmos_claims(MD_CONFIG)] == [
        "seed002_hv", "seed002_cost", "seed002_lambda", "seed001_taylorglo", "seed003_ml2o"]
    table = evaluate(claims, tmp_path, MD_CONFIG).set_index("claim")
    hv = table.loc["seed002_hv"]
    assert hv["status"] == "checked" and hv["verdict"] == "reproduced", hv["why"]
    assert hv["ours_mean"] == pytest.approx(1.02) and hv["n"] == 5 and hv["p"] == pytest.approx(1 / 32)
    assert "vs 2.000 (grid constant, k = 2)" in hv["ours"]
    cost = table.loc["seed002_cost"]
    assert cost["verdict"] == "reproduced" and cost["ours_mean"] == pytest.approx(8.2 / 20)
    lam = table.loc["seed002_lambda"]
    assert lam["status"] == "checked" and lam["verdict"] == "reproduced" and lam["n"] == 15
    assert list(table.loc[["seed001_taylorglo", "seed003_ml2o"], "status"]) == ["not built", "not built"]


def test_multidigits_claims_reverse_and_not_run(tmp_path):
    """Fronts with 80 % of the grid's HV on every seed: reversed. Without a grid or with one lambda: not run, naming
    what the config lacks."""
    from balancebench.tasks.multidigits.claims import cosmos_claims

    ln10 = math.log(10)
    _md_results(tmp_path, [(2 - math.sqrt(2.0 * 0.8)) / ln10] * 4 + [(2 - math.sqrt(2.0 * 0.79)) / ln10],
                [30.0] * 5)
    table = evaluate(cosmos_claims(MD_CONFIG), tmp_path, MD_CONFIG).set_index("claim")
    assert table.loc["seed002_hv", "verdict"] == "reversed"
    assert table.loc["seed002_cost", "verdict"] == "reversed"  # 30 s > the grid's 20 s on every seed
    bare = {"training": {"seeds": [1, 2]}, "balancing": {"variants": {"cosmos": {"method": "cosmos"}}}}
    table = evaluate(cosmos_claims(bare), tmp_path, bare).set_index("claim")
    assert table.loc["seed002_hv", "status"] == "not run" and "no constant-weight grid" in table.loc["seed002_hv",
                                                                                                      "why"]
    assert table.loc["seed002_lambda", "status"] == "not run" and "[2.0]" in table.loc["seed002_lambda", "why"]


def test_pinn_anchor_claims(tmp_path):
    """LRA below the plain PINN on all of five seeds: reproduced at p = 1/C(10, 5) = 1/252; no ReLoBRaLo variant:
    not run; another problem: not run, naming it."""
    from balancebench.tasks.base import get_task

    config = {"pinn": {"problem": "helmholtz2d"},
              "balancing": {"variants": {"constant": {"method": "constant"}, "lra": {"method": "lra"}}}}
    (tmp_path / "metrics").mkdir()
    rows = [{"method": m, "seed": s, "metric": "rel_l2", "value": v * (1 + 0.01 * s), "status": "completed"}
            for m, v in (("constant", 0.15), ("lra", 0.05)) for s in range(1, 6)]
    pd.DataFrame(rows).to_csv(tmp_path / "metrics" / "metrics.csv", index=False)
    table = evaluate(get_task("pinn").claims(config), tmp_path, config).set_index("claim")
    lra = table.loc["pinn_lra_beats_plain"]
    assert lra["verdict"] == "reproduced" and lra["p"] == pytest.approx(1 / 252)
    assert table.loc["pinn_relobralo_matches_lra", "status"] == "not run"
    assert "no relobralo variant" in table.loc["pinn_relobralo_matches_lra", "why"]
    burgers = {**config, "pinn": {"problem": "burgers1d"}}
    table = evaluate(get_task("pinn").claims(burgers), tmp_path, burgers)
    assert (table["status"] == "not run").all() and table["why"].str.contains("burgers1d").all()


def test_benzene_has_no_claims_of_its_own_and_links_to_the_seeds_ground(tmp_path):
    from pathlib import Path

    from balancebench.claims import markdown
    from balancebench.tasks.base import get_task

    task = get_task("cg_benzene")
    assert task.claims({}) == []
    repo = Path(__file__).resolve().parents[1]
    links = elsewhere_links(task.claims_elsewhere, repo, repo / "results" / "cg_benzene")
    assert [link["task"] for link in links] == ["multidigits", "pinn"]
    assert links[0]["table"] == "../multidigits/claims.md"  # results/{task}: results/multidigits
    assert links[1]["table"] == "../pinn/helmholtz2d/claims.md"
    md = markdown(evaluate([], tmp_path, {}), "cg_benzene", links)
    assert "declares no claim of its own" in md and "--configfile config/multidigits.yaml" in md
