"""Raw input columns to typed arrays, once, for every model that reads them. Pure: no I/O.

One path for a million-row batch and for a single online request: both arrive here as a mapping
column name -> 1-D array (a DataFrame's columns, or one-element arrays built from a dict).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iotfin.core.errors import ValidationError


@dataclass(frozen=True, slots=True)
class CategoricalColumn:
    codes: np.ndarray  # index into uniques, -1 = missing
    uniques: list[str]

    def lookup(self, mapping: Mapping[str, int], unknown: int, missing: int) -> np.ndarray:
        """Each value's entry in `mapping` (by its text), `unknown` if absent, `missing` if null."""
        table = np.array([mapping.get(u, unknown) for u in self.uniques] + [missing], dtype=np.int64)
        return table[self.codes]  # codes == -1 picks the appended `missing` entry


def numeric(name: str, values: Any) -> np.ndarray:
    """A column as float64 (NaN = missing); text that is not a number is refused, never read as missing."""
    if isinstance(values, pd.Series):
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values.to_numpy(dtype=object)
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64, copy=False)
    try:  # fast path for object arrays of numbers and None (an online request)
        return np.array([np.nan if v is None else v for v in arr], dtype=np.float64) if len(arr) < 64 \
            else arr.astype(np.float64)
    except (TypeError, ValueError):
        pass
    series = pd.Series(arr, dtype=object)
    parsed = pd.to_numeric(series, errors="coerce")
    bad = parsed.isna().to_numpy() & ~series.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"column {name!r} must be numeric: row {first} has {arr[first]!r}")
    return parsed.to_numpy(dtype=np.float64)


def categorical(values: Any) -> CategoricalColumn:
    """Codes and distinct values; categories are compared as stripped text, so 3 and "3" (CSV vs
    JSON) are the same category. Distinct values that read the same after stripping may both appear
    in `uniques`: lookups go by text, so they land in the same bin."""
    if len(values) < 64:  # an online request: plain Python beats building pandas objects
        pos: dict[str, int] = {}
        codes = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
                codes[i] = -1
            else:
                codes[i] = pos.setdefault(str(v).strip(), len(pos))
        return CategoricalColumn(codes, list(pos))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # Arrow strings: dictionary-encoded natively
    return CategoricalColumn(np.asarray(codes, dtype=np.int64), [str(u).strip() for u in uniques])


@dataclass(frozen=True, slots=True)
class Prepared:
    n: int
    numeric: dict[str, np.ndarray]
    categorical: dict[str, CategoricalColumn]


def prepare(columns: Mapping[str, Any], numeric_names: Sequence[str], categorical_names: Sequence[str]) -> Prepared:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValidationError("columns of different lengths")
    n = lengths.pop() if lengths else 0
    return Prepared(n, {name: numeric(name, columns[name]) for name in numeric_names},
                    {name: categorical(columns[name]) for name in categorical_names})


def require_columns(available: Sequence[str], needed: Sequence[str]) -> None:
    absent = [c for c in needed if c not in set(available)]
    if absent:
        raise ValidationError(f"input lacks {len(absent)} model feature column(s): {', '.join(absent[:10])}")


def columns_from_record(record: Mapping[str, object], names: Sequence[str]) -> dict[str, np.ndarray]:
    """One online request as one-row columns; an absent or null field is a missing value."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        value = record.get(name)
        out[name] = np.array([np.nan if value is None else value], dtype=object)
    return out
