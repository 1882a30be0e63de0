"""Python client of the iotfin API (httpx), typed against its OpenAPI document.

    from iotfin.client import IotfinClient
    api = IotfinClient("https://iotfin.example", client_id="ic_…", client_secret="ics_…")
    api.me()["scopes"]
    c = api.submit_complaint(category="pricing", subject="…", description="…", idempotency_key="c-1")

Tokens come from `POST /oauth/token` (client credentials, or a console user's password) and are
renewed shortly before they expire, or once after a 401. Errors are raised as `ApiError` carrying
the problem+json body. Every operation the client calls is listed in `OPERATIONS`; the test suite
checks each one against the server's `/openapi.json`, so client and spec cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal, TypedDict

import httpx

# (method, path template) of every call below — checked against the OpenAPI document in tests.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("post", "/oauth/token"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/summary"),
    ("post", "/api/v1/financing/liens"),
    ("get", "/api/v1/financing/assets/{fingerprint}"),
    ("post", "/api/v1/complaints"),
    ("get", "/api/v1/complaints"),
    ("get", "/api/v1/complaints/{complaint_id}"),
    ("post", "/api/v1/complaints/{complaint_id}/acknowledge"),
    ("post", "/api/v1/complaints/{complaint_id}/assign"),
    ("post", "/api/v1/complaints/{complaint_id}/escalate"),
    ("post", "/api/v1/complaints/{complaint_id}/resolve"),
    ("post", "/api/v1/hardship-requests"),
    ("get", "/api/v1/hardship-requests/{request_id}"),
    ("post", "/api/v1/hardship-requests/{request_id}/review"),
    ("post", "/api/v1/hardship-requests/{request_id}/decision"),
    ("post", "/api/v1/webhooks/subscriptions"),
    ("get", "/api/v1/webhooks/subscriptions"),
    ("delete", "/api/v1/webhooks/subscriptions/{subscription_id}"),
    ("post", "/api/v1/webhooks/subscriptions/{subscription_id}/ping"),
    ("get", "/api/v1/webhooks/deliveries"),
    ("get", "/api/v1/webhooks/deliveries/{delivery_id}"),
    ("get", "/api/v1/monitor/alerts"),
    ("get", "/api/v1/review-queue"),
    ("get", "/api/v1/consents/access-log"),
    ("post", "/api/v1/tenants"),
    ("post", "/api/v1/tenants/{code}/clients"),
    ("post", "/api/v1/tenants/{code}/users"),
    ("post", "/api/v1/enterprises"),
    ("get", "/api/v1/enterprises"),
    ("post", "/api/v1/enterprises/{enterprise_id}/users"),
    ("post", "/api/v1/enterprises/{enterprise_id}/sites"),
    ("post", "/api/v1/enterprises/{enterprise_id}/devices"),
    ("get", "/api/v1/devices"),
    ("get", "/api/v1/enterprises/{enterprise_id}/telemetry"),
    ("get", "/api/v1/credit-applications"),
    ("get", "/api/v1/offers"),
    ("get", "/api/v1/offers/{offer_id}"),
    ("post", "/api/v1/offers/{offer_id}/acceptance"),
    ("post", "/api/v1/lending/loans"),
    ("get", "/api/v1/lending/loans"),
    ("get", "/api/v1/lending/credit-lines"),
    ("post", "/api/v1/lending/credit-lines"),
    ("get", "/api/v1/lending/loans/{loan_id}/repayments"),
)


class Texts(TypedDict):
    zh: str
    en: str


class Me(TypedDict):
    subject: str
    tenant: str | None
    tenant_id: int | None
    enterprise_id: int | None
    platform: bool
    roles: list[str]
    scopes: list[str]


class Complaint(TypedDict, total=False):
    id: int
    tenant_id: int | None
    enterprise_id: int | None
    category: str
    category_text: Texts
    subject: str
    description: str
    status: Literal["submitted", "acknowledged", "assigned", "escalated", "resolved"]
    status_text: Texts
    submitted_at: str
    acknowledge_by: str
    resolve_by: str
    acknowledged_at: str | None
    assignee: str | None
    resolved_at: str | None
    resolution_code: str | None
    resolution_text: Texts | None
    overdue: list[str]
    contact_name: str | None
    contact_phone: str | None


class HardshipRequest(TypedDict, total=False):
    id: int
    tenant_id: int
    enterprise_id: int
    loan_ref: str
    reason_code: str
    relief: str
    status: Literal["submitted", "under_review", "approved", "declined"]
    status_text: Texts
    decision_reason: str | None
    relief_status: Literal["not_applicable", "awaiting_lending", "applied"]
    contact_phone: str | None


class Subscription(TypedDict, total=False):
    id: int
    url: str
    event_types: list[str]
    description: str
    active: bool
    secret: str  # only in the response to subscribe


class Delivery(TypedDict, total=False):
    id: int
    subscription_id: int
    event_id: str
    event_type: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: str | None
    attempt_log: list[dict[str, Any]]


class Alert(TypedDict, total=False):
    id: int
    enterprise_id: int
    incident_type: str
    tier: str
    status: Literal["open", "acknowledged", "resolved"]
    reason_zh: str
    reason_en: str
    devices: list[int]
    opened_at: str
    raised_at: str | None
    cleared_at: str | None
    assigned_to: str | None


class QueuedApplication(TypedDict, total=False):
    id: int
    enterprise_id: int
    name: str
    name_en: str
    product: str
    amount: str
    tenor_months: int
    status: Literal["referred", "awaiting_second_approval"]
    received_at: str


class AccessRecord(TypedDict, total=False):
    id: int
    enterprise_id: int
    recipient: str
    scope: str
    purpose: str
    at: str
    allowed: bool
    reason: str
    reason_zh: str
    reason_en: str
    grant_id: int | None


class ApiError(Exception):
    """A problem+json error from the API."""

    def __init__(self, status: int, problem: dict[str, Any]):
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


class IotfinClient:
    def __init__(self, base_url: str = "", *, client_id: str | None = None, client_secret: str | None = None,
                 username: str | None = None, password: str | None = None, scope: str | None = None,
                 timeout: float = 10.0, http: httpx.Client | None = None):
        if not ((client_id and client_secret) or (username and password)):
            raise ValueError("give client_id and client_secret, or username and password")
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._owns_http = http is None
        self._form = ({"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
                      if client_id else {"grant_type": "password", "username": username, "password": password})
        if scope:
            self._form["scope"] = scope
        self._token: str | None = None
        self._expires = 0.0

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> IotfinClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- tokens -------------------------------------------------------------------------------

    def token(self, refresh: bool = False) -> str:
        if refresh or self._token is None or time.monotonic() > self._expires - 30:
            response = self._http.post("/oauth/token", data=self._form)
            body = _json(response)
            self._token = body["access_token"]
            self._expires = time.monotonic() + float(body["expires_in"])
        assert self._token is not None
        return self._token

    def _call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
              idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        for attempt in (0, 1):
            headers["Authorization"] = f"Bearer {self.token(refresh=attempt == 1)}"
            response = self._http.request(method, path, json=json, params=params, headers=headers)
            if response.status_code != 401:
                break
        return None if response.status_code == 204 else _json(response)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        params = {k: v for k, v in params.items() if v is not None}
        while True:
            page = self._call("GET", path, params=params)
            yield from page["items"]
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    # --- platform -----------------------------------------------------------------------------

    def me(self) -> Me:
        return self._call("GET", "/api/v1/me")

    def summary(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/summary")

    # --- financing registry -------------------------------------------------------------------

    def place_lien(self, asset: dict[str, Any], tenant: str, financing_ref: str, amount: str, *,
                   idempotency_key: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {"asset": asset, "tenant": tenant, "financing_ref": financing_ref, "amount": amount} | extra
        return self._call("POST", "/api/v1/financing/liens", json=body, idempotency_key=idempotency_key)

    def asset_status(self, fingerprint: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/financing/assets/{fingerprint}")

    # --- complaints ---------------------------------------------------------------------------

    def submit_complaint(self, *, category: str, subject: str, description: str, tenant: str | None = None,
                         contact_name: str | None = None, contact_phone: str | None = None,
                         enterprise_id: int | None = None, idempotency_key: str | None = None) -> Complaint:
        body = {"category": category, "subject": subject, "description": description, "tenant": tenant,
                "contact_name": contact_name, "contact_phone": contact_phone, "enterprise_id": enterprise_id}
        return self._call("POST", "/api/v1/complaints", json=body, idempotency_key=idempotency_key)

    def complaints(self, *, status: str | None = None, overdue: bool = False, limit: int = 50) -> Iterator[Complaint]:
        return self._pages("/api/v1/complaints", {"status": status, "overdue": overdue, "limit": limit})  # type: ignore[return-value]

    def complaint(self, complaint_id: int) -> Complaint:
        return self._call("GET", f"/api/v1/complaints/{complaint_id}")

    def acknowledge_complaint(self, complaint_id: int) -> Complaint:
        return self._call("POST", f"/api/v1/complaints/{complaint_id}/acknowledge")

    def assign_complaint(self, complaint_id: int, assignee: str) -> Complaint:
        return self._call("POST", f"/api/v1/complaints/{complaint_id}/assign", json={"assignee": assignee})

    def escalate_complaint(self, complaint_id: int, reason: str) -> Complaint:
        return self._call("POST", f"/api/v1/complaints/{complaint_id}/escalate", json={"reason": reason})

    def resolve_complaint(self, complaint_id: int, resolution: str, note: str) -> Complaint:
        return self._call("POST", f"/api/v1/complaints/{complaint_id}/resolve", json={"resolution": resolution, "note": note})

    # --- hardship requests --------------------------------------------------------------------

    def submit_hardship(self, *, tenant: str, loan_ref: str, reason_code: str, relief: str, description: str,
                        contact_phone: str | None = None, idempotency_key: str | None = None) -> HardshipRequest:
        body = {"tenant": tenant, "loan_ref": loan_ref, "reason_code": reason_code, "relief": relief,
                "description": description, "contact_phone": contact_phone}
        return self._call("POST", "/api/v1/hardship-requests", json=body, idempotency_key=idempotency_key)

    def hardship(self, request_id: int) -> HardshipRequest:
        return self._call("GET", f"/api/v1/hardship-requests/{request_id}")

    def review_hardship(self, request_id: int, note: str) -> HardshipRequest:
        return self._call("POST", f"/api/v1/hardship-requests/{request_id}/review", json={"reason": note})

    def decide_hardship(self, request_id: int, approve: bool, reason: str) -> HardshipRequest:
        return self._call("POST", f"/api/v1/hardship-requests/{request_id}/decision", json={"approve": approve, "reason": reason})

    # --- webhooks -----------------------------------------------------------------------------

    def subscribe(self, url: str, event_types: list[str], description: str = "") -> Subscription:
        return self._call("POST", "/api/v1/webhooks/subscriptions",
                          json={"url": url, "event_types": event_types, "description": description})

    def subscriptions(self) -> Iterator[Subscription]:
        return self._pages("/api/v1/webhooks/subscriptions", {})  # type: ignore[return-value]

    def unsubscribe(self, subscription_id: int) -> None:
        self._call("DELETE", f"/api/v1/webhooks/subscriptions/{subscription_id}")

    def ping(self, subscription_id: int) -> str:
        return self._call("POST", f"/api/v1/webhooks/subscriptions/{subscription_id}/ping")["event_id"]

    def deliveries(self, *, status: str | None = None, event_type: str | None = None) -> Iterator[Delivery]:
        return self._pages("/api/v1/webhooks/deliveries", {"status": status, "event_type": event_type})  # type: ignore[return-value]

    def delivery(self, delivery_id: int) -> Delivery:
        return self._call("GET", f"/api/v1/webhooks/deliveries/{delivery_id}")

    # --- monitoring, decisioning, consent: the lists ----------------------------------------------

    def alerts(self, *, status: str | None = None, enterprise_id: int | None = None,
               limit: int = 50) -> Iterator[Alert]:
        """Newest first. A lender's pages leave out the alerts of enterprises that refuse its consent
        check, so a page may be short; the iterator follows the cursor to the end."""
        return self._pages("/api/v1/monitor/alerts",  # type: ignore[return-value]
                           {"status": status, "enterprise_id": enterprise_id, "limit": limit})

    def review_queue(self, *, limit: int = 50) -> Iterator[QueuedApplication]:
        return self._pages("/api/v1/review-queue", {"limit": limit})  # type: ignore[return-value]

    def access_log(self, enterprise_id: int, *, recipient: str | None = None, limit: int = 50) -> Iterator[AccessRecord]:
        """Every read of the enterprise's data by others, oldest first (a lender: its own reads)."""
        return self._pages("/api/v1/consents/access-log",  # type: ignore[return-value]
                           {"enterprise_id": enterprise_id, "recipient": recipient, "limit": limit})

    # --- offers and booking (docs/lending.md#offers-and-booking) -----------------------------------

    def applications(self, *, status: str | None = None, enterprise_id: int | None = None,
                     limit: int = 50) -> Iterator[dict[str, Any]]:
        """Credit applications, newest first."""
        return self._pages("/api/v1/credit-applications",
                           {"status": status, "enterprise_id": enterprise_id, "limit": limit})

    def offers(self, *, status: str | None = None, enterprise_id: int | None = None,
               limit: int = 50) -> Iterator[dict[str, Any]]:
        """Loan offers, newest first (status: open, accepted, booked, expired)."""
        return self._pages("/api/v1/offers", {"status": status, "enterprise_id": enterprise_id, "limit": limit})

    def offer(self, offer_id: int) -> dict[str, Any]:
        """An offer with its key-facts statement (zh, en) and the statement's digest."""
        return self._call("GET", f"/api/v1/offers/{offer_id}")

    def accept_offer(self, offer_id: int, key_facts_digest: str | None = None) -> dict[str, Any]:
        """Accept an offer (the enterprise), naming the digest of the key facts read (default: the
        digest of the statement fetched now)."""
        digest = key_facts_digest or self.offer(offer_id)["key_facts"]["digest"]
        return self._call("POST", f"/api/v1/offers/{offer_id}/acceptance", json={"key_facts_digest": digest})

    def book_offer(self, offer_id: int, *, start: str | None = None,
                   contract_ref: str | None = None) -> dict[str, Any]:
        """Book an accepted offer exactly as offered (its lender)."""
        body = {"offer_id": offer_id} | ({"start": start} if start else {}) | (
            {"contract_ref": contract_ref} if contract_ref else {})
        return self._call("POST", "/api/v1/lending/loans", json=body)

    def loans(self, *, status: str | None = None, enterprise_id: int | None = None,
              limit: int = 50) -> Iterator[dict[str, Any]]:
        return self._pages("/api/v1/lending/loans", {"status": status, "enterprise_id": enterprise_id, "limit": limit})

    def credit_lines(self, *, status: str | None = None, enterprise_id: int | None = None,
                     limit: int = 50) -> Iterator[dict[str, Any]]:
        return self._pages("/api/v1/lending/credit-lines",
                           {"status": status, "enterprise_id": enterprise_id, "limit": limit})

    def open_credit_line(self, enterprise_id: int, limit: str, annual_rate: str, expires_on: str,
                         product: str = "iot-line") -> dict[str, Any]:
        """Open a credit line owned by the caller's tenant (money and rate as decimal strings)."""
        return self._call("POST", "/api/v1/lending/credit-lines", json={
            "enterprise_id": enterprise_id, "limit": limit, "annual_rate": annual_rate, "expires_on": expires_on,
            "product": product})

    def repayments(self, loan_id: int, *, limit: int = 50) -> Iterator[dict[str, Any]]:
        """A loan's repayments, oldest first, with how each was applied."""
        return self._pages(f"/api/v1/lending/loans/{loan_id}/repayments", {"limit": limit})

    # --- onboarding (docs/onboarding.md) ----------------------------------------------------------

    def create_tenant(self, code: str, name: str, name_en: str, kind: str = "bank", *,
                      partner_kind: str | None = None, **contact: str | None) -> dict[str, Any]:
        """A lender, an alliance partner (partner_kind iot_vendor, logistics, warehouse) or an operator
        tenant; `contact` takes contact_name, contact_phone, contact_email (the operator)."""
        return self._call("POST", "/api/v1/tenants", json={"code": code, "name": name, "name_en": name_en,
                                                           "kind": kind, "partner_kind": partner_kind} | contact)

    def create_tenant_client(self, code: str, name: str, scopes: list[str]) -> dict[str, Any]:
        """A partner system of the tenant; the secret in the answer is shown only this once."""
        return self._call("POST", f"/api/v1/tenants/{code}/clients", json={"name": name, "scopes": scopes})

    def create_tenant_user(self, code: str, username: str, password: str, roles: list[str],
                           display_name: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/tenants/{code}/users", json={
            "username": username, "password": password, "roles": roles, "display_name": display_name})

    def create_enterprise(self, **fields: Any) -> dict[str, Any]:
        """Onboard an enterprise: uscc, name, name_en, sector, subsector, region_code, founded_on,
        registered_capital (decimal string), legal_rep_name, legal_rep_id_number, legal_rep_phone,
        tax_grade; the operator may name the `lender` whose customer it is."""
        return self._call("POST", "/api/v1/enterprises", json=fields)

    def enterprises(self, *, sector: str | None = None, region_code: str | None = None, q: str | None = None,
                    limit: int = 50) -> Iterator[dict[str, Any]]:
        """The enterprises the caller sees (a lender: its customers), oldest first."""
        return self._pages("/api/v1/enterprises", {"sector": sector, "region_code": region_code, "q": q,
                                                   "limit": limit})

    def create_enterprise_user(self, enterprise_id: int, username: str, password: str,
                               display_name: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/enterprises/{enterprise_id}/users", json={
            "username": username, "password": password, "display_name": display_name})

    def create_site(self, enterprise_id: int, name: str, kind: str, address: str, lat: float, lon: float,
                    geofence_radius_m: float | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/enterprises/{enterprise_id}/sites", json={
            "name": name, "kind": kind, "address": address, "lat": lat, "lon": lon,
            "geofence_radius_m": geofence_radius_m})

    def provision_device(self, enterprise_id: int, site_id: int, profile: str,
                         name: str | None = None) -> dict[str, Any]:
        """Register a device at a site; the answer's access_token is shown only this once."""
        return self._call("POST", f"/api/v1/enterprises/{enterprise_id}/devices", json={
            "name": name, "profile": profile, "site_id": site_id})

    def devices(self, *, enterprise_id: int | None = None, site_id: int | None = None, status: str | None = None,
                profile: str | None = None, limit: int = 50) -> Iterator[dict[str, Any]]:
        return self._pages("/api/v1/devices", {"enterprise_id": enterprise_id, "site_id": site_id, "status": status,
                                               "profile": profile, "limit": limit})

    def telemetry(self, enterprise_id: int, device_id: int, key: str | None = None, *, start: str | int | None = None,
                  end: str | int | None = None, bucket: str | None = None,
                  purpose: str | None = None) -> dict[str, Any]:
        """One device's series: raw points [{ts, value}], or with `bucket` (1m, 15m, 1h, 1d) [{ts, avg,
        min, max, count}]; times ISO 8601 or epoch ms."""
        params = {"device_id": device_id, "key": key, "start": start, "end": end, "bucket": bucket,
                  "purpose": purpose}
        return self._call("GET", f"/api/v1/enterprises/{enterprise_id}/telemetry",
                          params={k: v for k, v in params.items() if v is not None})


def _json(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"title": "not JSON", "detail": response.text[:200]}
    if response.status_code >= 400:
        raise ApiError(response.status_code, body if isinstance(body, dict) else {"detail": str(body)})
    return body
