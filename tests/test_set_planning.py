"""A whole `/set` or `/get` as steps, in Zigbee2MQTT's order, with an error per key; `on_time` and
`off_wait_time` as OnWithTimedOff and its fallback; the off timer with a fake clock. No radio, no broker.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from z2m_qbkg40lm.bridge.timed_off import PendingOff, TimedOffs, decode_operation, encode_operation
from z2m_qbkg40lm.devices.definition import (
    ClusterCommand,
    ConversionError,
    ReadAttributes,
    SetPlan,
    WriteAttribute,
)
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM
from z2m_qbkg40lm.devices.registry import (
    PlannedStep,
    claimed_together,
    plan_command,
    plan_get_command,
    plan_set,
    set_order,
)

NAME = "hall_switch"
ON_OFF = 0x0006
LUMI = 0xFCC0
MFR = 0x115F
ON = ClusterCommand(1, ON_OFF, 0x01)
OFF = ClusterCommand(1, ON_OFF, 0x00)


def plan(properties: dict[str, Any], state: dict[str, Any] | None = None, **kwargs: Any) -> list[PlannedStep]:
    return plan_command(QBKG40LM, properties, state or {}, {}, device_name=NAME, **kwargs)


def only_plan(properties: dict[str, Any]) -> SetPlan:
    steps = plan(properties)
    assert len(steps) == 1 and steps[0].plan is not None, steps
    return steps[0].plan


# --- order ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"flip_indicator_light": "ON", "state": "OFF"}, ["flip_indicator_light", "state"]),
        ({"state": "off", "flip_indicator_light": "ON"}, ["flip_indicator_light", "state"]),
        ({"flip_indicator_light": "ON", "state": "ON"}, ["state", "flip_indicator_light"]),
        ({"flip_indicator_light": "ON", "state": "toggle"}, ["state", "flip_indicator_light"]),
        # Not the string OFF (a JSON false, a number): first, like any other state.
        ({"flip_indicator_light": "ON", "state": False}, ["state", "flip_indicator_light"]),
        (
            {"brightness": 1, "a": 1, "state": "OFF", "b": 2, "brightness_percent": 3},
            ["a", "b", "brightness", "state", "brightness_percent"],
        ),
        (
            {"a": 1, "brightness": 1, "state": "ON", "b": 2},
            ["brightness", "state", "a", "b"],
        ),
    ],
)
def test_state_off_goes_last_and_anything_else_first(properties: dict[str, Any], expected: list[str]) -> None:
    assert set_order(properties) == expected


def test_off_is_sent_after_the_settings_and_on_before_them() -> None:
    off = plan({"state": "OFF", "operation_mode": "decoupled", "power_outage_memory": True})
    assert [step.keys for step in off] == [("operation_mode",), ("power_outage_memory",), ("state",)]
    assert off[-1].plan is not None and off[-1].plan.operations == (OFF,)
    on = plan({"operation_mode": "decoupled", "state": "ON"})
    assert [step.keys for step in on] == [("state",), ("operation_mode",)]


# --- partial application: an error per key, the others planned ------------------------------------


def test_a_bad_key_gives_its_error_and_the_good_ones_are_planned() -> None:
    steps = plan({"state": "ON", "brightness": 254})
    assert steps[0] == PlannedStep(("state",), SetPlan((ON,), {"state": "ON"}))
    assert steps[1].keys == ("brightness",) and steps[1].plan is None
    assert steps[1].error is not None
    # Zigbee2MQTT's wording first (users' log filters), then what can be set.
    assert steps[1].error.startswith(f"No converter available for 'brightness' on '{NAME}': (254); ")
    assert "settable: state, power_outage_memory, flip_indicator_light, operation_mode" in steps[1].error


def test_every_kind_of_error_is_worded_like_zigbee2mqtt() -> None:
    steps = plan(
        {
            "device_temperature": 20,
            "operation_mode": "sideways",
            "bogus": {"x": [1, "y"]},
            "flip_indicator_light": "ON",
        }
    )
    errors = {step.keys[0]: step.error for step in steps}
    assert errors["device_temperature"] is not None
    assert errors["device_temperature"].startswith(
        f"No converter available for 'device_temperature' on '{NAME}': (20); device_temperature: read-only"
    )
    assert errors["operation_mode"] == (
        f"Publish 'set' 'operation_mode' to '{NAME}' failed: "
        "'operation_mode: 'sideways' is not one of control_relay, decoupled (any case, or {\"state\": ...})'"
    )
    # The value as JSON, keys sorted, no spaces (Zigbee2MQTT's stringify).
    assert errors["bogus"] is not None
    shown = """({"x":[1,"y"]}); """
    assert errors["bogus"].startswith(f"No converter available for 'bogus' on '{NAME}': {shown}")
    assert errors["flip_indicator_light"] is None


def test_a_converter_runs_once_for_all_its_keys() -> None:
    steps = plan({"on_time": 5, "state": "ON", "off_wait_time": 2})
    assert len(steps) == 1
    assert steps[0].keys == ("state", "on_time", "off_wait_time")


# --- the generic keys -----------------------------------------------------------------------------


def test_generic_keys_go_to_the_generic_planner() -> None:
    seen: list[tuple[str, Any]] = []
    read = ReadAttributes(1, 0x0000, (0x0005,))

    def generic(key: str, value: Any) -> SetPlan:
        seen.append((key, value))
        if key == "write":
            raise ConversionError("write: no cluster given")
        return SetPlan((read,))

    payload = {"cluster": "genBasic", "attributes": ["modelId"]}
    steps = plan({"read": payload, "write": {}, "state": "ON"}, generic=generic)
    assert seen == [("read", payload), ("write", {})]
    assert [step.keys for step in steps] == [("state",), ("read",), ("write",)]
    assert steps[1].plan == SetPlan((read,))
    assert steps[2].error == f"Publish 'set' 'write' to '{NAME}' failed: 'write: no cluster given'"


def test_generic_keys_without_a_planner_get_an_error() -> None:
    steps = plan({"command": {"cluster": 6, "command": "on"}})
    assert steps[0].error is not None
    assert steps[0].error.startswith(f"""No converter available for 'command' on '{NAME}': ({{"cluster":6""")


# --- on_time / off_wait_time ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "args"),
    [
        ({"state": "ON", "on_time": 5}, (0, 50, 0)),
        ({"state": "on", "on_time": 0.35, "off_wait_time": 2}, (0, 4, 20)),  # 3.5 tenths round up
        ({"state": "ON", "off_wait_time": 1.25}, (0, 0, 13)),
        ({"state": "ON", "on_time": 6553.4}, (0, 65534, 0)),
        ({"state": "ON", "on_time": 0}, (0, 0, 0)),
    ],
)
def test_on_with_on_time_sends_on_with_timed_off(message: dict[str, Any], args: tuple[int, ...]) -> None:
    planned = only_plan(message)
    assert planned.operations == (ClusterCommand(1, ON_OFF, 0x42, args=args),)
    assert planned.optimistic_state == {"state": "ON"}
    assert planned.fallback is not None
    assert planned.fallback.operations == (ON,)
    assert planned.fallback.optimistic_state == {"state": "ON"}
    assert planned.fallback.delay_s == args[1] / 10
    # An on time of 0 starts no countdown: no off from the timer either.
    assert planned.fallback.later_operations == ((OFF,) if args[1] else ())
    assert planned.fallback.later_state == ({"state": "OFF"} if args[1] else {})
    assert "OnWithTimedOff" in planned.fallback.notice


@pytest.mark.parametrize("state", ["OFF", "off", "TOGGLE"])
def test_on_time_is_ignored_with_off_and_toggle(state: str) -> None:
    planned = only_plan({"state": state, "on_time": "not even a number"})
    assert [op.command_id for op in planned.operations if isinstance(op, ClusterCommand)] == [
        0x00 if state.upper() == "OFF" else 0x02
    ]
    assert planned.fallback is None


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"state": "ON", "on_time": "5"}, ["The on_time value must be a number!", "'5'"]),
        ({"state": "ON", "on_time": True}, ["The on_time value must be a number!"]),
        ({"state": "ON", "off_wait_time": None}, ["The off_wait_time value must be a number!"]),
        ({"state": "ON", "on_time": -1}, ["on_time: -1 is out of range: 0 to 6553.4 seconds"]),
        ({"state": "ON", "on_time": 6553.5}, ["on_time: 6553.5 is out of range"]),
        ({"state": "ON", "off_wait_time": 1e9}, ["off_wait_time: 1000000000.0 is out of range"]),
        ({"on_time": 5}, ['on_time: needs "state": "ON" in the same /set']),
        ({"off_wait_time": 5}, ['off_wait_time: needs "state": "ON"']),
        ({"state": "dim", "on_time": 5}, ["state: 'dim' is not one of ON, OFF, TOGGLE"]),
    ],
)
def test_bad_on_time_is_refused_with_the_reason(message: dict[str, Any], words: list[str]) -> None:
    steps = plan(message)
    assert len(steps) == 1 and steps[0].plan is None
    assert steps[0].error is not None
    first = next(iter(set_order(message)))
    assert steps[0].error.startswith(f"Publish 'set' '{first}' to '{NAME}' failed: '")
    for word in words:
        assert word in steps[0].error


def test_on_time_with_other_keys_still_plans_the_others() -> None:
    steps = plan({"state": "ON", "on_time": "x", "flip_indicator_light": "ON"})
    assert steps[0].plan is None and steps[0].keys == ("state", "on_time")
    assert steps[1].plan is not None
    assert steps[1].plan.operations == (WriteAttribute(1, LUMI, 0x00F0, 0x20, 1, manufacturer=MFR),)


def test_single_property_forms_still_work() -> None:
    assert plan_set(QBKG40LM, "state", "ON", {}, {}).operations == (ON,)
    with pytest.raises(ConversionError, match="needs"):
        plan_set(QBKG40LM, "on_time", 5, {}, {})


def test_state_and_its_times_are_taken_over_together() -> None:
    assert claimed_together(QBKG40LM, "state") == {"state", "on_time", "off_wait_time"}
    assert claimed_together(QBKG40LM, "operation_mode") == {"operation_mode"}


# --- /get -----------------------------------------------------------------------------------------


def test_get_merges_the_reads_of_one_cluster_and_gives_an_error_per_key() -> None:
    steps = plan_get_command(
        QBKG40LM,
        {"operation_mode": "", "state": "", "action": "", "power_outage_memory": "", "bogus": ""},
        device_name=NAME,
    )
    assert [step.keys for step in steps] == [
        ("operation_mode", "power_outage_memory"),
        ("state",),
        ("action",),
        ("bogus",),
    ]
    assert steps[0].plan == SetPlan((ReadAttributes(1, LUMI, (0x0200, 0x0201), MFR),))
    assert steps[1].plan == SetPlan((ReadAttributes(1, ON_OFF, (0x0000,)),))
    assert steps[2].error is not None and "action: not readable on QBKG40LM" in steps[2].error
    assert steps[3].error is not None
    assert steps[3].error.startswith(f"No converter available for 'bogus' on '{NAME}'")


def test_on_time_is_not_readable() -> None:
    steps = plan_get_command(QBKG40LM, {"on_time": ""}, device_name=NAME)
    assert steps[0].plan is None


# --- the off timer, with a fake clock -------------------------------------------------------------


class FakeClock:
    """Wall-clock time the test moves; sleepers wake when it passes their time."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self._moved = asyncio.Condition()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        until = self.now + seconds
        async with self._moved:
            await self._moved.wait_for(lambda: self.now >= until)

    async def advance(self, seconds: float) -> None:
        async with self._moved:
            self.now += seconds
            self._moved.notify_all()
        for _ in range(5):
            await asyncio.sleep(0)


def timer(clock: FakeClock, path: Path | None, sent: list[PendingOff]) -> TimedOffs:
    offs = TimedOffs(path, clock=clock, sleep=clock.sleep)

    async def fire(pending: PendingOff) -> None:
        sent.append(pending)

    offs.bind(fire)
    return offs


IEEE = "0x54ef441000abcdef"


async def test_the_off_is_sent_after_the_delay() -> None:
    clock, sent = FakeClock(), []
    offs = timer(clock, None, sent)
    offs.arm(IEEE, 30, (OFF,), {"state": "OFF"})
    await clock.advance(29.9)
    assert sent == []
    await clock.advance(0.1)
    assert [(p.ieee, p.operations, p.state) for p in sent] == [(IEEE, (OFF,), {"state": "OFF"})]
    assert offs.pending(IEEE) is None
    await offs.stop()


async def test_a_newer_set_of_state_or_a_report_of_off_cancels_it() -> None:
    clock, sent = FakeClock(), []
    offs = timer(clock, None, sent)
    offs.arm(IEEE, 30, (OFF,), {"state": "OFF"})
    assert not offs.cancel_for_keys(IEEE, ("flip_indicator_light",), "other key")
    assert offs.cancel_for_keys(IEEE, ("state",), "a newer /set of state")
    offs.arm(IEEE, 30, (OFF,), {"state": "OFF"})
    assert not offs.cancel_when_reached(IEEE, {"state": "ON", "linkquality": 3})
    assert offs.cancel_when_reached(IEEE, {"state": "OFF", "linkquality": 3})
    await clock.advance(60)
    assert sent == []
    await offs.stop()


async def test_a_new_on_time_starts_the_countdown_again() -> None:
    clock, sent = FakeClock(), []
    offs = timer(clock, None, sent)
    offs.arm(IEEE, 30, (OFF,), {"state": "OFF"})
    await clock.advance(20)
    offs.arm(IEEE, 30, (OFF,), {"state": "OFF"})
    await clock.advance(20)
    assert sent == []
    await clock.advance(10)
    assert len(sent) == 1
    await offs.stop()


async def test_a_pending_off_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "timed_off.json"
    clock, sent = FakeClock(), []
    offs = timer(clock, path, sent)
    offs.arm(IEEE, 30, (OFF,), {"state": "OFF"})
    offs.arm("0x54ef441000000001", 300, (OFF,), {"state": "OFF"})
    await offs.stop()  # the daemon stops: nothing is sent, the file keeps both
    assert path.stat().st_mode & 0o777 == 0o600
    assert set(json.loads(path.read_text())["offs"]) == {IEEE, "0x54ef441000000001"}

    await clock.advance(100)  # down for 100 s: the first is overdue, the second has 200 s left
    again = timer(clock, path, sent)
    await again.start()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [p.ieee for p in sent] == [IEEE]
    await clock.advance(199)
    assert len(sent) == 1
    await clock.advance(1)
    assert [p.ieee for p in sent] == [IEEE, "0x54ef441000000001"]
    assert json.loads(path.read_text())["offs"] == {}
    await again.stop()


async def test_a_removed_device_loses_its_pending_off(tmp_path: Path) -> None:
    path = tmp_path / "timed_off.json"
    clock, sent = FakeClock(), []
    offs = timer(clock, path, sent)
    offs.arm(IEEE, 30, (OFF,), {"state": "OFF"})
    offs.forget(IEEE)
    await clock.advance(60)
    assert sent == []
    assert json.loads(path.read_text())["offs"] == {}
    await offs.stop()


async def test_an_unreadable_file_sends_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "timed_off.json"
    path.write_text("{not json")
    clock, sent = FakeClock(), []
    offs = timer(clock, path, sent)
    await offs.start()
    assert sent == []
    assert "unreadable" in caplog.text
    await offs.stop()


@pytest.mark.parametrize(
    "operation",
    [OFF, ClusterCommand(1, ON_OFF, 0x42, args=(0, 5, 0)), WriteAttribute(1, LUMI, 0xF0, 0x20, 1, MFR)],
)
def test_operations_are_kept_as_json_and_read_back(operation: Any) -> None:
    assert decode_operation(json.loads(json.dumps(encode_operation(operation)))) == operation
