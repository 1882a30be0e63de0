"""A voucher's chain of title as one evidence bundle, verifiable offline: every journal event's ledger
bundle (iotfin.ledger.evidence) under one signed checkpoint, and a check that the events make one
unbroken chain (every range issued, split, moved and paid as the journal says)."""

from __future__ import annotations

from typing import Any

from iotfin.ledger.evidence import EvidenceInvalid, verify_bundle
from iotfin.ledger.service import LedgerService
from iotfin.receivables.service import ReceivablesService

FORMAT = "iotfin-voucher-title/1"


def title_bundle(ledger: LedgerService, receivables: ReceivablesService, voucher_id: int) -> dict[str, Any]:
    events = receivables.chain_of_title(voucher_id)
    ledger.checkpoint()  # one checkpoint covering every event
    return {"format": FORMAT, "voucher_id": voucher_id, "verifier_key": ledger.verifier_key,
            "events": [ledger.prove("voucher_event", str(e["id"])) for e in events]}


def verify_title(bundle: dict[str, Any], vkey: str) -> dict[str, Any]:
    """Check every event's bundle against the log's key, then replay the chain: the issue's range, each
    split tiling its parent, each transfer or financing made by the part's holder at that point."""
    if bundle.get("format") != FORMAT:
        raise EvidenceInvalid(f"not an {FORMAT} bundle")
    holders: dict[int, tuple[int, int, str]] = {}  # part id -> (start, end, holder)
    total = None
    for item in bundle["events"]:
        verify_bundle(item, vkey)
        body = item["record"]["body"]
        if int(body["voucher_id"]) != int(bundle["voucher_id"]):
            raise EvidenceInvalid(f"event {body['id']} belongs to voucher {body['voucher_id']}")
        kind, detail, part = body["kind"], body["detail"], body.get("part_id")
        if kind == "issue":
            total = int(detail["end"])
            holders[int(part)] = (0, total, detail["to"])
        elif kind == "split":
            start, end, holder = holders.pop(int(part))
            pieces = sorted((int(p["start"]), int(p["end"]), int(p["part_id"])) for p in detail["parts"])
            if pieces[0][0] != start or pieces[-1][1] != end or any(a[1] != b[0] for a, b in zip(pieces, pieces[1:])):
                raise EvidenceInvalid(f"split event {body['id']} does not tile part {part}")
            for s, e, pid in pieces:
                holders[pid] = (s, e, holder)
        elif kind in ("transfer", "finance"):
            start, end, holder = holders[int(part)]
            if detail["from"] != holder:
                raise EvidenceInvalid(f"{kind} event {body['id']} by {detail['from']}, but {holder} held part {part}")
            holders[int(part)] = (start, end, detail["to"])
    if total is None:
        raise EvidenceInvalid("the chain has no issue event")
    covered = sorted((s, e) for s, e, _ in holders.values())
    if covered[0][0] != 0 or covered[-1][1] != total or any(a[1] != b[0] for a, b in zip(covered, covered[1:])):
        raise EvidenceInvalid("the final parts do not tile the issue")
    return {"voucher_id": bundle["voucher_id"], "events": len(bundle["events"]), "total_fen": total,
            "holders": {str(pid): {"start": s, "end": e, "holder": h} for pid, (s, e, h) in sorted(holders.items())}}
