"""File safety for pipeline files: readers that name the broken file, writers that never leave half a file.

Readers: a truncated HDF5 file, a damaged checkpoint, a garbled JSON or CSV table raise
:class:`InputFileError`, whose message names the path, says what looked wrong and gives the
command that rebuilds the file (``snakemake --cores 2 -f PATH``: a forced rerun of that one job,
which the workflow's rule ``all`` lists). The library's own exception is chained (``__cause__``).

Writers: ``atomic_write_*`` write a temporary file in the destination's directory, flush and
fsync it and ``os.replace`` it onto the path, so a kill or a full disk mid-write leaves either the
old file or none, never a truncated one that a later run would trust. The temporary file is
removed when the write fails.

Checkpoints are read with ``torch.load(..., weights_only=True)`` only (:func:`balancebench.checkpoints.torch_load`), and no
results file is read with ``pickle``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle  # only for its exception type: nothing here unpickles
import tempfile
from pathlib import Path


def rebuild_command(path: str | os.PathLike) -> str:
    """The command that rebuilds a workflow output: a forced rerun of the job that writes it."""
    return f"snakemake --cores 2 -f {path}  (with the --configfile you ran with)"


class InputFileError(RuntimeError):
    """A pipeline file that is missing or cannot be read: names the path, what looked wrong, and the fix."""

    def __init__(self, path, what: str, rebuild: str | None = None):
        self.path = str(path)
        self.what = what
        self.rebuild = rebuild if rebuild is not None else rebuild_command(path)
        super().__init__(f"cannot read {self.path}: {what}; rebuild it with: {self.rebuild}")

    def __reduce__(self):  # picklable (multiprocessing, Snakemake's job reports)
        return (type(self), (self.path, self.what, self.rebuild))


def _describe(path: Path, err: BaseException) -> str:
    if isinstance(err, FileNotFoundError) or not path.exists():
        return "the file does not exist"
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    text = str(err).strip() or type(err).__name__
    return f"{type(err).__name__}: {text} ({size} bytes; truncated or damaged?)"


@contextlib.contextmanager
def reading(path, kind: str = "file", rebuild: str | None = None):
    """Wrap the library's error while reading ``path`` in an :class:`InputFileError` naming it."""
    try:
        yield
    except InputFileError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, RuntimeError, AttributeError,
            pickle.UnpicklingError) as err:
        raise InputFileError(path, f"{kind}: {_describe(Path(path), err)}", rebuild) from err


def read_json(path, kind: str = "JSON file", rebuild: str | None = None):
    with reading(path, kind, rebuild):
        return json.loads(Path(path).read_text())


def read_csv(path, kind: str = "CSV table", rebuild: str | None = None, **kwargs):
    import pandas as pd

    with reading(path, kind, rebuild):
        return pd.read_csv(path, **kwargs)


@contextlib.contextmanager
def open_h5(path, kind: str = "HDF5 file", rebuild: str | None = None):
    """``h5py.File(path, "r")``: errors while opening *and* reading inside the block name the file."""
    import h5py

    with reading(path, kind, rebuild):
        with h5py.File(path, "r") as fh:
            yield fh


# -- writers ---------------------------------------------------------------------------



@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success fsync it and ``os.replace`` it onto ``path``.

    The temporary file has ``path``'s own name inside a fresh hidden directory next to it (same file
    system, so the rename is atomic; and ``torch.save``, which names its zip records after the file,
    writes the same bytes as to ``path`` itself). On any error the temporary file is removed and ``path``
    is left as it was (the old file, or none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp = tmpdir / path.name
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
        with contextlib.suppress(OSError):
            tmpdir.rmdir()
    with contextlib.suppress(OSError):  # the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_checked_json(path, payload: dict) -> None:
    """JSON with a sha256 of its canonical payload beside it in the same file (``{"sha256", "payload"}``)."""
    body = json.dumps(payload, sort_keys=True, allow_nan=True)
    atomic_write_text(path, json.dumps({"sha256": checksum(body.encode()), "payload": json.loads(body)},
                                       sort_keys=True, allow_nan=True))


def read_checked_json(path, kind: str = "state", rebuild: str | None = None) -> dict:
    """The payload of :func:`write_checked_json`; a missing, garbled or altered file raises InputFileError."""
    outer = read_json(path, kind, rebuild)
    with reading(path, kind, rebuild):
        if not isinstance(outer, dict) or "sha256" not in outer or "payload" not in outer:
            raise ValueError("not a checksummed state file (no sha256/payload)")
        body = json.dumps(outer["payload"], sort_keys=True, allow_nan=True)
        if checksum(body.encode()) != outer["sha256"]:
            raise ValueError("checksum mismatch: the file was altered or damaged after it was written")
    return outer["payload"]
