"""Decisioning's offer port, filled by lending: an approval's terms become lending's offer, in the
transaction that stores the approving decision."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from iotfin.decision.ports import ApprovedTerms
from iotfin.lending.offers import Approved, OfferService


class LendingOffers:
    """`iotfin.decision.ports.OfferPort` over `OfferService.create_in`."""

    def __init__(self, offers: OfferService):
        self.offers = offers

    def __call__(self, conn: Connection, terms: ApprovedTerms) -> dict[str, Any]:
        return self.offers.create_in(conn, Approved(
            application_id=terms.application_id, decision_id=terms.decision_id, enterprise_id=terms.enterprise_id,
            product=terms.product, servicing=terms.servicing, amount=terms.amount, tenor_months=terms.tenor_months,
            annual_rate=terms.annual_rate, subsidy_rate=terms.subsidy_rate, on=terms.on))
