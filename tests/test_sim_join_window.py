"""Pre-paired switches announce a window at a time (sim/join_window.py), and a first start with
more switches than the window still interviews every one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zigpy.device
import zigpy.types as t

from tests.test_virtual_radio import TIMEOUT, app_config, start
from z2m_qbkg40lm.sim import join_window
from z2m_qbkg40lm.sim.join_window import JoinWindow
from z2m_qbkg40lm.sim.virtual_radio import VirtualControllerApplication


class FakeTimer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Harness:
    """A window over named items; records what was announced and the timers it set."""

    def __init__(self, size: int, refuse: set[str] | None = None) -> None:
        self.announced: list[str] = []
        self.timers: list[FakeTimer] = []
        self.refuse = refuse or set()
        self.window: JoinWindow[str] = JoinWindow(self.announce, self.call_later, size=size, wait_s=5.0)

    def announce(self, item: str) -> bool:
        if item in self.refuse:
            return False
        self.announced.append(item)
        return True

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, callback)
        self.timers.append(timer)
        return timer

    def add(self, *names: str) -> None:
        for name in names:
            self.window.add(name, name)


def test_at_most_the_window_is_announced_and_each_settled_one_lets_the_next_go() -> None:
    h = Harness(size=2)
    h.add("a", "b", "c", "d")
    assert h.announced == ["a", "b"] and len(h.window) == 2
    h.window.settled("b")
    assert h.announced == ["a", "b", "c"]
    h.window.settled("b")  # twice, or a key never announced: nothing more
    h.window.settled("x")
    assert h.announced == ["a", "b", "c"]
    h.window.settled("a")
    h.window.settled("c")
    assert h.announced == ["a", "b", "c", "d"] and len(h.window) == 0


def test_a_switch_zigpy_says_nothing_about_frees_its_slot_after_the_wait() -> None:
    h = Harness(size=1)
    h.add("a", "b")
    [timer] = [t for t in h.timers if not t.cancelled]
    assert timer.delay == 5.0
    timer.callback()
    assert h.announced == ["a", "b"]


def test_a_settled_switch_cancels_its_timer() -> None:
    h = Harness(size=1)
    h.add("a")
    h.window.settled("a")
    assert [t.cancelled for t in h.timers] == [True]


def test_an_announcement_not_sent_frees_its_slot_at_once() -> None:
    h = Harness(size=1, refuse={"a"})
    h.add("a", "b")
    assert h.announced == ["b"]
    assert h.timers[0].cancelled


def test_clear_stops_everything() -> None:
    h = Harness(size=1)
    h.add("a", "b")
    h.window.clear()
    h.window.settled("a")
    assert h.announced == ["a"] and len(h.window) == 0
    assert all(t.cancelled for t in h.timers)


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return app_config(tmp_path, switches=5)


class UnderWay:
    """zigpy's listener events: how many switches had joined and were not yet interviewed, at most."""

    def __init__(self) -> None:
        self.joined: set[t.EUI64] = set()
        self.most = 0

    def device_joined(self, device: zigpy.device.Device) -> None:
        self.joined.add(device.ieee)
        self.most = max(self.most, len(self.joined))

    def device_initialized(self, device: zigpy.device.Device) -> None:
        self.joined.discard(device.ieee)


async def test_a_first_start_with_more_switches_than_the_window_interviews_them_all(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(join_window, "WINDOW", 2)
    under_way = UnderWay()
    monkeypatch.setattr(
        VirtualControllerApplication,
        "add_listener",
        _also_adding(VirtualControllerApplication.add_listener, under_way),
    )
    started = await start(config)
    try:
        app = started.app
        devices = await asyncio.wait_for(
            asyncio.gather(*(started.switch_device(i) for i in range(5))), TIMEOUT
        )
        assert {d.ieee for d in devices} == {s.ieee for s in app.simulated_switches}
        assert sorted(started.listener.joined) == sorted(d.ieee for d in devices)
        assert under_way.most == 2, "never more interviews under way than the window"
    finally:
        await started.app.shutdown()


def _also_adding(add_listener: Callable[..., Any], extra: object) -> Callable[..., Any]:
    """`add_listener` that also adds `extra` with the first listener (before zigpy starts)."""

    def adding(app: VirtualControllerApplication, listener: object, *args: Any) -> Any:
        if extra not in [entry[0] for entry in app._listeners.values()]:
            add_listener(app, extra)
        return add_listener(app, listener, *args)

    return adding
