"""Offer → contract, one chain: an approved decision's offer, the enterprise's acceptance after the key
facts, and the booking of exactly what was offered.

An offer is created in the transaction that stores the approving decision (decisioning's offer port,
wired in `iotfin.app`). It carries the servicing product's terms (amount, tenor, contract rate,
subsidy, upfront fee) and the key-facts statement (`lending.disclosure.product_key_facts`, zh and
en) with its SHA-256; the APR disclosed is that statement's APR (IRR, all interest and fees, net of
a subsidy), which is the contract's APR once booked: the same function over the same terms.

The enterprise accepts by sending back the digest of the statement it was shown (a changed or
unseen statement is refused); the offer's lender (the application's owner; the operator for its own)
books it once, inside its validity. Booking a line-serviced offer opens a credit line for the
enterprise (limit = the amount, expiring with the tenor) and draws the amount under it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping

from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.core.jsonvalues import jsonable
from iotfin.core.money import ZERO, to_money
from iotfin.core.time import utc_now
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams
from iotfin.identity.access import set_owner_in
from iotfin.lending import disclosure
from iotfin.lending import model as m
from iotfin.lending import offer_store as store
from iotfin.lending.ports import Events
from iotfin.lending.service import LendingService, Offer
from iotfin.lending.store import ppm, rate

DEFAULT_VALIDITY_DAYS = 15
OFFER_STATUSES = ("open", "accepted", "booked", "expired")


@dataclass(frozen=True, slots=True)
class Approved:
    """What an approving decision offers (decisioning's terms, in lending's words)."""

    application_id: int
    decision_id: int | None
    enterprise_id: int
    product: str  # the decision's product
    servicing: str  # the lending product that books it
    amount: Decimal
    tenor_months: int
    annual_rate: Decimal  # gross contract rate
    subsidy_rate: Decimal
    on: date  # the decision's business date: the key facts' value date


def digest(text_zh: str, text_en: str) -> str:
    """SHA-256 (hex) of the key-facts statement the enterprise is shown: the zh text, NUL, the en text."""
    return hashlib.sha256(text_zh.encode() + b"\x00" + text_en.encode()).hexdigest()


class OfferService:
    def __init__(self, engine: Engine, lending: LendingService, *, validity_days: int = DEFAULT_VALIDITY_DAYS,
                 events: Events | None = None, clock: Callable[[], datetime] = utc_now):
        self.engine = engine
        self.lending = lending
        self.validity = timedelta(days=validity_days)
        self.events = events
        self.clock = clock

    # --- creation (decisioning's offer port) --------------------------------------------------------

    def create_in(self, conn: Connection, terms: Approved) -> dict[str, Any]:
        """The offer of an approved decision, in the decision's transaction. Its lender is the
        application's owner."""
        prod = m.product(terms.servicing)
        facts = disclosure.product_key_facts(prod.code, to_money(terms.amount), Decimal(terms.annual_rate),
                                             terms.tenor_months, terms.on, Decimal(terms.subsidy_rate))
        now = self.clock()
        offer_id = store.insert_offer(conn, {
            "application_id": terms.application_id, "decision_id": terms.decision_id,
            "enterprise_id": terms.enterprise_id, "lender_tenant_id": store.application_owner(conn, terms.application_id),
            "product": terms.product, "servicing_product": prod.code, "amount": to_money(terms.amount),
            "tenor_months": terms.tenor_months, "rate_ppm": ppm(Decimal(terms.annual_rate)),
            "subsidy_ppm": ppm(Decimal(terms.subsidy_rate)), "upfront_fee": facts.upfront_fee,
            "apr_ppm": ppm(facts.apr_net), "start_date": terms.on, "key_facts_zh": facts.text_zh,
            "key_facts_en": facts.text_en, "key_facts_digest": digest(facts.text_zh, facts.text_en),
            "expires_at": now + self.validity, "status": "open", "created_at": now})
        row = store.offer(conn, offer_id)
        assert row is not None
        return self._json(row, now)

    # --- reading ----------------------------------------------------------------------------------------

    def get(self, offer_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = store.offer(conn, offer_id)
        if row is None:
            raise NotFound(f"no offer {offer_id}")
        return self._json(row, self.clock())

    def page(self, page: PageParams, *, status: str | None = None, enterprise_id: int | None = None,
             lender_tenant_id: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
        if status is not None and status not in OFFER_STATUSES:
            raise ValidationError(f"status: must be one of {', '.join(OFFER_STATUSES)}, not {status!r}")
        now = self.clock()
        with self.engine.connect() as conn:
            rows, cursor = store.offers_page(conn, page, now, status=status, enterprise_id=enterprise_id,
                                             lender_tenant_id=lender_tenant_id)
        return [self._json(r, now) for r in rows], cursor

    # --- acceptance -------------------------------------------------------------------------------------

    def accept(self, offer_id: int, key_facts_digest: str, *, actor: str) -> dict[str, Any]:
        """The enterprise accepts an open offer, naming the digest of the key facts it read."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            row = self._locked(conn, offer_id)
            status = _status(row, now)
            if status != "open":
                raise Conflict(f"offer {offer_id} is {status}: it cannot be accepted "
                               f"(要约{STATUS_ZH[status]}，不能接受)")
            if key_facts_digest.strip().lower() != row["key_facts_digest"]:
                raise ValidationError("key_facts_digest: does not match the offer's key-facts statement; read the "
                                      "statement (GET /offers/{id}) and send its digest (关键信息摘要不符)")
            if not store.mark_accepted(conn, offer_id, now, actor):
                raise Conflict(f"offer {offer_id} changed meanwhile: it cannot be accepted")
            accepted = store.offer(conn, offer_id)
            assert accepted is not None
            out = self._json(accepted, now)
            if self.events is not None:
                self.events(conn, "offer.accepted", jsonable({k: out[k] for k in (
                    "id", "application_id", "enterprise_id", "lender", "product", "servicing_product", "amount",
                    "tenor_months", "annual_rate", "upfront_fee", "apr", "accepted_at")}),
                    enterprise_id=row["enterprise_id"], tenant_id=row["lender_tenant_id"])
        return out

    # --- booking ----------------------------------------------------------------------------------------

    def book(self, offer_id: int, *, lender_tenant_id: int | None, operator: bool, actor: str,
             start: date | None = None, contract_ref: str | None = None) -> dict[str, Any]:
        """Book exactly the offer: only by its lender (`lender_tenant_id`; the operator books any), only
        accepted and once. A line-serviced offer opens a credit line (the lender's) and draws under it.
        The contract, its owner and the booked offer commit together."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            row = self._locked(conn, offer_id)
            if not operator and row["lender_tenant_id"] != lender_tenant_id:
                raise NotFound(f"no offer {offer_id}")
            status = _status(row, now)
            if status != "accepted":
                raise Conflict(f"offer {offer_id} is {status}: only an accepted offer is booked "
                               f"(要约{STATUS_ZH[status]}，不能放款)")
            on = start or row["start_date"]
            if on < row["start_date"]:
                raise ValidationError(f"start: {on} is before the offer's value date {row['start_date']}")
            prod = m.product(row["servicing_product"])
            amount, annual, subsidy = row["amount"], rate(row["rate_ppm"]), rate(row["subsidy_ppm"])
            facts = disclosure.product_key_facts(prod.code, amount, annual, row["tenor_months"], on, subsidy)
            if facts.apr_net.quantize(APR_SHOWN) != rate(row["apr_ppm"]).quantize(APR_SHOWN):
                raise ValidationError(f"start: from {on} the annualised rate would be {disclosure.percent(facts.apr_net)}, "
                                      f"not the {disclosure.percent(rate(row['apr_ppm']))} disclosed; book from the "
                                      f"offer's value date {row['start_date']} or make a new offer")
            line_id = None
            owner = row["lender_tenant_id"]
            if prod.kind == "line":
                line_id = self.lending.open_line_in(conn, row["enterprise_id"], amount, annual,
                                                    m.add_months(on, row["tenor_months"]), prod.code, actor)
                if owner is not None:
                    set_owner_in(conn, "credit_line", line_id, owner, row["enterprise_id"])
            signed = {"offer_id": offer_id, "apr": facts.apr_net, "apr_gross": facts.apr_gross,
                      "total_cost": facts.total_cost, "key_facts_digest": digest(facts.text_zh, facts.text_en),
                      "accepted_digest": row["key_facts_digest"], "accepted_by": row["accepted_by"]}
            loan_id = self.lending.book_in(conn, Offer(row["enterprise_id"], prod.code, amount, annual,
                                                       row["tenor_months"], subsidy, line_id),
                                           on, actor, contract_ref, signed, lender_tenant_id=owner)
            if owner is not None:
                set_owner_in(conn, "loan", loan_id, owner, row["enterprise_id"])
            if not store.mark_booked(conn, offer_id, now, loan_id, line_id):
                raise Conflict(f"offer {offer_id} was booked meanwhile")
            booked = store.offer(conn, offer_id)
            assert booked is not None
        self.lending.anchored(loan_id)
        return {"loan_id": loan_id, "credit_line_id": line_id, "offer_id": offer_id, "enterprise_id": row["enterprise_id"],
                "product": prod.code, "principal": amount, "annual_rate": annual, "subsidy_rate": subsidy,
                "term": row["tenor_months"], "start": on, "upfront_fee": facts.upfront_fee,
                "net_proceeds": amount - facts.upfront_fee, "apr": facts.apr_net, "apr_gross": facts.apr_gross,
                "offer": self._json(booked, now)}

    # --- helpers ----------------------------------------------------------------------------------------

    def _locked(self, conn: Connection, offer_id: int) -> RowMapping:
        row = store.offer(conn, offer_id, for_update=True)
        if row is None:
            raise NotFound(f"no offer {offer_id}")
        return row

    @staticmethod
    def _json(row: RowMapping, now: datetime) -> dict[str, Any]:
        return {"id": row["id"], "application_id": row["application_id"], "decision_id": row["decision_id"],
                "enterprise_id": row["enterprise_id"], "lender": row["lender"], "product": row["product"],
                "servicing_product": row["servicing_product"], "amount": row["amount"],
                "tenor_months": row["tenor_months"], "annual_rate": rate(row["rate_ppm"]),
                "subsidy_rate": rate(row["subsidy_ppm"]), "upfront_fee": row["upfront_fee"] or ZERO,
                "apr": rate(row["apr_ppm"]), "apr_percent": disclosure.percent(rate(row["apr_ppm"])),
                "start": row["start_date"], "expires_at": row["expires_at"], "status": _status(row, now),
                "accepted_at": row["accepted_at"], "accepted_by": row["accepted_by"], "loan_id": row["loan_id"],
                "credit_line_id": row["credit_line_id"], "created_at": row["created_at"],
                "key_facts": {"zh": row["key_facts_zh"], "en": row["key_facts_en"], "digest": row["key_facts_digest"]}}


APR_SHOWN = Decimal("0.0001")  # the APR as disclosed: to 0.01 %
STATUS_ZH = {"open": "待接受", "accepted": "已接受", "booked": "已放款", "expired": "已过期"}


def _status(row: RowMapping, now: datetime) -> str:
    """An open offer past its expiry reads as expired."""
    if row["status"] == "open" and row["expires_at"] <= now:
        return "expired"
    return row["status"]
