"""Personal data encrypted at rest: AES-256-GCM per field, with the key id in the stored value.

A stored value is `enc:v1:<kid>:<base64url(nonce || ciphertext+tag)>`. The associated data binds a
ciphertext to its column (`complaints.contact_phone`), so a value copied into another column does
not decrypt. Keys live in a KeyRing; after a rotation, the re-encrypt job (`iotfin protection
reencrypt`) rewrites every value under the new key, after which the old key can be retired.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from iotfin.core.errors import ConfigError
from iotfin.identity.keyring import KeyRing

PREFIX = "enc:v1:"


class FieldCipher:
    def __init__(self, keys: KeyRing):
        self.keys = keys

    def encrypt(self, plaintext: str | None, context: str) -> str | None:
        if plaintext is None:
            return None
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys.active_key).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{PREFIX}{self.keys.active_kid}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str | None, context: str) -> str | None:
        if stored is None:
            return None
        if not stored.startswith(PREFIX):
            raise ConfigError(f"{context}: value is not encrypted with a known scheme")
        kid, _, blob = stored[len(PREFIX):].partition(":")
        key = self.keys.get(kid)
        if key is None:
            self.keys.reload()
            key = self.keys.get(kid)
        if key is None:
            raise ConfigError(f"{context}: encrypted with key {kid}, which is not in the key ring")
        raw = base64.urlsafe_b64decode(blob)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag:
            raise ConfigError(f"{context}: ciphertext does not authenticate (tampered or wrong column)") from None

    def key_id(self, stored: str | None) -> str | None:
        return stored[len(PREFIX):].partition(":")[0] if stored and stored.startswith(PREFIX) else None

    def needs_reencrypt(self, stored: str | None) -> bool:
        return stored is not None and self.key_id(stored) != self.keys.active_kid

    def reencrypt(self, stored: str | None, context: str) -> str | None:
        return self.encrypt(self.decrypt(stored, context), context)
