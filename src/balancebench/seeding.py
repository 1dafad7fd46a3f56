"""Run seeds of the variants: one replicate seed per ``training.seeds`` entry, one run seed per variant.

``training.seed_design``:

* ``independent`` (default): the run seed of variant ``v`` at replicate seed ``s`` is
  ``derive_seed(s, v)``, the first 4 bytes of SHA-256(``"<s>:<v>"``) as an integer below 2**31.
  Two variants of one replicate then draw different initial weights and frame orders, so
  replicates are independent samples of each variant (the statistics' assumption).
* ``paired``: every variant trains with ``s`` itself (same initial weights, same frame order),
  a paired design that removes the initialisation noise from the differences between variants.

Search candidates (:func:`candidate_seed`) train with one seed per search seed, shared by every search variant:
the searches compared (NSDE, DE, CMA-ES) evaluate their shared first population with the same trainings.

The hash is stable across Python processes and platforms (no ``hash()``, which is salted).
"""

from __future__ import annotations

import hashlib

SEED_DESIGNS = ("independent", "paired")


def derive_seed(seed: int, name: str) -> int:
    """A stable run seed in [0, 2**31) from a replicate seed and a variant (or candidate) name."""
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def run_seed(seed: int, variant: str, design: str = "independent") -> int:
    """The seed a variant trains with at replicate ``seed`` under ``design`` (see the module docstring)."""
    if design == "independent":
        return derive_seed(seed, variant)
    if design == "paired":
        return int(seed)
    raise ValueError(f"training.seed_design must be one of {SEED_DESIGNS}, not {design!r}")


def candidate_seed(seed: int) -> int:
    """The run seed of every search candidate at the search's replicate ``seed``, whatever the variant or kind: a
    candidate's objectives depend on its parameters alone, so searches compared on one seed are paired."""
    return derive_seed(seed, "search:candidates")


def deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True)`` without its 2 s import of torch._inductor.

    The public call imports the compiler only to set ``torch._inductor.config.deterministic``, which matters
    to compiled code alone; nothing here is compiled, so only the flag that eager kernels read is set (the
    compiler's too when it is already loaded). Every training and timing job paid that import (2.2 s of a
    5 s timing job).
    """
    import sys

    import torch

    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=False)
