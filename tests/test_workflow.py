"""The Snakemake workflow end to end on a tiny config, plus lint, the paper DAG, and failure isolation."""

import json
import subprocess
import sys

import h5py
import pytest
import yaml

pytestmark = pytest.mark.e2e


def snakemake(repo, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "snakemake", "--nolock", *args], cwd=repo,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def tiny_config(repo, tmp_path):
    config = yaml.safe_load((repo / "tests" / "data" / "tiny.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, tmp_path / "results"


def test_lint_is_clean(repo):
    proc = snakemake(repo, "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_paper_dag_lists_atomistic_jobs_with_resources(repo):
    proc = snakemake(repo, "-n", "--configfile", "config/paper.yaml", "--config", "results_dir=/nonexistent/paper")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for rule in ("build_system", "equilibrate", "production", "atomistic_observables", "cg_map"):
        assert f"rule {rule}:" in out
    assert "runtime=" in out and "mem_mb=8000" in out


def test_tiny_pipeline_end_to_end(repo, tiny_config):
    config, results = tiny_config
    proc = snakemake(repo, "--cores", "2", "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    observables = json.loads((results / "atomistic" / "observables.json").read_text())
    assert observables["n_particles"] == 27 and observables["n_frames"] == 12
    assert observables["provenance"]["seed"] == 7
    assert observables["provenance"]["config"]["atomistic"]["n_molecules"] == 27
    assert "lammps" in observables["provenance"]["versions"]
    with h5py.File(results / "atomistic" / "trajectory.h5") as fh:
        prov = json.loads(fh["parameters"].attrs["provenance"])
        assert prov["seed"] == 7
        assert fh["particles/molecules/position/value"].shape == (12, 27, 3)
    with h5py.File(results / "cg" / "dataset.h5") as fh:
        assert fh["positions"].shape == (12, 27, 3) and fh["energy"].attrs["unit"] == "kcal mol-1"
        sizes = sorted(len(fh[f"split/{k}"]) for k in ("train", "validation", "test"))
        assert sizes == [1, 1, 10]
    mapping = json.loads((results / "cg" / "mapping.json").read_text())
    assert mapping["max_net_force_per_frame"] < 1e-3 * mapping["rms_bead_force"]
    for name in ("rdf.csv", "msd.csv", "figures/liquid.png", "equilibration.csv"):
        assert (results / "atomistic" / name).stat().st_size > 0
    assert "LAMMPS" in (results / "logs" / "atomistic" / "production.lammps.log").read_text()
    for rule in ("build_system", "equilibrate", "production", "observables"):
        assert (results / "benchmarks" / "atomistic" / f"{rule}.tsv").exists()
    # a rerun has nothing to do
    proc = snakemake(repo, "-n", "--configfile", str(config))
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_lammps_failure_fails_that_job_with_lammps_message(repo, tiny_config):
    config, results = tiny_config
    proc = snakemake(repo, str(results / "atomistic" / "initial.data"), "--cores", "1", "--configfile", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (results / "atomistic" / "initial.data").write_text("corrupted\n\n5 atoms\n")
    proc = snakemake(repo, "--cores", "1", "--configfile", str(config))
    assert proc.returncode != 0
    lammps_log = (results / "logs" / "atomistic" / "equilibrate.lammps.log").read_text()
    script_log = (results / "logs" / "atomistic" / "equilibrate.log").read_text()
    assert "ERROR" in lammps_log
    assert "LammpsError" in script_log and "read_data" in script_log
    assert not (results / "atomistic" / "equilibrated.data").exists()
