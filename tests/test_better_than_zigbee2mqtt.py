"""Where the daemon deliberately does better than Zigbee2MQTT, one test (or table) per difference.

- Strict types: Zigbee2MQTT publishes a `/set` value as the user wrote it (`"true"` as a string,
  `"on"` in lower case); the daemon publishes the normalised value the property's expose declares.
- Out-of-range attribute values: Zigbee2MQTT publishes `value === 1`, so a 2 becomes `false` /
  `OFF`; the daemon ignores the value with a warning and keeps the last good one.
- A truncated heartbeat: its good items (before the cut) are published.
- Unknown heartbeat tags and unknown press values publish nothing instead of junk.
- `operation_mode` is read back after a write (Zigbee2MQTT publishes nothing until the switch
  reports): what is published is what the switch answers, also when it did not take the value.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from zigpy.zcl import foundation

from tests.in_process import ReceivedFrame, daemon_in_process
from z2m_qbkg40lm.devices.definition import AttributeMessage, ReadAttributes, State, WriteAttribute
from z2m_qbkg40lm.devices.lumi_tlv import encode_tlv
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM
from z2m_qbkg40lm.devices.registry import convert_inbound, plan_set
from z2m_qbkg40lm.sim.frames import ApsFrame

LUMI = 0xFCC0
MFR = 0x115F
ON_OFF = 0x0006
MULTISTATE = 0x0012


def inbound(cluster: int, attribute: int, value: Any, *, endpoint: int = 1) -> State:
    return convert_inbound(QBKG40LM, AttributeMessage(endpoint, cluster, attribute, value), {})


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- Strict types --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "value", "published"),
    [
        ("power_outage_memory", "true", True),
        ("power_outage_memory", "false", False),
        ("power_outage_memory", "ON", True),
        ("power_outage_memory", 1, True),
        ("flip_indicator_light", "on", "ON"),
        ("flip_indicator_light", "Off", "OFF"),
        ("state", "on", "ON"),
    ],
)
def test_better_strict_types_publish_the_normalised_value_not_the_raw_input(
    prop: str, value: Any, published: Any
) -> None:
    state = plan_set(QBKG40LM, prop, value, {}, {}).optimistic_state
    assert state == {prop: published}
    assert type(state[prop]) is type(published)


# --- Out-of-range attribute values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "value", "good", "prop"),
    [
        ((LUMI, 0x0201), 2, 1, "power_outage_memory"),
        ((LUMI, 0x0201), 255, 1, "power_outage_memory"),
        ((ON_OFF, 0x0000), 2, 1, "state"),
        ((ON_OFF, 0x0000), 255, 1, "state"),
        ((LUMI, 0x0200), 2, 0, "operation_mode"),
    ],
)
def test_better_out_of_range_attribute_values_are_ignored_not_published_as_false(
    where: tuple[int, int], value: int, good: int, prop: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster, attribute = where
    assert prop in inbound(cluster, attribute, good)
    caplog.clear()
    assert inbound(cluster, attribute, value) == {}
    [warning] = warnings(caplog)
    assert f"0x{attribute:04X}" in warning
    assert repr(value) in warning


# --- The heartbeat ---------------------------------------------------------------------------------------


def test_better_a_truncated_heartbeat_publishes_its_good_items(caplog: pytest.LogCaptureFixture) -> None:
    # relay on, 31 °C, then the power-outage count cut after its type byte.
    body = bytes.fromhex("64 10 01 03 28 1F 05 21 02")
    assert inbound(LUMI, 0x00F7, body) == {"state": "ON", "device_temperature": 31}
    [warning] = warnings(caplog)
    assert "using the 2 item(s) before it" in warning


def test_better_unknown_heartbeat_tags_publish_nothing(caplog: pytest.LogCaptureFixture) -> None:
    known = [(100, 0x10, True), (3, 0x28, 30)]
    unknown = [(0x9A, 0x20, 7), (200, 0x21, 513), (8, 0x21, 276), (101, 0x10, False), (6, 0x41, b"\x01\x02")]
    state = inbound(LUMI, 0x00F7, encode_tlv([*unknown[:2], *known, *unknown[2:]]))
    assert state == {"state": "ON", "device_temperature": 30}
    assert warnings(caplog) == []


@pytest.mark.parametrize("value", [4, 5, 16, 254, 1000, -1])
def test_better_unknown_press_values_publish_nothing(value: int, caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(MULTISTATE, 0x0055, value, endpoint=41) == {}
    [warning] = warnings(caplog)
    assert repr(value) in warning


# --- The read-back of operation_mode ---------------------------------------------------------------------


def test_better_operation_mode_is_read_back_after_the_write_not_assumed() -> None:
    plan = plan_set(QBKG40LM, "operation_mode", "decoupled", {"operation_mode": "control_relay"}, {})
    assert plan.operations == (
        WriteAttribute(1, LUMI, 0x0200, 0x20, 0, manufacturer=MFR),
        ReadAttributes(1, LUMI, (0x0200,), manufacturer=MFR),
    )
    assert plan.optimistic_state == {}


def _is_operation_mode_write(received: ReceivedFrame) -> bool:
    return (
        received.frame.cluster_id == LUMI
        and received.header.command_id == foundation.GeneralCommand.Write_Attributes
        and received.body[:2] == bytes.fromhex("00 02")
    )


def _is_operation_mode_read(received: ReceivedFrame) -> bool:
    return (
        received.frame.cluster_id == LUMI
        and received.header.command_id == foundation.GeneralCommand.Read_Attributes
        and received.body == bytes.fromhex("00 02")
    )


async def test_better_operation_mode_published_is_what_the_switch_answers(tmp_path: Path) -> None:
    async with daemon_in_process(tmp_path) as running:
        watcher, name, switch = running.watcher, running.ieee, running.switch

        # A switch that takes the write: the read-back publishes the new mode.
        position = watcher.mark()
        await watcher.publish(f"{name}/set", '{"operation_mode": "decoupled"}')
        state = await watcher.wait_state(
            name, lambda s: s.get("operation_mode") == "decoupled", after=position
        )
        assert switch.operation_mode_name == "decoupled"
        assert [r for r in running.received if _is_operation_mode_read(r)], "no read-back"
        assert state["operation_mode"] == "decoupled"

        # A switch that acknowledges the write but keeps its mode (seen on real ones): the
        # published mode stays the switch's, not the one asked for.
        def acknowledge_only(frame: ApsFrame, header: foundation.ZCLHeader) -> list[ApsFrame] | None:
            if not _is_operation_mode_write(ReceivedFrame(frame, header, frame.payload[5:])):
                return None
            payload = bytes(
                [0x1C, 0x5F, 0x11, header.tsn, foundation.GeneralCommand.Write_Attributes_rsp, 0x00]
            )
            return [
                ApsFrame(frame.dst_endpoint, frame.src_endpoint, frame.profile_id, frame.cluster_id, payload)
            ]

        running.answers.append(acknowledge_only)
        position, before = watcher.mark(), running.mark()
        await watcher.publish(f"{name}/set", '{"operation_mode": "control_relay"}')
        await running.wait_received(_is_operation_mode_read, after=before)
        state = await watcher.wait_state(name, lambda s: "operation_mode" in s, after=position)
        assert state["operation_mode"] == "decoupled"
        assert switch.operation_mode_name == "decoupled"
        assert not [
            m for m in watcher.since(position, name) if m.json().get("operation_mode") == "control_relay"
        ]
