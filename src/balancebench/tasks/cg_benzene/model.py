"""A periodic SchNet coarse-grained force field with an excluded-volume prior (seed 000 Sec. 2.1-2.2).

Energy of one frame (kcal/mol; positions in A)::

    E = sum_i [ s * y_i + mu ]  +  U_ex,        U_ex = sum_{i<j, r_ij < r_c} (sigma / r_ij)^n_ex   (Eq. 3)

where y_i is SchNet's per-bead output (Schuett et al., J. Chem. Phys. 148, 241722
(2018)): embedding -> T interaction blocks ``h += Dense(ssp(Dense_2(CFConv(Dense_1 h))))``
with continuous filters ``W(r) = Dense(ssp(Dense(gauss(r)))) * C(r)``, Gaussian
radial basis on [0, r_c], cosine cutoff ``C(r) = (cos(pi r / r_c) + 1) / 2`` for
r < r_c (0 beyond), shifted softplus ``ssp(x) = ln(1 + e^x) - ln 2``, and a two-layer
per-bead readout. ``mu`` (kcal/mol per bead) and ``s`` (kcal/mol) are buffers set from the
training data (mean energy per bead, force scale x 1 A), the ScaleShift of schnetpack.
Forces ``F = -dE/dx`` come from :meth:`CGSchNet.energy_and_forces`, which writes them as forward
operations (:meth:`CGSchNet.explicit_energy_and_forces`: dE/dr_ij by hand back-propagation), so a force
loss needs a first-order backward only; :meth:`CGSchNet.energy_and_forces_autograd` (autograd in x,
``create_graph`` while training) is the reference they are tested against. CG MD may replace the
filter network by a cubic Hermite table (:class:`FilterTable`).

The parameters are laid out exactly as in ``torch_geometric.nn.models.SchNet`` so that
weights can be copied between the two (tests/test_model.py demands equal energies).
What differs is the work: a half neighbour list evaluates each filter once per pair and
uses it for both directions, and the Gaussian expansion and cutoff are computed once per
frame batch for all blocks. (Fusing the first filter layer of all blocks into one matmul
was slower on CPU: slicing its output costs a copy per block forward and backward.)
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from balancebench.checkpoints import torch_load
from balancebench.settings import settings_from_section
from balancebench.tasks.cg_benzene.neighbors import NeighborList, check_cutoff, neighbor_list
from balancebench.tasks.cg_benzene.pair_kernels import pair_conv, pair_dot, table_filter

LN2 = math.log(2.0)


@dataclass
class ModelConfig:
    """Architecture hyperparameters (seed 000 Sec. 2.1 lists them); lengths in A."""

    hidden_channels: int = 64  # feature vector size
    num_filters: int = 64  # filter (convolution) width
    num_interactions: int = 3  # SchNet blocks
    num_gaussians: int = 50  # radial basis size
    cutoff: float = 10.0  # A
    activation: str = "ssp"  # ssp | tanh | silu
    n_species: int = 1  # one bead type for 1-bead benzene
    prior_sigma: float = 4.0  # A, Eq. 3
    prior_exponent: float = 12.0  # n_ex of Eq. 3
    use_prior: bool = True
    preference_dim: int = 0  # >0: conditioned on a preference vector r of this length (COSMOS, see PreferenceFusion)
    filter_table: float | None = None  # A: the radial filters as cubic tables of this spacing (FilterTable);
    # None: the exact filter network

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        config = settings_from_section(cls, d, "model")
        if not isinstance(config.preference_dim, int) or config.preference_dim < 0:
            raise ValueError(f"model.preference_dim must be an integer >= 0, got {config.preference_dim!r}")
        spacing = config.filter_table
        if spacing is not None and (isinstance(spacing, bool) or not isinstance(spacing, (int, float))
                                    or not 0 < spacing <= 0.1):
            raise ValueError(f"model.filter_table must be null or a grid spacing in (0, 0.1] A, got {spacing!r}")
        return config

    def to_dict(self) -> dict:
        return asdict(self)


def under_vmap(t: torch.Tensor) -> bool:
    """True for a tensor seen inside a torch.func transform (balancebench.multiseed's vmap): its values may not
    leave the transform (no ``float(t)``), and a buffer is a wrapped copy."""
    return torch._C._functorch.is_functorch_wrapped_tensor(t)


def activation_and_derivative(name: str, x: torch.Tensor, shifted: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(act(x), act'(x)) for the explicit-force path; ``shifted=False`` leaves out ssp's constant -ln 2."""
    if name == "ssp":
        a = nn.functional.softplus(x)
        return (a - LN2 if shifted else a), torch.sigmoid(x)
    if name == "tanh":
        a = torch.tanh(x)
        return a, 1.0 - a * a
    if name == "silu":
        s = torch.sigmoid(x)
        return x * s, s * (1.0 + x * (1.0 - s))
    raise ValueError(f"unknown activation {name!r}; use one of ['silu', 'ssp', 'tanh']")


class ShiftedSoftplus(nn.Module):
    """ssp(x) = softplus(x) - ln 2 (zero at x = 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - LN2


def make_activation(name: str) -> nn.Module:
    table = {"ssp": ShiftedSoftplus, "tanh": nn.Tanh, "silu": nn.SiLU}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(table)}")
    return table[name]()


class CFConvWeights(nn.Module):
    """The two dense layers of a continuous-filter convolution (same names as torch_geometric's CFConv)."""

    def __init__(self, hidden: int, filters: int):
        super().__init__()
        self.lin1 = nn.Linear(hidden, filters, bias=False)
        self.lin2 = nn.Linear(filters, hidden)


class Interaction(nn.Module):
    """One SchNet block: filter network ``mlp``, convolution ``conv``, activation and ``lin``."""

    def __init__(self, hidden: int, gaussians: int, filters: int, activation: str):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(gaussians, filters), make_activation(activation),
                                 nn.Linear(filters, filters))
        self.conv = CFConvWeights(hidden, filters)
        self.act = make_activation(activation)
        self.lin = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, rbf: torch.Tensor, envelope: torch.Tensor, i: torch.Tensor,
                j: torch.Tensor) -> torch.Tensor:
        w = self.mlp(rbf) * envelope  # (P, filters), one filter per unordered pair
        x = self.conv.lin1(h)
        # m_i = sum_j W_ij x_j over the full list == both directions of the half list
        m = torch.zeros_like(x).index_add_(0, i, w * x.index_select(0, j)).index_add_(0, j, w * x.index_select(0, i))
        return self.lin(self.act(self.conv.lin2(m)))


class ExcludedVolumePrior(nn.Module):
    """U_ex = sum over pairs r < r_c of (sigma / r)^n (kcal/mol), Eq. 3 of seed 000 truncated at the model cutoff.

    The truncation error per pair is (sigma / r_c)^n: 1.7e-5 kcal/mol for sigma 4 A, n 12, r_c 10 A.
    """

    def __init__(self, sigma: float, exponent: float):
        super().__init__()
        self.sigma, self.exponent = float(sigma), float(exponent)

    def forward(self, r: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        return torch.where(inside, (self.sigma / r) ** self.exponent, torch.zeros_like(r))


class PreferenceFusion(nn.Module):
    """h0' = W [h0 ; r] + b: a preference vector r (k,) concatenated to each bead's initial embedding h0 (H,)
    and mapped back to width H (COSMOS, Ruchte & Grabocka 2021, Sec. 4: "we concatenate the input x with r").

    Why here: r enters once, before the interaction blocks, so every block and the readout see it (FiLM per
    block would add T x 2H x k weights for no known gain); the cost is one (H + k) x H matmul per bead.
    r does not depend on positions, so at fixed r the energy is an ordinary function E(x; r) and
    F = -dE/dx is conservative. Initialised as the identity on h0 plus Xavier-uniform weights on r, so
    the conditioned model starts as a SchNet whose initial features are shifted by r.
    """

    def __init__(self, hidden: int, k: int):
        super().__init__()
        self.k = int(k)
        with torch.random.fork_rng(devices=[]):  # construction draws nothing: the shared weights init as without r
            self.lin = nn.Linear(hidden + self.k, hidden)

    def reset_parameters(self) -> None:
        hidden = self.lin.out_features
        with torch.no_grad():
            self.lin.weight.zero_()
            self.lin.weight[:, :hidden] = torch.eye(hidden)
            nn.init.xavier_uniform_(self.lin.weight[:, hidden:])
            self.lin.bias.zero_()

    def forward(self, h: torch.Tensor, r: torch.Tensor, frame: torch.Tensor | None) -> torch.Tensor:
        r = r.to(dtype=h.dtype, device=h.device)
        if r.shape[-1] != self.k or r.ndim not in (1, 2):
            raise ValueError(f"the preference vector must have shape ({self.k},) or (B, {self.k}) "
                             f"(model.preference_dim = {self.k}); got {tuple(r.shape)}")
        if r.ndim == 1:
            per_bead = r.expand(h.shape[0], self.k)
        else:
            if frame is None:
                raise ValueError("a per-frame preference (B, k) needs the frame index of every bead")
            per_bead = r.index_select(0, frame)
        return self.lin(torch.cat([h, per_bead], dim=-1))


def radial_basis(r: torch.Tensor, offsets: torch.Tensor, gamma: float, cutoff: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """At distances r (P,) in A: Gaussians exp(gamma (r - mu_k)^2) (P, G), their r-derivative (1/A), the cosine
    cutoff C(r) = (cos(pi r / r_c) + 1) / 2 and C'(r) (1/A), both (P,) and not masked beyond r_c."""
    d = r[:, None] - offsets[None, :]
    rbf = torch.exp(gamma * (d * d))
    drbf = (2.0 * gamma) * d * rbf
    arg = r * (math.pi / cutoff)
    return rbf, drbf, 0.5 * (torch.cos(arg) + 1.0), (-0.5 * math.pi / cutoff) * torch.sin(arg)


@dataclass
class GraphBatch:
    """B frames of N beads as one graph: positions (B*N, 3), a half neighbour list over all, frame index per bead."""

    positions: torch.Tensor
    neighbors: NeighborList
    frame: torch.Tensor  # (B*N,) int64
    n_frames: int
    extras: dict = field(default_factory=dict)


def batch_frames(positions: list[torch.Tensor], lists: list[NeighborList]) -> GraphBatch:
    """Join frames (each (N_f, 3) with its neighbour list) into one disconnected graph."""
    offsets, total = [], 0
    for x in positions:
        offsets.append(total)
        total += x.shape[0]
    i = torch.cat([nl.i + o for nl, o in zip(lists, offsets)])
    j = torch.cat([nl.j + o for nl, o in zip(lists, offsets)])
    shift = torch.cat([nl.shift for nl in lists])
    frame = torch.cat([torch.full((x.shape[0],), k, dtype=torch.long, device=x.device)
                       for k, x in enumerate(positions)])
    # the per-frame parts let the model cache each frame's pair geometry on its list (see CGSchNet.pair_geometry)
    return GraphBatch(torch.cat(positions), NeighborList(i, j, shift, lists[0].cutoff), frame, len(positions),
                      {"frames": (list(positions), list(lists))})


@dataclass
class PairGeometry:
    """What the explicit-force path needs of a pair list, all functions of the positions only (no parameters).

    ``i, j`` (P,) pairs; ``unit`` (P, 3) r_ij / |r_ij|; ``rbf`` (P, G) Gaussians exp(gamma (r - mu_k)^2);
    ``drbf`` (P, G) their r-derivative 2 gamma (r - mu_k) rbf (1/A); ``envelope`` (P, 1) C(r) and
    ``denvelope`` (P, 1) dC/dr (1/A), both 0 beyond the cutoff; ``prior`` (P,) U_ex per pair (kcal/mol) and
    ``dprior`` (P,) dU_ex/dr (kcal/mol/A), zeros without a prior.
    """

    i: torch.Tensor
    j: torch.Tensor
    unit: torch.Tensor
    rbf: torch.Tensor
    drbf: torch.Tensor
    envelope: torch.Tensor
    denvelope: torch.Tensor
    prior: torch.Tensor
    dprior: torch.Tensor
    r: torch.Tensor | None = None  # (P,) A; only the tabulated-filter path (MD) uses it

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.__dict__.values() if t is not None)


def cat_geometries(parts: list[PairGeometry], n_beads: list[int]) -> PairGeometry:
    """Join per-frame geometries into the geometry of the batched graph (bead indices offset frame by frame)."""
    if len(parts) == 1:
        return parts[0]
    offsets = [0]
    for n in n_beads[:-1]:
        offsets.append(offsets[-1] + n)
    return PairGeometry(torch.cat([g.i + o for g, o in zip(parts, offsets)]),
                        torch.cat([g.j + o for g, o in zip(parts, offsets)]),
                        *(torch.cat([getattr(g, name) for g in parts]) for name in
                          ("unit", "rbf", "drbf", "envelope", "denvelope", "prior", "dprior")),
                        r=None if parts[0].r is None else torch.cat([g.r for g in parts]))


# Pairs per chunk of the explicit-force path: PAIR_CHUNK when set, else PAIR_CHUNK_ELEMENTS // filters, so that a
# chunk's (pairs, filters) temporaries stay in cache (2 MB in float32; tuned on CPU with benchmarks/bench_model.py:
# the demo size in one chunk, the paper size in chunks of 8192 pairs).
PAIR_CHUNK: int | None = None
PAIR_CHUNK_ELEMENTS = 1 << 19
GEOMETRY_CACHE_BYTES = 1 << 30  # at most this much cached pair geometry per process (training frames)
_geometry_cache_used = [0]


def _release_geometry(nbytes: int) -> None:
    _geometry_cache_used[0] = max(0, _geometry_cache_used[0] - nbytes)


class CGSchNet(nn.Module):
    """SchNet energy of bead configurations plus the excluded-volume prior; energies kcal/mol, lengths A."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        self.cutoff = float(config.cutoff)
        self.embedding = nn.Embedding(config.n_species, config.hidden_channels)
        self.register_buffer("offsets", torch.linspace(0.0, self.cutoff, config.num_gaussians))
        self.gamma = -0.5 / float(self.offsets[1] - self.offsets[0]) ** 2
        self.interactions = nn.ModuleList(
            Interaction(config.hidden_channels, config.num_gaussians, config.num_filters, config.activation)
            for _ in range(config.num_interactions))
        self.lin1 = nn.Linear(config.hidden_channels, config.hidden_channels // 2)
        self.act = make_activation(config.activation)
        self.lin2 = nn.Linear(config.hidden_channels // 2, 1)
        self.prior = ExcludedVolumePrior(config.prior_sigma, config.prior_exponent) if config.use_prior else None
        self.register_buffer("energy_shift", torch.zeros(()))  # mu, kcal/mol per bead
        self.register_buffer("energy_scale", torch.ones(()))  # s, kcal/mol
        self.preference = PreferenceFusion(config.hidden_channels, config.preference_dim) \
            if config.preference_dim > 0 else None
        self.fixed_preference: torch.Tensor | None = None  # r used when a graph carries none (MD at fixed r)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation of torch_geometric's SchNet (Xavier-uniform weights, zero biases)."""
        self.embedding.reset_parameters()
        for block in self.interactions:
            for lin in (block.mlp[0], block.mlp[2], block.conv.lin1, block.conv.lin2, block.lin):
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    lin.bias.data.fill_(0.0)
        for lin in (self.lin1, self.lin2):
            nn.init.xavier_uniform_(lin.weight)
            lin.bias.data.fill_(0.0)
        if self.preference is not None:
            self.preference.reset_parameters()

    def set_energy_scale(self, shift_per_bead: float, scale: float) -> None:
        self.energy_shift.fill_(float(shift_per_bead))
        self.energy_scale.fill_(float(scale))

    # -- preference conditioning (COSMOS) ------------------------------------------------
    def fix_preference(self, r) -> None:
        """Fix the preference r (k,) used whenever a graph carries none: the model becomes one force field E(x; r)."""
        if self.preference is None:
            raise ValueError("this model is not preference-conditioned (model.preference_dim = 0); "
                             "a preference cannot be fixed")
        r = torch.as_tensor(r, dtype=torch.float64).flatten()
        if r.numel() != self.preference.k or not torch.isfinite(r).all() or (r < 0).any() or r.sum() <= 0:
            raise ValueError(f"preference must be {self.preference.k} finite non-negative numbers with a positive sum "
                             f"(model.preference_dim = {self.preference.k}); got {r.tolist()}")
        self.fixed_preference = (r / r.sum()).to(self.energy_scale.device)

    # -- energies ------------------------------------------------------------------
    def initial_features(self, species: torch.Tensor | None, batch: "GraphBatch | int") -> torch.Tensor:
        """h0 (N, hidden): the initial bead embedding, the one place it is made (every energy path calls this).

        ``species`` (N,) int64 or None (one bead type); ``batch`` the GraphBatch (or, without one, the bead
        count N). h0 does not depend on positions, so explicit forces stay valid for whatever is fused here.
        A preference-conditioned model (``preference_dim`` > 0, COSMOS) fuses r here (:class:`PreferenceFusion`):
        ``batch.extras["preference"]`` ((k,) for the whole batch or (B, k) per frame), else the one set by
        :meth:`fix_preference`; with neither it refuses to guess.
        """
        n = batch if isinstance(batch, int) else batch.positions.shape[0]
        if species is None:
            species = torch.zeros(n, dtype=torch.long, device=self.embedding.weight.device)
        h = self.embedding(species)
        if self.preference is None:
            return h
        graph = None if isinstance(batch, int) else batch
        r = graph.extras.get("preference") if graph is not None else None
        if r is None:
            r = self.fixed_preference
        if r is None:
            raise ValueError(f"the model is conditioned on a preference (model.preference_dim = {self.preference.k}) "
                             "but none was given: set graph.extras['preference'] or call fix_preference(r)")
        return self.preference(h, r, graph.frame if graph is not None else None)

    def bead_energies(self, positions: torch.Tensor, neighbors: NeighborList,
                      species: torch.Tensor | None = None, batch: "GraphBatch | None" = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-bead network energies (N,), per-pair prior energies (P,)), kcal/mol."""
        r = neighbors.vectors(positions).norm(dim=-1)
        inside = r < self.cutoff  # a Verlet list carries pairs beyond the cutoff: they contribute nothing
        envelope = torch.where(inside, 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0), torch.zeros_like(r))
        d = r[:, None] - self.offsets[None, :]
        rbf = torch.exp(self.gamma * (d * d))
        h = self.initial_features(species, batch if batch is not None else positions.shape[0])
        envelope = envelope[:, None]
        for block in self.interactions:
            h = h + block(h, rbf, envelope, neighbors.i, neighbors.j)
        y = self.lin2(self.act(self.lin1(h))).squeeze(-1)
        bead = self.energy_scale * y + self.energy_shift
        pair = self.prior(r, inside) if self.prior is not None else torch.zeros_like(r)
        return bead, pair

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        """Total energy per frame (B,), kcal/mol."""
        bead, pair = self.bead_energies(batch.positions, batch.neighbors, batch.extras.get("species"), batch)
        energy = torch.zeros(batch.n_frames, dtype=bead.dtype, device=bead.device).index_add_(0, batch.frame, bead)
        if self.prior is not None:
            energy = energy.index_add_(0, batch.frame[batch.neighbors.i], pair)
        return energy

    # -- explicit forces -------------------------------------------------------------------
    def node_basis(self, n: int) -> tuple[torch.Tensor, ...]:
        """(gauss, dgauss/dr, C, C') in float64 at the n + 1 table nodes r_k = k r_c / n (cached per n, device).

        The Gaussian centres are the ``offsets`` buffer's (under torch.func.vmap, remade as in ``__init__``)."""
        device = self.embedding.weight.device
        cache = self.__dict__.setdefault("_node_basis", {})
        if (n, device) not in cache:
            offsets = self.offsets
            if under_vmap(offsets):  # vmapped buffer: made as in __init__
                offsets = torch.linspace(0.0, self.cutoff, self.config.num_gaussians, device=device)
            offsets = offsets.detach().to(torch.float64)  # the centres the exact path uses, to the last bit
            r = torch.linspace(0.0, self.cutoff, n + 1, dtype=torch.float64, device=device)
            rbf, drbf, env, denv = radial_basis(r, offsets, self.gamma, self.cutoff)
            cache[(n, device)] = (rbf, drbf, env[:, None], denv[:, None])
        return cache[(n, device)]

    def _geometry_key(self, positions: torch.Tensor, tabulated: bool = False) -> tuple:
        return (tabulated, self.cutoff, tuple(self.offsets.shape), float(self.offsets[-1]), self.gamma,
                self.offsets.dtype,
                None if self.prior is None else (self.prior.sigma, self.prior.exponent),
                positions.dtype, positions.device, positions.data_ptr(), positions._version)

    @torch.no_grad()
    def pair_geometry(self, positions: torch.Tensor, neighbors: NeighborList) -> PairGeometry:
        """The :class:`PairGeometry` of ``neighbors`` at ``positions`` (computed without a graph)."""
        dtype = self.offsets.dtype
        vec = neighbors.vectors(positions.detach().to(dtype))
        r = vec.norm(dim=-1)
        inside = r < self.cutoff  # a Verlet list carries pairs beyond the cutoff: they contribute nothing
        safe_r = torch.where(r > 0, r, torch.ones_like(r))
        unit = vec / safe_r[:, None]
        zero = torch.zeros_like(r)
        rbf, drbf, envelope, denvelope = radial_basis(r, self.offsets, self.gamma, self.cutoff)
        envelope, denvelope = torch.where(inside, envelope, zero), torch.where(inside, denvelope, zero)
        if self.prior is not None:
            prior = self.prior(safe_r, inside)
            dprior = -self.prior.exponent * prior / safe_r
        else:
            prior, dprior = zero, zero
        return PairGeometry(neighbors.i, neighbors.j, unit, rbf, drbf, envelope[:, None], denvelope[:, None],
                            prior, dprior)

    @torch.no_grad()
    def table_geometry(self, positions: torch.Tensor, neighbors: NeighborList) -> PairGeometry:
        """Geometry for the tabulated filter: pairs beyond the cutoff dropped (a Verlet list's skin), no basis."""
        vec = neighbors.vectors(positions.detach())
        r = vec.norm(dim=-1)
        keep = (r < self.cutoff).nonzero().squeeze(-1)
        vec, r = vec.index_select(0, keep), r.index_select(0, keep)
        i, j = neighbors.i.index_select(0, keep), neighbors.j.index_select(0, keep)
        safe_r = torch.where(r > 0, r, torch.ones_like(r))
        if self.prior is not None:
            prior = self.prior(safe_r, torch.ones_like(r, dtype=torch.bool))
            dprior = -self.prior.exponent * prior / safe_r
        else:
            prior = dprior = torch.zeros_like(r)
        none = r.new_zeros((0,))
        return PairGeometry(i, j, vec / safe_r[:, None], none, none, none, none, prior, dprior, r)

    def batch_geometry(self, batch: GraphBatch, tabulated: bool | None = None) -> PairGeometry:
        """The geometry of ``batch``; for batches of whole frames (``batch_frames``) each frame's part is cached on
        its neighbour list, keyed by the positions tensor (identity and version) and the basis, within
        ``GEOMETRY_CACHE_BYTES`` per process. Training frames never move, so the basis is computed once.
        ``tabulated`` (default: the model's ``filter_table`` is set): :meth:`table_geometry`'s kind."""
        if tabulated is None:
            tabulated = bool(self.config.filter_table)
        make = self.table_geometry if tabulated else self.pair_geometry
        parts = batch.extras.get("frames")
        if parts is None:
            return make(batch.positions, batch.neighbors)
        geoms = []
        for x, nl in zip(*parts):
            key = self._geometry_key(x, tabulated)
            cached = getattr(nl, "_geometry", None)
            if cached is not None and cached[0] == key:
                geoms.append(cached[1])
                continue
            g = make(x, nl)
            if cached is not None:  # stale: release its share of the budget (a finalizer runs once)
                cached[2]()
                del nl._geometry
            if _geometry_cache_used[0] + g.nbytes() <= GEOMETRY_CACHE_BYTES and not x.requires_grad:
                _geometry_cache_used[0] += g.nbytes()
                # released when the entry is replaced or the list (with its cache) is garbage-collected
                nl._geometry = (key, g, weakref.finalize(g, _release_geometry, g.nbytes()))
            geoms.append(g)
        return cat_geometries(geoms, [x.shape[0] for x in parts[0]])

    def explicit_energy_and_forces(self, batch: GraphBatch, geometry: PairGeometry | None = None,
                                   forces: bool = True, table: "FilterTable | None" = None
                                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(E per frame (B,), F (B*N, 3)) with forces written as forward operations (no autograd in x).

        Forces come from the chain rule through the pair distances only (h0 and the per-bead layers do not see
        positions): ``F_j = -sum_{pairs (i,j)} dE/dr_ij u_ij`` (and +u_ij on i), with

            dE/dr_ij = dU_ex/dr + sum_blocks sum_f (g_i,f x_j,f + g_j,f x_i,f) dW_ij,f/dr,
            dW/dr = (act'(z) * (drbf W1^T)) W2^T * C + f(r) * C'(r),

        where g = dE/dm is back-propagated by hand through the readout and the blocks (per-bead, cheap).
        Every operation is differentiable in the parameters, so a force loss needs a first-order backward only.
        With a :class:`FilterTable` (MD, frozen weights) W and dW/dr come from the table instead (``geometry``
        then from :meth:`table_geometry`).
        """
        if table is not None or self.config.filter_table:
            geom = geometry if geometry is not None else self.batch_geometry(batch, tabulated=True)
        else:
            geom = geometry if geometry is not None else self.batch_geometry(batch)
        if table is None and self.config.filter_table:  # the tabulated model: a table of the current weights,
            # from the closest pair's interval on; the whole table under torch.func.vmap (balancebench.multiseed),
            # where each seed's distances differ and no value may leave the transform
            r_min = float(geom.r.min()) if geom.r.numel() and not under_vmap(geom.r) else 0.0
            table = FilterTable(self, self.config.filter_table, frozen=False, r_min=r_min)
        act = self.config.activation
        n_pairs = geom.i.shape[0]
        # pairs in chunks: the (chunk, filters) temporaries stay in cache (the step is memory-bound otherwise)
        size = PAIR_CHUNK or max(1, PAIR_CHUNK_ELEMENTS // self.config.num_filters)
        chunks = [slice(a, min(n_pairs, a + size)) for a in range(0, max(n_pairs, 1), size)]
        h = self.initial_features(batch.extras.get("species"), batch)
        located = [table.locate(geom.r[c]) for c in chunks] if table is not None else None  # shared by blocks
        saved = []
        for block in self.interactions:
            lin_a, lin_b = block.mlp[0], block.mlp[2]
            bias_b = lin_b.bias - LN2 * lin_b.weight.sum(1) if act == "ssp" else lin_b.bias  # ssp's -ln 2, folded
            x = block.conv.lin1(h)
            m = torch.zeros_like(x)
            per_chunk = []
            for n_chunk, c in enumerate(chunks):
                i, j = geom.i[c], geom.j[c]
                if table is not None:  # the tabulated filter (MD, or a model with model.filter_table): W, dW/dr
                    w, dw = table.filter(len(saved), geom.r[c], located[n_chunk])
                    da = f = dw
                else:
                    a, da = activation_and_derivative(
                        act, torch.addmm(lin_a.bias, geom.rbf[c], lin_a.weight.t()), shifted=False)
                    f = torch.addmm(bias_b, a, lin_b.weight.t())
                    w = f * geom.envelope[c]
                m = pair_conv(w, x, i, j, m)  # m += both directions of the half list (fused on CPU)
                per_chunk.append((da, f, w))
            v, dv = activation_and_derivative(act, block.conv.lin2(m))
            h = h + block.lin(v)
            saved.append((per_chunk, dv, x))
        o, do = activation_and_derivative(act, self.lin1(h))
        y = self.lin2(o).squeeze(-1)
        bead = self.energy_scale * y + self.energy_shift
        # out-of-place scatters throughout: the path also runs under torch.func.vmap (balancebench.multiseed)
        energy = torch.zeros(batch.n_frames, dtype=bead.dtype, device=bead.device).index_add(0, batch.frame, bead)
        if self.prior is not None:
            energy = energy.index_add(0, batch.frame.index_select(0, geom.i), geom.prior)
        if not forces:
            return energy, None
        g = (self.energy_scale * (do * self.lin2.weight)) @ self.lin1.weight  # dE/dh after the last block (N, H)
        dedr = [geom.dprior[c] for c in chunks]
        for t in range(len(self.interactions) - 1, -1, -1):
            block = self.interactions[t]
            per_chunk, dv, x = saved[t]
            gm = ((g @ block.lin.weight) * dv) @ block.conv.lin2.weight  # dE/dm (N, F)
            gx = torch.zeros_like(gm)
            for k, (c, (da, f, w)) in enumerate(zip(chunks, per_chunk)):
                i, j = geom.i[c], geom.j[c]
                if table is not None:
                    dw = f
                else:
                    dz = geom.drbf[c] @ block.mlp[0].weight.t()
                    dw = ((da * dz) @ block.mlp[2].weight.t()) * geom.envelope[c] + f * geom.denvelope[c]
                dedr[k] = dedr[k] + pair_dot(gm, x, dw, i, j)  # sum_f (g_i x_j + g_j x_i) dW/dr (fused on CPU)
                if t > 0:  # dE/dh0 is not needed: h0 does not depend on positions
                    gx = pair_conv(w, gm, i, j, gx)
            if t > 0:
                g = g + gx @ block.conv.lin1.weight
        fij = torch.cat(dedr)[:, None] * geom.unit
        n = batch.positions.shape[0]
        forces_out = torch.zeros(n, 3, dtype=fij.dtype, device=fij.device)
        forces_out = forces_out.index_add(0, geom.i, fij).index_add(0, geom.j, -fij)
        return energy, forces_out

    def energy_and_forces(self, batch: GraphBatch, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(E per frame (B,) kcal/mol, F = -dE/dx (B*N, 3) kcal/mol/A) by explicit forces.

        With ``training`` the result keeps its graph in the parameters (a first-order backward gives the force
        loss gradient); otherwise it is computed without one. :meth:`energy_and_forces_autograd` is the
        reference (autograd in x, double backward when training); both agree to rounding (tests/test_model.py).
        """
        if training:
            return self.explicit_energy_and_forces(batch)
        with torch.no_grad():
            return self.explicit_energy_and_forces(batch)

    def energy_and_forces_autograd(self, batch: GraphBatch, training: bool = False
                                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(E per frame (B,) kcal/mol, F = -dE/dx (B*N, 3) kcal/mol/A); the graph is kept only when training."""
        positions = batch.positions
        if not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
            batch = GraphBatch(positions, batch.neighbors, batch.frame, batch.n_frames, batch.extras)
        energy = self(batch)
        (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=training)
        return energy, -grad

    # -- single frames (simulation, tests) --------------------------------------------
    def frame_energy_and_forces(self, positions: torch.Tensor, box, neighbors: NeighborList | None = None,
                                training: bool = False, table: "FilterTable | None" = None
                                ) -> tuple[torch.Tensor, torch.Tensor]:
        """E (scalar) and F (N, 3) of one periodic frame; builds the neighbour list if none is given.

        With a :class:`FilterTable` (MD, frozen weights) the filter is interpolated (no graph is kept)."""
        check_cutoff(self.cutoff, box)
        if neighbors is None:
            neighbors = neighbor_list(positions, box, self.cutoff)
        batch = GraphBatch(positions, neighbors.to(positions.device),
                           torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device), 1)
        if table is not None:
            with torch.no_grad():
                energy, forces = self.explicit_energy_and_forces(batch, table=table)
        else:
            energy, forces = self.energy_and_forces(batch, training=training)
        return energy[0], forces


class FilterTable:
    """Each block's continuous filter W(r) = f(r) C(r) tabulated for MD (frozen weights): cubic Hermite on a grid.

    Nodes r_k = k h on [0, r_c] carry the exact W and dW/dr (computed in float64 from the model's weights);
    between nodes, with t = (r - r_k) / h::

        W(r) = h00(t) W_k + h10(t) h W'_k + h01(t) W_k+1 + h11(t) h W'_k+1      (and its r-derivative)

    Error (cubic Hermite interpolation): |W - W_h| <= h^4 / 384 max|W^(4)| and
    |W' - W_h'| <= sqrt(3) h^3 / 216 max|W^(4)|. The Gaussians of width s = r_c / (G - 1) make
    W^(4) ~ W / s^4, so h = 0.005 A leaves ~1e-8 relative or less, below float32 rounding
    (tests/test_model.py checks energies and forces against the exact path). Rebuild the table whenever
    the weights change.

    Each interval is stored as the coefficients of its cubic in t, computed in float64 and then cast::

        W = a0 + t (a1 + t (a2 + t a3)),   h dW/dr = a1 + 2 t (a2 + 1.5 t a3),
        a0 = W_k, a1 = h W'_k, a2 = 3 (W_k+1 - W_k) - 2 h W'_k - h W'_k+1, a3 = 2 (W_k - W_k+1) + h W'_k + h W'_k+1

    so a float32 table keeps the accuracy of the exact float32 path (tests/test_simulation.py), and one row
    gather plus seven multiply-adds per pair (balancebench.tasks.cg_benzene.pair_kernels.table_filter) replace the filter network.

    ``frozen=True`` (MD): the table is computed once, without a graph, from the weights as they are (rebuild it
    whenever they change). ``frozen=False`` (training a model with ``model.filter_table``): the coefficients keep
    their graph in the weights, so a loss differentiates through the table; they are still computed in float64
    (K = r_c / h + 1 node rows per block instead of one filter per pair) and cast to the model's precision.
    """

    def __init__(self, model: "CGSchNet", spacing: float = 0.005, frozen: bool = True, r_min: float = 0.0):
        if not spacing > 0:
            raise ValueError(f"filter table spacing must be > 0 A, got {spacing}")
        self.cutoff = model.cutoff
        n = int(math.ceil(self.cutoff / spacing))
        self.h, self.n = self.cutoff / n, n
        # rows only from (one below) the interval holding r_min on (a training batch's closest pair: the rows above
        # are the ones read; each row depends on its own two nodes only, so they are the full table's, to float64
        # rounding of the matrix products)
        self.first = min(n - 1, max(0, int(math.floor(r_min / self.h)) - 1))
        dtype = model.embedding.weight.dtype
        basis = tuple(b[self.first:] for b in model.node_basis(n))
        act = model.config.activation
        self.rows = []
        for block in model.interactions:
            weights = (block.mlp[0].weight, block.mlp[0].bias, block.mlp[2].weight, block.mlp[2].bias)
            with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
                self.rows.append(table_rows(act, basis, self.h, *weights).to(dtype).contiguous())

    def locate(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row k (P,) int64, position t in [0, 1] (P,)) of distances ``r`` in [r_min, cutoff): r = (first + k + t) h.
        A distance below the table's first node is refused (the cubic would be extrapolated)."""
        x = r.to(self.rows[0].dtype) / self.h
        k = x.floor().clamp(self.first, self.n - 1)
        if self.first > 0 and bool((x < self.first).any()):
            raise ValueError(f"a distance {float(r.min()):.4g} A lies below this table's first node "
                             f"{self.first * self.h:.4g} A (r_min)")
        return (k - self.first).long(), x - k

    def filter(self, block: int, r: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(W (P, F), dW/dr (P, F)) of block ``block`` at distances ``r`` (P,) below the cutoff (fused on CPU);
        ``where``: :meth:`locate` of ``r``, when several blocks read the same distances."""
        k, t = self.locate(r) if where is None else where
        return table_filter(self.rows[block], k, t, 1.0 / self.h)


def table_rows(act: str, basis: tuple[torch.Tensor, ...], h: float, w1: torch.Tensor, b1: torch.Tensor,
               w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """One block's table rows [a0, a1, a2, a3] (n, 4F) in float64 from its filter weights (differentiable).

    With the node basis (Gaussians g, g' (n+1, G), envelope C, C' (n+1, 1)) of :meth:`CGSchNet.node_basis`::

        z = g W1^T + b1,  f = act(z) W2^T + b2,  f' = (act'(z) (g' W1^T)) W2^T,  W = f C,  H = h (f' C + f C')
        a0 = W_k, a1 = H_k, a2 = 3 (W_k+1 - W_k) - 2 H_k - H_k+1, a3 = 2 (W_k - W_k+1) + H_k + H_k+1
    """
    rbf, drbf, env, denv = basis
    w1, b1, w2, b2 = (p.to(torch.float64) for p in (w1, b1, w2, b2))
    a, da = activation_and_derivative(act, torch.addmm(b1, rbf, w1.t()))
    f = torch.addmm(b2, a, w2.t())
    df = (da * (drbf @ w1.t())) @ w2.t()
    w, hdw = f * env, h * (df * env + f * denv)
    a2 = 3.0 * (w[1:] - w[:-1]) - 2.0 * hdw[:-1] - hdw[1:]
    a3 = 2.0 * (w[:-1] - w[1:]) + hdw[:-1] + hdw[1:]
    return torch.cat([w[:-1], hdw[:-1], a2, a3], dim=1)  # row k: [a0, a1, a2, a3] of interval k


def load_model(state_path, hparams: dict, device="cpu") -> CGSchNet:
    """Rebuild a trained model from its state dict (loaded with weights_only=True) and hyperparameters."""
    model = CGSchNet(ModelConfig.from_dict(hparams["model"]))
    state = torch_load(state_path, map_location=device)
    model.load_state_dict(state)
    return model.to(device).eval()
