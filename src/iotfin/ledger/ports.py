"""What the ledger needs from the contexts whose records it anchors; the composition root plugs them in.

The ledger commits to a record, proves it and audits it against the record as it stands now, yet knows
nothing of what the record means: the context that owns each record type answers `RecordLoader`
for it, and the ledger only ever sees the type's name (iotfin.ledger.records.RECORD_TYPES) and a body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection


class RecordLoader(Protocol):
    def __call__(self, conn: Connection, record_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """The records of one type with these ids as they stand now, as {id: body}, read in `conn`;
        an id with no record is left out. None reads every record of the type, in id order."""
        ...


RecordLoaders = Mapping[str, RecordLoader]
"""The loader of each confidential record type, by type name."""
