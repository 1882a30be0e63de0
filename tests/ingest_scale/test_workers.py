"""`iotfin serve --ingest-workers 2` under load from real MQTT clients (paho-mqtt, QoS 1) and HTTP senders;
`kill -9` of one ingest worker mid-stream. The other worker keeps serving (new connections and the
clients that reconnect go to it), the supervisor starts a replacement, paho re-sends what was not
acknowledged, and afterwards every acknowledged reading is in the one telemetry store exactly once
(read back through the store), each with its own value, and each ledger leaf is for one batch."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from iotfin.devices.service import IssuedDevice
from iotfin.telemetry.store import TelemetryStore
from tests.ingest_faults.test_kill9 import KEYS, http_sender, message, stored
from tests.ingest_faults.test_kill9 import Sender as HttpSender
from tests.ingest_scale.conftest import WorkerServe, kill9

TELEMETRY = "v1/devices/me/telemetry"


@dataclass
class PahoSender:
    device: IssuedDevice
    protocol: int
    sent: set[int] = field(default_factory=set)
    by_mid: dict[int, int] = field(default_factory=dict)
    # (mid, refused, time) per PUBACK, appended by paho's network thread
    pubacks: list[tuple[int, bool, float]] = field(default_factory=list)
    connects: int = 0

    @property
    def acked(self) -> set[int]:
        return {self.by_mid[mid] for mid, refused, _ in list(self.pubacks) if not refused and mid in self.by_mid}

    @property
    def refused(self) -> list[int]:
        return [self.by_mid.get(mid, -1) for mid, refused, _ in list(self.pubacks) if refused]

    def acks_between(self, a: float, b: float) -> int:
        return sum(1 for _, refused, t in list(self.pubacks) if not refused and a < t < b)


def paho_publisher(port: int, sender: PahoSender, stop: threading.Event, window: int = 32) -> None:
    """A paho client (its own network thread, automatic reconnect, QoS 1 re-sent after a reconnect)
    publishing messages 0, 1, 2, … until `stop`, then waiting for every PUBACK. (Less than 65,535
    messages per client: a packet id is never reused, so it names one message.)"""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-{sender.device.id}", protocol=sender.protocol)
    client.username_pw_set(sender.device.token)
    client.max_inflight_messages_set(window)
    client.reconnect_delay_set(0.05, 0.5)
    room = threading.Semaphore(window * 2)

    def on_connect(c, u, flags, reason, props):  # noqa: ANN001, ANN202 - paho's callback
        sender.connects += 1

    def on_publish(c, u, mid, reason, props):  # noqa: ANN001, ANN202 - paho's callback
        # no lock here: paho holds its own while calling back, and publish() takes it too
        sender.pubacks.append((mid, reason.is_failure, time.monotonic()))
        room.release()

    client.on_connect, client.on_publish = on_connect, on_publish
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    i = 0
    infos = []
    while not stop.is_set() and i < 60_000:
        if not room.acquire(timeout=0.2):
            continue
        sender.sent.add(i)
        info = client.publish(TELEMETRY, message(i), qos=1)
        sender.by_mid[info.mid] = i
        infos.append(info)
        i += 1
    deadline = time.monotonic() + 60
    while len(sender.pubacks) < len(infos) and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


@pytest.mark.slow
def test_kill_9_of_one_ingest_worker_under_load(worker_serve: WorkerServe) -> None:
    serve = worker_serve
    serve.start()
    pids = serve.worker_pids()
    assert len(pids) == 2
    mqtt_senders = [PahoSender(serve.device(), mqtt.MQTTv5 if k % 2 else mqtt.MQTTv311) for k in range(8)]
    http_senders = [HttpSender(serve.device()) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=paho_publisher, args=(serve.mqtt_port, s, stop)) for s in mqtt_senders]
    threads += [threading.Thread(target=http_sender, args=(serve, s, stop)) for s in http_senders]
    for t in threads:
        t.start()
    everyone = [*mqtt_senders, *http_senders]
    deadline = time.monotonic() + 60
    while sum(len(s.acked) for s in everyone) < 4000 or any(not s.acked for s in everyone):
        assert time.monotonic() < deadline, "no load reached the workers"
        time.sleep(0.05)

    victim = pids[0]
    kill9(victim)  # mid-stream: commits of that worker are in flight
    killed_at = time.monotonic()
    acked_before = sum(len(s.acked) for s in everyone)
    time.sleep(3)
    acked_after = sum(len(s.acked) for s in everyone)
    # the other worker kept serving: acknowledgements went on within seconds of the kill
    assert acked_after > acked_before, "nothing was acknowledged after one worker was killed"
    after_kill = sum(s.acks_between(killed_at, killed_at + 1.0) for s in mqtt_senders)
    stop.set()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads)
    assert any(s.connects > 1 for s in mqtt_senders), "no MQTT client was connected to the killed worker"
    new_pids = serve.worker_pids()
    assert new_pids[0] != victim and new_pids[1] == pids[1], "the supervisor did not replace only the killed worker"

    assert all(s.error is None for s in http_senders), [s.error for s in http_senders]
    for s in mqtt_senders:
        assert not s.refused, s.refused[:5]
        assert s.acked == s.sent, f"device {s.device.id}: {len(s.sent - s.acked)} never acknowledged"
    # unacknowledged HTTP requests (the connection died with the worker) are re-sent as a device would
    for s in http_senders:
        todo = sorted(s.sent - s.acked)
        if todo:
            http_sender(serve, s, threading.Event(), only=todo)
        assert s.acked == s.sent and s.error is None

    store = TelemetryStore(serve.ws.settings.resolved_telemetry_dir)
    raw = Counter()
    for batch in store.iter_batches():
        for d, k, ts in zip(batch["device_id"].to_pylist(), batch["key"].to_pylist(), batch["ts"].to_pylist(), strict=True):
            raw[(d, k, ts)] += 1
    for s in everyone:
        got = stored(serve, s.device.id)
        assert got.keys() == s.acked, f"device {s.device.id}: stored {len(got)} of {len(s.acked)} acknowledged"
        for i, values in got.items():  # exactly once on read, with its own values
            assert sorted(values) == [i + j / 10 for j in range(len(KEYS))], (i, values)
    total = sum(len(s.acked) for s in everyone) * len(KEYS)
    repeats = sum(n - 1 for n in raw.values())
    # rows stored twice (by the killed worker, then re-sent by a client that never got its ack) are read once
    assert len(raw) == total
    # one file per batch and day, and one ledger leaf per batch: no batch lost or written twice
    files = store.files()
    seqs = [int(f.stem.split("-")[0][1:]) for f in files]
    assert len(seqs) == len(set(seqs))
    def anchors() -> dict[str, int]:
        with serve.ws.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT record_id, count(*) FROM ledger_anchors WHERE record_type = 'telemetry_batch' "
                "GROUP BY record_id").fetchall()
        return {rid: n for rid, n in rows}

    # a batch the killed worker stored but had not anchored yet is anchored by the supervisor
    # (AnchorRepair: batches older than 5 s, every 10 s), once
    deadline = time.monotonic() + 60
    while (unanchored := {f"seq-{q}" for q in seqs} - anchors().keys()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not unanchored, f"stored batches without their ledger leaf: {sorted(unanchored)[:5]}"
    assert all(n == 1 for n in anchors().values()), "a batch anchored twice"
    print(f"kill -9 of worker {victim}: {acked_before} acked before, {after_kill} MQTT acks in the second after; "
          f"{total} points stored once, {repeats} raw repeats read once; {len(files)} files")
