"""ASE NVT driver: conservation, thermostat, stability guard, unwrapped frames (with ASE's LJ as the model)."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

from balancebench.simulation import EV_PER_KCAL_MOL, NVTSettings, initialise_velocities, run_nvt

SIGMA, EPSILON_KCAL = 5.3, 0.6  # a benzene-like bead pair potential


def lj_liquid(n_side=4, spacing=5.4, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.array([(i, j, k) for i in range(n_side) for j in range(n_side) for k in range(n_side)], float)
    positions = grid * spacing + rng.normal(scale=0.05, size=grid.shape)
    atoms = Atoms(f"X{len(grid)}", positions=positions, cell=[n_side * spacing] * 3, pbc=True)
    atoms.set_masses(np.full(len(grid), 78.114))
    atoms.calc = LennardJones(sigma=SIGMA, epsilon=EPSILON_KCAL * EV_PER_KCAL_MOL, rc=10.0, smooth=True)
    return atoms


def test_nve_conserves_energy():
    """Velocity Verlet at 2 fs on a smooth LJ bead liquid: total energy spread < 0.002 kcal/mol per bead over 1 ps."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    atoms = lj_liquid()
    initialise_velocities(atoms, 200.0, seed=1)
    dyn = VelocityVerlet(atoms, 2.0 * units.fs)
    e_tot = []
    for _ in range(50):
        dyn.run(10)
        e_tot.append(atoms.get_total_energy() / EV_PER_KCAL_MOL)
    assert atoms.get_kinetic_energy() / EV_PER_KCAL_MOL > 10.0
    assert np.ptp(e_tot) < 2e-3 * len(atoms)


def test_langevin_holds_temperature():
    atoms = lj_liquid()
    # 2 fs: ASE's Langevin integrator runs ~6 % hot at 4 fs on this steep LJ wall (a timestep error, not the thermostat)
    settings = NVTSettings(thermostat="langevin", timestep=2.0, friction=5.0, equilibration=2.0, production=8.0,
                           temperature=340.0, seed=2)
    result = run_nvt(atoms, settings)
    assert result.status == "completed", result.reason
    prod = result.thermo["production"]
    assert np.mean(result.thermo["temperature"][prod]) == pytest.approx(340.0, rel=0.05)


@pytest.mark.parametrize("thermostat", ["bussi", "nose_hoover_chain"])
def test_other_thermostats_run(thermostat):
    result = run_nvt(lj_liquid(), NVTSettings(thermostat=thermostat, equilibration=0.2, production=0.4, seed=3))
    assert result.status == "completed", result.reason


def test_unknown_thermostat_is_refused():
    with pytest.raises(ValueError, match="unknown thermostat"):
        run_nvt(lj_liquid(), NVTSettings(thermostat="berendsen"))


def test_huge_timestep_is_recorded_unstable_not_raised():
    result = run_nvt(lj_liquid(), NVTSettings(timestep=150.0, equilibration=1.0, production=5.0, seed=4))
    assert result.status == "unstable"
    assert result.reason and result.step > 0
    assert len(result.thermo["step"]) >= 1


def test_collapse_is_caught_by_the_distance_guard():
    atoms = lj_liquid()
    atoms.calc = LennardJones(sigma=SIGMA, epsilon=-EPSILON_KCAL * EV_PER_KCAL_MOL, rc=10.0, smooth=True)  # attractive core
    result = run_nvt(atoms, NVTSettings(equilibration=2.0, production=20.0, min_distance=3.0, seed=5,
                                        max_temperature_factor=1e9, thermo_interval=1))
    assert result.status == "unstable"
    assert "apart" in result.reason, result.reason


def test_frames_are_regular_and_unwrapped():
    settings = NVTSettings(timestep=4.0, equilibration=0.4, production=4.0, frame_interval=0.2, thermo_interval=10,
                           seed=6)
    result = run_nvt(lj_liquid(), settings)
    assert result.status == "completed"
    assert len(result.positions) == 20
    np.testing.assert_allclose(np.diff(result.frame_times), 0.2)
    jumps = np.abs(np.diff(result.positions, axis=0)).max()
    assert jumps < 0.25 * result.box.min()  # no wrapping jumps of a box length
