"""What the adapters (HTTP routers, device transports) reach: the platform's services by context.

The composition root (`iotfin.app.workspace.Workspace`) provides them and puts them on
`app.state.workspace`; adapters type against this Protocol and never import the composition root,
which sits above them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # names for annotations only: the adapters import these modules themselves
    from sqlalchemy import Engine

    from iotfin.consent.service import ConsentService
    from iotfin.core.settings import Settings
    from iotfin.devices.registry import DeviceRegistry
    from iotfin.devices.runtime import DeviceRuntime
    from iotfin.devices.service import DeviceService
    from iotfin.financing.service import FinancingRegistry
    from iotfin.ingest.quarantine import QuarantineStore
    from iotfin.ingest.service import IngestService
    from iotfin.ledger.service import LedgerService
    from iotfin.lending.service import LendingService
    from iotfin.telemetry.store import TelemetryStore


class Platform(Protocol):
    settings: Settings
    data_dir: Path
    engine: Engine
    telemetry: TelemetryStore
    quarantine: QuarantineStore
    registry: DeviceRegistry
    ingest: IngestService
    ledger: LedgerService
    devices: DeviceService
    device_runtime: DeviceRuntime
    financing: FinancingRegistry
    lending: LendingService
    consent: ConsentService
    identity: Any
    onboarding: Any
    protection: Any
    webhooks: Any
    pii: Any

    def device_runtime_started(self) -> bool:
        """Whether this process runs the device runtime (a device-serving process) — not built on demand."""
        ...
