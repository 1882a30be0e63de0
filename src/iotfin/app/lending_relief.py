"""The relief port wired to lending: an approved hardship request reschedules the loan.

Lending's relief path is `LendingService.restructure` (re-amortise the outstanding principal from a
date over a number of months, with an optional principal deferral; audited on the loan and
classified as restructured). The kinds of relief map onto it:

| relief asked for | what lending does |
|---|---|
| `deferral`     | the remaining months, the first `DEFERRAL_MONTHS` of them interest-only |
| `restructure`  | the remaining months plus `EXTENSION_MONTHS`, re-amortised |
| `fee_waiver`, `rate_reduction` | nothing automatic: lending has no such path yet, the request stays `awaiting_lending` for an officer |

The loan is the request's `loan_ref`: the loan id (`123` or `L-123`) or its contract reference. It
must be the requesting enterprise's loan and belong to the lender the request was filed with (the
`record_owners` of the open API; a loan booked outside the API belongs to the operator and is
relieved only for requests filed with the operator's tenant).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import or_, select

from iotfin.core.errors import Conflict, NotFound
from iotfin.core.time import business_date, utc_now
from iotfin.identity.access import record_owner
from iotfin.lending.tables import Loan
from iotfin.protection.service import ApprovedRelief

DEFERRAL_MONTHS = 3
EXTENSION_MONTHS = 6
_LOAN_REF = re.compile(r"^(?:L-?)?(\d{1,18})$", re.IGNORECASE)


class LendingRelief:
    """`ReliefPort` over `LendingService.restructure`."""

    def __init__(self, lending: Any):
        self.lending = lending

    def loan_of(self, relief: ApprovedRelief) -> int:
        """The id of the loan the request names; NotFound unless it is the enterprise's loan with this lender."""
        m = _LOAN_REF.match(relief.loan_ref.strip())
        clause = Loan.contract_ref == relief.loan_ref.strip()
        if m:
            clause = or_(clause, Loan.id == int(m.group(1)))
        with self.lending.engine.connect() as conn:
            row = conn.execute(select(Loan.id, Loan.enterprise_id).where(clause)).first()
        if row is None or row.enterprise_id != relief.enterprise_id:
            raise NotFound(f"no loan {relief.loan_ref!r} of enterprise {relief.enterprise_id}")
        owner = record_owner(self.lending.engine, "loan", row.id)
        if owner is not None and owner != relief.tenant_id:
            raise NotFound(f"no loan {relief.loan_ref!r} with this lender")
        return int(row.id)

    def apply(self, relief: ApprovedRelief) -> str | None:
        """Put the relief in place; lending's reference for it, or None when it needs an officer."""
        if relief.relief not in ("deferral", "restructure"):
            return None
        loan_id = self.loan_of(relief)
        loan = self.lending.loan(loan_id)
        if loan["status"] != "active":
            raise Conflict(f"loan {loan_id} is {loan['status']}")
        nxt = loan["next_instalment"]
        remaining = sum(1 for i in loan["schedule"] if nxt is not None and i["seq"] >= nxt["seq"])
        if remaining < 1:
            raise Conflict(f"loan {loan_id} has no instalments left to reschedule")
        on = max(business_date(utc_now()), loan["last_closed"])
        term, grace = (remaining, min(DEFERRAL_MONTHS, remaining - 1)) if relief.relief == "deferral" \
            else (remaining + EXTENSION_MONTHS, 0)
        reason = f"hardship request {relief.request_id} ({relief.reason_code}): {relief.relief}"
        self.lending.restructure(loan_id, on, term, grace, reason, actor=f"hardship:{relief.request_id}")
        return f"loan:{loan_id}:restructured:{on.isoformat()}"
