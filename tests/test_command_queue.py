"""Each device's line of waiting commands: bounded, refused at once beyond the bound, a newer `/set`
of a property taking over from an older waiting one, TOGGLE never merged.

In process: the real zigpy stack with the virtual adapter (its simulated switch answers real ZCL
frames), the bridge, and the command feedback extension publishing into a recorder. Commands are
handed to the bridge as the MQTT client would; handing several in a row without yielding to the
event loop makes them all arrive before the first is carried out, which is what a flood over MQTT
does, without depending on the machine's speed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import (
    DaemonProcess,
    PublishRecorder,
    Watcher,
    bridge_in_process,
    clear_retained,
    random_base_topic,
    seed_virtual_switch,
    watching,
    write_config,
)
from z2m_qbkg40lm.bridge.bridge import Bridge
from z2m_qbkg40lm.bridge.command_feedback import CommandFeedback
from z2m_qbkg40lm.bridge.command_queue import MAX_WAITING, MAX_WAITING_SETS
from z2m_qbkg40lm.devices.definition import ClusterCommand, ZclOperation

BASE = "z2m"
NAME = "hall_switch"
WAIT_S = 30.0
"""For one exchange with the simulated switch, or a drained line, on a loaded 2-core machine."""
ON_OFF = 0x0006
ON_OFF_COMMANDS = {0x00: "OFF", 0x01: "ON", 0x02: "TOGGLE"}


class Recorder(PublishRecorder):
    """What the bridge publishes, with the `/set` and `/get` responses by transaction."""

    def responses(self, action: str) -> dict[Any, dict[str, Any]]:
        """By transaction (the numbered ones of a test, and the ones `Switch.command` gave)."""
        found = {p["transaction"]: p for p in self.on(f"{NAME}/response/{action}")}
        return {k: v for k, v in found.items() if not str(k).startswith("single-")}


@dataclass
class Switch:
    """The bridge in front of one simulated switch, and what it sent to the switch."""

    bridge: Bridge
    recorder: Recorder
    ieee: str
    on_off_sent: list[str] = field(default_factory=list)

    async def send(self, action: str, payload: dict[str, Any]) -> None:
        """One command as it comes from the broker (returns before it is carried out)."""
        await self.bridge.on_message(f"{BASE}/{NAME}/{action}", json.dumps(payload).encode(), False)

    async def command(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One command, and its response once carried out."""
        transaction = f"single-{time.monotonic_ns()}"
        await self.send(action, {**payload, "transaction": transaction})
        topic = f"{NAME}/response/{action}"

        def response() -> dict[str, Any] | None:
            return next((p for p in self.recorder.on(topic) if p["transaction"] == transaction), None)

        await self.recorder.wait_for(lambda: response() is not None)
        found = response()
        assert found is not None
        return found

    def states(self, after: int = 0) -> list[dict[str, Any]]:
        return [m.payload for m in self.recorder.messages[after:] if m.topic == f"{BASE}/{NAME}"]


@contextlib.asynccontextmanager
async def switch(data_dir: Path) -> AsyncIterator[Switch]:
    ieee = seed_virtual_switch(data_dir)
    raw = {
        "mqtt": {"server": "mqtt://localhost", "base_topic": BASE},
        "serial": {"adapter": "virtual"},
        "devices": {ieee: {"friendly_name": NAME}},
    }
    recorder = Recorder(BASE, WAIT_S)
    async with bridge_in_process(data_dir, raw, recorder, lambda context: [CommandFeedback(context)]) as run:
        running = Switch(run.bridge, recorder, ieee)
        execute = run.radio.execute

        async def execute_and_record(ieee: str, operations: tuple[ZclOperation, ...]) -> None:
            # What reaches the radio, in order (the real radio still sends it).
            for operation in operations:
                if isinstance(operation, ClusterCommand) and operation.cluster_id == ON_OFF:
                    running.on_off_sent.append(ON_OFF_COMMANDS[operation.command_id])
            await execute(ieee, operations)

        run.radio.execute = execute_and_record
        # Interviewed, configured and read: the switch's first state message.
        await recorder.wait_for(lambda: any("state" in s for s in running.states()))
        yield running


async def test_a_flood_is_refused_beyond_the_bound_at_once_and_a_get_is_still_answered(
    tmp_path: Path,
) -> None:
    flood = 5000
    async with switch(tmp_path) as run:
        assert (await run.command("set", {"state": "OFF"}))["status"] == "ok"
        run.on_off_sent.clear()
        position = len(run.recorder.messages)
        began = time.monotonic()
        for number in range(flood):
            await run.send("set", {"state": "TOGGLE", "transaction": number})
        await run.send("get", {"state": "", "transaction": "read"})
        sent = time.monotonic()

        # Every command beyond the bound is answered at once, before the first toggle is done.
        refused = flood - MAX_WAITING_SETS
        await run.recorder.wait_for(lambda: len(run.recorder.responses("set")) >= refused)
        first = run.recorder.responses("set")
        assert len(first) == refused, "only refusals come before the switch has answered anything"
        assert sorted(first) == list(range(MAX_WAITING_SETS, flood))
        message = (
            f"Publish 'set' 'state' to '{NAME}' refused: {MAX_WAITING_SETS} commands are already waiting "
            "for the device; send it again once they are done"
        )
        assert all(
            r == {"data": {}, "error": message, "status": "error", "transaction": n} for n, r in first.items()
        )
        refusals_at = max(m.at for m in run.recorder.messages if m.topic.endswith("/response/set"))

        # The get passes the waiting /set (their places are taken, the last ones are for reads).
        await run.recorder.wait_for(lambda: "read" in run.recorder.responses("get"))
        drained = time.monotonic()
        responses = run.recorder.responses("set")
        assert len(responses) == flood
        accepted = [responses[n] for n in range(MAX_WAITING_SETS)]
        assert all(r["status"] == "ok" for r in accepted), accepted
        # Two toggles are not one: each was carried out, in order.
        expected = ["ON", "OFF"] * (MAX_WAITING_SETS // 2)
        assert [r["data"]["state"] for r in accepted] == expected
        assert run.on_off_sent == ["TOGGLE"] * MAX_WAITING_SETS
        read = run.recorder.responses("get")["read"]
        assert read == {"data": {"state": expected[-1]}, "status": "ok", "transaction": "read"}
        # One state message per carried-out command: the toggles and the read.
        assert len(run.states(position)) == MAX_WAITING_SETS + 1
        # What waits is bounded, so is the wait: 41 exchanges with the simulated switch.
        print(  # the figures, for the report (pytest -s)
            f"\n{flood} commands handed over in {sent - began:.2f} s, refusals answered "
            f"{refusals_at - began:.2f} s after the first, line drained and /get answered after "
            f"{drained - began:.2f} s"
        )
        assert drained - began < WAIT_S


async def test_a_newer_set_replaces_a_waiting_one_and_the_replaced_command_says_so(tmp_path: Path) -> None:
    async with switch(tmp_path) as run:
        assert (await run.command("set", {"state": "ON"}))["status"] == "ok"
        run.on_off_sent.clear()
        position = len(run.recorder.messages)
        await run.send("set", {"state": "OFF", "flip_indicator_light": "ON", "transaction": 1})
        await run.send("set", {"state": "OFF", "transaction": 2})
        await run.send("set", {"state": "ON", "transaction": 3})
        await run.recorder.wait_for(lambda: len(run.recorder.responses("set")) >= 3)
        responses = run.recorder.responses("set")
        # 1 lost its state to 2, then 2 lost it to 3: 2 had nothing left and ended at once.
        assert responses[2] == {
            "data": {},
            "error": f"Publish 'set' 'state' to '{NAME}' not sent: replaced by a newer /set of 'state'",
            "status": "error",
            "transaction": 2,
        }
        assert responses[1] == {"data": {"flip_indicator_light": "ON"}, "status": "ok", "transaction": 1}
        assert responses[3] == {"data": {"state": "ON"}, "status": "ok", "transaction": 3}
        # The OFF never reached the switch.
        assert run.on_off_sent == ["ON"]
        # Still one state message per command, the replaced one included.
        states = run.states(position)
        assert len(states) == 3
        assert all(s["state"] == "ON" for s in states)
        assert states[-1]["flip_indicator_light"] == "ON"


async def test_a_toggle_never_replaces_nor_is_merged(tmp_path: Path) -> None:
    async with switch(tmp_path) as run:
        assert (await run.command("set", {"state": "OFF"}))["status"] == "ok"
        run.on_off_sent.clear()
        # ON then TOGGLE: the toggle is relative to the ON, so both are carried out.
        await run.send("set", {"state": "ON", "transaction": "on"})
        for number in range(3):
            await run.send("set", {"state": "toggle", "transaction": number})
        await run.recorder.wait_for(lambda: len(run.recorder.responses("set")) >= 4)
        responses = run.recorder.responses("set")
        assert [responses[k]["data"] for k in ("on", 0, 1, 2)] == [
            {"state": "ON"},
            {"state": "OFF"},
            {"state": "ON"},
            {"state": "OFF"},
        ]
        assert run.on_off_sent == ["ON", "TOGGLE", "TOGGLE", "TOGGLE"]


async def test_an_absolute_value_replaces_a_waiting_toggle(tmp_path: Path) -> None:
    async with switch(tmp_path) as run:
        assert (await run.command("set", {"state": "OFF"}))["status"] == "ok"
        run.on_off_sent.clear()
        await run.send("set", {"state": "TOGGLE", "transaction": "toggle"})
        await run.send("set", {"state": "TOGGLE", "transaction": "toggle again"})
        await run.send("set", {"state": "OFF", "transaction": "off"})
        await run.recorder.wait_for(lambda: "off" in run.recorder.responses("set"))
        responses = run.recorder.responses("set")
        for replaced in ("toggle", "toggle again"):
            assert responses[replaced]["status"] == "error"
            assert "not sent: replaced by a newer /set of 'state'" in responses[replaced]["error"]
        assert responses["off"]["data"] == {"state": "OFF"}
        assert run.on_off_sent == ["OFF"]


async def test_a_waiting_get_keeps_the_commands_before_it(tmp_path: Path) -> None:
    async with switch(tmp_path) as run:
        assert (await run.command("set", {"state": "OFF"}))["status"] == "ok"
        run.on_off_sent.clear()
        await run.send("set", {"state": "ON", "transaction": "on"})
        await run.send("get", {"state": "", "transaction": "read"})
        await run.send("set", {"state": "OFF", "transaction": "off"})
        await run.recorder.wait_for(lambda: "off" in run.recorder.responses("set"))
        assert run.recorder.responses("get")["read"]["data"] == {"state": "ON"}
        assert run.on_off_sent == ["ON", "OFF"]


async def test_reads_are_bounded_too(tmp_path: Path) -> None:
    async with switch(tmp_path) as run:
        for number in range(MAX_WAITING + 10):
            await run.send("get", {"state": "", "transaction": number})
        await run.recorder.wait_for(lambda: len(run.recorder.responses("get")) >= MAX_WAITING + 10)
        responses = run.recorder.responses("get")
        assert [n for n, r in responses.items() if r["status"] == "error"] == list(
            range(MAX_WAITING, MAX_WAITING + 10)
        )
        assert all(responses[n]["data"] == {"state": "OFF"} for n in range(MAX_WAITING))


# --- through the broker, the daemon as a process -----------------------------------------------------


async def test_a_flood_over_mqtt_is_answered_and_a_get_sent_during_it_too(tmp_path: Path) -> None:
    """500 toggles published as fast as a client can, then a /get: the daemon refuses what does not
    fit at once, carries out the rest in order, and answers the /get within seconds.

    (500, not 5,000: Mosquitto keeps at most 1,000 QoS 1 messages queued for one subscriber, and
    every command here is answered on the response topic.)"""
    flood = 500
    base = random_base_topic()
    ieee = seed_virtual_switch(tmp_path / "data")
    config = write_config(tmp_path / "configuration.yaml", base, devices={ieee: {"friendly_name": NAME}})
    daemon = DaemonProcess(config, tmp_path / "data")
    daemon.start()
    try:
        async with watching(base) as watcher:
            await watcher.wait_for(NAME, lambda m: bool(m.payload) and "state" in m.json())
            before = await _get_over_mqtt(watcher, "before")
            position = watcher.mark()
            began = time.monotonic()
            for number in range(flood):
                await watcher.publish(f"{NAME}/set", json.dumps({"state": "TOGGLE", "transaction": number}))
            await watcher.publish(f"{NAME}/get", json.dumps({"state": "", "transaction": "during"}))
            read = await watcher.wait_for(
                f"{NAME}/response/get", lambda m: m.json()["transaction"] == "during", after=position
            )
            answered_s = time.monotonic() - began
            await watcher.wait_for(
                f"{NAME}/response/set",
                lambda _: len(watcher.since(position, f"{NAME}/response/set")) >= flood,
                after=position,
                timeout=WAIT_S,
            )
            drained_s = time.monotonic() - began
        responses = {
            m.json()["transaction"]: m.json() for m in watcher.since(position, f"{NAME}/response/set")
        }
        assert sorted(responses) == list(range(flood))
        refused = [n for n, r in responses.items() if r["status"] == "error"]
        carried_out = [n for n, r in responses.items() if r["status"] == "ok"]
        assert refused, "a burst of 500 toggles does not fit in the line"
        assert all("commands are already waiting for the device" in responses[n]["error"] for n in refused)
        # Each toggle carried out was one toggle, in order.
        flip = {"ON": "OFF", "OFF": "ON"}
        state = before
        for number in carried_out:
            state = flip[state]
            assert responses[number]["data"] == {"state": state}, (number, responses[number])
        assert read.json()["status"] == "ok"
        print(
            f"\nover MQTT: {flood} toggles, {len(refused)} refused, {len(carried_out)} carried out; "
            f"/get sent after them answered after {answered_s:.2f} s, all answered after {drained_s:.2f} s"
        )
        assert answered_s < WAIT_S
    finally:
        code = daemon.stop()
        clear_retained(base)
    assert code == 0, daemon.log()


async def _get_over_mqtt(watcher: Watcher, transaction: str) -> str:
    position = watcher.mark()
    await watcher.publish(f"{NAME}/get", json.dumps({"state": "", "transaction": transaction}))
    message = await watcher.wait_for(
        f"{NAME}/response/get", lambda m: m.json()["transaction"] == transaction, after=position
    )
    state: str = message.json()["data"]["state"]
    return state
