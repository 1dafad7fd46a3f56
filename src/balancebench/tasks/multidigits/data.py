"""A Multi-MNIST-style data set from scikit-learn's bundled 8 x 8 digits (``sklearn.datasets.load_digits``,
1797 images, no download).

Recipe (after MGDA-UB's and ParetoMTL's Multi-MNIST, REFERENCES.md sec. 7.2, scaled to 8 x 8 digits): one
digit at the upper left of a ``canvas`` x ``canvas`` image (rows and columns 0..7), a second one of another
class at the lower right (rows and columns canvas-8 .. canvas-1), so that they overlap when canvas < 16;
overlap by the pixel-wise maximum (MGDA-UB) or the clipped sum. Pixels are scaled to [0, 1] (digits' 0..16 / 16).
Task L is the class of the left digit, task R that of the right one.

The 1797 source images are first split (a permutation from the run's seed) into disjoint train / validation /
test pools (``source_fractions``); the composites of a split draw both their digits from that split's pool only,
so no source image of the test set is ever seen in training. Differences from the papers' sets: 8 x 8 sources
(not 28 x 28), no random shift, no resize, partners of a different class (ParetoMTL; MGDA-UB allows the same).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

DIGIT = 8  # side of a load_digits image
N_CLASSES = 10
SPLITS = ("train", "validation", "test")


@dataclass
class MultiDigits:
    """The composites of every split: ``images`` (N, canvas, canvas) float32 in [0, 1], ``labels`` (N, 2) (left,
    right), ``sources`` (N, 2) the load_digits indices of the two digits, ``split`` {name: composite indices}."""

    task: ClassVar[str] = "multidigits"
    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    split: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def compose(left: np.ndarray, right: np.ndarray, canvas: int, overlap: str = "max") -> np.ndarray:
    """(canvas, canvas) image: ``left`` (8 x 8, in [0, 1]) at the upper left, ``right`` at the lower right."""
    if canvas <= DIGIT:
        raise ValueError(f"canvas {canvas} leaves no room to shift two {DIGIT} x {DIGIT} digits apart (needs > {DIGIT})")
    a = np.zeros((canvas, canvas), dtype=np.float32)
    b = np.zeros_like(a)
    a[:DIGIT, :DIGIT] = left
    b[canvas - DIGIT:, canvas - DIGIT:] = right
    if overlap == "max":
        return np.maximum(a, b)
    if overlap == "sum":
        return np.clip(a + b, 0.0, 1.0)
    raise ValueError(f"overlap must be 'max' or 'sum', not {overlap!r}")


def source_pools(n_images: int, fractions: dict, seed: int) -> dict[str, np.ndarray]:
    """Disjoint pools of source-image indices per split (a permutation from ``seed``)."""
    order = np.random.default_rng([int(seed), 24]).permutation(n_images)
    n_val = int(round(fractions["validation"] * n_images))
    n_test = int(round(fractions["test"] * n_images))
    return {"test": np.sort(order[:n_test]), "validation": np.sort(order[n_test:n_test + n_val]),
            "train": np.sort(order[n_test + n_val:])}


def build(settings: dict, seed: int, digits=None) -> MultiDigits:
    """The data set of the task section ``settings`` (canvas, overlap, n_train, n_validation, n_test,
    source_fractions) from ``seed``; ``digits``: (images (M, 8, 8) in 0..16, targets (M,)) instead of
    load_digits (tests)."""
    import sklearn

    if digits is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        digits = (d.images, d.target)
    raw, target = np.asarray(digits[0], dtype=np.float64), np.asarray(digits[1], dtype=np.int64)
    canvas, overlap = int(settings["canvas"]), settings.get("overlap", "max")
    pools = source_pools(len(raw), settings["source_fractions"], seed)
    rng = np.random.default_rng([int(seed), 2024])
    images, labels, sources, split, start = [], [], [], {}, 0
    for name in SPLITS:
        pool, n = pools[name], int(settings[f"n_{name}"])
        if len(pool) < 2 or len(set(target[pool])) < 2:
            raise ValueError(f"the {name} pool has {len(pool)} source images: too few to pair two classes")
        left = rng.choice(pool, size=n)
        right = np.empty(n, dtype=np.int64)
        for i, a in enumerate(left):  # a partner of another class, from the same pool
            others = pool[target[pool] != target[a]]
            right[i] = others[rng.integers(len(others))]
        for a, b in zip(left, right):
            images.append(compose(raw[a] / 16.0, raw[b] / 16.0, canvas, overlap))
        labels.append(np.stack([target[left], target[right]], axis=1))
        sources.append(np.stack([left, right], axis=1))
        split[name] = np.arange(start, start + n)
        start += n
    provenance = {"source": "sklearn.datasets.load_digits", "sklearn": sklearn.__version__, "seed": int(seed),
                  "canvas": canvas, "overlap": overlap, "sizes": {s: int(settings[f"n_{s}"]) for s in SPLITS},
                  "source_pool_sizes": {s: int(len(p)) for s, p in pools.items()},
                  "source_fractions": dict(settings["source_fractions"])}
    return MultiDigits(np.stack(images).astype(np.float32), np.concatenate(labels), np.concatenate(sources), split,
                       provenance)


def write(data: MultiDigits, path) -> None:
    with open(path, "wb") as fh:  # np.savez would append .npz to a name without it
        np.savez(fh, images=data.images, labels=data.labels, sources=data.sources,
                 provenance=np.array(json.dumps(data.provenance, sort_keys=True)),
                 **{f"split_{k}": v for k, v in data.split.items()})


def read(path) -> MultiDigits:
    with np.load(path) as f:
        return MultiDigits(f["images"], f["labels"], f["sources"], {k: f[f"split_{k}"] for k in SPLITS},
                           json.loads(str(f["provenance"])))


def plot_samples(data: MultiDigits, path, n: int = 8) -> None:
    """A PNG of the first ``n`` training composites with their (left, right) labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = data.split["train"][:n]
    fig, axes = plt.subplots(1, len(idx), figsize=(1.4 * len(idx), 1.7))
    for ax, i in zip(np.atleast_1d(axes), idx):
        ax.imshow(data.images[i], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"L={data.labels[i, 0]} R={data.labels[i, 1]}", fontsize=8)
        ax.set_axis_off()
    fig.suptitle(f"multidigits: {data.images.shape[1]} x {data.images.shape[2]}, overlap "
                 f"{data.provenance.get('overlap')}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
