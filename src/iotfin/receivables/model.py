"""Digital debt vouchers (数字债权凭证) as fen ranges of their issue. Pure: no I/O.

A voucher issue of N fen is the half-open range [0, N). Every holding is a sub-range [start, end)
with one holder. Splitting a holding replaces it by contiguous children that cover exactly the same
fen (conservation by construction: the children are cut at interior points of the parent); a double
spend is an overlap of two live holdings, which the store prevents by moving a holding only out of
the state it was read in (see store.py). Payment at maturity is pro rata to the fen by the largest
remainder method, so the shares always add up to the amount paid.

Rules in force since 2025-06-15 set the voucher payment term to at most six months in principle and
one year at most: the default limits below, configurable in Settings (receivable_*).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from iotfin.core.errors import Conflict, Forbidden, ValidationError
from iotfin.core.money import FEN, to_money

STATUSES = ("held", "offered", "financed", "paid", "cancelled", "split")
LIVE = ("held", "offered", "financed")  # a fen is in exactly one live holding until paid or cancelled
# A transfer is two steps: the holder sends the part ("send": pending, the part stays the holder's and
# is frozen), the receiver accepts ("transfer": title passes) or it is rejected ("reject": by the
# receiver, or recalled by the holder).
EVENT_KINDS = ("issue", "split", "send", "transfer", "reject", "offer", "finance", "decline", "withdraw", "pay",
               "cancel", "late")
EVIDENCE_LEVELS = ("documents", "documents+iot", "mismatch")
HOLDER_KINDS = ("enterprise", "lender")

HARD_MAX_TERM_MONTHS = 12  # the rule's ceiling: no setting may go beyond it


@dataclass(frozen=True, slots=True)
class Limits:
    """The configurable rules (Settings receivable_*): term, smallest part, deepest split chain."""

    max_term_months: int = 6
    min_part_fen: int = 100_00  # 100 yuan
    max_depth: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.max_term_months <= HARD_MAX_TERM_MONTHS:
            raise ValidationError(f"max_term_months must be 1..{HARD_MAX_TERM_MONTHS}, got {self.max_term_months}")
        if self.min_part_fen < 1 or self.max_depth < 1:
            raise ValidationError("min_part_fen and max_depth must be positive")


@dataclass(frozen=True, slots=True)
class Holder:
    kind: str  # enterprise | lender
    id: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class Part:
    """One holding: the fen range [start, end) of a voucher, its holder, status and split depth."""

    id: int
    voucher_id: int
    start: int
    end: int
    holder: Holder
    status: str
    depth: int

    @property
    def fen(self) -> int:
        return self.end - self.start

    @property
    def amount(self) -> Decimal:
        return fen_to_yuan(self.fen)


# --- money <-> fen ---------------------------------------------------------------------------------


def yuan_to_fen(value: object, what: str = "amount") -> int:
    """A positive amount in yuan, at most to the fen, as an integer number of fen."""
    try:
        amount = to_money(value)
    except (ValueError, ArithmeticError, TypeError) as exc:
        raise ValidationError(f"{what}: not an amount: {value!r}", field=what) from exc
    if amount <= 0:
        raise ValidationError(f"{what} must be positive, got {value!r} (金额必须为正)", field=what)
    if amount != amount.quantize(FEN):
        raise ValidationError(f"{what} is more precise than a fen: {value!r} (金额精确到分)", field=what)
    return int(amount / FEN)


def fen_to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) * FEN).quantize(FEN)


# --- term -------------------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def check_term(issued_on: date, matures_on: date, limits: Limits) -> None:
    """ValidationError unless the maturity falls after the issue date and within the term limit."""
    if matures_on <= issued_on:
        raise ValidationError(f"maturity {matures_on} must fall after the issue date {issued_on} (到期日须晚于签发日)",
                              field="matures_on")
    latest = add_months(issued_on, limits.max_term_months)
    if matures_on > latest:
        raise ValidationError(
            f"term beyond the limit: maturity {matures_on} is after {latest}, {limits.max_term_months} months from "
            f"issue (付款期限超过 {limits.max_term_months} 个月上限)", field="matures_on")


# --- splitting ---------------------------------------------------------------------------------------


def split_ranges(start: int, end: int, amounts_fen: Sequence[int], depth: int, limits: Limits) -> list[tuple[int, int]]:
    """Cut [start, end) into contiguous parts of the given sizes, in order; the last part takes what
    is left (so a split of [start, end) into [a, b) parts conserves by construction). Every part,
    including the remainder, must be at least the minimum; the children's depth must not pass the
    maximum. Asking for more than is held is refused."""
    held = end - start
    if not amounts_fen:
        raise ValidationError("a split needs at least one amount", field="amounts")
    if depth + 1 > limits.max_depth:
        raise ValidationError(f"split depth {depth + 1} is beyond the maximum {limits.max_depth} (拆分层级超过上限)",
                              field="amounts")
    asked = sum(amounts_fen)
    if asked > held:
        raise ValidationError(f"splitting more than held: asked {fen_to_yuan(asked)} of a part of "
                              f"{fen_to_yuan(held)} yuan (拆分金额超过持有金额)", field="amounts")
    sizes = list(amounts_fen) + ([held - asked] if asked < held else [])
    if len(sizes) < 2:
        raise ValidationError("a split must leave at least two parts (拆分至少产生两部分)", field="amounts")
    small = [s for s in sizes if s < limits.min_part_fen]
    if small:
        raise ValidationError(f"part below the minimum: {fen_to_yuan(min(small))} yuan < "
                              f"{fen_to_yuan(limits.min_part_fen)} yuan (拆分后金额低于最小金额)", field="amounts")
    out, at = [], start
    for size in sizes:
        out.append((at, at + size))
        at += size
    assert at == end  # conservation: the parts tile [start, end)
    return out


# --- pro-rata payment ----------------------------------------------------------------------------


def pro_rata(paid_fen: int, weights: Sequence[int]) -> list[int]:
    """Share `paid_fen` among holders in proportion to their fen (largest-remainder method, ties to
    the earlier listed), in whole fen: the shares add up to exactly `paid_fen`. Hand-written: the
    largest-remainder rule is four lines, and an integer version avoids any Decimal context."""
    total = sum(weights)
    if paid_fen < 0 or any(w < 0 for w in weights):
        raise ValidationError("payment and weights must not be negative")
    if total == 0:
        if paid_fen:
            raise ValidationError("nothing to pay into")
        return [0] * len(weights)
    floors = [paid_fen * w // total for w in weights]
    left = paid_fen - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(paid_fen * weights[i] % total), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


# --- acting on parts --------------------------------------------------------------------------------


def check_holder(part: Part, actor: Holder) -> None:
    if part.holder != actor:
        raise Forbidden(f"part {part.id} is not held by {actor} (非本持有人的凭证)")


def check_live(part: Part, want: str, today: date, matures_on: date) -> None:
    """The part must be in state `want` and the voucher not yet due."""
    if today >= matures_on:
        raise Conflict(f"voucher matured on {matures_on}: no transfer, split or financing after maturity "
                       f"(凭证已到期，不可流转)")
    if part.status != want:
        raise Conflict(f"part {part.id} is {part.status}, not {want} (凭证状态为 {part.status})")


def financing_decision(grade: str | None, pd: float | None, evidence_level: str) -> tuple[bool, str, str]:
    """(accept, reason_en, reason_zh) of a lender's financing decision on a part, from the core
    enterprise's latest rating and the voucher's evidence level. Rule as data would be a decision
    model; kept here as the documented default policy (docs/receivables.md)."""
    if evidence_level == "mismatch":
        return (False, "evidence mismatch: the trade documents and the IoT evidence disagree",
                "贸易单据与物联网证据不一致")
    if grade is None:
        return (False, "the core enterprise has no rating", "核心企业无评级")
    if pd is not None and pd > 0.10:
        return (False, f"the core enterprise's PD {pd:.3f} is above 0.10 (grade {grade})",
                f"核心企业违约概率 {pd:.3f} 高于 0.10（评级 {grade}）")
    return (True, f"core enterprise grade {grade}, evidence {evidence_level}",
            f"核心企业评级 {grade}，证据等级 {evidence_level}")


def discount_rate(pd: float | None, evidence_level: str) -> Decimal:
    """The annual discount rate offered: a base plus a PD spread, less for IoT-evidenced delivery."""
    base = Decimal("0.045") + Decimal(str(round((pd or 0.0) * 0.5, 4)))
    if evidence_level == "documents+iot":
        base -= Decimal("0.005")
    return min(max(base, Decimal("0.02")), Decimal("0.24")).quantize(Decimal("0.0001"))


def discount_principal(face_fen: int, annual_rate: Decimal, days: int) -> int:
    """What the lender advances against `face_fen` due in `days`: face / (1 + r·d/365), to the fen."""
    value = Decimal(face_fen) / (1 + annual_rate * Decimal(days) / Decimal(365))
    return int(value.to_integral_value())


# --- chain of title ---------------------------------------------------------------------------------


def replay_title(voucher_id: int, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Replay a voucher's journal: the issue's range, each split tiling its parent, each transfer or
    financing made by the part's holder at that point; the final parts must tile the issue.
    ValidationError naming the first event that breaks the chain."""
    holders: dict[int, tuple[int, int, str]] = {}  # part id -> (start, end, holder)
    total = None
    for body in events:
        if int(body["voucher_id"]) != voucher_id:
            raise ValidationError(f"event {body['id']} belongs to voucher {body['voucher_id']}")
        kind, detail, part = body["kind"], body["detail"], body.get("part_id")
        if kind == "issue":
            total = int(detail["end"])
            holders[int(part)] = (0, total, detail["to"])
        elif kind == "split":
            start, end, holder = holders.pop(int(part))
            pieces = sorted((int(p["start"]), int(p["end"]), int(p["part_id"])) for p in detail["parts"])
            if pieces[0][0] != start or pieces[-1][1] != end or any(a[1] != b[0] for a, b in zip(pieces, pieces[1:], strict=False)):
                raise ValidationError(f"split event {body['id']} does not tile part {part}")
            for s, e, pid in pieces:
                holders[pid] = (s, e, holder)
        elif kind in ("transfer", "finance"):
            start, end, holder = holders[int(part)]
            if detail["from"] != holder:
                raise ValidationError(f"{kind} event {body['id']} by {detail['from']}, but {holder} held part {part}")
            holders[int(part)] = (start, end, detail["to"])
    if total is None:
        raise ValidationError("the chain has no issue event")
    covered = sorted((s, e) for s, e, _ in holders.values())
    if covered[0][0] != 0 or covered[-1][1] != total or any(a[1] != b[0] for a, b in zip(covered, covered[1:], strict=False)):
        raise ValidationError("the final parts do not tile the issue")
    return {"voucher_id": voucher_id, "events": len(events), "total_fen": total,
            "holders": {str(pid): {"start": s, "end": e, "holder": h} for pid, (s, e, h) in sorted(holders.items())}}


# --- transaction-credit features and maturity risk --------------------------------------------------


def voucher_features(rows: Sequence[Any], enterprise_id: int, as_of: date) -> dict[str, float]:
    """Transaction-credit features of one enterprise from voucher history (issue rows: issuer_id,
    supplier_id, total_fen, issued_on, matures_on, status, paid_on, evidence_level), as of a date:
    confirmed volume received as a supplier over 180 days, the number of confirming core enterprises,
    and, as an issuer, the share of matured vouchers paid on time and the mean days late."""
    since = as_of.toordinal() - 180
    received = [r for r in rows if r.supplier_id == enterprise_id and since <= r.issued_on.toordinal() <= as_of.toordinal()]
    matured = [r for r in rows if r.issuer_id == enterprise_id and r.matures_on <= as_of and r.status != "cancelled"]
    on_time = [r for r in matured if r.paid_on is not None and r.paid_on <= r.matures_on]
    late_days = [((r.paid_on or as_of) - r.matures_on).days for r in matured if r not in on_time]
    return {"voucher_confirmed_volume_180d": sum(int(r.total_fen) for r in received) / 100.0,
            "voucher_core_count_180d": float(len({r.issuer_id for r in received})),
            "voucher_iot_evidence_share_180d": (sum(r.evidence_level == "documents+iot" for r in received) / len(received)
                                                if received else 0.0),
            "voucher_core_on_time_share": len(on_time) / len(matured) if matured else 1.0,
            "voucher_core_mean_days_late": sum(late_days) / len(matured) if matured else 0.0}


def maturity_at_risk(days_to_maturity: int, unpaid_fen: int, pd: float | None, late_history: int) -> str | None:
    """Why an active voucher's maturity is at risk (None when it is not): the core enterprise paid
    late before, or its PD is high, within the horizon before maturity."""
    if days_to_maturity < 0:
        return f"past maturity by {-days_to_maturity} days, {fen_to_yuan(unpaid_fen)} yuan unpaid"
    if late_history:
        return f"the core enterprise paid {late_history} voucher(s) late before"
    if pd is not None and pd > 0.05:
        return f"the core enterprise's PD is {pd:.3f}"
    return None
