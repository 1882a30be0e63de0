"""The garbage collector of a long-running serving process (`iotfin serve`, its ingest and API workers).

CPython's cyclic collector runs a full collection once enough objects have survived the younger
generations, and each full collection walks every tracked object. A serving process holds ~234,000
of them after start-up (the modules, the app, SQLAlchemy, pyarrow), a walk of ~116 ms. Under device
load, the objects of messages in flight (futures, tasks, buffers) survive long enough to trigger it
again and again. Measured with `bench/ingest_e2e.py --ingest-workers 2` (docs/benchmarks.md, "The
ingest workers' garbage collector"), in server CPU per message:
- the default collector: 94 µs;
- `gc.freeze()` alone: 56 µs;
- with the thresholds below as well: 40 µs.

(50,000, 20, 100) was 35 µs, but it holds more cyclic garbage between collections.

So, once a process has started serving:
- the objects of start-up, which live as long as the process, are frozen out of every collection;
- the young generation is collected every 10,000 allocations instead of every 700.

Cyclic garbage then waits a little longer to be freed; nothing else changes.
"""

from __future__ import annotations

import gc

#: (generation 0, 1, 2) thresholds: see the module's docstring; CPython's defaults are (700, 10, 10)
SERVING_THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """Collect the garbage of start-up, freeze what is left, and set the serving thresholds. Call
    it once the process has built its app and servers, before the traffic comes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
