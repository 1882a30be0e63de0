"""Per-client rate limits: a token bucket per client id, in memory in the serving process.

Hand-written rather than a library (slowapi, pyrate-limiter): the whole algorithm is the ten lines of
`take`, it must run inside the auth dependency where the client id is known, and a per-process bucket
is what a single API node needs. Several API nodes each enforce the limit on their own share of the
traffic (documented in docs/api.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from iotfin.core.errors import TooManyRequests


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 100_000):
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill time)
        self._lock = threading.Lock()

    def take(self, client: str, cost: float = 1.0) -> None:
        """Spend `cost` tokens of the client's bucket, or raise TooManyRequests saying when to retry."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[client] = (tokens, now)
                raise TooManyRequests(f"rate limit of {self.rate:g} requests/s (burst {self.burst:g}) exceeded",
                                      retry_after=(cost - tokens) / self.rate)
            if len(self._buckets) >= self.max_clients and client not in self._buckets:
                self._evict_full(now)
            self._buckets[client] = (tokens - cost, now)

    def _evict_full(self, now: float) -> None:
        # A bucket that has refilled completely carries no state worth keeping.
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[key]
