"""Short-lived access tokens: JWTs (RFC 7519) signed HS256 with the active key of the token key
ring, its key id in the `kid` header so rotated keys keep verifying until they are retired."""

from __future__ import annotations

import secrets
import time

import jwt

from iotfin.core.errors import Unauthorized
from iotfin.identity.keyring import KeyRing
from iotfin.identity.model import Principal

ISSUER = "iotfin"
AUDIENCE = "iotfin-api"
ALGORITHM = "HS256"


#: Verified tokens are remembered this long (at most until they expire), so a client reusing its
#: token pays a dictionary lookup instead of a JWT decode and HMAC per request (docs/benchmarks.md).
VERIFIED_CACHE_S = 60
VERIFIED_CACHE_MAX = 10_000


class TokenIssuer:
    def __init__(self, keys: KeyRing, ttl_s: int = 900):
        self.keys = keys
        self.ttl_s = ttl_s
        self._verified: dict[str, tuple[Principal, float, str]] = {}  # token -> (principal, valid until, kid)

    def issue(self, principal: Principal, now: float | None = None) -> tuple[str, int]:
        """A signed token for the principal and its lifetime in seconds."""
        iat = int(time.time() if now is None else now)
        claims = principal.claims() | {"iss": ISSUER, "aud": AUDIENCE, "iat": iat, "exp": iat + self.ttl_s,
                                       "jti": secrets.token_hex(8)}
        token = jwt.encode(claims, self.keys.active_key, algorithm=ALGORITHM, headers={"kid": self.keys.active_kid})
        return token, self.ttl_s

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; Unauthorized for a malformed, forged, expired or unknown-key token.

        A token verified in the last VERIFIED_CACHE_S seconds is answered from memory, as long as it
        has not expired and its key is still in the ring (retiring a key ends its tokens here too)."""
        hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time() and self.keys.get(hit[2]) is not None:
            return hit[0]
        principal, exp, kid = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_MAX:
            self._verified.pop(next(iter(self._verified)), None)  # the oldest entry
        self._verified[token] = (principal, min(exp, time.time() + VERIFIED_CACHE_S), kid)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float, str]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise Unauthorized("malformed access token") from None
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None and isinstance(kid, str):
            self.keys.reload()  # rotated by another process since we loaded the ring
            key = self.keys.get(kid)
        if key is None:
            raise Unauthorized("access token signed with an unknown key")
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "aud", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("access token expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid access token ({type(exc).__name__})") from None
        return Principal.from_claims(claims), float(claims["exp"]), kid
