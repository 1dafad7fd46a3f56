"""ASE NVT driver: conservation, thermostat, stability guard, unwrapped frames (with ASE's LJ as the model)."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

from balancebench.tasks.cg_benzene.simulation import EV_PER_KCAL_MOL, NVTSettings, initialise_velocities, run_nvt

SIGMA, EPSILON_KCAL = 5.3, 0.6  # a benzene-like bead pair potential


def lj_liquid(n_side=4, spacing=5.4, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.array([(i, j, k) for i in range(n_side) for j in range(n_side) for k in range(n_side)], float)
    positions = grid * spacing + rng.normal(scale=0.05, size=grid.shape)
    atoms = Atoms(f"X{len(grid)}", positions=positions, cell=[n_side * spacing] * 3, pbc=True)
    atoms.set_masses(np.full(len(grid), 78.114))
    atoms.calc = LennardJones(sigma=SIGMA, epsilon=EPSILON_KCAL * EV_PER_KCAL_MOL, rc=10.0, smooth=True)
    return atoms


def nve_total_energies(atoms, temperature, timestep_fs, steps_per_record, records=50):
    """Total energy (kcal/mol) every ``steps_per_record`` steps of velocity Verlet from Maxwell-Boltzmann velocities."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    initialise_velocities(atoms, temperature, seed=1)
    dyn = VelocityVerlet(atoms, timestep_fs * units.fs)
    e_tot = []
    for _ in range(records):
        dyn.run(steps_per_record)
        e_tot.append(atoms.get_total_energy() / EV_PER_KCAL_MOL)
    return np.array(e_tot)


def test_nve_conserves_energy():
    """Velocity Verlet at 2 fs on a smooth LJ bead liquid: total energy spread < 0.002 kcal/mol per bead over 1 ps."""
    atoms = lj_liquid()
    e_tot = nve_total_energies(atoms, 200.0, 2.0, 10)
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


def cg_model_atoms(seed=0, n_side=3, spacing=5.6):
    """A small SchNet + prior model (random weights) on a bead lattice, through CGCalculator."""
    import torch

    from balancebench.tasks.cg_benzene.model import CGSchNet, ModelConfig
    from balancebench.tasks.cg_benzene.simulation import CGCalculator, atoms_from_frame

    torch.manual_seed(seed)
    model = CGSchNet(ModelConfig(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=16,
                                 cutoff=7.5, prior_sigma=4.0))
    model.set_energy_scale(-6.85, 0.3)
    rng = np.random.default_rng(seed)
    grid = np.array([(i, j, k) for i in range(n_side) for j in range(n_side) for k in range(n_side)], float)
    positions = grid * spacing + rng.normal(scale=0.3, size=grid.shape)
    return atoms_from_frame(positions, np.full(3, n_side * spacing), calculator=CGCalculator(model, skin=1.0))


def test_cg_calculator_forces_are_minus_the_gradient_of_its_energy():
    from ase.calculators.fd import calculate_numerical_forces

    atoms = cg_model_atoms()
    analytic = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-4)  # central differences of the energy (eV)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    assert np.abs(analytic).max() > 1e-3  # not trivially zero
    assert abs(analytic.sum(axis=0)).max() < 1e-10


def test_cg_calculator_conserves_energy_in_nve():
    """Velocity Verlet at 1 fs over 1 ps with the trained-model calculator: total energy spread < 2e-3 kcal/mol
    per bead, and no trend (the Verlet list is rebuilt several times on the way)."""
    atoms = cg_model_atoms(seed=1)
    e_tot = nve_total_energies(atoms, 340.0, 1.0, 20)
    assert np.ptp(e_tot) < 2e-3 * len(atoms), np.ptp(e_tot)
    assert abs(np.polyfit(np.arange(len(e_tot)), e_tot, 1)[0] * len(e_tot)) < 1e-3 * len(atoms)
    assert atoms.calc.verlet.builds > 1


def test_cg_calculator_round_trips_a_checkpoint(tmp_path, lj_dataset):
    from balancebench.tasks.cg_benzene.simulation import CGCalculator, atoms_from_frame
    from balancebench.training import train_model

    model = dict(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=7.5)
    train_model(lj_dataset, model, dict(max_epochs=1, batch_size=8), "constant", {}, seed=0, out_dir=tmp_path)
    calc = CGCalculator.from_checkpoint(tmp_path)
    atoms = atoms_from_frame(lj_dataset.positions[0], lj_dataset.box[0], calculator=calc)
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_masses()[0] == pytest.approx(78.114)
    assert calc.hparams["model"]["cutoff"] == 7.5


def test_cg_calculator_table_forces_equal_the_exact_filter_and_autograd():
    """The tabulated filter (default) gives the forces of the exact filter network and of autograd to 1e-6."""
    import torch

    from balancebench.tasks.cg_benzene.model import GraphBatch
    from balancebench.tasks.cg_benzene.simulation import EV_PER_KCAL_MOL, CGCalculator

    atoms = cg_model_atoms(seed=2)
    tabulated = atoms.get_forces(), atoms.get_potential_energy()
    model = atoms.calc.model
    exact_calc = CGCalculator(model, skin=1.0, filter_table=None)
    assert atoms.calc.table is not None and exact_calc.table is None
    atoms.calc = exact_calc
    exact = atoms.get_forces(), atoms.get_potential_energy()
    x = torch.as_tensor(atoms.get_positions(), dtype=torch.float64)
    from balancebench.tasks.cg_benzene.neighbors import neighbor_list

    nl = neighbor_list(x, np.diag(atoms.cell.array), model.cutoff)
    e_ref, f_ref = model.energy_and_forces_autograd(GraphBatch(x, nl, torch.zeros(len(x), dtype=torch.long), 1))
    f_ref = f_ref.numpy() * EV_PER_KCAL_MOL
    scale = np.abs(f_ref).max()
    assert scale > 1e-3
    np.testing.assert_allclose(exact[0], f_ref, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(tabulated[0], f_ref, rtol=0, atol=1e-6 * scale)
    assert tabulated[1] == pytest.approx(float(e_ref[0].detach()) * EV_PER_KCAL_MOL, rel=1e-9)


def test_float32_table_forces_keep_float32_accuracy():
    """In float32 the table (cubic coefficients computed in float64, then cast) is as accurate as the exact filter
    network evaluated in float32: both within 2e-6 of the exact float64 forces, the table no worse than 1.2x."""
    import copy

    import torch

    from balancebench.tasks.cg_benzene.simulation import CGCalculator

    atoms = cg_model_atoms(seed=3)
    model = atoms.calc.model
    forces = {}
    for name, kwargs in {"exact64": dict(filter_table=None), "exact32": dict(filter_table=None, dtype=torch.float32),
                         "table32": dict(dtype=torch.float32)}.items():
        atoms.calc = CGCalculator(copy.deepcopy(model), skin=1.0, **kwargs)
        forces[name] = atoms.get_forces()
    scale = np.abs(forces["exact64"]).max()
    error = {k: np.abs(forces[k] - forces["exact64"]).max() / scale for k in ("exact32", "table32")}
    assert 0 < error["exact32"] < 2e-6 and error["table32"] < 2e-6
    assert error["table32"] <= 1.2 * error["exact32"]


def test_state_check_fast_path_answers_as_ase_does():
    """CGCalculator.check_state: the exact-equality shortcut gives ASE's own answer, changed or not."""
    from ase.calculators.calculator import Calculator

    atoms = cg_model_atoms(seed=4)
    calc = atoms.calc
    atoms.get_forces()
    same = atoms.copy()
    assert calc.check_state(same) == Calculator.check_state(calc, same) == []
    moved = atoms.copy()
    moved.positions[3, 1] += 1e-9
    assert calc.check_state(moved) == Calculator.check_state(calc, moved) == ["positions"]
    kicked = atoms.copy()
    kicked.set_momenta(np.ones((len(atoms), 3)))  # momenta are no system change to ASE
    assert calc.check_state(kicked) == Calculator.check_state(calc, kicked) == []
    resized = atoms.copy()
    resized.set_cell(resized.cell.array * 1.01)
    assert calc.check_state(resized) == Calculator.check_state(calc, resized)
    assert "cell" in calc.check_state(resized)


def test_a_tabulated_model_runs_its_own_table_in_md():
    """A model trained with model.filter_table runs MD on the table of that spacing (the same model)."""
    import dataclasses

    from balancebench.tasks.cg_benzene.model import CGSchNet
    from balancebench.tasks.cg_benzene.simulation import CGCalculator

    model = cg_model_atoms(seed=5).calc.model
    tabulated = CGSchNet(dataclasses.replace(model.config, filter_table=0.02))
    tabulated.load_state_dict(model.state_dict())
    assert CGCalculator(tabulated).table.h == pytest.approx(0.02, rel=1e-3)
    assert CGCalculator(model).table.h == pytest.approx(0.005, rel=1e-3)
