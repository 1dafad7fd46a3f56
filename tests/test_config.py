"""Config validation: defaults, the schema's bounds, physics checks, and failing before any job runs."""

import subprocess
import sys

import pytest
import yaml

from balancebench.config import ConfigError, box_length, load_config, validate_config


def test_demo_and_paper_configs_validate(repo):
    demo = load_config(repo / "config" / "config.yaml")
    paper = load_config(repo / "config" / "paper.yaml")
    assert demo["atomistic"]["n_molecules"] == 125
    assert paper["atomistic"]["n_molecules"] == 500
    assert paper["atomistic"]["npt"]["duration"] == 1000.0 and paper["atomistic"]["nvt"]["duration"] == 20000.0
    assert paper["atomistic"]["nvt"]["duration"] / paper["atomistic"]["nvt"]["frame_interval"] == 10000


def test_defaults_are_filled():
    config = validate_config({})
    assert config["atomistic"]["temperature"] == 340.0
    assert config["atomistic"]["kspace"]["style"] == "pppm"
    assert config["observables"]["msd_slope_fraction"] == 0.3


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda c: c["atomistic"].__setitem__("temperature", -5.0), "atomistic.temperature"),
        (lambda c: c["atomistic"].__setitem__("n_molecules", 0), "atomistic.n_molecules"),
        (lambda c: c["atomistic"].__setitem__("pair_cutoff", 30.0), "atomistic.pair_cutoff"),
        (lambda c: c["atomistic"].__setitem__("temprature", 340.0), "temprature"),
        (lambda c: c["atomistic"]["npt"].__setitem__("duraton", 1.0), "duraton"),
        (lambda c: c["atomistic"].__setitem__("constraints", "flexible"), "atomistic.constraints"),
        (lambda c: c["atomistic"]["nvt"].__setitem__("frame_interval", 0.25), "atomistic.nvt.frame_interval"),
        (lambda c: c.__setitem__("seed", "abc"), "seed"),
        (lambda c: c["model"].__setitem__("cutoff", 14.0), "model.cutoff"),
        (lambda c: c["balancing"].__setitem__("methods", ["constant", "softadapt_normalised"]), "balancing.methods"),
        (lambda c: c["balancing"]["params"].__setitem__("softadapt", {"beta": 0.1, "oder": 2}),
         "balancing.params.softadapt"),
        (lambda c: c["balancing"]["params"].__setitem__("ratio", {"reference": "energy"}), "balancing.params.ratio"),
        (lambda c: c["training"].__setitem__("learning_rate", -1.0), "training.learning_rate"),
        (lambda c: c["training"].__setitem__("seeds", []), "training.seeds"),
        (lambda c: c["simulation"].__setitem__("thermostat", "berendsen"), "simulation.thermostat"),
    ],
)
def test_bad_values_name_the_field(demo_config, mutate, field):
    mutate(demo_config)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate_config(demo_config)


def test_cutoff_check_uses_the_densest_box():
    # 125 molecules at 0.83 * 1.05 g/cm^3: L = 26.50 A, so 13.2 A passes and 13.3 A fails
    half = 0.5 * box_length(125, 0.83 * 1.05)
    assert 13.2 < half < 13.3
    validate_config({"atomistic": {"pair_cutoff": 13.2}})
    with pytest.raises(ConfigError, match="pair_cutoff"):
        validate_config({"atomistic": {"pair_cutoff": 13.3}})


def test_snakemake_refuses_a_bad_config_before_any_job(repo, tmp_path, demo_config):
    demo_config["atomistic"]["temperature"] = -1.0
    demo_config["results_dir"] = str(tmp_path / "results")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(demo_config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(bad)],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "atomistic.temperature" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
