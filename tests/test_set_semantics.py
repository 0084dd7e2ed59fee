"""`/set` and `/get` as Zigbee2MQTT carries them out, end to end: every key it can, in its order, one
state message per command, every device report published, and `on_time` with the daemon's own off
timer for a switch that refuses OnWithTimedOff (the simulated switch's firmware setting
`on_with_timed_off: false` makes it answer UNSUP_CLUSTER_COMMAND).

Through the real broker with the daemon as a process, and in process (the bridge in front of the
virtual adapter) where the order of what reaches the switch, or the timer's state, is looked at.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DaemonProcess,
    PublishRecorder,
    SeededDaemon,
    Watcher,
    bridge_in_process,
    clear_retained,
    random_base_topic,
    seed_virtual_switch,
    seeded_daemon,
    watching,
    write_config,
)
from z2m_qbkg40lm.bridge.command_feedback import CommandFeedback
from z2m_qbkg40lm.bridge.timed_off import TIMED_OFF_FILE, encode_operation
from z2m_qbkg40lm.devices.definition import ClusterCommand, WriteAttribute, ZclOperation

NAME = "hall_switch"
WAIT_S = 30.0


Running = SeededDaemon


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A daemon with one simulated switch named `hall_switch` (no last_seen: messages compare whole)."""
    with seeded_daemon(tmp_path_factory.mktemp("set_semantics"), NAME) as running:
        yield running


async def _ready(watcher: Watcher) -> None:
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
    await _command(watcher, "get", {"state": ""})


async def _command(watcher: Watcher, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A command with a transaction; its response once carried out."""
    transaction = uuid.uuid4().hex[:8]
    position = watcher.mark()
    await watcher.publish(f"{NAME}/{action}", json.dumps({**payload, "transaction": transaction}))
    message = await watcher.wait_for(
        f"{NAME}/response/{action}", lambda m: m.json()["transaction"] == transaction, after=position
    )
    response: dict[str, Any] = message.json()
    return response


async def _states_of(
    watcher: Watcher, action: str, payload: dict[str, Any]
) -> tuple[dict[str, Any], list[Any]]:
    """A command's response and the state messages it caused.

    A `/get` of the state follows as a fence: the switch's frames come in order, so a report the
    command caused is published before the fence's answer. The fence's own message is left out.
    """
    position = watcher.mark()
    response = await _command(watcher, action, payload)
    await _command(watcher, "get", {"state": ""})
    states = [m.json() for m in watcher.since(position, NAME)]
    assert states, "the fence's own state message is missing"
    return response, states[:-1]


# --- partial application, through the broker --------------------------------------------------------


async def test_a_good_key_is_applied_beside_a_bad_one(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        await _command(watcher, "set", {"state": "OFF"})
        position = watcher.mark()
        response, states = await _states_of(watcher, "set", {"state": "ON", "brightness": 254})
        assert [s["state"] for s in states] == ["ON"]
        error = f"No converter available for 'brightness' on '{NAME}': (254); no such property 'brightness'"
        assert response["status"] == "error"
        assert response["error"].startswith(error), response
        # What was applied all the same.
        assert response["data"] == {"state": "ON"}
        records = [m.json() for m in watcher.since(position, "bridge/logging")]
        assert [r["message"][: len(error)] for r in records if r["level"] == "error"] == [error]
        switches = await watcher.request("simulation/switches", {})
        assert switches["data"]["switches"][0]["relay"] is True


async def test_each_failed_key_gets_its_own_error_line(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        position = watcher.mark()
        response = await _command(
            watcher, "set", {"brightness": 1, "operation_mode": "sideways", "flip_indicator_light": "ON"}
        )
        lines = response["error"].split("\n")
        assert len(lines) == 2, response
        assert lines[0].startswith(f"No converter available for 'brightness' on '{NAME}'")
        assert lines[1].startswith(f"Publish 'set' 'operation_mode' to '{NAME}' failed: ")
        assert response["data"] == {"flip_indicator_light": "ON"}
        errors = [
            m.json()["message"]
            for m in watcher.since(position, "bridge/logging")
            if m.json()["level"] == "error"
        ]
        assert errors == lines


async def test_a_set_with_nothing_to_carry_out_is_answered_at_once(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        response, states = await _states_of(watcher, "set", {"on_time": 5})
        assert response["status"] == "error"
        assert response["data"] == {}
        assert response["error"].startswith(f"Publish 'set' 'on_time' to '{NAME}' failed: 'on_time: needs")
        assert states == []


# --- one state message per command ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("set", {"state": "ON", "operation_mode": "decoupled", "flip_indicator_light": "ON"}),
        ("set", {"state": "OFF", "operation_mode": "control_relay", "power_outage_memory": True}),
        ("set", {"state": "TOGGLE"}),
        ("get", {"state": "", "operation_mode": "", "power_outage_memory": "", "flip_indicator_light": ""}),
    ],
)
async def test_one_state_message_per_command(running: Running, action: str, payload: dict[str, Any]) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        response, states = await _states_of(watcher, action, payload)
        assert response["status"] == "ok", response
        assert len(states) == 1, states
        for prop, value in response["data"].items():
            assert states[0][prop] == value


# --- every device report is published ---------------------------------------------------------------


async def test_an_unchanged_heartbeat_is_published_every_time(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        position = watcher.mark()
        for _ in range(2):
            response = await watcher.request("simulation/heartbeat", {"id": NAME, "temperature": 33})
            assert response["status"] == "ok"
        await watcher.wait_for(NAME, lambda _: len(watcher.since(position, NAME)) >= 2, after=position)
        first, second = (m.json() for m in watcher.since(position, NAME)[:2])
        assert first == second
        assert first["device_temperature"] == 33


async def test_a_report_that_only_confirms_a_set_is_left_out_but_a_press_never(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _ready(watcher)
        await _command(watcher, "set", {"operation_mode": "decoupled"})
        _, states = await _states_of(watcher, "set", {"state": "ON"})
        # The switch reports ON right after the command: not a second message.
        assert [s["state"] for s in states] == ["ON"]
        position = watcher.mark()
        await watcher.request("simulation/press", {"id": NAME, "kind": "single"})
        state = await watcher.wait_state(NAME, lambda s: "action" in s, after=position)
        assert state["action"] == "single"


# --- on_time with the daemon's own timer --------------------------------------------------------------


async def test_on_time_switches_the_switch_off_after_on_time(running: Running) -> None:
    """Whether the switch does it (OnWithTimedOff) or the daemon's timer (a switch that refuses it)."""
    async with watching(running.base) as watcher:
        await _ready(watcher)
        await _command(watcher, "set", {"state": "OFF"})
        position = watcher.mark()
        response = await _command(watcher, "set", {"state": "ON", "on_time": 0.3})
        assert response == {
            "data": {"on_time": 0.3, "state": "ON"},
            "status": "ok",
            "transaction": response["transaction"],
        }
        await watcher.wait_state(NAME, lambda s: s["state"] == "ON", after=position)
        await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
        assert [s.json()["state"] for s in watcher.since(position, NAME)] == ["ON", "OFF"]
        switches = await watcher.request("simulation/switches", {})
        assert switches["data"]["switches"][0]["relay"] is False


async def test_a_pending_off_is_sent_after_a_restart(tmp_path: Path) -> None:
    """The daemon stops with an off pending; started again after it was due, it sends it at once."""
    base = random_base_topic()
    data_dir = tmp_path / "data"
    ieee = seed_virtual_switch(data_dir)
    config = write_config(tmp_path / "configuration.yaml", base, devices={ieee: {"friendly_name": NAME}})
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    try:
        async with watching(base) as watcher:
            await _ready(watcher)
            await _command(watcher, "set", {"state": "ON"})
            assert daemon.stop() == 0
            # Stopped with an off pending (what the timer keeps), which fell due while it was down.
            off = encode_operation(ClusterCommand(1, ON_OFF, 0x00))
            kept = {ieee: {"due": time.time() - 60, "operations": [off], "state": {"state": "OFF"}}}
            (data_dir / TIMED_OFF_FILE).write_text(json.dumps({"version": 1, "offs": kept}))
            position = watcher.mark()
            daemon = DaemonProcess(config, data_dir)
            daemon.start()
            await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
            record = await watcher.wait_log(lambda r: "was due at" in r["message"], after=position)
            assert record["level"] == "info"
        assert json.loads((data_dir / TIMED_OFF_FILE).read_text())["offs"] == {}
    finally:
        code = daemon.stop()
        clear_retained(base)
    assert code == 0, daemon.log()


# --- in process: the order of what reaches the switch, the timer's cancellation ---------------------

BASE = "z2m"
ON_OFF = 0x0006
LUMI = 0xFCC0


@dataclass
class InProcess:
    run: Any
    recorder: PublishRecorder
    ieee: str
    sent: list[str] = field(default_factory=list)

    async def command(self, payload: dict[str, Any]) -> dict[str, Any]:
        transaction = uuid.uuid4().hex
        body = json.dumps({**payload, "transaction": transaction}).encode()
        await self.run.bridge.on_message(f"{BASE}/{NAME}/set", body, False)

        def response() -> dict[str, Any] | None:
            found = [p for p in self.recorder.on(f"{NAME}/response/set") if p["transaction"] == transaction]
            return found[0] if found else None

        await self.recorder.wait_for(lambda: response() is not None)
        answer = response()
        assert answer is not None
        return answer

    @property
    def switch(self) -> Any:
        return self.run.radio._app.simulated_switches[0]


def _describe(operation: ZclOperation) -> str:
    if isinstance(operation, ClusterCommand) and operation.cluster_id == ON_OFF:
        return {0x00: "OFF", 0x01: "ON", 0x02: "TOGGLE", 0x42: "ON_TIMED"}[operation.command_id]
    if isinstance(operation, WriteAttribute) and operation.cluster_id == LUMI:
        return f"write 0x{operation.attribute_id:04x}"
    return "read"


@contextlib.asynccontextmanager
async def in_process(data_dir: Path, *, refuse_timed_off: bool = False) -> AsyncIterator[InProcess]:
    """The bridge in front of one simulated switch; with `refuse_timed_off` the switch answers
    OnWithTimedOff as a firmware without it does (Default Response UNSUP_CLUSTER_COMMAND)."""
    ieee = seed_virtual_switch(data_dir)
    raw = {
        "mqtt": {"server": "mqtt://localhost", "base_topic": BASE},
        "serial": {"adapter": "virtual"},
        "devices": {ieee: {"friendly_name": NAME}},
    }
    recorder = PublishRecorder(BASE, WAIT_S)
    async with bridge_in_process(data_dir, raw, recorder, lambda context: [CommandFeedback(context)]) as run:
        running = InProcess(run, recorder, ieee)
        execute = run.radio.execute

        async def execute_and_record(ieee: str, operations: tuple[ZclOperation, ...]) -> Any:
            running.sent.extend(_describe(operation) for operation in operations)
            return await execute(ieee, operations)

        run.radio.execute = execute_and_record
        if refuse_timed_off:
            # The simulated firmware's own setting: 0x42 answered UNSUP_CLUSTER_COMMAND.
            running.switch.set_firmware({"on_with_timed_off": False})
        await recorder.wait_for(lambda: any("state" in s for s in recorder.on(NAME)))
        yield running


async def test_off_goes_to_the_switch_after_the_settings_and_on_before_them(tmp_path: Path) -> None:
    async with in_process(tmp_path) as switch:
        await switch.command({"state": "ON"})
        switch.sent.clear()
        await switch.command({"state": "OFF", "flip_indicator_light": "ON", "power_outage_memory": True})
        assert switch.sent == ["write 0x00f0", "write 0x0201", "OFF"]
        assert switch.switch.relay is False
        switch.sent.clear()
        await switch.command({"flip_indicator_light": "OFF", "state": "ON"})
        assert switch.sent == ["ON", "write 0x00f0"]
        assert switch.switch.relay is True


async def test_a_switch_without_on_with_timed_off_gets_the_daemons_timer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(tmp_path, refuse_timed_off=True) as switch:
        await switch.command({"state": "OFF"})
        switch.sent.clear()
        states = len(switch.recorder.on(NAME))
        response = await switch.command({"state": "ON", "on_time": 0.3})
        assert response["status"] == "ok", response
        await switch.recorder.wait_for(lambda: switch.recorder.on(NAME)[-1].get("state") == "OFF")
        assert [s["state"] for s in switch.recorder.on(NAME)[states:]] == ["ON", "OFF"]
        assert switch.sent == ["ON_TIMED", "ON", "OFF"]
        assert switch.switch.relay is False
        notices = [r for r in caplog.records if "OnWithTimedOff" in r.getMessage()]
        assert [(r.levelname, NAME in r.getMessage()) for r in notices] == [("WARNING", True)]
        # Said once per device.
        await switch.command({"state": "ON", "on_time": 0.2})
        await switch.recorder.wait_for(lambda: switch.recorder.on(NAME)[-1].get("state") == "OFF")
        assert len([r for r in caplog.records if "OnWithTimedOff" in r.getMessage()]) == 1


async def test_a_newer_set_of_state_cancels_the_pending_off(tmp_path: Path) -> None:
    async with in_process(tmp_path, refuse_timed_off=True) as switch:
        response = await switch.command({"state": "ON", "on_time": 600})
        assert response["status"] == "ok", response
        # The switch refused 0x42; the fallback switched it on and armed the daemon's timer.
        assert switch.sent[-2:] == ["ON_TIMED", "ON"]
        assert switch.switch.relay is True
        assert switch.run.bridge.timed_offs.pending(switch.ieee) is not None
        await switch.command({"flip_indicator_light": "ON"})
        assert switch.run.bridge.timed_offs.pending(switch.ieee) is not None, "another key keeps it"
        await switch.command({"state": "ON"})
        assert switch.run.bridge.timed_offs.pending(switch.ieee) is None


async def test_a_report_of_off_cancels_the_pending_off(tmp_path: Path) -> None:
    async with in_process(tmp_path, refuse_timed_off=True) as switch:
        await switch.command({"operation_mode": "control_relay"})
        await switch.command({"state": "ON", "on_time": 600})
        assert switch.run.bridge.timed_offs.pending(switch.ieee) is not None
        states = len(switch.recorder.on(NAME))
        # The rocker: the relay goes off and the switch reports it.
        await switch.run.radio.simulation.press(switch.ieee, "single")
        await switch.recorder.wait_for(
            lambda: any(s.get("state") == "OFF" for s in switch.recorder.on(NAME)[states:])
        )
        assert switch.run.bridge.timed_offs.pending(switch.ieee) is None


async def test_a_newer_state_takes_a_waiting_on_time_along(tmp_path: Path) -> None:
    async with in_process(tmp_path, refuse_timed_off=True) as switch:
        await switch.command({"state": "OFF"})
        switch.sent.clear()

        async def send(payload: dict[str, Any]) -> None:
            await switch.run.bridge.on_message(f"{BASE}/{NAME}/set", json.dumps(payload).encode(), False)

        # Handed over without yielding: all three wait behind the first.
        await send({"flip_indicator_light": "ON", "transaction": "first"})
        await send({"state": "ON", "on_time": 600, "transaction": "timed"})
        await send({"state": "OFF", "on_time": "ignored with OFF", "transaction": "off"})
        topic = f"{NAME}/response/set"
        wanted = {"first", "timed", "off"}
        await switch.recorder.wait_for(
            lambda: wanted <= {r["transaction"] for r in switch.recorder.on(topic)}
        )
        by_transaction = {r["transaction"]: r for r in switch.recorder.on(topic)}
        assert by_transaction["timed"]["status"] == "error"
        assert by_transaction["timed"]["error"] == "\n".join(
            f"Publish 'set' '{key}' to '{NAME}' not sent: replaced by a newer /set of '{key}'"
            for key in ("state", "on_time")
        )
        assert by_transaction["off"]["status"] == "ok"
        assert switch.sent == ["write 0x00f0", "OFF"]
        assert switch.run.bridge.timed_offs.pending(switch.ieee) is None


async def test_a_set_that_cannot_be_carried_out_replaces_nothing(tmp_path: Path) -> None:
    async with in_process(tmp_path) as switch:
        await switch.command({"state": "OFF"})
        switch.sent.clear()

        async def send(payload: dict[str, Any]) -> None:
            await switch.run.bridge.on_message(f"{BASE}/{NAME}/set", json.dumps(payload).encode(), False)

        await send({"flip_indicator_light": "ON", "transaction": "first"})
        await send({"state": "ON", "transaction": "on"})
        # Its state cannot be carried out (bad on_time): the waiting ON keeps its state.
        await send({"state": "ON", "on_time": "soon", "power_outage_memory": True, "transaction": "bad"})
        topic = f"{NAME}/response/set"
        wanted = {"first", "on", "bad"}
        await switch.recorder.wait_for(
            lambda: wanted <= {r["transaction"] for r in switch.recorder.on(topic)}
        )
        by_transaction = {r["transaction"]: r for r in switch.recorder.on(topic)}
        assert by_transaction["on"] == {"data": {"state": "ON"}, "status": "ok", "transaction": "on"}
        assert by_transaction["bad"]["status"] == "error"
        assert by_transaction["bad"]["data"] == {"power_outage_memory": True}
        assert switch.sent == ["write 0x00f0", "ON", "write 0x0201"]
        assert switch.switch.relay is True
