"""Structural, dynamical and thermodynamic observables of a (bead) trajectory.

One implementation serves the atomistic reference (molecule centres of mass)
and the CG simulations, so both sides of every comparison are computed the
same way. Positions in A, times in ps, boxes orthorhombic (edges per frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Yeh & Hummer, J. Phys. Chem. B 108, 15873 (2004): xi for a cubic box.
YEH_HUMMER_XI = 2.837297
BOLTZMANN_J_PER_K = 1.380649e-23


@dataclass
class RDF:
    r: np.ndarray  # bin centres, A
    g: np.ndarray  # g(r)
    n_frames: int
    n_particles: int

    def first_peak(self) -> tuple[float, float]:
        """(position A, height) of the highest maximum (the first-shell peak of a simple liquid), refined by a
        parabola through the 5 bins around it."""
        i = int(np.argmax(self.g))
        lo, hi = max(0, i - 2), min(len(self.g), i + 3)
        coeff = np.polyfit(self.r[lo:hi], self.g[lo:hi], 2)
        if coeff[0] >= 0:  # not a maximum (flat or noisy): fall back to the bin
            return float(self.r[i]), float(self.g[i])
        r_peak = -coeff[1] / (2 * coeff[0])
        return float(r_peak), float(np.polyval(coeff, r_peak))

    def first_minimum(self) -> float:
        """Position (A) of the lowest point of g between the first peak and the end."""
        i = int(np.argmax(self.g))
        return float(self.r[i + int(np.argmin(self.g[i:]))])

    def coordination_number(self, density: float, r_cut: float) -> float:
        """n(r_cut) = 4 pi rho int_0^r_cut g(r) r^2 dr, rho = (N - 1) / V in particles/A^3 (the normalisation of g).

        Summed over whole bins (centre <= r_cut) with their exact shell volumes, so a
        histogram's counts are recovered exactly.
        """
        mask = self.r <= r_cut
        half = 0.5 * (self.r[1] - self.r[0])
        shells = 4.0 / 3.0 * np.pi * ((self.r + half) ** 3 - (self.r - half) ** 3)
        return float(density * np.sum(self.g[mask] * shells[mask]))


def minimum_image_distances(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    """All i<j pair distances (A) of one frame under the minimum-image convention (orthorhombic box)."""
    i, j = np.triu_indices(len(positions), k=1)
    d = positions[i] - positions[j]
    d -= box * np.round(d / box)
    return np.sqrt(np.einsum("ij,ij->i", d, d))


def radial_distribution(positions: np.ndarray, boxes: np.ndarray, bin_width: float = 0.05,
                        r_max: float | None = None) -> RDF:
    """g(r) averaged over frames: histogram of minimum-image pair distances / ideal-gas pair count.

    positions (n_frames, N, 3), boxes (n_frames, 3). r_max defaults to half the
    smallest box edge (beyond it the minimum-image shell is incomplete). For each
    frame the ideal count in a shell is N (N - 1) / 2 * V_shell / V_box.
    """
    positions = np.asarray(positions, dtype=np.float64)
    boxes = np.broadcast_to(np.asarray(boxes, dtype=np.float64), (len(positions), 3))
    half = 0.5 * float(boxes.min())
    r_max = half if r_max is None else float(r_max)
    if r_max > half + 1e-9:
        raise ValueError(f"r_max {r_max} A exceeds half the smallest box edge {half:.3f} A")
    edges = np.arange(0.0, r_max + 1e-12, bin_width)
    counts = np.zeros(len(edges) - 1)
    n = positions.shape[1]
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    ideal = np.zeros_like(counts)
    for frame, box in zip(positions, boxes):
        counts += np.histogram(minimum_image_distances(frame, box), bins=edges)[0]
        ideal += 0.5 * n * (n - 1) * shell / np.prod(box)
    return RDF(0.5 * (edges[1:] + edges[:-1]), counts / ideal, len(positions), n)


def mean_squared_displacement(positions: np.ndarray, dt: float, max_lag_fraction: float = 0.5,
                              remove_drift: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MSD(tau) = < |r_i(t + tau) - r_i(t)|^2 >_{i, t} over all time origins (FFT algorithm).

    positions (n_frames, N, 3) must be unwrapped; dt is the frame spacing (ps).
    With ``remove_drift`` the system's mean displacement is subtracted per frame
    (a thermostat or numerical noise can make the whole box drift). Returns
    (lag times ps, MSD A^2) up to ``max_lag_fraction`` of the trajectory.
    Algorithm: Calandrini et al., Collection SFN 12, 201 (2011) (as in MDAnalysis' EinsteinMSD).
    """
    x = np.asarray(positions, dtype=np.float64)
    if remove_drift:
        x = x - x.mean(axis=1, keepdims=True)
    n_frames = x.shape[0]
    n_lags = max(2, int(n_frames * max_lag_fraction))
    # S1: sum over origins of |r(t)|^2 + |r(t+tau)|^2 terms
    sq = np.einsum("tnd,tnd->tn", x, x)  # (T, N)
    sq_sum = 2.0 * sq.sum(axis=0)
    s1 = np.empty((n_lags, x.shape[1]))
    running = sq_sum.copy()
    for lag in range(n_lags):
        if lag > 0:
            running -= sq[lag - 1] + sq[n_frames - lag]
        s1[lag] = running / (n_frames - lag)
    # S2: autocorrelation via FFT, per particle and dimension
    size = 2 * n_frames
    fx = np.fft.rfft(x, n=size, axis=0)
    acf = np.fft.irfft(fx * np.conj(fx), n=size, axis=0)[:n_lags].sum(axis=2)  # (lags, N)
    s2 = acf / (n_frames - np.arange(n_lags))[:, None]
    msd = (s1 - 2.0 * s2).mean(axis=1)
    return np.arange(n_lags) * dt, msd


def linear_slope(t: np.ndarray, y: np.ndarray, start: float | None = None, fraction: float | None = None) -> float:
    """Least-squares slope of y(t), over t >= start or over the last ``fraction`` of the points."""
    t, y = np.asarray(t), np.asarray(y)
    if fraction is not None:
        mask = np.arange(len(t)) >= int(np.floor(len(t) * (1.0 - fraction)))
    else:
        mask = t >= (start or 0.0)
    if mask.sum() < 2:
        raise ValueError("fewer than two points in the fit window")
    return float(np.polyfit(t[mask], y[mask], 1)[0])


def msd_slope(t: np.ndarray, msd: np.ndarray, fraction: float = 0.3) -> float:
    """s_MSD of seed 000 Sec. 2.3: slope (A^2/ps) of the last ``fraction`` of the MSD curve."""
    return linear_slope(t, msd, fraction=fraction)


def diffusion_coefficient(t: np.ndarray, msd: np.ndarray, fit_start: float) -> float:
    """Einstein relation in 3D: D = slope / 6, returned in m^2/s (slope in A^2/ps; 1 A^2/ps = 1e-8 m^2/s)."""
    return linear_slope(t, msd, start=fit_start) / 6.0 * 1e-8


def yeh_hummer_correction(temperature: float, viscosity: float, box_edge: float) -> float:
    """Finite-size correction (m^2/s) added to D from a cubic periodic box: xi k_B T / (6 pi eta L).

    temperature K, viscosity Pa s, box edge A.
    """
    return YEH_HUMMER_XI * BOLTZMANN_J_PER_K * temperature / (6.0 * np.pi * viscosity * box_edge * 1e-10)


def coefficient_of_variation(values: np.ndarray) -> float:
    """CV = std / |mean| (dimensionless, population std); NaN-free: raises on an empty or zero-mean series."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("empty series")
    mean = values.mean()
    if mean == 0:
        raise ValueError("coefficient of variation undefined for zero mean")
    return float(values.std() / abs(mean))
