"""Observables against analytic answers: ideal gas g(r), lattice peaks, ballistic and diffusive MSD, CV."""

import numpy as np
import pytest

from balancebench.tasks.cg_benzene import observables as ob


def test_ideal_gas_rdf_is_one():
    rng = np.random.default_rng(0)
    box = np.array([20.0, 20.0, 20.0])
    positions = rng.uniform(0, 20.0, size=(200, 100, 3))
    rdf = ob.radial_distribution(positions, box, bin_width=0.5)
    assert rdf.r[-1] < 10.0
    mask = rdf.r > 2.0  # small shells are noisy
    assert np.abs(rdf.g[mask] - 1.0).max() < 0.1
    assert rdf.g[mask].mean() == pytest.approx(1.0, abs=0.01)


def test_minimum_image_distances_equal_brute_force_over_images():
    rng = np.random.default_rng(1)
    box = np.array([9.0, 10.0, 11.0])
    x = rng.uniform(0, 1, (12, 3)) * box
    shifts = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]) * box
    i, j = np.triu_indices(12, 1)
    brute = np.array([np.min(np.linalg.norm(x[a] - x[b] + shifts, axis=1)) for a, b in zip(i, j)])
    np.testing.assert_allclose(ob.minimum_image_distances(x, box), brute)


def test_bcc_lattice_first_peak_and_coordination():
    """bcc: 8 neighbours at sqrt(3)/2 a (the highest peak), 6 more at a."""
    a, n = 4.0, 5
    cubic = np.array([(i, j, k) for i in range(n) for j in range(n) for k in range(n)], float) * a
    grid = np.concatenate([cubic, cubic + 0.5 * a])
    rdf = ob.radial_distribution(grid[None], np.full(3, n * a), bin_width=0.05)
    peak_r, _ = rdf.first_peak()
    assert peak_r == pytest.approx(np.sqrt(3) / 2 * a, abs=0.05)
    density = (len(grid) - 1) / (n * a) ** 3  # g(r) is normalised with N - 1 partners per particle
    assert rdf.coordination_number(density, 3.8) == pytest.approx(8.0, rel=1e-6)
    assert rdf.coordination_number(density, 4.5) == pytest.approx(14.0, rel=1e-6)


def test_rdf_refuses_r_max_beyond_half_box():
    with pytest.raises(ValueError, match="half the smallest box"):
        ob.radial_distribution(np.zeros((1, 2, 3)), np.full(3, 10.0), r_max=6.0)


def test_ballistic_msd_is_v2_t2():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(50, 3))
    t = np.arange(100) * 0.1
    x = t[:, None, None] * v[None]
    lag, msd = ob.mean_squared_displacement(x, 0.1, remove_drift=False)
    np.testing.assert_allclose(msd, np.mean(np.sum(v**2, axis=1)) * lag**2, rtol=1e-9, atol=1e-9)


def test_msd_matches_direct_average_over_origins():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(60, 7, 3)), axis=0)
    lag, msd = ob.mean_squared_displacement(x, 1.0, max_lag_fraction=0.5, remove_drift=False)
    direct = [np.mean(np.sum((x[k:] - x[:len(x) - k]) ** 2, axis=2)) for k in range(len(lag))]
    np.testing.assert_allclose(msd, direct, rtol=1e-10, atol=1e-10)


def test_diffusive_random_walk_gives_analytic_slope():
    rng = np.random.default_rng(4)
    dt, diffusion = 0.5, 0.3  # ps, A^2/ps
    steps = rng.normal(scale=np.sqrt(2 * diffusion * dt), size=(4000, 400, 3))
    x = np.cumsum(steps, axis=0)
    lag, msd = ob.mean_squared_displacement(x, dt, max_lag_fraction=0.1)
    # drift removal subtracts the box-average displacement: slope 6 D (1 - 1/N)
    expected = 6 * diffusion * (1 - 1 / 400)
    assert ob.msd_slope(lag, msd, 0.3) == pytest.approx(expected, rel=0.05)
    assert ob.diffusion_coefficient(lag, msd, fit_start=5.0) == pytest.approx(expected / 6 * 1e-8, rel=0.05)


def test_drift_removal_cancels_a_moving_box():
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(size=(100, 20, 3)), axis=0)
    drift = np.arange(100)[:, None, None] * np.array([1.0, -2.0, 0.5])
    _, a = ob.mean_squared_displacement(x, 1.0)
    _, b = ob.mean_squared_displacement(x + drift, 1.0)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_coefficient_of_variation():
    assert ob.coefficient_of_variation(np.full(10, -7.0)) == 0.0
    assert ob.coefficient_of_variation(np.array([1.0, 3.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        ob.coefficient_of_variation(np.array([-1.0, 1.0]))


def test_yeh_hummer_correction_magnitude():
    # benzene-like: 340 K, 0.39 mPa s, L = 42.6 A (500 molecules) -> about 0.5e-9 m^2/s
    corr = ob.yeh_hummer_correction(340.0, 0.39e-3, 42.6)
    assert 4e-10 < corr < 7e-10
