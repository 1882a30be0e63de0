"""Tables of loan servicing: credit lines, loans (each row is a loan's sub-ledger), schedules, unpaid
bills, the audit trail of events, the general ledger and the close runs.

Rates are stored as integer parts per million (six decimals, exact on every backend: SQLAlchemy's
Numeric goes through a float on SQLite); money uses the platform's Money type; business dates are
`Date` (Asia/Shanghai business days).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iotfin.db.base import Base, Id
from iotfin.db.types import Money, UTCDateTime

LOAN_STATUSES = ("active", "settled")
LINE_STATUSES = ("active", "frozen", "closed")
TIERS = ("normal", "special-mention", "substandard", "doubtful", "loss")


def _now() -> datetime:
    return datetime.now(UTC)


class CreditLine(Base):
    """A revolving limit: drawdowns are loans under it; a frozen line refuses new drawdowns."""

    __tablename__ = "credit_lines"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'frozen', 'closed')", name="status"),
        CheckConstraint("credit_limit > 0", name="limit_positive"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    product: Mapped[str] = mapped_column(String(32))
    credit_limit: Mapped[Decimal] = mapped_column(Money())
    rate_ppm: Mapped[int] = mapped_column(Integer, comment="annual rate, parts per million")
    expires_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class Loan(Base):
    """A contract and its sub-ledger. The balance columns are what the daily close works on."""

    __tablename__ = "loans"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'settled', 'written_off')", name="status"),
        CheckConstraint("principal > 0", name="principal_positive"),
        CheckConstraint("principal_not_due >= 0 AND principal_due >= 0 AND interest_due >= 0 AND fee_due >= 0 "
                        "AND penalty_due >= 0 AND subsidy_due >= 0", name="balances_nonnegative"),
        # No index on last_closed: the close walks the book in id order, and an index on a column every
        # close rewrites would cost an index update per loan per day.
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    credit_line_id: Mapped[int | None] = mapped_column(ForeignKey("credit_lines.id"), nullable=True, index=True)
    product: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(24))
    day_count: Mapped[str] = mapped_column(String(16))
    principal: Mapped[Decimal] = mapped_column(Money())
    rate_ppm: Mapped[int] = mapped_column(Integer)
    subsidy_ppm: Mapped[int] = mapped_column(Integer, default=0)
    penalty_ppm: Mapped[int] = mapped_column(Integer)
    term: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    contract_ref: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    # --- the sub-ledger -------------------------------------------------------------------------
    last_closed: Mapped[date] = mapped_column(Date)
    principal_not_due: Mapped[Decimal] = mapped_column(Money())
    accrued: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    principal_due: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    interest_due: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    fee_due: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    penalty_due: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    subsidy_due: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    subsidy_received: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    subsidy_clawed: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue_since: Mapped[date | None] = mapped_column(Date, nullable=True)
    dpd: Mapped[int] = mapped_column(Integer, default=0)
    tier: Mapped[str] = mapped_column(String(16), default="normal")
    restructured_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    restructured_floor: Mapped[str] = mapped_column(String(16), default="normal")
    # the first instalment not yet billed (cur_seq 0: none left)
    cur_seq: Mapped[int] = mapped_column(Integer, default=0)
    cur_start: Mapped[date | None] = mapped_column(Date, nullable=True)
    cur_due: Mapped[date | None] = mapped_column(Date, nullable=True)
    cur_principal: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    cur_interest: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    cur_fee: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    cur_subsidy: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    # loan-loss allowance held for this loan (account 1304); written off and recovered since (off balance sheet)
    provision: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"), server_default="0")
    written_off: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"), server_default="0")
    recovered: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"), server_default="0")
    written_off_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class LoanInstalment(Base):
    """The loan's current schedule (rescheduling replaces the unbilled rows; the event keeps the old)."""

    __tablename__ = "loan_instalments"

    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    start_date: Mapped[date] = mapped_column(Date)
    # indexed: the close's repayment.due notices look up one due date across the whole book each day
    due_date: Mapped[date] = mapped_column(Date, index=True)
    principal: Mapped[Decimal] = mapped_column(Money())
    interest: Mapped[Decimal] = mapped_column(Money())
    fee: Mapped[Decimal] = mapped_column(Money())
    subsidy: Mapped[Decimal] = mapped_column(Money())


class LoanBill(Base):
    """What fell due and is still unpaid, per due date (paid bills are deleted; the GL keeps the history)."""

    __tablename__ = "loan_bills"
    __table_args__ = (CheckConstraint("fee >= 0 AND interest >= 0 AND principal >= 0", name="nonnegative"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"), index=True)
    due_date: Mapped[date] = mapped_column(Date)
    fee: Mapped[Decimal] = mapped_column(Money())
    interest: Mapped[Decimal] = mapped_column(Money())
    principal: Mapped[Decimal] = mapped_column(Money())


class LoanEvent(Base):
    """The audit trail: bookings, repayments, relief, monitoring actions, who and why."""

    __tablename__ = "loan_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loans.id"), nullable=True, index=True)
    credit_line_id: Mapped[int | None] = mapped_column(ForeignKey("credit_lines.id"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    business_date: Mapped[date] = mapped_column(Date)
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class GlEntry(Base):
    __tablename__ = "gl_entries"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    business_date: Mapped[date] = mapped_column(Date, index=True)
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loans.id"), nullable=True, index=True)
    memo: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class GlLine(Base):
    __tablename__ = "gl_lines"
    __table_args__ = (CheckConstraint("debit >= 0 AND credit >= 0 AND (debit = 0 OR credit = 0)", name="one_side"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("gl_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(16), index=True)
    debit: Mapped[Decimal] = mapped_column(Money())
    credit: Mapped[Decimal] = mapped_column(Money())


class CloseRun(Base):
    """One row per business date closed: its progress, so a crashed close resumes where it stopped."""

    __tablename__ = "close_runs"
    __table_args__ = (CheckConstraint("status IN ('running', 'done')", name="status"),)

    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    loans_closed: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CloseJob(Base):
    """One run of the scheduled close (`iotfin serve`), the catch-up at start or a manual close:
    through which date, how many days it closed, how it ended."""

    __tablename__ = "close_jobs"
    __table_args__ = (CheckConstraint("status IN ('running', 'done', 'failed')", name="status"),
                      CheckConstraint("trigger IN ('schedule', 'catch_up', 'manual')", name="trigger"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))
    through: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    days: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    holder: Mapped[str] = mapped_column(String(128), comment="the process that ran it (host:pid)")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CloseLock(Base):
    """The one lock of the close across processes sharing the database: a lease, taken by a
    conditional update (free or expired), renewed between days, released at the end."""

    __tablename__ = "close_lock"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


OFFER_STATUSES = ("open", "accepted", "booked", "expired")


class LoanOffer(Base):
    """An approved decision's offer: exactly what will be booked (servicing product, amount, tenor,
    rate, subsidy, fee) and its key-facts statement (zh/en) with the SHA-256 the enterprise accepts.
    An open offer past `expires_at` reads as expired. The lender is the application's owner (NULL:
    the operator)."""

    __tablename__ = "loan_offers"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'accepted', 'booked', 'expired')", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("tenor_months > 0", name="tenor_positive"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("credit_applications.id"), index=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("credit_decisions.id"), nullable=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    lender_tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), nullable=True, index=True)
    product: Mapped[str] = mapped_column(String(32), comment="the decision's product")
    servicing_product: Mapped[str] = mapped_column(String(32), comment="the lending product that books it")
    amount: Mapped[Decimal] = mapped_column(Money())
    tenor_months: Mapped[int] = mapped_column(Integer)
    rate_ppm: Mapped[int] = mapped_column(Integer, comment="annual contract rate, parts per million")
    subsidy_ppm: Mapped[int] = mapped_column(Integer, default=0)
    upfront_fee: Mapped[Decimal] = mapped_column(Money())
    apr_ppm: Mapped[int] = mapped_column(Integer, comment="the disclosed APR (IRR, net of subsidy), ppm")
    start_date: Mapped[date] = mapped_column(Date, comment="the value date the key facts are computed from")
    key_facts_zh: Mapped[str] = mapped_column(Text)
    key_facts_en: Mapped[str] = mapped_column(Text)
    key_facts_digest: Mapped[str] = mapped_column(String(64), comment="SHA-256 of zh + NUL + en")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="open")
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    accepted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loans.id"), nullable=True)
    credit_line_id: Mapped[int | None] = mapped_column(ForeignKey("credit_lines.id"), nullable=True)
    booked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
