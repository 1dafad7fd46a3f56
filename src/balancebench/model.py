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
Forces are ``F = -dE/dx`` by autograd, in one place (:meth:`CGSchNet.energy_and_forces`),
with ``create_graph`` only while training.

The parameters are laid out exactly as in ``torch_geometric.nn.models.SchNet`` so that
weights can be copied between the two (tests/test_model.py demands equal energies).
What differs is the work: a half neighbour list evaluates each filter once per pair and
uses it for both directions, and the Gaussian expansion and cutoff are computed once per
frame batch for all blocks. (Fusing the first filter layer of all blocks into one matmul
was slower on CPU: slicing its output costs a copy per block forward and backward.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from balancebench.neighbors import NeighborList, check_cutoff, neighbor_list

LN2 = math.log(2.0)


def fast_cpu_math() -> None:
    """Flush denormal floats to zero on this thread.

    The tails of the Gaussian basis and their products in the double backward land
    in the denormal range, where x86 arithmetic is ~16x slower (measured: exp of
    arguments below -87 in float32). Flushing them changes values below 1e-38 only.
    """
    torch.set_flush_denormal(True)


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

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model hyperparameters {sorted(unknown)}; valid: {sorted(names)}")
        config = cls(**d)
        if not isinstance(config.preference_dim, int) or config.preference_dim < 0:
            raise ValueError(f"model.preference_dim must be an integer >= 0, got {config.preference_dim!r}")
        return config

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str, setting: str = "device") -> torch.device:
    """``auto`` -> the GPU when there is one, else the CPU; ``cuda`` without a GPU is refused naming ``setting``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{setting} is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


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
        self.mlp = nn.Sequential(nn.Linear(gaussians, filters), make_activation(activation), nn.Linear(filters, filters))
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
    frame = torch.cat([torch.full((x.shape[0],), k, dtype=torch.long, device=x.device) for k, x in enumerate(positions)])
    return GraphBatch(torch.cat(positions), NeighborList(i, j, shift, lists[0].cutoff), frame, len(positions))


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

    def initial_features(self, species: torch.Tensor, batch: GraphBatch | None = None) -> torch.Tensor:
        """h0 (N, H) of every bead: the species embedding, fused with the preference when the model is conditioned.

        The preference is ``batch.extras["preference"]`` ((k,) for the whole batch or (B, k) per frame), else
        the one set by :meth:`fix_preference`; a conditioned model with neither refuses to guess.
        """
        h = self.embedding(species)
        if self.preference is None:
            return h
        r = batch.extras.get("preference") if batch is not None else None
        if r is None:
            r = self.fixed_preference
        if r is None:
            raise ValueError(f"the model is conditioned on a preference (model.preference_dim = {self.preference.k}) "
                             "but none was given: set graph.extras['preference'] or call fix_preference(r)")
        return self.preference(h, r, batch.frame if batch is not None else None)

    # -- energies ------------------------------------------------------------------
    def bead_energies(self, positions: torch.Tensor, neighbors: NeighborList,
                      species: torch.Tensor | None = None,
                      batch: GraphBatch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-bead network energies (N,), per-pair prior energies (P,)), kcal/mol."""
        r = neighbors.vectors(positions).norm(dim=-1)
        inside = r < self.cutoff  # a Verlet list carries pairs beyond the cutoff: they contribute nothing
        envelope = torch.where(inside, 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0), torch.zeros_like(r))
        d = r[:, None] - self.offsets[None, :]
        rbf = torch.exp(self.gamma * (d * d))
        if species is None:
            species = torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device)
        h = self.initial_features(species, batch)
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

    def energy_and_forces(self, batch: GraphBatch, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
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
                                training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """E (scalar) and F (N, 3) of one periodic frame; builds the neighbour list if none is given."""
        check_cutoff(self.cutoff, box)
        if neighbors is None:
            neighbors = neighbor_list(positions, box, self.cutoff)
        batch = GraphBatch(positions, neighbors.to(positions.device),
                           torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device), 1)
        energy, forces = self.energy_and_forces(batch, training=training)
        return energy[0], forces


def load_model(state_path, hparams: dict, device="cpu") -> CGSchNet:
    """Rebuild a trained model from its state dict (loaded with weights_only=True) and hyperparameters."""
    model = CGSchNet(ModelConfig.from_dict(hparams["model"]))
    state = torch.load(state_path, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()
