"""End to end: `z2m-qbkg40lm run` as a process, the virtual adapter, the real Mosquitto broker.

Every expose is driven the way a user would: `/set`, `/get`, simulated presses and heartbeats,
and every kind of bad input, which must be answered on `bridge/logging` while the daemon serves on.
The last tests prove that the zstack, ezsp and deconz settings build configurations their zigpy
radio libraries accept.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DaemonProcess,
    Watcher,
    clear_retained,
    discover_switch,
    random_base_topic,
    watching,
    write_config,
)

# A name with a "/" (Zigbee2MQTT allows them) exercises the per-name subscriptions.
NAME = "ground_floor/hall_switch"
CALIBRATION = -1.5
PRECISION = 1


@dataclass
class Running:
    """The daemon under test and what a test needs to reach it."""

    daemon: DaemonProcess
    base: str
    ieee: str
    config: Path
    data_dir: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A daemon whose simulated switch is named `hall_switch` with temperature options set.

    The switch's IEEE address is random, so the daemon first runs without device settings; the
    configuration is then written and the daemon restarted, which also exercises resuming.
    """
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("e2e")
    config = write_config(folder / "configuration.yaml", base)
    data_dir = folder / "data"
    first = DaemonProcess(config, data_dir)
    first.start()
    try:
        ieee = asyncio.run(discover_switch(base))
    finally:
        assert first.stop() == 0, first.log()
    devices = {
        ieee: {
            "friendly_name": NAME,
            "device_temperature_calibration": CALIBRATION,
            "device_temperature_precision": PRECISION,
            "retain": True,
        }
    }
    advanced = {"log_level": "info", "channel": 15, "last_seen": "ISO_8601"}
    write_config(config, base, devices=devices, advanced=advanced)
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    running = Running(daemon, base, ieee, config, data_dir)
    yield running
    # The restart test replaces the process: stop the one running now.
    code = running.daemon.stop()
    clear_retained(base)
    assert code == 0, running.daemon.log()


async def _ready(running: Running, watcher: Watcher) -> dict[str, Any]:
    """Wait for the daemon, then ask for the state (it is not retained) and return it."""
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
    position = watcher.mark()
    await watcher.publish(f"{NAME}/get", json.dumps({"state": ""}))
    return await watcher.wait_state(NAME, lambda s: "state" in s, after=position)


async def _set(watcher: Watcher, payload: dict[str, Any] | str, topic: str = f"{NAME}/set") -> int:
    position = watcher.mark()
    await watcher.publish(topic, payload if isinstance(payload, str) else json.dumps(payload))
    return position


# --- start-up ---------------------------------------------------------------------------------


async def test_startup_publishes_online_and_the_full_state(running: Running) -> None:
    async with watching(running.base) as watcher:
        state = await _ready(running, watcher)
    # A subscriber arriving later gets the retained messages: online, and (retain: true) the state.
    async with watching(running.base) as late:
        bridge_state = await late.wait_for("bridge/state")
        assert bridge_state.retain
        assert bridge_state.json() == {"state": "online"}
        retained = await late.wait_for(NAME)
        assert retained.retain
        assert retained.json()["state"] in ("ON", "OFF")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", state["last_seen"]), state
    for key in (
        "state",
        "operation_mode",
        "power_outage_memory",
        "flip_indicator_light",
        "linkquality",
        "last_seen",
    ):
        assert key in state, state
    assert state["state"] in ("ON", "OFF")
    assert state["operation_mode"] in ("control_relay", "decoupled")
    assert isinstance(state["power_outage_memory"], bool)
    assert 0 <= state["linkquality"] <= 255
    assert "action" not in state
    assert list(state) == sorted(state), "Zigbee2MQTT publishes keys sorted"


async def test_device_topics_answer_to_the_ieee_address_too(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"state": "OFF"}, topic=f"{running.ieee}/set")
        state = await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
        position = await _set(watcher, {"state": "ON"}, topic=f"{running.ieee}/set")
        state = await watcher.wait_state(NAME, lambda s: s["state"] == "ON", after=position)
    assert state["state"] == "ON"


# --- state --------------------------------------------------------------------------------------


async def test_set_state_on_off_toggle(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"state": "ON"})
        await watcher.wait_state(NAME, lambda s: s["state"] == "ON", after=position)
        position = await _set(watcher, {"state": "off"})
        await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
        position = await _set(watcher, {"state": "TOGGLE"})
        await watcher.wait_state(NAME, lambda s: s["state"] == "ON", after=position)
        position = await _set(watcher, "toggle")
        await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
        position = await _set(watcher, "ON", topic=f"{NAME}/set/state")
        await watcher.wait_state(NAME, lambda s: s["state"] == "ON", after=position)


async def test_get_state_reads_the_relay(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"state": "OFF"})
        await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
        position = await _set(watcher, {"state": ""}, topic=f"{NAME}/get")
        state = await watcher.wait_state(NAME, lambda s: True, after=position)
    assert state["state"] == "OFF"


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "first", "second"),
    [
        ("operation_mode", "decoupled", "control_relay"),
        ("power_outage_memory", True, False),
        ("flip_indicator_light", "ON", "OFF"),
    ],
)
async def test_set_and_get_each_setting(running: Running, prop: str, first: Any, second: Any) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        for value in (first, second, first):
            position = await _set(watcher, {prop: value})
            await watcher.wait_state(NAME, lambda s, v=value: s.get(prop) == v, after=position)
        # The single-property form with a plain value.
        plain = json.dumps(second) if isinstance(second, bool) else second
        position = await _set(watcher, plain, topic=f"{NAME}/set/{prop}")
        await watcher.wait_state(NAME, lambda s: s.get(prop) == second, after=position)
        position = await _set(watcher, {prop: ""}, topic=f"{NAME}/get")
        state = await watcher.wait_state(NAME, lambda s: prop in s, after=position)
    assert state[prop] == second


# --- presses, heartbeats, power cycles ---------------------------------------------------------


async def test_presses_publish_action_once_and_do_not_cache_it(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"operation_mode": "decoupled"})
        before = await watcher.wait_state(
            NAME, lambda s: s.get("operation_mode") == "decoupled", after=position
        )
        for kind in ("single", "double"):
            position = watcher.mark()
            response = await watcher.request("simulation/press", {"id": NAME, "kind": kind})
            assert response["status"] == "ok", response
            state = await watcher.wait_state(NAME, lambda s: "action" in s, after=position)
            assert state["action"] == kind
            # Decoupled: the press leaves the relay alone.
            assert state["state"] == before["state"]
        position = await _set(watcher, {"state": ""}, topic=f"{NAME}/get")
        after = await watcher.wait_state(NAME, lambda s: True, after=position)
        assert "action" not in after
        actions = [m.json()["action"] for m in watcher.since(0, NAME) if "action" in m.json()]
        assert actions == ["single", "double"]


async def test_press_in_control_relay_mode_toggles_the_relay(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"operation_mode": "control_relay", "state": "OFF"})
        await watcher.wait_state(
            NAME, lambda s: s.get("operation_mode") == "control_relay" and s["state"] == "OFF", after=position
        )
        position = watcher.mark()
        await watcher.request("simulation/press", {"id": NAME, "kind": "single"})
        await watcher.wait_state(NAME, lambda s: s.get("action") == "single", after=position)
        await watcher.wait_state(NAME, lambda s: s["state"] == "ON", after=position)


async def test_heartbeat_gives_calibrated_device_temperature(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = watcher.mark()
        response = await watcher.request("simulation/heartbeat", {"id": NAME, "temperature": 31})
        assert response["status"] == "ok", response
        state = await watcher.wait_state(NAME, lambda s: "device_temperature" in s, after=position)
    # 31 °C on the wire, calibrated by -1.5 and kept to one decimal.
    assert state["device_temperature"] == 29.5
    assert "power_outage_count" in state


async def test_power_cycle_restores_the_relay_with_outage_memory(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"power_outage_memory": True, "state": "ON"})
        await watcher.wait_state(
            NAME, lambda s: s["power_outage_memory"] is True and s["state"] == "ON", after=position
        )
        position = watcher.mark()
        response = await watcher.request("simulation/power_cycle", {"id": NAME})
        assert response["status"] == "ok", response
        await watcher.wait_log(lambda r: "announced" in r["message"] and NAME in r["message"], after=position)
        state = await watcher.wait_state(NAME, lambda s: True, after=position)
        assert state["state"] == "ON"

        position = await _set(watcher, {"power_outage_memory": False})
        await watcher.wait_state(NAME, lambda s: s["power_outage_memory"] is False, after=position)
        position = watcher.mark()
        await watcher.request("simulation/power_cycle", {"id": NAME})
        await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)


# --- bad input ------------------------------------------------------------------------------------


BAD_INPUT = [
    pytest.param(f"{NAME}/set", b"{not json", ["not JSON"], id="malformed-json"),
    pytest.param(f"{NAME}/set", b"[1, 2]", ["not a JSON object"], id="not-an-object"),
    pytest.param(f"{NAME}/set", b'{"brightness": 20}', [NAME, "brightness"], id="unknown-property"),
    pytest.param(f"{NAME}/set", b'{"state": 1}', [NAME, "state"], id="wrong-type"),
    pytest.param(
        f"{NAME}/set", b'{"operation_mode": "sideways"}', [NAME, "operation_mode", "sideways"], id="bad-enum"
    ),
    pytest.param(
        f"{NAME}/set", b'{"power_outage_memory": "maybe"}', [NAME, "power_outage_memory"], id="bad-bool"
    ),
    pytest.param(f"{NAME}/set", b'{"device_temperature": 20}', [NAME, "device_temperature"], id="read-only"),
    pytest.param(f"{NAME}/set", b'{"linkquality": 20}', [NAME, "linkquality"], id="read-only-lqi"),
    pytest.param(f"{NAME}/get", b'{"action": ""}', [NAME, "action"], id="get-not-readable"),
    pytest.param("no_such_switch/set", b'{"state": "ON"}', ["no_such_switch"], id="unknown-device"),
    pytest.param(f"{NAME}/set", b'{"state": "' + b"x" * 70_000 + b'"}', ["payload", "larger"], id="oversize"),
    pytest.param(f"{NAME}/set", b"\xff\xfe", ["UTF-8"], id="not-utf8"),
]


@pytest.mark.parametrize(("topic", "payload", "words"), BAD_INPUT)
async def test_bad_input_is_logged_and_changes_nothing(
    running: Running, topic: str, payload: bytes, words: list[str]
) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"state": "OFF", "flip_indicator_light": "ON"})
        before = await watcher.wait_state(
            NAME, lambda s: s["state"] == "OFF" and s["flip_indicator_light"] == "ON", after=position
        )
        position = watcher.mark()
        await watcher.publish(topic, payload)
        record = await watcher.wait_log(lambda r: r["level"] == "error", after=position)
        for word in words:
            assert word in record["message"], record
        # Still serving: a good message right after is carried out.
        position_ok = await _set(watcher, {"flip_indicator_light": "OFF"})
        await watcher.wait_state(NAME, lambda s: s.get("flip_indicator_light") == "OFF", after=position_ok)
        assert running.daemon.running
    # Nothing the bad message named changed: every state since equals the one before, but for the
    # good message's flip_indicator_light and measurements that may refresh.
    varying = {"flip_indicator_light", "linkquality", "device_temperature", "power_outage_count", "last_seen"}
    for message in watcher.since(position, NAME):
        state = message.json()
        assert {k: v for k, v in state.items() if k not in varying} == {
            k: v for k, v in before.items() if k not in varying
        }, state


async def test_unknown_request_gets_an_error_response(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        response = await watcher.request("no/such/request", {})
        assert response["status"] == "error"
        assert "no/such/request" in response["error"]
        response = await watcher.request("simulation/press", {"id": "nobody"})
        assert response["status"] == "error"
        assert "nobody" in response["error"]
        response = await watcher.request("simulation/press", {"id": NAME, "kind": "quadruple"})
        assert response["status"] == "error"
        assert "quadruple" in response["error"]


async def test_a_switch_that_does_not_answer_gives_an_error_and_keeps_the_state(running: Running) -> None:
    async with watching(running.base) as watcher:
        before = await _ready(running, watcher)
        silenced = await watcher.request("simulation/responsive", {"id": NAME, "responsive": False})
        assert silenced["status"] == "ok", silenced
        try:
            target = "OFF" if before["state"] == "ON" else "ON"
            position = await _set(watcher, {"state": target})
            record = await watcher.wait_log(lambda r: r["level"] == "error", after=position)
            assert NAME in record["message"] and "'state'" in record["message"], record
            # No optimistic state for a command the device never confirmed.
            assert all(m.json()["state"] == before["state"] for m in watcher.since(position, NAME))
        finally:
            await watcher.request("simulation/responsive", {"id": NAME, "responsive": True})
        position = await _set(watcher, {"state": target})
        await watcher.wait_state(NAME, lambda s: s["state"] == target, after=position)


# --- joining ------------------------------------------------------------------------------------


async def test_a_new_switch_joins_only_while_permit_join_is_open(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        refused = await watcher.request("simulation/join", {})
        assert refused["status"] == "error"
        assert "permit join" in refused["error"]
        opened = await watcher.request("permit_join", {"time": 30})
        assert opened == {"data": {"time": 30}, "status": "ok", "transaction": opened["transaction"]}
        position = watcher.mark()
        joined = await watcher.request("simulation/join", {})
        assert joined["status"] == "ok", joined
        ieee = joined["data"]["id"]
        state = await watcher.wait_state(ieee, lambda s: "operation_mode" in s, after=position)
        closed = await watcher.request("permit_join", {"time": 0})
        assert closed["status"] == "ok"
        too_long = await watcher.request("permit_join", {"time": 255})
        assert too_long["status"] == "error"
    assert state["operation_mode"] in ("control_relay", "decoupled")
    clear_retained(running.base, [ieee])


# --- restart ----------------------------------------------------------------------------------------


async def test_restart_resumes_network_device_and_state(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"state": "ON", "flip_indicator_light": "ON"})
        await watcher.wait_state(
            NAME, lambda s: s["state"] == "ON" and s["flip_indicator_light"] == "ON", after=position
        )
        position = watcher.mark()
        assert running.daemon.stop() == 0
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "offline"}, after=position)
        # A retained command left on the broker must not be replayed when the daemon comes back.
        await watcher.publish(f"{NAME}/set", json.dumps({"state": "TOGGLE"}), retain=True)
        position = watcher.mark()
        running.daemon = DaemonProcess(running.config, running.data_dir)
        running.daemon.start()
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, after=position)
        state = await watcher.wait_state(NAME, lambda s: True, after=position)
        assert state["state"] == "ON"
        assert state["flip_indicator_light"] == "ON"
        record = await watcher.wait_log(lambda r: "retained" in r["message"], after=position)
        assert record["level"] == "warning"
        clear_retained(running.base, [f"{NAME}/set"])
        position = await _set(watcher, {"state": ""}, topic=f"{NAME}/get")
        state = await watcher.wait_state(NAME, lambda s: True, after=position)
        assert state["state"] == "ON", "the retained TOGGLE was carried out"
        position = await _set(watcher, {"state": "OFF"})
        await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
    log = running.daemon.log()
    assert "joined" not in log, "a resumed device must not join again"
    assert "interview" not in log.lower()


# --- hardware adapters: the zigpy configuration each radio library receives -------------------

HARDWARE = [
    pytest.param("zstack", "/dev/serial/by-id/usb-ITead_Sonoff_Zigbee_3.0-if00", "zigpy_znp", id="zstack"),
    pytest.param("ezsp", "/dev/ttyUSB0", "bellows", id="ezsp"),
    pytest.param("ember", "tcp://192.0.2.10:6638", "bellows", id="ember-over-tcp"),
    pytest.param("deconz", "/dev/ttyACM0", "zigpy_deconz", id="deconz"),
]


@pytest.mark.parametrize(("adapter", "port", "library"), HARDWARE)
def test_hardware_adapter_settings_build_the_zigpy_configuration(
    tmp_path: Path, adapter: str, port: str, library: str
) -> None:
    from z2m_qbkg40lm.config import parse_config, resolve_network
    from z2m_qbkg40lm.zigbee.adapters import application_class, zigpy_config

    raw = {
        "mqtt": {"server": "mqtt://localhost"},
        "serial": {"adapter": adapter, "port": port, "baudrate": 460800, "rtscts": True},
        "advanced": {"channel": 25},
    }
    config = parse_config(raw, tmp_path / "configuration.yaml").config
    network = resolve_network(config.advanced, tmp_path)
    app_class = application_class(adapter)
    assert app_class.__module__.startswith(library)
    # The radio library's own schema accepts it, with the values where zigpy reads them.
    validated = app_class.SCHEMA(zigpy_config(config, tmp_path, network))
    device = validated["device"]
    expected_path = port.replace("tcp://", "socket://")
    assert device["path"] == expected_path
    assert device["baudrate"] == 460800
    assert device["flow_control"] == "hardware"
    assert validated["database_path"] == str(tmp_path / "zigbee.db")
    assert bytes(validated["network"]["key"]) == network.network_key
    assert int(validated["network"]["pan_id"]) == network.pan_id
    assert validated["network"]["channel"] == 25
    # Firmware updates from local files only: zigpy's downloading providers are not registered.
    assert validated["ota"]["enabled"] is True
    assert [p["type"] for p in zigpy_config(config, tmp_path, network)["ota"]["providers"]] == [
        "z2m_qbkg40lm_local"
    ]


def test_only_the_configured_radio_library_is_imported() -> None:
    code = (
        "import sys\n"
        "from z2m_qbkg40lm.daemon import Daemon\n"
        "from z2m_qbkg40lm.zigbee.adapters import application_class\n"
        "application_class('zstack')\n"
        "print(sorted(m for m in ('zigpy_znp', 'bellows', 'zigpy_deconz') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['zigpy_znp']"
