"""Identity use cases: create partner clients and console users, authenticate them, issue tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine

from iotfin.core.errors import Conflict, NotFound, Unauthorized, ValidationError
from iotfin.db.pagination import PageParams
from iotfin.identity import store
from iotfin.identity.model import Principal, allowed_scopes, check_roles, grant, parse_scopes
from iotfin.identity.tokens import TokenIssuer

# argon2id with OWASP's recommended minimum (19 MiB, t=2, p=1): ~0.1 s per hash on this 2-core
# machine. The library default (RFC 9106 low-memory profile, 64 MiB, p=4) measured 1.1-1.4 s here,
# too slow for a token endpoint on two shared cores.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the client id or username is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Owner:
    tenant_id: int | None
    tenant_code: str | None
    enterprise_id: int | None
    platform: bool
    partner_kind: str | None = None   # an alliance partner's kind (iot_vendor, logistics, warehouse)


class IdentityService:
    def __init__(self, engine: Engine, tokens: TokenIssuer):
        self.engine = engine
        self.tokens = tokens

    # --- partner clients ----------------------------------------------------------------------

    def create_client(self, name: str, scopes: str | list[str], tenant: str | None = None,
                      enterprise_id: int | None = None) -> dict[str, Any]:
        """Register a partner system; returns its client id and the secret (shown this once only)."""
        owner = self._owner(tenant, enterprise_id)
        wanted = parse_scopes(scopes)
        if not wanted:
            raise ValidationError("a client needs at least one scope")
        allowed = allowed_scopes(owner.platform, owner.enterprise_id is not None, partner_kind=owner.partner_kind)
        if wanted - allowed:
            whose = "enterprise" if owner.enterprise_id else "partner" if owner.partner_kind else "tenant"
            raise ValidationError(f"scope {' '.join(sorted(wanted - allowed))} cannot be given to this "
                                  f"{whose}'s client", field="scopes")
        client_id = "ic_" + secrets.token_hex(8)
        secret = "ics_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            store.insert_client(conn, client_id=client_id, secret_hash=_hasher.hash(secret), name=name,
                                tenant_id=owner.tenant_id, enterprise_id=owner.enterprise_id,
                                scopes=sorted(wanted), active=True)
        return {"client_id": client_id, "client_secret": secret, "name": name, "tenant": owner.tenant_code,
                "enterprise_id": owner.enterprise_id, "scopes": sorted(wanted)}

    def deactivate_client(self, client_id: str) -> None:
        with self.engine.begin() as conn:
            if not store.deactivate_client(conn, client_id):
                raise NotFound(f"no client {client_id!r}")

    def authenticate_client(self, client_id: str, secret: str) -> Principal:
        with self.engine.connect() as conn:
            row = store.client(conn, client_id)
            owner = self._owner_of(conn, row.tenant_id, row.enterprise_id) if row is not None else None
        if not _verify(row.secret_hash if row is not None else None, secret) or row is None or not row.active:
            raise Unauthorized("unknown client or wrong secret")
        assert owner is not None
        return Principal(subject=f"client:{client_id}", tenant_id=owner.tenant_id, tenant_code=owner.tenant_code,
                         enterprise_id=owner.enterprise_id, platform=owner.platform, scopes=frozenset(row.scopes))

    def principals_of(self, tenant: str, kind: str, page: PageParams) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a tenant's console users (`kind="users"`) or partner clients (`"clients"`)."""
        owner = self._owner(tenant, None)
        with self.engine.connect() as conn:
            rows, cursor = (store.list_users if kind == "users" else store.list_clients)(conn, owner.tenant_id, page)
        return [dict(r._mapping) for r in rows], cursor

    # --- console users ------------------------------------------------------------------------

    def create_user(self, username: str, password: str, roles: list[str], tenant: str | None = None,
                    enterprise_id: int | None = None, display_name: str | None = None) -> dict[str, Any]:
        role_set = check_roles(roles)
        if len(password) < 12:
            raise ValidationError("a console password needs at least 12 characters")
        if not username or len(username) > 100 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValidationError("a username is 1-100 letters, digits, '.', '-' or '_'")
        owner = self._owner(tenant, enterprise_id, allow_none="platform_admin" in role_set)
        if owner.enterprise_id is not None and role_set != {"enterprise_admin"}:
            raise ValidationError("an enterprise's users have the role enterprise_admin only")
        if owner.enterprise_id is None and "enterprise_admin" in role_set:
            raise ValidationError("enterprise_admin users belong to an enterprise (--enterprise)")
        if "platform_admin" in role_set and not owner.platform:
            raise ValidationError("platform_admin users belong to the platform operator, not a lender")
        with self.engine.begin() as conn:
            if store.user_exists(conn, username):
                raise Conflict(f"user {username!r} exists")
            store.insert_user(conn, username=username, password_hash=_hasher.hash(password),
                              display_name=display_name or username, roles=sorted(role_set),
                              tenant_id=owner.tenant_id, enterprise_id=owner.enterprise_id, active=True)
        return {"username": username, "roles": sorted(role_set), "tenant": owner.tenant_code,
                "enterprise_id": owner.enterprise_id}

    def authenticate_user(self, username: str, password: str) -> Principal:
        with self.engine.connect() as conn:
            row = store.user(conn, username)
            owner = self._owner_of(conn, row.tenant_id, row.enterprise_id) if row is not None else None
        if not _verify(row.password_hash if row is not None else None, password) or row is None or not row.active:
            raise Unauthorized("unknown user or wrong password")
        assert owner is not None
        return self._user_principal(username, row, owner)

    def user_principal(self, username: str) -> Principal:
        """The principal of an active user, read afresh (a console session resumes as what the user
        is now: a deactivated user or a changed role takes effect on the next page)."""
        with self.engine.connect() as conn:
            row = store.user(conn, username)
            owner = self._owner_of(conn, row.tenant_id, row.enterprise_id) if row is not None else None
        if row is None or not row.active or owner is None:
            raise Unauthorized(f"user {username!r} is unknown or deactivated")
        return self._user_principal(username, row, owner)

    @staticmethod
    def _user_principal(username: str, row: Any, owner: Owner) -> Principal:
        roles = frozenset(row.roles)
        scopes = allowed_scopes(owner.platform, owner.enterprise_id is not None, roles, owner.partner_kind)
        return Principal(subject=f"user:{username}", tenant_id=owner.tenant_id, tenant_code=owner.tenant_code,
                         enterprise_id=owner.enterprise_id, platform=owner.platform, roles=roles, scopes=scopes)

    # --- tokens -------------------------------------------------------------------------------

    def token(self, principal: Principal, scope: str | None = None) -> dict[str, Any]:
        """An OAuth2 token response (RFC 6749 §5.1), down-scoped to `scope` if given."""
        granted = grant(parse_scopes(scope) if scope else None, principal.scopes)
        scoped = Principal(**{**principal.__dict__, "scopes": granted})
        token, ttl = self.tokens.issue(scoped)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": " ".join(sorted(granted))}

    # --- owners -------------------------------------------------------------------------------

    def _owner(self, tenant: str | None, enterprise_id: int | None, allow_none: bool = False) -> Owner:
        if tenant and enterprise_id is not None:
            raise ValidationError("a principal belongs to a tenant or to an enterprise, not both")
        with self.engine.connect() as conn:
            if tenant:
                row = store.tenant_by_code(conn, tenant)
                if row is None:
                    raise NotFound(f"no tenant with code {tenant!r}")
                return Owner(row.id, tenant, None, row.kind == "platform", row.partner_kind)
            if enterprise_id is not None:
                if not store.enterprise_exists(conn, enterprise_id):
                    raise NotFound(f"no enterprise {enterprise_id}")
                return Owner(None, None, enterprise_id, False)
        if not allow_none:
            raise ValidationError("say which tenant (--tenant) or enterprise (--enterprise) this belongs to")
        return Owner(None, None, None, True)

    @staticmethod
    def _owner_of(conn: Connection, tenant_id: int | None, enterprise_id: int | None) -> Owner:
        if tenant_id is not None:
            row = store.tenant_by_id(conn, tenant_id)
            return Owner(tenant_id, row.code, None, row.kind == "platform", row.partner_kind)
        if enterprise_id is not None:
            return Owner(None, None, enterprise_id, False)
        return Owner(None, None, None, True)


def _verify(stored: str | None, given: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, given) and stored is not None
    except (VerificationError, InvalidHashError):
        return False

