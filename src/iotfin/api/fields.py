"""Request field types shared by routers.

Text fields refuse the NUL character: PostgreSQL cannot store it in text, and no human text needs
it, so it is a 422 at the edge instead of a database error (a 500) deep inside.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

NO_NUL = r"^[^\x00]*$"


def Text(max_length: int, min_length: int = 1, **kwargs: Any) -> Any:  # noqa: N802 - used like a type
    return Annotated[str, Field(min_length=min_length, max_length=max_length, pattern=NO_NUL, **kwargs)]
