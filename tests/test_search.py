"""Searches: ask/tell resumes from the pickled state to the same candidates, the stored Pareto sets are
non-dominated, candidates stay within bounds, failures never become NaN, bad input is named."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from balancebench.fileio import read_checked_json
from balancebench.search.driver import ask, objective_matrix, tell
from balancebench.search.evaluate import evaluate_candidate, split_errors
from balancebench.search.selection import candidates_table, non_dominated, pareto_sets, plot_progress, select
from balancebench.search.space import SearchSpec, SearchVocabulary, apply_parameters, check_search, check_variant_search
from balancebench.tasks.base import get_task

CG = SearchVocabulary.from_task(get_task("cg_benzene"))  # the searches of these tests are the CG task's

SPACE = {"energy_weight": {"low": 1e-4, "high": 1.0, "scale": "log10"},
         "force_loss_alpha": {"low": 0.0, "high": 2.0}}


def spec(kind="nsde", population=6, generations=3, objectives=("val_force", "val_energy")):
    return SearchSpec.from_config("s", {"kind": kind, "space": SPACE, "population": population,
                                        "generations": generations, "objectives": list(objectives)}, CG)


def synthetic_evaluation(params, fail=False):
    """A two-objective test function of the decoded parameters (a trade-off in the energy weight)."""
    if fail:
        return {"feasible": False, "status": "training_diverged", "reason": "test", "criterion": None,
                "seconds": 0.0, "objectives": {"val_force": math.nan, "val_energy": math.nan}}
    w, a = math.log10(params["energy_weight"]), params["force_loss_alpha"]
    f1 = (w + 4.0) ** 2 / 16 + 0.1 * (a - 1.5) ** 2
    f2 = w**2 / 16 + 0.1 * (a - 1.0) ** 2
    return {"feasible": True, "status": "completed", "reason": "", "criterion": f1 + f2, "seconds": 1.0,
            "objectives": {"val_force": f1, "val_energy": f2}}


def run_search(s, tmp, seed=3, restart_every_step=True, fail=lambda g, i: False):
    """Unrolled like the workflow: every ask and tell a separate call reading the previous file."""
    all_cands, all_evals = [], []
    told = None
    for g in range(s.n_generations):
        asked = tmp / f"gen{g}" / "asked.json"
        cands = ask(s, g, seed, "v", told, asked)
        evals = []
        for c in cands:
            e = synthetic_evaluation(c["params"], fail=fail(g, c["index"]))
            if not e["feasible"]:
                e["objectives"] = {o: s.failure_penalty for o in s.objectives}
            evals.append(e)
        told = tmp / f"gen{g}" / "told.json"
        tell(s, g, asked, evals, told)
        all_cands += cands
        all_evals += evals
    return all_cands, all_evals


def test_killed_search_resumes_to_the_same_candidates(tmp_path):
    """Kill after generation 0's tell: a fresh ask from the stored told state gives the same generations 1-2."""
    s = spec()
    full, _ = run_search(s, tmp_path / "a")
    # the interrupted run: generation 0 as before, then the files of generations 1-2 are lost
    part, _ = run_search(spec(generations=1), tmp_path / "b")
    told = tmp_path / "b" / "gen0" / "told.json"
    resumed = list(part)
    for g in (1, 2):
        asked = tmp_path / "b" / f"gen{g}" / "asked.json"
        cands = ask(s, g, 3, "v", told, asked)
        evals = [synthetic_evaluation(c["params"]) for c in cands]
        told = tmp_path / "b" / f"gen{g}" / "told.json"
        tell(s, g, asked, evals, told)
        resumed += cands
    assert [c["x"] for c in resumed] == [c["x"] for c in full]
    # and a generation asked twice from the same told state is the same
    again = ask(s, 1, 3, "v", tmp_path / "a" / "gen0" / "told.json", tmp_path / "again.json")
    assert [c["x"] for c in again] == [c["x"] for c in full if c["generation"] == 1]


def test_same_seed_same_candidates_other_seed_other_candidates(tmp_path):
    a, _ = run_search(spec(), tmp_path / "a", seed=3)
    b, _ = run_search(spec(), tmp_path / "b", seed=3)
    c, _ = run_search(spec(), tmp_path / "c", seed=4)
    assert [x["x"] for x in a] == [x["x"] for x in b]
    assert [x["x"] for x in a] != [x["x"] for x in c]


@pytest.mark.parametrize("kind", ["nsde", "de", "cmaes"])
def test_candidates_within_bounds_and_decoded_on_their_scale(tmp_path, kind):
    s = spec(kind=kind)
    cands, _ = run_search(s, tmp_path)
    assert len(cands) == s.population * s.generations
    for c in cands:
        w, a = c["params"]["energy_weight"], c["params"]["force_loss_alpha"]
        assert 1e-4 <= w <= 1.0 and 0.0 <= a <= 2.0
        assert w == pytest.approx(10 ** c["x"][0]) and a == pytest.approx(c["x"][1])


def test_nsde_de_and_cmaes_of_one_seed_start_from_the_same_population(tmp_path):
    """The stored states: generation 0's X is one Latin hypercube per search seed, whatever the kind or variant;
    every kind then spends population x generations trainings, and the later generations differ by algorithm."""
    states, later = {}, {}
    for kind in ("nsde", "de", "cmaes"):
        s = spec(kind=kind, generations=3)
        cands, _ = run_search(s, tmp_path / kind, seed=3)
        assert len(cands) == s.population * s.generations
        told = read_checked_json(tmp_path / kind / "gen2" / "told.json")
        states[kind] = told["history"][0]["X"]
        assert told["initial_population"] == states[kind]
        later[kind] = told["history"][1]["X"]
    assert states["nsde"] == states["de"] == states["cmaes"]
    X0 = np.array(states["nsde"])
    # a Latin hypercube: in each coordinate, one point per stratum of the bounds
    lo, hi = np.array([-4.0, 0.0]), np.array([0.0, 2.0])
    for k in range(2):
        strata = np.floor((X0[:, k] - lo[k]) / (hi[k] - lo[k]) * len(X0)).astype(int)
        assert sorted(strata.tolist()) == list(range(len(X0)))
    assert later["nsde"] != later["de"] != later["cmaes"] != later["nsde"]
    # the population is the search seed's, not the variant's: another variant name, the same start
    other = ask(spec(kind="de"), 0, 3, "another_variant", None, tmp_path / "other.json")
    assert [c["x"] for c in other] == states["nsde"]
    assert [c["x"] for c in ask(spec(kind="de"), 0, 4, "v", None, tmp_path / "seed4.json")] != states["nsde"]


def test_cmaes_starts_at_the_best_of_the_shared_population(tmp_path):
    """CMA-ES's mean starts at the best initial candidate: its second generation lies around that point."""
    s = spec(kind="cmaes", population=8, generations=2)
    cands, evals = run_search(s, tmp_path, seed=5)
    gen0 = [(c, e) for c, e in zip(cands, evals) if c["generation"] == 0]
    best = np.array(min(gen0, key=lambda ce: ce[1]["criterion"])[0]["x"])
    gen1 = np.array([c["x"] for c in cands if c["generation"] == 1])
    width = np.array([4.0, 2.0])
    # sigma 0.1 of the normalised bounds: the new candidates' mean within 3 sigma / sqrt(8) of the start
    assert np.all(np.abs(gen1.mean(axis=0) - best) / width < 3 * 0.1)


def test_cmaes_that_stops_early_keeps_the_budget(tmp_path):
    """Flat objectives (e.g. every candidate failed: one penalty) make CMA-ES stop on its tolerances after a few
    generations; the remaining generations still ask `population` candidates within the bounds (uniform draws),
    replayably, and the asked state says so."""
    s = spec(kind="cmaes", population=4, generations=8)
    cands, _ = run_search(s, tmp_path / "a", fail=lambda g, i: True)
    again, _ = run_search(s, tmp_path / "b", fail=lambda g, i: True)
    assert len(cands) == 4 * 8 and [c["x"] for c in cands] == [c["x"] for c in again]
    for c in cands:
        assert 1e-4 <= c["params"]["energy_weight"] <= 1.0 and 0.0 <= c["params"]["force_loss_alpha"] <= 2.0
    stopped = [read_checked_json(tmp_path / "a" / f"gen{g}" / "asked.json")["algorithm_stopped"] for g in range(8)]
    assert not stopped[0] and stopped[-1]


def dominated_by_any(f, others):
    return any(all(o[k] <= f[k] for k in range(len(f))) and any(o[k] < f[k] for k in range(len(f))) for o in others)


def test_stored_pareto_sets_are_non_dominated_and_complete(tmp_path):
    s = spec()
    cands, evals = run_search(s, tmp_path, fail=lambda g, i: i == 0)  # one failure per generation
    table = candidates_table(cands, evals, s.objectives)
    fronts = pareto_sets(table, s.objectives, s.kind)
    cols = ["obj_val_force", "obj_val_energy"]
    for g in range(s.generations):
        front = fronts[fronts["after_generation"] == g][cols].to_numpy().tolist()
        seen = table[(table["generation"] <= g) & table["feasible"]]
        assert front, g
        for f in front:  # independent check: plain loops, not non_dominated()
            assert not dominated_by_any(f, seen[cols].to_numpy().tolist())
        for f in seen[cols].to_numpy().tolist():
            assert f in front or dominated_by_any(f, front)
    assert not fronts["feasible"].astype(bool).eq(False).any()  # failed candidates never enter a front
    # the progress: the final front weakly dominates the first one
    first = fronts[fronts["after_generation"] == 0][cols].to_numpy().tolist()
    last = fronts[fronts["after_generation"] == s.generations - 1][cols].to_numpy().tolist()
    for f in first:
        assert f in last or dominated_by_any(f, last)


def test_non_dominated_on_a_known_front():
    F = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [2, 2], [5, 5]], dtype=float)
    assert non_dominated(F).tolist() == [True, True, True, False, True, False]


def test_all_candidates_failing_records_status_and_falls_back(tmp_path):
    s = spec(generations=2)
    cands, evals = run_search(s, tmp_path, fail=lambda g, i: True)
    F, G = objective_matrix(s, evals)
    assert np.isfinite(F).all() and (G > 0).all()
    table = candidates_table(cands, evals, s.objectives)
    assert (table["status"] == "training_diverged").all()
    selected = select(table, s.objectives, s.kind, fallback={"energy_weight": 1.0, "force_loss_alpha": 2.0})
    assert selected["status"] == "fallback" and "no candidate completed" in selected["reason"]
    assert selected["values"] == {"energy_weight": 1.0, "force_loss_alpha": 2.0}
    for kind in ("nsde", "de"):  # the progress figure is still written
        plot_progress(table, pareto_sets(table, s.objectives, kind), s.objectives, kind, tmp_path / f"{kind}.png")
        assert (tmp_path / f"{kind}.png").stat().st_size > 0


def test_selection_is_the_lowest_criterion_on_the_final_front(tmp_path):
    s = spec()
    cands, evals = run_search(s, tmp_path)
    table = candidates_table(cands, evals, s.objectives)
    selected = select(table, s.objectives, s.kind, fallback={})
    fronts = pareto_sets(table, s.objectives, s.kind)
    final = fronts[fronts["after_generation"] == s.generations - 1]
    assert selected["status"] == "selected"
    assert selected["criterion"] == pytest.approx(final["criterion"].min())
    assert selected["criterion"] == pytest.approx(table["criterion"].min())  # min of the sum lies on the front


def test_with_seed_001s_pair_the_selection_is_the_best_validation_error():
    s = spec(objectives=("train_error", "val_error"))
    cands = [{"generation": 0, "index": i, "params": {"energy_weight": w}} for i, w in enumerate((0.1, 0.2, 0.3))]
    # (train, val): (0.1, 0.5) and (0.3, 0.2) on the front, (0.4, 0.6) dominated; criterion favours candidate 0
    evals = [{"feasible": True, "status": "completed", "reason": "", "criterion": c, "seconds": 1.0,
              "objectives": {"train_error": t, "val_error": v}}
             for t, v, c in ((0.1, 0.5, 1.0), (0.3, 0.2, 2.0), (0.4, 0.6, 3.0))]
    table = candidates_table(cands, evals, s.objectives)
    selected = select(table, s.objectives, s.kind, fallback={})
    assert selected["candidate"] == 1 and "val_error" in selected["rule"]


def test_seed_001s_pair_is_a_known_objective_and_needs_the_split_errors():
    check_search("s", {"kind": "nsde", "space": SPACE, "objectives": ["train_error", "val_error"]}, CG)
    check_search("s", {"kind": "cmaes", "space": SPACE, "objectives": ["val_error"]}, CG)
    s = spec(objectives=("train_error", "val_error"))
    assert s.split_objectives == ["train_error", "val_error"] and not s.needs_evaluation
    status = {"status": "completed", "best_epoch": 1}
    log = pd.DataFrame({"epoch": [1], "val_force": [2.0], "val_energy": [3.0]})
    ev = evaluate_candidate(s, status, log, {"force": 4.0, "energy": 6.0}, split={"train_error": 0.2, "val_error": 0.3})
    assert ev["objectives"] == {"train_error": 0.2, "val_error": 0.3} and ev["criterion"] == pytest.approx(1.0)
    bad = evaluate_candidate(s, status, log, {"force": 4.0, "energy": 6.0}, split={"train_error": math.nan,
                                                                                  "val_error": 0.3})
    assert not bad["feasible"] and bad["objectives"] == {"train_error": 1e3, "val_error": 1e3}


def test_single_objective_baseline_minimises_the_sum(tmp_path):
    s = spec(kind="de")
    cands, evals = run_search(s, tmp_path)
    F, _ = objective_matrix(s, evals)
    assert F.shape == (len(evals), 1)
    np.testing.assert_allclose(F[:, 0], [e["objectives"]["val_force"] + e["objectives"]["val_energy"] for e in evals])


def test_grid_search_asks_every_value_once(tmp_path):
    s = SearchSpec.from_config("grid", {"kind": "grid", "parameter": "energy_weight", "values": [0.1, 1.0, 10.0]}, CG)
    cands = ask(s, 0, 1, "v", None, tmp_path / "asked.json")
    assert [c["params"] for c in cands] == [{"energy_weight": v} for v in (0.1, 1.0, 10.0)]
    evals = [synthetic_evaluation({"energy_weight": c["params"]["energy_weight"], "force_loss_alpha": 2.0})
             for c in cands]
    tell(s, 0, tmp_path / "asked.json", evals, tmp_path / "told.json")
    table = candidates_table(cands, evals, s.objectives)
    selected = select(table, s.objectives, s.kind, fallback={})
    assert selected["values"]["energy_weight"] == cands[int(np.argmin([e["criterion"] for e in evals]))]["params"][
        "energy_weight"]


def test_apply_parameters_maps_onto_eq2_and_the_training_settings():
    params, training = apply_parameters({"energy_weight": 0.01, "force_loss_alpha": 1.0}, "constant", {}, CG)
    assert params == {"weights": [1.0, 0.01]} and training == {"force_loss_alpha": 1.0}
    params, _ = apply_parameters({"beta": 0.5}, "softadapt", {"beta": 0.1, "order": 1}, CG)
    assert params == {"beta": 0.5, "order": 1}
    with pytest.raises(ValueError, match="no parameter 'energy_weight'"):
        apply_parameters({"energy_weight": 0.1}, "softadapt", {}, CG)


@pytest.mark.parametrize("mutate, field", [
    (lambda s: s["space"]["energy_weight"].update(low=2.0, high=1.0), "balancing.searches.s.space.energy_weight.low"),
    (lambda s: s["space"]["force_loss_alpha"].update(low=1.0, high=1.0), "balancing.searches.s.space.force_loss_alpha"),
    (lambda s: s["space"]["energy_weight"].update(low=0.0), "balancing.searches.s.space.energy_weight.low"),
    (lambda s: s.update(population=3), "balancing.searches.s.population"),
    (lambda s: s.update(objectives=["val_force", "d_ks"]), "balancing.searches.s.objectives"),
    (lambda s: s.update(objectives=["val_force"]), "balancing.searches.s.objectives"),
    (lambda s: s["space"].update(lamda={"low": 0, "high": 1}), "balancing.searches.s.space.lamda"),
    (lambda s: s.update(training={"max_epoch": 1}), "balancing.searches.s.training.max_epoch"),
    (lambda s: s.update(values=[1.0]), "balancing.searches.s.values"),
    (lambda s: s.update(sigma=0.2), "balancing.searches.s.sigma"),
    (lambda s: s.update(kind="cmaes", sigma=0.0), "balancing.searches.s.sigma"),
    (lambda s: s.update(kind="cma"), "balancing.searches.s.kind"),
])
def test_bad_search_input_is_named(mutate, field):
    s = {"kind": "nsde", "space": json.loads(json.dumps(SPACE)), "population": 6, "generations": 2}
    mutate(s)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        check_search("s", s, CG, training_fields={"max_epochs", "patience"})


def test_a_search_the_method_cannot_use_is_named():
    grid = {"kind": "grid", "parameter": "energy_weight", "values": [0.1]}
    check_variant_search("c", "constant", "grid", grid, CG)
    with pytest.raises(ValueError, match=r"balancing\.variants\.s\.search.*energy_weight"):
        check_variant_search("s", "softadapt", "grid", grid, CG)


def test_candidate_objectives_match_the_trainers_criterion(lj_dataset, tmp_path):
    """val_force + val_energy at the best epoch is the trainer's own best criterion (same variances)."""
    from balancebench.training import train_model

    model = dict(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=7.5)
    training = dict(max_epochs=3, batch_size=8, patience=3, force_loss_alpha=1.0, force_loss_scale=5.0)
    train_model(lj_dataset, model, training, "constant", {"weights": [1.0, 0.1]}, seed=1, out_dir=tmp_path,
                threads=1)
    status = json.loads((tmp_path / "status.json").read_text())
    task = get_task("cg_benzene")
    refs = task.dataset_references(lj_dataset, task.loss_settings(training))
    ev = evaluate_candidate(spec(), status, pd.read_csv(tmp_path / "train_log.csv"), refs)
    assert ev["feasible"] and ev["status"] == "completed"
    # the trainer takes the variances of the float32 targets: agreement to float32 rounding
    assert ev["criterion"] == pytest.approx(status["best_criterion"], rel=1e-6)
    # seed 001's pair: the task's error on each split of the best-epoch model; the default (the unit-free
    # criterion on that split) gives on the validation split the trainer's own best criterion
    pair = spec(objectives=("train_error", "val_error"))
    split = split_errors(task, pair, tmp_path, lj_dataset, task.loss_settings(training), refs)
    assert split["val_error"] == pytest.approx(status["best_criterion"], rel=1e-5)
    assert math.isfinite(split["train_error"]) and split["train_error"] > 0
    ev = evaluate_candidate(pair, status, pd.read_csv(tmp_path / "train_log.csv"), refs, split=split)
    assert ev["feasible"] and ev["objectives"] == split
    assert evaluate_candidate(pair, status, pd.read_csv(tmp_path / "train_log.csv"), refs)["status"] == "invalid"
    failed = evaluate_candidate(spec(), {"status": "diverged", "reason": "x"}, None, refs)
    assert not failed["feasible"] and failed["objectives"] == {"val_force": 1e3, "val_energy": 1e3}


def physics_record(sim_status="completed", d_ks=0.12):
    return {"status": sim_status, "reason": "" if sim_status == "completed" else "T blew up",
            "metrics": {"d_KS": {"value": d_ks}, "gr_w1": {"value": 0.3}, "delta_U": {"value": 5.0}}}


def test_physics_objectives_from_the_nvt_metrics_and_unstable_runs_fail():
    s = spec(objectives=("criterion", "d_KS"))
    status = {"status": "completed", "best_epoch": 1}
    log = pd.DataFrame({"epoch": [1], "val_force": [2.0], "val_energy": [3.0]})
    ev = evaluate_candidate(s, status, log, {"force": 4.0, "energy": 6.0}, physics_record())
    assert ev["feasible"] and ev["objectives"] == {"criterion": pytest.approx(1.0), "d_KS": 0.12}
    bad = evaluate_candidate(s, status, log, {"force": 4.0, "energy": 6.0}, physics_record("unstable"))
    assert not bad["feasible"] and bad["status"] == "evaluation_unstable" and bad["reason"] == "T blew up"
    assert bad["objectives"] == {"criterion": 1e3, "d_KS": 1e3}
    missing = evaluate_candidate(s, status, log, {"force": 4.0, "energy": 6.0}, physics_record(d_ks=None))
    assert not missing["feasible"] and "non-finite" in missing["reason"]
    assert evaluate_candidate(s, status, log, {"force": 4.0, "energy": 6.0}, None)["status"] == "invalid"


def test_the_searched_loss_family_trains_the_selected_variant(tmp_path):
    """A TaylorGLO search's candidates train with force_loss: taylorglo (the search's training); the selected
    variant must too, or its searched theta would have no effect. Budget settings (max_epochs) stay the candidates'."""
    from balancebench.search.space import variant_settings

    s = SearchSpec.from_config("t", {"kind": "de", "space": {"taylor_theta_3": {"low": -3.0, "high": 0.0}},
                                     "training": {"max_epochs": 2, "force_loss": "taylorglo",
                                                  "force_loss_scale": 4.0}}, CG)
    assert s.loss_training(CG) == {"force_loss": "taylorglo", "force_loss_scale": 4.0}
    path = tmp_path / "selected.json"
    path.write_text(json.dumps({"status": "selected", "values": {"taylor_theta_3": -1.5},
                                "training": s.loss_training(CG)}))
    params, training, line = variant_settings(path, "constant", {}, {"max_epochs": 100, "force_loss": "barron"}, CG)
    assert training == {"max_epochs": 100, "force_loss": "taylorglo", "force_loss_scale": 4.0,
                        "taylor_theta_3": -1.5}
    assert "taylorglo" in line
