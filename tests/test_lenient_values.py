"""The values a `/set` of each settable property takes: what Zigbee2MQTT takes, mapped to what it says.

Zigbee2MQTT's converters for the QBKG40LM (zigbee-herdsman-converters `tz.on_off`,
`lumi_switch_power_outage_memory`, `lumi_flip_indicator_light`, `lumi_switch_operation_mode_opple`):

- `state`: a string, any case: on, off, toggle.
- `power_outage_memory`: anything; it writes `value ? 1 : 0`, so `"false"`, `"OFF"` and `"0"` turn
  the memory ON there. Here the usual spellings each mean what they say; the rest is refused.
- `flip_indicator_light`: the strings ON and OFF in any case (its lookup refuses true and 1).
- `operation_mode`: control_relay or decoupled in any case, bare or as `{"state": …}`.

Each is published normalised (`true`/`false`, `"ON"`/`"OFF"`, the mode's own spelling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from zigpy.zcl import foundation

from tests.in_process import ReceivedFrame, daemon_in_process
from z2m_qbkg40lm.devices.definition import (
    ClusterCommand,
    ConversionError,
    ReadAttributes,
    SetPlan,
    WriteAttribute,
)
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM
from z2m_qbkg40lm.devices.registry import plan_set

LUMI = 0xFCC0
MFR = 0x115F
ON_OFF = 0x0006


def set_(prop: str, value: Any) -> SetPlan:
    return plan_set(QBKG40LM, prop, value, {}, {})


POWER_OUTAGE_MEMORY_TABLE = [
    (True, True),
    (False, False),
    (1, True),
    (0, False),
    (1.0, True),
    (0.0, False),
    ("true", True),
    ("false", False),
    ("TRUE", True),
    ("False", False),
    ("ON", True),
    ("OFF", False),
    ("on", True),
    ("Off", False),
    ("1", True),
    ("0", False),
]


@pytest.mark.parametrize(("value", "enabled"), POWER_OUTAGE_MEMORY_TABLE)
def test_power_outage_memory_takes_what_zigbee2mqtt_takes(value: Any, enabled: bool) -> None:
    assert set_("power_outage_memory", value) == SetPlan(
        (WriteAttribute(1, LUMI, 0x0201, 0x10, 1 if enabled else 0, manufacturer=MFR),),
        {"power_outage_memory": enabled},
    )


@pytest.mark.parametrize("value", ["false", "FALSE", "OFF", "off", "0", 0, False])
def test_power_outage_memory_false_spellings_write_0_not_zigbee2mqtts_true(value: Any) -> None:
    # Zigbee2MQTT writes every non-empty string as 1; "false" must switch the memory off.
    plan = set_("power_outage_memory", value)
    [write] = plan.operations
    assert isinstance(write, WriteAttribute)
    assert write.value == 0
    assert plan.optimistic_state == {"power_outage_memory": False}


@pytest.mark.parametrize("value", ["yes", "no", "enabled", "", "  on", "true ", 2, -1, 0.5, None, [], {}])
def test_power_outage_memory_refuses_anything_else_naming_what_it_takes(value: Any) -> None:
    with pytest.raises(ConversionError) as info:
        set_("power_outage_memory", value)
    message = str(info.value)
    assert message.startswith("power_outage_memory: ")
    for accepted in ("true, false", "1, 0", '"ON", "OFF"', '"true", "false"', "any case"):
        assert accepted in message


@pytest.mark.parametrize(
    ("value", "word"),
    [("ON", "ON"), ("OFF", "OFF"), ("on", "ON"), ("off", "OFF"), ("On", "ON"), ("oFF", "OFF")],
)
def test_flip_indicator_light_takes_on_off_in_any_case_and_publishes_upper_case(
    value: str, word: str
) -> None:
    assert set_("flip_indicator_light", value) == SetPlan(
        (WriteAttribute(1, LUMI, 0x00F0, 0x20, 1 if word == "ON" else 0, manufacturer=MFR),),
        {"flip_indicator_light": word},
    )


@pytest.mark.parametrize("value", [True, False, 1, 0, "true", "1", "TOGGLE", "", None, {"state": "ON"}])
def test_flip_indicator_light_refuses_what_zigbee2mqtt_refuses(value: Any) -> None:
    with pytest.raises(ConversionError) as info:
        set_("flip_indicator_light", value)
    assert str(info.value).startswith("flip_indicator_light: ")
    assert str(info.value).endswith("is not one of ON, OFF (any case)")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("control_relay", 1),
        ("decoupled", 0),
        ("CONTROL_RELAY", 1),
        ("Decoupled", 0),
        ({"state": "DECOUPLED"}, 0),
        ({"state": "Control_Relay"}, 1),
    ],
)
def test_operation_mode_takes_any_case_and_the_state_object(value: Any, code: int) -> None:
    assert set_("operation_mode", value).operations == (
        WriteAttribute(1, LUMI, 0x0200, 0x20, code, manufacturer=MFR),
        ReadAttributes(1, LUMI, (0x0200,), manufacturer=MFR),
    )


@pytest.mark.parametrize(
    "value", [1, 0, True, "relay", "", None, {"state": None}, {"state": 1}, ["decoupled"]]
)
def test_operation_mode_refuses_anything_else_naming_what_it_takes(value: Any) -> None:
    with pytest.raises(ConversionError) as info:
        set_("operation_mode", value)
    assert str(info.value).startswith("operation_mode: ")
    assert str(info.value).endswith('is not one of control_relay, decoupled (any case, or {"state": ...})')


@pytest.mark.parametrize(
    ("value", "command", "word"), [("on", 0x01, "ON"), ("oFf", 0x00, "OFF"), ("Toggle", 0x02, None)]
)
def test_state_takes_any_case(value: str, command: int, word: str | None) -> None:
    plan = set_("state", value)
    [operation] = plan.operations
    assert isinstance(operation, ClusterCommand)
    assert (operation.cluster_id, operation.command_id) == (ON_OFF, command)
    assert plan.optimistic_state == ({} if word is None else {"state": word})


# --- End to end: through the broker to the simulated switch --------------------------------------------


def _power_outage_memory_write(received: ReceivedFrame) -> bool:
    return (
        received.frame.cluster_id == LUMI
        and received.header.command_id == foundation.GeneralCommand.Write_Attributes
    )


def _written_value(received: ReceivedFrame) -> Any:
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Write_Attributes].schema
    args, _ = schema.deserialize(received.body)
    [attribute] = args.attributes
    assert (attribute.attrid, attribute.value.type) == (0x0201, 0x10)
    return attribute.value.value


async def test_power_outage_memory_false_as_a_string_publishes_false_and_writes_0(tmp_path: Path) -> None:
    async with daemon_in_process(tmp_path) as running:
        watcher, name = running.watcher, running.ieee
        position = watcher.mark()
        await watcher.publish(f"{name}/set", '{"power_outage_memory": "ON"}')
        state = await watcher.wait_state(name, lambda s: s.get("power_outage_memory") is True, after=position)
        assert state["power_outage_memory"] is True
        assert running.switch.power_outage_memory is True

        written = running.mark()
        position = watcher.mark()
        await watcher.publish(f"{name}/set", '{"power_outage_memory": "false"}')
        state = await watcher.wait_state(name, lambda s: "power_outage_memory" in s, after=position)
        assert state["power_outage_memory"] is False  # the JSON false, not the string "false"
        assert running.switch.power_outage_memory is False
        [write] = running.received_since(written, _power_outage_memory_write)
        assert _written_value(write) == 0

        # The plain-value topic takes the same words.
        position = watcher.mark()
        await watcher.publish(f"{name}/set/power_outage_memory", "1")
        await watcher.wait_state(name, lambda s: s.get("power_outage_memory") is True, after=position)
        assert running.switch.power_outage_memory is True


async def test_a_value_outside_the_table_is_refused_naming_what_is_taken(tmp_path: Path) -> None:
    async with daemon_in_process(tmp_path) as running:
        watcher, name = running.watcher, running.ieee
        position = watcher.mark()
        await watcher.publish(f"{name}/set", '{"power_outage_memory": "maybe"}')
        record = await watcher.wait_log(lambda r: r["level"] == "error", after=position)
        assert "power_outage_memory: 'maybe' is not one of true, false" in record["message"]
        assert '"ON", "OFF"' in record["message"]
        assert running.switch.power_outage_memory is False
        assert not [r for r in running.received if _power_outage_memory_write(r)]
