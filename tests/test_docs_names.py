"""Every dotted ``balancebench.…`` name the user reads or a script runs resolves.

The setup script once imported a module the task contract had moved (``balancebench.lammps_runtime``):
the suite passed on a machine whose ``.venv`` already existed and CI failed on a clean checkout. Each name in
README, docs, scripts, CI, benchmarks, rules and configs must be an importable module or an attribute of one.
CHANGELOG is history and keeps the old names.
"""

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLACES = ["README.md", "docs", "scripts", ".ci", "benchmarks", "workflow", "profiles", "config", "Snakefile"]
SUFFIXES = {".md", ".sh", ".py", ".smk", ".yaml", ".rst", ""}
DOTTED = re.compile(r"balancebench(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _named() -> dict[str, str]:
    found: dict[str, str] = {}
    for place in PLACES:
        root = REPO / place
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
        for path in files:
            if path.suffix not in SUFFIXES:
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for name in DOTTED.findall(text):
                found.setdefault(name, str(path.relative_to(REPO)))
    return found


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
            break
        except ModuleNotFoundError as err:
            if err.name and not name.startswith(err.name):  # a third-party import failed: not our name
                raise
    else:
        return False
    try:
        for attr in parts[k:]:
            obj = getattr(obj, attr)
    except AttributeError:
        return False
    return True


def test_the_scan_finds_the_setup_scripts_import():
    assert "balancebench.tasks.cg_benzene.lammps_runtime" in _named()


def test_a_moved_module_is_caught():
    assert not _resolves("balancebench.lammps_runtime")
    assert not _resolves("balancebench.training._no_such_helper")


@pytest.mark.parametrize("name,where", sorted(_named().items()))
def test_named_module_or_attribute_exists(name, where):
    assert _resolves(name), f"{where} names {name}, which does not exist (moved or renamed?)"
