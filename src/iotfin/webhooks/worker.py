"""The delivery worker: an asyncio task in `iotfin serve` that POSTs due deliveries, signed.

Each round claims due deliveries (database work in a thread), sends them concurrently with one
httpx.AsyncClient, and records every attempt. A 2xx marks a delivery delivered; anything else
(status, timeout, refused connection) schedules a retry with exponential backoff and jitter, up to
`max_attempts`. Delivery is at-least-once: receivers deduplicate on the event id header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from iotfin.core.errors import ValidationError
from iotfin.webhooks.model import MAX_ATTEMPTS
from iotfin.webhooks.service import Job, WebhookService
from iotfin.webhooks.signing import ATTEMPT_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)


class DeliveryWorker:
    def __init__(self, service: WebhookService, *, poll_s: float = 1.0, timeout_s: float = 10.0,
                 batch: int = 20, max_attempts: int = MAX_ATTEMPTS, base_backoff_s: float = 2.0,
                 backoff: Callable[[int], float] | None = None):
        self.service = service
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.batch = batch
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.backoff = backoff
        self.lease_s = timeout_s * 3
        self._client: httpx.AsyncClient | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; an error in one round is logged and the next round goes on."""
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            self._client = client
            while not stop.is_set():
                try:
                    sent = await self.run_once()
                except Exception:  # noqa: BLE001 - a worker outlives one bad round (e.g. database restart)
                    log.exception("webhook delivery round failed")
                    sent = 0
                if sent == 0:
                    try:
                        await asyncio.wait_for(stop.wait(), self.poll_s)
                    except TimeoutError:
                        pass
        self._client = None

    async def run_once(self) -> int:
        """One round: claim what is due and send it. Returns how many attempts were made."""
        jobs = await asyncio.to_thread(self.service.claim_due, self.batch, self.lease_s)
        if not jobs:
            return 0
        if self._client is None:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
                await asyncio.gather(*(self._send(client, job) for job in jobs))
        else:
            await asyncio.gather(*(self._send(self._client, job) for job in jobs))
        return len(jobs)

    async def _send(self, client: httpx.AsyncClient, job: Job) -> None:
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(job.secret, job.body),
                   EVENT_ID_HEADER: job.event_id, EVENT_TYPE_HEADER: job.event_type,
                   ATTEMPT_HEADER: str(job.attempt), "User-Agent": "iotfin-webhooks/1"}
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            # re-resolved and re-checked at every attempt, and the connection pinned to the checked address
            target = await asyncio.to_thread(self.service.target, job.url)
            response = await client.post(target.url, content=job.body, headers=headers | target.headers,
                                         extensions=target.extensions)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except ValidationError as exc:
            error = f"refused: {exc}"[:300]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        duration_ms = int((time.perf_counter() - started) * 1000)
        await asyncio.to_thread(self.service.record_attempt, job, status, error, duration_ms,
                                self.max_attempts, self.base_backoff_s, self.backoff)
