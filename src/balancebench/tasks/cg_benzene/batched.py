"""The CG model's batched predictions for multi-seed training (:mod:`balancebench.multiseed`): S models of equal
shape evaluated in one batched call.

The S models (one per seed) keep their own parameters, optimizers and balancing
methods; what is shared is the forward work: their explicit energies and forces
(:meth:`~balancebench.tasks.cg_benzene.model.CGSchNet.explicit_energy_and_forces`) are computed by
``torch.func.vmap`` over parameters stacked along a new leading axis, each model
on its own batch of frames. The graphs of different seeds differ (each seed
shuffles its own frame order), so their pair lists are padded to the longest
with inert pairs (envelope, its derivative and the prior 0: they add exactly
zero to energies, forces and gradients).

Each seed then goes through the balancing contract exactly as alone
(:meth:`~balancebench.training.Trainer.apply_step`: its named losses, its own
``method.backward`` and ``method.step``), with no branch on the method's kind. Seed
s's energies and forces are the outputs of a small autograd node
(:class:`_SeedSlice`) whose backward is the vector-Jacobian product of the shared
batched graph restricted to seed s's parameters, with the shared graph retained: a
method may call ``backward`` or ``torch.autograd.grad`` on its losses as often as it
needs (gradient methods: once per loss) without freeing the other seeds' graph.
The seeds' parameters are disjoint, so every gradient is exactly the seed's own.
Cost: the forward is shared. When every seed's method is the gradient of one objective
(``single_objective``: value, conditioned and uncertainty weighting), the seeds' objectives
are summed and one backward pass through the batched graph serves all seeds. Otherwise
each of seed s's backward passes runs through the batched graph (zero cotangents for the
other seeds), ~S times a single model's backward, so the cost grows as S^2. On one CPU core
the path is for correctness (tests/test_multiseed.py demands per-seed weights equal to
training each seed alone; benchmarks/bench_multiseed.py measures it ~5x slower per seed than
training alone: under vmap the pair operations run as eager batched gathers and scatters,
not the fused kernels); a speed gain needs a device that one small model leaves idle.

The workflow routes to it with ``training.multiseed: true`` (one ``train`` job per variant, all seeds;
:func:`train_seeds`); the default is one job per seed.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, vmap

from balancebench.tasks.cg_benzene.model import CGSchNet, GraphBatch, PairGeometry

_GEOMETRY_FIELDS = ("i", "j", "unit", "rbf", "drbf", "envelope", "denvelope", "prior", "dprior", "r")


def pad_geometry(geom: PairGeometry, n_pairs: int, cutoff: float | None = None) -> PairGeometry:
    """``geom`` with inert pairs (0, 0) appended up to ``n_pairs``: zero unit vector, envelope, derivative and
    prior, and (a tabulated model's distances) r = ``cutoff``, where the filter is 0. Fields a geometry does not
    use (a tabulated one's basis) stay empty; a missing r becomes an empty tensor (so the fields stack)."""
    extra = n_pairs - geom.i.shape[0]
    if extra < 0:
        raise ValueError(f"cannot pad {geom.i.shape[0]} pairs down to {n_pairs}")
    parts = {}
    for name in _GEOMETRY_FIELDS:
        t = getattr(geom, name)
        if t is None:
            parts[name] = geom.unit.new_zeros((0,))
        elif t.shape[0] != geom.i.shape[0] or extra == 0:  # an unused (empty) field, or nothing to pad
            parts[name] = t
        elif name == "r":
            if cutoff is None:
                raise ValueError("padding a tabulated geometry needs the cutoff (the padded pairs sit there)")
            parts[name] = torch.cat([t, t.new_full((extra,), float(cutoff))])
        else:
            parts[name] = torch.cat([t, t.new_zeros((extra,) + tuple(t.shape[1:]))])
    return PairGeometry(**parts)


def stack_states(models: list[CGSchNet]) -> tuple[dict, dict]:
    """(parameters, buffers) of ``models`` stacked on a leading seed axis; differentiable in each model's own."""
    names = [n for n, _ in models[0].named_parameters()]
    per_model = [dict(m.named_parameters()) for m in models]
    params = {n: torch.stack([p[n] for p in per_model]) for n in names}
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n, _ in models[0].named_buffers()}
    return params, buffers


def check_same_shape(models: list[CGSchNet]) -> None:
    configs = {repr(m.config) for m in models}
    if len(configs) != 1:
        raise ValueError(f"a multi-seed run stacks models of one configuration; got {sorted(configs)}")


def batched_energy_and_forces(models: list[CGSchNet], graphs: list[GraphBatch], training: bool = True,
                              shared_graph: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(E (B,), F (B*N, 3)) of model s on graph s] from one vmapped explicit-force call.

    The graphs must hold the same number of frames and beads (the pair counts may differ). Tensor
    ``extras`` that differ between the graphs (e.g. a conditioned method's ``"preference"``) are vmapped
    with the seeds; other extras must be equal. With ``training`` the results of seed s carry a graph
    into model s's parameters only (:class:`_SeedSlice`; backward may run on each as often as needed);
    otherwise they are computed without one. With ``shared_graph`` they are plain slices of the one batched
    graph instead, for a single backward pass of a sum over the seeds (which frees that graph).
    """
    if len(models) != len(graphs) or not models:
        raise ValueError("one graph per model is needed")
    check_same_shape(models)
    shapes = {(g.n_frames, g.positions.shape[0]) for g in graphs}
    if len(shapes) != 1:
        raise ValueError(f"the seeds' batches must have equal frame and bead counts, got {sorted(shapes)}")
    template, template_graph = models[0], graphs[0]
    for g in graphs[1:]:
        if not torch.equal(g.frame, template_graph.frame):
            raise ValueError("the seeds' batches must have the same frame index per bead")
    static, varying = _split_extras(graphs)
    geoms = [m.batch_geometry(g) for m, g in zip(models, graphs)]
    n_pairs = max(g.i.shape[0] for g in geoms)
    padded = [pad_geometry(g, n_pairs, template.cutoff) for g in geoms]
    stacked = tuple(torch.stack([getattr(g, name) for g in padded]) for name in _GEOMETRY_FIELDS)
    stacked_extras = tuple(torch.stack([g.extras[k] for g in graphs]) for k in varying)
    bound = _Explicit(template)

    def one(params, buffers, extras, *fields):
        state = {f"model.{k}": v for k, v in {**params, **buffers}.items()}
        shell = GraphBatch(template_graph.positions, template_graph.neighbors, template_graph.frame,
                           template_graph.n_frames, {**static, **dict(zip(varying, extras))})
        return functional_call(bound, state, (shell, PairGeometry(*fields)))

    if not training:
        with torch.no_grad():
            params, buffers = stack_states(models)
            energy, forces = vmap(one)(params, buffers, stacked_extras, *stacked)
        return [(energy[s], forces[s]) for s in range(len(models))]
    with torch.enable_grad():
        params, buffers = stack_states(models)
        energy, forces = vmap(one)(params, buffers, stacked_extras, *stacked)
    if shared_graph:
        return [(energy[s], forces[s]) for s in range(len(models))]
    own = [[p for p in m.parameters() if p.requires_grad] for m in models]
    shared = {"energy": energy, "forces": forces, "params": own}
    return [_SeedSlice.apply(shared, s, *own[s]) for s in range(len(models))]


def _split_extras(graphs: list[GraphBatch]) -> tuple[dict, list[str]]:
    """(extras equal in every graph, names of tensor extras that differ and are stacked); 'frames' is dropped."""
    keys = [k for k in graphs[0].extras if k != "frames"]
    if any(sorted(k for k in g.extras if k != "frames") != sorted(keys) for g in graphs):
        raise ValueError("the seeds' batches must carry the same extras")
    static, varying = {}, []
    for k in keys:
        values = [g.extras[k] for g in graphs]
        if all(isinstance(v, torch.Tensor) for v in values):
            if all(v.shape == values[0].shape and torch.equal(v, values[0]) for v in values):
                static[k] = values[0]
            elif all(v.shape == values[0].shape for v in values):
                varying.append(k)
            else:
                raise ValueError(f"the seeds' batch extra {k!r} has different shapes: "
                                 f"{[tuple(v.shape) for v in values]}")
        elif all(v == values[0] for v in values):
            static[k] = values[0]
        else:
            raise ValueError(f"the seeds' batch extra {k!r} differs and is not a tensor: cannot batch it")
    return static, varying


class _SeedSlice(torch.autograd.Function):
    """Seed s's (energy, forces) of a shared batched graph, differentiable in seed s's own parameters.

    backward(dE, dF) = (dE, dF) . d(E_s, F_s)/d theta_s through the shared graph, which is retained, so
    each seed's method may differentiate its own losses independently (and several times).
    """

    @staticmethod
    def forward(ctx, shared: dict, s: int, *params):
        ctx.shared, ctx.s = shared, s
        return shared["energy"][s].detach().clone(), shared["forces"][s].detach().clone()

    @staticmethod
    def backward(ctx, grad_energy, grad_forces):
        shared, s = ctx.shared, ctx.s
        outputs, cotangents = [], []
        for name, g in (("energy", grad_energy), ("forces", grad_forces)):
            if g is not None:
                zeros = torch.zeros_like(shared[name])  # out of place: g may be vmapped (is_grads_batched)
                full = torch.cat([zeros[:s], g.unsqueeze(0), zeros[s + 1:]])
                outputs.append(shared[name])
                cotangents.append(full)
        # grad mode is on here only under create_graph=True: then the product keeps its own graph
        grads = torch.autograd.grad(outputs, shared["params"][s], cotangents, retain_graph=True, allow_unused=True,
                                    create_graph=torch.is_grad_enabled())
        return (None, None, *grads)


class _Explicit(torch.nn.Module):
    """``model.explicit_energy_and_forces(batch, geometry)`` as a module call, for ``functional_call``."""

    def __init__(self, model: CGSchNet):
        super().__init__()
        self.model = model

    def forward(self, batch: GraphBatch, geometry: PairGeometry):
        return self.model.explicit_energy_and_forces(batch, geometry)
