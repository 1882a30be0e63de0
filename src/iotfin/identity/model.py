"""Who is calling, and what they may do: principals, roles, scopes, and the tenant-isolation rules.

Pure: no I/O. A principal is either a partner system (OAuth2 client credentials) or a console user
(username and password). It belongs to at most one lender tenant or one enterprise; a principal of
the platform operator (tenant kind `platform`, or a user with no tenant and no enterprise) sees
every tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iotfin.core.errors import Forbidden, NotFound, ValidationError

#: Every scope the API knows, with what it allows (shown in the OpenAPI document).
SCOPES: dict[str, str] = {
    "financing:read": "financing registry: asset status and competing claims",
    "financing:write": "financing registry: place and release the caller's own liens",
    "ledger:evidence": "evidence bundles of anchored records (auditors)",
    "webhooks:manage": "webhook subscriptions and the delivery log of the caller's tenant or enterprise",
    "complaints:submit": "file complaints",
    "complaints:read": "read complaints of the caller's tenant or enterprise",
    "complaints:handle": "acknowledge, assign, escalate and resolve complaints",
    "hardship:submit": "file hardship requests",
    "hardship:review": "read and review hardship requests",
    "hardship:decide": "approve or decline hardship requests",
    "identity:manage": "create partner clients and console users (platform operator)",
    "risk:read": "credit profiles (three-dimension ratings) the caller's tenant asked for, or of the caller's enterprise",
    "lending:read": "loans and credit lines of the caller (its own loans; an enterprise's loans)",
    "lending:write": "book loans and take repayments for the caller's tenant",
    "lending:service": "acceleration, margin calls, restructuring, credit-line freeze on the caller's loans",
    "lending:books": "daily close, trial balance and portfolio of the whole book (platform operator)",
    "lending:manual": "book a loan outside an offer (with a reason, inside the product's ranges and the rate ceiling)",
    "offers:read": "loan offers of the caller (a lender's own offers; an enterprise's offers)",
    "offers:accept": "accept a loan offer made to the caller's enterprise, after reading its key facts",
    "applications:read": "credit applications of the caller and the review queue",
    "applications:write": "submit credit applications (consent to credit_report needed)",
    "applications:review": "approve, decline or counter-offer referred applications",
    "strategies:manage": "decision strategies: read, publish, replay, deploy, roll back (platform operator)",
    "alerts:read": "monitoring alerts on the caller's customers (consent to alerts needed) or own enterprise",
    "alerts:handle": "acknowledge, assign and resolve alerts",
    "monitor:configure": "check warning-rule models and geofences before handing them to the platform",
    "monitor:prices": "import commodity prices (platform operator)",
    "consents:manage": "grant, withdraw and reconfirm the enterprise's consents",
    "consents:read": "consents and access log of the enterprise, or those naming the caller as recipient",
    "consents:check": "check (and log) a read against the enterprise's consents, as the recipient",
    "devices:read": "device status and events of the enterprise's own devices",
    "devices:claim": "claim a device for the enterprise",
    "pii:read": "the legal representative's personal data (the enterprise's own; a lender with consent)",
    "onboarding:write": "onboard enterprises and their sites (the operator; a lender: its own customers)",
    "enterprises:read": "enterprises and their sites: a lender's customers, the enterprise itself, all for the operator",
    "devices:provision": "register devices at an enterprise's site (the enterprise; an IoT vendor with its consent)",
    "telemetry:read": "an enterprise's telemetry (its own; a lender or partner within the enterprise's consent)",
    "portfolio:read": "portfolio of the caller's own book: classification, arrears, provisions, vintages",
    "vouchers:read": "digital debt vouchers the caller issued or holds, and the offers made to it",
    "vouchers:write": "issue, split, transfer, offer for financing, pay or cancel the enterprise's vouchers",
    "vouchers:finance": "decide the financing of voucher parts offered to the caller's tenant",
}

#: Console roles and the scopes each one carries.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "risk_officer": frozenset({"financing:read", "financing:write", "complaints:read",
                               "complaints:handle", "hardship:review", "webhooks:manage", "lending:read",
                               "lending:service", "applications:read", "applications:write", "alerts:read",
                               "alerts:handle", "monitor:configure", "consents:read", "consents:check",
                               "pii:read", "risk:read", "offers:read", "onboarding:write", "enterprises:read",
                               "telemetry:read", "vouchers:read", "vouchers:finance"}),
    "approver": frozenset({"financing:read", "hardship:review", "hardship:decide", "complaints:read",
                           "lending:read", "lending:write", "applications:read", "applications:review",
                           "alerts:read", "risk:read", "offers:read", "enterprises:read"}),
    "auditor": frozenset({"financing:read", "ledger:evidence", "complaints:read", "hardship:review",
                          "lending:read", "applications:read", "alerts:read", "consents:read", "risk:read",
                          "offers:read", "enterprises:read"}),
    # a bank's risk manager: its own tenant's book (portfolio:read) and what the officers see, read only
    "risk_manager": frozenset({"lending:read", "risk:read", "applications:read", "alerts:read", "offers:read",
                               "enterprises:read", "complaints:read", "consents:read", "financing:read",
                               "portfolio:read"}),
    "platform_admin": frozenset(SCOPES),
    "enterprise_admin": frozenset({"complaints:submit", "complaints:read", "hardship:submit", "hardship:review",
                                   "webhooks:manage", "lending:read", "applications:read", "alerts:read",
                                   "consents:manage", "consents:read", "devices:read", "devices:claim",
                                   "pii:read", "risk:read", "offers:read", "offers:accept", "enterprises:read",
                                   "devices:provision", "telemetry:read", "vouchers:read", "vouchers:write"}),
}
ROLES = tuple(ROLE_SCOPES)

#: Scopes only the platform operator's own principals may hold.
PLATFORM_ONLY = frozenset({"identity:manage", "lending:books", "strategies:manage", "monitor:prices"})
#: Scopes only an enterprise (or the operator) may hold: a lender never manages another's consents or devices.
ENTERPRISE_ONLY = frozenset({"consents:manage", "devices:read", "devices:claim", "offers:accept", "devices:provision",
                             "vouchers:write"})
#: Scopes that make sense for an enterprise's principals (the rest are lender or operator work).
ENTERPRISE_SCOPES = ROLE_SCOPES["enterprise_admin"]
#: What an alliance partner's principals may hold (IoT vendors, logistics and warehouse operators): reads
#: within the enterprises' consent, their own webhooks; and, for an IoT vendor, device provisioning
#: (`PARTNER_PROVISIONING`), also within the enterprise's consent.
PARTNER_SCOPES = frozenset({"consents:read", "consents:check", "webhooks:manage", "telemetry:read",
                            "devices:provision"})
PARTNER_PROVISIONING = "iot_vendor"


@dataclass(frozen=True)
class Principal:
    subject: str                      # "client:<client_id>" or "user:<username>"
    tenant_id: int | None = None
    tenant_code: str | None = None
    enterprise_id: int | None = None
    platform: bool = False            # the operator: sees every tenant
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def kind(self) -> str:
        return self.subject.split(":", 1)[0]

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, *scopes: str, roles: tuple[str, ...] = ()) -> None:
        missing = [s for s in scopes if s not in self.scopes]
        if missing:
            raise Forbidden(f"this action needs the scope {' '.join(missing)}")
        if roles and not set(roles) & self.roles:
            raise Forbidden(f"this action needs one of the roles {', '.join(roles)}")

    # --- tenant isolation -----------------------------------------------------------------------

    def can_see(self, tenant_id: int | None, enterprise_id: int | None) -> bool:
        """Whether a record owned by this tenant and/or enterprise is visible to the principal."""
        if self.platform:
            return True
        if self.enterprise_id is not None:
            return enterprise_id == self.enterprise_id
        return self.tenant_id is not None and tenant_id == self.tenant_id

    def ensure_visible(self, tenant_id: int | None, enterprise_id: int | None, what: str) -> None:
        """Refuse a record of someone else as *not found*: a 403 would confirm that it exists."""
        if not self.can_see(tenant_id, enterprise_id):
            raise NotFound(f"no {what}")

    def owner(self) -> tuple[int | None, int | None]:
        """The (tenant_id, enterprise_id) that records created by this principal belong to."""
        return (None, self.enterprise_id) if self.enterprise_id is not None else (self.tenant_id, None)

    # --- token claims ----------------------------------------------------------------------------

    def claims(self) -> dict[str, Any]:
        return {"sub": self.subject, "tid": self.tenant_id, "ten": self.tenant_code, "eid": self.enterprise_id,
                "plt": self.platform, "roles": sorted(self.roles), "scope": " ".join(sorted(self.scopes))}

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Principal:
        return cls(subject=str(claims["sub"]), tenant_id=claims.get("tid"), tenant_code=claims.get("ten"),
                   enterprise_id=claims.get("eid"), platform=bool(claims.get("plt")),
                   roles=frozenset(claims.get("roles") or ()), scopes=frozenset(str(claims.get("scope", "")).split()))


def parse_scopes(text: str | list[str] | tuple[str, ...] | None) -> frozenset[str]:
    """Space- or comma-separated scopes; every one must be known."""
    items = text.replace(",", " ").split() if isinstance(text, str) else list(text or ())
    unknown = sorted(set(items) - set(SCOPES))
    if unknown:
        raise ValidationError(f"unknown scope {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    return frozenset(items)


def check_roles(roles: list[str] | tuple[str, ...]) -> frozenset[str]:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise ValidationError(f"roles must be among {', '.join(ROLES)} (got {', '.join(roles) or 'none'})")
    return frozenset(roles)


def allowed_scopes(platform: bool, enterprise: bool, roles: frozenset[str] = frozenset(),
                   partner_kind: str | None = None) -> frozenset[str]:
    """What a principal of this kind may ever hold: its roles' scopes for a user (all for a client),
    cut to the enterprise scopes for an enterprise, to the partner scopes for an alliance partner
    (`partner_kind`: device provisioning for an IoT vendor only) and without the operator's and the
    enterprises' own scopes for a lender."""
    base = frozenset().union(*(ROLE_SCOPES[r] for r in roles)) if roles else frozenset(SCOPES)
    if enterprise:
        return base & ENTERPRISE_SCOPES
    if partner_kind is not None:
        partner = base & PARTNER_SCOPES
        return partner if partner_kind == PARTNER_PROVISIONING else partner - {"devices:provision"}
    return base if platform else base - PLATFORM_ONLY - ENTERPRISE_ONLY


def grant(requested: frozenset[str] | None, held: frozenset[str]) -> frozenset[str]:
    """OAuth2 scope down-scoping: a token carries the requested scopes, all of which must be held."""
    if not requested:
        return held
    extra = sorted(requested - held)
    if extra:
        raise Forbidden(f"scope not granted to this client: {' '.join(extra)}")
    return requested
