"""Device credentials as pure functions: token generation, hashing, password hashing.

Access tokens are random, so SHA-256 of the token is a safe lookup key (no dictionary attack on
128 bits of entropy) and lets a connect be resolved with one indexed lookup. MQTT passwords may be
chosen by people, so they get scrypt (hashlib's, no extra dependency) with a per-password salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from iotfin.core.errors import ValidationError

# ThingsBoard access tokens are 1-32 URL-safe characters; we accept up to 64 so imported tokens fit.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def new_token() -> str:
    """20 URL-safe characters (120 bits), the same shape as a ThingsBoard token."""
    return secrets.token_urlsafe(15)


def check_token(token: str) -> str:
    if not TOKEN_PATTERN.match(token or ""):
        raise ValidationError("access token must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return token


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    if not password:
        raise ValidationError("password must not be empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def secret_hash(secret: str) -> str:
    """Provisioning secrets are random strings handed to device makers: SHA-256 suffices."""
    return hashlib.sha256(secret.encode()).hexdigest()
