"""The PDE problems of the task ``pinn``: each is its residual, its boundary and initial pieces, and its exact or
reference solution, apart from the network and the trainer (as DeepXDE separates a PDE from its model).

Coordinates are the columns of a point array ``X`` (N, 2): ``(x, y)`` for Helmholtz, ``(x, t)`` for Burgers and
Klein-Gordon. A residual is a function of the network's output ``u`` (N,) and ``X`` (requires grad), built with
:func:`derivative`; every piece of a boundary or initial condition constrains a value or a time derivative on one
edge of the box to a target function. REFERENCES.md sec. 6.1 and 6.4.

- ``helmholtz2d`` (Wang, Teng & Perdikaris, SIAM J. Sci. Comput. 43(5) A3055 (2021); their code
  ``Helmholtz/Helmholtz2D_model_tf.py``): Omega = [-1, 1]^2, u_xx + u_yy + k^2 u = q,
  u* = sin(a1 pi x) sin(a2 pi y), a1 = 1, a2 = 4, q = (k^2 - (a1 pi)^2 - (a2 pi)^2) u*, u = u* (= 0) on the four
  edges, one boundary term for the four edges (the sum of their MSEs).
- ``burgers1d``: u_t + u u_x = nu u_xx, nu = 0.01/pi, x in [-1, 1], t in [0, 1], u(x, 0) = -sin(pi x),
  u(-1, t) = u(1, t) = 0 (DeepXDE ``examples/pinn_forward/Burgers.py``; Raissi et al. 2019). Reference: the
  Cole-Hopf solution (:func:`burgers_cole_hopf`).
- ``klein_gordon`` (same paper, ``Klein Gordon/Klein_Gordon.py``): u_tt - u_xx + u^3 = f on (x, t) in [0, 1]^2,
  u* = x cos(5 pi t) + (x t)^3, f from u*, u(x, 0) = x and u_t(x, 0) = 0 (one initial term: the sum of the two
  MSEs), u = u* on x = 0 and x = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

PROBLEMS = ("helmholtz2d", "burgers1d", "klein_gordon")


def derivative(u: torch.Tensor, X: torch.Tensor, *dims: int, cache: dict | None = None) -> torch.Tensor:
    """d^n u / dX[:, dims[0]] ... dX[:, dims[-1]] per point (autograd, graph kept for the training step).

    ``cache`` (a dict owned by one evaluation of one residual): the gradients already taken, keyed by the
    derivative's leading dims, so u_xx and u_yy share one first-order backward (as DeepXDE's Jacobian cache) and
    the graph of the loss holds one first-order gradient, not one per term.
    """
    out = u
    for n, d in enumerate(dims):
        key = dims[:n]
        g = cache.get(key) if cache is not None else None
        if g is None:
            (g,) = torch.autograd.grad(out.sum(), X, create_graph=True)
            if cache is not None:
                cache[key] = g
        out = g[:, d]
    return out


@dataclass(frozen=True)
class Piece:
    """One part of a boundary or initial condition: on the edge ``X[:, dim] = value`` of the box, the network's
    value (``order`` 0) or its derivative along ``dim`` (``order`` 1, e.g. u_t at t = 0) equals ``target(X)``."""

    name: str
    dim: int
    value: float
    target: Callable[[torch.Tensor], torch.Tensor]
    order: int = 0


@dataclass
class Problem:
    """A PDE on a box: its residual, its conditions (``boundary`` and ``initial`` pieces), its solution."""

    name: str
    coords: tuple[str, str]
    lower: tuple[float, float]
    upper: tuple[float, float]
    residual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    boundary: tuple[Piece, ...]
    initial: tuple[Piece, ...] = ()
    exact: Callable[[torch.Tensor], torch.Tensor] | None = None  # torch, differentiable (None: no closed form)
    residual_terms: Callable[[torch.Tensor, torch.Tensor], list] | None = None  # the terms of the equation
    grid: tuple[int, int] = (100, 100)
    params: dict = field(default_factory=dict)

    @property
    def loss_names(self) -> tuple[str, ...]:
        return ("residual", "boundary", "initial") if self.initial else ("residual", "boundary")

    def pieces(self, loss: str) -> tuple[Piece, ...]:
        return {"boundary": self.boundary, "initial": self.initial}[loss]

    def test_grid(self, grid=None) -> tuple[np.ndarray, tuple[int, int]]:
        """The fixed test grid (endpoints included): (N, 2) points, ``ij`` order of (n0, n1)."""
        n0, n1 = grid or self.grid
        a = np.linspace(self.lower[0], self.upper[0], n0)
        b = np.linspace(self.lower[1], self.upper[1], n1)
        A, B = np.meshgrid(a, b, indexing="ij")
        return np.stack([A.ravel(), B.ravel()], axis=1), (n0, n1)

    def reference(self, X: np.ndarray) -> np.ndarray:
        """The exact solution on ``X`` (float64), or the problem's reference (Cole-Hopf for Burgers)."""
        if self.name == "burgers1d":
            return burgers_cole_hopf(X[:, 0], X[:, 1], self.params["nu"])
        with torch.no_grad():
            return self.exact(torch.as_tensor(X, dtype=torch.float64)).numpy()


def helmholtz2d(k: float = 1.0, a1: float = 1.0, a2: float = 4.0) -> Problem:
    def exact(X):
        return torch.sin(a1 * math.pi * X[:, 0]) * torch.sin(a2 * math.pi * X[:, 1])

    def source(X):
        return (k ** 2 - (a1 * math.pi) ** 2 - (a2 * math.pi) ** 2) * exact(X)

    def terms(u, X):
        c: dict = {}
        return [derivative(u, X, 0, 0, cache=c), derivative(u, X, 1, 1, cache=c), k ** 2 * u, -source(X)]

    def residual(u, X):
        return sum(terms(u, X))

    edges = tuple(Piece(f"{c}={v:g}", d, v, exact) for d, c in enumerate("xy") for v in (-1.0, 1.0))
    return Problem("helmholtz2d", ("x", "y"), (-1.0, -1.0), (1.0, 1.0), residual, edges, (), exact, terms,
                   (100, 100), {"k": k, "a1": a1, "a2": a2})


def burgers1d(nu: float = 0.01 / math.pi) -> Problem:
    def terms(u, X):
        c: dict = {}
        return [derivative(u, X, 1, cache=c), u * derivative(u, X, 0, cache=c), -nu * derivative(u, X, 0, 0, cache=c)]

    def residual(u, X):
        return sum(terms(u, X))

    def zero(X):
        return torch.zeros_like(X[:, 0])

    def initial(X):
        return -torch.sin(math.pi * X[:, 0])

    edges = (Piece("x=-1", 0, -1.0, zero), Piece("x=1", 0, 1.0, zero))
    return Problem("burgers1d", ("x", "t"), (-1.0, 0.0), (1.0, 1.0), residual, edges,
                   (Piece("t=0", 1, 0.0, initial),), None, terms, (256, 101), {"nu": nu})


def klein_gordon() -> Problem:
    def exact(X):
        x, t = X[:, 0], X[:, 1]
        return x * torch.cos(5 * math.pi * t) + (x * t) ** 3

    def source(X):  # f = u*_tt - u*_xx + u*^3, by hand
        x, t = X[:, 0], X[:, 1]
        u_tt = -25 * math.pi ** 2 * x * torch.cos(5 * math.pi * t) + 6 * x ** 3 * t
        u_xx = 6 * x * t ** 3
        return u_tt - u_xx + exact(X) ** 3

    def terms(u, X):
        c: dict = {}
        return [derivative(u, X, 1, 1, cache=c), -derivative(u, X, 0, 0, cache=c), u ** 3, -source(X)]

    def residual(u, X):
        return sum(terms(u, X))

    def ic_value(X):
        return X[:, 0]

    def ic_rate(X):
        return torch.zeros_like(X[:, 0])

    edges = (Piece("x=0", 0, 0.0, exact), Piece("x=1", 0, 1.0, exact))
    initial = (Piece("t=0", 1, 0.0, ic_value), Piece("u_t(t=0)", 1, 0.0, ic_rate, order=1))
    return Problem("klein_gordon", ("x", "t"), (0.0, 0.0), (1.0, 1.0), residual, edges, initial, exact, terms,
                   (100, 100), {})


def make_problem(section: dict) -> Problem:
    """The problem of a config's ``pinn:`` section (its parameters k, nu where the problem has them)."""
    name = section["problem"]
    if name == "helmholtz2d":
        return helmholtz2d(float(section.get("k", 1.0)))
    if name == "burgers1d":
        return burgers1d(float(section.get("nu", 0.01 / math.pi)))
    if name == "klein_gordon":
        return klein_gordon()
    raise ValueError(f"unknown PINN problem {name!r}; known: {PROBLEMS}")


def burgers_cole_hopf(x, t, nu: float, n_quad: int = 200) -> np.ndarray:
    """The viscous Burgers solution with u(x, 0) = -sin(pi x) by the Cole-Hopf transform (Cole 1951, Hopf 1950;
    the form of Basdevant et al., Computers & Fluids 14, 23-41 (1986), Eq. 2.3):

        u(x, t) = - int sin(pi (x - eta)) f(x - eta) exp(-eta^2 / (4 nu t)) d eta
                  / int f(x - eta) exp(-eta^2 / (4 nu t)) d eta,      f(y) = exp(-cos(pi y) / (2 pi nu)),

    with eta = sqrt(4 nu t) z both integrals are int g(z) exp(-z^2) dz: Gauss-Hermite quadrature with ``n_quad``
    nodes (the exponent of f is shifted by its maximum per point so nothing overflows). At t = 0 it returns
    -sin(pi x) exactly. Periodic in x with period 2, so u(+-1, t) = 0 by symmetry.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    z, w = np.polynomial.hermite.hermgauss(n_quad)
    y = x[:, None] - np.sqrt(4.0 * nu * t)[:, None] * z[None, :]
    expo = -np.cos(np.pi * y) / (2.0 * np.pi * nu)
    expo -= expo.max(axis=1, keepdims=True)
    fw = np.exp(expo) * w[None, :]
    return -(np.sin(np.pi * y) * fw).sum(axis=1) / fw.sum(axis=1)
