"""Torch files of the pipeline (model weights, resume checkpoints): loaded with ``weights_only=True`` (numpy
data allowed, never code) with errors that name the file, written atomically (:mod:`balancebench.fileio`).
Apart from fileio so that the environments without torch (statistics, MD) can read the other pipeline files."""

from __future__ import annotations

import torch

from balancebench.fileio import atomic_path, reading


def numpy_safe_globals() -> list:
    """numpy scalars, dtypes and arrays in a checkpoint (a method's state, a log value): data, not code."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType") and n[0].isupper()]
    return [core.multiarray.scalar, core.multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]


def torch_load(path, kind: str = "checkpoint", rebuild: str | None = None, map_location="cpu"):
    """``torch.load(path, weights_only=True)`` (numpy data allowed) with the error naming the file."""
    with reading(path, kind, rebuild):
        with torch.serialization.safe_globals(numpy_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)


def atomic_torch_save(obj, path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
