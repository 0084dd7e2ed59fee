"""End to end: the bridge API (`bridge/info`, `bridge/devices`, `bridge/event`, bridge requests).

One daemon (`z2m-qbkg40lm run` as a process, virtual adapter, the real Mosquitto) serves the whole
module; the tests run in file order and build on each other: the pre-paired switch is renamed, a
second switch joins, gets options, is configured, interviewed and removed, the log level and other
options change, the daemon restarts, and finally the first switch is force-removed.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import (
    BROKER_HOST,
    BROKER_PORT,
    DaemonProcess,
    Message,
    Watcher,
    clear_retained,
    random_base_topic,
    watching,
)
from z2m_qbkg40lm import __version__
from z2m_qbkg40lm.config import load_config

PASSWORD = f"pw-{uuid.uuid4().hex}"
NEW_NAME = "ground floor/hall"
JOINED_NAME = "porch"
IEEE_RE = re.compile(r"0x[0-9a-f]{16}")

CONFIG = """\
# Bridge API test configuration: these comments must survive the daemon's edits
mqtt:
  base_topic: {base}   # one topic tree per test module
  server: mqtt://{host}:{port}
  user: tester
  password: {password}   # a secret: never in bridge/info
serial:
  adapter: virtual
advanced:
  channel: 15
  log_level: info   # error, warning, info or debug
# the end
"""
COMMENTS = [line for line in CONFIG.splitlines() if "#" in line]


@dataclass
class Running:
    """The daemon under test and what the tests learn along the way."""

    daemon: DaemonProcess
    base: str
    config: Path
    data_dir: Path
    ieee: str
    joined: str = ""


def _switch_with_details(message: Message) -> bool:
    devices = message.json()
    return len(devices) == 2 and "date_code" in devices[1]


async def _first_switch(base: str) -> str:
    async with watching(base) as watcher:
        message = await watcher.wait_for("bridge/devices", _switch_with_details)
        # bridge/groups comes last after a connect: from then on the retained messages are in place.
        await watcher.wait_for("bridge/groups")
    ieee: str = message.json()[1]["ieee_address"]
    return ieee


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One daemon for the module, with a commented configuration file and an MQTT password."""
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("bridge_api")
    config = folder / "configuration.yaml"
    config.write_text(
        CONFIG.format(base=base, host=BROKER_HOST, port=BROKER_PORT, password=PASSWORD), encoding="utf-8"
    )
    data_dir = folder / "data"
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    try:
        ieee = asyncio.run(_first_switch(base))
    except BaseException:
        daemon.stop()
        raise
    state = Running(daemon, base, config, data_dir, ieee)
    yield state
    code = state.daemon.stop()
    clear_retained(
        base,
        ["bridge/state", "bridge/info", "bridge/devices", "bridge/groups", ieee, NEW_NAME, JOINED_NAME],
    )
    assert code == 0, state.daemon.log()


def _network_key_forms(data_dir: Path) -> list[str]:
    """The generated network key as it could be written: JSON list, hex, colon-separated hex."""
    key: list[int] = yaml.safe_load((data_dir / "secrets.yaml").read_text(encoding="utf-8"))["network_key"]
    assert len(key) == 16
    return [
        json.dumps(key),
        json.dumps(key, separators=(",", ":")),
        bytes(key).hex(),
        ":".join(f"{b:02x}" for b in key),
    ]


def _assert_no_secret(running: Running, text: str) -> None:
    assert PASSWORD not in text
    for form in _network_key_forms(running.data_dir):
        assert form not in text


def _device(devices: list[dict[str, Any]], ieee: str) -> dict[str, Any] | None:
    return next((d for d in devices if d["ieee_address"] == ieee), None)


async def _response_without_transaction(watcher: Watcher, path: str, payload: str) -> dict[str, Any]:
    position = watcher.mark()
    await watcher.publish(f"bridge/request/{path}", payload)
    message = await watcher.wait_for(f"bridge/response/{path}", after=position)
    response: dict[str, Any] = message.json()
    return response


async def _error(watcher: Watcher, path: str, payload: Any) -> str:
    response = await watcher.request(path, payload)
    assert response["status"] == "error", response
    assert response["data"] == {}
    assert isinstance(response["transaction"], str), "the transaction is echoed on errors too"
    error: str = response["error"]
    return error


async def _ok(watcher: Watcher, path: str, payload: Any, *, timeout: float = 15.0) -> dict[str, Any]:
    response = await watcher.request(path, payload, timeout=timeout)
    assert response["status"] == "ok", response
    assert "error" not in response
    data: dict[str, Any] = response["data"]
    return data


async def _no_retained(base: str, topic: str) -> None:
    """Nothing retained on `<base>/<topic>`: a fresh subscriber's own message arrives first."""
    async with watching(base) as fresh:
        marker = f"marker-{uuid.uuid4().hex}"
        await fresh.publish(topic, marker)
        await fresh.wait_for(topic, lambda m: m.payload == marker.encode())
        assert [m.payload for m in fresh.since(0, topic)] == [marker.encode()]


# --- bridge/info, bridge/devices, bridge/groups ---------------------------------------------------


async def test_bridge_info_says_what_runs_and_keeps_secrets_out(running: Running) -> None:
    async with watching(running.base) as watcher:
        message = await watcher.wait_for("bridge/info")
    assert message.retain
    info = message.json()
    assert info["version"] == __version__
    assert info["coordinator"]["type"] == "Virtual"
    assert IEEE_RE.fullmatch(info["coordinator"]["ieee_address"])
    assert isinstance(info["coordinator"]["meta"], dict)
    network = info["network"]
    assert network["channel"] == 15
    assert isinstance(network["pan_id"], int) and 1 <= network["pan_id"] <= 0xFFFE
    assert IEEE_RE.fullmatch(network["extended_pan_id"])
    assert info["permit_join"] is False
    assert "permit_join_end" not in info
    assert info["log_level"] == "info"
    assert info["restart_required"] is False
    assert info["mqtt"] == {"server": f"mqtt://{BROKER_HOST}:{BROKER_PORT}", "version": 4}
    assert info["config_schema"] == {}
    config = info["config"]
    assert config["mqtt"]["base_topic"] == running.base
    assert config["mqtt"]["user"] == "tester"
    assert "password" not in config["mqtt"]
    assert "network_key" not in config["advanced"]
    assert config["serial"]["adapter"] == "virtual"
    _assert_no_secret(running, message.payload.decode())
    assert list(info) == sorted(info), "keys sorted, as Zigbee2MQTT serialises"


async def test_bridge_devices_lists_the_coordinator_and_the_switch(running: Running) -> None:
    async with watching(running.base) as watcher:
        message = await watcher.wait_for("bridge/devices")
        groups = await watcher.wait_for("bridge/groups")
    assert message.retain
    assert groups.retain
    assert groups.json() == []
    coordinator, switch = message.json()
    assert coordinator["type"] == "Coordinator"
    assert coordinator["friendly_name"] == "Coordinator"
    assert coordinator["network_address"] == 0
    assert coordinator["supported"] is True
    assert "definition" not in coordinator
    assert switch["ieee_address"] == running.ieee
    assert switch["friendly_name"] == running.ieee
    assert switch["type"] == "Router"
    assert isinstance(switch["network_address"], int)
    assert switch["power_source"] == "Mains (single phase)"
    assert switch["manufacturer"] == "LUMI"
    assert switch["model_id"] == "lumi.switch.b1nc01"
    assert switch["date_code"] == "06-15-2022"
    assert re.fullmatch(r"\d+\.\d+\.\d+_\d{4}", switch["software_build_id"])
    assert switch["interview_state"] == "SUCCESSFUL"
    assert switch["interview_completed"] is True
    assert switch["interviewing"] is False
    assert switch["supported"] is True
    assert switch["disabled"] is False
    endpoint = switch["endpoints"]["1"]
    assert endpoint["bindings"] == [] and endpoint["configured_reportings"] == [] and endpoint["scenes"] == []
    assert endpoint["clusters"]["input"][:6] == [
        "genBasic",
        "genDeviceTempCfg",
        "genIdentify",
        "genGroups",
        "genScenes",
        "genOnOff",
    ]
    assert "manuSpecificLumi" in endpoint["clusters"]["input"]
    assert endpoint["clusters"]["output"] == ["genTime", "genOta"]
    definition = switch["definition"]
    assert definition["model"] == "QBKG40LM"
    assert definition["vendor"] == "Aqara"
    assert definition["source"] == "native"
    assert definition["supports_ota"] is True
    assert definition["version"] == "0.0.0"
    assert definition["exposes"][-1]["name"] == "linkquality"
    assert {"device_temperature_calibration", "state_action"} <= {o["name"] for o in definition["options"]}
    _assert_no_secret(running, message.payload.decode())


# --- health_check, unknown requests, bad payloads ---------------------------------------------------


async def test_health_check_unknown_requests_and_bad_payloads(running: Running) -> None:
    async with watching(running.base) as watcher:
        assert await _ok(watcher, "health_check", {}) == {"healthy": True}
        unknown = await _error(watcher, "device/teleport", {})
        assert "unknown request 'device/teleport'" in unknown
        assert "device/rename" in unknown, "the error lists the known requests"
        bare = await _response_without_transaction(watcher, "device/rename", "hello")
        assert bare["status"] == "error"
        assert "transaction" not in bare
        assert bare["error"].startswith("Invalid payload: expected {")
        assert "Invalid payload" in await _error(watcher, "device/options", {"id": running.ieee})
        assert "Invalid payload" in await _error(watcher, "device/remove", {"id": 5})
        assert await _error(watcher, "device/configure", {"id": "nope"}) == "Device 'nope' does not exist"
        assert await _error(watcher, "device/interview", {"id": "nope"}) == "Device 'nope' does not exist"
        assert "Invalid payload" in await _error(watcher, "options", {"value": 1})


# --- permit_join --------------------------------------------------------------------------------------


async def test_permit_join_is_time_limited_and_announced(running: Running) -> None:
    async with watching(running.base) as watcher:
        await watcher.wait_for("bridge/info")
        assert await _error(watcher, "permit_join", {"value": True}) == (
            'Invalid payload: expected {"time": 0..254, "device"?: "<router name>"} (seconds; 0 closes)'
        )
        assert await _error(watcher, "permit_join", {"time": 255}) == (
            "Cannot permit join for more than 254 seconds."
        )
        assert "Invalid payload" in await _error(watcher, "permit_join", {"time": -1})
        assert await _error(watcher, "permit_join", {"time": 10, "device": "nope"}) == (
            "Device 'nope' does not exist"
        )
        before = watcher.mark()
        assert await _ok(watcher, "permit_join", {"time": 1}) == {"time": 1}
        opened = await watcher.wait_for("bridge/info", lambda m: m.json()["permit_join"], after=before)
        end = opened.json()["permit_join_end"]
        assert isinstance(end, int) and end > 1_600_000_000_000, "epoch milliseconds"
        closed = await watcher.wait_for(
            "bridge/info", lambda m: not m.json()["permit_join"], after=opened.seq + 1, timeout=5
        )
        assert "permit_join_end" not in closed.json()
        data = await _ok(watcher, "permit_join", {"time": 20, "device": running.ieee})
        assert data == {"device": running.ieee, "time": 20}
        position = watcher.mark()
        bare = await _response_without_transaction(watcher, "permit_join", "0")
        assert bare == {"data": {"time": 0}, "status": "ok"}, "a bare number is the time"
        await watcher.wait_for("bridge/info", lambda m: not m.json()["permit_join"], after=position)


# --- device/rename ------------------------------------------------------------------------------------


async def test_rename_moves_the_topics_and_persists(running: Running) -> None:
    async with watching(running.base) as watcher:
        assert "Invalid friendly_name" in await _error(
            watcher, "device/rename", {"from": running.ieee, "to": "a/+"}
        )
        assert "reserved" in await _error(watcher, "device/rename", {"from": running.ieee, "to": "bridge"})
        assert await _error(watcher, "device/rename", {"from": "nope", "to": "x"}) == (
            "Device 'nope' does not exist"
        )
        position = watcher.mark()
        data = await _ok(watcher, "device/rename", {"from": running.ieee, "to": NEW_NAME})
        assert data == {"from": running.ieee, "homeassistant_rename": False, "to": NEW_NAME}
        cleared = await watcher.wait_for(running.ieee, lambda m: m.payload == b"", after=position)
        await watcher.wait_for(f"{running.ieee}/availability", lambda m: m.payload == b"", after=position)
        devices = await watcher.wait_for(
            "bridge/devices", lambda m: m.json()[1]["friendly_name"] == NEW_NAME, after=position
        )
        assert devices.seq > cleared.seq
        # The new name has a '/': the daemon subscribed to its command topics.
        position = watcher.mark()
        await watcher.publish(f"{NEW_NAME}/set", json.dumps({"state": "ON"}))
        state = await watcher.wait_state(NEW_NAME, lambda s: s.get("state") == "ON", after=position)
        assert state["state"] == "ON"
        position = watcher.mark()
        await watcher.publish(f"{NEW_NAME}/get", json.dumps({"state": ""}))
        await watcher.wait_state(NEW_NAME, lambda s: "state" in s, after=position)
        assert not watcher.since(position, running.ieee), "nothing on the old topic any more"
    text = running.config.read_text(encoding="utf-8")
    for comment in COMMENTS:
        assert comment.split("#", 1)[1] in text, f"comment lost: {comment}"
    assert f"'{running.ieee}':\n    friendly_name: {NEW_NAME}\n" in text
    assert load_config(running.config).config.devices[running.ieee].friendly_name == NEW_NAME
    _assert_no_secret(running, text.replace(PASSWORD, ""))
    assert text.count(PASSWORD) == 1, "the password the file had, once, and nothing else"


# --- a switch joins: events --------------------------------------------------------------------------


async def test_a_join_gives_devices_then_events(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ok(watcher, "permit_join", {"time": 60})
        position = watcher.mark()
        joined = (await _ok(watcher, "simulation/join", {}))["id"]
        running.joined = joined

        def event(kind: str, status: str | None = None) -> Any:
            return lambda m: (
                m.json()["type"] == kind
                and m.json()["data"]["ieee_address"] == joined
                and m.json()["data"].get("status") == status
            )

        def listed(message: Message) -> bool:
            return _device(message.json(), joined) is not None

        first = await watcher.wait_for("bridge/event", event("device_joined"), after=position)
        assert first.json()["data"] == {"friendly_name": joined, "ieee_address": joined}
        started = await watcher.wait_for("bridge/event", event("device_interview", "started"), after=position)
        done = await watcher.wait_for("bridge/event", event("device_interview", "successful"), after=position)
        devices = [m for m in watcher.since(position, "bridge/devices") if listed(m)]
        assert devices and devices[0].seq < first.seq, "a fresh bridge/devices precedes the event"
        # Coalesced: one bridge/devices may stand for several events, but none comes before it.
        assert any(m.seq < started.seq for m in devices)
        assert not first.retain
        data = done.json()["data"]
        assert data["supported"] is True
        assert data["definition"]["model"] == "QBKG40LM"
        assert data["definition"]["exposes"][-1]["name"] == "linkquality"
        last = [m for m in devices if m.seq < done.seq][-1]
        element = _device(last.json(), joined)
        assert element is not None
        assert element["interview_state"] == "SUCCESSFUL"
        assert element["date_code"] == "06-15-2022"
        await _ok(watcher, "permit_join", {"time": 0})
        # {"last": true} names the device that joined last.
        taken = await _error(watcher, "device/rename", {"last": True, "to": NEW_NAME})
        assert taken == f"friendly_name '{NEW_NAME}' is already in use"
        rename = {"last": True, "to": JOINED_NAME, "homeassistant_rename": True}
        data = await _ok(watcher, "device/rename", rename)
        assert data == {"from": joined, "homeassistant_rename": True, "to": JOINED_NAME}


# --- device/options -----------------------------------------------------------------------------------


async def test_device_options_change_live_and_on_file(running: Running) -> None:
    async with watching(running.base) as watcher:
        assert await _error(watcher, "device/options", {"id": "nope", "options": {"retain": True}}) == (
            "Device 'nope' does not exist"
        )
        bad_qos = await _error(watcher, "device/options", {"id": JOINED_NAME, "options": {"qos": 7}})
        assert bad_qos.startswith(f"Invalid options for '{JOINED_NAME}': qos: ")
        unknown = await _error(watcher, "device/options", {"id": JOINED_NAME, "options": {"colour": "red"}})
        assert unknown == f"Invalid options for '{JOINED_NAME}': colour: unknown key"
        renaming = await _error(
            watcher, "device/options", {"id": JOINED_NAME, "options": {"friendly_name": "x"}}
        )
        assert "device/rename" in renaming
        position = watcher.mark()
        data = await _ok(
            watcher,
            "device/options",
            {"id": JOINED_NAME, "options": {"retain": True, "description": "By the front door"}},
        )
        # As Zigbee2MQTT answers: the options without the friendly name.
        assert data == {
            "from": {},
            "id": JOINED_NAME,
            "restart_required": False,
            "to": {"description": "By the front door", "retain": True},
        }
        await watcher.wait_for(
            "bridge/devices",
            lambda m: (_device(m.json(), running.joined) or {}).get("description") == "By the front door",
            after=position,
        )
        position = watcher.mark()
        await watcher.publish(f"{JOINED_NAME}/get", json.dumps({"state": ""}))
        await watcher.wait_state(JOINED_NAME, lambda s: "state" in s, after=position)
    async with watching(running.base) as late:
        retained = await late.wait_for(JOINED_NAME)
        assert retained.retain, "retain: true applies at once"
    document = yaml.safe_load(running.config.read_text(encoding="utf-8"))
    assert document["devices"][running.joined] == {
        "friendly_name": JOINED_NAME,
        "retain": True,
        "description": "By the front door",
    }


# --- device/configure, device/interview -------------------------------------------------------------


async def test_configure_and_interview(running: Running) -> None:
    async with watching(running.base) as watcher:
        assert await _ok(watcher, "device/configure", {"id": NEW_NAME}) == {"id": NEW_NAME}
        bare = await _response_without_transaction(watcher, "device/configure", NEW_NAME)
        assert bare == {"data": {"id": NEW_NAME}, "status": "ok"}
        position = watcher.mark()
        assert await _ok(watcher, "device/interview", {"id": NEW_NAME}) == {"id": NEW_NAME}

        def interview(status: str) -> Any:
            return lambda m: m.json()["type"] == "device_interview" and m.json()["data"]["status"] == status

        started = await watcher.wait_for("bridge/event", interview("started"), after=position)
        done = await watcher.wait_for("bridge/event", interview("successful"), after=position)
        assert started.json()["data"]["friendly_name"] == NEW_NAME
        assert started.seq < done.seq
        # The switch still reports after zigpy replaced its device object.
        position = watcher.mark()
        await _ok(watcher, "simulation/press", {"id": NEW_NAME, "kind": "double"})
        await watcher.wait_state(NEW_NAME, lambda s: s.get("action") == "double", after=position)
        # A switch that does not answer.
        await _ok(watcher, "simulation/responsive", {"id": JOINED_NAME, "responsive": False})
        configure = await _error(watcher, "device/configure", {"id": JOINED_NAME})
        assert configure.startswith("Failed to configure (")
        position = watcher.mark()
        failed = await _error(watcher, "device/interview", {"id": JOINED_NAME})
        assert failed.startswith(f"Interview of '{JOINED_NAME}' ({running.joined}) failed: ")
        await watcher.wait_for("bridge/event", interview("failed"), after=position)
        await watcher.wait_for(
            "bridge/devices",
            lambda m: (_device(m.json(), running.joined) or {}).get("interview_state") == "FAILED",
            after=position,
        )
        await _ok(watcher, "simulation/responsive", {"id": JOINED_NAME, "responsive": True})


async def test_an_announcement_gives_devices_then_the_event(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        await _ok(watcher, "simulation/power_cycle", {"id": NEW_NAME})
        event = await watcher.wait_for(
            "bridge/event", lambda m: m.json()["type"] == "device_announce", after=position
        )
        assert event.json()["data"] == {"friendly_name": NEW_NAME, "ieee_address": running.ieee}
        assert [m for m in watcher.since(position, "bridge/devices") if m.seq < event.seq]


# --- device/remove ----------------------------------------------------------------------------------


async def test_remove_takes_the_device_off_the_network_and_clears_its_topics(running: Running) -> None:
    async with watching(running.base) as watcher:
        assert "block is not supported" in await _error(
            watcher, "device/remove", {"id": JOINED_NAME, "block": True}
        )
        assert await _error(watcher, "device/remove", {"id": "nope"}) == "Device 'nope' does not exist"
        await _ok(watcher, "simulation/responsive", {"id": JOINED_NAME, "responsive": False})
        refused = await _error(watcher, "device/remove", {"id": JOINED_NAME})
        assert refused.startswith(f"Failed to remove device '{JOINED_NAME}' (block: false, force: false) (")
        await _ok(watcher, "simulation/responsive", {"id": JOINED_NAME, "responsive": True})
        position = watcher.mark()
        data = await _ok(watcher, "device/remove", {"id": JOINED_NAME})
        assert data == {"block": False, "force": False, "id": JOINED_NAME}
        await watcher.wait_for(JOINED_NAME, lambda m: m.payload == b"", after=position)
        await watcher.wait_for(f"{JOINED_NAME}/availability", lambda m: m.payload == b"", after=position)
        await watcher.wait_for(
            "bridge/devices", lambda m: _device(m.json(), running.joined) is None, after=position
        )
        events = [m.json()["data"]["ieee_address"] for m in watcher.since(position, "bridge/event")]
        assert running.joined not in events, "a requested removal is answered, not announced as a leave"
    await _no_retained(running.base, JOINED_NAME)
    document = yaml.safe_load(running.config.read_text(encoding="utf-8"))
    assert running.joined not in document["devices"]
    assert running.ieee in document["devices"]


# --- options -------------------------------------------------------------------------------------------


async def test_options_log_level_applies_at_once_and_persists(running: Running) -> None:
    async with watching(running.base) as watcher:
        assert "advanced.log_level" in await _error(
            watcher, "options", {"options": {"advanced": {"log_level": "loud"}}}
        )
        secret = await _error(watcher, "options", {"options": {"mqtt": {"password": "x"}}})
        assert "secret" in secret
        assert "device/options" in await _error(watcher, "options", {"options": {"devices": {}}})
        assert "not supported" in await _error(watcher, "options", {"options": {"frontend": {"port": 8080}}})
        network = await _error(watcher, "options", {"options": {"advanced": {"channel": 20}}})
        assert "new network" in network
        # A whole section would take the network parameters with it.
        assert "new network" in await _error(watcher, "options", {"options": {"advanced": None}})
        assert "not supported" in await _error(watcher, "options", {"options": {"frontend": {}}})
        position = watcher.mark()
        data = await _ok(watcher, "options", {"options": {"advanced": {"log_level": "warning"}}})
        assert data == {"restart_required": False}
        info = await watcher.wait_for(
            "bridge/info", lambda m: m.json()["log_level"] == "warning", after=position
        )
        assert info.json()["config"]["advanced"]["log_level"] == "warning"
        # The change's own record was made at info before it took effect: mirrored, on its own way
        # (it may come after bridge/info). After it, an info record (permit join closed) is no
        # longer mirrored; an error still is.
        await watcher.wait_log(
            lambda r: r["level"] == "info" and "Log level changed" in r["message"], after=position
        )
        quiet = watcher.mark()
        await _ok(watcher, "permit_join", {"time": 0})
        await _error(watcher, "device/configure", {"id": "nope"})
        await watcher.wait_log(lambda r: r["level"] == "error" and "nope" in r["message"], after=quiet)
        assert "info" not in [r.json()["level"] for r in watcher.since(quiet, "bridge/logging")]
        text = running.config.read_text(encoding="utf-8")
        assert "  log_level: warning   # error, warning, info or debug\n" in text
        position = watcher.mark()
        await _ok(watcher, "options", {"options": {"advanced": {"log_level": "info"}}})
        await _ok(watcher, "permit_join", {"time": 0})
        await watcher.wait_log(
            lambda r: r["message"] == "Zigbee: disabling joining new devices", after=position
        )
        for message in watcher.since(0, "bridge/logging"):
            _assert_no_secret(running, message.payload.decode())


async def test_options_that_need_a_restart_say_so(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        data = await _ok(watcher, "options", {"options": {"advanced": {"last_seen": "ISO_8601"}}})
        assert data == {"restart_required": True}
        info = await watcher.wait_for("bridge/info", lambda m: m.json()["restart_required"], after=position)
        assert info.json()["config"]["advanced"]["last_seen"] == "ISO_8601"
        position = watcher.mark()
        await _ok(watcher, "options", {"options": {"permit_join": True}})
        info = await watcher.wait_for("bridge/info", lambda m: m.json()["permit_join"], after=position)
        assert info.json()["permit_join_end"] > 0
        await _ok(watcher, "options", {"options": {"permit_join": False}})
    assert load_config(running.config).config.advanced.last_seen == "ISO_8601"


# --- restart ---------------------------------------------------------------------------------------------


async def test_restart_comes_back_with_the_same_devices(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        assert await _ok(watcher, "restart", {}) == {}
        offline = await watcher.wait_for(
            "bridge/state", lambda m: m.json() == {"state": "offline"}, after=position
        )
        await watcher.wait_for(
            "bridge/state", lambda m: m.json() == {"state": "online"}, after=offline.seq, timeout=30
        )
        devices = await watcher.wait_for("bridge/devices", after=offline.seq)
        assert [d["ieee_address"] for d in devices.json()][1:] == [running.ieee]
        assert devices.json()[1]["friendly_name"] == NEW_NAME
        info = await watcher.wait_for("bridge/info", after=offline.seq)
        assert info.json()["restart_required"] is False
        assert info.json()["config"]["advanced"]["last_seen"] == "ISO_8601"
        position = watcher.mark()
        await watcher.publish(f"{NEW_NAME}/get", json.dumps({"state": ""}))
        state = await watcher.wait_state(NEW_NAME, lambda s: "state" in s, after=position)
        assert "last_seen" in state, "the option written before the restart is in effect"
        assert await _error(watcher, "device/rename", {"last": True, "to": "x"}) == (
            "No device has joined since start"
        )
    assert running.daemon.running


async def test_force_remove_is_database_only(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ok(watcher, "simulation/responsive", {"id": NEW_NAME, "responsive": False})
        position = watcher.mark()
        data = await _ok(watcher, "device/remove", {"id": NEW_NAME, "force": True})
        assert data == {"block": False, "force": True, "id": NEW_NAME}
        devices = await watcher.wait_for("bridge/devices", lambda m: len(m.json()) == 1, after=position)
        assert devices.json()[0]["type"] == "Coordinator"
        gone = await _error(watcher, "device/remove", {"id": NEW_NAME})
        assert gone == f"Device '{NEW_NAME}' does not exist"
    loaded = load_config(running.config)
    assert loaded.config.devices == {}
    text = running.config.read_text(encoding="utf-8")
    for comment in COMMENTS:
        assert comment.split("#", 1)[1] in text, f"comment lost: {comment}"
