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


def test_nadir_reference_point_encloses_every_completed_point(tmp_path):
    """'nadir': 1.1 x the worst f_F and f_E over finals, search trainings and fronts; one point for the run."""
    from balancebench.pareto import collect, resolve_reference_point

    assert resolve_reference_point((1, 2), []).tolist() == [1.0, 2.0]
    ref = resolve_reference_point("nadir", [np.array([[0.5, 3.0], [np.nan, np.nan]]), np.array([[1.2, 1.0]])])
    assert ref.tolist() == pytest.approx([1.1 * 1.2, 1.1 * 3.0])
    # every training failed: nothing to enclose, the default point, no error (the DAG must not crash)
    assert resolve_reference_point("nadir", [np.full((1, 2), np.nan)]).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="pareto.reference_point"):
        resolve_reference_point("median", [])
    refs = {"force": 1.0, "energy": 1.0}
    front = pd.DataFrame({"ray": [0, 1], "pref_force": [0.9, 0.1], "pref_energy": [0.1, 0.9],
                          "f_force": [1.05, 1.3], "f_energy": [2.0, 1.2], "criterion": [3.05, 2.5],
                          "non_dominated": [True, True]})
    write_model(tmp_path / "cosmos1", "completed", 2, (0, 0), front, [0.9, 0.1])
    write_model(tmp_path / "soft1", "completed", 2, (1.1, 1.5))   # beyond (1, 1) on both objectives
    write_model(tmp_path / "c0", "completed", 2, (1.02, 2.5))
    at_mean = collect(refs, {("cosmos", 1): tmp_path / "cosmos1"}, {("softadapt", 1): tmp_path / "soft1"},
                      [{"variant": "constant", "label": "w", "dir": tmp_path / "c0", "seed": None}], (1, 1))
    assert (at_mean["hv_summary"]["hypervolume"] == 0).all()
    tables = collect(refs, {("cosmos", 1): tmp_path / "cosmos1"}, {("softadapt", 1): tmp_path / "soft1"},
                     [{"variant": "constant", "label": "w", "dir": tmp_path / "c0", "seed": None}], "nadir")
    assert tables["reference_point"].tolist() == pytest.approx([1.1 * 1.3, 1.1 * 2.5])
    hv = tables["hv_summary"].set_index("set")["hypervolume"]
    assert (hv > 0).all()
    assert hv["cosmos front"] == pytest.approx(hypervolume(front[["f_force", "f_energy"]].to_numpy(),
                                                           tables["reference_point"]))


@pytest.mark.parametrize("bad", [[1.0], [1.0, -1.0], ["a", 1.0], [1.0, 1.0, 1.0], "nadirs"])
def test_config_refuses_a_bad_reference_point(demo_config, bad):
    from balancebench.config import ConfigError, validate_config

    pareto = {k: v for k, v in demo_config.get("pareto", {}).items() if k != "reference_point"}
    assert validate_config({**demo_config, "pareto": pareto})["pareto"]["reference_point"] is None  # 1 per loss
    assert validate_config({**demo_config, "pareto": {"reference_point": "nadir"}})["pareto"]["reference_point"] \
        == "nadir"
    with pytest.raises(ConfigError, match="pareto.reference_point"):
        validate_config({**demo_config, "pareto": {"reference_point": bad}})


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
