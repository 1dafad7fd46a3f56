"""Corrupt or missing pipeline files are named (path, what looked wrong, rebuild command); writes are atomic."""

import errno
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from balancebench import checkpoints, fileio
from balancebench.fileio import InputFileError
from balancebench.tasks.cg_benzene.cg import CGDataset, read_dataset, write_dataset

REPO = Path(__file__).resolve().parents[1]


def _named(excinfo, path):
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, InputFileError)
    assert str(path) in msg and "rebuild it with: snakemake --cores 2 -f" in msg, msg
    assert "weights_only=False" not in msg  # torch's advice to load unsafely is not passed on
    return msg


def _truncate(path, keep=0.5):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])


@pytest.fixture()
def dataset_file(tmp_path):
    rng = np.random.default_rng(0)
    ds = CGDataset(positions=rng.random((3, 4, 3)), forces=rng.random((3, 4, 3)), energy=rng.random(3),
                   box=np.ones((3, 3)) * 10, masses=np.ones(4), time=np.arange(3.0),
                   split={"train": np.array([0]), "validation": np.array([1]), "test": np.array([2])})
    path = tmp_path / "results" / "cg" / "dataset.h5"
    path.parent.mkdir(parents=True)
    write_dataset(ds, path)
    return path


@pytest.mark.parametrize("damage", ["truncate", "garble", "empty", "missing"])
def test_damaged_cg_dataset_is_named(dataset_file, damage):
    read_dataset(dataset_file)  # intact: reads
    if damage == "truncate":
        _truncate(dataset_file)
    elif damage == "garble":
        dataset_file.write_bytes(b"\x89HDF\r\n" + b"garbage" * 100)
    elif damage == "empty":
        dataset_file.write_bytes(b"")
    else:
        dataset_file.unlink()
    with pytest.raises(InputFileError) as excinfo:
        read_dataset(dataset_file)
    msg = _named(excinfo, dataset_file)
    if damage in ("empty", "missing"):
        assert ("empty" if damage == "empty" else "does not exist") in msg


def test_truncated_cg_trajectory_is_named(tmp_path):
    from balancebench.tasks.cg_benzene.metrics import read_cg_trajectory
    from balancebench.tasks.cg_benzene.trajectory import read_series

    path = tmp_path / "trajectory.h5"
    import h5py

    with h5py.File(path, "w") as fh:
        g = fh.create_group("particles/beads")
        g["position/time"], g["position/value"] = np.arange(4.0), np.zeros((4, 2, 3))
        g["box/edges/value"] = np.ones((4, 3))
    read_cg_trajectory(path)
    _truncate(path, 0.3)
    for reader in (read_cg_trajectory, lambda p: read_series(p, "particles/beads/position")):
        with pytest.raises(InputFileError) as excinfo:
            reader(path)
        _named(excinfo, path)


def test_damaged_model_checkpoint_is_named_without_unsafe_advice(tmp_path):
    from balancebench.tasks.cg_benzene.model import CGSchNet, ModelConfig, load_model

    config = ModelConfig(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=5.0)
    path = tmp_path / "model.pt"
    torch.save(CGSchNet(config).state_dict(), path)
    hparams = {"model": config.to_dict()}
    load_model(path, hparams)
    _truncate(path)
    with pytest.raises(InputFileError) as excinfo:
        load_model(path, hparams)
    _named(excinfo, path)
    # a checkpoint that would run code on load (a pickled object) is refused, not executed
    torch.save({"x": subprocess.Popen}, path)
    with pytest.raises(InputFileError) as excinfo:
        load_model(path, hparams)
    _named(excinfo, path)


def test_resume_checkpoint_with_numpy_state_loads_weights_only(tmp_path):
    path = tmp_path / "ckpt.pt"
    checkpoints.atomic_torch_save({"w": torch.ones(2), "loss": np.float32(1.5), "arr": np.arange(3)}, path)
    state = checkpoints.torch_load(path)
    assert state["loss"] == np.float32(1.5) and type(state["loss"]) is np.float32
    assert np.array_equal(state["arr"], np.arange(3))


def _search_spec():
    from balancebench.search.space import SearchSpec, SearchVocabulary
    from balancebench.tasks.base import get_task

    return SearchSpec.from_config("v", {"kind": "nsde", "population": 4, "generations": 2,
                                        "objectives": ["criterion", "d_KS"],
                                        "space": {"energy_weight": {"low": 1e-3, "high": 1.0, "scale": "log10"},
                                                  "force_loss_alpha": {"low": 0.0, "high": 2.0}}},
                                  SearchVocabulary.from_task(get_task("cg_benzene")))


@pytest.mark.parametrize("damage", ["truncate", "altered", "garble"])
def test_damaged_search_state_is_named(tmp_path, damage):
    from balancebench.search.driver import ask, tell

    spec = _search_spec()
    cands = ask(spec, 0, 1, "v", None, tmp_path / "asked.json")
    evals = [{"feasible": True, "objectives": {"criterion": 1.0 + i, "d_KS": 0.5 - 0.1 * i}} for i in range(len(cands))]
    told = tmp_path / "told.json"
    tell(spec, 0, tmp_path / "asked.json", evals, told)
    assert b"pickle" not in told.read_bytes() and json.loads(told.read_text())["sha256"]
    if damage == "truncate":
        _truncate(told)
    elif damage == "altered":  # valid JSON, one number changed: the checksum catches it
        state = json.loads(told.read_text())
        state["payload"]["history"][0]["F"][0][0] += 1e-9
        told.write_text(json.dumps(state))
    else:
        told.write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(InputFileError) as excinfo:
        ask(spec, 1, 1, "v", told, tmp_path / "asked1.json")
    msg = _named(excinfo, told)
    if damage == "altered":
        assert "checksum" in msg


def test_garbled_csv_and_json_are_named(tmp_path):
    from balancebench.tasks.cg_benzene.metrics import Reference, read_status, read_training_run

    (tmp_path / "observables.json").write_text('{"n_particles": 27, "mean_U')  # truncated JSON
    with pytest.raises(InputFileError) as excinfo:
        Reference.load(tmp_path)
    _named(excinfo, tmp_path / "observables.json")
    with pytest.raises(InputFileError) as excinfo:
        read_status(tmp_path / "observables.json")
    _named(excinfo, tmp_path / "observables.json")
    (tmp_path / "status.json").write_text('{"status": "completed"}')
    (tmp_path / "train_log.csv").write_bytes(b"epoch,loss\n1,0.5\n\xff\xfe\x00\x00garbled")
    with pytest.raises(InputFileError) as excinfo:
        read_training_run(tmp_path)
    _named(excinfo, tmp_path / "train_log.csv")


def test_the_printed_rebuild_command_names_the_file_for_snakemake():
    cmd = fileio.rebuild_command("results/models/softadapt/seed2/model.pt")
    assert cmd.startswith("snakemake --cores 2 -f results/models/softadapt/seed2/model.pt")


# -- writes under a full disk -----------------------------------------------------------------


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_mid_torch_save_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    checkpoints.atomic_torch_save({"w": torch.zeros(3)}, path)
    before = path.read_bytes()

    def half_then_full(obj, f, *args, **kwargs):  # writes part of the file, then the disk is full
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        _enospc()

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        checkpoints.atomic_torch_save({"w": torch.ones(3)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_full_disk_at_fsync_leaves_no_new_file(tmp_path, monkeypatch):
    path = tmp_path / "search" / "told.json"
    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    with pytest.raises(OSError, match="No space left"):
        fileio.write_checked_json(path, {"history": [1.0, 2.0]})
    assert not path.exists() and list(path.parent.iterdir()) == []
    monkeypatch.undo()
    fileio.write_checked_json(path, {"history": [1.0, 2.0]})
    assert fileio.read_checked_json(path) == {"history": [1.0, 2.0]}



def test_atomic_torch_save_writes_the_bytes_torch_save_writes(tmp_path):
    """torch.save names its zip records after the file: the atomic copy of model.pt is byte-identical."""
    state = {"w": torch.arange(4.0)}
    (tmp_path / "direct").mkdir()
    torch.save(state, tmp_path / "direct" / "model.pt")
    checkpoints.atomic_torch_save(state, tmp_path / "model.pt")
    assert (tmp_path / "model.pt").read_bytes() == (tmp_path / "direct" / "model.pt").read_bytes()


def test_no_unsafe_loading_remains_in_the_library():
    proc = subprocess.run(["grep", "-rnE", r"weights_only=False|pickle\.load", str(REPO / "src"),
                           str(REPO / "workflow")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
