"""Two-head classifiers of the multidigits task: a shared trunk (MLP or LeNet-style CNN) and one linear head per
digit, with COSMOS's conditioning input (Ruchte & Grabocka 2021, seed 002; REFERENCES.md sec. 4).

Conditioning (``preference_dim`` = k > 0): the preference r (k,) is concatenated to the input, as COSMOS does:
the MLP appends r to the flattened image (the reference code's tabular models: ``torch.cat((x, r), 1)``), the CNN
appends k constant channels, channel j filled with r_j (the reference code maps r to extra channels through two
transposed convolutions; constant channels are the simplest such map). r comes from the batch's
``extras["preference"]`` (written by the method's ``prepare_batch``), else from :meth:`fix_preference`.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("mlp", "cnn")


class DigitsInput:
    """A batch's model input: images (B, H, W) and ``extras`` (a method writes ``extras["preference"]``)."""

    def __init__(self, images: torch.Tensor):
        self.images = images
        self.extras: dict = {}


class TwoDigitNet(nn.Module):
    """Heads first, trunk last in registration order: GradNorm's default layer (the last 2-D parameter) is then
    the trunk's last layer, the last shared one."""

    def __init__(self, architecture: str = "mlp", input_size: int = 12, hidden: int = 64, channels: int = 8,
                 preference_dim: int = 0):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"model.architecture must be one of {ARCHITECTURES}, not {architecture!r}")
        self.config = {"architecture": architecture, "input_size": int(input_size), "hidden": int(hidden),
                       "channels": int(channels), "preference_dim": int(preference_dim)}
        k, s = int(preference_dim), int(input_size)
        self.head_left = nn.Linear(hidden, 10)
        self.head_right = nn.Linear(hidden, 10)
        if architecture == "mlp":
            self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(s * s + k, hidden), nn.ReLU(),
                                       nn.Linear(hidden, hidden), nn.ReLU())
        else:  # LeNet-style: conv, pool, relu; conv, pool, relu; shared fc (MGDA-UB's multi_lenet, scaled down)
            side = s // 2 // 2
            self.trunk = nn.Sequential(nn.Conv2d(1 + k, channels, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                                       nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                                       nn.Flatten(), nn.Linear(2 * channels * side * side, hidden), nn.ReLU())
        self.fixed_preference: torch.Tensor | None = None

    def last_shared_parameter(self) -> nn.Parameter:
        return [m for m in self.trunk if isinstance(m, nn.Linear)][-1].weight

    def fix_preference(self, r) -> None:
        """Fix the r used when a batch carries none (evaluation at one point of the front)."""
        k = self.config["preference_dim"]
        if k == 0:
            raise ValueError("this model is not preference-conditioned (model.preference_dim = 0)")
        r = torch.as_tensor(r, dtype=torch.float64).flatten()
        if r.numel() != k or not torch.isfinite(r).all() or (r < 0).any() or r.sum() <= 0:
            raise ValueError(f"preference must be {k} finite non-negative numbers with a positive sum, got {r.tolist()}")
        self.fixed_preference = r / r.sum()

    def forward(self, inp: DigitsInput) -> tuple[torch.Tensor, torch.Tensor]:
        x = inp.images
        k = self.config["preference_dim"]
        if k > 0:
            r = inp.extras.get("preference")
            r = self.fixed_preference if r is None else torch.as_tensor(r)
            if r is None:
                raise ValueError("the model is conditioned on a preference but none was given: set "
                                 "extras['preference'] or call fix_preference(r)")
            r = r.to(dtype=x.dtype, device=x.device).reshape(1, k).expand(x.shape[0], k)
            if self.config["architecture"] == "mlp":
                x = torch.cat([x.flatten(1), r], dim=1)
            else:
                x = torch.cat([x[:, None], r[:, :, None, None].expand(-1, -1, *x.shape[-2:])], dim=1)
        elif self.config["architecture"] == "cnn":
            x = x[:, None]
        h = self.trunk(x)
        return self.head_left(h), self.head_right(h)
