"""H5MD-style HDF5 trajectories (https://www.nongnu.org/h5md/h5md.html).

Layout written by :class:`H5MDWriter`::

    /h5md                          version, author, creator (attributes)
    /particles/atoms/              all-atom data (optional)
        position/{value,step,time} (n_frames, n_atoms, 3), unwrapped, A
        force/{value,step,time}    (n_frames, n_atoms, 3), kcal/mol/A
        box/edges/{value,...}      (n_frames, 3), A; box attrs dimension=3, boundary=periodic
        species, mass, charge, molecule_id   fixed per-atom data
    /particles/molecules/          one entry per molecule (the CG beads of the next stage)
        position/{value,...}       centre of mass, unwrapped, float64
        force/{value,...}          sum of the molecule's atomic forces, float64
        box/edges/{value,...}
        mass
    /observables/<name>/{value,step,time}   one scalar per frame
    /parameters                    attrs: provenance (JSON), units

Every ``value`` dataset has a ``unit`` attribute. Frames are appended one at a
time; the writer buffers them per series and writes whole HDF5 chunks (so each
chunk is compressed once, not rewritten per frame), so a long run never holds
more than one chunk per series in memory, and ``flush()`` (called periodically
by the MD drivers) leaves a readable file if the run is killed.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from balancebench.fileio import open_h5

H5MD_VERSION = (1, 1)


class H5MDWriter:
    def __init__(self, path: str | Path, *, creator: str = "balancebench", provenance: str = "{}",
                 compression: str | None = "gzip", compression_opts: int | None = 4):
        self.path = Path(path)
        self.file = h5py.File(self.path, "w")
        self._compression = dict(compression=compression, compression_opts=compression_opts) if compression else {}
        h5 = self.file.create_group("h5md")
        h5.attrs["version"] = np.array(H5MD_VERSION)
        h5.create_group("author").attrs["name"] = "balancebench"
        creator_group = h5.create_group("creator")
        creator_group.attrs["name"] = creator
        from balancebench import __version__

        creator_group.attrs["version"] = __version__
        self.file.create_group("parameters").attrs["provenance"] = provenance
        self._series: dict[str, h5py.Group] = {}
        self._pending: dict[str, dict[str, list]] = {}

    # -- static data -------------------------------------------------------------
    def particle_group(self, name: str, fixed: dict[str, tuple[np.ndarray, str]]) -> h5py.Group:
        group = self.file.require_group(f"particles/{name}")
        box = group.require_group("box")
        box.attrs["dimension"] = 3
        box.attrs["boundary"] = np.array([b"periodic"] * 3)
        for key, (array, unit) in fixed.items():
            ds = group.create_dataset(key, data=array)
            if unit:
                ds.attrs["unit"] = unit
        return group

    # -- time series -------------------------------------------------------------
    def _time_series(self, path: str, shape: tuple[int, ...], dtype, unit: str) -> h5py.Group:
        if path in self._series:
            return self._series[path]
        group = self.file.require_group(path)
        chunk_frames = max(1, min(64, int(2**20 // max(1, np.prod(shape) * np.dtype(dtype).itemsize))))
        opts = self._compression if np.prod(shape) > 1 else {}
        value = group.create_dataset("value", shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                     chunks=(chunk_frames, *shape), **opts)
        if unit:
            value.attrs["unit"] = unit
        group.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
        time = group.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(1024,))
        time.attrs["unit"] = "ps"
        self._series[path] = group
        return group

    def append(self, path: str, value, step: int, time: float, unit: str = "", dtype=np.float64) -> None:
        value = np.asarray(value, dtype=dtype)
        group = self._time_series(path, value.shape, dtype, unit)
        pending = self._pending.setdefault(path, {"value": [], "step": [], "time": []})
        pending["value"].append(value)
        pending["step"].append(step)
        pending["time"].append(time)
        if len(pending["step"]) >= group["value"].chunks[0]:
            self._write_pending(path)

    def _write_pending(self, path: str) -> None:
        pending = self._pending.get(path)
        if not pending or not pending["step"]:
            return
        group = self._series[path]
        n, k = group["value"].shape[0], len(pending["step"])
        for key in ("value", "step", "time"):
            ds = group[key]
            ds.resize(n + k, axis=0)
            ds[n:n + k] = np.asarray(pending[key], dtype=ds.dtype)
            pending[key].clear()

    def flush(self) -> None:
        for path in self._pending:
            self._write_pending(path)
        self.file.flush()

    def close(self) -> None:
        if self.file.id.valid:
            self.flush()
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_series(path: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(time in ps, value) of a time series such as ``observables/temperature`` or ``particles/molecules/position``."""
    with open_h5(path) as fh:
        group = fh[name]
        return group["time"][()], group["value"][()]


def read_provenance(path: str | Path) -> str:
    with open_h5(path) as fh:
        return fh["parameters"].attrs["provenance"]
