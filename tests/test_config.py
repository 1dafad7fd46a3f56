"""Config validation: defaults, the schema's bounds, physics checks, and failing before any job runs."""

import subprocess
import sys

import pytest
import yaml

from balancebench.config import ConfigError, load_config, validate_config
from balancebench.tasks.cg_benzene.config_checks import box_length


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


def tiny(repo):
    return yaml.safe_load((repo / "tests" / "data" / "tiny.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b["variants"].__setitem__("x", {"method": "softadapt_normalised"}), "balancing.variants.x.method"),
        (lambda b: b["variants"]["softadapt"].__setitem__("params", {"beta": 0.1, "oder": 2}),
         "balancing.variants.softadapt.params"),
        (lambda b: b["variants"].__setitem__("r", {"method": "ratio", "params": {"reference": "energy"}}),
         "balancing.variants.r.params"),
        (lambda b: b["variants"]["softadapt"].__setitem__("search", "grid"), "balancing.variants.softadapt.search"),
        (lambda b: b["variants"]["constant"].__setitem__("search", "gird"), "balancing.variants.constant.search"),
        (lambda b: b["variants"].__setitem__("bad/name", {"method": "ratio"}), "balancing.variants"),
        (lambda b: b["variants"]["constant"].__setitem__("metod", "ratio"), "balancing.variants.constant"),
        (lambda b: b.__setitem__("variants", {"constant": {"method": "constant"}}), "balancing.variants"),
        (lambda b: b["searches"]["grid"].__setitem__("values", [-1.0]), "balancing.searches.grid"),
        (lambda b: b["searches"]["nsde"]["space"]["energy_weight"].update(low=1.0, high=1e-3),
         "balancing.searches.nsde.space.energy_weight.low"),
        (lambda b: b["searches"]["nsde"].__setitem__("population", 3), "balancing.searches.nsde.population"),
        (lambda b: b["searches"]["nsde"].__setitem__("objectives", ["val_force", "rmsd"]),
         "balancing.searches.nsde.objectives"),
        (lambda b: b["searches"]["nsde"]["space"].__setitem__("gama", {"low": 0, "high": 1}),
         "balancing.searches.nsde.space.gama"),
        (lambda b: b["searches"]["nsde"].__setitem__("kind", "bayesopt"), "balancing.searches.nsde.kind"),
        (lambda b: b["searches"]["nsde"]["space"]["force_loss_alpha"].update(high=3.0), "balancing.searches.nsde.space"),
    ],
)
def test_bad_variants_and_searches_name_the_field(repo, mutate, field):
    config = tiny(repo)
    mutate(config["balancing"])
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate_config(config)


def test_variants_of_one_method_side_by_side_and_seed_design_default(repo):
    config = validate_config(tiny(repo))
    methods = [v["method"] for v in config["balancing"]["variants"].values()]
    assert methods.count("softadapt") == 2 and config["training"]["seed_design"] == "independent"
    assert config["balancing"]["variants"]["softadapt"]["search"] is None
    assert config["training"]["force_loss_alpha"] == 2.0  # the MSE of Eq. 2 unless a search selects a shape


def test_a_reused_variant_name_is_refused_not_merged(repo, tmp_path):
    text = (repo / "tests" / "data" / "tiny.yaml").read_text()
    text = text.replace("    constant_nsde: {method: constant, search: nsde}",
                        "    constant_nsde: {method: constant, search: nsde}\n    softadapt: {method: ratio}")
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"balancing\.variants\.softadapt: key given twice"):
        load_config(path)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path),
                           "--config", f"results_dir={tmp_path / 'results'}"],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "balancing.variants.softadapt: key given twice" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_balancing_is_taken_whole_from_the_last_config_file(repo, tmp_path):
    from balancebench.config import whole_section

    path = tmp_path / "t.yaml"
    path.write_text((repo / "tests" / "data" / "tiny.yaml").read_text())
    section = whole_section("balancing", ["config/config.yaml", str(path)], [str(path)])
    assert set(section["variants"]) == {"constant", "softadapt", "softadapt_sharp", "cosmos", "constant_nsde"}
    assert set(section["searches"]["nsde"]["space"]) == {"energy_weight", "force_loss_alpha"}  # not merged
    assert whole_section("balancing", [str(path)], [])["variants"] == section["variants"]


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    from balancebench.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 7\ntraining: {seeds: [1, 2]\nmodel: x\n")
    with pytest.raises(ConfigError, match=rf"YAML syntax error in {bad}, line 3, column 1"):
        load_config(bad)
    assert main(["check-config", str(bad)]) == 2  # what the README says to run for a --configfile


def test_snakefile_names_a_syntax_error_in_the_workflow_config(repo, tmp_path):
    # the workflow's own config/config.yaml is read by the Snakefile first: a copy of the repo's workflow files
    work = tmp_path / "wf"
    work.mkdir()
    for name in ("Snakefile", "workflow", "src", "config", "profiles"):
        (work / name).symlink_to(repo / name) if name != "config" else (work / name).mkdir()
    (work / "config" / "config.yaml").write_text((repo / "config" / "config.yaml").read_text() + "\nstats: [\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=work,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "YAML syntax error in config/config.yaml, line" in out and "column" in out, out


@pytest.mark.parametrize("reference", [[1.0], "far", "nadir", [1.0, "a"], {"f": 1.0}])
def test_pareto_reference_point_says_what_it_expects(repo, reference):
    config = tiny(repo)
    config["pareto"] = {"reference_point": reference}
    with pytest.raises(ConfigError, match=r"pareto.reference_point: .* expected a list of 2 or more numbers > 0 or "
                                          r"null"):
        validate_config(config)


def test_pareto_reference_point_has_one_number_per_loss(repo):
    config = tiny(repo)
    config["pareto"] = {"reference_point": [1.0, 1.0, 1.0]}
    with pytest.raises(ConfigError, match=r"pareto.reference_point: .* 3 numbers; the task 'cg_benzene' has 2 "
                                          r"losses"):
        validate_config(config)


def test_balancing_is_checked_without_an_atomistic_section(repo):
    config = {"balancing": tiny(repo)["balancing"]}
    config["balancing"]["variants"]["softadapt"]["method"] = "softadapt_normalised"
    schema = __import__("balancebench.config", fromlist=["load_schema"]).load_schema()
    schema["properties"].pop("atomistic", None)  # no atomistic section at all, not even its defaults
    with pytest.raises(ConfigError, match="balancing.variants.softadapt.method"):
        validate_config(config, schema)
