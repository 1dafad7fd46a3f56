"""The stored learned optimizer: save and load with format, version, objective-count and size checks.

File (``results/l2o/optimizer.pt``, torch.save of plain types, loaded with ``weights_only=True``)::

    {"format": "balancebench-l2o-optimizer", "version": ARTIFACT_VERSION,
     "spec": OptimizerSpec.to_dict(), "state_dict": {...}, "record": {...meta-training record...}}

A missing file, another format, another version, another objective count or other
module sizes than expected is refused with a ``ValueError``/``FileNotFoundError`` naming the
file and what differs.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from balancebench.l2o.net import MultiGradientOptimizer, OptimizerSpec

__all__ = ["ARTIFACT_FORMAT", "ARTIFACT_VERSION", "load_optimizer", "save_optimizer"]

ARTIFACT_FORMAT = "balancebench-l2o-optimizer"
#: bump when the network's inputs, layout or meaning of the output change
ARTIFACT_VERSION = 2  # 2: scale-free inputs (running RMS per objective), meta-trained per task


def save_optimizer(net: MultiGradientOptimizer, path: str | Path, record: dict | None = None) -> None:
    """Write the artifact atomically (a killed writer never leaves a half file under ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION, "spec": net.spec.to_dict(),
           "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
           "record": record or {}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_optimizer(path: str | Path, n_objectives: int | None = None,
                   expected_spec: OptimizerSpec | dict | None = None) -> tuple[MultiGradientOptimizer, dict]:
    """(network in eval mode, meta-training record) from ``path``; refuses a missing or mismatched artifact."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"learned optimizer artifact {path} does not exist: run the meta-training "
                                f"(snakemake rule meta_train_l2o, or balancebench.l2o.meta.meta_train) first")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unreadable file is refused with its name)
        raise ValueError(f"learned optimizer artifact {path} is not readable: {exc}") from None
    if not isinstance(obj, dict) or obj.get("format") != ARTIFACT_FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path} is not a learned optimizer artifact (format {found!r}, "
                         f"expected {ARTIFACT_FORMAT!r})")
    if obj.get("version") != ARTIFACT_VERSION:
        raise ValueError(f"learned optimizer artifact {path} has version {obj.get('version')!r}, this code reads "
                         f"version {ARTIFACT_VERSION}: re-run the meta-training")
    spec = OptimizerSpec.from_dict(obj["spec"])
    if n_objectives is not None and spec.n_objectives != n_objectives:
        raise ValueError(f"learned optimizer artifact {path} was meta-trained for {spec.n_objectives} objectives; "
                         f"this training has {n_objectives}")
    if expected_spec is not None:
        want = expected_spec if isinstance(expected_spec, OptimizerSpec) else OptimizerSpec.from_dict(expected_spec)
        diff = {k: (v, want.to_dict()[k]) for k, v in spec.to_dict().items() if want.to_dict()[k] != v}
        if diff:
            desc = ", ".join(f"{k}: artifact {a!r} vs expected {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ValueError(f"learned optimizer artifact {path} does not match the configured optimizer ({desc})")
    net = MultiGradientOptimizer(spec)
    net.load_state_dict(obj["state_dict"])
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, dict(obj.get("record") or {})
