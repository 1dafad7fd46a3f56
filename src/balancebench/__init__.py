"""balancebench: a physics-grounded benchmark of loss-balancing methods.

The evaluation scheme (seed paper: Dellis et al., *Evaluation scheme for self-adaptive methods of
coefficients of loss components of multi-objective loss function*) trains one task's model under each
balancing method and several seeds, evaluates every model and ranks the methods statistically. The core
(training, balancing, searches, l2o, stats, pareto, report) knows no task; each task is one folder of
:mod:`balancebench.tasks` (the showcase: ``cg_benzene``, liquid benzene in LAMMPS mapped to one bead per
molecule, a SchNet-type model, ASE dynamics).
"""

__version__ = "0.1.0"
