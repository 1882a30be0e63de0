"""A workspace: the settings and the stores they name, opened once and shared by CLI, API and demo."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from iotfin.app.events import WebhookEvents
from iotfin.app.ledger_records import record_loaders
from iotfin.app.lending_offers import LendingOffers
from iotfin.app.lending_relief import LendingRelief
from iotfin.app.monitor_ports import RiskTradeFeatures, SupplyChainDocuments
from iotfin.app.receivables_evidence import title_bundle
from iotfin.app.receivables_ports import (
    LendingDiscountLoans,
    RegistryLiens,
    SupplyChainEvidence,
    gl_settlement,
    in_one_chain,
    latest_rating,
)
from iotfin.app.risk_ports import RecordSources, RiskConsent
from iotfin.consent.model import REASONS
from iotfin.consent.service import ConsentService
from iotfin.core.settings import Settings
from iotfin.core.time import business_date, utc_now
from iotfin.db import migrate
from iotfin.db.engine import make_engine
from iotfin.decision.ports import Assess
from iotfin.decision.service import DecisionService
from iotfin.devices.registry import DeviceRegistry
from iotfin.devices.runtime import DeviceRuntime
from iotfin.devices.service import DeviceService
from iotfin.devices.store import ensure_profiles, load_registry, register_missing
from iotfin.financing.service import FinancingRegistry
from iotfin.identity.crypto import FieldCipher
from iotfin.identity.keyring import KeyRing
from iotfin.identity.onboarding import OnboardingService
from iotfin.identity.service import IdentityService
from iotfin.identity.sessions import ConsoleSessions
from iotfin.identity.tokens import TokenIssuer
from iotfin.ingest.quarantine import QuarantineStore
from iotfin.ingest.service import IngestService
from iotfin.ledger.service import LedgerService, load_or_create_signer
from iotfin.lending.closing import ScheduledClose
from iotfin.lending.disclosure import offer_terms
from iotfin.lending.offers import OfferService
from iotfin.lending.service import LendingService
from iotfin.monitor.service import MonitorService
from iotfin.protection.service import ProtectionService
from iotfin.receivables.group_commit import defer_anchor
from iotfin.receivables.model import Limits
from iotfin.receivables.service import Ports as ReceivablesPorts
from iotfin.receivables.service import ReceivablesService
from iotfin.supplychain.store import core_enterprise_of
from iotfin.telemetry.store import TelemetryStore
from iotfin.webhooks.model import Allowlist
from iotfin.webhooks.service import WebhookService

if TYPE_CHECKING:  # annotations only: these load pandas, DuckDB and LightGBM
    from iotfin.analytics.service import IndustryService
    from iotfin.risk.features.engine import FeatureEngine
    from iotfin.risk.scorecards import ScorecardService
    from iotfin.risk.service import RatingService


class Workspace:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        # The demo's bulk-load monitor, subscribed to ingest; a server's monitor takes its place.
        self.bulk_load_monitor: Callable[[Any], Any] | None = None

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
        return LedgerService(self.engine, load_or_create_signer(self.data_dir / "ledger.key"),
                             loaders=record_loaders())

    @cached_property
    def devices(self) -> DeviceService:
        return DeviceService(self.engine, self.registry)

    @cached_property
    def device_runtime(self) -> DeviceRuntime:
        """Provenance guard, device events and online/offline state of the serving process."""
        return DeviceRuntime(self.engine, self.registry,
                             load_devices=lambda ids: register_missing(self.engine, self.registry, ids))

    def device_runtime_started(self) -> bool:
        """Whether this process runs the device runtime (a device-serving process) — not built on demand."""
        return "device_runtime" in self.__dict__

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
            "loan_contract", [loan_id], checkpoint=False), events=self.events,
            simulation=self.settings.simulation, due_notice_days=self.settings.repayment_due_notice_days,
            rate_ceiling=Decimal(self.settings.lending_rate_ceiling))

    @cached_property
    def offers(self) -> OfferService:
        """Offers of approved decisions: accepted by the enterprise (offer.accepted), booked by their lender."""
        return OfferService(self.engine, self.lending, validity_days=self.settings.offer_validity_days,
                            events=self.events)

    @cached_property
    def receivables(self) -> ReceivablesService:
        """Digital debt vouchers (docs/receivables.md): every operation anchored in the ledger in its own
        transaction; lien, discount loan and GL postings in the same one (iotfin.app.receivables_ports)."""
        ledger = self.ledger

        def with_the_batch(type_name: str):  # noqa: ANN202 - a port over the ledger, one record type
            def anchor(conn: Connection, record_id: str) -> None:
                # the record as it stands now, anchored in the batch's one ledger append
                [(_, body)] = ledger.current(conn, type_name, [record_id])
                if not defer_anchor(conn, type_name, record_id, body):
                    ledger.anchor(type_name, [(record_id, body)], checkpoint=False, conn=conn)
            return anchor

        ports = ReceivablesPorts(evidence=SupplyChainEvidence(self.telemetry), relations=in_one_chain,
                                 rating=latest_rating,
                                 loans=LendingDiscountLoans(self.lending, with_the_batch("loan_contract")),
                                 liens=RegistryLiens(with_the_batch("lien")), settlement=gl_settlement,
                                 anchor=ledger.anchor_records, events=self.events)
        s = self.settings
        limits = Limits(max_term_months=s.receivable_max_term_months,
                        min_part_fen=int(Decimal(s.receivable_min_part) * 100), max_depth=s.receivable_max_depth)
        return ReceivablesService(self.engine, ports, limits)

    def voucher_evidence(self, voucher_id: int) -> dict[str, Any]:
        """A voucher's chain of title as an offline-verifiable bundle (iotfin.app.receivables_evidence)."""
        return title_bundle(self.ledger, self.receivables, voucher_id)

    @cached_property
    def scheduled_close(self) -> ScheduledClose:
        """The close under its cross-process lock, its runs recorded; `iotfin serve` ticks it (close_at)."""
        return ScheduledClose(self.lending, close_at=self.settings.close_at)

    @cached_property
    def consent(self) -> ConsentService:
        return ConsentService(self.engine, anchor=lambda ids: self.ledger.anchor_from_source("consent_grant", ids, checkpoint=False),
                              events=self.events)
    # --- open API: identity, webhooks, customer protection (docs/api.md, docs/protection.md) -------

    @cached_property
    def tokens(self) -> TokenIssuer:
        return TokenIssuer(KeyRing(self.data_dir / "token_keys.json"), ttl_s=self.settings.token_ttl_s)

    @cached_property
    def identity(self) -> IdentityService:
        return IdentityService(self.engine, self.tokens)

    @cached_property
    def console_sessions(self) -> ConsoleSessions:
        """Console sign-ins, server-side (docs/console.md#sign-in)."""
        return ConsoleSessions(self.engine, self.identity, idle=timedelta(minutes=self.settings.console_idle_minutes),
                               lifetime=timedelta(hours=self.settings.console_session_hours),
                               max_failures=self.settings.console_max_failed_sign_ins,
                               failure_window=timedelta(minutes=15))

    @cached_property
    def onboarding(self) -> OnboardingService:
        """Tenants, enterprises (legal representative encrypted), sites and enterprise users (docs/onboarding.md)."""
        return OnboardingService(self.engine, self.pii, self.identity)

    @cached_property
    def pii(self) -> FieldCipher:
        return FieldCipher(KeyRing(self.data_dir / "pii_keys.json"))

    @cached_property
    def events(self) -> WebhookEvents:
        """The contexts' Events port: webhook events in the caller's transaction (iotfin.app.events)."""
        return WebhookEvents(self.webhooks)

    @cached_property
    def webhooks(self) -> WebhookService:
        return WebhookService(self.engine, self.pii, Allowlist.parse(self.settings.webhook_allow_hosts))

    @cached_property
    def protection(self) -> ProtectionService:
        return ProtectionService(self.engine, self.pii, ack_hours=self.settings.complaint_ack_hours,
                                 resolve_days=self.settings.complaint_resolve_days, events=self.webhooks.emit,
                                 relief=LendingRelief(self.lending))

    # --- credit decisioning: the submit use case's ports ------------------------------------------

    def decisions(self, assess: Assess | None = None) -> DecisionService:
        """A decision service wired to this workspace: decisions anchored in the ledger (in their own
        transaction), the lender's consent checked and logged, the risk engine once a model is
        trained, and lending's key facts for the APR; `assess` fixes the assessment (tests, benchmarks)."""

        return DecisionService(self.engine, assess=assess, apr=offer_terms,
                               anchor=lambda conn, decision_id: self.ledger.anchor_from_source(
                                   "credit_decision", [decision_id], checkpoint=False, conn=conn),
                               consent=self.credit_report_consent, risk_engine=self.risk_assessor,
                               core_of=core_enterprise_of, events=self.events, offers=LendingOffers(self.offers))

    @cached_property
    def decision(self) -> DecisionService:
        return self.decisions()

    def credit_report_consent(self, lender: str, enterprise_id: int, *, detail: str, conn: Any = None,
                              log: bool = True) -> str | None:
        """Decisioning's consent port: may `lender` read the enterprise's credit report for a credit
        assessment today? None if so, else the refusal (zh/en)."""

        today = business_date(utc_now())
        decision = self.consent.check(lender, enterprise_id, "credit_report", "credit_assessment", (today, today),
                                      detail=detail, conn=conn, log=log)
        if decision.allowed:
            return None
        zh, en = REASONS[decision.reason]
        return f"no consent from enterprise {enterprise_id} for credit_report (credit_assessment): {en} / {zh}"

    @property
    def enterprise_model_dir(self) -> Path:
        """Where the enterprise three-dimension model is trained (the demo's rating step)."""
        return self.data_dir / "models" / "enterprise"

    def risk_assessor(self):  # noqa: ANN201
        """The online risk assessor: the promoted champion enterprise model once one exists, else the
        active bootstrap scorecard (published from the shipped one on first use) — never None. Both
        score the features within the lender's consent; the champion and the active scorecard are
        looked up on every call, so a promotion or activation from another process takes effect at
        the next application (docs/risk.md)."""
        # lazy, as the risk imports below: the risk engine brings pandas and LightGBM
        from iotfin.app.assessment import BootstrapAssessor, OnlineAssessor
        from iotfin.risk.models.champion import (
            champion_dir,  # lazy: the risk engine brings pandas and LightGBM
        )

        champion = champion_dir(self.enterprise_model_dir)
        if champion is not None:
            key: tuple[str, Any] = ("model", champion.name)
            if self.__dict__.get("_assessor_key") != key:
                self._assessor = OnlineAssessor(self.features, self.enterprise_model_dir, version_dir=champion)
                self._assessor_key = key
            return self._assessor
        version, card = self.scorecards.active()
        key = ("bootstrap", version)
        if self.__dict__.get("_assessor_key") != key:
            self._assessor = BootstrapAssessor(self.features, version, card)
            self._assessor_key = key
        return self._assessor

    @cached_property
    def scorecards(self) -> ScorecardService:
        """Bootstrap scorecard versions: published, activated (iotfin.risk.scorecards)."""
        from iotfin.risk.scorecards import (
            ScorecardService,  # lazy: the risk engine brings pandas and LightGBM
        )

        return ScorecardService(self.engine)

    def promote_model(self, version: str, *, by: str, note: str | None = None) -> dict[str, Any]:
        """Make a trained enterprise model version the champion: verified, anchored in the ledger
        (`model_promotion`), logged beside the versions (iotfin.risk.models.champion)."""
        from iotfin.risk.models.champion import promote  # lazy: the risk engine brings pandas and LightGBM

        return promote(self.enterprise_model_dir, version, by=by, note=note,
                       anchor=lambda rid, body: self.ledger.anchor("model_promotion", [(rid, body)], checkpoint=True))

    def model_versions(self) -> list[dict[str, Any]]:
        from iotfin.risk.models.champion import versions  # lazy: the risk engine brings pandas and LightGBM

        return versions(self.enterprise_model_dir)

    def train_enterprise(self, **kwargs: Any) -> dict[str, Any]:
        """Train the enterprise model from this platform's own book (iotfin.app.rating); not promoted."""
        from iotfin.app.rating import train_enterprise  # lazy: the risk engine brings pandas and LightGBM

        return train_enterprise(self, **kwargs)

    def rerate(self, on: Any = None) -> dict[str, Any]:
        """Re-rate enterprises with active loans or open consents now (iotfin.app.rating)."""
        from iotfin.app.rating import rerate  # lazy: the risk engine brings pandas and LightGBM

        return rerate(self, on)

    # --- risk and monitoring: their ports, filled from the contexts that own the data --------------

    @cached_property
    def features(self) -> FeatureEngine:
        """The credit features of this workspace, and its online snapshots: consent through the consent
        service, device and trade rows from their contexts (`iotfin.app.risk_ports`)."""
        from iotfin.risk.features.engine import FeatureEngine  # lazy: DuckDB and pyarrow, on first use

        return FeatureEngine(self.engine, self.telemetry, self.data_dir, RiskConsent(self.consent), RecordSources())

    @cached_property
    def ratings(self) -> RatingService:
        """Credit ratings recorded and read under the enterprises' consent."""
        from iotfin.risk.service import RatingService  # lazy: the risk engine brings pandas and LightGBM

        return RatingService(self.engine, RiskConsent(self.consent), RecordSources())

    @cached_property
    def industry(self) -> IndustryService:
        """Industry activity indices over this workspace's telemetry (docs/industry.md); a firm's relative
        activity is read under its consent through the consent service."""
        from iotfin.analytics.model import IndexSettings  # lazy: pandas and DuckDB, on first use
        from iotfin.analytics.service import IndustryService  # lazy: pandas and DuckDB, on first use

        return IndustryService(self.engine, self.telemetry, self.data_dir, consent=self.consent,
                               settings=IndexSettings(min_firms=self.settings.industry_min_firms))

    def monitor_service(self, meta: Any, **kwargs: Any) -> MonitorService:
        """A monitor service whose day-end trade checks evaluate the risk features' own definitions over
        this workspace's trade documents (`iotfin.app.monitor_ports`); `kwargs` as MonitorService's."""
        return MonitorService(meta, trade_features=RiskTradeFeatures(), trade_documents=SupplyChainDocuments(),
                              **kwargs)

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
