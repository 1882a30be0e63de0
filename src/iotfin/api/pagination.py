"""One way to page through lists: every list endpoint takes `page: Page` (the `limit` and
`cursor` query parameters) and returns `{"items": [...], "next_cursor": "..." | null}`; a client
passes `cursor=<next_cursor>` until it is null. The keyset logic is in iotfin.db.pagination.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from iotfin.db.pagination import MAX_LIMIT, PageParams, decode_cursor, encode_cursor, paginate

__all__ = ["Page", "PageParams", "encode_cursor", "page_params", "paginate"]


async def page_params(  # async: a sync dependency costs a thread-pool hop per request
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page")] = None,
) -> PageParams:
    return PageParams(limit, decode_cursor(cursor) if cursor else None)


Page = Annotated[PageParams, Depends(page_params)]
