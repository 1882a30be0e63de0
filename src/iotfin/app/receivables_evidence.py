"""A voucher's chain of title as one evidence bundle, verifiable offline: every journal event's ledger
bundle (iotfin.ledger.evidence) under one signed checkpoint, and a check that the events make one
unbroken chain (every range issued, split, moved and paid as the journal says)."""

from __future__ import annotations

from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.ledger.evidence import EvidenceInvalid, verify_bundle
from iotfin.ledger.service import LedgerService
from iotfin.receivables.model import replay_title
from iotfin.receivables.service import ReceivablesService

FORMAT = "iotfin-voucher-title/1"


def title_bundle(ledger: LedgerService, receivables: ReceivablesService, voucher_id: int) -> dict[str, Any]:
    events = receivables.chain_of_title(voucher_id)
    ledger.checkpoint()  # one checkpoint covering every event
    return {"format": FORMAT, "voucher_id": voucher_id, "verifier_key": ledger.verifier_key,
            "events": [ledger.prove("voucher_event", str(e["id"])) for e in events]}


def verify_title(bundle: dict[str, Any], vkey: str) -> dict[str, Any]:
    """Check every event's bundle against the log's key, then replay the chain (model.replay_title)."""
    if bundle.get("format") != FORMAT:
        raise EvidenceInvalid(f"not an {FORMAT} bundle")
    for item in bundle["events"]:
        verify_bundle(item, vkey)
    try:
        return replay_title(int(bundle["voucher_id"]), [item["record"]["body"] for item in bundle["events"]])
    except ValidationError as exc:
        raise EvidenceInvalid(str(exc)) from None
