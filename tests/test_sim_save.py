"""The virtual adapter's state file: a switch's state written at most once a second, a join at
once, everything on a clean stop; and a network of 256 switches.

Writes are counted by wrapping the writer (`StateWrites`); the wait for a coalesced write is a wait
for that write. Where a test must show that only the clean stop wrote, the interval is an hour.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_virtual_radio import TIMEOUT, Running, StateWrites, app_config, saved_state, start
from z2m_qbkg40lm.config import ConfigError, parse_config
from z2m_qbkg40lm.ota.transfer import IMAGE_AVAILABLE_EVENT
from z2m_qbkg40lm.sim import virtual_radio
from z2m_qbkg40lm.sim.virtual_radio import SAVE_INTERVAL, VirtualControllerApplication

BURST = 40
OTA_CLUSTER = 0x0019
AN_HOUR = 3600.0


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return app_config(tmp_path)


@pytest.fixture
async def running(config: dict[str, Any]) -> AsyncIterator[Running]:
    started = await start(config)
    try:
        yield started
    finally:
        await started.app.shutdown()


@pytest.fixture
def state_writes(monkeypatch: pytest.MonkeyPatch) -> StateWrites:
    return StateWrites(monkeypatch)


def saved_switch(saved: Any, ieee: Any) -> Any:
    [record] = [record for record in saved["switches"] if record["ieee"] == str(ieee)]
    return record


async def test_a_burst_of_relay_changes_is_written_once_a_second(
    running: Running, state_writes: StateWrites
) -> None:
    device = await running.switch_device()
    ota_answered = ota_answer(device)
    on_off = device.endpoints[1].on_off
    loop = asyncio.get_running_loop()
    began = loop.time()
    for index in range(BURST):
        await (on_off.on() if index % 2 == 0 else on_off.off())
    elapsed = loop.time() - began
    await on_off.on()
    # At most one write per interval begun during the burst, and fewer writes than changes.
    allowed = 1 + int(elapsed / SAVE_INTERVAL)
    assert len(state_writes.texts) <= allowed < BURST, (len(state_writes.texts), elapsed)
    # The last change is written within the interval.
    while saved_switch(await state_writes.next(), device.ieee)["relay"] is not True:
        pass
    written = len(state_writes.texts)
    assert written <= allowed + 1
    # A frame that changes nothing leads to no write: the timed save finds every record as written.
    await device.endpoints[1].lumi.read_attributes(["operation_mode"], allow_cache=False)
    run_timed_save_now(running.app)
    assert len(state_writes.texts) == written
    assert running.app._save_handle is None
    await asyncio.wait_for(ota_answered, TIMEOUT)


def ota_answer(device: Any) -> asyncio.Future[None]:
    """zigpy's answer to the OTA query the switch sends a second after its interview's Image Notify.

    A test that ends about then waits for it: a handler of zigpy's still running at the shutdown
    would be a task left behind.
    """
    answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def done(event: Any) -> None:
        if not answered.done():
            answered.set_result(None)
        unsubscribe()

    unsubscribe = device.endpoints[1].out_clusters[OTA_CLUSTER].on_event(IMAGE_AVAILABLE_EVENT, done)
    return answered


def run_timed_save_now(app: VirtualControllerApplication) -> None:
    """What the save timer does when it fires, done now (no waiting out SAVE_INTERVAL)."""
    if app._save_handle is not None:
        app._save_handle.cancel()
        app._save_due()


async def test_a_relay_change_waits_and_a_clean_stop_writes_it(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Power-cycle a switch with outage memory, change the relay, stop cleanly, start again: the
    relay and the outage counter are as last set, although no timed write could happen."""
    monkeypatch.setattr(virtual_radio, "SAVE_INTERVAL", AN_HOUR)
    first = await start(config)
    try:
        device = await first.switch_device()
        switch = first.app.simulated_switches[0]
        await device.endpoints[1].lumi.write_attributes({"power_outage_memory": True})
        await first.app.simulation.power_cycle(first.switch_text)
        await device.endpoints[1].on_off.on()
        assert switch.relay is True and switch.power_outages == 1
        on_file = saved_switch(saved_state(first.app), switch.ieee)
        assert on_file["relay"] is False  # what a kill -9 now would leave
    finally:
        await first.app.shutdown()
    on_file = saved_switch(saved_state(first.app), switch.ieee)
    assert (on_file["relay"], on_file["power_outage_memory"], on_file["power_outages"]) == (True, True, 1)

    second = await start(config)
    try:
        restored = second.app.simulated_switches[0]
        assert (restored.relay, restored.power_outage_memory, restored.power_outages) == (True, True, 1)
        await second.app.simulation.power_cycle(second.switch_text)
        assert restored.relay is True  # outage memory: the relay comes back as last set
    finally:
        await second.app.shutdown()
    assert second.app._save_handle is None  # the stop left no timer behind


async def test_a_join_is_written_at_once(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(virtual_radio, "SAVE_INTERVAL", AN_HOUR)
    await running.switch_device()
    await running.app.permit(60)
    ieee = await running.app.simulation.join_new_switch()
    new = next(s for s in running.app.simulated_switches if running.app._ieee_text(s) == ieee)
    on_file = saved_switch(saved_state(running.app), new.ieee)
    assert on_file["joined"] is True  # read right away: no timer ran
    await asyncio.wait_for(running.listener.initialized(new.ieee), TIMEOUT)


async def test_a_first_start_writes_the_network_and_the_joined_switches_at_once(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(virtual_radio, "SAVE_INTERVAL", AN_HOUR)
    config["virtual"]["switches"] = 3
    started = await start(config)
    try:
        saved = saved_state(started.app)
        assert saved["network"] is not None
        assert [record["joined"] for record in saved["switches"]] == [True, True, True]
    finally:
        await started.app.shutdown()


async def test_a_failed_timed_write_is_logged_and_tried_again(
    running: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    device = await running.switch_device()
    ota_answered = ota_answer(device)
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def full_disk(path: Path, text: str, *, mode: int | None = None) -> None:
        if not failed.done():
            failed.set_result(None)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(virtual_radio, "write_atomically", full_disk)
    await device.endpoints[1].on_off.on()
    await asyncio.wait_for(failed, 5)
    assert "Cannot write the virtual adapter's state file" in caplog.text
    assert "No space left on device" in caplog.text
    monkeypatch.undo()
    await device.endpoints[1].on_off.on()  # the same state again: still to be written
    assert running.app._save_handle is not None
    await asyncio.wait_for(ota_answered, TIMEOUT)


def test_virtual_switches_accepts_256_and_names_the_key_beyond() -> None:
    base = {"mqtt": {"server": "mqtt://localhost"}, "serial": {"adapter": "virtual"}}
    config = parse_config({**base, "virtual": {"switches": 256}}, Path("c.yaml")).config
    assert config.virtual.switches == 256
    with pytest.raises(ConfigError) as caught:
        parse_config({**base, "virtual": {"switches": 257}}, Path("c.yaml"))
    assert any(line.startswith("virtual.switches: ") and "256" in line for line in caught.value.problems)


def test_256_switches_get_distinct_addresses(tmp_path: Path) -> None:
    path = tmp_path / "virtual.json"
    app = VirtualControllerApplication(
        {"device": {"path": "virtual"}, "virtual": {"switches": 256, "state_file": str(path)}}
    )
    app._load_state()
    switches = app.simulated_switches
    assert len({s.ieee for s in switches}) == 256
    nwks = {s.nwk for s in switches}
    assert len(nwks) == 256 and all(0x0001 <= nwk <= 0xFFF7 for nwk in nwks)
    assert len(json.loads(path.read_text(encoding="utf-8"))["switches"]) == 256


async def test_a_timed_write_reads_a_counting_switch_again(
    config: dict[str, Any], state_writes: StateWrites
) -> None:
    """A timed write takes only the switches it heard of, and any switch counting down: its
    countdown ticks without a frame, yet the file has it as at the write."""
    config["virtual"]["switches"] = 2
    running = await start(config)
    try:
        counting, other = running.app.simulated_switches
        device = await running.switch_device(0)
        await running.switch_device(1)
        await device.endpoints[1].on_off.on_with_timed_off(on_off_control=0, on_time=600, off_wait_time=0)
        while running.app._save_handle is not None:
            await state_writes.next()
        first = saved_switch(saved_state(running.app), counting.ieee)["on_time"]
        await running.app.simulation.heartbeat("0x" + str(other.ieee).replace(":", ""), temperature=30)
        assert running.app._save_handle is not None  # the other switch's change: a timed write
        written = await state_writes.next()
        on_file = saved_switch(written, counting.ieee)["on_time"]
        assert counting.timing.running and on_file < first  # the ticks since the first write
    finally:
        await running.app.shutdown()
