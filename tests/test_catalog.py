"""The Snakemake catalog's conventions: snakefmt-formatted Snakefile and rule files, the standard layout."""

import subprocess
import sys


def test_snakefmt_check_is_clean(repo):
    """`snakefmt --check .` with the project's [tool.snakefmt] config (pyproject.toml); `snakefmt .` fixes it."""
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "."], cwd=repo, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\nrun `snakefmt .` to format"


def test_standard_workflow_layout(repo):
    """Snakefile at the root, rules/scripts/schemas/report under workflow/, envs per stage, profiles."""
    for path in ("Snakefile", "workflow/rules", "workflow/scripts", "workflow/schemas/config.schema.yaml",
                 "workflow/report/workflow.rst", "config/config.yaml", "profiles/slurm/config.yaml"):
        assert (repo / path).exists(), path
    assert list((repo / "envs").glob("*.yaml"))
