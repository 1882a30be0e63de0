"""What decisioning needs from other contexts, as Protocols; the composition root plugs them in.

Decisioning never imports the contexts behind these: the consent service answers `ConsentCheck`,
the risk engine `RiskEngine`, the ledger `Anchor`, lending `AprPort` (`lending.disclosure.offer_terms`:
the key facts of the product that will book the loan, so the APR offered is the APR signed) and the
supply chain `CoreOf`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Protocol

from sqlalchemy import Connection

from iotfin.decision.assessment import RiskAssessment
from iotfin.decision.disclosure import OfferFacts

Assess = Callable[[int], RiskAssessment]
"""The assessment of an enterprise (a fixed risk engine: tests, the CLI's `decision run`)."""

AprPort = Callable[[str, Decimal, Decimal, int, date], OfferFacts]
"""(servicing product, principal, annual rate, months, start) -> the offer's key facts."""

Anchor = Callable[[Connection, str], object]
"""Anchor a decision in the ledger, inside the transaction that stores it."""


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
