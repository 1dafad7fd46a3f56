"""H5MD-style writer: layout, units, provenance, appending."""

import json
import subprocess
import sys

import h5py
import numpy as np

from balancebench.tasks.cg_benzene.trajectory import H5MDWriter, read_provenance, read_series


def test_writer_layout_units_and_round_trip(tmp_path):
    path = tmp_path / "t.h5"
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(5, 4, 3))
    with H5MDWriter(path, provenance=json.dumps({"seed": 3})) as w:
        w.particle_group("molecules", {"mass": (np.full(4, 78.114), "g/mol")})
        for k, f in enumerate(frames):
            w.append("particles/molecules/position", f, step=10 * k, time=0.5 * k, unit="angstrom")
            w.append("observables/U_A", -6.8 * 4 + k, step=10 * k, time=0.5 * k, unit="kcal mol-1")
    t, x = read_series(path, "particles/molecules/position")
    np.testing.assert_array_equal(x, frames)
    np.testing.assert_allclose(t, 0.5 * np.arange(5))
    assert json.loads(read_provenance(path))["seed"] == 3
    with h5py.File(path) as fh:
        assert tuple(fh["h5md"].attrs["version"]) == (1, 1)
        assert fh["particles/molecules/position/value"].attrs["unit"] == "angstrom"
        assert fh["particles/molecules/position/time"].attrs["unit"] == "ps"
        assert fh["particles/molecules/box"].attrs["dimension"] == 3
        assert fh["observables/U_A/value"].shape == (5,)
        assert list(fh["observables/U_A/step"][()]) == [0, 10, 20, 30, 40]


def test_float32_storage(tmp_path):
    with H5MDWriter(tmp_path / "t.h5") as w:
        w.append("particles/atoms/position", np.ones((3, 3)), 0, 0.0, "angstrom", np.float32)
    with h5py.File(tmp_path / "t.h5") as fh:
        assert fh["particles/atoms/position/value"].dtype == np.float32


def test_buffered_frames_reach_the_file_on_flush_and_close(tmp_path):
    path = tmp_path / "t.h5"
    writer = H5MDWriter(path)
    for k in range(70):  # more than one chunk (64 frames) and a partial one
        writer.append("observables/temperature", 300.0 + k, step=k, time=0.1 * k, unit="K")
    writer.close()
    with h5py.File(path) as fh:
        values = fh["observables/temperature/value"][()]
        assert len(values) == 70 and values[-1] == 369.0
        assert list(fh["observables/temperature/step"][()]) == list(range(70))


def test_a_killed_writer_leaves_every_flushed_frame_readable(tmp_path):
    path = tmp_path / "killed.h5"
    code = (
        "import os\n"
        "from balancebench.tasks.cg_benzene.trajectory import H5MDWriter\n"
        f"w = H5MDWriter({str(path)!r})\n"
        "for k in range(70):\n"
        "    w.append('observables/temperature', 300.0 + k, step=k, time=0.1 * k, unit='K')\n"
        "w.flush()\n"
        "w.append('observables/temperature', 0.0, step=70, time=7.0, unit='K')\n"
        "os._exit(9)\n"  # killed: no close, the last frame is still buffered
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    with h5py.File(path, "r") as fh:
        values = fh["observables/temperature/value"][()]
    assert len(values) == 70 and values[-1] == 369.0
