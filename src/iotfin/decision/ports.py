"""What decisioning needs from other contexts, as Protocols; the composition root plugs them in.

Decisioning never imports the contexts behind these: the consent service answers `ConsentCheck`,
the risk engine `RiskEngine`, the ledger `Anchor`, lending `AprPort` (`lending.disclosure.offer_terms`:
the key facts of the product that will book the loan, so the APR offered is the APR signed) and the
supply chain `CoreOf`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection

from iotfin.decision.assessment import RiskAssessment
from iotfin.decision.disclosure import OfferFacts

Assess = Callable[[int], RiskAssessment]
"""The assessment of an enterprise (a fixed risk engine: tests, the CLI's `decision run`)."""

AprPort = Callable[[str, Decimal, Decimal, int, date], OfferFacts]
"""(servicing product, principal, annual rate, months, start) -> the offer's key facts."""

Anchor = Callable[[Connection, str], object]
"""Anchor a decision in the ledger, inside the transaction that stores it."""


@dataclass(frozen=True, slots=True)
class ApprovedTerms:
    """What an approval offers: the terms lending makes its offer of."""

    application_id: int
    decision_id: int
    enterprise_id: int
    product: str  # the decision product
    servicing: str  # the lending product that books it
    amount: Decimal
    tenor_months: int
    annual_rate: Decimal  # gross contract rate
    subsidy_rate: Decimal
    on: date  # the decision's business date


OfferPort = Callable[[Connection, ApprovedTerms], "dict[str, Any]"]
"""Lending's offer of an approval, created in the transaction that stores the approving decision
(`iotfin.lending.offers.OfferService.create_in`, adapted in `iotfin.app`); returns the offer."""


CoreOf = Callable[[Connection, int], "int | None"]
"""The core enterprise of the supply chain an enterprise belongs to (for the chain's exposure), read in
the deciding transaction."""


class RiskEngine(Protocol):
    def __call__(self, enterprise_id: int, lender: str) -> RiskAssessment:
        """The platform's assessment from the features `lender` may read (its consent), and the model."""
        ...


class ConsentCheck(Protocol):
    def __call__(self, lender: str, enterprise_id: int, *, detail: str, conn: Connection | None = None,
                 log: bool = True) -> str | None:
        """None when `lender` may read the enterprise's credit report for a credit assessment, else why
        not (bilingual). Logged in the access log unless `log=False`; inside `conn`'s transaction when
        given."""
        ...


class Events(Protocol):
    def __call__(self, conn: Connection, event_type: str, payload: Mapping[str, Any], *,
                 enterprise_id: int | None = None, tenant_id: int | None = None) -> None:
        """Publish a business event (a webhook: decision.made) inside the caller's transaction: it goes
        out exactly when that commits. With no `tenant_id`, the composition root addresses the lender
        that owns the payload's application."""
        ...

