"""The settings guard end to end: a simulated switch silently forgets its settings, the daemon puts
back what the user set (after a power cycle, and periodically), and remembers it across restarts.

The daemon runs as a process with the virtual adapter against the real broker. The switch starts
with `power_outage_memory` on, a value the user never set through the daemon: it must never be
enforced.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DaemonProcess,
    Message,
    Watcher,
    clear_retained,
    random_base_topic,
    seed_virtual_switch,
    watching,
    write_config,
)
from z2m_qbkg40lm.bridge.settings_guard import RememberedSettings, written_value
from z2m_qbkg40lm.devices.definition import ReadAttributes
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM
from z2m_qbkg40lm.devices.registry import merged_reads, plan_get

NAME = "upstairs/guarded_switch"
REAPPLIED = "device_setting_reapplied"


@dataclass
class Running:
    """A daemon under test, and what is needed to start it again."""

    daemon: DaemonProcess
    base: str
    ieee: str
    config: Path
    data_dir: Path


def _start(folder: Path, **settings_guard: Any) -> Running:
    base = random_base_topic()
    data_dir = folder / "data"
    ieee = seed_virtual_switch(data_dir, power_outage_memory=True)
    config = write_config(
        folder / "configuration.yaml",
        base,
        devices={ieee: {"friendly_name": NAME}},
        settings_guard=settings_guard,
    )
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    return Running(daemon, base, ieee, config, data_dir)


def _stop(running: Running) -> None:
    code = running.daemon.stop()
    clear_retained(running.base)
    assert code == 0, running.daemon.log()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A daemon with the default hourly check: only an announce can trigger a check in a test."""
    running = _start(tmp_path_factory.mktemp("guard"))
    yield running
    _stop(running)


async def _ready(watcher: Watcher) -> dict[str, Any]:
    """Wait until the daemon is up and the switch interviewed; returns its full state."""
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
    while True:
        position = watcher.mark()
        await watcher.publish(f"{NAME}/get", json.dumps({"state": "", "power_outage_memory": ""}))
        try:
            return await asyncio.wait_for(
                watcher.wait_state(NAME, lambda s: "power_outage_memory" in s, after=position), 2
            )
        except TimeoutError:
            continue  # not interviewed yet: the /get was refused


async def _set(watcher: Watcher, settings: dict[str, Any]) -> None:
    """A /set the user makes, awaited through its response."""
    transaction = f"t{random.randrange(10**9)}"
    position = watcher.mark()
    await watcher.publish(f"{NAME}/set", json.dumps({**settings, "transaction": transaction}))
    message = await watcher.wait_for(
        f"{NAME}/response/set", lambda m: m.json().get("transaction") == transaction, after=position
    )
    assert message.json()["status"] == "ok", message.json()


async def _simulate(watcher: Watcher, what: str) -> None:
    response = await watcher.request(f"simulation/{what}", {"id": NAME})
    assert response["status"] == "ok", response


def _is_reapplied(setting: str) -> Any:
    def check(message: Message) -> bool:
        event = message.json()
        return bool(event.get("type") == REAPPLIED and event["data"]["setting"] == setting)

    return check


async def _firmware(watcher: Watcher) -> dict[str, Any]:
    response = await watcher.request("simulation/switches", {})
    switch: dict[str, Any] = response["data"]["switches"][0]
    return switch


# --- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "value", "remembered"),
    [
        ("operation_mode", "DECOUPLED", "decoupled"),
        ("operation_mode", {"state": "control_relay"}, "control_relay"),
        ("flip_indicator_light", "on", "ON"),
        ("power_outage_memory", "true", True),
        ("power_outage_memory", False, False),
        ("operation_mode", "sideways", None),
    ],
)
def test_a_set_value_is_remembered_as_the_device_reports_it(prop: str, value: Any, remembered: Any) -> None:
    assert written_value(QBKG40LM, prop, value, {}) == remembered


def test_the_three_settings_are_read_in_one_request() -> None:
    settings = ("operation_mode", "flip_indicator_light", "power_outage_memory")
    reads = merged_reads(op for prop in settings for op in plan_get(QBKG40LM, prop))
    assert len(reads) == 1, reads
    assert isinstance(reads[0], ReadAttributes)
    assert reads[0].attribute_ids == (0x0200, 0x00F0, 0x0201)
    assert reads[0].manufacturer == 0x115F


def test_remembered_settings_survive_a_new_instance_and_a_corrupt_file_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "settings_guard.json"
    store = RememberedSettings(path)
    store.load()
    store.remember("0x54ef441000000001", {"operation_mode": "decoupled"})
    store.remember("0x54ef441000000001", {"flip_indicator_light": "ON"})
    again = RememberedSettings(path)
    again.load()
    assert again.get("0x54ef441000000001") == {"operation_mode": "decoupled", "flip_indicator_light": "ON"}
    assert again.devices() == ["0x54ef441000000001"]
    again.forget("0x54ef441000000001")
    assert RememberedSettings(path).devices() == []

    path.write_text("{not json", encoding="utf-8")
    broken = RememberedSettings(path)
    broken.load()
    assert broken.devices() == []
    assert path.with_suffix(".corrupt").read_text(encoding="utf-8") == "{not json"
    assert list(tmp_path.glob(".settings_guard.json.*")) == [], "no temporary file left behind"


# --- end to end -----------------------------------------------------------------------------------


async def test_a_power_cycle_puts_back_only_what_the_user_set(guarded: Running) -> None:
    async with watching(guarded.base) as watcher:
        state = await _ready(watcher)
        assert state["power_outage_memory"] is True, "the switch starts with a value the user never set"
        await _set(watcher, {"operation_mode": "decoupled", "flip_indicator_light": "ON"})
        await _simulate(watcher, "revert_settings")
        reverted = await _firmware(watcher)
        assert (reverted["operation_mode"], reverted["flip_indicator_light"]) == ("control_relay", 0)

        position = watcher.mark()
        await _simulate(watcher, "power_cycle")
        mode = await watcher.wait_for("bridge/event", _is_reapplied("operation_mode"), after=position)
        assert mode.json() == {
            "data": {
                "found": "control_relay",
                "friendly_name": NAME,
                "ieee_address": guarded.ieee,
                "setting": "operation_mode",
                "wanted": "decoupled",
            },
            "type": REAPPLIED,
        }
        assert not mode.retain
        flip = await watcher.wait_for("bridge/event", _is_reapplied("flip_indicator_light"), after=position)
        assert (flip.json()["data"]["found"], flip.json()["data"]["wanted"]) == ("OFF", "ON")
        warning = await watcher.wait_log(
            lambda r: r["level"] == "warning" and "'operation_mode'" in r["message"], after=position
        )
        for part in (NAME, "control_relay", "decoupled"):
            assert part in warning["message"], warning
        await watcher.wait_state(
            NAME,
            lambda s: s.get("operation_mode") == "decoupled" and s.get("flip_indicator_light") == "ON",
            after=position,
        )
        firmware = await _firmware(watcher)
        assert (firmware["operation_mode"], firmware["flip_indicator_light"]) == ("decoupled", 1)

        # The same once more: by the time this round is over the first one is long done, and
        # power_outage_memory (lost too, but never set by the user) was left as the switch has it.
        await _simulate(watcher, "revert_settings")
        again = watcher.mark()
        await _simulate(watcher, "power_cycle")
        await watcher.wait_for("bridge/event", _is_reapplied("operation_mode"), after=again)
        await watcher.wait_for("bridge/event", _is_reapplied("flip_indicator_light"), after=again)
        events = [m.json() for m in watcher.since(position, "bridge/event")]
        reapplied = [e["data"]["setting"] for e in events if e.get("type") == REAPPLIED]
        assert "power_outage_memory" not in reapplied, reapplied
        assert (await _firmware(watcher))["power_outage_memory"] is False


async def test_a_set_applied_in_part_still_remembers_what_it_applied(guarded: Running) -> None:
    """`{"power_outage_memory": true, "brightness": 5}` applies the setting and refuses the other
    key; the setting is remembered all the same, and put back after a drift."""
    async with watching(guarded.base) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
        transaction = f"t{random.randrange(10**9)}"
        position = watcher.mark()
        payload = {"power_outage_memory": True, "brightness": 5, "transaction": transaction}
        await watcher.publish(f"{NAME}/set", json.dumps(payload))
        response = await watcher.wait_for(
            f"{NAME}/response/set", lambda m: m.json().get("transaction") == transaction, after=position
        )
        assert response.json()["status"] == "error" and "brightness" in response.json()["error"]
        assert (await _firmware(watcher))["power_outage_memory"] is True
        await _simulate(watcher, "revert_settings")
        assert (await _firmware(watcher))["power_outage_memory"] is False
        position = watcher.mark()
        await _simulate(watcher, "power_cycle")
        event = await watcher.wait_for("bridge/event", _is_reapplied("power_outage_memory"), after=position)
        assert (event.json()["data"]["found"], event.json()["data"]["wanted"]) == (False, True)


async def test_the_revert_request_names_what_is_wrong(guarded: Running) -> None:
    async with watching(guarded.base) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
        unknown = await watcher.request("simulation/revert_settings", {"id": "cellar"})
        assert unknown["status"] == "error" and unknown["data"] == {}, unknown
        assert unknown["error"] == "Device 'cellar' does not exist", unknown
        invalid = await watcher.request("simulation/revert_settings", {"switch": NAME})
        assert invalid["status"] == "error", invalid
        assert 'expected {"id"' in invalid["error"], invalid


async def test_a_periodic_check_finds_a_drift_and_the_settings_survive_a_restart(tmp_path: Path) -> None:
    # 0.025 minutes: a check every 1.5 s, and no announce anywhere in this test.
    running = _start(tmp_path, check_interval=0.025)
    try:
        async with watching(running.base) as watcher:
            await _ready(watcher)
            # A fresh /set replaces what was remembered: decoupled is the value to keep.
            await _set(watcher, {"operation_mode": "control_relay"})
            await _set(watcher, {"operation_mode": "decoupled"})
            position = watcher.mark()
            await _simulate(watcher, "revert_settings")
            event = await watcher.wait_for("bridge/event", _is_reapplied("operation_mode"), after=position)
            assert event.json()["data"]["wanted"] == "decoupled", event.json()
            await watcher.wait_state(NAME, lambda s: s.get("operation_mode") == "decoupled", after=position)
    finally:
        _stop(running)
    remembered = json.loads((running.data_dir / "settings_guard.json").read_text(encoding="utf-8"))
    assert remembered["devices"][running.ieee] == {"operation_mode": "decoupled"}, remembered

    restarted = DaemonProcess(running.config, running.data_dir)
    restarted.start()
    try:
        async with watching(running.base) as watcher:
            await _ready(watcher)
            position = watcher.mark()
            await _simulate(watcher, "revert_settings")
            event = await watcher.wait_for("bridge/event", _is_reapplied("operation_mode"), after=position)
            assert event.json()["data"]["found"] == "control_relay", event.json()
    finally:
        code = restarted.stop()
        clear_retained(running.base)
        assert code == 0, restarted.log()
