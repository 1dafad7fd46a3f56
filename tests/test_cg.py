"""CG mapping: split properties, round trip, and mapping of a real (tiny) LAMMPS trajectory."""

import numpy as np
import pytest

from balancebench.tasks.cg_benzene import cg
from balancebench.tasks.cg_benzene.atomistic import builder, md
from balancebench.tasks.cg_benzene.trajectory import H5MDWriter


def test_split_is_disjoint_complete_and_seeded():
    s = cg.split_frames(1000, 0.1, 0.1, seed=3)
    assert (len(s["test"]), len(s["validation"]), len(s["train"])) == (100, 90, 810)
    allidx = np.concatenate(list(s.values()))
    assert len(np.unique(allidx)) == 1000
    again = cg.split_frames(1000, 0.1, 0.1, seed=3)
    other = cg.split_frames(1000, 0.1, 0.1, seed=4)
    assert all(np.array_equal(s[k], again[k]) for k in s)
    assert not np.array_equal(s["test"], other["test"])


def test_split_refuses_too_few_frames():
    with pytest.raises(ValueError, match="no training frame"):
        cg.split_frames(2, 0.5, 0.5, seed=0)


@pytest.fixture(scope="module")
def tiny_trajectory(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cg")
    system = builder.build_benzene_box(27, 0.4, seed=1)
    builder.write_lammps_data(system, tmp / "in.data")
    settings = md.MDSettings(pair_cutoff=7.0, nvt_duration=0.5, frame_interval=0.1, atom_precision="float64")
    with H5MDWriter(tmp / "traj.h5") as w:
        md.production(tmp / "in.data", w, settings)
    return tmp / "traj.h5"


def test_mapping_of_a_lammps_trajectory(tiny_trajectory, tmp_path):
    data = cg.map_trajectory(tiny_trajectory)
    assert data.positions.shape == (5, 27, 3) and data.energy.shape == (5,)
    assert data.masses == pytest.approx(np.full(27, 78.114))
    summary = cg.mapping_summary(data)
    assert summary["max_net_force_per_frame"] < 1e-3 * summary["rms_bead_force"]
    data.split = cg.split_frames(data.n_frames, 0.2, 0.25, seed=0)
    cg.write_dataset(data, tmp_path / "d.h5", provenance='{"seed": 0}')
    back = cg.read_dataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(back.forces, data.forces)
    np.testing.assert_array_equal(back.split["train"], data.split["train"])
    sub = back.subset("test")
    assert sub.n_frames == 1 and sub.positions.shape == (1, 27, 3)
    stride = cg.map_trajectory(tiny_trajectory, stride=2)
    np.testing.assert_array_equal(stride.energy, data.energy[::2])
