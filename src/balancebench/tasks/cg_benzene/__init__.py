"""The task cg_benzene: seed 000's pipeline (LAMMPS all-atom liquid benzene, one bead per molecule, a SchNet-type
network trained on forces + energy, ASE NVT runs, ten metrics)."""
