"""A serving process settles its heap once started: start-up's objects frozen out of collection,
the serving thresholds set (iotfin.app.heap; the measurement is in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from iotfin.app.heap import SERVING_THRESHOLDS

PROBE = """
import gc, json
from iotfin.app.heap import settle_heap
before = (gc.get_freeze_count(), gc.get_threshold())
garbage = []
garbage.append(garbage)  # a cycle: start-up garbage is collected, not frozen
del garbage
settle_heap()
print(json.dumps({"frozen_before": before[0], "frozen": gc.get_freeze_count(), "thresholds": gc.get_threshold(),
                  "tracked_young": len(gc.get_objects(0))}))
"""


def test_settle_heap_freezes_start_up_and_sets_the_thresholds() -> None:
    # in a fresh interpreter: freezing the test process's heap would change every later test's
    out = json.loads(subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True).stdout)
    assert out["frozen_before"] == 0
    assert out["frozen"] > 1_000  # the modules' objects, at least
    assert tuple(out["thresholds"]) == SERVING_THRESHOLDS
    assert out["tracked_young"] < 100  # what is left to collect is only what came after
