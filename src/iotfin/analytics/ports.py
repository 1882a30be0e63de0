"""What the industry indices need from other contexts: the consent decision on a firm's data (for a
firm's activity relative to its peers). The composition root plugs in the consent service, which logs
every decision to the enterprise's access log."""

from __future__ import annotations

from datetime import date
from typing import Protocol


class ConsentDecision(Protocol):
    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class Consent(Protocol):
    def check(self, recipient: str, enterprise_id: int, scope: str, purpose: str, data_range: tuple[date, date],
              *, detail: str) -> ConsentDecision:
        """Decide (and log) one read of the enterprise's data."""
        ...
