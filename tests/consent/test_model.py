"""The pure consent rules: validation of grants and the decision `check` makes, reason by reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotfin.consent.model import (
    PURPOSES,
    REASONS,
    SCOPES,
    TELEMETRY_SCOPE_OF_DEVICE,
    Grant,
    GrantRequest,
    can_reconfirm,
    can_withdraw,
    check,
)
from iotfin.core.errors import ValidationError
from iotfin.sim.reference import DEVICE_TYPES

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
RANGE = (date(2026, 6, 1), date(2026, 11, 30))


def grant(**kw) -> Grant:  # noqa: ANN003
    base = dict(id=1, enterprise_id=7, recipient="bank-a", purpose="credit_assessment",
                scopes=frozenset({"telemetry:energy", "trade_documents"}), window_start=date(2026, 1, 1),
                window_end=date(2027, 6, 30), granted_at=NOW - timedelta(days=10), expires_at=NOW + timedelta(days=300),
                confirmed_at=NOW - timedelta(days=10))
    return Grant(**(base | kw))


def request(**kw) -> GrantRequest:  # noqa: ANN003
    base = dict(enterprise_id=7, recipient="bank-a", purpose="credit_assessment", scopes=("telemetry:energy",),
                window_start=date(2026, 1, 1), window_end=date(2026, 12, 31), expires_at=NOW + timedelta(days=180))
    return GrantRequest(**(base | kw))


def decide(grants, **kw):  # noqa: ANN001, ANN003, ANN201
    args = dict(recipient="bank-a", enterprise_id=7, scope="telemetry:energy", purpose="credit_assessment",
                data_range=RANGE, now=NOW)
    return check(grants, **(args | kw))


def test_every_device_type_has_a_scope_and_every_label_is_bilingual() -> None:
    assert set(TELEMETRY_SCOPE_OF_DEVICE) == set(DEVICE_TYPES)
    assert set(TELEMETRY_SCOPE_OF_DEVICE.values()) <= set(SCOPES)
    for table in (SCOPES, PURPOSES, REASONS):
        for labels in table.values():
            assert labels[0] and labels[1] and labels[0] != labels[1]


def test_allowed_names_the_grant() -> None:
    d = decide([grant(id=3)])
    assert d.allowed and d.reason == "granted" and d.grant_id == 3 and d.en and d.zh


@pytest.mark.parametrize(("change", "kw", "reason"), [
    ({}, {"recipient": "bank-b"}, "no_grant"),
    ({}, {"enterprise_id": 8}, "no_grant"),
    ({}, {"scope": "telemetry:gps"}, "scope_not_granted"),
    ({}, {"purpose": "post_loan_monitoring"}, "purpose_mismatch"),
    ({}, {"onward_to": "partner-x"}, "onward_not_consented"),
    ({"withdrawn_at": NOW - timedelta(seconds=1)}, {}, "withdrawn"),
    ({"granted_at": NOW + timedelta(hours=1), "confirmed_at": NOW + timedelta(hours=1)}, {}, "not_yet_valid"),
    ({"expires_at": NOW}, {}, "expired"),
    ({"confirmed_at": NOW - timedelta(days=90)}, {}, "reconfirmation_overdue"),
    ({"reconfirm_days": 30, "confirmed_at": NOW - timedelta(days=31)}, {}, "reconfirmation_overdue"),
    ({}, {"data_range": (date(2025, 12, 31), date(2026, 3, 1))}, "outside_window"),
    ({"window_end": date(2026, 11, 29)}, {}, "outside_window"),
])
def test_each_refusal_has_its_reason(change: dict, kw: dict, reason: str) -> None:
    d = decide([grant(**change)], **kw)
    assert not d.allowed and d.reason == reason
    assert d.grant_id == (None if reason == "no_grant" else 1)


def test_boundaries_are_inclusive_of_window_and_exclusive_of_expiry() -> None:
    g = grant(window_start=RANGE[0], window_end=RANGE[1], confirmed_at=NOW - timedelta(days=90) + timedelta(seconds=1))
    assert decide([g]).allowed
    assert decide([g], now=g.expires_at - timedelta(microseconds=1)).reason == "reconfirmation_overdue"
    assert decide([grant(expires_at=NOW + timedelta(microseconds=1))]).allowed
    assert decide([grant(expires_at=NOW)]).reason == "expired"


def test_onward_sharing_needs_the_named_third_party() -> None:
    g = grant(onward_recipients=frozenset({"partner-x"}))
    assert decide([g], onward_to="partner-x").allowed
    assert decide([g], onward_to="partner-y").reason == "onward_not_consented"
    assert decide([g]).allowed


def test_the_most_specific_reason_wins_and_any_valid_grant_allows() -> None:
    wrong_scope = grant(id=1, scopes=frozenset({"telemetry:gps"}))
    withdrawn = grant(id=2, withdrawn_at=NOW - timedelta(days=1))
    d = decide([wrong_scope, withdrawn])
    assert (d.reason, d.grant_id) == ("withdrawn", 2)
    good = grant(id=5)
    assert decide([wrong_scope, withdrawn, good]).grant_id == 5


def test_unknown_scope_purpose_or_reversed_range_is_an_error_not_a_denial() -> None:
    with pytest.raises(ValidationError, match="unknown scope"):
        decide([grant()], scope="telemetry:everything")
    with pytest.raises(ValidationError, match="unknown purpose"):
        decide([grant()], purpose="marketing")
    with pytest.raises(ValidationError, match="before it starts"):
        decide([grant()], data_range=(date(2026, 3, 2), date(2026, 3, 1)))


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"expires_at": NOW + timedelta(days=367)}, "more than 12 months"),
    ({"expires_at": NOW - timedelta(days=1)}, "in the future"),
    ({"expires_at": datetime(2027, 1, 1)}, "timezone-aware"),
    ({"scopes": ()}, "at least one scope"),
    ({"scopes": ("telemetry:energy", "telemetry:energy")}, "twice"),
    ({"scopes": ("telemetry:teleport",)}, "unknown scope"),
    ({"purpose": "marketing"}, "unknown purpose"),
    ({"window_start": date(2026, 5, 1), "window_end": date(2026, 4, 30)}, "before it starts"),
    ({"reconfirm_days": 91}, "1-90"),
    ({"reconfirm_days": 0}, "1-90"),
    ({"recipient": "Bank A; DROP TABLE"}, "recipient"),
    ({"recipient": ""}, "recipient"),
    ({"onward_recipients": ("bank-a",)}, "its own onward"),
    ({"enterprise_id": 0}, "enterprise_id"),
])
def test_bad_grants_are_refused(kw: dict, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        request(**kw).validate(NOW)


def test_a_valid_request_becomes_a_grant_confirmed_now() -> None:
    fields = request(scopes=("trade_documents", "telemetry:energy"), expires_at=NOW + timedelta(days=366)).validate(NOW)
    assert fields["granted_at"] == fields["confirmed_at"] == NOW and fields["scopes"] == ["telemetry:energy", "trade_documents"]


def test_withdraw_twice_and_reconfirm_after_the_end_are_refused() -> None:
    with pytest.raises(ValidationError, match="already withdrawn"):
        can_withdraw(grant(withdrawn_at=NOW), NOW)
    with pytest.raises(ValidationError, match="withdrawn"):
        can_reconfirm(grant(withdrawn_at=NOW), NOW)
    with pytest.raises(ValidationError, match="expired"):
        can_reconfirm(grant(expires_at=NOW), NOW)
    can_reconfirm(grant(confirmed_at=NOW - timedelta(days=200)), NOW)  # overdue grants may be reconfirmed


@given(offset=st.integers(-400, 400), conf=st.integers(0, 200), start=st.integers(-30, 30), length=st.integers(0, 60))
def test_allow_implies_every_condition(offset: int, conf: int, start: int, length: int) -> None:
    g = grant(confirmed_at=NOW - timedelta(days=conf), expires_at=NOW + timedelta(days=offset) if offset else NOW,
              window_start=date(2026, 6, 1), window_end=date(2026, 7, 31))
    lo = date(2026, 6, 1) + timedelta(days=start)
    d = decide([g], data_range=(lo, lo + timedelta(days=length)))
    inside = lo >= g.window_start and lo + timedelta(days=length) <= g.window_end
    assert d.allowed == (offset > 0 and conf < 90 and inside)
