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
    student_t,
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


def test_student_t_p_values_are_the_t_distributions():
    """a = (4, 5, 6) against b = (1, 2, 3): pooled variance 1, t = 3 / sqrt(2/3) with 4 degrees of freedom; one
    failed run is left out and counted; no spread at all gives no p."""
    from scipy import stats

    t = 3.0 / math.sqrt(2.0 / 3.0)
    p, p_rev, note = student_t([4, 5, 6, np.nan], [1, 2, 3])
    assert p == pytest.approx(stats.t.sf(t, 4)) and p_rev == pytest.approx(stats.t.cdf(t, 4))
    assert "1 failed run(s) left out" in note
    p, p_rev, _ = student_t([4, 5, 6], [1, 2, 3], higher_is_better=False)
    assert p == pytest.approx(stats.t.cdf(t, 4))
    assert student_t([1.0, 1.0], [2.0, 2.0])[0] is None and student_t([1.0], [2.0, 3.0])[0] is None


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
        "seed002_hv", "seed002_cost", "seed002_lambda", "seed001_taylorglo", "seed001_search",
        "seed003_ml2o_transfer"]
    table = evaluate(claims, tmp_path, MD_CONFIG).set_index("claim")
    hv = table.loc["seed002_hv"]
    assert hv["status"] == "checked" and hv["verdict"] == "reproduced", hv["why"]
    assert hv["ours_mean"] == pytest.approx(1.02) and hv["n"] == 5 and hv["p"] == pytest.approx(1 / 32)
    assert "vs 2.000 (grid constant, k = 2)" in hv["ours"]
    cost = table.loc["seed002_cost"]
    assert cost["verdict"] == "reproduced" and cost["ours_mean"] == pytest.approx(8.2 / 20)
    lam = table.loc["seed002_lambda"]
    assert lam["status"] == "checked" and lam["verdict"] == "reproduced" and lam["n"] == 15
    # no TaylorGLO search in this config: seed 001's rows are not run, naming it
    assert list(table.loc[["seed001_taylorglo", "seed001_search"], "status"]) == ["not run", "not run"]
    assert table.loc[["seed001_taylorglo", "seed001_search"], "why"].str.contains("kind nsde").all()
    assert table.loc["seed003_ml2o_transfer", "status"] == "not run"  # no l2o.transfer in this config
    assert "l2o.transfer.pairs" in table.loc["seed003_ml2o_transfer", "why"]


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


SPACE = {f"taylor_theta_{i}": {"low": -1.0, "high": 2.0} for i in range(8)}
MD001_CONFIG = {"training": {"seeds": [1, 2, 3, 4, 5]},
                "balancing": {"variants": {"equal": {"method": "constant", "params": {"weights": [1.0, 1.0]}},
                                           "left_only": {"method": "constant", "params": {"weights": [1.0, 0.0]}},
                                           "taylor_nsde": {"method": "constant", "search": "taylor_nsde"},
                                           "taylor_de": {"method": "constant", "search": "taylor_de"},
                                           "taylor_cmaes": {"method": "constant", "search": "taylor_cmaes"}},
                              "searches": {"taylor_nsde": {"kind": "nsde", "population": 4, "generations": 2,
                                                           "objectives": ["train_error", "val_error"],
                                                           "space": SPACE, "training": {"loss": "taylorglo"}},
                                           **{f"taylor_{k}": {"kind": k, "population": 4, "generations": 2,
                                                              "objectives": ["val_error"], "space": SPACE,
                                                              "training": {"loss": "taylorglo"}}
                                              for k in ("de", "cmaes")}}}}


def _md001_results(tmp_path, acc, status=None, population=None, selected="selected"):
    """metrics.csv rows test_acc_mean per (variant, seed) from ``acc`` (NaN: a failed training); each search's told
    state of its last generation (gen1) with one initial population (``population`` overrides per variant), its
    cost.json (8 trainings) and selected.json."""
    from balancebench.fileio import write_checked_json

    (tmp_path / "metrics").mkdir(parents=True)
    rows = [{"method": v, "seed": s, "metric": "test_acc_mean", "value": a,
             "status": "completed" if np.isfinite(a) else "training_diverged"}
            for v, values in acc.items() for s, a in enumerate(values, start=1)]
    pd.DataFrame(rows).to_csv(tmp_path / "metrics" / "metrics.csv", index=False)
    shared = [[0.1 * i + 0.01 * j for j in range(8)] for i in range(4)]
    for v in ("taylor_nsde", "taylor_de", "taylor_cmaes"):
        d = tmp_path / "search" / v
        (d / "gen1").mkdir(parents=True)
        write_checked_json(d / "gen1" / "told.json", {"initial_population": (population or {}).get(v, shared),
                                                      "history": []})
        (d / "cost.json").write_text('{"trainings": 8, "seconds": 1.0, "failed": 0, "generations": 2}')
        values = {f"taylor_theta_{i}": 0.5 for i in range(8)}
        (d / "selected.json").write_text(pd.Series({"status": selected if v == "taylor_nsde" else "selected",
                                                    "values": values, "reason": "no candidate completed"}).to_json())


def test_multidigits_seed001_claims_on_constructed_results(tmp_path):
    """TaylorGLO (NSDE) 1.5 points above cross-entropy on five seeds: reproduced by the t-test; DE and CMA-ES equal
    to NSDE on every seed, so acc_S + 0.36 points lies above every NSDE value: no gain at p = 1/C(10, 5) = 1/252.
    The cross-entropy side is the `equal` control (equal weights), not `left_only`."""
    from balancebench.tasks.base import get_task
    from balancebench.tasks.multidigits.claims import cross_entropy_variant, seed001_searches

    assert seed001_searches(MD001_CONFIG) == ("taylor_nsde", ["taylor_de", "taylor_cmaes"])
    assert cross_entropy_variant(MD001_CONFIG) == "equal"
    tg = [0.950 + 0.0005 * s for s in range(5)]
    _md001_results(tmp_path, {"taylor_nsde": tg, "taylor_de": tg, "taylor_cmaes": tg,
                              "equal": [0.935 + 0.0005 * s for s in range(5)]})
    claims = get_task("multidigits").claims(MD001_CONFIG)
    table = evaluate(claims, tmp_path, MD001_CONFIG).set_index("claim")
    beat = table.loc["seed001_taylorglo"]
    assert beat["status"] == "checked" and beat["verdict"] == "reproduced", beat["why"]
    assert beat["test"].startswith("Student's two-sample t-test") and beat["n"] == 5
    assert beat["ours_mean"] == pytest.approx(95.1) and "(equal, cross-entropy)" in beat["ours"]
    search = table.loc["seed001_search"]
    assert search["status"] == "checked" and search["verdict"] == "reproduced", search["why"]
    assert search["p"] == pytest.approx(1 / 252) and search["ours_mean"] == pytest.approx(0.0)
    assert "same first population (4 x 8 Latin hypercube, identical in the 3 told states)" in search["ours"]
    assert "8 candidate trainings each" in search["ours"]


def test_multidigits_seed001_claims_reverse_fail_and_not_run(tmp_path):
    """NSDE 2 points above both baselines and below cross-entropy: both reversed. Another first population, a search
    that selected nothing, every training failed: failed. No cross-entropy variant, no baseline: not run."""
    from balancebench.tasks.multidigits.claims import taylorglo_claims

    nsde = [0.950 + 0.0005 * s for s in range(5)]
    low = [0.930 + 0.0005 * s for s in range(5)]
    acc = {"taylor_nsde": nsde, "taylor_de": low, "taylor_cmaes": low, "equal": [0.97 + 0.0005 * s for s in range(5)]}
    _md001_results(tmp_path / "a", acc)
    table = evaluate(taylorglo_claims(MD001_CONFIG), tmp_path / "a", MD001_CONFIG).set_index("claim")
    assert list(table["verdict"]) == ["reversed", "reversed"], list(table["why"])
    assert "gain p = 0.00397" in table.loc["seed001_search", "why"]  # 1/252 for each baseline

    _md001_results(tmp_path / "b", acc, population={"taylor_cmaes": [[0.0] * 8] * 4})
    table = evaluate(taylorglo_claims(MD001_CONFIG), tmp_path / "b", MD001_CONFIG).set_index("claim")
    assert table.loc["seed001_search", "status"] == "failed"
    assert "same initial population" in table.loc["seed001_search", "why"]
    assert table.loc["seed001_taylorglo", "status"] == "checked"

    _md001_results(tmp_path / "c", acc, selected="fallback")
    table = evaluate(taylorglo_claims(MD001_CONFIG), tmp_path / "c", MD001_CONFIG)
    assert (table["status"] == "failed").all() and table["why"].str.contains("RunsFailed").all()

    _md001_results(tmp_path / "d", {**acc, "taylor_nsde": [np.nan] * 5})
    table = evaluate(taylorglo_claims(MD001_CONFIG), tmp_path / "d", MD001_CONFIG)
    assert (table["status"] == "failed").all() and table["why"].str.contains("no training of 'taylor_nsde'").all()

    variants = dict(MD001_CONFIG["balancing"]["variants"])
    for gone in ("equal", "taylor_de", "taylor_cmaes"):
        variants.pop(gone)
    bare = {**MD001_CONFIG, "balancing": {**MD001_CONFIG["balancing"], "variants": variants}}
    table = evaluate(taylorglo_claims(bare), tmp_path / "a", bare).set_index("claim")
    assert list(table["status"]) == ["not run", "not run"]
    assert "no cross-entropy variant" in table.loc["seed001_taylorglo", "why"]
    assert "no single-objective TaylorGLO search" in table.loc["seed001_search", "why"]


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
