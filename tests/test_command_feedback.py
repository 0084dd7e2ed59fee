"""Command feedback end to end: `<base>/<FN>/response/<set|get>` for commands with a transaction.

One daemon (a process, the virtual adapter, the real broker) serves the whole module. Its switch
is seeded with a known IEEE address, so its friendly name — with a `/`, as Zigbee2MQTT allows —
is in the configuration from the first start. The settings guard is off: these tests change the
firmware behind the daemon's back and must see exactly what the device answers.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import aiomqtt
import pytest

from tests.support import (
    SeededDaemon,
    Watcher,
    seeded_daemon,
    watching,
)
from z2m_qbkg40lm.bridge.command_feedback import response_topic
from z2m_qbkg40lm.bridge.topics import command_filters

NAME = "ground_floor/feedback_switch"


Running = SeededDaemon


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A daemon whose one switch is called `NAME`."""
    folder = tmp_path_factory.mktemp("feedback")
    with seeded_daemon(folder, NAME, settings_guard={"enabled": False}) as running:
        yield running


async def _ready(watcher: Watcher) -> dict[str, Any]:
    """Wait until the daemon is up and the switch interviewed; returns its state."""
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
    while True:
        position = watcher.mark()
        await watcher.publish(f"{NAME}/get", json.dumps({"state": ""}))
        try:
            return await asyncio.wait_for(watcher.wait_state(NAME, lambda s: "state" in s, after=position), 2)
        except TimeoutError:
            continue  # not interviewed yet: the /get was refused


async def _command(
    watcher: Watcher, action: str, payload: dict[str, Any] | str, *, device: str = NAME
) -> dict[str, Any]:
    """Publish `<device>/<action>` with a fresh transaction; returns the response."""
    transaction = f"t{random.randrange(10**9)}"
    if isinstance(payload, dict):
        payload = json.dumps({**payload, "transaction": transaction})
    else:
        payload = payload.replace("TRANSACTION", transaction)
    position = watcher.mark()
    await watcher.publish(f"{device}/{action}", payload)
    message = await watcher.wait_for(
        f"{device}/response/{action}",
        lambda m: m.json().get("transaction") == transaction,
        after=position,
    )
    response: dict[str, Any] = message.json()
    assert not message.retain, "responses are not retained"
    assert list(response) == sorted(response), "keys sorted, as Zigbee2MQTT publishes"
    return response


def _responses_since(watcher: Watcher, position: int) -> list[str]:
    return [m.topic for m in watcher.messages[position:] if "/response/" in m.topic]


# --- pure: the response topics are never command topics -----------------------------------------


@pytest.mark.parametrize("name", ["hall_switch", "0x54ef441000abcdef", NAME, "a/b/c"])
@pytest.mark.parametrize("action", ["set", "get"])
def test_response_topics_are_not_matched_by_the_command_subscriptions(name: str, action: str) -> None:
    topic = response_topic("zigbee2mqtt", name, action)
    assert topic == f"zigbee2mqtt/{name}/response/{action}"
    filters = command_filters("zigbee2mqtt", [name, "other/name", "x"])
    matching = [f for f in filters if aiomqtt.Topic(topic).matches(f)]
    assert matching == [], f"{topic} would come back to the daemon through {matching}"


# --- ok -------------------------------------------------------------------------------------------


async def test_set_with_a_transaction_answers_with_what_was_applied(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        response = await _command(watcher, "set", {"state": "ON", "flip_indicator_light": "on"})
        assert response["status"] == "ok", response
        assert response["data"] == {"state": "ON", "flip_indicator_light": "ON"}, response
        assert "error" not in response

        # A toggle answers with the state it led to; operation_mode with the device's read-back.
        response = await _command(watcher, "set", {"state": "toggle", "operation_mode": "DECOUPLED"})
        assert response == {
            "data": {"operation_mode": "decoupled", "state": "OFF"},
            "status": "ok",
            "transaction": response["transaction"],
        }
        response = await _command(
            watcher, "set", {"operation_mode": "control_relay", "flip_indicator_light": "OFF"}
        )
        assert response["data"] == {"operation_mode": "control_relay", "flip_indicator_light": "OFF"}, (
            response
        )


async def test_the_ieee_address_gets_its_response_under_the_ieee_address(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        response = await _command(watcher, "set", {"state": "OFF"}, device=running.ieee)
        assert response["status"] == "ok" and response["data"] == {"state": "OFF"}, response


async def test_get_with_a_transaction_answers_with_the_values_read(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        applied = await _command(
            watcher,
            "set",
            {"operation_mode": "decoupled", "flip_indicator_light": "ON", "power_outage_memory": True},
        )
        assert applied["status"] == "ok", applied
        # The firmware drops its settings without telling anyone: the daemon's cache is now
        # wrong, so only values really read can be right.
        reverted = await watcher.request("simulation/revert_settings", {"id": NAME})
        assert reverted == {
            "data": {"id": running.ieee},
            "status": "ok",
            "transaction": reverted["transaction"],
        }
        response = await _command(
            watcher,
            "get",
            {"operation_mode": "", "flip_indicator_light": "", "power_outage_memory": "", "state": ""},
        )
        assert response["status"] == "ok", response
        switches = await watcher.request("simulation/switches", {})
        relay = "ON" if switches["data"]["switches"][0]["relay"] else "OFF"
        assert response["data"] == {
            "flip_indicator_light": "OFF",
            "operation_mode": "control_relay",
            "power_outage_memory": False,
            "state": relay,
        }, response


# --- errors ---------------------------------------------------------------------------------------


async def test_a_switch_that_does_not_answer_gives_an_error_response(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        silenced = await watcher.request("simulation/responsive", {"id": NAME, "responsive": False})
        assert silenced["status"] == "ok", silenced
        try:
            for action, payload in (("set", {"state": "ON"}), ("get", {"operation_mode": ""})):
                response = await _command(watcher, action, payload)
                assert response["status"] == "error", response
                assert response["data"] == {}, response
                # "did not answer" after a timeout; the virtual adapter says "does not answer".
                assert "not answer" in response["error"], response
                assert NAME in response["error"], response
        finally:
            await watcher.request("simulation/responsive", {"id": NAME, "responsive": True})
        response = await _command(watcher, "set", {"state": "ON"})
        assert response["status"] == "ok", response


@pytest.mark.parametrize(
    ("action", "payload", "device", "expected"),
    [
        ("set", {"operation_mode": "sideways"}, NAME, "'sideways' is not one of control_relay, decoupled"),
        ("set", {"device_temperature": 20}, NAME, "device_temperature: read-only"),
        ("set", {"brightness": 20}, NAME, "no such property 'brightness'"),
        ("get", {"action": ""}, NAME, "action: not readable"),
        ("set", {"state": "ON"}, "no_such_switch", "Entity 'no_such_switch' is unknown"),
        ("set", {}, NAME, "No property given for 'set'"),
    ],
)
async def test_refused_commands_get_an_error_response(
    running: Running, action: str, payload: dict[str, Any], device: str, expected: str
) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        response = await _command(watcher, action, payload, device=device)
        assert response["status"] == "error", response
        assert response["data"] == {}, response
        assert expected in response["error"], response


async def test_a_payload_that_is_not_json_gets_no_response(running: Running) -> None:
    """The transaction of a broken payload cannot be known: only the log says what was wrong."""
    async with watching(running.base) as watcher:
        await _ready(watcher)
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", '{"state": "ON", "transaction": "broken",')
        record = await watcher.wait_log(lambda r: "Invalid payload" in r["message"], after=position)
        assert record["level"] == "error", record
        # A command sent afterwards is answered; the broken one never is.
        barrier = await _command(watcher, "set", {"state": "ON"})
        assert barrier["status"] == "ok", barrier
        assert _responses_since(watcher, position) == [f"{running.base}/{NAME}/response/set"]


async def test_commands_without_a_transaction_behave_as_in_zigbee2mqtt(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", json.dumps({"state": "OFF"}))
        await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
        await watcher.publish(f"{NAME}/set/state", "ON")
        await watcher.wait_state(NAME, lambda s: s["state"] == "ON", after=position)
        state_position = watcher.mark()
        await watcher.publish(f"{NAME}/get/operation_mode", "")
        await watcher.wait_state(NAME, lambda s: "operation_mode" in s, after=state_position)
        await watcher.publish(f"{NAME}/set", json.dumps({"operation_mode": "sideways"}))
        await watcher.wait_log(lambda r: "sideways" in r["message"], after=position)
        await watcher.publish("no_such_switch/set", json.dumps({"state": "ON"}))
        await watcher.wait_log(lambda r: "no_such_switch" in r["message"], after=position)
        # Commands to one device run in order, so once this one is answered the others are done.
        barrier = await _command(watcher, "get", {"state": ""})
        assert barrier["status"] == "ok", barrier
        assert _responses_since(watcher, position) == [f"{running.base}/{NAME}/response/get"]
