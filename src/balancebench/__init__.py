"""balancebench: a physics-grounded benchmark of loss-balancing methods.

The showcase pipeline (seed paper: Dellis et al., *Evaluation scheme for
self-adaptive methods of coefficients of loss components of multi-objective
loss function*) runs atomistic liquid benzene in LAMMPS, maps it to one bead
per molecule, trains a SchNet-type force field under each balancing method,
validates it with ASE NVT dynamics and ranks the methods statistically.
"""

__version__ = "0.1.0"
