"""Credit applications, the review queue and strategies over HTTP (problem+json for bad input)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.decision.assessment import RiskAssessment
from iotfin.decision.strategies import default_strategy_text
from iotfin.ledger.evidence import verify_bundle
from tests.decision.conftest import add_enterprises, assessment
from tests.openapi_world import operator_headers

BODY = {"enterprise_id": 1, "product": "iot-working-capital", "amount": "500000.00", "tenor_months": 12,
        "assessment": assessment(1).to_json()}  # the test client hands it to the `assess` port (AssessingClient)


class AssessingClient(TestClient):
    """The decisioning tests fix each enterprise's assessment through the decision service's `assess`
    port (the API itself refuses an assessment in the body): an "assessment" in a test's body is
    taken out and becomes what the port answers for that enterprise."""

    def __init__(self, ws: Workspace, **kwargs: object) -> None:
        super().__init__(create_app(ws), **kwargs)  # type: ignore[arg-type]
        self.assessed: dict[int, object] = {}
        self.app.state.decision_service = ws.decisions(
            assess=lambda eid: RiskAssessment.from_json(self.assessed.get(eid) or assessment(eid).to_json()))

    def post(self, url: str, json: object = None, **kwargs: object):  # noqa: A002, ANN201
        if url == "/api/v1/credit-applications" and isinstance(json, dict) and "assessment" in json:
            json = dict(json)
            given = json.pop("assessment")
            if given is not None:
                self.assessed[int(given.get("enterprise_id", json.get("enterprise_id", 0)))] = given
        return super().post(url, json=json, **kwargs)


@pytest.fixture
def client(sqlite_workspace: Workspace) -> TestClient:
    add_enterprises(sqlite_workspace.engine, range(1, 4))
    return AssessingClient(sqlite_workspace, headers=operator_headers(sqlite_workspace))


def test_apply_review_and_evidence(client: TestClient) -> None:
    r = client.post("/api/v1/credit-applications", json=BODY | {"subsidy_rate": "0.01", "subsidy_provider": "县财政"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["decision"] == "approve" and body["offered_amount"] == "500000.00"
    assert isinstance(body["rate"], str) and "县财政贴息" in body["disclosure"]["zh"]
    referred = client.post("/api/v1/credit-applications", json=BODY | {
        "enterprise_id": 2, "assessment": assessment(2, grade="B", pd="0.05").to_json()}).json()
    assert referred["decision"] == "refer"
    queue = client.get("/api/v1/review-queue").json()["items"]
    assert [q["id"] for q in queue] == [referred["application_id"]] and queue[0]["name"] == "企业2"
    evidence = client.get(f"/api/v1/credit-applications/{referred['application_id']}").json()
    assert evidence["decisions"][0]["result"]["reasons"][0]["code"] == "REVIEW_GRADE_B"
    missing_reason = client.post(f"/api/v1/credit-applications/{referred['application_id']}/reviews",
                                 json={"officer": "li", "action": "approve", "reason": ""})
    assert missing_reason.status_code == 422
    done = client.post(f"/api/v1/credit-applications/{referred['application_id']}/reviews",
                       json={"officer": "li", "action": "decline", "reason": "经营异常"})
    assert done.status_code == 200 and done.json()["status"] == "declined"
    again = client.post(f"/api/v1/credit-applications/{referred['application_id']}/reviews",
                        json={"officer": "li", "action": "decline", "reason": "again"})
    assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
    # each decision's evidence bundle verifies offline; a decision of another application is not found
    app_id = referred["application_id"]
    decisions = client.get(f"/api/v1/credit-applications/{app_id}").json()["decisions"]
    key = client.get("/api/v1/ledger/key").text.strip()
    for decision in decisions:
        bundle = client.get(f"/api/v1/credit-applications/{app_id}/decisions/{decision['id']}/evidence")
        assert bundle.status_code == 200, bundle.text
        assert verify_bundle(bundle.json(), key)["record_id"] == str(decision["id"])
    other = client.get(f"/api/v1/credit-applications/{body['application_id']}").json()["decisions"][0]["id"]
    assert client.get(f"/api/v1/credit-applications/{app_id}/decisions/{other}/evidence").status_code == 404
    assert client.get(f"/api/v1/credit-applications/999/decisions/{other}/evidence").status_code == 404


@pytest.mark.parametrize(("change", "status", "fragment"), [
    ({"amount": 500000.5}, 422, "amount"),
    ({"product": "payday"}, 422, "unknown product"),
    ({"tenor_months": 40}, 422, "tenor 40"),
    ({"enterprise_id": 99, "assessment": assessment(99).to_json()}, 404, "no enterprise 99"),
    ({"assessment": assessment(1).to_json() | {"grade": "Z"}}, 422, "grade"),
])
def test_bad_applications_are_problems(client: TestClient, change: dict, status: int, fragment: str) -> None:
    r = client.post("/api/v1/credit-applications", json=BODY | change)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and fragment in r.text
    assert client.get("/api/v1/review-queue").json()["items"] == []


@pytest.mark.parametrize("given", [assessment(1).to_json(), {"grade": "AAA"}, None])
def test_an_assessment_in_the_body_is_always_refused(sqlite_workspace: Workspace, given: object) -> None:
    """The API never takes a caller's grade: with the bootstrap scorecard (no trained model), with an
    assess port, whatever the assessment holds (even null); nothing is stored."""
    add_enterprises(sqlite_workspace.engine, range(1, 2))
    plain = TestClient(create_app(sqlite_workspace), headers=operator_headers(sqlite_workspace))
    for service in (None, sqlite_workspace.decisions(assess=lambda eid: assessment(eid))):
        if service is not None:
            plain.app.state.decision_service = service
        refused = plain.post("/api/v1/credit-applications", json=BODY | {"assessment": given, "lender": "bank-a"})
        assert refused.status_code == 422 and "risk engine" in refused.json()["detail"], refused.text
        assert plain.get("/api/v1/review-queue").json()["items"] == []


def test_publish_replay_deploy_rollback(client: TestClient) -> None:
    graph = json.loads(default_strategy_text())
    r = client.post("/api/v1/decision-strategies/default/versions", json={"published_by": "risk", "content": graph})
    assert r.status_code == 201 and r.json()["version"] == 1
    graph["nodes"][2]["content"]["rules"][0]["grade-terms-out-margin"] = "0.004 *"
    bad = client.post("/api/v1/decision-strategies/default/versions", json={"published_by": "risk", "content": graph})
    assert bad.status_code == 422 and bad.json()["location"]["rule_id"] == "grade-terms-r1"
    assert bad.json()["type"].endswith("/strategy-invalid")
    client.post("/api/v1/credit-applications", json=BODY)
    replay = client.post("/api/v1/decision-strategies/default/replay", json=json.loads(default_strategy_text()))
    assert replay.status_code == 200 and replay.json()["applications"] == 1 and replay.json()["changed"] == 0
    v2 = client.post("/api/v1/decision-strategies/default/versions",
                     json={"published_by": "risk", "content": json.loads(default_strategy_text()), "activate": False})
    assert v2.json()["version"] == 2
    dep = client.post("/api/v1/decision-strategies/default/deployments",
                      json={"deployed_by": "cro", "champion": 1, "challenger": 2, "challenger_bps": 1000})
    assert dep.status_code == 200 and dep.json()["challenger_bps"] == 1000
    back = client.post("/api/v1/decision-strategies/default/rollback", json={"rolled_back_by": "cro"})
    assert back.json()["challenger_version"] is None
    listing = client.get("/api/v1/decision-strategies/default").json()
    assert [v["version"] for v in listing["versions"]] == [1, 2]
    assert client.get("/api/v1/decision-strategies/default/versions/1").json()["contentType"] == "application/vnd.gorules.decision"


def test_review_queue_pages_oldest_first(client: TestClient) -> None:
    referred = [client.post("/api/v1/credit-applications", json=BODY | {
        "enterprise_id": e, "assessment": assessment(e, grade="B", pd="0.05").to_json()}).json()["application_id"]
        for e in (1, 2, 3)]
    first = client.get("/api/v1/review-queue", params={"limit": 2}).json()
    rest = client.get("/api/v1/review-queue", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [[q["id"] for q in page["items"]] for page in (first, rest)] == [referred[:2], referred[2:]]
    assert rest["next_cursor"] is None
