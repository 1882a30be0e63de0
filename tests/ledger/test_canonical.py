"""The fast JCS path (the standard library's C encoder where it is byte-identical) against the
rfc8785 library on generated JSON values: the ledger's leaves and the liens' fingerprints must not
change with the encoder."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from iotfin.core.jsonvalues import _plain, jcs
from iotfin.ledger.records import commitment, leaf_payload, new_salt

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # lone surrogates are not text
KEYS = st.one_of(TEXT, st.sampled_from(["a", "b", "\ue000", "\U0001f600", "é", "\x7f", "", "中"]))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**60), 2**60),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(KEYS, inner, max_size=5)), max_leaves=25)


def _either(f, value):  # noqa: ANN001, ANN202
    try:
        return ("ok", f(value))
    except Exception as exc:  # noqa: BLE001 - the two must refuse alike
        return ("error", type(exc).__name__)


@settings(max_examples=1500, deadline=None)
@given(VALUES)
def test_fast_path_is_byte_identical_to_rfc8785(value: object) -> None:
    assert _either(jcs, value) == _either(rfc8785.dumps, value)


def test_the_cases_the_fast_path_leaves_to_the_library() -> None:
    assert _plain({"amount": "12.34", "parts": [1, 2, {"k": None, "ok": True}], "中文": "凭证"})
    assert not _plain({"pd": 0.02})  # JCS writes numbers as ECMAScript does
    assert not _plain({"n": 2**53})  # beyond the safe integer domain: the library refuses it
    assert not _plain({"\U0001f600": 1, "\ue000": 2})  # UTF-16 order differs from code point order
    assert jcs({"\U0001f600": 1, "\ue000": 2}) == '{"\U0001f600":1,"\ue000":2}'.encode()
    assert jcs({"b": "\x00\u2028\"", "a": 1}) == b'{"a":1,"b":"\\u0000\xe2\x80\xa8\\""}'


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_leaf_payloads_are_jcs(body: dict) -> None:
    salt = new_salt()
    try:
        expected = rfc8785.dumps({"v": 1, "commitment": commitment(salt, body)})
    except Exception:  # noqa: BLE001 - a body JCS refuses is refused by the ledger too
        return
    assert leaf_payload("voucher_event", body, salt) == expected
    assert leaf_payload("telemetry_batch", body, None) == rfc8785.dumps({"v": 1, "body": body})
