"""The shared deadline timer of MQTT sessions (iotfin.transports.mqtt.deadlines), on a real event loop."""

from __future__ import annotations

import asyncio

from iotfin.transports.mqtt.deadlines import RESOLUTION_S, Deadlines


class Item:
    def __init__(self, name: str, fired: list[tuple[str, float]], loop: asyncio.AbstractEventLoop,
                 then: float = 0.0, deadlines: Deadlines | None = None):
        self.name, self.fired, self.loop, self.then, self.deadlines = name, fired, loop, then, deadlines
        self._deadline = 0.0

    def at(self, when: float, deadlines: Deadlines) -> None:
        self._deadline = when
        deadlines.add(self, when)

    def _on_timer(self) -> None:
        self.fired.append((self.name, self.loop.time() - self._deadline))
        self._deadline = 0.0
        if self.then and self.deadlines is not None:  # reschedules itself once, as keep-alive does
            self.at(self.loop.time() + self.then, self.deadlines)
            self.then = 0.0
        if self.name == "raises":
            raise RuntimeError("a session's bug")


def test_deadlines_fire_in_order_within_the_resolution_and_stale_entries_are_dropped() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop, resolution_s=0.02)  # finer than the default, so the order is exact
        fired: list[tuple[str, float]] = []
        now = loop.time()
        late = Item("late", fired, loop)
        late.at(now + 0.6, deadlines)
        early = Item("early", fired, loop)
        early.at(now + 0.1, deadlines)
        moved = Item("moved", fired, loop)
        moved.at(now + 0.2, deadlines)
        moved.at(now + 0.9, deadlines)  # the 0.2 s entry is now stale
        cancelled = Item("cancelled", fired, loop)
        cancelled.at(now + 0.3, deadlines)
        cancelled._deadline = 0.0  # as a session does when its connection goes
        again = Item("again", fired, loop, then=0.3, deadlines=deadlines)
        again.at(now + 0.2, deadlines)
        raises = Item("raises", fired, loop)
        raises.at(now + 0.05, deadlines)
        await asyncio.sleep(1.4)
        assert [name for name, _ in fired] == ["raises", "early", "again", "again", "late", "moved"]
        for _, lateness in fired:
            assert -0.002 <= lateness <= 0.02 + 0.1
        deadlines.close()

    asyncio.run(scenario())


def test_one_timer_for_many_deadlines() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        fired: list[tuple[str, float]] = []
        now = loop.time()
        for i in range(10_000):
            Item(str(i), fired, loop).at(now + 0.1 + (i % 4) * 0.01, deadlines)
        assert len(loop._scheduled) <= 2  # type: ignore[attr-defined]  # one timer (and asyncio's own)
        await asyncio.sleep(0.5)
        assert len(fired) == 10_000 and len(deadlines) == 0
        for _, lateness in fired:
            assert -0.002 <= lateness <= RESOLUTION_S + 0.1
        deadlines.close()

    asyncio.run(scenario())


def test_entries_of_closed_sessions_do_not_outlive_them() -> None:
    """Sessions that go long before their keep-alive bucket is due are dropped by a rebuild, not
    held until then; the live ones still fire."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        fired: list[tuple[str, float]] = []
        now = loop.time()
        live = [Item(f"live-{i}", fired, loop) for i in range(100)]
        for item in live:
            item.at(now + 0.3, deadlines)
        for i in range(10_000):  # connections that come and go, each with a deadline 15 minutes away
            gone = Item(f"gone-{i}", fired, loop)
            gone.at(now + 900, deadlines)
            gone._deadline = 0.0
            deadlines.discard(gone)
        assert len(deadlines) < 2_300  # rebuilt along the way: at most ~2x the live entries plus the slack
        await asyncio.sleep(0.7)
        assert sorted(name for name, _ in fired) == sorted(item.name for item in live)
        deadlines.close()

    asyncio.run(scenario())
