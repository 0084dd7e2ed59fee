"""Generic converters end to end: `read`, `write` and `command` on `/set`, through the real broker to
the virtual adapter's simulated switch, with Zigbee2MQTT's log lines on `bridge/logging` and the
command result on `<FN>/response/set`.

One daemon (a process, the virtual adapter, the real broker) serves the whole module; its switch is
seeded with a known IEEE address so that the configuration names it. The settings guard is off: the
tests change Lumi settings behind the daemon's own properties and must see what the device has.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import (
    SeededDaemon,
    Watcher,
    seeded_daemon,
    watching,
)

NAME = "generic_switch"


Running = SeededDaemon


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A daemon whose one switch is called `NAME`, relay off, power-outage memory off."""
    firmware = {"relay": False, "power_outage_memory": False}
    folder = tmp_path_factory.mktemp("generic")
    with seeded_daemon(folder, NAME, firmware=firmware, settings_guard={"enabled": False}) as running:
        yield running


async def _ready(watcher: Watcher) -> None:
    """Wait until the daemon is up and the switch interviewed."""
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
    while True:
        position = watcher.mark()
        await watcher.publish(f"{NAME}/get", json.dumps({"state": ""}))
        try:
            await asyncio.wait_for(watcher.wait_state(NAME, lambda s: "state" in s, after=position), 2)
            return
        except TimeoutError:
            continue  # not interviewed yet: the /get was refused


async def _set(watcher: Watcher, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Publish `<NAME>/set` with a fresh transaction; returns the position before it and the result."""
    transaction = f"t{random.randrange(10**9)}"
    position = watcher.mark()
    await watcher.publish(f"{NAME}/set", json.dumps({**payload, "transaction": transaction}))
    message = await watcher.wait_for(
        f"{NAME}/response/set", lambda m: m.json().get("transaction") == transaction, after=position
    )
    response: dict[str, Any] = message.json()
    return position, response


async def _switch(watcher: Watcher) -> dict[str, Any]:
    """The simulated switch's firmware state."""
    response = await watcher.request("simulation/switches", {})
    switch: dict[str, Any] = response["data"]["switches"][0]
    return switch


async def test_read_basic_attributes_by_name_logs_and_publishes_the_result(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        switch = await _switch(watcher)
        read = {"cluster": "genBasic", "attributes": ["modelId", "swBuildId"], "state_property": "basic"}
        position, response = await _set(watcher, {"read": read})
        assert response["status"] == "ok", response
        # Lumi's form of the build id: 0.0.0_ and the firmware version's four digits.
        expected = {"modelId": "lumi.switch.b1nc01", "swBuildId": f"0.0.0_{switch['firmware_version']:04d}"}
        state = await watcher.wait_state(NAME, lambda s: "basic" in s, after=position)
        assert state["basic"] == expected, state
        # The command result holds the command as carried out; the answer is in the state.
        assert response["data"] == {"read": read}, response
        record = await watcher.wait_log(lambda r: r["message"].startswith("Read result of"), after=position)
        shown = json.dumps(expected, separators=(",", ":"))
        assert record == {"level": "info", "message": f"Read result of 'genBasic': {shown}"}


async def test_read_by_numbers_keys_known_attributes_by_zigbee2mqtt_name(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        position, response = await _set(watcher, {"read": {"cluster": 0, "attributes": ["0x0005", 0]}})
        assert response["status"] == "ok", response
        record = await watcher.wait_log(lambda r: r["message"].startswith("Read result of"), after=position)
        assert record["message"] == 'Read result of \'0\': {"modelId":"lumi.switch.b1nc01","zclVersion":3}'


async def test_read_with_a_manufacturer_code_zigpy_would_not_use(running: Running) -> None:
    # Basic answers Lumi's code too; zigpy's own read would drop it for a standard attribute.
    async with watching(running.base) as watcher:
        await _ready(watcher)
        read = {"cluster": "genBasic", "attributes": ["modelId"], "options": {"manufacturerCode": 0x115F}}
        position, response = await _set(watcher, {"read": read})
        assert response["status"] == "ok", response
        record = await watcher.wait_log(lambda r: r["message"].startswith("Read result of"), after=position)
        assert record["message"] == 'Read result of \'genBasic\': {"modelId":"lumi.switch.b1nc01"}'


async def test_read_a_lumi_attribute_with_the_manufacturer_code(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        code = {"control_relay": 1, "decoupled": 0}[(await _switch(watcher))["operation_mode"]]
        read = {
            "cluster": "manuSpecificLumi",
            "attributes": ["operation_mode"],
            "options": {"manufacturerCode": 0x115F},
            "state_property": "lumi",
        }
        position, response = await _set(watcher, {"read": read})
        assert response["status"] == "ok", response
        # Zigbee2MQTT knows 0x0200 by no name: its value is keyed by the number.
        state = await watcher.wait_state(NAME, lambda s: "lumi" in s, after=position)
        assert state["lumi"] == {"512": code}, state
        record = await watcher.wait_log(lambda r: r["message"].startswith("Read result of"), after=position)
        assert record == {
            "level": "info",
            "message": f"Read result of 'manuSpecificLumi': {{\"512\":{code}}}",
        }


async def test_write_a_lumi_attribute_changes_the_switch(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        before = (await _switch(watcher))["power_outage_memory"]
        wanted = not before
        payload = {"0x0201": {"value": int(wanted), "type": 0x10}}
        write = {"cluster": "manuSpecificLumi", "payload": payload, "options": {"manufacturerCode": 0x115F}}
        position, response = await _set(watcher, {"write": write})
        assert response["status"] == "ok", response
        assert (await _switch(watcher))["power_outage_memory"] is wanted
        record = await watcher.wait_log(lambda r: r["message"].startswith("Wrote"), after=position)
        expected = f'Wrote \'{{"0x0201":{{"value":{int(wanted)},"type":16}}}}\' to \'manuSpecificLumi\''
        assert record == {"level": "info", "message": expected}
        # By the definition's name, with the type from the cluster's definition, back again.
        write = {"cluster": "manuSpecificLumi", "payload": {"power_outage_memory": before}}
        _, response = await _set(watcher, {"write": write})
        assert response["status"] == "ok", response
        assert (await _switch(watcher))["power_outage_memory"] is before


async def test_command_on_and_toggle_switch_the_relay(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        position, response = await _set(watcher, {"command": {"cluster": "genOnOff", "command": "on"}})
        assert response["status"] == "ok", response
        assert (await _switch(watcher))["relay"] is True
        record = await watcher.wait_log(lambda r: r["message"].startswith("Invoked"), after=position)
        assert record == {"level": "info", "message": "Invoked 'genOnOff.on' with payload 'undefined'"}
        # The switch reports the relay: the state follows.
        await watcher.wait_state(NAME, lambda s: s.get("state") == "ON", after=position)
        position, response = await _set(
            watcher, {"command": {"cluster": "on_off", "command": "toggle", "payload": {}}}
        )
        assert response["status"] == "ok", response
        assert (await _switch(watcher))["relay"] is False
        await watcher.wait_state(NAME, lambda s: s.get("state") == "OFF", after=position)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"read": {"cluster": "genNothing", "attributes": ["x"]}}, 'read: unknown cluster "genNothing"'),
        ({"read": {"cluster": "genBasic", "attributes": ["colour"]}}, 'unknown attribute "colour"'),
        # Known to Zigbee2MQTT, not to the switch: the device refuses it.
        (
            {"read": {"cluster": "genBasic", "attributes": ["locationDesc"]}},
            "the device refused the read (0x0010: UNSUPPORTED_ATTRIBUTE)",
        ),
        ({"write": {"cluster": "genOnOff", "payload": {"onTime": -1}}}, "-1 does not fit uint16"),
        # Not on the switch: refused before anything goes on air.
        (
            {"read": {"cluster": "genLevelCtrl", "attributes": ["currentLevel"]}},
            "endpoint 1 has no cluster 0x0008",
        ),
        # An attribute zigpy does not know either: the frame goes out as asked, the switch refuses it.
        (
            {"read": {"cluster": "genBasic", "attributes": ["0xFF01"]}},
            "the device refused the read (0xff01: UNSUPPORTED_ATTRIBUTE)",
        ),
        # The firmware answers Lumi attributes only under Lumi's code; null sends none.
        (
            {
                "read": {
                    "cluster": "manuSpecificLumi",
                    "attributes": [512],
                    "options": {"manufacturerCode": None},
                }
            },
            "the device refused the read (0x0200: UNSUPPORTED_ATTRIBUTE)",
        ),
        (
            {"write": {"cluster": "manuSpecificLumi", "payload": {"operation_mode": 7}}},
            "the device answered INVALID_VALUE",
        ),
        ({"command": {"cluster": "genOnOff", "command": "blink"}}, 'unknown command "blink"'),
    ],
)
async def test_errors_reach_the_log_and_the_command_result(
    running: Running, payload: dict[str, Any], expected: str
) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        position, response = await _set(watcher, payload)
        assert response["status"] == "error", response
        assert expected in response["error"], response
        record = await watcher.wait_log(lambda r: expected in r["message"], after=position)
        assert record["level"] == "error", record
        key = next(iter(payload))
        assert f"Publish 'set' '{key}' to '{NAME}' failed" in record["message"], record
