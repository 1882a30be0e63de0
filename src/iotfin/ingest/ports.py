"""What ingest needs from the devices context, plugged in by the composition root.

Ingest checks every reading against the fleet: is the device known, active, and is the metric one
its profile accepts, within bounds? The devices context's in-memory `DeviceRegistry` answers that;
ingest only knows it through this Protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

# The status codes `DeviceDirectory.lookup` answers (the devices registry stores exactly these).
STATUS_UNKNOWN, STATUS_ACTIVE, STATUS_INACTIVE, STATUS_REVOKED = 0, 1, 2, 3


class MetricBounds(Protocol):
    @property
    def min(self) -> float: ...

    @property
    def max(self) -> float: ...


class ProfileBounds(Protocol):
    def spec(self, key: str) -> MetricBounds | None:
        """The metric's bounds in this profile, or None when the profile does not accept it."""
        ...


class DeviceDirectory(Protocol):
    @property
    def profiles(self) -> Sequence[ProfileBounds]: ...

    def lookup(self, device_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(profile index, status code) per device id; profile -1 and STATUS_UNKNOWN for an unknown id."""
        ...

    def __len__(self) -> int: ...
