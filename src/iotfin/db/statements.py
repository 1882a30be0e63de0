"""Statements executed per operation, built once: a helper for `WHERE column IN (...)`.

SQLAlchemy renders an IN over an expanding parameter anew at every execution (its post-compile
step), which cost more than a small query itself on the voucher path (py-spy,
bench/receivables_ops.py). A short list gets a statement with one plain parameter per value,
built once per length; a long one (a bulk load) the expanding form. `records_by_id` is the ledger
loaders' read over it (trade documents, liens, loan contracts, voucher events).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam

FIXED_UP_TO = 16  # lengths with their own statement each; longer lists expand


@lru_cache(maxsize=256)
def _fixed(base: Any, column: Any, count: int) -> Any:
    return base.where(column.in_([bindparam(f"in_{i}") for i in range(count)]))


@lru_cache(maxsize=64)
def _expanding(base: Any, column: Any) -> Any:
    return base.where(column.in_(bindparam("in_values", expanding=True)))


def where_in(base: Any, column: Any, values: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
    """`base` (a prebuilt statement) restricted to `column IN values`, and its parameters."""
    if not values:
        raise ValueError("where_in needs at least one value")
    if len(values) <= FIXED_UP_TO:
        return _fixed(base, column, len(values)), {f"in_{i}": v for i, v in enumerate(values)}
    return _expanding(base, column), {"in_values": list(values)}


def records_by_id(conn: Any, base: Any, column: Any, record_ids: Sequence[Any] | None) -> dict[str, dict[str, Any]]:
    """A ledger loader's rows (its RecordLoader port): every row of `base` (record_ids None) or
    those whose `column` is one of the ids, as {str(id): row as a dict}."""
    if record_ids is None:
        rows = conn.execute(base).mappings()
    else:
        stmt, params = where_in(base, column, [int(rid) for rid in record_ids])
        rows = conn.execute(stmt, params).mappings()
    return {str(row["id"]): dict(row) for row in rows}
