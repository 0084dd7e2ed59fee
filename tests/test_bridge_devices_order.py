"""End to end: `bridge/devices` is coalesced, yet never behind the `bridge/event` a client acts on.

One daemon (virtual adapter, the real Mosquitto) for the module. A burst of switches joins at once,
then all of them are power-cycled at once: for every event, the last `bridge/devices` received
before it must already list the device in the state the event describes, and the burst must cost
far fewer `bridge/devices` messages than events. A rename answers only after the list shows it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import (
    DaemonProcess,
    Message,
    Watcher,
    clear_retained,
    discover_switch,
    random_base_topic,
    watching,
    write_config,
)

BURST = 12
"""Switches that join together (and are power-cycled together)."""
EVENTS_PER_JOIN = 3
"""device_joined, device_interview started, device_interview successful."""


@dataclass
class Running:
    """The daemon under test and the switches the join burst added."""

    daemon: DaemonProcess
    base: str
    joined: list[str]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One daemon with the virtual adapter's one pre-paired switch."""
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("devices_order")
    daemon = DaemonProcess(write_config(folder / "configuration.yaml", base), folder / "data")
    daemon.start()
    try:
        asyncio.run(discover_switch(base))
    except BaseException:
        daemon.stop()
        raise
    state = Running(daemon, base, [])
    yield state
    code = state.daemon.stop()
    clear_retained(base)
    assert code == 0, state.daemon.log()


def _element(devices: Message, ieee: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = next((d for d in devices.json() if d["ieee_address"] == ieee), None)
    return found


def _devices_before(watcher: Watcher, message: Message) -> Message:
    """The last `bridge/devices` the watcher received before `message`."""
    earlier = [m for m in watcher.since(0, "bridge/devices") if m.seq < message.seq]
    assert earlier, f"no bridge/devices before {message.payload!r}"
    return earlier[-1]


def _events(watcher: Watcher, position: int, kind: str, status: str | None = None) -> list[Message]:
    return [
        m
        for m in watcher.since(position, "bridge/event")
        if m.json()["type"] == kind and m.json()["data"].get("status") == status
    ]


async def _until_events(
    watcher: Watcher, position: int, count: int, kind: str, status: str | None = None
) -> list[Message]:
    """Wait until `count` events of a kind arrived after `position`."""
    await watcher.wait_for(
        "bridge/event",
        lambda _: len(_events(watcher, position, kind, status)) >= count,
        after=position,
        timeout=60,
    )
    return _events(watcher, position, kind, status)


async def _ok(watcher: Watcher, path: str, payload: Any) -> dict[str, Any]:
    response = await watcher.request(path, payload, timeout=30)
    assert response["status"] == "ok", response
    data: dict[str, Any] = response["data"]
    return data


async def test_a_burst_of_joins_lists_each_switch_before_its_events(running: Running) -> None:
    async with watching(running.base) as watcher:
        await watcher.wait_for("bridge/devices")
        await _ok(watcher, "permit_join", {"time": 120})
        position = watcher.mark()
        # All at once: the joins' events interleave as in a house being paired.
        answers = await asyncio.gather(*(_ok(watcher, "simulation/join", {}) for _ in range(BURST)))
        running.joined = [answer["id"] for answer in answers]
        done = await _until_events(watcher, position, BURST, "device_interview", "successful")
        await _ok(watcher, "permit_join", {"time": 0})

        joined = _events(watcher, position, "device_joined")
        started = _events(watcher, position, "device_interview", "started")
        assert {m.json()["data"]["ieee_address"] for m in done} == set(running.joined)
        assert {m.json()["data"]["ieee_address"] for m in joined} == set(running.joined)
        for event in joined + started:
            ieee = event.json()["data"]["ieee_address"]
            assert _element(_devices_before(watcher, event), ieee) is not None, event.payload
        for event in done:
            ieee = event.json()["data"]["ieee_address"]
            element = _element(_devices_before(watcher, event), ieee)
            assert element is not None, f"{ieee} is not in the bridge/devices before its event"
            assert element["interview_completed"] is True
            assert element["interview_state"] == "SUCCESSFUL"
            assert element["definition"]["model"] == "QBKG40LM"

        # One bridge/devices per event would be BURST * EVENTS_PER_JOIN messages.
        published = [m for m in watcher.since(position, "bridge/devices") if m.seq < done[-1].seq]
        assert len(published) < BURST, f"{len(published)} bridge/devices for {BURST} joins"


async def test_a_burst_of_announcements_follows_a_listing(running: Running) -> None:
    assert running.joined, "runs after the join burst"
    async with watching(running.base) as watcher:
        await watcher.wait_for("bridge/devices")
        position = watcher.mark()
        for ieee in running.joined:
            await watcher.publish("bridge/request/simulation/power_cycle", json.dumps({"id": ieee}))
        announced = await _until_events(watcher, position, BURST, "device_announce")
        for event in announced:
            ieee = event.json()["data"]["ieee_address"]
            element = _element(_devices_before(watcher, event), ieee)
            assert element is not None
            assert element["interview_completed"] is True
        published = watcher.since(position, "bridge/devices")
        assert len(published) < BURST, f"{len(published)} bridge/devices for {BURST} announcements"


async def test_a_rename_is_in_bridge_devices_before_its_response(running: Running) -> None:
    ieee = running.joined[0]
    async with watching(running.base) as watcher:
        await watcher.wait_for("bridge/devices")
        position = watcher.mark()
        await _ok(watcher, "device/rename", {"from": ieee, "to": "landing"})
        response = watcher.since(position, "bridge/response/device/rename")[-1]
        element = _element(_devices_before(watcher, response), ieee)
        assert element is not None
        assert element["friendly_name"] == "landing"
        assert "landing" in running.daemon.config.read_text(encoding="utf-8")
