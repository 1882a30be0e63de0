"""Group commit: many concurrent senders, one durable write.

Every acknowledged reading must be on disk before the acknowledgement (an HTTP 2xx, an MQTT
PUBACK). Committing each message on its own would cost one sort and one fsync per message; instead
submissions that arrive while a commit is running (or within `max_delay_s` of the first) are merged
into the next commit, and each submitter is told what became of its own rows. Latency stays bounded
by one commit plus the delay; throughput grows with the number of concurrent senders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa

from iotfin.ingest.payloads import ParsedTelemetry
from iotfin.ingest.quarantine import QuarantineStore
from iotfin.ingest.service import IngestResult, IngestService


@dataclass
class _Submission:
    readings: pa.Table | ParsedTelemetry
    rows: int
    future: asyncio.Future[IngestResult]
    counters: list[tuple[int, int]] = field(default_factory=list)  # (device, message counter) it carries


def _merge(batch: list[_Submission]) -> pa.Table:
    """One table of every submission's rows, in order. Parsed messages are joined as Python lists and
    turned into Arrow once per commit: building a table per ~100-byte message cost more than the
    parsing (bench/ingest_e2e.py profile: `pa.table` per message was the largest cost on the loop)."""
    tables: list[pa.Table] = []
    run: ParsedTelemetry | None = None
    for s in batch:
        readings = s.readings
        if isinstance(readings, ParsedTelemetry) and not readings.columns:
            if run is None:
                run = ParsedTelemetry()
            run.device_ids += readings.device_ids
            run.keys += readings.keys
            run.ts += readings.ts
            run.values += readings.values
            continue
        if run is not None:
            tables.append(run.table())
            run = None
        # a table, or a parse that holds columnar readings (already Arrow)
        tables.append(readings.table() if isinstance(readings, ParsedTelemetry) else readings)
    if run is not None:
        tables.append(run.table())
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


class GroupCommitter:
    def __init__(self, ingest: IngestService, transport: str, max_delay_s: float = 0.002, max_rows: int = 1_000_000,
                 on_commit: Callable[[list[tuple[int, int]]], None] | None = None):
        self.ingest = ingest
        # Runs in the commit's thread after the readings are durable and before anyone hears so, with
        # the message counters the commit carried: provenance persists its high-water marks here.
        self.on_commit = on_commit
        self.transport = transport
        self.max_delay_s = max_delay_s
        self.max_rows = max_rows
        self._queue: list[_Submission] = []
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    async def submit(self, readings: pa.Table | ParsedTelemetry, counters: list[tuple[int, int]] | None = None) -> IngestResult:
        """Resolves once this submission's accepted rows are durable (or it was rejected). A parser's
        output is taken as it is (its `rejected` list is the caller's business)."""
        rows = readings.num_rows if isinstance(readings, pa.Table) else readings.rows
        if rows == 0:
            return IngestResult()
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run())
        submission = _Submission(readings, rows, loop.create_future(), counters or [])
        self._queue.append(submission)
        self._queued_rows += rows
        assert self._wake is not None
        self._wake.set()
        return await submission.future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _commit(self, batch: list[_Submission]) -> np.ndarray:
        reasons = self.ingest.ingest_rows(_merge(batch), self.transport)
        counters = [c for s in batch for c in s.counters]
        if self.on_commit is not None and counters:
            self.on_commit(counters)
        return reasons

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._queued_rows < self.max_rows:
                await asyncio.sleep(self.max_delay_s)  # let concurrent senders join this commit
            batch, self._queue, self._queued_rows = self._queue, [], 0
            if not batch:
                continue
            try:
                reasons = await asyncio.to_thread(self._commit, batch)
            except Exception as exc:  # noqa: BLE001 - every waiter must hear of the failure, then carry on
                for s in batch:
                    if not s.future.done():
                        s.future.set_exception(exc)
                continue
            self.commits += 1
            offsets = np.cumsum([0] + [s.rows for s in batch]).tolist()
            # per submission, the number of rows not plainly stored: most have none, and need no numpy
            not_stored = np.concatenate(([0], np.cumsum(reasons != 0))).tolist()
            for s, start, end in zip(batch, offsets[:-1], offsets[1:], strict=True):
                if not s.future.done():
                    s.future.set_result(IngestResult(accepted=s.rows) if not_stored[end] == not_stored[start]
                                        else IngestResult.from_reasons(reasons[start:end]))
            if self._queue:
                self._wake.set()


async def store_parsed(ingest_quarantine: QuarantineStore, committer: GroupCommitter, parsed: ParsedTelemetry,
                       device_id: int | None, counters: list[tuple[int, int]] | None = None,
                       ) -> tuple[IngestResult, dict[str, int]]:
    """What every transport does with a parsed message: keep the readings the parser refused in
    quarantine, commit the rest, and report (result, rejected count by reason, parser's and validator's)."""
    if parsed.rejected:
        items = [(orjson.dumps({"key": key, "value": raw}, default=str).decode(), reason)
                 for reason, key, raw in parsed.rejected]
        await asyncio.to_thread(ingest_quarantine.put_raw_many, items, committer.transport, device_id)
    result = await committer.submit(parsed, counters) if parsed.rows else IngestResult()
    rejected = dict(result.rejected_by_reason)
    for reason, _key, _raw in parsed.rejected:
        rejected[reason] = rejected.get(reason, 0) + 1
    return result, rejected
