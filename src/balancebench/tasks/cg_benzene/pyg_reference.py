"""torch_geometric's stock SchNet wired to our periodic neighbour list: the reference for tests and benchmarks.

:func:`pyg_schnet_like` builds ``torch_geometric.nn.models.SchNet`` with the
hyperparameters of a :class:`~balancebench.tasks.cg_benzene.model.CGSchNet`, copies its weights
(the parameter layout is the same), and replaces the radius graph (which needs
torch-cluster and is not periodic) by the full (both-direction) version of our
half neighbour list. Energies match ours when the prior is off and the energy
scale is the identity; see tests/test_model.py.
"""

from __future__ import annotations

import torch

from balancebench.tasks.cg_benzene.model import CGSchNet, GraphBatch
from balancebench.tasks.cg_benzene.neighbors import NeighborList, neighbor_list


class FixedPeriodicGraph(torch.nn.Module):
    """An ``interaction_graph`` for SchNet: returns a given neighbour list (both directions) and its distances."""

    def __init__(self, neighbors: NeighborList):
        super().__init__()
        self.neighbors = neighbors

    def forward(self, pos: torch.Tensor, batch: torch.Tensor):
        nl = self.neighbors
        vec = nl.vectors(pos)
        dist = vec.norm(dim=-1)
        edge_index = torch.stack([torch.cat([nl.j, nl.i]), torch.cat([nl.i, nl.j])])  # (source, target)
        return edge_index, torch.cat([dist, dist])


def stock_schnet(model: CGSchNet):
    """A torch_geometric SchNet with ``model``'s hyperparameters and weights (species k -> atomic number k + 1)."""
    from torch_geometric.nn.models import SchNet

    cfg = model.config
    if cfg.activation != "ssp":
        raise ValueError("torch_geometric's SchNet only has the shifted softplus activation")
    stock = SchNet(hidden_channels=cfg.hidden_channels, num_filters=cfg.num_filters,
                   num_interactions=cfg.num_interactions, num_gaussians=cfg.num_gaussians, cutoff=cfg.cutoff,
                   interaction_graph=FixedPeriodicGraph(NeighborList(*(torch.zeros(0, dtype=torch.long),) * 2,
                                                                     torch.zeros(0, 3), cfg.cutoff)))
    stock = stock.to(next(model.parameters()).dtype)
    with torch.no_grad():
        stock.embedding.weight[1:1 + cfg.n_species] = model.embedding.weight
        for ours, theirs in zip(model.interactions, stock.interactions):
            for a, b in ((ours.mlp[0], theirs.mlp[0]), (ours.mlp[2], theirs.mlp[2]), (ours.conv.lin1, theirs.conv.lin1),
                         (ours.conv.lin2, theirs.conv.lin2), (ours.lin, theirs.lin)):
                b.weight.copy_(a.weight)
                if a.bias is not None:
                    b.bias.copy_(a.bias)
        for a, b in ((model.lin1, stock.lin1), (model.lin2, stock.lin2)):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
    return stock


def stock_energy_and_forces(stock, batch: GraphBatch, training: bool = False):
    """E per frame and F = -dE/dx from the stock SchNet on a batch built for our model."""
    stock.interaction_graph = FixedPeriodicGraph(batch.neighbors)
    pos = batch.positions.detach().requires_grad_(True)
    z = torch.ones(pos.shape[0], dtype=torch.long, device=pos.device)
    energy = stock(z, pos, batch.frame).squeeze(-1)
    (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=training)
    return energy, -grad


def pyg_schnet_like(model: CGSchNet, box):
    """(stock model, run(positions) -> (E, F)) for single frames in ``box``."""
    stock = stock_schnet(model)

    def run(positions: torch.Tensor):
        nl = neighbor_list(positions, box, model.cutoff)
        batch = GraphBatch(positions, nl, torch.zeros(positions.shape[0], dtype=torch.long), 1)
        energy, forces = stock_energy_and_forces(stock, batch)
        return energy[0], forces

    return stock, run
