"""The task ``pinn``: physics-informed networks on Helmholtz 2D, Burgers 1D and Klein-Gordon (docs/pinn.md).

The declaration (:mod:`.task`) imports torch; :mod:`.problems` holds the PDEs apart from network and trainer.
"""
