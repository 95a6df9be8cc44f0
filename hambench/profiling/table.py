"""Profile rows as a table: a tidy DataFrame, written to .parquet or .csv atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hambench.io import atomic_write

if TYPE_CHECKING:
    import pandas


def to_frame(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    """Rows -> a tidy DataFrame (one row per profile; lists and dicts as JSON strings)."""
    import pandas as pd

    flat = []
    for row in rows:
        row = dict(row)
        row["uncounted_ops"] = json.dumps(row.get("uncounted_ops", []))
        if "breakdown" in row:
            row["breakdown"] = json.dumps(row["breakdown"], sort_keys=True)
        flat.append(row)
    return pd.DataFrame(flat)


def write_table(df: pandas.DataFrame, path: str | Path) -> Path:
    """Write ``df`` to .parquet or .csv atomically."""
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out must end in .parquet or .csv, got {path.name!r}")
    if path.suffix == ".parquet":
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
