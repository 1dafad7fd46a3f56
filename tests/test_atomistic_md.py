"""The LAMMPS driver: exact intermolecular energy, forces, density, reproducibility, error reporting."""

import csv
import dataclasses

import h5py
import numpy as np
import pytest
from ewald_reference import intermolecular_energy

from balancebench.tasks.cg_benzene.atomistic import builder, md
from balancebench.tasks.cg_benzene.atomistic import forcefield as ff
from balancebench.tasks.cg_benzene.trajectory import H5MDWriter

EXPERIMENTAL_DENSITY = 0.829  # g/cm^3 near 340 K (0.8364 at 60 C, 0.8254 at 70 C; docs/atomistic.md)
U_A_EXPECTED = -6.85  # kcal/mol per molecule: -(dH_vap - RT), dH_vap ~ 31.5 kJ/mol at 340 K


def tiny_settings(**kw):
    base = dict(pair_cutoff=7.0, compress_duration=0.4, npt_duration=0.4, rescale_duration=0.2,
                nvt_duration=0.2, frame_interval=0.1, thermo_interval=0.1, atom_precision="float64")
    base.update(kw)
    return md.MDSettings(**base)


@pytest.fixture(scope="module")
def small_system(tmp_path_factory):
    path = tmp_path_factory.mktemp("md") / "small.data"
    system = builder.build_benzene_box(32, 0.40, seed=3)
    builder.write_lammps_data(system, path)
    return system, path


def _oracle(system, rc, alpha, tail):
    sigma = np.array([0.0, ff.CA.sigma, ff.HA.sigma])
    epsilon = np.array([0.0, ff.CA.epsilon, ff.HA.epsilon])
    return intermolecular_energy(system.positions, system.charges, system.molecule_ids, system.types,
                                 sigma, epsilon, np.full(3, system.box), rc, alpha, tail=tail)


@pytest.mark.parametrize("tail", [True, False])
def test_intermolecular_energy_matches_independent_ewald(small_system, tail):
    system, path = small_system
    settings = tiny_settings(pair_cutoff=9.0, kspace_style="ewald", kspace_accuracy=1e-10, tail_correction=tail)
    with md.LammpsSession(path, settings) as session:
        session.run(0)
        energies = session.energies()
    reference = _oracle(system, 9.0, settings.g_ewald, tail)
    assert energies["U_A"] == pytest.approx(reference["total"], rel=1e-5)
    # and the decomposition: LJ part alone
    assert energies["evdwl"] == pytest.approx(reference["lj"], rel=1e-6)


def test_pppm_intermolecular_energy_close_to_ewald(small_system):
    """Production settings (PPPM 1e-5) agree with the exact Ewald value to 1e-4 relative."""
    system, path = small_system
    settings = tiny_settings(pair_cutoff=9.0)
    with md.LammpsSession(path, settings) as session:
        session.run(0)
        u_a = session.energies()["U_A"]
    assert u_a == pytest.approx(_oracle(system, 9.0, settings.g_ewald, True)["total"], rel=1e-4)


def test_forces_sum_to_zero_and_molecule_forces_are_atom_sums(small_system, tmp_path):
    _, path = small_system
    settings = tiny_settings(pair_cutoff=9.0)
    with H5MDWriter(tmp_path / "t.h5") as writer:
        md.production(path, writer, settings)
    with h5py.File(tmp_path / "t.h5") as fh:
        atom_f = fh["particles/atoms/force/value"][()]
        mol_f = fh["particles/molecules/force/value"][()]
        mol_id = fh["particles/atoms/molecule_id"][()]
        net = fh["observables/net_atomic_force/value"][()]
        assert fh["particles/atoms/position/value"].attrs["unit"] == "angstrom"
    assert atom_f.shape == (2, 32 * 12, 3) and mol_f.shape == (2, 32, 3)
    rms = np.sqrt(np.mean(mol_f**2))
    # PPPM leaves a tiny net force (~1e-4 of a bead force); Newton's third law does the rest
    assert np.abs(net).max() < 1e-3 * rms
    summed = np.stack([np.stack([np.bincount(mol_id - 1, weights=frame[:, d]) for d in range(3)], axis=1)
                       for frame in atom_f])
    np.testing.assert_allclose(summed, mol_f, rtol=0, atol=1e-10 * rms)


def test_same_seed_same_numbers_other_seed_differs(small_system, tmp_path):
    _, path = small_system
    settings = tiny_settings()
    traces = []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        md.equilibrate(path, tmp_path / f"{name}.data", tmp_path / f"{name}.csv", settings, seed=seed)
        with open(tmp_path / f"{name}.csv") as fh:
            traces.append([(r["density"], r["temperature"], r["U_A_per_molecule"]) for r in csv.DictReader(fh)])
    assert traces[0] == traces[1]
    assert traces[0] != traces[2]


@pytest.mark.slow
def test_liquid_density_and_energy_of_a_small_box(tmp_path):
    """64 molecules, 3 ps compression + 14 ps NPT: the liquid is right within loose bounds."""
    system = builder.build_benzene_box(64, 0.35, seed=5)
    builder.write_lammps_data(system, tmp_path / "in.data")
    settings = dataclasses.replace(tiny_settings(), pair_cutoff=9.0, compress_duration=3.0, npt_duration=14.0,
                                   npt_average_fraction=0.5, rescale_duration=0.5)
    summary = md.equilibrate(tmp_path / "in.data", tmp_path / "out.data", tmp_path / "trace.csv", settings,
                             seed=5, threads=2)
    assert summary["npt_mean_density"] == pytest.approx(EXPERIMENTAL_DENSITY, rel=0.06)
    assert summary["production_density"] == pytest.approx(summary["npt_mean_density"], rel=1e-6)
    with open(tmp_path / "trace.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["phase"] == "npt"]
    u = np.array([float(r["U_A_per_molecule"]) for r in rows[len(rows) // 2:]])
    t = np.array([float(r["temperature"]) for r in rows[len(rows) // 2:]])
    assert u.mean() == pytest.approx(U_A_EXPECTED, rel=0.15)
    assert t.mean() == pytest.approx(340.0, rel=0.08)


def test_lammps_error_carries_lammps_message_and_reaches_the_log(tmp_path):
    bad = tmp_path / "bad.data"
    bad.write_text("not a data file\n\n12 atoms\n")
    log_file = tmp_path / "lammps.log"
    with pytest.raises(md.LammpsError) as info:
        md.LammpsSession(bad, tiny_settings(), log_file=log_file)
    assert "read_data" in str(info.value)
    assert "ERROR" in log_file.read_text()


def test_compression_ramps_over_the_whole_phase(small_system, tmp_path):
    """fix deform runs in chunks: the density must rise linearly over the phase, not jump in the first chunk."""
    _, path = small_system
    settings = tiny_settings(compress_density=0.6, compress_duration=1.0, thermo_interval=0.2)
    md.equilibrate(path, tmp_path / "o.data", tmp_path / "o.csv", settings, seed=1)
    with open(tmp_path / "o.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["phase"] == "compress"]
    dens = np.array([float(r["density"]) for r in rows])
    assert len(dens) == 5
    assert np.all(np.diff(dens) > 0)
    assert dens[0] < 0.5 and dens[-1] == pytest.approx(0.6, rel=1e-6)
