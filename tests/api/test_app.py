"""The platform HTTP application: health, the platform summary (money as strings), problem+json errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

import iotfin
from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.core.ids import USCC_ALPHABET, uscc_check_char
from iotfin.core.settings import Settings
from iotfin.identity.tables import Enterprise
from iotfin.supplychain.tables import TradeDocument
from iotfin.telemetry.model import READING_SCHEMA
from tests.services import free_port

PROBLEM = "application/problem+json"
T0 = 1_767_225_600_000


@pytest.fixture
def client(workspace: Workspace) -> TestClient:
    return TestClient(create_app(workspace))


def _uscc(n: int) -> str:
    body = "91440300" + "".join(USCC_ALPHABET[(n * 11 + i) % 31] for i in range(9))
    return body + uscc_check_char(body)


def _enterprise(n: int, sector: str) -> dict:
    return dict(id=n, uscc=_uscc(n), name=f"企业{n}", name_en=f"Firm {n}", sector=sector, subsector="x",
                region_code="440300", region="深圳", founded_on=date(2018, 5, 1),
                registered_capital=Decimal("1000000.00"), legal_rep_name="李四", legal_rep_id_number="x",
                legal_rep_phone="13900000000", tax_grade="B", litigation_count=0, key_person_changes=0)


def assert_problem(response, status: int, code: str) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM
    body = response.json()
    assert body["type"] == f"https://iotfin.dev/problems/{code}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["instance"] == response.request.url.path
    return body


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok", "version": iotfin.__version__}


def test_root_is_the_console_sign_in_and_the_docs_are_offline(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert str(page.url).endswith("/signin")
    for path in ("/docs", "/redoc"):
        docs = client.get(path)
        assert docs.status_code == 200
        # every script, stylesheet and icon of the doc viewers comes from this host
        assert "https://" not in docs.text and "http://" not in docs.text, path
        assert "/static/vendor/" in docs.text


def test_openapi_lists_the_platform_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["version"] == iotfin.__version__
    assert {"/healthz", "/api/v1/summary"} <= set(spec["paths"])
    assert "/" not in spec["paths"]


def test_summary_of_an_empty_workspace(client: TestClient) -> None:
    response = client.get("/api/v1/summary")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["devices"] == {"total": 0, "by_type": {}}
    assert body["trade_documents"] == {}
    assert body["economy"]["enterprises"] == 0 and body["economy"]["enterprises_by_sector"] == {}
    assert body["telemetry"]["data_points"] == 0
    assert body["quarantine"] == {"by_reason": {}}


def test_summary_counts_and_money_as_decimal_strings(client: TestClient, workspace: Workspace) -> None:
    with workspace.engine.begin() as conn:
        conn.execute(insert(Enterprise), [_enterprise(1, "manufacturing"), _enterprise(2, "manufacturing"),
                                          _enterprise(3, "agriculture")])
        conn.execute(insert(TradeDocument), [
            dict(id=1, doc_type="invoice", seller_id=1, buyer_id=2, issued_on=date(2026, 1, 5),
                 amount=Decimal("1234.50")),
            dict(id=2, doc_type="invoice", seller_id=2, buyer_id=3, issued_on=date(2026, 1, 6),
                 amount=Decimal("0.10")),
            dict(id=3, doc_type="invoice", seller_id=3, buyer_id=1, issued_on=date(2026, 1, 7),
                 amount=Decimal("0.20")),
            dict(id=4, doc_type="purchase_order", seller_id=1, buyer_id=3, issued_on=date(2026, 1, 8),
                 amount=Decimal("9999999999999999.99")),  # beyond what a double holds to the fen
        ])
    meter = workspace.devices.create(enterprise_id=1, profile="electricity_meter")
    workspace.devices.create(enterprise_id=1, profile="electricity_meter")
    workspace.devices.create(enterprise_id=3, profile="env_sensor")
    workspace.telemetry.append(pa.table({"device_id": [meter.id] * 3, "key": ["energy_kwh"] * 3,
                                         "ts": [T0, T0 + 900_000, T0 + 86_400_000], "value": [1.0, 2.0, 3.0]},
                                        schema=READING_SCHEMA))
    workspace.quarantine.put_raw("{oops", "malformed_payload", "http", meter.id)

    response = client.get("/api/v1/summary")
    assert response.status_code == 200
    body = response.json()
    docs = body["trade_documents"]
    assert docs["invoice"] == {"count": 3, "amount": "1234.80"}  # 0.10 + 0.20 exactly, no 0.30000000000000004
    assert docs["purchase_order"] == {"count": 1, "amount": "9999999999999999.99"}
    assert all(isinstance(d["amount"], str) for d in docs.values())
    assert '"amount":"9999999999999999.99"' in response.text  # a string in the JSON text, not a number
    assert body["economy"]["enterprises"] == 3 and body["economy"]["trade_documents"] == 4
    assert body["economy"]["enterprises_by_sector"] == {"manufacturing": 2, "agriculture": 1}
    assert body["devices"] == {"total": 3, "by_type": {"electricity_meter": 2, "env_sensor": 1}}
    assert body["telemetry"]["days"] == 2 and body["telemetry"]["data_points"] == 3
    assert body["quarantine"] == {"by_reason": {"malformed_payload": 1}}


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/no/such/route"), 404, "http-404")
    assert body["title"] == "Not Found"
    assert set(body) == {"type", "title", "status", "detail", "instance"}


def test_wrong_method_is_a_problem(client: TestClient) -> None:
    assert_problem(client.delete("/healthz"), 405, "http-405")


def test_request_validation_error_is_a_problem(client: TestClient) -> None:
    body = assert_problem(client.post("/api/v1/provision", json={"deviceName": ""}), 422, "validation")
    assert body["title"] == "Invalid request"
    missing = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "provisionDeviceKey") in missing and ("body", "deviceName") in missing


def test_domain_error_is_a_problem(client: TestClient) -> None:
    body = assert_problem(client.post("/api/v1/not-a-token/telemetry", json={"t": 1}), 401, "unauthorized")
    assert body["title"] == "Unauthorized"


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose database cannot be reached (nothing listens on the port)."""
    ws = Workspace(Settings(data_dir=tmp_path / "ws",
                            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"))
    try:
        yield TestClient(create_app(ws), raise_server_exceptions=False)
    finally:
        ws.close()


def test_healthz_reports_an_unreachable_database_as_503_problem(unreachable: TestClient) -> None:
    body = assert_problem(unreachable.get("/healthz"), 503, "unavailable")
    assert "database" in body["detail"]
    assert "127.0.0.1" not in body["detail"]  # no connection details leak to callers


def test_an_unexpected_failure_is_still_a_problem(unreachable: TestClient) -> None:
    response = unreachable.get("/api/v1/summary")
    assert response.status_code == 500
    assert_problem(response, 500, "internal")
    assert "nowhere" not in response.text and "Traceback" not in response.text
