"""Per-variant seeds: stable across processes, distinct per variant, the same for all under the paired design."""

import subprocess
import sys

import pytest

from balancebench.seeding import derive_seed, run_seed


def test_derived_seed_is_stable_across_processes():
    code = "from balancebench.seeding import derive_seed; print(derive_seed(3, 'softadapt'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", **__import__("os").environ})
    assert int(out.stdout) == derive_seed(3, "softadapt")
    assert derive_seed(3, "softadapt") == int.from_bytes(
        __import__("hashlib").sha256(b"3:softadapt").digest()[:4], "big") & 0x7FFFFFFF


def test_independent_seeds_differ_between_variants_and_replicates():
    seeds = {run_seed(s, v) for s in (1, 2, 3) for v in ("constant", "softadapt", "softadapt_unitfree")}
    assert len(seeds) == 9 and all(0 <= s < 2**31 for s in seeds)


def test_paired_design_uses_the_replicate_seed_for_every_variant():
    assert run_seed(4, "constant", "paired") == run_seed(4, "softadapt", "paired") == 4
    with pytest.raises(ValueError, match="training.seed_design"):
        run_seed(4, "constant", "pairs")
