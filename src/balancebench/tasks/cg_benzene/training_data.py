"""The CG frames of training on a device and the losses of seed 000's Eq. 2 (torch), for the task
cg_benzene (:mod:`balancebench.tasks.cg_benzene.task` holds its declaration, torch-free).

Loss of one batch of B frames with N beads (Eq. 2 of seed 000), named ``force`` and ``energy``::

    L_F = 1/(3 N B) sum_frames sum_i |F_i^pred - M(F^A)_i|^2          (kcal/mol/A)^2
    L_E = 1/B sum_frames (E^pred - U_A)^2                               (kcal/mol)^2   (energy_loss: total)
          1/B sum_frames ((E^pred - U_A) / N)^2                          (energy_loss: per_bead)
"""

from __future__ import annotations

import numpy as np
import torch

from balancebench.losses_taylorglo import regression_loss
from balancebench.tasks.base import TaskData
from balancebench.tasks.cg_benzene.cg import CGDataset
from balancebench.tasks.cg_benzene.losses import robust_force_loss
from balancebench.tasks.cg_benzene.model import CGSchNet, GraphBatch, batch_frames
from balancebench.tasks.cg_benzene.neighbors import check_cutoff, neighbor_list


class FrameSet(TaskData):
    """Frames on a device with their neighbour lists, computed once (positions do not change during training)."""

    def __init__(self, dataset: CGDataset, indices, cutoff: float, device, dtype):
        indices = np.asarray(indices, dtype=np.int64)
        for box in dataset.box[indices]:
            check_cutoff(cutoff, box)
        self.positions = [torch.as_tensor(dataset.positions[k], dtype=dtype, device=device) for k in indices]
        self.forces = torch.as_tensor(dataset.forces[indices], dtype=dtype, device=device)
        self.energy = torch.as_tensor(dataset.energy[indices], dtype=dtype, device=device)
        self.lists = [neighbor_list(torch.as_tensor(dataset.positions[k]), dataset.box[k], cutoff).to(device)
                      for k in indices]
        for nl in self.lists:
            nl.shift = nl.shift.to(dtype)
        self.n_beads = dataset.n_beads

    def __len__(self) -> int:
        return len(self.positions)

    def batch(self, frames) -> tuple[GraphBatch, torch.Tensor, torch.Tensor]:
        """(graph, reference forces (B*N, 3), reference energies (B,)) of the frames."""
        frames = list(frames)
        graph = batch_frames([self.positions[k] for k in frames], [self.lists[k] for k in frames])
        return graph, self.forces[frames].reshape(-1, 3), self.energy[frames]


def losses_from_predictions(energy, forces, forces_ref, energy_ref, energy_loss: str, n_beads: int,
                            force_loss_alpha: float = 2.0, force_loss_scale: float = 1.0,
                            taylor_theta=None) -> dict[str, torch.Tensor]:
    """{"force": L_F, "energy": L_E} of Eq. 2 from predicted ``energy`` (B,) and ``forces`` (B*N, 3); with
    ``taylor_theta`` L_F is TaylorGLO's ``s^2 f(F_ref / s, F_pred / s)`` per component, s = ``force_loss_scale``."""
    if taylor_theta is not None:
        loss_f = regression_loss(forces, forces_ref, taylor_theta, force_loss_scale)
    else:
        loss_f = robust_force_loss(forces - forces_ref, force_loss_alpha, force_loss_scale)
    err_e = energy - energy_ref
    if energy_loss == "per_bead":
        err_e = err_e / n_beads
    return {"force": loss_f, "energy": torch.mean(err_e**2)}


def loss_components(model: CGSchNet, graph: GraphBatch, forces_ref, energy_ref, energy_loss: str, n_beads: int,
                    training: bool, force_loss_alpha: float = 2.0,
                    force_loss_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """{"force": L_F, "energy": L_E} of Eq. 2 for one batch (the model's energies and forces, then the losses)."""
    energy, forces = model.energy_and_forces(graph, training=training)
    return losses_from_predictions(energy, forces, forces_ref, energy_ref, energy_loss, n_beads,
                                   force_loss_alpha, force_loss_scale)


def fit_energy_scale(model: CGSchNet, frames: FrameSet) -> tuple[float, float]:
    """ScaleShift from the training frames: mu = (<U_A> - <U_ex>) / N per bead, s = rms force component x 1 A."""
    with torch.no_grad():
        prior = []
        for x, nl in zip(frames.positions, frames.lists):
            if model.prior is None:
                prior.append(0.0)
                continue
            r = nl.vectors(x).norm(dim=-1)
            prior.append(float(model.prior(r, r < model.cutoff).sum()))
    shift = (float(frames.energy.double().mean()) - float(np.mean(prior))) / frames.n_beads
    scale = float(torch.sqrt(torch.mean(frames.forces.double() ** 2)))
    return shift, max(scale, 1e-6)


def target_variances(frames: FrameSet, energy_loss: str = "total") -> dict[str, float]:
    """{"force": Var(F), "energy": Var(E)} (unbiased) of the frames' targets as stored for training (its dtype);
    Var(E) per bead with ``energy_loss: per_bead``, and 1 where it is undefined (one frame) or zero."""
    n = frames.n_beads if energy_loss == "per_bead" else 1
    var_force = float(torch.var(frames.forces.double()))
    var_e = float(torch.var(frames.energy.double() / n)) if len(frames) > 1 else 0.0
    return {"force": var_force, "energy": var_e if var_e > 0 else 1.0}
