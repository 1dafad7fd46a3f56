"""The anchor claims that the task ``pinn`` checks (issue 26; :mod:`balancebench.claims`), on Helmholtz 2D only.

* ``pinn_lra_beats_plain``: learning-rate annealing (Wang, Teng & Perdikaris 2021) reaches a lower relative L2
  error on the test grid than the plain PINN (the constant method at equal weights). Test: Mann-Whitney U of
  LRA's per-seed ``rel_l2`` against the plain PINN's, one-sided (independent seeds); a failed run (its value not
  completed) ranks worst.
* ``pinn_relobralo_matches_lra``: ReLoBRaLo (Bischof & Kraus 2021) at least matches LRA. Non-inferiority within
  a factor MARGIN = 2 of relative L2 (half a decade would be a different result, a factor 2 of noise across
  seeds is common for PINNs): claim = ReLoBRaLo's errors below 2 x LRA's (Mann-Whitney U, one-sided); reversed
  = ReLoBRaLo's errors above LRA's (same test, other side), which takes precedence.

The paper's numbers: Wang et al.'s own tables could not be verified (REFERENCES.md "Could not verify"); the
anchors are issue 26's independent reproduction (one seed each, 2 CPU cores).
"""

from __future__ import annotations

from balancebench.claims import Claim, ClaimInputs, ClaimResult, describe, mean_sd, two_groups, verdict

MARGIN = 2.0
METRIC = "rel_l2"


def _variants(config: dict) -> dict:
    return dict((config.get("balancing") or {}).get("variants") or {})


def plain_variant(config: dict) -> str | None:
    """The plain PINN: a constant variant with equal (default) weights and no search; ``constant`` if it is one."""
    plain = [n for n, v in _variants(config).items() if v.get("method") == "constant" and not v.get("search")
             and not (v.get("params") or {}).get("weights")]
    return "constant" if "constant" in plain else (plain[0] if plain else None)


def method_variant(config: dict, method: str) -> str | None:
    """The variant of ``method`` at its defaults (no params, no search); the one named like the method if any."""
    found = [n for n, v in _variants(config).items() if v.get("method") == method and not v.get("search")
             and not v.get("params")]
    return method if method in found else (found[0] if found else None)


def anchor_claims(config: dict) -> list[Claim]:
    problem = (config.get("pinn") or {}).get("problem", "helmholtz2d")
    plain, lra, relo = plain_variant(config), method_variant(config, "lra"), method_variant(config, "relobralo")

    def missing(*needed: tuple[str, str | None]) -> str:
        if problem != "helmholtz2d":
            return f"not in this run: the anchors are on helmholtz2d, this run's pinn.problem is {problem!r}"
        lack = [what for what, name in needed if name is None]
        return ("not in this config: no " + ", no ".join(lack) + " variant") if lack else ""

    def check_lra(inputs: ClaimInputs) -> ClaimResult:
        a = inputs.metric(lra, METRIC, failed_value=float("inf"))
        b = inputs.metric(plain, METRIC, failed_value=float("inf"))
        p, p_rev, note = two_groups(a, b, lower_is_better=True)
        mean, sd, n = mean_sd(a)
        v = verdict(p, p_rev)
        return ClaimResult(
            ours=f"rel L2 {lra} {describe(a)} vs {plain} {describe(b)}", mean=mean, spread=sd, n=n, p=p,
            test="Mann-Whitney U (scipy.stats.mannwhitneyu), one-sided, per-seed rel_l2 (failed runs rank worst)"
                 + (f"; reverse p = {p_rev:.3g}" if p_rev is not None else ""),
            verdict=v,
            why={"reproduced": "LRA's test error is significantly below the plain PINN's.",
                 "reversed": "LRA's test error is significantly above the plain PINN's.",
                 "not reproduced": "LRA's test error is not shown to differ from the plain PINN's"}[v] + note)

    def check_relo(inputs: ClaimInputs) -> ClaimResult:
        a = inputs.metric(relo, METRIC, failed_value=float("inf"))
        b = inputs.metric(lra, METRIC, failed_value=float("inf"))
        p, p_rev, note = two_groups(a, b, lower_is_better=True, margin=MARGIN)
        mean, sd, n = mean_sd(a)
        v = verdict(p, p_rev)
        return ClaimResult(
            ours=f"rel L2 {relo} {describe(a)} vs {lra} {describe(b)}", mean=mean, spread=sd, n=n, p=p,
            test=f"Mann-Whitney U (scipy.stats.mannwhitneyu), one-sided: ReLoBRaLo < {MARGIN:g} x LRA "
                 "(non-inferiority); reverse: ReLoBRaLo > LRA" + (f", p = {p_rev:.3g}" if p_rev is not None else ""),
            verdict=v,
            why={"reproduced": f"ReLoBRaLo's test error is significantly below {MARGIN:g} x LRA's and not "
                               "significantly above LRA's.",
                 "reversed": "ReLoBRaLo's test error is significantly above LRA's.",
                 "not reproduced": f"ReLoBRaLo is neither shown within {MARGIN:g} x LRA's error nor worse"}[v] + note)

    source = "issue 26 anchors (Wang, Teng & Perdikaris 2021, Helmholtz 2D a1 = 1, a2 = 4)"
    return [
        Claim("pinn_lra_beats_plain", source,
              "LRA reaches a lower relative L2 error than the plain PINN on Helmholtz 2D.",
              "rel L2 1.5e-1 (plain) vs 4.8e-2 (LRA) at 10,000 iterations, 2.3e-1 vs 1.6e-2 at 40,000 (independent "
              "reproduction, one seed each); the paper's own table not verified",
              check_lra, ("metrics/metrics.csv",), missing=missing(("plain PINN (constant)", plain), ("lra", lra))),
        Claim("pinn_relobralo_matches_lra", "issue 26 anchors (Bischof & Kraus 2021, ReLoBRaLo)",
              "ReLoBRaLo at least matches LRA on Helmholtz 2D (relative L2 error).",
              "qualitative (the paper's tables not verified, REFERENCES.md 6.2)",
              check_relo, ("metrics/metrics.csv",), missing=missing(("lra", lra), ("relobralo", relo))),
    ]
