"""The endpoint × principal matrix extended to the console's pages: a page about one record is
refused exactly as the API refuses that record to the same person.

Each row pairs a console page with the API endpoint of the record it shows. For the people the page
is for (its navigation's roles), the page's status must equal the API's status for the same record
and the same person, signed in through the console's own sign-in form; for anyone else the page
says 403. The API's statuses themselves are spelled out by hand in `test_matrix_all.MATRIX`, so this
also pins the pages: bank B's officer gets bank A's application as a 404, an enterprise another
enterprise's loan as a 404, and so on.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.identity.test_matrix_all import objects  # noqa: F401 - the shared records (a pytest fixture)
from tests.openapi_world import PASSWORD, World

CONSOLE_USERS = ("a_officer", "a_approver", "a_auditor", "admin", "e1_admin", "b_officer", "e2_admin")
LENDER_DESK = {"a_officer", "a_approver", "b_officer"}
ENTERPRISE = {"e1_admin", "e2_admin"}

# (console page, API endpoint of its record, who the page is for)
PAGES: list[tuple[str, str, set[str]]] = [
    ("/officer/applications/{app}", "/api/v1/credit-applications/{app}", LENDER_DESK),
    ("/officer/enterprises/{enterprise_id}", "/api/v1/enterprises/{enterprise_id}", LENDER_DESK),
    ("/officer/enterprises/{enterprise_id}/sites.json", "/api/v1/enterprises/{enterprise_id}/sites", LENDER_DESK),
    ("/portal/offers/{offer}", "/api/v1/offers/{offer}", ENTERPRISE),
    ("/portal/loans/{loan}", "/api/v1/lending/loans/{loan}", ENTERPRISE),
]


@pytest.fixture(scope="module")
def browsers(shared_world: World) -> dict[str, TestClient]:
    """A signed-in console session per person (the sign-in form, its CSRF token, the session cookie)."""
    sessions = {}
    for who in CONSOLE_USERS:
        shared_world[who]  # created on first use
        client = TestClient(shared_world.http.app)
        form = client.get("/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        done = client.post("/signin", data={"username": who, "password": PASSWORD, "csrf_token": token},
                           follow_redirects=False)
        assert done.status_code == 303, (who, done.text[:300])
        sessions[who] = client
    return sessions


@pytest.mark.parametrize("row", PAGES, ids=lambda row: row[0])
def test_pages_refuse_as_the_api_refuses(shared_world: World, objects: dict[str, Any],  # noqa: F811
                                         browsers: dict[str, TestClient], row: tuple[str, str, set[str]]) -> None:
    page_template, api_template, audience = row
    page, api = page_template.format(**objects), api_template.format(**objects)
    got, expected = {}, {}
    for who in CONSOLE_USERS:
        api_status = shared_world.http.get(api, headers=shared_world.headers(who)).status_code
        expected[who] = api_status if who in audience else 403
        got[who] = browsers[who].get(page, follow_redirects=False).status_code
    assert got == expected
    # and the pairing is meaningful: someone in the audience gets the record, someone else is refused it
    assert 200 in {expected[w] for w in audience} and {404, 403} & {expected[w] for w in audience}
