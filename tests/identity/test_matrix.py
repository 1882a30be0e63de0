"""Endpoint × principal × tenant matrix: each principal kind against each endpoint in this branch,
with the status (or the visible records) spelled out by hand for every cell.

Principals: two lenders' partner systems (bank_a, bank_b), two enterprises' systems (ent_1, ent_2),
the operator's system (ops), bank A's console users (risk officer, approver, auditor), the platform
admin, and enterprise 1's admin. The records belong to bank A / enterprise 1 unless said otherwise.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from iotfin.identity.model import Principal
from tests.openapi_world import World

PRINCIPALS = ("bank_a", "bank_b", "ent_1", "ent_2", "ops", "a_officer", "a_approver", "a_auditor", "admin", "e1_admin")
_serial = itertools.count(1)


def _platform(world: World) -> Principal:
    return Principal(subject="test:setup", platform=True)


@pytest.fixture(scope="module")
def objects(shared_world: World) -> dict[str, Any]:
    ws, op = shared_world.ws, _platform(shared_world)
    c_a = ws.protection.submit_complaint(op, category="pricing", subject="fees", description="too high",
                                         tenant="bank-a", enterprise_id=1, contact_phone="13812345678")
    c_b = ws.protection.submit_complaint(op, category="service", subject="slow", description="slow",
                                         tenant="bank-b", enterprise_id=2)
    h_a = ws.protection.submit_hardship(op, tenant="bank-a", loan_ref="L-1", reason_code="illness", relief="deferral",
                                        description="owner in hospital", enterprise_id=1)
    lien = shared_world["bank_a"].place_lien({"kind": "equipment", "manufacturer": "SANY", "serial": "M-0"},
                                             "bank-a", "F-0", "1000.00")
    ws.ledger.anchor_from_source("lien", [str(lien["id"])], checkpoint=True)
    sub_a = shared_world["bank_a"].subscribe("https://bank-a.example/hooks", ["complaint.updated"])
    sub_e1 = shared_world["ent_1"].subscribe("https://firm-1.example/hooks", ["hardship.decided"])
    return {"c_a": c_a["id"], "c_b": c_b["id"], "h_a": h_a["id"], "lien": lien, "sub_a": sub_a["id"], "sub_e1": sub_e1["id"]}


def _status(world: World, who: str, method: str, path: str, json: Any = None) -> int:
    return world.http.request(method, path, json=json, headers=world.headers(who)).status_code


READS = {
    # (method, path template): {principal: status}
    ("GET", "/api/v1/complaints/{c_a}"): dict(bank_a=200, bank_b=404, ent_1=200, ent_2=404, ops=200, a_officer=200,
                                              a_approver=200, a_auditor=200, admin=200, e1_admin=200),
    ("GET", "/api/v1/hardship-requests/{h_a}"): dict(bank_a=200, bank_b=404, ent_1=200, ent_2=404, ops=200,
                                                     a_officer=200, a_approver=200, a_auditor=200, admin=200,
                                                     e1_admin=200),
    ("GET", "/api/v1/financing/assets/{fingerprint}"): dict(bank_a=200, bank_b=200, ent_1=403, ent_2=403, ops=200,
                                                            a_officer=200, a_approver=200, a_auditor=200, admin=200,
                                                            e1_admin=403),
    ("GET", "/api/v1/ledger/evidence/lien/{lien_id}"): dict(bank_a=403, bank_b=403, ent_1=403, ent_2=403, ops=200,
                                                            a_officer=403, a_approver=403, a_auditor=200, admin=200,
                                                            e1_admin=403),
    ("GET", "/api/v1/webhooks/deliveries"): dict(bank_a=200, bank_b=200, ent_1=200, ent_2=200, ops=200, a_officer=200,
                                                 a_approver=403, a_auditor=403, admin=200, e1_admin=200),
}


@pytest.mark.parametrize("endpoint", list(READS), ids=lambda e: f"{e[0]} {e[1]}")
def test_read_matrix(shared_world: World, objects: dict[str, Any], endpoint: tuple[str, str]) -> None:
    method, template = endpoint
    path = template.format(c_a=objects["c_a"], h_a=objects["h_a"], fingerprint=objects["lien"]["fingerprint"],
                           lien_id=objects["lien"]["id"])
    got = {who: _status(shared_world, who, method, path) for who in PRINCIPALS}
    assert got == READS[endpoint]


# Which of (record of bank A / enterprise 1, record of bank B / enterprise 2) each principal lists.
LIST_VISIBILITY = {
    "complaints": dict(bank_a=(True, False), bank_b=(False, True), ent_1=(True, False), ent_2=(False, True),
                       ops=(True, True), a_officer=(True, False), a_approver=(True, False), a_auditor=(True, False),
                       admin=(True, True), e1_admin=(True, False)),
    "subscriptions": dict(bank_a=(True, False), bank_b=(False, False), ent_1=(False, True), ent_2=(False, False),
                          ops=(True, True), a_officer=(True, False), a_approver=None, a_auditor=None,
                          admin=(True, True), e1_admin=(False, True)),
}


def test_list_isolation(shared_world: World, objects: dict[str, Any]) -> None:
    seen: dict[str, dict[str, Any]] = {"complaints": {}, "subscriptions": {}}
    for who in PRINCIPALS:
        r = shared_world.http.get("/api/v1/complaints?limit=200", headers=shared_world.headers(who))
        ids = {c["id"] for c in r.json()["items"]} if r.status_code == 200 else None
        seen["complaints"][who] = (objects["c_a"] in ids, objects["c_b"] in ids) if ids is not None else None
        r = shared_world.http.get("/api/v1/webhooks/subscriptions?limit=200", headers=shared_world.headers(who))
        ids = {s["id"] for s in r.json()["items"]} if r.status_code == 200 else None
        seen["subscriptions"][who] = (objects["sub_a"] in ids, objects["sub_e1"] in ids) if ids is not None else None
    assert seen == LIST_VISIBILITY


WRITES = {
    "acknowledge complaint": dict(bank_a=200, bank_b=404, ent_1=403, ent_2=403, ops=200, a_officer=200, a_approver=403,
                                  a_auditor=403, admin=200, e1_admin=403),
    "decide hardship": dict(bank_a=200, bank_b=404, ent_1=403, ent_2=403, ops=200, a_officer=403, a_approver=200,
                            a_auditor=403, admin=200, e1_admin=403),
    "submit complaint": dict(bank_a=403, bank_b=403, ent_1=201, ent_2=201, ops=201, a_officer=403, a_approver=403,
                             a_auditor=403, admin=201, e1_admin=201),
    "place lien for bank-a": dict(bank_a=201, bank_b=403, ent_1=403, ent_2=403, ops=201, a_officer=201, a_approver=403,
                                  a_auditor=403, admin=201, e1_admin=403),
    "delete bank A's subscription": dict(bank_a=204, bank_b=404, ent_1=404, ent_2=404, ops=204, a_officer=204,
                                         a_approver=403, a_auditor=403, admin=204, e1_admin=404),
}


@pytest.mark.parametrize("action", list(WRITES))
def test_write_matrix(shared_world: World, action: str) -> None:
    ws, op = shared_world.ws, _platform(shared_world)
    got = {}
    for who in PRINCIPALS:
        # a fresh record for every principal, so one principal's success does not change the next one's answer
        if action == "acknowledge complaint":
            cid = ws.protection.submit_complaint(op, category="other", subject="s", description="d", tenant="bank-a",
                                                 enterprise_id=1)["id"]
            got[who] = _status(shared_world, who, "POST", f"/api/v1/complaints/{cid}/acknowledge")
        elif action == "decide hardship":
            hid = ws.protection.submit_hardship(op, tenant="bank-a", loan_ref="L-2", reason_code="disaster",
                                                relief="restructure", description="flood", enterprise_id=1)["id"]
            got[who] = _status(shared_world, who, "POST", f"/api/v1/hardship-requests/{hid}/decision",
                               {"approve": False, "reason": "income recovered"})
        elif action == "submit complaint":
            got[who] = _status(shared_world, who, "POST", "/api/v1/complaints",
                               {"category": "disclosure", "subject": "s", "description": "d", "tenant": "bank-a"})
        elif action == "place lien for bank-a":
            asset = {"kind": "equipment", "manufacturer": "XCMG", "serial": f"S-{next(_serial)}"}
            got[who] = _status(shared_world, who, "POST", "/api/v1/financing/liens",
                               {"asset": asset, "tenant": "bank-a", "financing_ref": "F", "amount": "10.00"})
        else:
            sid = ws.webhooks.subscribe(Principal(subject="test:a", tenant_id=_tenant(shared_world, "bank-a")),
                                        "https://bank-a.example/h", ["ping"])["id"]
            got[who] = _status(shared_world, who, "DELETE", f"/api/v1/webhooks/subscriptions/{sid}")
    assert got == WRITES[action]


def _tenant(world: World, code: str) -> int:
    return world.ws.financing.tenant_id(code)
