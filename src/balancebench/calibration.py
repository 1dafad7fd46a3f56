"""Machine calibration of counted work: FLOPs -> seconds (t_ep, sigma_ep). No torch here: the rule
model_metrics (the stats environment) converts the work that rule train counted (balancebench.timing,
whose module docstring has the formulas)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Calibration:
    """FLOP rate of the reference step on this machine (FLOP/s), with where and how it was measured."""

    flop_rate: float
    reference_flops: int
    best_seconds: float
    repeats: int
    machine: str
    device: str
    threads: int
    pinned: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def pinned_calibration(flop_rate: float) -> Calibration:
    """A calibration fixed by the config (``metrics.timing.flop_rate``): machine-independent seconds."""
    if not flop_rate > 0:
        raise ValueError(f"metrics.timing.flop_rate must be > 0, got {flop_rate}")
    return Calibration(flop_rate=float(flop_rate), reference_flops=0, best_seconds=0.0, repeats=0,
                       machine="pinned by metrics.timing.flop_rate", device="-", threads=0, pinned=True)


def timing_metrics(epoch_flops, flop_rate: float) -> dict[str, float]:
    """t_ep = mean W_e / rate and sigma_ep = std W_e / rate (s, population std), plus the counted work."""
    w = np.asarray(epoch_flops, dtype=np.float64)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("counted epoch work must be a non-empty list of finite, non-negative FLOP counts")
    if not flop_rate > 0:
        raise ValueError(f"flop rate must be > 0, got {flop_rate}")
    return {"t_ep": float(w.mean() / flop_rate), "sigma_ep": float(w.std() / flop_rate),
            "flops_ep": float(w.mean())}


def timing_record(work: dict, calibration: "Calibration | dict") -> dict:
    """t_ep, sigma_ep of a counted-work record at a machine calibration; a failed record stays failed."""
    if isinstance(calibration, dict):
        calibration = Calibration(**{k: calibration[k] for k in Calibration.__dataclass_fields__})
    if work.get("status", "completed") != "completed":
        return dict(work)
    return {**work, **timing_metrics(work["epoch_flops"], calibration.flop_rate),
            "calibration": calibration.to_dict()}


__all__ = ["Calibration", "pinned_calibration", "timing_metrics", "timing_record"]
