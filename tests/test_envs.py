"""envs/*.yaml (conda, per stage): they pin exactly what pyproject.toml pins, they build when Snakemake copies
them into .snakemake/conda/ (no paths), and they provide every import of the rules that use them.

Conda channels are not reachable from the test machines, so the environment build is shown with pip, which is
what conda runs for the `pip:` section: the section is written next to a copy of the file in another folder and
installed from there into a fresh virtual environment (no system site packages): a dry run of every pinned
entry for each env, and (opt-in, BALANCEBENCH_ENV_BUILD=1: minutes of downloads) the stats environment in full
with its rules' imports run in it. Every env's rules' imports are checked against the distributions it pins
(the closure of import statements of each rule script through balancebench).
"""

import ast
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv

import pytest
import yaml
from packaging.requirements import Requirement

STAGE_EXTRAS = {"md": ["md"], "train": ["train", "sim"], "stats": ["stats"]}
PINNED = re.compile(r"^[A-Za-z0-9_.\-]+(\[[A-Za-z0-9_,\-]+\])?==[A-Za-z0-9_.+\-]+$")


def _pip_section(env_file):
    env = yaml.safe_load(env_file.read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


@pytest.mark.parametrize("stage", sorted(STAGE_EXTRAS))
def test_env_mirrors_pyproject(repo, stage):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    expected = list(project["dependencies"])
    for extra in STAGE_EXTRAS[stage]:
        expected += project["optional-dependencies"][extra]
    assert sorted(_pip_section(repo / "envs" / f"{stage}.yaml")) == sorted(expected)
    assert all("==" in p for p in expected), "every requirement is pinned"


@pytest.mark.parametrize("stage", sorted(STAGE_EXTRAS))
def test_env_names_no_paths(repo, stage):
    """Snakemake creates the env from a copy in .snakemake/conda/: a path (`-e ..`) would point there."""
    for entry in _pip_section(repo / "envs" / f"{stage}.yaml"):
        assert PINNED.match(entry), f"envs/{stage}.yaml: {entry!r} is not a pinned package (name==version)"


def test_no_rule_needs_torch_geometric(repo):
    """torch-geometric is the benchmarks' and tests' reference only (the `bench` extra)."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not any(r.startswith("torch-geometric") for name in ("train", "sim", "md", "stats") for r in extras[name])
    assert any(r.startswith("torch-geometric") for r in extras["bench"]) and "bench" in extras["all"][0]
    for stage in STAGE_EXTRAS:
        assert "torch_geometric" not in rule_imports(repo, stage), stage


def test_every_rule_uses_an_existing_env(repo):
    for smk in (repo / "workflow" / "rules").rglob("*.smk"):
        for line in smk.read_text().splitlines():
            if line.strip().startswith('"../') and "/envs/" in line:
                assert (smk.parent / line.strip().strip('",')).resolve().exists(), (smk, line)


# -- building an env from a copy --------------------------------------------------------------------------------


def copy_as_snakemake_does(repo, stage, tmp_path):
    """envs/<stage>.yaml copied to <tmp>/.snakemake/conda/<name>.yaml, and the pip requirements file conda
    writes next to it; returns (folder, requirements file). pip runs with that folder as working directory."""
    folder = tmp_path / ".snakemake" / "conda"
    folder.mkdir(parents=True)
    copy = folder / f"{stage}_copy.yaml"
    shutil.copy(repo / "envs" / f"{stage}.yaml", copy)
    requirements = folder / f"condaenv.{stage}.requirements.txt"
    requirements.write_text("\n".join(_pip_section(copy)) + "\n")
    return folder, requirements


def fresh_venv(path):
    """A new venv without pip or site packages; pip runs into it from outside (`pip --python`)."""
    venv.EnvBuilder(with_pip=False, system_site_packages=False, clear=True).create(path)
    return path / "bin" / "python"


def pip_into(python, *args):
    return [sys.executable, "-m", "pip", "--python", str(python), *args]


def test_a_path_in_the_pip_section_breaks_the_copy(repo, tmp_path):
    """The failure the envs had: `-e ..` from the copied file resolves to .snakemake/, not the project."""
    folder, requirements = copy_as_snakemake_does(repo, "stats", tmp_path)
    requirements.write_text("-e ..\n")
    python = fresh_venv(tmp_path / "venv")
    proc = subprocess.run(pip_into(python, "install", "--dry-run", "--no-deps", "-r", requirements.name),
                          cwd=folder, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "does not appear to be a Python project" in proc.stderr or "neither" in proc.stderr, proc.stderr


@pytest.mark.parametrize("stage", sorted(STAGE_EXTRAS))
def test_env_installs_from_a_copy(repo, stage, tmp_path):
    """pip, as conda runs it, installs every entry of the copied pip section into a fresh venv (dry run, no
    dependencies: that the pins install together is what scripts/setup.sh shows for `.[all]`)."""
    folder, requirements = copy_as_snakemake_does(repo, stage, tmp_path)
    python = fresh_venv(tmp_path / "venv")
    proc = subprocess.run(pip_into(python, "install", "--dry-run", "--no-deps", "-r", requirements.name),
                          cwd=folder, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    would = proc.stdout.split("Would install", 1)[-1]
    for entry in _pip_section(folder / f"{stage}_copy.yaml"):
        name, version = Requirement(entry).name, entry.split("==")[1]
        pattern = "[-_.]".join(map(re.escape, re.split(r"[-_.]", name))) + "-" + re.escape(version)
        assert re.search(pattern + r"(\+[\w.]+)?(\s|$)", would, re.I), (entry, would)  # a local tag: +cpu


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("BALANCEBENCH_ENV_BUILD"),
                    reason="opt-in (BALANCEBENCH_ENV_BUILD=1): installs the stats env in full, minutes of downloads")
def test_stats_env_builds_from_a_copy_and_runs_its_rules_imports(repo, tmp_path):
    folder, requirements = copy_as_snakemake_does(repo, "stats", tmp_path)
    python = fresh_venv(tmp_path / "venv")
    proc = subprocess.run(pip_into(python, "install", "--quiet", "-r", requirements.name), cwd=folder,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    modules = sorted(rule_imports(repo, "stats", third_party=False))
    assert "balancebench.stats" in modules and "scikit_posthocs" in modules
    # as in a job: balancebench from the workflow's src/ on PYTHONPATH (the Snakefile sets it)
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
    proc = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(repo / "src"), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-3000:]


@pytest.mark.parametrize("stage", sorted(STAGE_EXTRAS))
def test_env_provides_every_import_of_its_rules(repo, stage):
    """Every third-party module a rule script imports (through balancebench, transitively) comes from a
    distribution the env pins or one of their dependencies."""
    provided = provided_distributions(_pip_section(repo / "envs" / f"{stage}.yaml"))
    owners = md.packages_distributions()
    missing = {}
    for module in rule_imports(repo, stage):
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if not dists & provided:
            missing[module] = sorted(dists) or ["(not installed in the test venv)"]
    assert not missing, f"envs/{stage}.yaml lacks what its rules import: {missing}"


def provided_distributions(pins):
    """The pinned distributions and everything they require (markers evaluated, no extras unless named)."""
    todo = [Requirement(p) for p in pins]
    seen = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.distribution(req.name).requires or []
        except md.PackageNotFoundError:
            continue
        for spec in requires:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(sub)
    return seen


def rules_by_env(repo):
    """{env stage: [rule script paths]} from the rule files' conda: and script: directives."""
    out = {}
    for smk in (repo / "workflow" / "rules").rglob("*.smk"):
        for block in re.split(r"\n(?=rule \w+:)", smk.read_text()):
            env = re.search(r'conda:\s*\n\s*"(?:\.\./)+envs/(\w+)\.yaml"', block)
            script = re.search(r'script:\s*\n\s*"((?:\.\./)+scripts/[\w/]+\.py)"', block)
            if env and script:
                out.setdefault(env.group(1), []).append((smk.parent / script.group(1)).resolve())
    return out


def rule_imports(repo, stage, third_party=True):
    """Top-level third-party modules (or, with third_party=False, balancebench modules too) imported by the
    scripts of the rules that use envs/<stage>.yaml, following balancebench imports transitively: module-level
    ones always, a function's only in the rule scripts (a library function's late import of another balancebench
    module, e.g. config -> balancing -> torch, belongs to a path the rule may not take)."""
    src = repo / "src"
    todo = list(rules_by_env(repo)[stage])
    seen_files, modules = set(), set()
    while todo:
        path = todo.pop()
        if path in seen_files or not path.exists():
            continue
        seen_files.add(path)
        tree = ast.parse(path.read_text())
        late = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                for n in ast.walk(f)} if src in path.parents else set()
        # imports under `if TYPE_CHECKING:` never run
        late |= {id(n) for f in ast.walk(tree) if isinstance(f, ast.If) and getattr(f.test, "id", "") == "TYPE_CHECKING"
                 for n in ast.walk(f)}
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:  # relative: inside balancebench
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                rel = ".".join(base.relative_to(src).parts + ((node.module,) if node.module else ()))
                names = [rel] + [f"{rel}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top == "balancebench":
                    if id(node) in late:
                        continue
                    parts = name.split(".")
                    for candidate in (src.joinpath(*parts).with_suffix(".py"), src.joinpath(*parts, "__init__.py")):
                        if candidate.exists():
                            todo.append(candidate)
                            if not third_party:
                                modules.add(name)
                elif top not in sys.stdlib_module_names and top != "snakemake":
                    modules.add(top if third_party else name.split(".")[0])
    return modules
