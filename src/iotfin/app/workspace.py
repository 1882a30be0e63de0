"""A workspace: the settings and the stores they name, opened once and shared by CLI, API and demo."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from iotfin.consent.service import ConsentService
from iotfin.core.settings import Settings
from iotfin.db import migrate
from iotfin.db.engine import make_engine
from iotfin.devices.registry import DeviceRegistry
from iotfin.devices.runtime import DeviceRuntime
from iotfin.devices.service import DeviceService
from iotfin.devices.store import ensure_profiles, load_registry, register_missing
from iotfin.financing.service import FinancingRegistry
from iotfin.ingest.quarantine import QuarantineStore
from iotfin.ingest.service import IngestService
from iotfin.ledger.service import LedgerService, load_or_create_signer
from iotfin.lending.service import LendingService
from iotfin.telemetry.store import TelemetryStore


class Workspace:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = Path(settings.data_dir)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.resolved_database_url)

    @cached_property
    def telemetry(self) -> TelemetryStore:
        return TelemetryStore(self.settings.resolved_telemetry_dir)

    @cached_property
    def quarantine(self) -> QuarantineStore:
        return QuarantineStore(self.data_dir / "quarantine")

    @cached_property
    def registry(self) -> DeviceRegistry:
        return load_registry(self.engine)

    @cached_property
    def ingest(self) -> IngestService:
        return IngestService(self.registry, self.telemetry, self.quarantine,
                             retention_days=self.settings.telemetry_retention_days,
                             anchor=self.ledger.anchor_telemetry_batch,
                             load_devices=lambda ids: register_missing(self.engine, self.registry, ids))

    @cached_property
    def ledger(self) -> LedgerService:
        return LedgerService(self.engine, load_or_create_signer(self.data_dir / "ledger.key"))

    @cached_property
    def devices(self) -> DeviceService:
        return DeviceService(self.engine, self.registry)

    @cached_property
    def device_runtime(self) -> DeviceRuntime:
        """Provenance guard, device events and online/offline state of the serving process."""
        return DeviceRuntime(self.engine, self.registry,
                             load_devices=lambda ids: register_missing(self.engine, self.registry, ids))

    def reload_registry(self) -> None:
        """Rebuild the in-memory device registry (and what holds it) after bulk device changes."""
        for name in ("registry", "ingest", "devices", "device_runtime"):
            self.__dict__.pop(name, None)

    @cached_property
    def financing(self) -> FinancingRegistry:
        return FinancingRegistry(self.engine, anchor=lambda lien_id: self.ledger.anchor_from_source("lien", [lien_id], checkpoint=False))

    @cached_property
    def lending(self) -> LendingService:
        return LendingService(self.engine, anchor=lambda loan_id: self.ledger.anchor_from_source(
            "loan_contract", [loan_id], checkpoint=False))

    @cached_property
    def consent(self) -> ConsentService:
        return ConsentService(self.engine, anchor=lambda ids: self.ledger.anchor_from_source("consent_grant", ids, checkpoint=False))
    # --- open API: identity, webhooks, customer protection (docs/api.md, docs/protection.md) -------

    @cached_property
    def tokens(self):  # noqa: ANN201 - lazy imports keep the CLI's start fast
        from iotfin.identity.keyring import KeyRing
        from iotfin.identity.tokens import TokenIssuer

        return TokenIssuer(KeyRing(self.data_dir / "token_keys.json"), ttl_s=self.settings.token_ttl_s)

    @cached_property
    def identity(self):  # noqa: ANN201
        from iotfin.identity.service import IdentityService

        return IdentityService(self.engine, self.tokens)

    @cached_property
    def pii(self):  # noqa: ANN201
        from iotfin.identity.keyring import KeyRing
        from iotfin.protection.crypto import FieldCipher

        return FieldCipher(KeyRing(self.data_dir / "pii_keys.json"))

    @cached_property
    def webhooks(self):  # noqa: ANN201
        from iotfin.webhooks.model import Allowlist
        from iotfin.webhooks.service import WebhookService

        return WebhookService(self.engine, self.pii, Allowlist.parse(self.settings.webhook_allow_hosts))

    @cached_property
    def protection(self):  # noqa: ANN201
        from iotfin.protection.relief import LendingRelief
        from iotfin.protection.service import ProtectionService

        return ProtectionService(self.engine, self.pii, ack_hours=self.settings.complaint_ack_hours,
                                 resolve_days=self.settings.complaint_resolve_days, events=self.webhooks.emit,
                                 relief=LendingRelief(self.lending))

    @property
    def enterprise_model_dir(self) -> Path:
        """Where the enterprise three-dimension model is trained (the demo's rating step)."""
        return self.data_dir / "models" / "enterprise"

    def risk_assessor(self):  # noqa: ANN201
        """The online risk assessor (features within consent + the enterprise model) once a model
        has been trained in this workspace, else None; looked for again on the next call."""
        if "_assessor" not in self.__dict__:
            from iotfin.risk.assess import OnlineAssessor, has_model

            if not has_model(self.enterprise_model_dir):
                return None
            self._assessor = OnlineAssessor(self, self.enterprise_model_dir)
        return self._assessor

    def initialise(self) -> str | None:
        """Apply migrations and seed the standard device profiles; safe to run any number of times."""
        revision = migrate.upgrade(self.engine)
        with self.engine.begin() as conn:
            ensure_profiles(conn)
        if self.protection.plaintext_left():  # rows from before personal data was encrypted (0013)
            self.protection.reencrypt()
        self.reload_registry()
        return revision

    def close(self) -> None:
        if "consent" in self.__dict__:
            self.consent.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
