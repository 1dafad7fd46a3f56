"""Atomistic stage: OPLS-AA benzene, system building, LAMMPS MD, H5MD output."""
