"""A ring of named symmetric keys kept in one file of the workspace: the active key signs or
encrypts, every key still in the ring verifies or decrypts. Rotation adds a key and makes it active;
the old ones stay until retired (after the tokens they signed expire, or after a re-encrypt job).

Used for the access-token signing keys (identity) and the personal-data encryption keys
(protection). The file is JSON, written atomically with mode 0600:
`{"active": "k…", "keys": {"k…": {"key": "<base64>", "created_at": "…"}}}`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

from iotfin.core.errors import ConfigError, NotFound


class KeyRing:
    def __init__(self, path: Path, key_bytes: int = 32):
        self.path = Path(path)
        self.key_bytes = key_bytes
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._created: dict[str, str] = {}
        self._active = ""
        self._mtime = 0
        self._load_or_create()

    # --- reading -------------------------------------------------------------------------------

    @property
    def active_kid(self) -> str:
        self._follow_file()
        return self._active

    @property
    def active_key(self) -> bytes:
        self._follow_file()
        return self._keys[self._active]

    def kids(self) -> list[str]:
        return sorted(self._keys)

    def get(self, kid: str) -> bytes | None:
        return self._keys.get(kid)

    def _follow_file(self) -> None:
        # A rotation by another process (the CLI) takes effect here at the next signing/encryption.
        try:
            changed = self.path.stat().st_mtime_ns != self._mtime
        except OSError:
            return
        if changed:
            self.reload()

    def reload(self) -> None:
        """Pick up a rotation done by another process (the CLI) on the same workspace."""
        with self._lock:
            self._read()

    # --- rotation ------------------------------------------------------------------------------

    def rotate(self) -> str:
        """Add a fresh key and make it the active one; returns its key id."""
        with self._lock:
            self._read()
            kid = _new_kid()
            self._keys[kid] = secrets.token_bytes(self.key_bytes)
            self._active = kid
            self._write()
            return kid

    def retire(self, kid: str) -> None:
        """Remove a key: what it signed no longer verifies, what it encrypted no longer decrypts."""
        with self._lock:
            self._read()
            if kid not in self._keys:
                raise NotFound(f"no key {kid!r} in {self.path.name}")
            if kid == self._active:
                raise ConfigError(f"key {kid} is the active key: rotate before retiring it")
            del self._keys[kid]
            self._write()

    # --- file ----------------------------------------------------------------------------------

    def _load_or_create(self) -> None:
        with self._lock:
            if self.path.exists():
                self._read()
                return
            kid = _new_kid()
            self._keys = {kid: secrets.token_bytes(self.key_bytes)}
            self._active = kid
            self._write()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            keys = {kid: base64.b64decode(entry["key"]) for kid, entry in data["keys"].items()}
            created = {kid: str(entry.get("created_at", "")) for kid, entry in data["keys"].items()}
            active = data["active"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: not a readable key ring ({type(exc).__name__})") from None
        if active not in keys:
            raise ConfigError(f"{self.path}: the active key {active!r} is not in the ring")
        self._keys, self._created, self._active = keys, created, active
        self._mtime = self.path.stat().st_mtime_ns

    def _write(self) -> None:
        now = datetime.now(UTC).isoformat()
        data = {"active": self._active,
                "keys": {kid: {"key": base64.b64encode(key).decode(), "created_at": self._created.setdefault(kid, now)}
                         for kid, key in self._keys.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime_ns


def _new_kid() -> str:
    return "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
