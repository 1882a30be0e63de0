"""Every endpoint of the app × every kind of principal × tenant.

The endpoint list is derived from the app's own OpenAPI document, so a new endpoint that is neither
in MATRIX nor deliberately PUBLIC fails `test_every_endpoint_is_in_the_matrix`. Each cell is the
status that principal gets, spelled out by hand. Reads use records of bank A / enterprise 1 (so
they show tenant isolation and the consent check); writes send an empty body, so a 422 means "got
past authentication and authorisation" and nothing changes (tenant isolation of writes is tested
in `test_writes_on_anothers_records_are_not_found`). Statuses are in the order of PRINCIPALS.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import insert

from iotfin.monitor.tables import MonitorAlert
from tests.decision.conftest import assessment
from tests.openapi_world import World

#: What the decision service's `assess` port answers per enterprise (the API refuses a body's assessment).
ASSESSED: dict[int, Any] = {}

PRINCIPALS = ("bank_a", "bank_b", "ent_1", "ent_2", "ops", "a_officer", "a_approver", "a_auditor", "admin", "e1_admin")

#: Endpoints without a bearer token, and why.
PUBLIC = {
    ("GET", "/healthz"): "liveness",
    ("POST", "/oauth/token"): "issues the tokens",
    ("GET", "/api/v1/summary"): "platform-wide counts only, no enterprise's data",
    ("GET", "/api/v1/ledger/checkpoint"): "the transparency log's signed checkpoint is public by design",
    ("GET", "/api/v1/ledger/key"): "the log's public key",
    ("POST", "/add-checkpoint"): "witness protocol: authenticated by the checkpoint signatures",
    ("POST", "/api/v1/provision"): "device provisioning: authenticated by the provision key and secret",
    ("POST", "/api/v1/{token}/telemetry"): "device transport: authenticated by the device token",
    ("POST", "/api/v1/{token}/telemetry/bulk"): "device transport",
    ("POST", "/api/v1/{token}/claim"): "device transport",
    ("POST", "/api/v1/{token}/attributes"): "device transport",
    ("GET", "/api/v1/{token}/attributes"): "device transport",
}

LENDER_WRITE = "422 422 403 403 422 403 422 403 422 403"     # lending:write
SERVICER = "422 422 403 403 422 422 403 403 422 403"         # lending:service, alerts:handle, monitor:configure
OPERATOR = "403 403 403 403 422 403 403 403 422 403"         # operator-only scopes, empty body
OPERATOR_READ = "403 403 403 403 200 403 403 403 200 403"
ENTERPRISE_MANAGE = "403 403 422 422 422 403 403 403 422 422"  # consents:manage
ALL_OK = "200 200 200 200 200 200 200 200 200 200"
ONBOARDER = "403 403 403 403 422 422 403 403 422 403"           # onboarding:write, empty body
ENTERPRISE_READ = "403 403 403 403 200 200 200 200 200 200"     # enterprises:read (console roles here)
SCHEDULE = {"principal": "10000.00", "annual_rate": "0.05", "term": 3, "start": "2026-01-01"}

# (method, path template, body): statuses. Path fields: {loan}, {app}, {alert}, {grant}, {c_a}, {c_ack}, {h_a},
# {fp}, {lien}, {sub}, {delivery}.
MATRIX: dict[tuple[str, str], tuple[Any, str]] = {
    # --- identity
    ("GET", "/api/v1/me"): (None, ALL_OK),
    # --- lending
    ("POST", "/api/v1/lending/schedules"): (SCHEDULE, ALL_OK),
    ("POST", "/api/v1/lending/key-facts"): (SCHEDULE, ALL_OK),
    ("POST", "/api/v1/lending/loans"): ({}, LENDER_WRITE),
    ("GET", "/api/v1/lending/loans/{loan}"): (None, "200 404 200 404 200 200 200 200 200 200"),
    ("GET", "/api/v1/lending/loans"): (None, ALL_OK),
    ("GET", "/api/v1/lending/loans/{loan}/repayments"): (None, "200 404 200 404 200 200 200 200 200 200"),
    ("GET", "/api/v1/lending/credit-lines"): (None, ALL_OK),
    ("GET", "/api/v1/lending/credit-lines/{line}"): (None, "200 404 200 404 200 200 200 200 200 200"),
    ("POST", "/api/v1/lending/credit-lines"): ({}, LENDER_WRITE),
    # --- offers (bank A's offer to enterprise 1; only the enterprise accepts)
    ("GET", "/api/v1/offers"): (None, ALL_OK),
    ("GET", "/api/v1/offers/{offer}"): (None, "200 404 200 404 200 200 200 200 200 200"),
    ("POST", "/api/v1/offers/{offer}/acceptance"): ({}, ENTERPRISE_MANAGE),
    ("POST", "/api/v1/lending/loans/{loan}/repayments"): ({}, LENDER_WRITE),
    ("POST", "/api/v1/lending/loans/{loan}/acceleration"): ({}, SERVICER),
    ("POST", "/api/v1/lending/loans/{loan}/margin-calls"): ({}, SERVICER),
    ("POST", "/api/v1/lending/loans/{loan}/write-off"): ({}, SERVICER),
    ("POST", "/api/v1/lending/loans/{loan}/recoveries"): ({}, SERVICER),
    ("POST", "/api/v1/lending/loans/{loan}/restructurings"): ({}, SERVICER),
    ("POST", "/api/v1/lending/credit-lines/{loan}/freeze"): ({}, SERVICER),
    ("POST", "/api/v1/lending/credit-lines/{loan}/unfreeze"): ({}, SERVICER),
    ("POST", "/api/v1/lending/close"): ({}, OPERATOR),
    ("GET", "/api/v1/lending/trial-balance"): (None, OPERATOR_READ),
    ("GET", "/api/v1/lending/portfolio"): (None, OPERATOR_READ),
    ("GET", "/api/v1/lending/close"): (None, ALL_OK),  # lending:books or lending:read (no record in it)
    # --- credit decisioning
    ("POST", "/api/v1/credit-applications"): ({}, "422 422 403 403 422 422 403 403 422 403"),
    ("GET", "/api/v1/credit-applications/{app}"): (None, "200 404 200 404 200 200 200 200 200 200"),
    ("GET", "/api/v1/credit-applications/{app}/decisions/{decision_id}/evidence"):
        (None, "200 404 200 404 200 200 200 200 200 200"),  # whoever sees the application proves its decisions
    ("GET", "/api/v1/credit-applications"): (None, ALL_OK),
    ("POST", "/api/v1/credit-applications/{app}/reviews"): ({}, "422 422 403 403 422 403 422 403 422 403"),
    ("GET", "/api/v1/review-queue"): (None, ALL_OK),
    ("GET", "/api/v1/decision-strategies/{name}"): (None, OPERATOR_READ),
    ("GET", "/api/v1/decision-strategies/{name}/versions/{version}"): (None, OPERATOR_READ),
    ("POST", "/api/v1/decision-strategies/{name}/versions"): ({}, OPERATOR),
    ("POST", "/api/v1/decision-strategies/{name}/replay"): ("[]", OPERATOR),
    ("POST", "/api/v1/decision-strategies/{name}/deployments"): ({}, OPERATOR),
    ("POST", "/api/v1/decision-strategies/{name}/rollback"): ({}, OPERATOR),
    ("GET", "/api/v1/risk/scorecards"): (None, OPERATOR_READ),
    ("GET", "/api/v1/risk/models"): (None, OPERATOR_READ),
    ("GET", "/api/v1/risk/scorecards/versions/{version}"): (None, OPERATOR_READ),
    ("POST", "/api/v1/risk/scorecards/versions"): ({}, OPERATOR),
    ("POST", "/api/v1/risk/scorecards/versions/{version}/activation"): ({}, OPERATOR),
    # --- monitor
    ("GET", "/api/v1/monitor/alerts"): (None, ALL_OK),
    ("GET", "/api/v1/monitor/alerts/{alert}"): (None, "200 404 200 404 200 200 200 200 200 200"),
    ("POST", "/api/v1/monitor/alerts/{alert}/acknowledge"): ({}, SERVICER),
    ("POST", "/api/v1/monitor/alerts/{alert}/assign"): ({}, SERVICER),
    ("POST", "/api/v1/monitor/alerts/{alert}/resolve"): ({}, SERVICER),
    ("POST", "/api/v1/monitor/rules/check"): ("", SERVICER),
    ("POST", "/api/v1/monitor/geofences/check"): ({}, SERVICER),
    ("POST", "/api/v1/monitor/prices"): ("", OPERATOR),
    # --- consent
    ("GET", "/api/v1/consents/vocabulary"): (None, ALL_OK),
    ("POST", "/api/v1/consents"): ({}, ENTERPRISE_MANAGE),
    ("GET", "/api/v1/consents?enterprise_id=1"): (None, "200 200 200 403 200 200 403 200 200 200"),
    ("GET", "/api/v1/consents/access-log?enterprise_id=1"): (None, "200 200 200 403 200 200 403 200 200 200"),
    ("POST", "/api/v1/consents/check"): ("check", "200 403 403 403 200 200 403 403 200 403"),
    ("GET", "/api/v1/consents/{grant}"): (None, "200 404 200 404 200 200 403 200 200 200"),
    ("POST", "/api/v1/consents/{grant}/withdraw"): ({}, ENTERPRISE_MANAGE),
    ("POST", "/api/v1/consents/{grant}/reconfirm"): ({}, ENTERPRISE_MANAGE),
    # --- devices (device 999 does not exist: the operator and enterprises get past the gate to a 404)
    ("GET", "/api/v1/devices/{device}/status"): (None, "403 403 404 404 404 403 403 403 404 404"),
    ("GET", "/api/v1/fleet"): (None, OPERATOR_READ),  # enterprises:read and the operator only
    # the operator's event query of an unknown device is an empty list
    ("GET", "/api/v1/devices/{device}/events"): (None, "403 403 404 404 200 403 403 403 200 404"),
    ("POST", "/api/v1/enterprises/{enterprise_id}/devices/{device_name}/claim"):
        ({"secretKey": "s"}, "403 403 404 403 404 403 403 403 404 404"),
    # --- onboarding (docs/onboarding.md): enterprise 1 is bank A's customer (its loan and application)
    ("POST", "/api/v1/tenants"): ({}, OPERATOR),
    ("GET", "/api/v1/tenants"): (None, OPERATOR_READ),
    ("GET", "/api/v1/tenants/{code}"): (None, OPERATOR_READ),
    ("POST", "/api/v1/tenants/{code}/clients"): ({}, OPERATOR),
    ("POST", "/api/v1/tenants/{code}/users"): ({}, OPERATOR),
    ("GET", "/api/v1/tenants/{code}/users"): (None, OPERATOR_READ),
    ("GET", "/api/v1/tenants/{code}/clients"): (None, OPERATOR_READ),
    ("POST", "/api/v1/enterprises"): ({}, ONBOARDER),
    ("GET", "/api/v1/enterprises"): (None, ENTERPRISE_READ),
    ("GET", "/api/v1/enterprises/{enterprise_id}"): (None, ENTERPRISE_READ),
    ("POST", "/api/v1/enterprises/{enterprise_id}/users"): ({}, ONBOARDER),
    ("POST", "/api/v1/enterprises/{enterprise_id}/sites"): ({}, ONBOARDER),
    ("GET", "/api/v1/enterprises/{enterprise_id}/sites"): (None, ENTERPRISE_READ),
    # enterprises:read, then (a lender) the consent to trade_documents for credit_assessment: bank A has none here
    ("GET", "/api/v1/enterprises/{enterprise_id}/trade-documents"): (None, "403 403 403 403 200 403 403 403 200 200"),
    ("POST", "/api/v1/enterprises/{enterprise_id}/devices"): ({}, "403 403 403 403 422 403 403 403 422 422"),
    # devices:read (the operator, enterprises) or telemetry:read (a lender: within consent)
    ("GET", "/api/v1/devices"): (None, "403 403 200 200 200 200 403 403 200 200"),
    # device 999 does not exist: those past the gate get a 404 before any consent check
    ("GET", "/api/v1/enterprises/{enterprise_id}/telemetry?device_id=999"):
        (None, "403 403 403 403 404 404 403 403 404 404"),
    # --- financing registry
    ("POST", "/api/v1/financing/fingerprints"): ({}, "422 422 403 403 422 422 422 422 422 403"),
    ("POST", "/api/v1/financing/liens"): ({}, "422 422 403 403 422 422 403 403 422 403"),
    ("POST", "/api/v1/financing/liens/{lien}/release"): ({}, "422 422 403 403 422 422 403 403 422 403"),
    ("GET", "/api/v1/financing/assets/{fp}"): (None, "200 200 403 403 200 200 200 200 200 403"),
    ("GET", "/api/v1/financing/assets/{fp}/claims"): (None, "200 200 403 403 200 200 200 200 200 403"),
    # financing:read, and enterprise 1 visible to the caller (bank B: not its customer)
    ("GET", "/api/v1/financing/liens?enterprise_id=1"): (None, "200 404 403 403 200 200 200 200 200 403"),
    # --- digital debt vouchers (vouchers:read/write/finance; unknown voucher, part and offer ids: 404)
    ("POST", "/api/v1/vouchers"): ({}, "403 403 403 403 422 403 403 403 422 422"),
    ("GET", "/api/v1/vouchers?issuer_id=1"): (None, "403 403 403 403 200 403 403 403 200 200"),
    ("GET", "/api/v1/vouchers/at-risk"): (None, "403 403 403 403 200 200 403 403 200 200"),
    ("GET", "/api/v1/vouchers/{voucher}"): (None, "403 403 403 403 404 404 403 403 404 404"),
    ("GET", "/api/v1/vouchers/{voucher}/chain"): (None, "403 403 403 403 404 404 403 403 404 404"),
    ("GET", "/api/v1/vouchers/{voucher}/evidence"): (None, "403 403 403 403 404 404 403 403 404 404"),
    ("POST", "/api/v1/vouchers/{voucher}/payments"): ({}, "403 403 403 403 422 403 403 403 422 422"),
    ("POST", "/api/v1/vouchers/{voucher}/cancel"): (None, "403 403 403 403 403 403 403 403 403 404"),
    ("GET", "/api/v1/voucher-parts?holder_kind=enterprise&holder_id=1"): (None, "403 403 403 403 200 200 403 403 200 200"),
    ("GET", "/api/v1/voucher-parts/{part}"): (None, "403 403 403 403 404 404 403 403 404 404"),
    ("POST", "/api/v1/voucher-parts/{part}/split"): ({}, "403 403 403 403 422 403 403 403 422 422"),
    ("POST", "/api/v1/voucher-parts/{part}/transfer"): ({}, "403 403 403 403 422 403 403 403 422 422"),
    # no holder for the operator's principal (403); an enterprise finds no part 1 (404)
    ("POST", "/api/v1/voucher-parts/{part}/accept"): ({}, "403 403 403 403 403 403 403 403 403 404"),
    ("POST", "/api/v1/voucher-parts/{part}/reject"): (None, "403 403 403 403 403 403 403 403 403 404"),
    ("POST", "/api/v1/voucher-parts/{part}/offers"): ({}, "403 403 403 403 422 403 403 403 422 422"),
    ("GET", "/api/v1/voucher-offers"): (None, "403 403 403 403 200 200 403 403 200 403"),
    ("POST", "/api/v1/voucher-offers/{offer}/withdraw"): (None, "403 403 403 403 403 403 403 403 403 404"),
    ("POST", "/api/v1/voucher-offers/{offer}/decision"): ({}, "403 403 403 403 422 422 403 403 422 403"),
    ("GET", "/api/v1/ledger/evidence/{record_type}/{record_id}"):
        (None, "403 403 403 403 200 403 403 200 200 403"),
    ("GET", "/api/v1/ledger/status"): (None, "403 403 403 403 200 403 403 200 200 403"),    # ledger:evidence
    ("POST", "/api/v1/ledger/audit"): (None, "403 403 403 403 200 403 403 200 200 403"),
    # --- webhooks
    ("POST", "/api/v1/webhooks/subscriptions"): ({}, "422 422 422 422 422 422 403 403 422 422"),
    ("GET", "/api/v1/webhooks/subscriptions"): (None, "200 200 200 200 200 200 403 403 200 200"),
    ("DELETE", "/api/v1/webhooks/subscriptions/{sub}"): (None, "404 404 404 404 404 404 403 403 404 404"),
    ("POST", "/api/v1/webhooks/subscriptions/{sub}/ping"): (None, "404 404 404 404 404 404 403 403 404 404"),
    ("GET", "/api/v1/webhooks/deliveries"): (None, "200 200 200 200 200 200 403 403 200 200"),
    ("GET", "/api/v1/webhooks/deliveries/{delivery}"): (None, "404 404 404 404 404 404 403 403 404 404"),
    # --- customer protection
    ("POST", "/api/v1/complaints"): ({}, "403 403 422 422 422 403 403 403 422 422"),
    ("GET", "/api/v1/complaints"): (None, ALL_OK),
    ("GET", "/api/v1/complaints/{c_a}"): (None, "200 404 200 404 200 200 200 200 200 200"),
    # no body to leave out: bank A acknowledges first, after which the others with the scope find it done
    ("POST", "/api/v1/complaints/{c_ack}/acknowledge"): (None, "200 404 403 403 409 409 403 403 409 403"),
    ("POST", "/api/v1/complaints/{c_a}/assign"): ({}, "422 422 403 403 422 422 403 403 422 403"),
    ("POST", "/api/v1/complaints/{c_a}/escalate"): ({}, "422 422 403 403 422 422 403 403 422 403"),
    ("POST", "/api/v1/complaints/{c_a}/resolve"): ({}, "422 422 403 403 422 422 403 403 422 403"),
    # bank A has no consent to business_registration: refused (and logged); bank B has no relationship either
    ("GET", "/api/v1/enterprises/{enterprise_id}/legal-representative"):
        (None, "403 403 200 404 200 403 403 403 200 200"),
    # --- credit risk (risk:read is a console-role scope here): enterprise 1 has no stored rating in this world;
    # tests/risk/test_profile_api.py reads real ones
    ("GET", "/api/v1/enterprises/{enterprise_id}/credit-profile"): (None, "403 403 403 403 404 404 404 404 404 404"),
    ("GET", "/api/v1/enterprises/{enterprise_id}/credit-ratings"): (None, "403 403 403 403 404 404 404 404 404 404"),
    # industry indices (docs/industry.md): risk:read; no index computed in this world (404 / empty)
    ("GET", "/api/v1/industry/indices"): (None, "403 403 403 403 404 404 404 404 404 404"),
    ("GET", "/api/v1/industry/cells"): (None, "403 403 403 403 404 404 404 404 404 404"),
    ("GET", "/api/v1/industry/period?start=2026-01-01&end=2026-01-31"): (None, "403 403 403 403 404 404 404 404 404 404"),
    ("GET", "/api/v1/industry/resumption?shock=2026-01-20"): (None, "403 403 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/industry/relative/{enterprise_id}?on=2026-01-20"):  # one firm: its consent, or itself
        (None, "403 403 403 403 200 403 403 403 200 200"),
    ("POST", "/api/v1/hardship-requests"): ({}, "403 403 422 422 422 403 403 403 422 422"),
    ("GET", "/api/v1/hardship-requests"): (None, ALL_OK),
    ("GET", "/api/v1/hardship-requests/{h_a}"): (None, "200 404 200 404 200 200 200 200 200 200"),
    ("POST", "/api/v1/hardship-requests/{h_a}/review"): ({}, "422 422 422 422 422 422 422 422 422 422"),
    ("POST", "/api/v1/hardship-requests/{h_a}/decision"): ({}, "422 422 403 403 422 403 422 403 422 403"),
}


def _endpoints(world: World) -> set[tuple[str, str]]:
    spec = world.http.get("/openapi.json").json()
    found = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    hidden = {("GET", "/metrics"), ("GET", "/")}  # include_in_schema=False; /metrics is scraped on the ops network
    return found | hidden


def _template(key: tuple[str, str]) -> tuple[str, str]:
    """The OpenAPI path of a MATRIX key (placeholders renamed to the app's parameter names)."""
    method, path = key
    path = path.split("?")[0]
    renames = {"{loan}": "{loan_id}", "{app}": "{application_id}", "{alert}": "{alert_id}", "{grant}": "{grant_id}",
               "{c_a}": "{complaint_id}", "{c_ack}": "{complaint_id}", "{h_a}": "{request_id}", "{fp}": "{fingerprint}", "{lien}": "{lien_id}",
               "{sub}": "{subscription_id}", "{delivery}": "{delivery_id}", "{device}": "{device_id}",
               "{offer}": "{offer_id}", "{line}": "{line_id}", "{voucher}": "{voucher_id}", "{part}": "{part_id}"}
    for short, name in renames.items():
        path = path.replace(short, name)
    if "/credit-lines/" in path:
        path = path.replace("{loan_id}", "{line_id}")
    return method, path


@pytest.fixture(scope="module")
def objects(shared_world: World) -> dict[str, Any]:
    """Records of bank A / enterprise 1: a loan and an application bank A made (with enterprise 1's
    consent), an alert on enterprise 1, consents, a complaint, a hardship request and a lien."""
    w, ws = shared_world, shared_world.ws
    w.http.app.state.decision_service = ws.decisions(assess=lambda eid: ASSESSED.get(eid) or assessment(eid))
    grant = w.http.post("/api/v1/consents", headers=w.headers("ent_1"), json={
        "enterprise_id": 1, "recipient": "bank-a", "purpose": "credit_assessment", "scopes": ["credit_report"],
        "window_start": "2020-01-01"}).json()
    w.http.post("/api/v1/consents", headers=w.headers("ent_1"), json={
        "enterprise_id": 1, "recipient": "bank-a", "purpose": "post_loan_monitoring", "scopes": ["alerts"],
        "window_start": "2020-01-01"}).raise_for_status()
    loan = w.http.post("/api/v1/lending/loans", headers=w.headers("bank_a"), json={
        "enterprise_id": 1, "product": "iot-term", "principal": "100000.00", "annual_rate": "0.05",
        "term": 12, "start": "2026-01-05", "reason": "migrated from the core banking system"})
    assert loan.status_code == 201, loan.text
    app = w.http.post("/api/v1/credit-applications", headers=w.headers("bank_a"), json={
        "enterprise_id": 1, "product": "iot-working-capital", "amount": "500000.00", "tenor_months": 12})
    assert app.status_code == 201, app.text
    line = w.http.post("/api/v1/lending/credit-lines", headers=w.headers("bank_a"), json={
        "enterprise_id": 1, "limit": "100000.00", "annual_rate": "0.06", "expires_on": "2027-01-01"})
    assert line.status_code == 201, line.text
    now = datetime.now(UTC)
    with ws.engine.begin() as conn:
        conn.execute(insert(MonitorAlert).values(
            id=9001, enterprise_id=1, incident_type="power_drop", tier="watch", status="open", rule="r1",
            rules_version="v1", reason_zh="用电骤降", reason_en="power drop", devices="[]", opened_at=now,
            signal_events=1, updated_at=now))
    complaint = w.http.post("/api/v1/complaints", headers=w.headers("ops"), json={
        "category": "pricing", "subject": "fees", "description": "too high", "tenant": "bank-a",
        "enterprise_id": 1}).json()
    c_ack = w.http.post("/api/v1/complaints", headers=w.headers("ops"), json={
        "category": "service", "subject": "slow", "description": "slow", "tenant": "bank-a", "enterprise_id": 1}).json()
    hardship = w.http.post("/api/v1/hardship-requests", headers=w.headers("ent_1"), json={
        "tenant": "bank-a", "loan_ref": "L-1", "reason_code": "illness", "relief": "deferral",
        "description": "owner in hospital"}).json()
    lien = w["bank_a"].place_lien({"kind": "equipment", "manufacturer": "SANY", "serial": "ALL-0"}, "bank-a", "F-0",
                                  "1000.00")
    ws.ledger.anchor_from_source("lien", [str(lien["id"])], checkpoint=True)
    decision = w.http.get(f"/api/v1/credit-applications/{app.json()['application_id']}",
                          headers=w.headers("bank_a")).json()["decisions"][0]["id"]
    return {"loan": loan.json()["loan_id"], "app": app.json()["application_id"], "offer": app.json()["offer"]["id"],
            "decision_id": decision,
            "line": line.json()["credit_line_id"],
            "alert": 9001, "grant": grant["id"],
            "c_a": complaint["id"], "c_ack": c_ack["id"], "h_a": hardship["id"], "fp": lien["fingerprint"], "lien": lien["id"], "sub": 99999,
            "delivery": 99999, "device": 999, "name": "default", "version": 1, "record_type": "lien",
            "record_id": lien["id"], "enterprise_id": 1, "device_name": "no-such-device",
            "code": "bank-a", "voucher": 987654, "part": 987654}


def _call(world: World, who: str | None, method: str, path: str, body: Any) -> int:
    headers = world.headers(who) if who else {}
    if body == "check":
        today = date.today().isoformat()
        body = {"recipient": "bank-a", "enterprise_id": 1, "scope": "credit_report", "purpose": "credit_assessment",
                "data_start": today, "data_end": today}
    if isinstance(body, str):
        return world.http.request(method, path, content=body.encode(), headers=headers).status_code
    return world.http.request(method, path, json=body, headers=headers).status_code


def test_every_endpoint_is_in_the_matrix(shared_world: World) -> None:
    covered = {_template(k) for k in MATRIX} | set(PUBLIC) | {("GET", "/metrics"), ("GET", "/")}
    assert _endpoints(shared_world) - covered == set(), "endpoints missing from the matrix (or PUBLIC)"
    assert covered - _endpoints(shared_world) == set(), "matrix rows for endpoints the app does not have"


@pytest.mark.parametrize("key", list(MATRIX), ids=lambda k: f"{k[0]} {k[1]}")
def test_no_token_or_a_forged_one_is_401(shared_world: World, objects: dict[str, Any], key: tuple[str, str]) -> None:
    method, template = key
    path, body = template.format(**objects), MATRIX[key][0]
    assert _call(shared_world, None, method, path, body) == 401
    forged = shared_world.token("ops")[:-4] + "AAAA"
    r = shared_world.http.request(method, path, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


@pytest.mark.parametrize("key", list(MATRIX), ids=lambda k: f"{k[0]} {k[1]}")
def test_matrix(shared_world: World, objects: dict[str, Any], key: tuple[str, str]) -> None:
    method, template = key
    body, expected = MATRIX[key]
    path = template.format(**objects)
    got = {who: _call(shared_world, who, method, path, body) for who in PRINCIPALS}
    assert got == dict(zip(PRINCIPALS, map(int, expected.split()), strict=True))


def test_lists_show_only_the_callers_records(shared_world: World, objects: dict[str, Any]) -> None:
    w = shared_world
    # bank B books a loan and files an application for enterprise 2 (which consented to bank B)
    w.http.post("/api/v1/consents", headers=w.headers("ent_2"), json={
        "enterprise_id": 2, "recipient": "bank-b", "purpose": "credit_assessment", "scopes": ["credit_report"],
        "window_start": "2020-01-01"}).raise_for_status()
    ASSESSED.update({2: assessment(2, grade="B", pd="0.05"), 1: assessment(1, grade="B", pd="0.05")})
    try:
        other = w.http.post("/api/v1/credit-applications", headers=w.headers("bank_b"), json={
            "enterprise_id": 2, "product": "iot-working-capital", "amount": "900000.00", "tenor_months": 12}).json()
        mine = w.http.post("/api/v1/credit-applications", headers=w.headers("bank_a"), json={
            "enterprise_id": 1, "product": "iot-working-capital", "amount": "900000.00", "tenor_months": 12}).json()
    finally:
        ASSESSED.clear()
    assert other["status"] == mine["status"] == "referred"

    def queue(who: str) -> set[int]:
        return {i["id"] for i in w[who].review_queue(limit=1)}  # the client walks the pages

    assert mine["application_id"] in queue("bank_a") and other["application_id"] not in queue("bank_a")
    assert other["application_id"] in queue("bank_b") and mine["application_id"] not in queue("bank_b")
    assert mine["application_id"] in queue("e1_admin") and other["application_id"] not in queue("e1_admin")
    assert {mine["application_id"], other["application_id"]} <= queue("ops")

    def alerts(who: str) -> set[int]:
        return {a["id"] for a in w.http.get("/api/v1/monitor/alerts", headers=w.headers(who)).json()["items"]}

    assert alerts("bank_a") == {objects["alert"]} and alerts("bank_b") == set()
    assert alerts("ent_1") == {objects["alert"]} and alerts("ent_2") == set()
    assert objects["alert"] in alerts("ops")
    # a lender lists only grants naming it
    grants = w.http.get("/api/v1/consents?enterprise_id=1", headers=w.headers("bank_b")).json()["items"]
    assert grants == []


def _access_log(w: World) -> list[dict[str, Any]]:
    """Enterprise 1's whole access log, page by page."""
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"enterprise_id": 1, "limit": 200}
    while True:
        page = w.http.get("/api/v1/consents/access-log", params=params, headers=w.headers("ent_1")).json()
        rows += page["items"]
        if not page["next_cursor"]:
            return rows
        params["cursor"] = page["next_cursor"]


def test_lender_reads_are_consent_checked_and_logged(shared_world: World, objects: dict[str, Any]) -> None:
    w = shared_world
    before = _access_log(w)
    assert w.http.get(f"/api/v1/monitor/alerts/{objects['alert']}", headers=w.headers("bank_a")).status_code == 200
    new = _access_log(w)[len(before):]
    assert [(e["recipient"], e["scope"], e["allowed"]) for e in new] == [("bank-a", "alerts", True)]
    # the enterprise withdraws the alerts consent: bank A's next read is refused, and logged
    grant = next(g for g in w.http.get("/api/v1/consents?enterprise_id=1", headers=w.headers("ent_1")).json()["items"]
                 if g["scopes"] == ["alerts"] and g["status"] == "active")
    w.http.post(f"/api/v1/consents/{grant['id']}/withdraw", headers=w.headers("ent_1"),
                json={"enterprise_id": 1}).raise_for_status()
    refused = w.http.get(f"/api/v1/monitor/alerts/{objects['alert']}", headers=w.headers("bank_a"))
    assert refused.status_code == 403 and "alerts" in refused.json()["detail"]
    assert w.http.get("/api/v1/monitor/alerts", headers=w.headers("bank_a")).json() == {"items": [], "next_cursor": None}
    assert [e["allowed"] for e in _access_log(w)[-2:]] == [False, False]
    # the enterprise itself still reads its alert, unchecked
    assert w.http.get(f"/api/v1/monitor/alerts/{objects['alert']}", headers=w.headers("ent_1")).status_code == 200
    # bank B never gets to submit an application for enterprise 1 without its consent
    r = w.http.post("/api/v1/credit-applications", headers=w.headers("bank_b"), json={
        "enterprise_id": 1, "product": "iot-working-capital", "amount": "1000.00", "tenor_months": 12})
    assert r.status_code == 403 and "credit_report" in r.json()["detail"]


def test_writes_on_anothers_records_are_not_found(shared_world: World, objects: dict[str, Any]) -> None:
    w = shared_world
    loan = objects["loan"]
    repay = {"amount": "10.00", "date": "2026-01-10"}
    assert w.http.post(f"/api/v1/lending/loans/{loan}/repayments", headers=w.headers("bank_b"), json=repay).status_code == 404
    action = {"date": "2026-01-10", "reason": "test"}
    assert w.http.post(f"/api/v1/lending/loans/{loan}/acceleration", headers=w.headers("bank_b"),
                       json=action).status_code == 404
    review = {"officer": "x", "action": "decline", "reason": "no"}
    assert w.http.post(f"/api/v1/credit-applications/{objects['app']}/reviews", headers=w.headers("bank_b"),
                       json=review).status_code == 404
    assert w.http.post(f"/api/v1/monitor/alerts/{objects['alert']}/acknowledge", headers=w.headers("bank_b"),
                       json={"by": "x"}).status_code == 404
    assert w.http.post(f"/api/v1/consents/{objects['grant']}/withdraw", headers=w.headers("ent_2"),
                       json={"enterprise_id": 2}).status_code == 404
    # nothing changed: bank A's loan has no repayment from bank B
    shown = w.http.get(f"/api/v1/lending/loans/{loan}", headers=w.headers("bank_a")).json()
    assert shown["status"] == "active" and all(e["kind"] != "repayment" for e in shown.get("events", []))
