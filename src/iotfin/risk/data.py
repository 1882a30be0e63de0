"""Reading training and scoring tables (CSV or Parquet), the binary target, and data fingerprints."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from iotfin.core.errors import NotFound, ValidationError

BAD_WORDS = frozenset({"bad", "1", "true", "yes", "default", "y"})
MIN_ROWS = 50


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (header row) or Parquet file as a DataFrame, columns as written."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no such data file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".gz"):
            # pyarrow's reader: several times faster than the C engine on large files.
            return pd.read_csv(path, engine="pyarrow")
    except (OSError, ValueError) as exc:
        ragged = _ragged_line(path) if suffix in (".csv", ".txt") else None
        if ragged:
            raise ValidationError(f"cannot read {path}: {ragged}") from None
        raise ValidationError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    raise ValidationError(f"{path}: unknown format {suffix!r} (use .csv or .parquet)")


def _ragged_line(path: Path) -> str | None:
    """The first row whose field count differs from the header's, said with its line number and the
    column it overflows or lacks (pyarrow's message quotes the row but not where it is)."""
    import csv  # lazy: only on a read error

    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, None) or []
        for row in reader:
            if row and len(row) != len(header):
                where = (f"no value for column {header[len(row)]!r}" if len(row) < len(header)
                         else f"{len(row) - len(header)} value(s) past the last column {header[-1]!r}")
                return f"line {reader.line_num} has {len(row)} fields, the header {len(header)} ({where})"
    return None


def write_table(frame: pd.DataFrame, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        import pyarrow as pa  # lazy: pyarrow loads only when this runs
        import pyarrow.csv as pacsv  # lazy: pyarrow loads only when this runs

        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """A fingerprint of an in-memory table: its Parquet-independent content (column names, dtypes, values)."""
    digest = hashlib.sha256()
    for name in frame.columns:
        digest.update(f"{name}\x00{frame[name].dtype}\x00".encode())
        digest.update(pd.util.hash_pandas_object(frame[name], index=False).to_numpy().tobytes())
    return digest.hexdigest()


def binary_target(series: pd.Series, bad: str | None = None) -> np.ndarray:
    """The target as 0/1 (1 = bad). Values must be two classes; missing targets are refused."""
    name = series.name
    if series.isna().any():
        raise ValidationError(f"target {name!r}: {int(series.isna().sum())} rows have no value")
    values = series.astype(str).str.strip().str.lower()
    classes = sorted(values.unique())
    if len(classes) != 2:
        raise ValidationError(f"target {name!r} must have exactly two classes, found {len(classes)}: "
                              f"{', '.join(classes[:5])}")
    if bad is not None:
        bad_key = str(bad).strip().lower()
        if bad_key not in classes:
            raise ValidationError(f"--bad {bad!r} is not a value of {name!r} ({', '.join(classes)})")
    else:
        if set(classes) in ({"0", "1"}, {"0.0", "1.0"}, {"false", "true"}):
            bad_key = classes[1]
        else:
            hits = [c for c in classes if c in BAD_WORDS]
            if len(hits) != 1:
                raise ValidationError(f"target {name!r}: cannot tell which of {classes} is the bad outcome; "
                                      "pass --bad VALUE")
            bad_key = hits[0]
    return (values == bad_key).to_numpy(dtype=np.int8)


def feature_columns(frame: pd.DataFrame, target: str, exclude: Iterable[str] = (),
                    date_col: str | None = None) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names: every column but target, date and exclusions.

    Booleans are numeric (0/1); strings and categories are categorical; datetimes are refused
    (derive a numeric feature such as an age instead)."""
    skip = {target, *exclude, *([date_col] if date_col else [])}
    missing = [c for c in skip if c not in frame.columns]
    if missing:
        raise ValidationError(f"no such column(s): {', '.join(sorted(missing))} "
                              f"(columns: {', '.join(map(str, frame.columns[:20]))})")
    numeric, categorical = [], []
    for name in frame.columns:
        if name in skip:
            continue
        col = frame[name]
        if ptypes.is_datetime64_any_dtype(col):
            raise ValidationError(f"column {name!r} is a datetime: exclude it or derive a numeric feature")
        if ptypes.is_bool_dtype(col) or ptypes.is_numeric_dtype(col):
            numeric.append(str(name))
        else:
            categorical.append(str(name))
    if not numeric and not categorical:
        raise ValidationError("no feature columns left after target, date and exclusions")
    return numeric, categorical


def check_rows(frame: pd.DataFrame, y: np.ndarray, what: str = "training data") -> None:
    if len(frame) < MIN_ROWS:
        raise ValidationError(f"{what}: {len(frame)} rows; at least {MIN_ROWS} are needed")
    bads = int(y.sum())
    if bads < 10 or len(y) - bads < 10:
        raise ValidationError(f"{what}: {bads} bad and {len(y) - bads} good rows; at least 10 of each are needed")


def dates(frame: pd.DataFrame, column: str) -> pd.Series:
    parsed = pd.to_datetime(frame[column], errors="coerce", utc=True)
    if parsed.isna().any():
        bad_rows = np.flatnonzero(parsed.isna().to_numpy())[:5].tolist()
        raise ValidationError(f"date column {column!r}: {int(parsed.isna().sum())} values are not dates "
                              f"(rows {bad_rows})")
    return parsed


def columns_of(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named columns as numpy arrays (absent columns are all missing)."""
    n = len(frame)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name in frame.columns:
            out[name] = frame[name].to_numpy()
        else:
            out[name] = np.full(n, np.nan)
    return out
