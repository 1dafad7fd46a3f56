"""Distinct marker/colour pairs for figures with many variants (issue 27: no two variants look alike).

``style(i)`` gives the i-th variant a colour of matplotlib's ``tab10`` and a marker such that the first 90
indices never repeat a (colour, marker) pair and neighbours differ in both: colour i mod 10, marker
(i + i // 10) mod 9.
"""

from __future__ import annotations

MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">")


def style(i: int) -> tuple[str, str]:
    """(colour, marker) of the i-th variant (``C0``..``C9`` are tab10 in matplotlib's default cycle)."""
    return f"C{i % 10}", MARKERS[(i + i // 10) % len(MARKERS)]
