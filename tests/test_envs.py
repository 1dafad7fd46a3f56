"""envs/*.yaml (conda, per stage) pin exactly what pyproject.toml pins."""

import tomllib

import pytest
import yaml

STAGE_EXTRAS = {"md": ["md"], "train": ["train", "sim"], "stats": ["stats"]}


def _pip_list(env_file):
    env = yaml.safe_load(env_file.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return sorted(p for p in pip if not p.startswith("-e"))


@pytest.mark.parametrize("stage", sorted(STAGE_EXTRAS))
def test_env_mirrors_pyproject(repo, stage):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    expected = list(project["dependencies"])
    for extra in STAGE_EXTRAS[stage]:
        expected += project["optional-dependencies"][extra]
    assert _pip_list(repo / "envs" / f"{stage}.yaml") == sorted(expected)
    assert all("==" in p for p in expected), "every requirement is pinned"


def test_every_rule_uses_an_existing_env(repo):
    for smk in (repo / "workflow" / "rules").glob("*.smk"):
        for line in smk.read_text().splitlines():
            if line.strip().startswith('"../../envs/'):
                assert (repo / "workflow" / "rules" / line.strip().strip('",')).resolve().exists(), line
