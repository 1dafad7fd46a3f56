"""OPLS-AA benzene geometry, topology and the random system builder."""

import numpy as np
import pytest

from balancebench.tasks.cg_benzene.atomistic import builder
from balancebench.tasks.cg_benzene.atomistic import forcefield as ff
from balancebench.tasks.cg_benzene.config_checks import AVOGADRO
from balancebench.tasks.cg_benzene.lammps_runtime import import_lammps


def test_benzene_geometry_and_topology():
    coords, types = ff.benzene_geometry()
    masses = ff.atom_masses(types)
    np.testing.assert_allclose((masses[:, None] * coords).sum(0) / masses.sum(), 0.0, atol=1e-12)
    assert np.allclose(coords[:, 2], 0.0)  # planar
    topo = ff.benzene_topology()
    assert [len(topo[k]) for k in ("bonds", "angles", "dihedrals", "impropers")] == [12, 18, 24, 6]
    for btype, a, b in topo["bonds"]:
        assert np.linalg.norm(coords[a] - coords[b]) == pytest.approx(ff.C_C_BOND if btype == 1 else ff.C_H_BOND)
    assert ff.atom_charges(types).sum() == pytest.approx(0.0, abs=1e-12)
    assert ff.molecule_mass() == pytest.approx(78.114)


def test_intramolecular_erf_term_of_ideal_benzene():
    # 7.0645 kcal/mol per molecule at alpha = 0.25 1/A (docs/atomistic.md), the U_A correction
    assert -ff.intramolecular_erf_energy(0.25) == pytest.approx(7.0645, abs=1e-4)


def test_builder_density_no_overlap_whole_molecules():
    system = builder.build_benzene_box(40, 0.35, seed=1)
    mass = system.masses.sum() / AVOGADRO  # g
    assert mass / (system.box * 1e-8) ** 3 == pytest.approx(0.35, rel=1e-9)
    wrapped, image = system.wrapped()
    assert wrapped.min() >= 0 and wrapped.max() < system.box
    np.testing.assert_allclose(wrapped + image * system.box, system.positions)
    # every molecule is a whole, undistorted benzene
    coords, _ = ff.benzene_geometry()
    ref = np.sort(np.linalg.norm(coords[:, None] - coords[None], axis=2).ravel())
    for m in range(1, 41):
        x = system.positions[system.molecule_ids == m]
        np.testing.assert_allclose(np.sort(np.linalg.norm(x[:, None] - x[None], axis=2).ravel()), ref, atol=1e-9)
    # intermolecular minimum-image distances respect the overlap threshold
    i, j = np.triu_indices(len(wrapped), 1)
    inter = system.molecule_ids[i] != system.molecule_ids[j]
    d = wrapped[i[inter]] - wrapped[j[inter]]
    d -= system.box * np.round(d / system.box)
    assert np.linalg.norm(d, axis=1).min() >= 2.2


def test_builder_is_seeded():
    a = builder.build_benzene_box(10, 0.3, seed=7).positions
    b = builder.build_benzene_box(10, 0.3, seed=7).positions
    c = builder.build_benzene_box(10, 0.3, seed=8).positions
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_builder_refuses_impossible_density():
    with pytest.raises(RuntimeError, match="start_density"):
        builder.build_benzene_box(60, 1.5, seed=0, max_attempts=50)


def test_data_file_reads_into_lammps(tmp_path):
    system = builder.build_benzene_box(8, 0.3, seed=2)
    path = builder.write_lammps_data(system, tmp_path / "b.data")
    lmp = import_lammps().lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        for cmd in ["units real", "atom_style full", "pair_style lj/cut 8.0", "bond_style harmonic",
                    "angle_style harmonic", "dihedral_style opls", "improper_style cvff", f"read_data {path}"]:
            lmp.command(cmd)
        assert lmp.get_natoms() == 96
        assert lmp.extract_global("nbonds") == 96 and lmp.extract_global("ndihedrals") == 192
        lmp.command("compute q all property/atom q")
        lmp.command("variable qt equal charge(all)")
        assert lmp.extract_variable("qt") == pytest.approx(0.0, abs=1e-9)
    finally:
        lmp.close()
