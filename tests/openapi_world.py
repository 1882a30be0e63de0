"""A small world for the open-API tests: two lenders, the operator, two enterprises, and a partner
client or console user for every kind of principal, each with an IotfinClient bound to the app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, text

from iotfin.app.http import create_app
from iotfin.app.workspace import Workspace
from iotfin.client import IotfinClient
from iotfin.core.ids import USCC_ALPHABET, uscc_check_char
from iotfin.core.settings import Settings
from iotfin.identity.model import SCOPES, Principal
from iotfin.identity.tables import Enterprise, Tenant

PASSWORD = "correct horse battery staple"
BANK_SCOPES = ("financing:read financing:write webhooks:manage complaints:read complaints:handle "
               "hardship:review hardship:decide lending:read lending:write lending:service applications:read "
               "applications:write applications:review alerts:read alerts:handle monitor:configure consents:read "
               "consents:check pii:read offers:read lending:manual")
ENTERPRISE_SCOPES = ("complaints:submit complaints:read hardship:submit hardship:review webhooks:manage lending:read "
                     "applications:read alerts:read consents:manage consents:read devices:read devices:claim pii:read "
                     "offers:read offers:accept")


def uscc(n: int) -> str:
    body = "91440300" + "".join(USCC_ALPHABET[(n * 11 + i) % 31] for i in range(9))
    return body + uscc_check_char(body)


def enterprise_row(n: int) -> dict:
    return dict(id=n, uscc=uscc(n), name=f"企业{n}", name_en=f"Firm {n}", sector="manufacturing", subsector="x",
                region_code="440300", region="深圳", founded_on=date(2018, 5, 1),
                registered_capital=Decimal("1000000.00"), legal_rep_name="李四", legal_rep_id_number="x",
                legal_rep_phone="13900000000", tax_grade="B", litigation_count=0, key_person_changes=0)


CLIENTS = {  # name: (display name, scopes, tenant, enterprise)
    "bank_a": ("bank A core", BANK_SCOPES, "bank-a", None),
    "bank_b": ("bank B core", BANK_SCOPES, "bank-b", None),
    "ent_1": ("firm 1 ERP", ENTERPRISE_SCOPES, None, 1),
    "ent_2": ("firm 2 ERP", ENTERPRISE_SCOPES, None, 2),
    "ops": ("operator tools", " ".join(SCOPES), "ops", None),
}
USERS = {  # name: (roles, tenant, enterprise)
    "a_officer": (["risk_officer"], "bank-a", None),
    "a_approver": (["approver"], "bank-a", None),
    "a_auditor": (["auditor"], "bank-a", None),
    "admin": (["platform_admin"], None, None),
    "e1_admin": (["enterprise_admin"], None, 1),
    "b_officer": (["risk_officer"], "bank-b", None),   # the console's page matrix (tests/identity/test_page_matrix.py)
    "e2_admin": (["enterprise_admin"], None, 2),
}


@dataclass
class World:
    """Principals are created on first use (argon2 hashing is deliberately slow)."""

    ws: Workspace
    http: TestClient
    clients: dict[str, IotfinClient] = field(default_factory=dict)
    _credentials: dict[str, dict] = field(default_factory=dict)

    @property
    def credentials(self) -> _Credentials:
        return _Credentials(self)

    def _make(self, name: str) -> None:
        if name in CLIENTS:
            display, scopes, tenant, enterprise = CLIENTS[name]
            c = self.ws.identity.create_client(display, scopes, tenant=tenant, enterprise_id=enterprise)
            self._credentials[name] = c
            self.clients[name] = IotfinClient(client_id=c["client_id"], client_secret=c["client_secret"], http=self.http)
        else:
            roles, tenant, enterprise = USERS[name]
            self.ws.identity.create_user(name, PASSWORD, roles, tenant=tenant, enterprise_id=enterprise)
            self.clients[name] = IotfinClient(username=name, password=PASSWORD, http=self.http)

    def __getitem__(self, name: str) -> IotfinClient:
        if name not in self.clients:
            self._make(name)
        return self.clients[name]

    def token(self, name: str) -> str:
        return self[name].token()

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(name)}"}


class _Credentials:
    def __init__(self, world: World):
        self.world = world

    def __getitem__(self, name: str) -> dict:
        self.world[name]
        return self.world._credentials[name]


def build_world(ws: Workspace, *, background: bool = False) -> World:
    """Tenants bank-a, bank-b (lenders) and ops (the operator), enterprises 1 and 2, and the
    principals of CLIENTS and USERS, each created on first use."""
    with ws.engine.begin() as conn:
        conn.execute(insert(Tenant), [
            {"code": "bank-a", "name": "甲银行", "name_en": "Bank A", "kind": "bank"},
            {"code": "bank-b", "name": "乙银行", "name_en": "Bank B", "kind": "bank"},
            {"code": "ops", "name": "平台运营", "name_en": "Platform operator", "kind": "platform"},
        ])
        conn.execute(insert(Enterprise), [enterprise_row(1), enterprise_row(2)])
    return World(ws, TestClient(create_app(ws, background=background)))


# --- fixtures shared by tests/identity, tests/protection and tests/webhooks (their conftest imports them) ---


@pytest.fixture
def world(workspace: Workspace) -> World:
    return build_world(workspace)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per module and backend, for the read-mostly matrix tests (argon2 hashing is slow on purpose)."""
    tmp: Path = tmp_path_factory.mktemp("world")
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'iotfin.db'}"
    else:
        server = request.getfixturevalue("postgres")
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.url_for(name)
    ws = Workspace(Settings(data_dir=tmp / "ws", database_url=url))
    ws.initialise()
    try:
        yield build_world(ws)
    finally:
        ws.close()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def operator_headers(ws: Workspace) -> dict[str, str]:
    """A bearer token of the platform operator holding every scope, for tests of a context's own
    behaviour (the matrix tests in tests/identity cover who may do what)."""
    who = Principal(subject="user:test-operator", platform=True, roles=frozenset({"platform_admin"}),
                    scopes=frozenset(SCOPES))
    return {"Authorization": f"Bearer {ws.tokens.issue(who)[0]}"}
