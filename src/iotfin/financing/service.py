"""The financing registry use cases: finance an asset (place a lien), refuse a second financing,
release on repayment, record outside claims and rank competing claims."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.core.money import quantize_fen, to_money
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams
from iotfin.financing import store
from iotfin.financing.model import KIND_LABELS_ZH, AssetKey, Claim, rank_claims

# Called with a lien id after each change to it commits, to anchor the lien as it now stands. After,
# not inside: the ledger serialises its own appends; a crash in between leaves an unanchored change
# that `iotfin ledger audit` reports, never a leaf for a change that did not happen.
Anchor = Callable[[str], object]


@dataclass(frozen=True, slots=True)
class LienView:
    id: int
    asset_id: int
    kind: str
    fingerprint: str
    tenant_id: int
    tenant_code: str
    financing_ref: str
    amount: Decimal
    status: str
    registration_no: str | None
    registered_at: datetime | None
    notice_at: datetime | None
    placed_at: datetime
    released_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, Decimal) else v)
                for k, v in asdict(self).items()}


class DoubleFinancing(Conflict):
    """The asset already carries an active lien; the attempt was refused and recorded."""

    code = "double-financing"

    def __init__(self, existing: LienView):
        registration = f", registration {existing.registration_no}" if existing.registration_no else ""
        super().__init__(
            f"{existing.kind} {existing.fingerprint[:16]} is already financed: lien {existing.id} held by "
            f"{existing.tenant_code} since {existing.placed_at.isoformat()} for {existing.amount} yuan{registration}"
        )
        self.existing = existing
        registration_zh = f"，登记编号 {existing.registration_no}" if existing.registration_no else ""
        self.message_zh = (f"该{KIND_LABELS_ZH[existing.kind]}（{existing.fingerprint[:16]}）已被融资：{existing.tenant_code} "
                           f"于 {existing.placed_at.isoformat()} 设立融资登记 {existing.id}，金额 {existing.amount} 元"
                           f"{registration_zh}。重复融资申请已拒绝。")

    def problem_extra(self) -> dict[str, object]:
        return {"existing_lien": self.existing.to_json(), "detail_zh": self.message_zh}


class FinancingRegistry:
    def __init__(self, engine: Engine, anchor: Anchor | None = None):
        self.engine = engine
        self.anchor = anchor

    def finance(self, key: AssetKey, tenant_id: int, financing_ref: str, amount: object, *,
                enterprise_id: int | None = None, document_id: int | None = None,
                registration_no: str | None = None, registered_at: datetime | None = None,
                notice_at: datetime | None = None) -> LienView:
        """Place a lien, or raise DoubleFinancing with the lien that is already there.

        Exactly one of many concurrent attempts wins: on SQLite writers are serialised by
        BEGIN IMMEDIATE; on PostgreSQL the partial unique index on active liens makes a racing
        second insert fail, and the retry then sees the winner and records the refusal.
        """
        value = quantize_fen(to_money(amount))
        if value <= 0:
            raise ValidationError(f"amount must be positive, got {amount!r}")
        if not financing_ref.strip():
            raise ValidationError("financing_ref must not be empty")
        if registered_at is not None and registration_no is None:
            raise ValidationError("registered_at needs the registration_no it belongs to")
        for attempt in range(3):
            try:
                with write_transaction(self.engine) as conn:
                    asset_id = self._asset_id(conn, key, enterprise_id, document_id)
                    existing = self._active_lien(conn, asset_id)
                    if existing is None:
                        lien_id = store.insert_lien(
                            conn, asset_id=asset_id, tenant_id=tenant_id, financing_ref=financing_ref, amount=value,
                            status="active", registration_no=registration_no, registered_at=registered_at,
                            notice_at=notice_at, placed_at=datetime.now(UTC))
                        self._attempt(conn, asset_id, tenant_id, financing_ref, value, "placed", lien_id)
                        placed = self._lien(conn, lien_id)
                    else:
                        self._attempt(conn, asset_id, tenant_id, financing_ref, value, "refused", existing.id)
                if existing is not None:
                    raise DoubleFinancing(existing)
                if self.anchor:
                    self.anchor(str(placed.id))
                return placed
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def release(self, lien_id: int, reason: str) -> LienView:
        """Release a lien when the financing is repaid (or cancelled); the reason is mandatory."""
        if not reason.strip():
            raise ValidationError("a release needs a reason")
        with write_transaction(self.engine) as conn:
            lien = self._lien(conn, lien_id)
            if lien.status != "active":
                raise Conflict(f"lien {lien_id} is already {lien.status}")
            store.release_lien(conn, lien_id, released_at=datetime.now(UTC), reason=reason)
            released = self._lien(conn, lien_id)
        if self.anchor:
            self.anchor(str(lien_id))
        return released

    def lien(self, lien_id: int) -> LienView:
        with self.engine.connect() as conn:
            return self._lien(conn, lien_id)

    def liens_page(self, enterprise_id: int, page: PageParams, status: str | None = None
                   ) -> tuple[list[dict[str, Any]], str | None]:
        """The liens on an enterprise's assets (every holder's: the registry is a public register,
        searchable by debtor), newest first."""
        if status is not None and status not in ("active", "released"):
            raise ValidationError(f"status must be active or released, not {status!r}", field="status")
        with self.engine.connect() as conn:
            rows, cursor = store.liens_of_enterprise_page(conn, enterprise_id, page, status)
        return [LienView(*row).to_json() for row in rows], cursor

    def tenant_id(self, code: str) -> int:
        with self.engine.connect() as conn:
            found = store.tenant_id_of(conn, code)
        if found is None:
            raise NotFound(f"no tenant with code {code!r}")
        return int(found)

    def add_external_claim(self, key: AssetKey, claimant: str, amount: object, *, registration_no: str | None = None,
                           registered_at: datetime | None = None, notice_at: datetime | None = None) -> int:
        value = quantize_fen(to_money(amount))
        if value <= 0:
            raise ValidationError(f"amount must be positive, got {amount!r}")
        with write_transaction(self.engine) as conn:
            asset_id = self._asset_id(conn, key, None, None)
            return store.insert_external_claim(
                conn, asset_id=asset_id, claimant=claimant, amount=value, registration_no=registration_no,
                registered_at=registered_at, notice_at=notice_at, recorded_at=datetime.now(UTC))

    def status(self, key: AssetKey | str) -> dict[str, Any]:
        """The asset (by key or fingerprint), its liens (newest first) and every attempt to finance it."""
        fingerprint = key if isinstance(key, str) else key.fingerprint
        with self.engine.connect() as conn:
            asset = store.asset(conn, fingerprint)
            if asset is None:
                return {"fingerprint": fingerprint, "kind": None if isinstance(key, str) else key.kind,
                        "registered": False, "active_lien": None, "liens": [], "attempts": []}
            lien_ids = store.lien_ids_of(conn, asset.id)
            liens = [self._lien(conn, i) for i in lien_ids]
            attempts = store.attempts_of(conn, asset.id)
            return {
                "fingerprint": fingerprint, "kind": asset.kind, "registered": True, "asset_id": asset.id,
                "identity": asset.identity,
                "active_lien": next((lien.to_json() for lien in liens if lien.status == "active"), None),
                "liens": [lien.to_json() for lien in liens],
                "attempts": [{"tenant": a.code, "financing_ref": a.financing_ref, "amount": str(a.amount),
                              "outcome": a.outcome, "lien_id": a.lien_id, "at": a.attempted_at.isoformat()}
                             for a in attempts],
            }

    def competing_claims(self, key: AssetKey | str) -> list[list[Claim]]:
        """The active lien and any outside claims, in Civil Code art. 768 priority order."""
        fingerprint = key if isinstance(key, str) else key.fingerprint
        with self.engine.connect() as conn:
            asset_id = store.asset_id_of(conn, fingerprint)
            if asset_id is None:
                raise NotFound(f"no financeable asset with fingerprint {fingerprint}")
            claims = [Claim(lien.tenant_code, lien.amount, lien.registered_at, lien.registration_no, lien.notice_at,
                            ref=f"lien:{lien.id}")
                      for lien in [self._active_lien(conn, asset_id)] if lien is not None]
            for c in store.external_claims_of(conn, asset_id):
                claims.append(Claim(c.claimant, c.amount, c.registered_at, c.registration_no, c.notice_at,
                                    ref=f"external:{c.id}"))
        return rank_claims(claims)

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _asset_id(conn: Connection, key: AssetKey, enterprise_id: int | None, document_id: int | None) -> int:
        found = store.asset_id_of(conn, key.fingerprint)
        if found is not None:
            return int(found)
        return store.insert_asset(conn, kind=key.kind, fingerprint=key.fingerprint, identity=key.as_dict(),
                                  enterprise_id=enterprise_id, document_id=document_id, created_at=datetime.now(UTC))

    def _active_lien(self, conn: Connection, asset_id: int) -> LienView | None:
        lien_id = store.active_lien_id(conn, asset_id)
        return None if lien_id is None else self._lien(conn, int(lien_id))

    @staticmethod
    def _lien(conn: Connection, lien_id: int) -> LienView:
        row = store.lien(conn, lien_id)
        if row is None:
            raise NotFound(f"no lien {lien_id}")
        return LienView(*row)

    @staticmethod
    def _attempt(conn: Connection, asset_id: int, tenant_id: int, ref: str, amount: Decimal, outcome: str,
                 lien_id: int | None) -> None:
        store.insert_attempt(conn, asset_id=asset_id, tenant_id=tenant_id, financing_ref=ref, amount=amount,
                             outcome=outcome, lien_id=lien_id, attempted_at=datetime.now(UTC))
