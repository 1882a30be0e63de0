"""Voucher use cases: issue, split, transfer, offer, decide a financing, pay, cancel. Each one write
transaction: the parts, the journal event, its ledger leaf (and, for a financing, the lien and the
discount loan; for a payment, the GL entries and the loans' repayments) commit together or not at all.

A transfer is sent, then accepted by the receiver (title passes) or rejected; while it is pending the
part is frozen. Concurrency: the part is read with a lock (FOR UPDATE on PostgreSQL; SQLite serialises writers with
BEGIN IMMEDIATE) and changed with a conditional UPDATE checked for exactly one row, so of many
simultaneous transfers or offers of one part exactly one wins; the others are refused (409) with the
winner named.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row

from iotfin.core.errors import Conflict, Forbidden, NotFound, ValidationError
from iotfin.db.pagination import PageParams
from iotfin.receivables import model as m
from iotfin.receivables import store
from iotfin.receivables.group_commit import AnchorItem, GroupCommitter, defer_anchor, run_batch
from iotfin.receivables.ports import (
    Anchor,
    CoreRating,
    DiscountLoans,
    Events,
    Liens,
    Relations,
    Settlement,
    TradeEvidence,
)


class Refused(Conflict):
    """A voucher operation lost to another one (or meets a state that forbids it); names the winner."""

    code = "voucher-conflict"

    def __init__(self, message: str, message_zh: str, winner: dict[str, Any] | None = None):
        super().__init__(message)
        self.message_zh = message_zh
        self.winner = winner

    def problem_extra(self) -> dict[str, object]:
        return {"detail_zh": self.message_zh, **({"winner": self.winner} if self.winner else {})}


@dataclass(frozen=True, slots=True)
class Ports:
    evidence: TradeEvidence
    relations: Relations
    rating: CoreRating
    loans: DiscountLoans | None = None
    liens: Liens | None = None
    settlement: Settlement | None = None
    anchor: Anchor | None = None
    events: Events | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _part(row: Row[Any]) -> m.Part:
    return m.Part(row.id, row.voucher_id, int(row.start_fen), int(row.end_fen), m.Holder(row.holder_kind, int(row.holder_id)),
                  row.status, int(row.depth))


def part_json(row: Row[Any] | dict[str, Any]) -> dict[str, Any]:
    r = row if isinstance(row, dict) else dict(row._mapping)
    out = {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in r.items() if k != "version"}
    out["amount"] = str(m.fen_to_yuan(int(r["end_fen"]) - int(r["start_fen"])))
    return out


def voucher_json(row: Row[Any] | dict[str, Any]) -> dict[str, Any]:
    r = row if isinstance(row, dict) else dict(row._mapping)
    out = {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in r.items()}
    out["amount"] = str(m.fen_to_yuan(int(r["total_fen"])))
    out["paid"] = str(m.fen_to_yuan(int(r["paid_fen"])))
    return out


class ReceivablesService:
    def __init__(self, engine: Engine, ports: Ports, limits: m.Limits | None = None, group_commit: bool = True):
        """`group_commit`: concurrent operations share one durable transaction, each in its own
        savepoint (iotfin.receivables.group_commit); off, each commits on its own."""
        self.engine = engine
        self.ports = ports
        self.limits = limits or m.Limits()
        self.group = GroupCommitter(engine, self._anchor) if group_commit else None

    def _anchor(self, conn: Connection, items: list[AnchorItem]) -> None:
        if self.ports.anchor is not None:  # read at commit time: the port may be swapped (bench diagnostics)
            self.ports.anchor(conn, items)

    def _write(self, op: Callable[[Connection], Any]) -> Any:
        """Run one write use case durably: through the group committer, or in its own transaction."""
        if self.group is not None:
            return self.group.submit(op)
        [(ok, value)] = run_batch(self.engine, [op], self._anchor)
        if not ok:
            raise value
        return value

    # --- helpers --------------------------------------------------------------------------------

    def _event(self, conn: Connection, voucher_id: int, part_id: int | None, kind: str, actor: m.Holder | str,
               detail: dict[str, Any]) -> int:
        values = {"voucher_id": voucher_id, "part_id": part_id, "kind": kind, "actor": str(actor), "detail": detail,
                  "at": _now()}
        event_id = store.insert_event(conn, **values)
        # anchored with the batch's other records before its commit, as the ledger's loader reads it
        # (store.event_record), without reading it back
        defer_anchor(conn, "voucher_event", str(event_id), store.event_record(event_id, values))
        return event_id

    @staticmethod
    def _locked(conn: Connection, part_id: int) -> tuple[Any, Any]:
        found = store.part_with_voucher(conn, part_id, lock=True)
        if found is None:
            raise NotFound(f"no voucher part {part_id}")
        return found

    def _winner(self, conn: Connection, row: store.Record, actor: m.Holder) -> None:
        """Raise the right refusal for an actor who is not (any longer) the part's holder."""
        if row.status == "split":
            raise Refused(f"part {row.id} was already split: act on its parts", f"凭证 {row.id} 已被拆分",
                          {"status": "split"})
        last = store.last_event_of_part(conn, row.id, ("transfer", "finance"))
        if last is not None and (last.detail.get("from") == str(actor)):
            to = last.detail.get("to")
            what = "financed by" if last.kind == "finance" else "transferred to"
            zh = "已融资给" if last.kind == "finance" else "已转让给"
            raise Refused(f"part {row.id} was already {what} {to} (event {last.id} at {last.at.isoformat()})",
                          f"凭证 {row.id} {zh} {to}（事件 {last.id}）",
                          {"holder": to, "event_id": last.id, "kind": last.kind, "at": last.at.isoformat(),
                           **({"lien_id": row.lien_id, "loan_id": row.loan_id} if last.kind == "finance" else {})})
        raise Forbidden(f"part {row.id} is not held by {actor} (非本持有人的凭证)")

    def _check_open(self, row: store.Record, voucher: store.Record, actor: m.Holder, today: date, conn: Connection) -> None:
        if (row.holder_kind, int(row.holder_id)) != (actor.kind, actor.id):
            self._winner(conn, row, actor)
        if voucher.status != "active":
            raise Refused(f"voucher {voucher.number} is {voucher.status}", f"凭证已{voucher.status}")
        if today >= voucher.matures_on:
            raise Refused(f"voucher {voucher.number} matured on {voucher.matures_on}: no transfer, split or "
                          "financing on or after maturity", f"凭证已于 {voucher.matures_on} 到期，不可流转")
        if row.pending_to_id is not None:
            sent = store.last_event_of_part(conn, row.id, ("send",))
            to = f"enterprise:{row.pending_to_id}"
            raise Refused(f"part {row.id} was already sent to {to}, awaiting its acceptance"
                          + (f" (event {sent.id} at {sent.at.isoformat()})" if sent else ""),
                          f"凭证 {row.id} 已转让给 {to}，待其签收",
                          {"to": to, "status": "pending acceptance", "event_id": sent.id if sent else None,
                           "at": sent.at.isoformat() if sent else None})
        if row.status == "offered":
            pending = store.pending_offer(conn, row.id)
            lender = pending.lender_tenant_id if pending else None
            raise Refused(f"part {row.id} is offered to lender {lender} (offer {pending.id if pending else '?'}): "
                          "withdraw the offer first", f"凭证 {row.id} 已向资金方 {lender} 申请融资",
                          {"offer_id": pending.id if pending else None, "lender_tenant_id": lender})
        if row.status != "held":
            raise Refused(f"part {row.id} is {row.status}", f"凭证 {row.id} 状态为 {row.status}", {"status": row.status})

    @staticmethod
    def _moved(n: int, row: store.Record) -> None:
        if n != 1:  # the lock makes this unreachable unless the row changed under us: refuse, change nothing
            raise Refused(f"part {row.id} changed concurrently; retry", f"凭证 {row.id} 已被并发修改")

    # --- issue --------------------------------------------------------------------------------

    def issue(self, issuer_id: int, supplier_id: int, amount: object, issued_on: date, matures_on: date,
              document_ids: Sequence[int], actor: str | None = None) -> dict[str, Any]:
        total = m.yuan_to_fen(amount)
        if total < self.limits.min_part_fen:
            raise ValidationError(f"part below the minimum: {m.fen_to_yuan(total)} < "
                                  f"{m.fen_to_yuan(self.limits.min_part_fen)} yuan", field="amount")
        if issuer_id == supplier_id:
            raise ValidationError("a voucher is issued to a supplier, not to the issuer itself", field="supplier_id")
        m.check_term(issued_on, matures_on, self.limits)

        def op(conn: Connection) -> Any:
            evidence = self.ports.evidence(conn, issuer_id, supplier_id, list(document_ids), total)
            number = f"V{issued_on:%Y%m%d}{secrets.token_hex(5).upper()}"
            voucher = {"number": number, "issuer_id": issuer_id, "supplier_id": supplier_id, "total_fen": total,
                       "currency": "CNY", "issued_on": issued_on, "matures_on": matures_on, "status": "active",
                       "evidence_level": evidence.level, "evidence": evidence.detail, "transferred": False, "paid_fen": 0}
            vid = store.insert_voucher(conn, **voucher, created_at=_now())
            part = {"voucher_id": vid, "start_fen": 0, "end_fen": total, "holder_kind": "enterprise",
                    "holder_id": supplier_id, "status": "held", "depth": 0, "version": 0}
            pid = store.insert_part(conn, **part)
            self._event(conn, vid, pid, "issue", actor or f"enterprise:{issuer_id}",
                        {"to": f"enterprise:{supplier_id}", "start": 0, "end": total, "matures_on": matures_on.isoformat(),
                         "evidence_level": evidence.level, "documents": list(document_ids)})
            # as written (no read back)
            return voucher_json(store.voucher_row(id=vid, **voucher)) | {"parts": [part_json(store.part_row(id=pid, **part))]}
        return self._write(op)

    # --- split and transfer ----------------------------------------------------------------------

    def split(self, actor: m.Holder, part_id: int, amounts: Sequence[object], today: date) -> list[dict[str, Any]]:
        sizes = [m.yuan_to_fen(a, "amounts") for a in amounts]

        def op(conn: Connection) -> Any:
            row, voucher = self._locked(conn, part_id)
            self._check_open(row, voucher, actor, today, conn)
            ranges = m.split_ranges(int(row.start_fen), int(row.end_fen), sizes, int(row.depth), self.limits)
            self._moved(store.move_part(conn, row.id, expect="held", holder=(actor.kind, actor.id),
                                        version=row.version, status="split"), row)
            written = [{"voucher_id": row.voucher_id, "parent_id": row.id, "start_fen": s, "end_fen": e,
                        "holder_kind": actor.kind, "holder_id": actor.id, "status": "held", "depth": int(row.depth) + 1,
                        "version": 0} for s, e in ranges]
            children = [store.insert_part(conn, **values) for values in written]
            self._event(conn, row.voucher_id, row.id, "split", actor,
                        {"parts": [{"part_id": c, "start": s, "end": e} for c, (s, e) in zip(children, ranges, strict=True)]})
            return [part_json(store.part_row(id=c, **values)) for c, values in zip(children, written, strict=True)]
        return self._write(op)

    def transfer(self, actor: m.Holder, part_id: int, to_enterprise_id: int, today: date) -> dict[str, Any]:
        """Send a held part to an enterprise in the holder's supply chain. Title passes only when the
        receiver accepts (`accept`); until then the part stays the holder's, frozen (no split, offer or
        second transfer), with the receiver in `pending_to_id`."""
        def op(conn: Connection) -> Any:
            row, voucher = self._locked(conn, part_id)
            self._check_open(row, voucher, actor, today, conn)
            if actor.kind != "enterprise":
                raise Forbidden("a lender holding a financed part does not transfer it here")
            if to_enterprise_id == actor.id:
                raise ValidationError("a transfer needs another receiver", field="to_enterprise_id")
            if not self.ports.relations(conn, actor.id, to_enterprise_id):
                raise ValidationError(f"enterprise {to_enterprise_id} is not in the holder's supply chain "
                                      "(受让方不在持有人供应链内)", field="to_enterprise_id")
            self._moved(store.move_part(conn, row.id, expect="held", holder=(actor.kind, actor.id),
                                        version=row.version, pending_to_id=to_enterprise_id), row)
            self._event(conn, row.voucher_id, row.id, "send", actor,
                        {"from": str(actor), "to": f"enterprise:{to_enterprise_id}", "start": int(row.start_fen),
                         "end": int(row.end_fen), "on": today.isoformat()})
            return part_json({**row._mapping, "pending_to_id": to_enterprise_id})  # as moved (no re-read)
        return self._write(op)

    def _pending(self, conn: Connection, actor: m.Holder, part_id: int, today: date | None
                 ) -> tuple[store.Record, store.Record, m.Holder, m.Holder]:
        """The locked part with a transfer pending, its voucher, the sender and the receiver; refusals
        name what stands in the way (no transfer pending, already accepted, matured)."""
        row, voucher = self._locked(conn, part_id)
        if row.pending_to_id is None:
            last = store.last_event_of_part(conn, row.id, ("transfer", "reject"))
            if last is not None and last.detail.get("to") == str(actor) and last.kind == "transfer":
                raise Refused(f"the transfer of part {row.id} was already accepted by {actor} (event {last.id} at "
                              f"{last.at.isoformat()})", f"凭证 {row.id} 已签收（事件 {last.id}）",
                              {"holder": f"{row.holder_kind}:{row.holder_id}", "event_id": last.id, "kind": last.kind,
                               "at": last.at.isoformat()})
            raise Refused(f"part {row.id} has no transfer awaiting acceptance"
                          + (f" (last: {last.kind}, event {last.id})" if last is not None else ""),
                          f"凭证 {row.id} 没有待签收的转让", {"status": row.status})
        sender = m.Holder(row.holder_kind, int(row.holder_id))
        receiver = m.Holder("enterprise", int(row.pending_to_id))
        if actor not in (sender, receiver):
            raise Forbidden(f"the transfer of part {row.id} is sent to {receiver}, not to {actor} (非本凭证受让方)")
        if today is not None and today >= voucher.matures_on:
            raise Refused(f"voucher {voucher.number} matured on {voucher.matures_on}: a transfer is accepted before "
                          "maturity only", f"凭证已于 {voucher.matures_on} 到期，不可签收")
        if voucher.status != "active":
            raise Refused(f"voucher {voucher.number} is {voucher.status}", f"凭证已{voucher.status}")
        return row, voucher, sender, receiver

    def accept(self, actor: m.Holder, part_id: int, today: date) -> dict[str, Any]:
        """The receiver accepts a transfer sent to it, before maturity: title passes to it."""
        def op(conn: Connection) -> Any:
            row, voucher, sender, receiver = self._pending(conn, actor, part_id, today)
            if actor != receiver:
                raise Forbidden(f"only the receiver {receiver} accepts the transfer of part {row.id} (仅受让方可签收)")
            self._moved(store.move_part(conn, row.id, expect="held", holder=(sender.kind, sender.id),
                                        version=row.version, holder_id=receiver.id, pending_to_id=None), row)
            if not voucher.transferred:
                store.set_voucher(conn, voucher.id, transferred=True)
            self._event(conn, row.voucher_id, row.id, "transfer", actor,
                        {"from": str(sender), "to": str(receiver), "start": int(row.start_fen), "end": int(row.end_fen),
                         "on": today.isoformat()})  # the business date title passed (risk features date takings by it)
            return part_json({**row._mapping, "holder_id": receiver.id, "pending_to_id": None})  # as moved
        return self._write(op)

    def reject(self, actor: m.Holder, part_id: int) -> dict[str, Any]:
        """The receiver declines a transfer sent to it, or the holder recalls it: the part is the
        holder's again, free to act on."""
        def op(conn: Connection) -> Any:
            row, _, sender, receiver = self._pending(conn, actor, part_id, None)
            self._moved(store.move_part(conn, row.id, expect="held", holder=(sender.kind, sender.id),
                                        version=row.version, pending_to_id=None), row)
            self._event(conn, row.voucher_id, row.id, "reject", actor,
                        {"from": str(sender), "to": str(receiver), "by": "receiver" if actor == receiver else "holder"})
            return part_json({**row._mapping, "pending_to_id": None})  # as moved (no re-read)
        return self._write(op)

    # --- financing --------------------------------------------------------------------------------

    def offer(self, actor: m.Holder, part_id: int, lender_tenant_id: int, today: date) -> dict[str, Any]:
        """Offer a held part to a lender: the part is then `offered` until the lender decides or the
        holder withdraws. A part offered to a second lender is refused naming the first."""
        def op(conn: Connection) -> Any:
            row, voucher = self._locked(conn, part_id)
            self._check_open(row, voucher, actor, today, conn)
            self._moved(_set_status(conn, row, actor, "held", "offered"), row)
            offer_id = store.insert_offer(conn, part_id=row.id, lender_tenant_id=lender_tenant_id, holder_id=actor.id,
                                          status="pending", created_at=_now())
            self._event(conn, row.voucher_id, row.id, "offer", actor,
                        {"offer_id": offer_id, "lender_tenant_id": lender_tenant_id, "start": int(row.start_fen),
                         "end": int(row.end_fen)})
            return self._offer(conn, offer_id)
        return self._write(op)

    def withdraw(self, actor: m.Holder, offer_id: int) -> dict[str, Any]:

        def op(conn: Connection) -> Any:
            off = store.offer(conn, offer_id, lock=True)
            if off is None or off.holder_id != actor.id or actor.kind != "enterprise":
                raise NotFound(f"no offer {offer_id} of {actor}")
            if off.status != "pending":
                raise Refused(f"offer {offer_id} is already {off.status}", f"融资申请已{off.status}")
            row, _ = self._locked(conn, off.part_id)
            self._moved(_set_status(conn, row, actor, "offered", "held"), row)
            store.decide_offer(conn, offer_id, "withdrawn", _now())
            self._event(conn, row.voucher_id, row.id, "withdraw", actor, {"offer_id": offer_id})
            return self._offer(conn, offer_id)
        return self._write(op)

    def decide(self, lender_tenant_id: int, offer_id: int, accept: bool, today: date) -> dict[str, Any]:
        """The lender's decision on an offer. Accepting applies the policy on the core enterprise's
        rating and the evidence level (model.financing_decision); on acceptance the part passes to the
        lender, the registry holds a lien on its range and the discount loan is booked."""
        def op(conn: Connection) -> Any:
            off = store.offer(conn, offer_id, lock=True)
            if off is None or off.lender_tenant_id != lender_tenant_id:
                raise NotFound(f"no offer {offer_id} to this lender")
            row, voucher = self._locked(conn, off.part_id)
            if off.status != "pending":
                raise Refused(f"offer {offer_id} is already {off.status}", f"融资申请已{off.status}",
                              {"offer_id": offer_id, "status": off.status, "part_holder": f"{row.holder_kind}:{row.holder_id}"})
            holder = m.Holder("enterprise", int(off.holder_id))
            if today >= voucher.matures_on:
                raise Refused(f"voucher {voucher.number} matured on {voucher.matures_on}: no financing",
                              "凭证已到期，不可融资")
            rating = self.ports.rating(conn, int(voucher.issuer_id))
            grade, pd = rating if rating else (None, None)
            ok, reason, reason_zh = m.financing_decision(grade, pd, voucher.evidence_level)
            if not accept or not ok:
                why = "declined by the lender" if not accept else reason
                self._moved(_set_status(conn, row, holder, "offered", "held"), row)
                store.decide_offer(conn, offer_id, "declined", _now(), reason=why[:300])
                self._event(conn, row.voucher_id, row.id, "decline", f"lender:{lender_tenant_id}",
                            {"offer_id": offer_id, "reason": why, "reason_zh": reason_zh if accept else "资金方拒绝"})
                return self._offer(conn, offer_id) | {"reason_zh": reason_zh if accept else "资金方拒绝"}
            rate = m.discount_rate(pd, voucher.evidence_level)
            days = (voucher.matures_on - today).days
            face = int(row.end_fen) - int(row.start_fen)
            principal = m.fen_to_yuan(m.discount_principal(face, rate, days))
            ref = f"{voucher.number}:{row.start_fen}-{row.end_fen}"
            lien_id = loan_id = None
            if self.ports.liens is not None:
                lien_id = self.ports.liens.place(conn, voucher_number=voucher.number, start_fen=int(row.start_fen),
                                                 end_fen=int(row.end_fen), issuer_id=int(voucher.issuer_id),
                                                 lender_tenant_id=lender_tenant_id, amount=m.fen_to_yuan(face), ref=ref)
            if self.ports.loans is not None:
                months = max(1, -(-days // 30))
                loan_id = self.ports.loans.book(conn, enterprise_id=holder.id, lender_tenant_id=lender_tenant_id,
                                                principal=principal, annual_rate=rate, start=today,
                                                months=min(months, m.HARD_MAX_TERM_MONTHS), ref=ref)
            self._moved(_finance(conn, row, holder, lender_tenant_id, loan_id, lien_id), row)
            store.decide_offer(conn, offer_id, "accepted", _now(), annual_rate=str(rate), reason=reason[:300])
            if not voucher.transferred:
                store.set_voucher(conn, voucher.id, transferred=True)
            self._event(conn, row.voucher_id, row.id, "finance", f"lender:{lender_tenant_id}",
                        {"from": str(holder), "to": f"lender:{lender_tenant_id}", "offer_id": offer_id,
                         "start": int(row.start_fen), "end": int(row.end_fen), "annual_rate": str(rate),
                         "principal": str(principal), "loan_id": loan_id, "lien_id": lien_id, "reason": reason})
            return self._offer(conn, offer_id) | {"loan_id": loan_id, "lien_id": lien_id, "principal": str(principal),
                                                  "reason_zh": reason_zh}
        return self._write(op)

    # --- payment and cancellation ---------------------------------------------------------------

    def pay(self, issuer_id: int, voucher_id: int, amount: object, on: date) -> dict[str, Any]:
        """The core enterprise pays (part of) what is still owed; every live holding gets its pro-rata
        share to the fen (largest remainder), booked through the GL; financed parts repay their loans."""
        paid = m.yuan_to_fen(amount)

        def op(conn: Connection) -> Any:
            voucher = store.voucher(conn, voucher_id, lock=True)
            if voucher is None or int(voucher.issuer_id) != issuer_id:
                raise NotFound(f"no voucher {voucher_id} issued by enterprise {issuer_id}")
            if voucher.status != "active":
                raise Refused(f"voucher {voucher.number} is {voucher.status}", f"凭证已{voucher.status}")
            owed = int(voucher.total_fen) - int(voucher.paid_fen)
            if paid > owed:
                raise ValidationError(f"payment {m.fen_to_yuan(paid)} is more than the {m.fen_to_yuan(owed)} yuan "
                                      "still owed (付款金额超过应付余额)", field="amount")
            every = store.parts_of(conn, voucher_id)  # all of them: the answer shows them (no re-read)
            parts = [p for p in every if p.status in m.LIVE]
            shares = m.pro_rata(paid, [int(p.end_fen) - int(p.start_fen) for p in parts])
            by_holder: dict[str, int] = {}
            applied: list[dict[str, Any]] = []
            for p, share in zip(parts, shares, strict=True):
                key = f"{p.holder_kind}:{p.holder_id}"
                by_holder[key] = by_holder.get(key, 0) + share
                if p.loan_id is not None and self.ports.loans is not None and share:
                    used = self.ports.loans.settle(conn, int(p.loan_id), m.fen_to_yuan(share), on)
                    applied.append({"part_id": p.id, "loan_id": p.loan_id, "applied": str(used)})
            if self.ports.settlement is not None:
                self.ports.settlement(conn, on, m.fen_to_yuan(paid), [m.fen_to_yuan(v) for v in by_holder.values()],
                                      f"voucher {voucher.number}")
            done = paid == owed
            store.set_voucher(conn, voucher_id, paid_fen=int(voucher.paid_fen) + paid,
                              **({"status": "paid", "paid_on": on} if done else {}))
            if done:
                for p in parts:
                    if p.lien_id is not None and self.ports.liens is not None:
                        self.ports.liens.release(conn, int(p.lien_id), f"voucher {voucher.number} paid")
                store.set_parts_status(conn, voucher_id, m.LIVE, "paid")
            detail = {"amount_fen": paid, "on": on.isoformat(), "late_days": max(0, (on - voucher.matures_on).days),
                      "shares": [{"part_id": p.id, "holder": f"{p.holder_kind}:{p.holder_id}", "fen": s}
                                 for p, s in zip(parts, shares, strict=True)],
                      "by_holder": by_holder, "loans": applied, "settled": done}
            self._event(conn, voucher_id, None, "pay", f"enterprise:{issuer_id}", detail)
            if self.ports.events is not None:
                self.ports.events(conn, "voucher.paid", {"voucher_id": voucher_id, "number": voucher.number,
                                                         "amount": str(m.fen_to_yuan(paid)), "settled": done},
                                  enterprise_id=issuer_id)
            # the voucher and its parts as this payment left them, from the rows read above
            settled = {"status": "paid", "paid_on": on} if done else {}
            after = voucher_json({**voucher._mapping, "paid_fen": int(voucher.paid_fen) + paid, **settled})
            after["parts"] = [part_json({**p._mapping, "status": "paid", "pending_to_id": None}
                                        if done and p.status in m.LIVE else p) for p in every if p.status != "split"]
            return {"voucher": after, "payment": detail}
        return self._write(op)

    def cancel(self, issuer_id: int, voucher_id: int) -> dict[str, Any]:
        """Only the issuer, only before any part left the first holder."""
        def op(conn: Connection) -> Any:
            voucher = store.voucher(conn, voucher_id, lock=True)
            if voucher is None or int(voucher.issuer_id) != issuer_id:
                raise NotFound(f"no voucher {voucher_id} issued by enterprise {issuer_id}")
            if voucher.status != "active" or voucher.transferred:
                raise Refused(f"voucher {voucher.number} cannot be cancelled: "
                              f"{'a part was transferred or financed' if voucher.transferred else voucher.status}",
                              "凭证已流转或已结清，不可撤销")
            offered = store.parts_of(conn, voucher_id, ("offered",))
            if offered:
                raise Refused(f"voucher {voucher.number} has a part offered for financing", "凭证有融资申请中的部分")
            if any(p.pending_to_id is not None for p in store.parts_of(conn, voucher_id, ("held",))):
                raise Refused(f"voucher {voucher.number} has a part sent to a receiver: reject the transfer first",
                              "凭证有待签收的转让")
            if store.cancel_voucher(conn, voucher_id) != 1:
                raise Refused("voucher changed concurrently", "凭证已被并发修改")
            store.set_parts_status(conn, voucher_id, ("held",), "cancelled")
            self._event(conn, voucher_id, None, "cancel", f"enterprise:{issuer_id}", {})
            return self._voucher(conn, voucher_id)
        return self._write(op)

    def flag_late(self, on: date) -> list[dict[str, Any]]:
        """Vouchers past maturity and not fully paid: one `late` event per voucher per day, a webhook
        `voucher.late`; returns them (the monitor raises its alerts from these)."""
        def op(conn: Connection) -> Any:
            out = []
            for v in store.due_unpaid(conn, on):
                if v.matures_on >= on:
                    continue
                days = (on - v.matures_on).days
                last = [e for e in store.events_of(conn, v.id) if e.kind == "late"]
                if last and last[-1].detail.get("on") == on.isoformat():
                    continue
                detail = {"on": on.isoformat(), "days_late": days,
                          "unpaid": str(m.fen_to_yuan(int(v.total_fen) - int(v.paid_fen)))}
                self._event(conn, v.id, None, "late", "platform", detail)
                if self.ports.events is not None:
                    self.ports.events(conn, "voucher.late", {"voucher_id": v.id, "number": v.number, **detail},
                                      enterprise_id=int(v.issuer_id))
                out.append({"voucher_id": v.id, "number": v.number, "issuer_id": v.issuer_id, **detail})
            return out
        return self._write(op)

    def at_risk(self, on: date, horizon_days: int = 30) -> list[dict[str, Any]]:
        """Maturity at risk: active vouchers past maturity, or maturing within the horizon whose core
        enterprise paid late before or rates poorly (model.maturity_at_risk) — what the monitor shows."""
        out = []
        with self.engine.connect() as conn:
            history = store.voucher_history(conn)
            late_by_issuer: dict[int, int] = {}
            for r in history:
                if r.status != "cancelled" and r.matures_on < on and (r.paid_on is None or r.paid_on > r.matures_on):
                    late_by_issuer[r.issuer_id] = late_by_issuer.get(r.issuer_id, 0) + 1
            for v in store.maturing_between(conn, date.min, on + timedelta(days=horizon_days)):
                rating = self.ports.rating(conn, int(v.issuer_id))
                unpaid = int(v.total_fen) - int(v.paid_fen)
                late = late_by_issuer.get(int(v.issuer_id), 0) - (1 if v.matures_on < on else 0)
                why = m.maturity_at_risk((v.matures_on - on).days, unpaid, rating[1] if rating else None, late)
                if why:
                    out.append({"voucher_id": v.id, "number": v.number, "issuer_id": v.issuer_id,
                                "matures_on": v.matures_on.isoformat(), "unpaid": str(m.fen_to_yuan(unpaid)),
                                "reason": why})
        return out

    def features(self, enterprise_ids: Sequence[int], as_of: date) -> dict[int, dict[str, float]]:
        """Transaction-credit features from voucher history (model.voucher_features), per enterprise."""
        with self.engine.connect() as conn:
            rows = store.voucher_history(conn, list(enterprise_ids))
        return {e: m.voucher_features(rows, e, as_of) for e in enterprise_ids}

    # --- reads --------------------------------------------------------------------------------

    def _voucher(self, conn: Connection, voucher_id: int) -> dict[str, Any]:
        v = store.voucher(conn, voucher_id)
        if v is None:
            raise NotFound(f"no voucher {voucher_id}")
        return voucher_json(v) | {"parts": [part_json(p) for p in store.parts_of(conn, voucher_id)
                                            if p.status != "split"]}

    @staticmethod
    def _offer(conn: Connection, offer_id: int) -> dict[str, Any]:
        o = store.offer(conn, offer_id)
        assert o is not None
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in o._mapping.items()}

    def voucher(self, voucher_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return self._voucher(conn, voucher_id)

    def part(self, part_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = store.part(conn, part_id)
            if row is None:
                raise NotFound(f"no voucher part {part_id}")
            return part_json(row)

    def chain_of_title(self, voucher_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            if store.voucher(conn, voucher_id) is None:
                raise NotFound(f"no voucher {voucher_id}")
            return [{"id": e.id, "part_id": e.part_id, "kind": e.kind, "actor": e.actor, "detail": e.detail,
                     "at": e.at.isoformat()} for e in store.events_of(conn, voucher_id)]

    def holdings(self, holder: m.Holder, page: PageParams, status: str | None = None, incoming: bool = False
                 ) -> tuple[list[dict[str, Any]], str | None]:
        """The parts a holder holds, or (`incoming`) the transfers sent to it awaiting its acceptance."""
        if status is not None and status not in m.STATUSES:
            raise ValidationError(f"status must be one of {', '.join(m.STATUSES)}", field="status")
        with self.engine.connect() as conn:
            rows, cursor = store.holdings_page(conn, holder.kind, holder.id, page, status, incoming)
        return [part_json(r) for r in rows], cursor

    def issued(self, issuer_id: int, page: PageParams) -> tuple[list[dict[str, Any]], str | None]:
        with self.engine.connect() as conn:
            rows, cursor = store.issued_page(conn, issuer_id, page)
        return [voucher_json(r) for r in rows], cursor

    def offers(self, lender_tenant_id: int | None, page: PageParams, status: str | None = None
               ) -> tuple[list[dict[str, Any]], str | None]:
        with self.engine.connect() as conn:
            rows, cursor = store.offers_page(conn, lender_tenant_id, page, status)
        return [{k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in r.items()} for r in rows], cursor

    def audit(self, voucher_id: int) -> dict[str, Any]:
        """Invariants of one voucher: live and paid parts tile [0, total) with no overlap and no gap."""
        with self.engine.connect() as conn:
            v = store.voucher(conn, voucher_id)
            if v is None:
                raise NotFound(f"no voucher {voucher_id}")
            parts = store.parts_of(conn, voucher_id, ("held", "offered", "financed", "paid", "cancelled"))
        at, problems = 0, []
        for p in parts:
            if int(p.start_fen) != at:
                problems.append(f"{'overlap' if int(p.start_fen) < at else 'gap'} at fen {at} (part {p.id})")
            at = max(at, int(p.end_fen))
        if at != int(v.total_fen):
            problems.append(f"parts end at {at}, issue is {v.total_fen}")
        return {"voucher_id": voucher_id, "ok": not problems, "problems": problems}


def _set_status(conn: Connection, row: store.Record, holder: m.Holder, old: str, new: str) -> int:
    return store.move_part(conn, row.id, expect=old, holder=(holder.kind, holder.id), version=row.version, status=new)


def _finance(conn: Connection, row: store.Record, holder: m.Holder, lender_tenant_id: int, loan_id: int | None,
             lien_id: int | None) -> int:
    return store.move_part(conn, row.id, expect="offered", holder=(holder.kind, holder.id), version=row.version,
                           status="financed", holder_kind="lender", holder_id=lender_tenant_id, loan_id=loan_id,
                           lien_id=lien_id, financed_from=holder.id)
