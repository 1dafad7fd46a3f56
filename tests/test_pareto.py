"""Pareto fronts: the seed's test rays, dominance, hypervolume against hand-computed values and pymoo, the
chosen preference, the cost table, the figure."""

import math

import numpy as np
import pandas as pd
import pytest

from balancebench.pareto import (
    choose_preference,
    circle_points,
    cost_table,
    hypervolume,
    hypervolume_2d,
    hypervolume_rows,
    non_dominated,
    plot_fronts,
)

# a hand-made front (minimisation) and its hypervolume w.r.t. (1, 1), by rectangles:
# sorted by f1: (0.1, 0.8), (0.3, 0.4), (0.6, 0.2)
#   (1 - 0.1) * (1 - 0.8) + (1 - 0.3) * (0.8 - 0.4) + (1 - 0.6) * (0.4 - 0.2) = 0.18 + 0.28 + 0.08 = 0.54
FRONT = np.array([[0.3, 0.4], [0.1, 0.8], [0.6, 0.2]])
HAND_HV = 0.54


def test_circle_points_are_the_seeds_test_rays():
    rays = circle_points(25)
    assert rays.shape == (25, 2)
    np.testing.assert_allclose(rays.sum(axis=1), 1.0)
    angles = np.arctan2(rays[:, 1], rays[:, 0])  # normalising by the sum keeps the angle
    np.testing.assert_allclose(angles, np.linspace(0.1, math.pi / 2 - 0.1, 25))
    np.testing.assert_allclose(rays[12], [0.5, 0.5])  # the middle ray
    assert rays[0, 0] > rays[-1, 0]  # ray 0 weights force most
    with pytest.raises(ValueError, match="pareto.rays"):
        circle_points(0)


def test_non_dominated_filter():
    points = np.vstack([FRONT, [[0.5, 0.5], [0.3, 0.4], [0.9, 0.9]]])
    mask = non_dominated(points)
    np.testing.assert_array_equal(mask, [True, True, True, False, True, False])  # equal points both kept
    from pymoo.util.nds.non_dominated_sorting import find_non_dominated

    unique = np.vstack([FRONT, [[0.5, 0.5], [0.9, 0.9], [0.05, 0.95]]])
    np.testing.assert_array_equal(np.flatnonzero(non_dominated(unique)), np.sort(find_non_dominated(unique)))


def test_hypervolume_agrees_with_hand_computation_and_pymoo():
    from pymoo.indicators.hv import HV

    assert hypervolume(FRONT, (1.0, 1.0)) == pytest.approx(HAND_HV)
    assert hypervolume_2d(FRONT, (1.0, 1.0)) == pytest.approx(HAND_HV)
    assert float(HV(ref_point=np.array([1.0, 1.0]))(FRONT)) == pytest.approx(HAND_HV)
    # a dominated point adds nothing; one point is its box
    assert hypervolume(np.vstack([FRONT, [[0.7, 0.7]]]), (1, 1)) == pytest.approx(HAND_HV)
    assert hypervolume([[0.5, 0.5]], (1, 1)) == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.uniform(0, 1.2, size=(8, 2))
        assert hypervolume(pts, (1, 1)) == pytest.approx(hypervolume_2d(pts, (1, 1)), abs=1e-12)


def test_hypervolume_grows_when_a_dominating_point_is_added():
    base = hypervolume(FRONT, (1, 1))
    for p in ([0.2, 0.3], [0.05, 0.05], [0.3, 0.4]):  # the last one is already on the front: stays
        grown = hypervolume(np.vstack([FRONT, [p]]), (1, 1))
        assert grown >= base - 1e-15
    assert hypervolume(np.vstack([FRONT, [[0.2, 0.3]]]), (1, 1)) == pytest.approx(0.62)  # 0.9*0.2 + 0.8*0.5 + 0.4*0.1


def test_reference_point_outside_is_clipped_or_refused():
    points = np.vstack([FRONT, [[1.5, 0.05]], [[np.nan, 0.1]]])
    assert hypervolume(points, (1, 1)) == pytest.approx(HAND_HV)  # clip: such points enclose nothing
    with pytest.raises(ValueError, match="pareto.reference_point .* not dominated"):
        hypervolume(points, (1, 1), outside="raise")
    with pytest.raises(ValueError, match="pareto.reference_point"):
        hypervolume(FRONT, (1.0, np.inf))
    with pytest.raises(ValueError, match="pareto.reference_point"):
        hypervolume(FRONT, (1.0, 1.0, 1.0))
    assert hypervolume([[2.0, 2.0]], (1, 1)) == 0.0


def test_choose_preference_takes_the_lowest_criterion():
    front = pd.DataFrame({"ray": [0, 1, 2], "pref_force": [0.9, 0.5, 0.1], "pref_energy": [0.1, 0.5, 0.9],
                          "criterion": [1.2, 0.9, np.nan]})
    choice = choose_preference(front)
    assert choice["preference"] == [0.5, 0.5] and choice["ray"] == 1
    with pytest.raises(ValueError, match="no test ray"):
        choose_preference(front.assign(criterion=np.nan))


def test_target_variances_are_the_trainers_references(lj_dataset):
    from balancebench.balancing import get_method
    from balancebench.tasks.cg_benzene.model import ModelConfig
    from balancebench.training import Trainer, TrainingSettings

    trainer = Trainer(lj_dataset, ModelConfig(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8,
                                              cutoff=7.5), TrainingSettings(), get_method("constant"), seed=0)
    task = trainer.task
    refs = task.dataset_references(lj_dataset, task.loss_settings({}))
    assert refs["force"] == pytest.approx(trainer.context.references["force"], rel=1e-6)
    assert refs["energy"] == pytest.approx(trainer.context.references["energy"], rel=1e-6)


def test_hypervolume_rows_and_cost_table():
    front = pd.DataFrame({"f_force": [0.3, 0.1, 0.6, 0.7], "f_energy": [0.4, 0.8, 0.2, 0.7],
                          "non_dominated": [True, True, True, False]})
    points = pd.DataFrame({"method": ["softadapt", "softadapt"], "seed": [1, 2], "status": ["completed", "diverged"],
                           "f_force": [0.5, np.nan], "f_energy": [0.5, np.nan]})
    rows = hypervolume_rows({("cosmos", 1): front}, points, (1, 1))
    assert list(rows.columns) == ["method", "seed", "metric", "value", "status", "direction", "target", "reason"]
    assert rows.loc[0, "value"] == pytest.approx(HAND_HV) and rows.loc[1, "value"] == pytest.approx(0.25)
    assert rows.loc[2, "status"] == "diverged" and np.isnan(rows.loc[2, "value"])
    assert (rows["direction"] == "higher").all()
    cost = cost_table([{"variant": "constant", "role": "grid", "seconds": 10.0, "epochs": 5},
                       {"variant": "constant", "role": "grid", "seconds": 12.0, "epochs": 6},
                       {"variant": "constant", "role": "final", "seconds": 11.0, "epochs": 5},
                       {"variant": "cosmos", "role": "final", "seconds": 15.0, "epochs": 7},
                       {"variant": "ml2o", "role": "meta", "seconds": 40.0, "epochs": 0},
                       {"variant": "ml2o", "role": "final", "seconds": 9.0, "epochs": 4}])
    row = cost.set_index("variant")
    assert row.loc["constant", "seconds"] == 33.0 and row.loc["constant", "search_trainings"] == 2
    assert row.loc["ml2o", "seconds"] == 49.0 and row.loc["ml2o", "meta_training_seconds"] == 40.0
    assert row.loc["ml2o", "trainings"] == 1 and row.loc["constant", "meta_training_seconds"] == 0.0
    assert row.loc["cosmos", "ratio_to_cheapest"] == 1.0
    assert row.loc["constant", "ratio_to_cheapest"] == pytest.approx(33.0 / 15.0)


def test_plot_fronts_writes_a_figure(tmp_path):
    front = pd.DataFrame({"f_force": [0.3, 0.1, 0.6], "f_energy": [0.4, 0.8, 0.2], "non_dominated": [True] * 3})
    points = pd.DataFrame({"method": ["softadapt"], "seed": [1], "status": ["completed"], "f_force": [0.5],
                           "f_energy": [0.5]})
    grid = pd.DataFrame({"method": ["constant"], "label": ["w_E=0.01"], "status": ["completed"], "f_force": [0.2],
                         "f_energy": [0.6]})
    plot_fronts(tmp_path / "front.png", {("cosmos", 1): front}, points, (1, 1), grid)
    assert (tmp_path / "front.png").stat().st_size > 5000


def write_model(d, status, best_epoch, val, front=None, preference=None):
    import json

    d.mkdir(parents=True)
    (d / "status.json").write_text(json.dumps({"status": status, "best_epoch": best_epoch}))
    pd.DataFrame({"epoch": [1, 2], "seconds": [1.0, 2.0], "val_force": [9.0, val[0]], "val_energy": [9.0, val[1]]}
                 ).to_csv(d / "train_log.csv", index=False)
    if front is not None:
        front.to_csv(d / "front.csv", index=False)
        (d / "hparams.json").write_text(json.dumps({"preference": preference, "preference_choice": {
            "ray": 1, "criterion": 0.7, "rule": "lowest"}}))


def test_collect_reads_fronts_logs_and_search_trainings(tmp_path):
    """Points come from the best epoch of each log over the references; HV and the note follow."""
    from balancebench.pareto import (
        collect,
        fronts_table,
        summary_note,
        training_seconds,
    )

    refs = {"force": 2.0, "energy": 10.0}
    front = pd.DataFrame({"ray": [0, 1, 2], "pref_force": [0.9, 0.5, 0.1], "pref_energy": [0.1, 0.5, 0.9],
                          "f_force": [0.3, 0.1, 0.6], "f_energy": [0.4, 0.8, 0.2], "criterion": [0.7, 0.9, 0.8],
                          "non_dominated": [True, True, True]})
    write_model(tmp_path / "cosmos1", "completed", 2, (0, 0), front, [0.9, 0.1])
    write_model(tmp_path / "soft1", "completed", 2, (1.0, 5.0))  # -> (0.5, 0.5)
    write_model(tmp_path / "soft2", "diverged", 0, (1.0, 5.0))
    write_model(tmp_path / "c0", "completed", 2, (0.4, 2.0))  # -> (0.2, 0.2)
    write_model(tmp_path / "cosmos2", "diverged", 0, (0, 0))
    tables = collect(refs, {("cosmos", 1): tmp_path / "cosmos1", ("cosmos", 2): tmp_path / "cosmos2"},
                     {("softadapt", 1): tmp_path / "soft1", ("softadapt", 2): tmp_path / "soft2"},
                     [{"variant": "constant", "label": "w_E=0.01", "dir": tmp_path / "c0", "seed": 1}], (1, 1))
    pts = tables["points"].set_index("seed")
    assert pts.loc[1, "f_force"] == pytest.approx(0.5) and pts.loc[1, "f_energy"] == pytest.approx(0.5)
    assert pts.loc[2, "status"] == "diverged" and np.isnan(pts.loc[2, "f_force"])
    hv = tables["hv_summary"].set_index("set")
    assert hv.loc["cosmos front", "hypervolume"] == pytest.approx(HAND_HV)
    assert hv.loc["constant search trainings", "hypervolume"] == pytest.approx(0.64)
    assert tables["chosen"].loc[0, "pref_force"] == 0.9
    failed = tables["hypervolume"].query("method == 'cosmos' and seed == 2")
    assert len(failed) == 1 and failed["status"].iloc[0] == "diverged" and failed["value"].isna().all()
    assert len(fronts_table(tables["fronts"])) == 3
    cost = cost_table([{"variant": "cosmos", "role": "final", "seconds": training_seconds(tmp_path / "cosmos1")[0],
                        "epochs": 2}])
    note = summary_note(tables, cost, (1, 1))
    assert "cosmos: HV per seed 0.5400" in note and "constant search trainings: HV 0.6400" in note
    with pytest.raises(ValueError, match="pareto.reference_point"):
        collect(refs, {}, {}, [], (1.0,))


def test_reference_point_is_fixed_and_points_beyond_it_count_zero_and_are_counted(tmp_path):
    """The reference point is the given one whatever the run's points (no 'nadir'); a model or ray point beyond it
    encloses 0, its hypervolume row says why, and the summary and the note count such points."""
    from balancebench.pareto import collect, resolve_reference_point, summary_note

    assert resolve_reference_point((1, 2)).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="pareto.reference_point .*nadir"):
        resolve_reference_point("nadir")
    with pytest.raises(ValueError, match="pareto.reference_point must be 2"):
        resolve_reference_point((1, 2, 3))
    refs = {"force": 1.0, "energy": 1.0}
    front = pd.DataFrame({"ray": [0, 1, 2], "pref_force": [0.9, 0.5, 0.1], "pref_energy": [0.1, 0.5, 0.9],
                          "f_force": [0.5, 1.05, 1.3], "f_energy": [0.5, 2.0, 1.2], "criterion": [1.0, 3.05, 2.5],
                          "non_dominated": [True, False, False]})
    write_model(tmp_path / "cosmos1", "completed", 2, (0, 0), front, [0.9, 0.1])
    write_model(tmp_path / "soft1", "completed", 2, (1.1, 1.5))   # beyond (1, 1) on both objectives
    write_model(tmp_path / "soft2", "completed", 2, (0.6, 0.5))   # inside: box 0.4 x 0.5 = 0.2
    write_model(tmp_path / "c0", "completed", 2, (1.02, 2.5))
    finals = {("softadapt", 1): tmp_path / "soft1", ("softadapt", 2): tmp_path / "soft2"}
    cands = [{"variant": "constant", "label": "w", "dir": tmp_path / "c0", "seed": None}]
    tables = collect(refs, {("cosmos", 1): tmp_path / "cosmos1"}, finals, cands, (1, 1))
    assert tables["reference_point"].tolist() == [1.0, 1.0]  # not moved by the worst point (1.3, 2.5)
    hv = tables["hv_summary"].set_index("set")
    assert hv.loc["cosmos front", "hypervolume"] == pytest.approx(0.25)  # only (0.5, 0.5) inside
    assert hv.loc["cosmos front", "beyond_reference"] == 2 and hv.loc["cosmos front", "evaluated"] == 3
    assert hv.loc["constant search trainings", "hypervolume"] == 0.0
    assert hv.loc["constant search trainings", "beyond_reference"] == 1
    models = hv.loc["softadapt model"].set_index("seed")
    assert models.loc[1, "hypervolume"] == 0.0 and models.loc[1, "beyond_reference"] == 1
    assert models.loc[2, "hypervolume"] == pytest.approx(0.2) and models.loc[2, "beyond_reference"] == 0
    rows = tables["hypervolume"].set_index(["method", "seed"])
    assert rows.loc[("softadapt", 1), "value"] == 0.0
    assert "beyond the reference point" in rows.loc[("softadapt", 1), "reason"]
    assert rows.loc[("cosmos", 1), "reason"] == "2 of 3 ray points beyond the reference point"
    note = summary_note(tables, pd.DataFrame(), tables["reference_point"], setting="the task's")
    assert "Beyond the reference point (HV 0): 1 of 2 completed models, 1 of 1 search trainings, 2 of 3" in note
    assert "the task's" in note


def test_grid_points_as_preference_ratios_and_the_closest_ray(tmp_path):
    """A constant-weight training at weights w minimises sum_i (w_i ref_i) f_i: its ratio r_2 / r_1 is
    w_2 ref_2 / (w_1 ref_1); the note names the conditioned model's test ray closest to the grid's best in log rho."""
    from balancebench.pareto import candidate_ratio, closest_rays, collect, log_ratio_rays, summary_note

    refs = {"force": 17.8, "energy": 85.8}  # the variances of the CG demo (docs/cosmos.md)
    assert candidate_ratio({"weight_energy": 1e-3}, refs) == pytest.approx(1e-3 * 85.8 / 17.8)  # 0.00482
    assert candidate_ratio({"weights": [2.0, 1.0]}, refs) == pytest.approx(85.8 / (2 * 17.8))
    assert candidate_ratio({"force_loss_alpha": 1.0}, refs) is None
    assert candidate_ratio({"energy_weight": 1e-3}, refs, {"energy_weight": 1}) == pytest.approx(0.00482, rel=1e-3)
    rays = log_ratio_rays(5, (1e-4, 1.0))  # ratios 1e-4, 1e-3, 1e-2, 1e-1, 1
    front = pd.DataFrame({"ray": range(5), "pref_force": rays[:, 0], "pref_energy": rays[:, 1],
                          "f_force": [0.1, 0.2, 0.35, 0.4, 0.5], "f_energy": [0.9, 0.7, 0.5, 0.3, 0.1],
                          "criterion": [1.0] * 5, "non_dominated": [True] * 5})
    write_model(tmp_path / "cosmos1", "completed", 2, (0, 0), front, list(rays[2]))
    for name, val in (("c0", (0.3 * 17.8, 0.4 * 85.8)), ("c1", (0.5 * 17.8, 0.6 * 85.8))):
        write_model(tmp_path / name, "completed", 2, val)
    cands = [{"variant": "constant", "label": "weight_energy=0.001", "dir": tmp_path / "c0",
              "params": {"weight_energy": 1e-3}},
             {"variant": "constant", "label": "weight_energy=0.1", "dir": tmp_path / "c1",
              "params": {"weight_energy": 0.1}}]
    tables = collect(refs, {("cosmos", 1): tmp_path / "cosmos1"}, {}, cands, (1, 1))
    close = closest_rays(tables["fronts"], tables["candidates"])
    assert len(close) == 1
    row = close.iloc[0]
    # log10 0.00482 = -2.32: the ray at 1e-2 is 0.32 decades away, the one at 1e-3 0.68
    assert row["grid_ratio"] == pytest.approx(0.00482, rel=1e-3) and row["ray"] == 2
    assert row["log10_gap"] == pytest.approx(math.log10(1e-2 / (1e-3 * 85.8 / 17.8)), abs=1e-9)
    assert (row["grid_f_force"], row["ray_f_force"]) == pytest.approx((0.3, 0.35))
    note = summary_note(tables, pd.DataFrame(), tables["reference_point"])
    assert "cosmos seed 1 ray 2: rho 0.01 (0.32 decades away)" in note


def test_log_ratio_rays_are_evenly_spaced_in_log_ratio():
    from balancebench.pareto import log_ratio_rays, preference_ratio, ratio_preference

    rays = log_ratio_rays(9, (1e-3, 10.0))
    np.testing.assert_allclose(rays.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.log10(preference_ratio(rays)), np.linspace(-3, 1, 9), atol=1e-12)
    assert rays[0, 0] > rays[-1, 0]  # ray 0 weights the first loss most, as circle_points
    np.testing.assert_allclose(ratio_preference(1.0), [0.5, 0.5])
    np.testing.assert_allclose(log_ratio_rays(1, (0.01, 1.0))[0], ratio_preference(0.1))  # geometric mean
    # the seed's circle rays are the ratios tan(t) for t in [0.1, pi/2 - 0.1]: about 0.1 .. 10
    np.testing.assert_allclose(preference_ratio(circle_points(3))[[0, 2]], [math.tan(0.1), 1 / math.tan(0.1)])
    for bad in ((0.0, 1.0), (2.0, 1.0), (1.0,), "ab", (1.0, math.inf)):
        with pytest.raises(ValueError, match="ratio_range"):
            log_ratio_rays(5, bad)


@pytest.mark.parametrize("bad", [[1.0], [1.0, -1.0], ["a", 1.0], "nadir", "nadirs"])
def test_config_refuses_a_bad_reference_point(demo_config, bad):
    from balancebench.config import ConfigError, validate_config

    pareto = {k: v for k, v in demo_config.get("pareto", {}).items() if k != "reference_point"}
    assert validate_config({**demo_config, "pareto": pareto})["pareto"]["reference_point"] is None  # the task's
    assert validate_config({**demo_config, "pareto": {"reference_point": [2, 3]}})["pareto"]["reference_point"] \
        == [2, 3]
    with pytest.raises(ConfigError, match="pareto.reference_point"):
        validate_config({**demo_config, "pareto": {"reference_point": bad}})


def test_the_tasks_reference_points():
    """cg_benzene: the mean predictor (1, 1); multidigits: COSMOS's (2, 2) nats over the references ln 10."""
    from balancebench.tasks.base import get_task

    assert get_task("cg_benzene").hypervolume_reference() == (1.0, 1.0)
    md = get_task("multidigits")
    assert md.hypervolume_reference() == pytest.approx((2 / math.log(10), 2 / math.log(10)))
    assert np.array(md.hypervolume_reference()) * math.log(10) == pytest.approx([2.0, 2.0])


def test_conditioned_outputs_fall_back_when_no_ray_is_finite(tmp_path, lj_dataset):
    """A model whose every ray gives a non-finite error records the evaluation preference instead of crashing."""
    import torch

    from balancebench.balancing import get_method
    from balancebench.pareto import conditioned_outputs
    from balancebench.tasks.cg_benzene.model import ModelConfig
    from balancebench.training import Trainer, TrainingSettings

    trainer = Trainer(lj_dataset, ModelConfig(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8,
                                              cutoff=7.5), TrainingSettings(batch_size=2), get_method("cosmos"), seed=0)
    with torch.no_grad():
        trainer.model.lin2.bias.fill_(float("nan"))
    out = conditioned_outputs(trainer, tmp_path, rays=3)
    assert out["preference"] == [0.5, 0.5] and "fallback" in out["preference_choice"]["rule"]
    assert len(pd.read_csv(tmp_path / "front.csv")) == 3
