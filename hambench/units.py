"""Numbers with their units, as the terminal summary and the report print them (one spelling in
both): counts and bytes with engineering prefixes, latencies in milliseconds. A base module: no
plotting library, nothing of hambench."""

from __future__ import annotations

import pandas as pd

__all__ = ["ms", "si"]


def si(value: float | None, unit: str = "") -> str:
    """``1.23e9`` -> ``"1.23 G"``: counts and bytes in engineering prefixes; ``n/a`` when missing."""
    if value is None or pd.isna(value):
        return "n/a"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def ms(value: float | None) -> str:
    """``12.345`` -> ``"12.3 ms"``; ``n/a`` when missing."""
    return "n/a" if value is None or pd.isna(value) else f"{value:.3g} ms"
