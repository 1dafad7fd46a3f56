"""Metrics of seed 000 Sec. 2.3 against known answers, the failure statuses, the tidy table and pre-screening."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from balancebench.stats.scheme import REPORTED_ONLY
from balancebench.tasks.cg_benzene import metrics as mt
from balancebench.tasks.cg_benzene import observables as ob
from balancebench.tasks.cg_benzene.trajectory import H5MDWriter

PAPER_METRICS = ["N_ep", "t_ep", "sigma_ep", "delta_U", "CV_U", "mean_T", "CV_T", "d_KS", "p_KS", "s_MSD"]


# --------------------------------------------------------------------------- synthetic data

def liquid_like_g(r, shift=0.0):
    """A smooth g(r): excluded core below ~4 A, first peak at 5.6 + shift A, decaying oscillations to 1."""
    x = r - shift
    core = 1.0 / (1.0 + np.exp(-(x - 4.6) / 0.15))
    return core * (1.0 + 0.9 * np.exp(-(x - 5.6) / 2.0) * np.cos(2 * np.pi * (x - 5.6) / 4.2) * (x > 4.0))


def grid(width=0.05, r_end=12.0):
    edges = np.arange(0.0, r_end + 1e-12, width)
    return 0.5 * (edges[1:] + edges[:-1])


def random_walk(n_frames, n_beads, dt, diffusion, seed, box=20.0):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, box, size=(1, n_beads, 3))
    steps = rng.normal(scale=np.sqrt(2 * diffusion * dt), size=(n_frames - 1, n_beads, 3))
    return np.concatenate([start, start + np.cumsum(steps, axis=0)])


def make_reference(u_per_molecule=-6.8, n_molecules=64, width=0.25, r_end=10.0, slope=1.2):
    r = grid(width, r_end)
    lag = np.arange(200) * 0.2
    return mt.Reference(u_per_molecule=u_per_molecule, n_molecules=n_molecules, temperature=340.0,
                        rdf_r=r, rdf_g=np.ones_like(r), msd_lag=lag, msd=slope * lag)


def thermo_frame(n=50, u=-435.2, temperature=340.0, n_eq=10, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "step": np.arange(n) * 10, "time_ps": np.arange(n) * 0.04,
        "potential_energy": u + noise * rng.normal(size=n), "temperature": temperature + noise * rng.normal(size=n),
        "production": np.arange(n) >= n_eq,
    })


def train_log(seconds, diverged_at=None):
    n = len(seconds)
    loss = np.linspace(1.0, 0.1, n)
    if diverged_at is not None:
        loss[diverged_at:] = np.nan
    return pd.DataFrame({"epoch": np.arange(1, n + 1), "seconds": seconds, "train_force": loss,
                         "train_energy": loss, "val_force": loss, "val_energy": loss,
                         "coef_force": 1.0, "coef_energy": 0.5, "lr": 1e-3, "criterion": 2 * loss})


def simulation(status="completed", n_frames=40, n_beads=64, box=20.0, seed=1):
    positions = random_walk(n_frames, n_beads, 0.2, 0.2, seed, box)
    return mt.SimulationRun(status={"status": status, "reason": "" if status == "completed" else "T > 3 x 340 K",
                                    "step": 1234},
                            thermo=thermo_frame(u=-6.8 * n_beads, noise=1.0),
                            times=np.arange(n_frames) * 0.2, positions=positions,
                            boxes=np.full((n_frames, 3), box))


def assert_no_nan(record):
    for name, m in record["metrics"].items():
        if m["value"] is None:
            assert m["status"] != "completed", name
            assert m["reason"], name
        else:
            assert isinstance(m["value"], float) and math.isfinite(m["value"]), name
        if m["status"] == "completed":
            assert m["value"] is not None, name


# --------------------------------------------------------------------------- registry

def test_registry_declares_the_ten_metrics_with_direction_and_stage():
    assert set(PAPER_METRICS) <= set(mt.METRICS)
    assert [n for n, m in mt.METRICS.items() if m.paper] == PAPER_METRICS
    extra = [n for n, m in mt.METRICS.items() if not m.paper]
    assert extra == ["gr_w1", "N_target"]
    assert set(extra) <= set(REPORTED_ONLY)  # the statistics weigh the extras 0 by default
    for name, m in mt.METRICS.items():
        assert m.direction in ("lower", "higher", "target"), name
        assert m.stage in ("training", "simulation"), name
        assert m.unit and m.description and m.symbol, name
        assert bool(m.target) == (m.direction == "target"), name
    assert mt.METRICS["mean_T"].direction == "target" and mt.METRICS["s_MSD"].direction == "target"
    assert mt.METRICS["CV_T"].direction == "target"  # the canonical value, not "lower is better"
    assert mt.METRICS["p_KS"].direction == "higher" and mt.METRICS["d_KS"].direction == "lower"
    assert mt.TRAINING_METRICS == ("N_ep", "t_ep", "sigma_ep", "N_target")
    table = mt.registry_table()
    assert list(table["name"]) == list(mt.METRICS) and {"unit", "direction", "target"} <= set(table.columns)


def test_targets_are_the_thermostat_temperature_and_the_atomistic_slope():
    ref = make_reference(slope=1.2)
    settings = mt.MetricSettings(temperature=330.0)
    assert mt.metric_target("mean_T", ref, settings) == 330.0
    assert mt.metric_target("s_MSD", ref, settings) == pytest.approx(1.2)
    assert mt.metric_target("d_KS", ref, settings) is None


def test_settings_from_config_use_the_atomistic_msd_settings():
    config = {"atomistic": {"temperature": 300.0},
              "observables": {"msd_max_lag_fraction": 0.4, "msd_slope_fraction": 0.25},
              "metrics": {"rdf_r_max": 9.0, "ks_sample_size": 200}}
    s = mt.MetricSettings.from_config(config)
    assert (s.temperature, s.msd_max_lag_fraction, s.msd_slope_fraction, s.rdf_r_max, s.ks_sample_size) == (
        300.0, 0.4, 0.25, 9.0, 200)
    assert mt.MetricSettings.from_config(config, temperature=320.0).temperature == 320.0
    assert mt.MetricSettings.from_config({}) == mt.MetricSettings()


# --------------------------------------------------------------------------- observables through the metric path

def test_ideal_gas_g_of_r_is_one_through_the_shared_observables():
    rng = np.random.default_rng(0)
    box = 20.0
    positions = rng.uniform(0, box, size=(150, 100, 3))
    times = np.arange(150) * 0.1
    ref = make_reference(width=0.5, r_end=10.0)
    curves = mt.simulation_curves(positions, np.full(3, box), times, ref, mt.MetricSettings(rdf_r_max=10.0))
    np.testing.assert_allclose(curves.rdf_r, ref.rdf_r)  # the reference grid
    mask = curves.rdf_r > 2.0  # tiny shells are noisy
    assert np.abs(curves.rdf_g[mask] - 1.0).max() < 0.1
    assert curves.rdf_g[mask].mean() == pytest.approx(1.0, abs=0.01)
    # against an exact g = 1 the sample-size-free distances are small
    structure = mt.structure_metrics(curves, ref, mt.MetricSettings(ks_sample_size=500))
    assert structure["d_KS"] < 0.02
    assert structure["gr_w1"] < 0.02  # A


def test_rdf_range_is_cut_at_r_max_and_half_the_cg_box():
    rng = np.random.default_rng(1)
    ref = make_reference(width=0.25, r_end=10.0)
    positions = rng.uniform(0, 16.0, size=(3, 30, 3))
    curves = mt.simulation_curves(positions, np.full(3, 16.0), np.arange(3) * 0.5, ref,
                                  mt.MetricSettings(rdf_r_max=12.0))
    assert curves.rdf_r[-1] + 0.125 == pytest.approx(8.0)  # half the CG box
    curves = mt.simulation_curves(positions, np.full(3, 16.0), np.arange(3) * 0.5, ref,
                                  mt.MetricSettings(rdf_r_max=5.0))
    assert len(curves.rdf_r) == 20


def test_ballistic_msd_slope_is_analytic():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(40, 3))
    times = np.arange(200) * 0.05
    positions = times[:, None, None] * v[None]
    settings = mt.MetricSettings(msd_max_lag_fraction=0.5, msd_slope_fraction=0.3)
    curves = mt.simulation_curves(positions, np.full(3, 1e3), times, make_reference(), settings)
    # drift removal subtracts the mean velocity: MSD = a t^2 with a = <|v - <v>|^2>
    a = np.mean(np.sum((v - v.mean(axis=0)) ** 2, axis=1))
    np.testing.assert_allclose(curves.msd, a * curves.msd_lag**2, rtol=1e-9, atol=1e-9)
    # least squares of a t^2 on equally spaced points: slope = 2 a mean(t over the window), exactly
    window = curves.msd_lag[int(np.floor(len(curves.msd_lag) * 0.7)):]
    slope = ob.msd_slope(curves.msd_lag, curves.msd, 0.3)
    assert slope == pytest.approx(2 * a * window.mean(), rel=1e-9)
    assert slope == pytest.approx(2 * a * 0.5 * (window[0] + window[-1]), rel=1e-9)
    sim = mt.SimulationRun(status={"status": "completed", "reason": "", "step": 1}, thermo=thermo_frame(u=-272.0),
                           times=times, positions=positions, boxes=np.full((200, 3), 1e3))
    record = mt.compute_model_metrics("m", 0, None, sim, make_reference(), settings, curves=curves)
    assert record["metrics"]["s_MSD"]["value"] == pytest.approx(2 * a * window.mean(), rel=1e-9)


def test_diffusive_msd_slope_is_6d():
    dt, diffusion, n = 0.5, 0.3, 300
    positions = random_walk(3000, n, dt, diffusion, seed=4, box=1e4)
    ref = make_reference()
    ref.msd = ref.msd_lag * 6 * diffusion
    settings = mt.MetricSettings(msd_max_lag_fraction=0.1, msd_slope_fraction=0.3)
    sim = mt.SimulationRun(status={"status": "completed", "reason": "", "step": 1},
                           thermo=thermo_frame(u=-6.8 * n), times=np.arange(3000) * dt, positions=positions,
                           boxes=np.full((3000, 3), 1e4))
    curves = mt.Curves(rdf_r=ref.rdf_r, rdf_g=ref.rdf_g, n_frames=3000, n_beads=n, frame_interval=dt,
                       **dict(zip(("msd_lag", "msd"), ob.mean_squared_displacement(positions, dt, 0.1))))
    record = mt.compute_model_metrics("m", 0, None, sim, ref, settings, curves=curves)
    expected = 6 * diffusion * (1 - 1 / n)  # drift removal takes the box-average displacement out
    assert record["metrics"]["s_MSD"]["value"] == pytest.approx(expected, rel=0.05)
    assert record["metrics"]["s_MSD"]["target"] == pytest.approx(6 * diffusion)


# --------------------------------------------------------------------------- energy and temperature

def test_constant_series_give_zero_cv_and_exact_delta_u():
    values = mt.thermo_metrics(thermo_frame(u=-435.2, temperature=340.0), n_beads=64, u_ref_per_molecule=-6.8)
    assert values["CV_U"] == 0.0 and values["CV_T"] == 0.0
    assert values["mean_T"] == 340.0
    assert values["delta_U"] == pytest.approx(0.0, abs=1e-12)  # -435.2 / 64 = -6.8


def test_delta_u_compares_per_molecule_means_and_uses_production_only():
    thermo = thermo_frame(n=20, u=-700.0, n_eq=5)
    thermo.loc[:4, "potential_energy"] = 1e6  # equilibration rows must not count
    thermo.loc[:4, "temperature"] = 1e4
    values = mt.thermo_metrics(thermo, n_beads=100, u_ref_per_molecule=-6.8)
    assert values["delta_U"] == pytest.approx(100 * 0.2 / 6.8)  # -7.0 vs -6.8 per molecule
    assert values["mean_T"] == 340.0
    # same system at twice the size: same per-molecule mean, same delta_U
    assert mt.delta_u(np.full(10, -1400.0), 200, -6.8) == pytest.approx(values["delta_U"])


def test_cv_of_a_known_series():
    thermo = thermo_frame(n=4, n_eq=0)
    thermo["temperature"] = [300.0, 380.0, 300.0, 380.0]
    assert mt.thermo_metrics(thermo, 64, -6.8)["CV_T"] == pytest.approx(40.0 / 340.0)


def test_production_flags_parse_from_csv_text():
    assert mt.production_mask(pd.Series(["True", "False", "true"])).tolist() == [True, False, True]
    assert mt.production_mask(np.array([0, 1, 1])).tolist() == [False, True, True]
    with pytest.raises(ValueError):
        mt.production_mask(pd.Series(["yes", "no"]))


# --------------------------------------------------------------------------- g(r) comparison

def test_identical_g_of_r_gives_zero_distances_and_p_one():
    r = grid()
    g = liquid_like_g(r)
    d, p = mt.ks_gr(r, g, g.copy())
    assert d == 0.0 and p == 1.0
    assert mt.gr_w1(r, g, g) == 0.0
    assert mt.gr_l1(r, g, g) == 0.0
    assert mt.ks_sup_distance(r, g, g) == 0.0


def test_shifted_g_of_r_is_farther_than_a_slightly_perturbed_one():
    r = grid()
    g = liquid_like_g(r)
    perturbed = g * (1.0 + 0.01 * np.sin(7.0 * r))
    shifted = liquid_like_g(r, shift=0.3)
    d_small, p_small = mt.ks_gr(r, perturbed, g)
    d_big, p_big = mt.ks_gr(r, shifted, g)
    assert d_big > 3 * d_small and p_big < p_small
    assert mt.gr_w1(r, shifted, g) > 3 * mt.gr_w1(r, perturbed, g)
    assert mt.gr_l1(r, shifted, g) > 3 * mt.gr_l1(r, perturbed, g)
    # a larger shift is larger still (monotone)
    assert mt.ks_gr(r, liquid_like_g(r, shift=0.6), g)[0] > d_big


def test_ks_statistic_is_the_exact_cdf_distance_and_deterministic():
    r = grid()
    g, shifted = liquid_like_g(r), liquid_like_g(r, shift=0.3)
    exact = mt.ks_sup_distance(r, shifted, g)
    for n in (200, 1000, 3000):
        d, _ = mt.ks_gr(r, shifted, g, sample_size=n)
        assert abs(d - exact) <= 1.0 / n + 1e-12
    assert mt.ks_gr(r, shifted, g) == mt.ks_gr(r, shifted, g)
    # the p-value depends on the chosen n, the statistic does not: why p_KS is reported, not ranked on
    assert mt.ks_gr(r, shifted, g, 3000)[1] < mt.ks_gr(r, shifted, g, 200)[1]


def test_inverse_cdf_sample_of_an_ideal_gas_is_uniform_in_volume():
    r = grid(0.01, 10.0)
    sample = mt.inverse_cdf_sample(*mt.pair_distance_cdf(r, np.ones_like(r)), 100)
    q = (np.arange(100) + 0.5) / 100
    np.testing.assert_allclose(sample, 10.0 * q ** (1 / 3), atol=0.01)  # P(d < x) = (x / r_max)^3


def test_w1_equals_the_quantile_integral_and_a_pure_shift():
    r = grid(0.01, 12.0)
    g, shifted = liquid_like_g(r), liquid_like_g(r, shift=0.3)
    # W1 = int_0^1 |Q_a(q) - Q_b(q)| dq: the mean gap of many inverse-CDF quantiles, an independent route
    n = 200000
    qa = mt.inverse_cdf_sample(*mt.pair_distance_cdf(r, shifted), n)
    qb = mt.inverse_cdf_sample(*mt.pair_distance_cdf(r, g), n)
    assert mt.gr_w1(r, shifted, g) == pytest.approx(np.mean(np.abs(qa - qb)), rel=1e-3)
    # distributions that differ by a pure shift delta of every pair distance: W1 = delta
    # (r^2 g(r) of b is that of a moved by 0.5 A: g_b(r) = g_a(r - 0.5) (r - 0.5)^2 / r^2)
    core = np.exp(-0.5 * ((r - 5.0) / 0.6) ** 2)
    moved = np.exp(-0.5 * ((r - 5.5) / 0.6) ** 2) * (r - 0.5) ** 2 / r**2
    assert mt.gr_w1(r, core, moved) == pytest.approx(0.5, rel=1e-3)
    assert mt.gr_w1(r, core, moved) == pytest.approx(mt.gr_w1(r, moved, core))


def test_gr_l1_of_a_constant_offset_is_offset_times_range():
    r = grid(0.1, 8.0)
    assert mt.gr_l1(r, np.ones_like(r), np.full_like(r, 1.1)) == pytest.approx(0.8)


def test_zero_g_of_r_is_refused():
    r = grid()
    with pytest.raises(ValueError):
        mt.ks_gr(r, np.zeros_like(r), liquid_like_g(r))


# --------------------------------------------------------------------------- training metrics

def test_training_metrics_from_a_hand_written_log(tmp_path):
    run = tmp_path / "models" / "ratio" / "seed1"
    run.mkdir(parents=True)
    (run / "train_log.csv").write_text(
        "epoch,seconds,train_force,train_energy,val_force,val_energy,coef_force,coef_energy,lr,criterion\n"
        "1,2.0,1.0,4.0,1.1,4.2,1.0,0.25,0.001,2.0\n"
        "2,4.0,0.8,3.0,0.9,3.1,1.0,0.27,0.001,1.04\n"
        "3,3.0,0.7,2.5,0.8,2.9,1.0,0.28,0.001,1.0\n"
        "4,3.0,0.7,2.4,0.85,3.0,1.0,0.29,0.0005,1.1\n")  # epoch 4: a patience epoch, still counted
    (run / "status.json").write_text(json.dumps({"status": "completed", "reason": "early stopping", "epoch": 4}))
    training = mt.read_training_run(run)
    record = mt.compute_model_metrics("ratio", 1, training, None, make_reference())
    m = record["metrics"]
    assert m["N_ep"]["value"] == 4.0
    assert m["t_ep"]["value"] == pytest.approx(3.0)
    assert m["sigma_ep"]["value"] == pytest.approx(math.sqrt(0.5))  # population std of 2, 4, 3, 3
    assert m["N_target"]["value"] == 2.0  # 1.04 <= 1.05 x the best 1.0
    assert record["details"]["t_ep_wall"] == pytest.approx(3.0)
    assert all(m[k]["status"] == "completed" for k in mt.TRAINING_METRICS)
    assert m["delta_U"]["value"] is None and m["delta_U"]["status"] == "missing"
    assert_no_nan(record)


# --------------------------------------------------------------------------- failed runs

def test_diverged_training_keeps_training_metrics_and_fails_physics():
    training = mt.TrainingRun(status={"status": "diverged", "reason": "non-finite loss", "epoch": 3},
                              log=train_log([1.0, 1.0, 1.0], diverged_at=2))
    record = mt.compute_model_metrics("softadapt", 2, training, None, make_reference())
    assert record["training_status"] == "diverged"
    for name in mt.TRAINING_METRICS:
        assert record["metrics"][name]["value"] is not None
        assert record["metrics"][name]["status"] == "diverged"
    assert record["metrics"]["N_ep"]["value"] == 3.0
    for name in mt.SIMULATION_METRICS:
        assert record["metrics"][name]["value"] is None
        assert record["metrics"][name]["status"] == "diverged"
        assert "non-finite loss" in record["metrics"][name]["reason"]
    assert_no_nan(record)


def test_unstable_simulation_fails_physics_but_keeps_training():
    training = mt.TrainingRun(status={"status": "completed", "reason": "", "epoch": 5}, log=train_log([1.0] * 5))
    record = mt.compute_model_metrics("constant", 0, training, simulation("unstable"), make_reference())
    assert record["simulation_status"] == "unstable"
    for name in mt.TRAINING_METRICS:
        assert record["metrics"][name]["status"] == "completed"
    for name in mt.SIMULATION_METRICS:
        m = record["metrics"][name]
        assert m["value"] is None and m["status"] == "unstable" and "step 1234" in m["reason"]
    assert_no_nan(record)


def test_undefined_metrics_are_invalid_not_nan():
    sim = simulation()
    sim.thermo["potential_energy"] = np.nan
    sim.positions = sim.positions[:1]
    sim.times, sim.boxes = sim.times[:1], sim.boxes[:1]
    training = mt.TrainingRun(status={"status": "completed", "reason": ""}, log=train_log([1.0, np.nan]))
    record = mt.compute_model_metrics("ratio", 0, training, sim, make_reference())
    for name, m in record["metrics"].items():
        assert m["value"] is None and m["status"] == "invalid", name
    assert "non-finite" in record["metrics"]["delta_U"]["reason"]
    assert "two frames" in record["metrics"]["s_MSD"]["reason"]
    assert_no_nan(record)


def test_completed_model_has_every_metric_finite():
    training = mt.TrainingRun(status={"status": "completed", "reason": ""}, log=train_log([1.0, 1.2, 0.8]))
    record = mt.compute_model_metrics("ratio", 0, training, simulation(), make_reference(),
                                      mt.MetricSettings(rdf_r_max=10.0, ks_sample_size=300))
    assert all(m["status"] == "completed" for m in record["metrics"].values())
    assert_no_nan(record)
    assert record["n_beads"] == 64
    assert record["metrics"]["mean_T"]["target"] == 340.0
    json.dumps(record)  # JSON-ready without a default hook


# --------------------------------------------------------------------------- tidy table

def test_tidy_table_shape_and_columns(tmp_path):
    ok = mt.TrainingRun(status={"status": "completed", "reason": ""}, log=train_log([1.0, 1.2]))
    records = [
        mt.compute_model_metrics("ratio", 0, ok, simulation(), make_reference()),
        mt.compute_model_metrics("ratio", 1, ok, simulation("unstable"), make_reference()),
        mt.compute_model_metrics("constant", 0, mt.TrainingRun({"status": "diverged", "reason": "nan"},
                                                               train_log([1.0])), None, make_reference()),
    ]
    table = mt.tidy_table(records)
    assert list(table.columns) == ["method", "seed", "metric", "value", "status", "direction", "target", "reason"]
    assert table.shape == (3 * len(mt.METRICS), 8)
    assert table.loc[table["value"].isna(), "status"].ne("completed").all()
    assert table.loc[table["status"] == "completed", "value"].notna().all()
    diverged = table[table["method"] == "constant"].set_index("metric")
    assert diverged.loc["N_ep", "value"] == 1.0 and diverged.loc["N_ep", "status"] == "diverged"
    assert diverged.loc["CV_U", "status"] == "diverged" and np.isnan(diverged.loc["CV_U", "value"])
    assert set(table["direction"]) == {"lower", "higher", "target"}
    assert table.loc[table["metric"] == "mean_T", "target"].eq(340.0).all()
    unstable = table[(table["seed"] == 1) & (table["metric"] == "d_KS")]
    assert unstable["status"].item() == "unstable" and np.isnan(unstable["value"].item())
    path = tmp_path / "metrics" / "metrics.csv"
    mt.write_tidy_csv(path, records)
    back = pd.read_csv(path)
    assert back.shape == table.shape and list(back.columns) == list(table.columns)
    assert (back["status"] == table["status"]).all()


# --------------------------------------------------------------------------- pre-screening

def record_with(**values):
    """A completed model record with the given metric values (defaults pass every criterion)."""
    defaults = {"CV_U": 0.02, "CV_T": 0.05, "delta_U": 2.0, "mean_T": 341.0, "d_KS": 0.01, "gr_w1": 0.05}
    defaults.update(values)
    metrics = {name: {"value": defaults.get(name, 1.0), "status": "completed", "reason": "",
                      "target": 340.0 if name == "mean_T" else None} for name in mt.METRICS}
    return {"method": "m", "seed": 0, "training_status": "completed", "simulation_status": "completed",
            "simulation_reason": "", "n_beads": 125, "metrics": metrics}


@pytest.mark.parametrize("values, criterion, level", [
    ({}, None, None),
    ({"CV_U": 0.5, "CV_T": 0.5, "delta_U": 50.0}, "CV_U", "stability"),  # several failures: the first counts
    ({"CV_T": 0.2, "delta_U": 50.0}, "CV_T", "stability"),  # 0.2 > 1.5 * sqrt(2 / 375) = 0.110
    ({"delta_U": 12.0, "mean_T": 400.0}, "delta_U", "validity"),
    ({"mean_T": 329.0, "d_KS": 0.5}, "mean_T", "validity"),  # 11 K > 3 % of 340 K = 10.2 K
    ({"mean_T": 331.0}, None, None),  # 9 K is within
    ({"d_KS": 0.04}, "d_KS", "structure"),
])
def test_prescreen_hierarchy(values, criterion, level):
    verdict = mt.prescreen(record_with(**values))
    assert verdict["verdict"] == ("pass" if criterion is None else "fail")
    assert verdict["failed_criterion"] == criterion and verdict["level"] == level


def test_prescreen_thresholds_are_configurable():
    rec = record_with(CV_T=0.2, gr_w1=0.2)
    assert mt.prescreen(rec, {"cv_t_max": 0.25})["verdict"] == "pass"
    assert mt.prescreen(rec, {"cv_t_canonical_factor": 2.0})["failed_criterion"] == "CV_T"  # 0.146 < 0.2
    assert mt.prescreen(rec, {"cv_t_canonical_factor": 3.0})["verdict"] == "pass"  # 3 sqrt(2 / 375) = 0.219
    out = mt.prescreen(rec, {"cv_t_max": 0.25, "structure_metric": "gr_w1"})
    assert out["failed_criterion"] == "gr_w1" and out["level"] == "structure"
    assert mt.prescreen(rec, {"cv_t_max": 0.25, "structure_metric": "gr_w1", "gr_w1_max": 0.3})["verdict"] == "pass"
    with pytest.raises(ValueError, match="unknown"):
        mt.prescreen(rec, {"cv_max": 1.0})


def test_prescreen_failed_runs_are_not_run_and_undefined_metrics_fail():
    rec = record_with()
    rec["simulation_status"], rec["simulation_reason"] = "unstable", "beads 0.5 A apart"
    out = mt.prescreen(rec)
    assert out["verdict"] == "not_run" and out["failed_criterion"] is None and "beads" in out["reason"]
    rec = record_with()
    rec["training_status"] = "diverged"
    assert mt.prescreen(rec)["verdict"] == "not_run"
    rec = record_with()
    rec["metrics"]["delta_U"].update(value=None, status="invalid", reason="no thermo")
    out = mt.prescreen(rec)
    assert out["verdict"] == "fail" and out["failed_criterion"] == "delta_U"
    table = mt.prescreen_table([record_with(), rec])
    assert list(table["verdict"]) == ["pass", "fail"]


# --------------------------------------------------------------------------- files end to end

def write_model_files(root, method, seed, sim_status="completed", n_beads=27, n_frames=30, box=12.0):
    model = root / "models" / method / f"seed{seed}"
    model.mkdir(parents=True)
    train_log([1.0, 1.5, 2.0]).to_csv(model / "train_log.csv", index=False)
    (model / "status.json").write_text(json.dumps({"status": "completed", "reason": "", "epoch": 3}))
    sim = root / "simulations" / method / f"seed{seed}"
    sim.mkdir(parents=True)
    thermo_frame(u=-6.5 * n_beads, noise=2.0, seed=seed).to_csv(sim / "thermo.csv", index=False)
    (sim / "status.json").write_text(json.dumps({"status": sim_status, "reason": "", "step": 500}))
    positions = random_walk(n_frames, n_beads, 0.2, 0.1, seed, box)
    with H5MDWriter(sim / "trajectory.h5") as writer:
        writer.particle_group("beads", {"mass": (np.full(n_beads, 78.11), "g/mol")})
        for k, frame in enumerate(positions):
            writer.append("particles/beads/position", frame, 50 * k, 0.2 * k, "angstrom")
            writer.append("particles/beads/box/edges", np.full(3, box), 50 * k, 0.2 * k, "angstrom")
    return model, sim


def write_reference(root, n=27, box=12.0):
    ref = root / "atomistic"
    ref.mkdir(parents=True)
    positions = random_walk(40, n, 0.2, 0.1, 99, box)
    rdf = ob.radial_distribution(positions, np.full(3, box), bin_width=0.2)
    lag, msd = ob.mean_squared_displacement(positions, 0.2)
    pd.DataFrame({"r_A": rdf.r, "g": rdf.g}).to_csv(ref / "rdf.csv", index=False)
    pd.DataFrame({"lag_ps": lag, "msd_A2": msd}).to_csv(ref / "msd.csv", index=False)
    (ref / "observables.json").write_text(json.dumps({
        "n_particles": n, "mean_U_A": -6.8 * n, "mean_U_A_per_molecule": -6.8, "mean_temperature": 339.0,
        "msd_slope_last_fraction": ob.msd_slope(lag, msd, 0.3), "msd_slope_fraction": 0.3}))
    return ref


def test_evaluate_model_from_files_writes_json_csv_and_figure(tmp_path):
    ref = write_reference(tmp_path)
    records = []
    for seed, status in ((0, "completed"), (1, "unstable")):
        model, sim = write_model_files(tmp_path, "ratio", seed, status)
        figure = tmp_path / "figures" / f"seed{seed}.png"
        record = mt.evaluate_model("ratio", seed, model, sim, ref, mt.MetricSettings(rdf_r_max=6.0), figure=figure)
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        path = tmp_path / "metrics" / f"ratio_seed{seed}.json"
        mt.write_model_json(path, record, provenance={"config": "test"})
        back = mt.read_model_json(path)
        assert back["metrics"] == json.loads(json.dumps(record["metrics"]))
        records.append(back)
        assert_no_nan(back)
    ok, bad = records
    assert all(m["status"] == "completed" for m in ok["metrics"].values())
    assert ok["metrics"]["delta_U"]["value"] == pytest.approx(100 * 0.3 / 6.8, rel=0.05)
    assert ok["details"]["rdf_r_range_A"] == pytest.approx([0.0, 6.0])
    assert ok["metrics"]["s_MSD"]["target"] == pytest.approx(
        json.loads((ref / "observables.json").read_text())["msd_slope_last_fraction"])
    assert bad["metrics"]["d_KS"]["status"] == "unstable" and bad["metrics"]["N_ep"]["value"] == 3.0
    table = mt.write_tidy_csv(tmp_path / "metrics" / "metrics.csv", records)
    assert len(table) == 2 * len(mt.METRICS)


def test_missing_simulation_directory_reads_as_missing(tmp_path):
    ref = write_reference(tmp_path)
    model, _ = write_model_files(tmp_path, "ratio", 0)
    record = mt.evaluate_model("ratio", 0, model, tmp_path / "nowhere", ref)
    assert record["simulation_status"] == "missing"
    assert record["metrics"]["CV_T"]["status"] == "missing" and record["metrics"]["N_ep"]["status"] == "completed"
    assert mt.prescreen(record)["verdict"] == "not_run"


# --------------------------------------------------------------------------- issue 13: physics of the targets


def test_cv_t_target_is_the_canonical_fluctuation_of_3n_minus_3_momenta():
    """Oracle: Maxwell-Boltzmann velocities of N beads with the centre-of-mass velocity removed."""
    rng = np.random.default_rng(0)
    n = 27
    v = rng.standard_normal((20000, n, 3))
    v -= v.mean(axis=1, keepdims=True)
    temperature = (v**2).sum(axis=(1, 2))
    cv = temperature.std() / temperature.mean()
    assert mt.canonical_cv_t_target(n) == pytest.approx(math.sqrt(2 / (3 * n - 3)))
    assert cv == pytest.approx(mt.canonical_cv_t_target(n), rel=0.02)
    assert mt.metric_target("CV_T", None, mt.MetricSettings(), n_beads=n) == mt.canonical_cv_t_target(n)


def test_friction_limit_of_the_msd_slope():
    """Benzene beads (78.11 g/mol) at 340 K with gamma = 2/ps: D_max = kT / (m gamma) ~ 1.81 A^2/ps."""
    limit = mt.friction_limited_msd_slope(340.0, 78.114, 2.0)
    assert limit / 6 == pytest.approx(1.809, rel=1e-3)
    assert mt.friction_limited_msd_slope(340.0, 78.114, 4.0) == pytest.approx(limit / 2)


def test_epochs_to_target_and_censored_n_ep():
    assert mt.epochs_to_target([5.0, 2.0, 1.02, 1.0, 1.2], 0.05) == 3.0
    assert mt.epochs_to_target([5.0, 2.0, 1.02, 1.0, 1.2], 0.0) == 4.0
    training = mt.TrainingRun(status={"status": "completed", "reason": "max_epochs 3 reached", "epoch": 3},
                              log=train_log([1.0, 1.0, 1.0]))
    m = mt.compute_model_metrics("constant", 1, training, None, make_reference())["metrics"]
    assert m["N_ep"]["status"] == "censored" and m["N_ep"]["value"] == 3.0
    assert m["t_ep"]["status"] == "completed"


def test_counted_timing_replaces_wall_clock_and_wall_stays_as_provenance():
    training = mt.TrainingRun(status={"status": "completed", "reason": "early stopping", "epoch": 3},
                              log=train_log([1.0, 2.0, 3.0]))
    timing = {"t_ep": 0.5, "sigma_ep": 0.0, "epoch_flops": [5e8, 5e8], "flops_ep": 5e8, "calibration": {}}
    record = mt.compute_model_metrics("constant", 1, training, None, make_reference(), timing=timing)
    assert record["metrics"]["t_ep"]["value"] == 0.5 and record["metrics"]["sigma_ep"]["value"] == 0.0
    assert record["details"]["t_ep_wall"] == pytest.approx(2.0)


def test_delta_u_reference_is_the_training_frames_mean():
    ref = make_reference(u_per_molecule=-6.8, n_molecules=64)
    thermo = thermo_frame(u=-7.0 * 64)
    sim = mt.SimulationRun(status={"status": "completed"}, thermo=thermo, positions=np.zeros((2, 64, 3)))
    atomistic = mt.compute_model_metrics("c", 1, None, sim, ref)["metrics"]["delta_U"]["value"]
    training = mt.compute_model_metrics("c", 1, None, sim, ref, u_reference=-7.0)
    assert atomistic == pytest.approx(100 * 0.2 / 6.8)
    assert training["metrics"]["delta_U"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert training["details"]["u_reference_source"] == "training frames"
