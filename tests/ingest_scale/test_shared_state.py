"""What ingest workers share goes through the database and the store, not process memory: a device
status set by another process reaches this one's registry on the next poll, and a telemetry batch is
anchored in the ledger exactly once whoever anchors it (its writer, or the supervisor's repair after
the writer was killed between the append and the anchor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.ingest.ports import STATUS_ACTIVE, STATUS_INACTIVE
from tests.ingest_faults.conftest import T0


def leaves(ws: Workspace) -> int:
    return ws.ledger.store.size()


def test_a_status_set_elsewhere_reaches_every_worker_on_the_next_poll(tmp_path: Path) -> None:
    worker = Workspace(Settings(data_dir=tmp_path / "ws"))
    worker.initialise()
    operator = Workspace(Settings(data_dir=tmp_path / "ws"))  # another process: the CLI, another worker
    a, b = operator.devices.create(), operator.devices.create()
    worker.registry  # noqa: B018 - the worker's registry as loaded at its start
    from iotfin.devices.store import register_missing  # noqa: PLC0415 - what a worker does on a first message

    register_missing(worker.engine, worker.registry, np.array([a.id, b.id]))
    known = worker.devices.refresh_statuses(None)
    assert known == {}
    closed: list[int] = []
    worker.devices.revocation_listeners.append(closed.append)

    operator.devices.set_status(a.id, "inactive")
    assert worker.registry.lookup(np.array([a.id]))[1][0] == STATUS_ACTIVE  # not yet: nothing polled
    known = worker.devices.refresh_statuses(known)
    assert worker.registry.lookup(np.array([a.id, b.id]))[1].tolist() == [STATUS_INACTIVE, STATUS_ACTIVE]
    assert closed == [a.id]  # its live sessions on this worker are closed

    operator.devices.set_status(a.id, "active")  # back again: seen too
    known = worker.devices.refresh_statuses(known)
    assert worker.registry.lookup(np.array([a.id]))[1][0] == STATUS_ACTIVE
    assert known == {} and closed == [a.id]


def test_a_batch_is_anchored_once_whoever_anchors_it(tmp_path: Path) -> None:
    ws = Workspace(Settings(data_dir=tmp_path / "ws"))
    ws.initialise()
    readings = pa.table({"device_id": pa.array([1, 1, 2], pa.int64()), "key": ["a", "b", "a"],
                         "ts": pa.array([T0, T0, T0 + 1], pa.int64()), "value": [1.5, 2.0, 3.25]})
    # a worker killed between its durable append and its anchor: the batch is stored, not anchored
    appended = ws.telemetry.append(readings)
    size = leaves(ws)
    assert ws.ledger.anchor_stored_batches(ws.settings.resolved_telemetry_dir, min_age_s=60) == []  # too young
    assert ws.ledger.anchor_stored_batches(ws.settings.resolved_telemetry_dir, min_age_s=0) == [appended.seq]
    assert leaves(ws) == size + 1
    assert ws.ledger.anchor_stored_batches(ws.settings.resolved_telemetry_dir, min_age_s=0) == []
    # the writer, late, anchors it too: no second leaf, the same one
    first = ws.ledger.store.leaf(size)
    index = ws.ledger.anchor_telemetry_batch(appended.seq, readings)
    assert index == size and leaves(ws) == size + 1
    assert ws.ledger.store.leaf(index).payload == first.payload
    # and the leaf the repair wrote proves the stored readings (same root as the writer's)
    bundle = ws.ledger.prove("telemetry_batch", f"seq-{appended.seq}")
    assert bundle["record"]["body"]["readings"] == 3
    assert ws.ledger.audit(telemetry_root=ws.settings.resolved_telemetry_dir)["ok"]
