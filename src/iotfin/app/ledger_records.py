"""Which context answers for each confidential record type the ledger anchors: the ledger's RecordLoader
port (iotfin.ledger.ports), wired here so the ledger never imports the contexts whose records it proves."""

from __future__ import annotations

from iotfin.consent.store import grant_records
from iotfin.decision.store import decision_records
from iotfin.financing.store import lien_records
from iotfin.ledger.ports import RecordLoader
from iotfin.lending.store import loan_contract_records
from iotfin.receivables.store import voucher_event_records
from iotfin.supplychain.store import trade_document_records


def record_loaders() -> dict[str, RecordLoader]:
    """Where the current state of each confidential record type lives, to anchor, prove and audit it."""
    return {"trade_document": trade_document_records, "lien": lien_records,
            "loan_contract": loan_contract_records, "consent_grant": grant_records,
            "credit_decision": decision_records, "voucher_event": voucher_event_records}
