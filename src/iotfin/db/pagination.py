"""Keyset pagination on the record id with an opaque cursor (used by services; the HTTP
dependency that reads `limit` and `cursor` is iotfin.api.pagination.page_params).

Keyset (rather than offset) pages stay stable while rows are being added and cost the same at
page 1 and page 10,000.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam

from iotfin.core.errors import ValidationError

MAX_LIMIT = 200
ID_MAX = 2**63 - 1  # the database's integer range: a cursor beyond it is refused, not a driver overflow


@dataclass(frozen=True)
class PageParams:
    limit: int
    after: int | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "id" or not value.isascii() or not value.isdigit() or int(value) > ID_MAX:
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor: not a cursor this API issued") from None


def paginate(conn: Connection, stmt: Select, id_column: Any, page: PageParams,
             descending: bool = False) -> tuple[Sequence[Any], str | None]:
    """Run `stmt` for one page (ordered by `id_column`, newest first when `descending`); returns
    the rows and the next cursor."""
    stmt = keyset_page(stmt, id_column, after=page.after is not None, descending=descending)
    return fetch_page(conn, stmt, {}, page, id_column.key)


def keyset_page(stmt: Select, id_column: Any, *, after: bool, descending: bool = False) -> Select:
    """`stmt` as one page, ordered by `id_column` (descending: newest first, the cursor then points
    below), with bound parameters `limit` and (with `after`) `after`: a hot list builds it once and
    runs it with `fetch_page` (SQLAlchemy then skips building the statement, its cache key and the
    result map for every request)."""
    if after:
        stmt = stmt.where(id_column < bindparam("after") if descending else id_column > bindparam("after"))
    return stmt.order_by(id_column.desc() if descending else id_column).limit(bindparam("limit"))


def fetch_page(conn: Connection, stmt: Select, params: dict[str, Any], page: PageParams,
               id_key: str = "id") -> tuple[Sequence[Any], str | None]:
    """Run a `keyset_page` statement with `params`; returns the page's rows and the next cursor."""
    bound = params | {"limit": page.limit + 1}
    if page.after is not None:
        bound["after"] = page.after
    rows = conn.execute(stmt, bound).all()
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return rows, (encode_cursor(int(rows[-1]._mapping[id_key])) if more else None)
