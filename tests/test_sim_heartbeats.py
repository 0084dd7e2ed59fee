"""`simulation/heartbeats`: the request's checks (pure), the stream on the virtual adapter (real
zigpy stack), and the request through the daemon and the real broker."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DaemonProcess,
    clear_retained,
    discover_switch,
    random_base_topic,
    watching,
    write_config,
)
from tests.test_virtual_radio import Running, app_config, start
from z2m_qbkg40lm.bridge.heartbeats_request import MAX_COUNT, StreamError, StreamRequest, parse_stream
from z2m_qbkg40lm.devices.lumi_tlv import decode_tlv
from z2m_qbkg40lm.devices.qbkg40lm import ATTR_HEARTBEAT, LUMI_CLUSTER_ID
from z2m_qbkg40lm.sim.heartbeat_stream import HIGH_TEMPERATURE, LOW_TEMPERATURE, next_temperature
from z2m_qbkg40lm.sim.switch import DEFAULT_TEMPERATURE
from z2m_qbkg40lm.sim.virtual_radio import SimulationError

# --- the request's checks -------------------------------------------------------------------------


def test_a_count_alone_asks_for_every_switch_as_fast_as_taken() -> None:
    assert parse_stream({"count": 10, "transaction": "t"}) == StreamRequest(10, None, None)


def test_rate_and_ids_are_taken() -> None:
    assert parse_stream({"count": 100, "rate": 20, "ids": ["hall", "0x54ef441000000001"]}) == StreamRequest(
        100, 20.0, ("hall", "0x54ef441000000001")
    )
    assert parse_stream({"count": 1, "rate": None}).rate is None


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ("10", "expected {"),
        ({}, "count must be a whole number from 1 to 100000, not None"),
        ({"count": 0}, "count must be"),
        ({"count": MAX_COUNT + 1}, "count must be"),
        ({"count": 2.0}, "count must be"),
        ({"count": True}, "count must be"),
        ({"count": 5, "rate": "fast"}, "rate must be a number"),
        ({"count": 5, "rate": True}, "rate must be a number"),
        ({"count": 5, "rate": math.inf}, "rate must be a number"),
        ({"count": 5, "rate": 0}, "rate must be from 0.1 to 10000"),
        ({"count": 5, "rate": 10_001}, "rate must be from 0.1 to 10000"),
        ({"count": 100_000, "rate": 1}, "take 100000 s; a stream may last at most 3600 s"),
        ({"count": 5, "ids": "hall"}, "ids must be a list of 1 to 1024 switches"),
        ({"count": 5, "ids": []}, "ids must be a list"),
        ({"count": 5, "ids": ["hall", 3]}, "ids must be a list"),
        ({"count": 5, "ids": ["hall", "hall"]}, "ids names a switch more than once"),
        ({"count": 5, "speed": 3}, "unknown key(s) speed (known: count, ids, rate)"),
    ],
)
def test_bad_requests_say_what_is_wrong(message: Any, complaint: str) -> None:
    with pytest.raises(StreamError, match="Invalid payload") as raised:
        parse_stream(message)
    assert complaint in str(raised.value)


def test_the_temperature_steps_through_41_values_then_starts_again() -> None:
    seen = [LOW_TEMPERATURE]
    for _ in range(HIGH_TEMPERATURE - LOW_TEMPERATURE + 1):
        seen.append(next_temperature(seen[-1]))
    assert seen[:41] == list(range(20, 61))
    assert seen[41] == LOW_TEMPERATURE  # 41 values, prime to the 256 transaction numbers
    assert next_temperature(25.0) == 26  # the switch's default chip temperature
    assert next_temperature(-3) == LOW_TEMPERATURE
    assert next_temperature(90) == LOW_TEMPERATURE


# --- the stream on the virtual adapter ------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return app_config(tmp_path, switches=2)


@pytest.fixture
async def running(config: dict[str, Any]) -> AsyncIterator[Running]:
    started = await start(config)
    try:
        for index in range(2):
            await started.switch_device(index)
        yield started
    finally:
        await started.app.shutdown()


def _heartbeats(running: Running, position: int) -> list[tuple[int, int, int]]:
    """(NWK address, ZCL transaction number, chip temperature) of every heartbeat handed to zigpy."""
    found = []
    for packet in running.packets[position:]:
        payload = packet.data.serialize()
        if packet.cluster_id != LUMI_CLUSTER_ID or payload[4] != 0x0A:  # Report Attributes
            continue
        assert int.from_bytes(payload[5:7], "little") == ATTR_HEARTBEAT
        assert packet.src is not None and isinstance(packet.src.address, int)
        found.append((int(packet.src.address), payload[3], int(decode_tlv(payload[9:]).items[3])))
    return found


async def test_the_switches_take_turns_and_no_two_frames_of_a_switch_are_alike(running: Running) -> None:
    first, second = running.app.simulated_switches
    position = len(running.packets)
    answer = await running.app.simulation.heartbeats(6)
    assert answer["count"] == answer["sent"] == 6
    assert answer["switches"] == 2
    assert answer["rate"] is None
    sent = _heartbeats(running, position)
    assert [nwk for nwk, _, _ in sent] == [first.nwk, second.nwk] * 3
    for switch in (first, second):
        own = [(tsn, temperature) for nwk, tsn, temperature in sent if nwk == switch.nwk]
        tsns = [tsn for tsn, _ in own]
        assert tsns == [(tsns[0] + step) & 0xFF for step in range(3)]
        start = round(DEFAULT_TEMPERATURE)
        assert [temperature for _, temperature in own] == [start + 1, start + 2, start + 3]
        assert switch.temperature == start + 3


async def test_named_switches_only_and_paced_by_a_rate(running: Running) -> None:
    second = running.app.simulated_switches[1]
    position = len(running.packets)
    answer = await running.app.simulation.heartbeats(3, rate=1000, ieees=[str(second.ieee)])
    assert (answer["sent"], answer["switches"], answer["rate"]) == (3, 1, 1000)
    assert [nwk for nwk, _, _ in _heartbeats(running, position)] == [second.nwk] * 3


async def test_a_silent_switch_sends_nothing_and_is_not_counted(running: Running) -> None:
    first, second = running.app.simulated_switches
    await running.app.simulation.set_responsive(str(first.ieee), False)
    position = len(running.packets)
    answer = await running.app.simulation.heartbeats(4)
    assert (answer["count"], answer["sent"]) == (4, 2)
    assert [nwk for nwk, _, _ in _heartbeats(running, position)] == [second.nwk] * 2


async def test_each_heartbeat_waits_for_the_settled_callback(running: Running) -> None:
    calls: list[int] = []
    position = len(running.packets)

    async def settled() -> None:
        # Called before every heartbeat but the first: by then the one before was handed on.
        calls.append(len(_heartbeats(running, position)))

    await running.app.simulation.heartbeats(3, settled=settled)
    assert calls == [1, 2]


async def test_one_stream_at_a_time_and_errors_name_the_problem(running: Running) -> None:
    simulation = running.app.simulation
    reached, release = asyncio.Event(), asyncio.Event()

    async def held() -> None:
        reached.set()  # the first heartbeat left
        await release.wait()

    streaming = asyncio.get_running_loop().create_task(simulation.heartbeats(2, settled=held))
    await reached.wait()
    with pytest.raises(SimulationError, match=r"a heartbeat stream is under way \(1 of 2 sent\)"):
        await simulation.heartbeats(1)
    release.set()
    assert (await streaming)["sent"] == 2
    first = str(running.app.simulated_switches[0].ieee)
    with pytest.raises(SimulationError, match="one switch twice"):
        await simulation.heartbeats(1, ieees=[first, first.replace(":", "")])
    with pytest.raises(SimulationError, match="no simulated switch"):
        await simulation.heartbeats(1, ieees=["0x0000000000000001"])


# --- through the daemon -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("heartbeats")
    config = write_config(folder / "configuration.yaml", base)
    daemon = DaemonProcess(config, folder / "data")
    daemon.start()
    try:
        ieee = asyncio.run(discover_switch(base))
        yield base, ieee
    finally:
        code = daemon.stop()
        clear_retained(base)
    assert code == 0, daemon.log()


async def test_the_request_is_answered_once_done_and_every_heartbeat_is_published(
    daemon_base: tuple[str, str],
) -> None:
    base, ieee = daemon_base
    async with watching(base) as watcher:
        position = watcher.mark()
        response = await watcher.request("simulation/heartbeats", {"count": 5, "ids": [ieee]})
        assert response["status"] == "ok", response
        assert response["data"]["sent"] == 5
        # Each heartbeat went once the state of the one before was published: five messages.
        start = round(DEFAULT_TEMPERATURE)
        await watcher.wait_state(ieee, lambda s: s.get("device_temperature") == start + 5, after=position)
        states = [m.json() for m in watcher.since(position, ieee)]
        assert [s["device_temperature"] for s in states] == [start + step for step in range(1, 6)]
        refused = await watcher.request("simulation/heartbeats", {"count": 0})
    assert refused["status"] == "error"
    assert "count must be a whole number from 1 to 100000" in refused["error"]
