"""The verified-token cache answers repeated requests without re-verifying, and never lets through
what verification would refuse: an expired token, a retired key, a token one character off."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from iotfin.core.errors import Unauthorized
from iotfin.identity.keyring import KeyRing
from iotfin.identity.model import Principal
from iotfin.identity.tokens import TokenIssuer

WHO = Principal(subject="client:ic_1", tenant_id=1, tenant_code="bank-a", scopes=frozenset({"lending:read"}))


def _timed(call, n: int = 2_000) -> float:  # noqa: ANN001
    started = time.process_time()
    for _ in range(n):
        call()
    return time.process_time() - started


def test_cached_verification_keeps_every_refusal(tmp_path: Path) -> None:
    issuer = TokenIssuer(KeyRing(tmp_path / "keys.json"), ttl_s=60)
    token, _ = issuer.issue(WHO)
    assert issuer.verify(token) == WHO
    assert token in issuer._verified  # the second call is a lookup
    cached, full = _timed(lambda: issuer.verify(token)), _timed(lambda: issuer._verify(token))
    assert cached < full / 3  # a lookup instead of a JWT decode and HMAC
    with pytest.raises(Unauthorized):
        issuer.verify(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    old, _ = issuer.issue(WHO, now=time.time() - 120)  # expired a minute ago
    with pytest.raises(Unauthorized, match="expired"):
        issuer.verify(old)
    old_kid = issuer.keys.active_kid
    issuer.keys.rotate()
    assert issuer.verify(token) == WHO  # older keys keep verifying until retired
    issuer.keys.retire(old_kid)
    with pytest.raises(Unauthorized, match="unknown key"):
        issuer.verify(token)  # retiring the key ends the cached answer too
