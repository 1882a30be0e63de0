"""The one ingest use case every transport calls: validate, quarantine the bad, durably store the good."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import prometheus_client
import pyarrow as pa

from iotfin.core.metrics import REGISTRY
from iotfin.core.time import now_ms
from iotfin.ingest.ports import DeviceDirectory
from iotfin.ingest.quarantine import QuarantineStore
from iotfin.ingest.validate import REASON_CODE, REASONS, Limits, validate
from iotfin.telemetry.model import READING_SCHEMA
from iotfin.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)
# prometheus_client's Counter; the module's `Counter` above is collections.Counter.
SUBSCRIBER_ERRORS = prometheus_client.Counter(
    "iotfin_ingest_subscriber_errors_total", "ingest on_commit subscribers that raised (the commit stood)",
    ["subscriber"], registry=REGISTRY)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    @staticmethod
    def from_reasons(reasons: np.ndarray) -> IngestResult:
        result = IngestResult(accepted=int((reasons == 0).sum()),
                              duplicates=int((reasons == REASON_CODE["duplicate_in_batch"]).sum()))
        rejected = reasons[(reasons != 0) & (reasons != REASON_CODE["duplicate_in_batch"])]
        if rejected.size:
            codes, counts = np.unique(rejected, return_counts=True)
            result.rejected = int(rejected.size)
            result.rejected_by_reason.update({REASONS[c]: int(n) for c, n in zip(codes, counts, strict=True)})
        return result

    def __iadd__(self, other: IngestResult) -> IngestResult:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.rejected_by_reason.update(other.rejected_by_reason)
        return self


class IngestService:
    def __init__(self, registry: DeviceDirectory, store: TelemetryStore, quarantine: QuarantineStore,
                 retention_days: int = 3650, anchor: Callable[[int, pa.Table], object] | None = None,
                 load_devices: Callable[[np.ndarray], object] | None = None,
                 on_commit: list[Callable[[pa.Table], object]] | None = None):
        self.registry = registry
        self.store = store
        self.quarantine = quarantine
        # Called with (batch seq, stored readings) after each durable append: the ledger's leaf for it.
        self.anchor = anchor
        # Called with device ids before validation, to register devices created elsewhere meanwhile.
        self.load_devices = load_devices
        self.retention_ms = retention_days * 86_400_000
        # Called in order with the stored readings after each durable append (e.g. the monitor's
        # streaming signals); append to subscribe.
        self.on_commit: list[Callable[[pa.Table], object]] = list(on_commit or [])
        self.subscriber_errors = 0
        self._failed_subscribers: set[str] = set()

    def ingest(self, readings: pa.Table, transport: str = "batch", now: int | None = None) -> IngestResult:
        """Store what is valid, quarantine what is not. Returns only after the good rows are durable,
        so a caller may acknowledge `accepted` readings as soon as this returns."""
        return IngestResult.from_reasons(self.ingest_rows(readings, transport, now))

    def ingest_rows(self, readings: pa.Table, transport: str = "batch", now: int | None = None) -> np.ndarray:
        """Like `ingest`, returning the reason code of every row (0 = stored) so a caller that merged
        several senders' readings into one commit can tell each sender what became of its own."""
        readings = readings.select(READING_SCHEMA.names).cast(READING_SCHEMA)
        if self.load_devices is not None and readings.num_rows:
            self.load_devices(readings["device_id"].to_numpy())
        reasons = validate(readings, self.registry, Limits(now_ms=now if now is not None else now_ms(),
                                                           retention_ms=self.retention_ms))
        rejected_mask = (reasons != 0) & (reasons != REASON_CODE["duplicate_in_batch"])
        if rejected_mask.any():
            names = np.asarray(REASONS, dtype=object)[reasons[rejected_mask]]
            self.quarantine.put(readings.filter(pa.array(rejected_mask)), names, transport)
        accepted_mask = reasons == 0
        if accepted_mask.any():
            stored = readings.filter(pa.array(accepted_mask))
            appended = self.store.append(stored)
            if self.anchor is not None:
                # After the append, not inside it: a crash in between leaves a stored batch without a
                # leaf, which `iotfin ledger audit` reports; never a leaf for readings not stored.
                self.anchor(appended.seq, stored)
            for subscriber in self.on_commit:
                # The readings are durable and anchored: a failing subscriber (the monitor, say) must
                # not turn that into a failed commit the sender would retry. Logged and counted.
                try:
                    subscriber(stored)
                except Exception:
                    name = getattr(subscriber, "__qualname__", type(subscriber).__name__)
                    SUBSCRIBER_ERRORS.labels(subscriber=name).inc()
                    self.subscriber_errors += 1
                    # The traceback once per subscriber, then one line per failure: a subscriber that
                    # fails on every commit must not flood the log.
                    first = name not in self._failed_subscribers
                    self._failed_subscribers.add(name)
                    log.error("ingest on_commit subscriber %s failed on a batch of %d readings (the commit "
                              "stands)", name, stored.num_rows, exc_info=first)
        return reasons
