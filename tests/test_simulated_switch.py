"""The simulated QBKG40LM firmware at frame level: bytes in, bytes out, no zigpy application."""

from __future__ import annotations

import random
from typing import Any

import pytest
import zigpy.types as t
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.switch import SimulatedSwitch

IEEE = t.EUI64.convert("54:ef:44:10:00:00:00:01")
NWK = 0x1234
HA = 0x0104

# §6.4's constructed QBKG40LM heartbeat body: relay on, 31 °C, boot counter 2.
HEARTBEAT_SAMPLE = bytes.fromhex(
    "64 10 01 03 28 1F 05 21 02 00 9A 20 00 08 21 14 01 09 21 00 01 0B 20 00 0A 21 00 00 0C 20 01"
)


def make(**kwargs: Any) -> SimulatedSwitch:
    return SimulatedSwitch(IEEE, NWK, **kwargs)


def zcl(cluster: int, data: str, *, endpoint: int = 1) -> ApsFrame:
    """A ZCL frame from the coordinator's endpoint 1; `data` in hex as in the reference."""
    return ApsFrame(1, endpoint, HA, cluster, bytes.fromhex(data))


def zdo(cluster: int, data: bytes) -> ApsFrame:
    return ApsFrame(0, 0, 0x0000, cluster, data)


def hexes(frames: list[ApsFrame]) -> list[str]:
    return [frame.payload.hex(" ").upper() for frame in frames]


def tsn_of(frame: ApsFrame) -> int:
    return frame.payload[3] if frame.payload[0] & 0x04 else frame.payload[1]


# --- ZDO ----------------------------------------------------------------------------------------


def test_node_descriptor_is_a_lumi_router() -> None:
    [answer] = make().handle(zdo(0x0002, b"\x07" + t.NWK(NWK).serialize()))
    assert (answer.cluster_id, answer.src_endpoint, answer.dst_endpoint) == (0x8002, 0, 0)
    assert answer.payload[0] == 0x07
    _names, schema = zdo_t.CLUSTERS[zdo_t.ZDOCmd.Node_Desc_rsp]
    (status, nwk, descriptor), rest = t.deserialize(answer.payload[1:], schema)
    assert (status, nwk, rest) == (zdo_t.Status.SUCCESS, NWK, b"")
    assert descriptor.logical_type == zdo_t.LogicalType.Router
    assert descriptor.manufacturer_code == 0x115F
    assert descriptor.mac_capability_flags == 0x8E
    assert (descriptor.maximum_buffer_size, descriptor.server_mask) == (127, 0x2C00)


@pytest.mark.parametrize(("variant", "endpoints"), [("full", [1, 41]), ("fingerprint", [1])])
def test_active_endpoints_by_variant(variant: str, endpoints: list[int]) -> None:
    [answer] = make(variant=variant).handle(zdo(0x0005, b"\x09" + t.NWK(NWK).serialize()))
    assert answer.cluster_id == 0x8005
    assert answer.payload == b"\x09\x00" + t.NWK(NWK).serialize() + bytes([len(endpoints), *endpoints])


@pytest.mark.parametrize(
    ("variant", "endpoint", "inputs", "outputs"),
    [
        ("full", 1, [0x0000, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0012, 0xFCC0], [0x000A, 0x0019]),
        ("full", 41, [0x0012], []),
        ("fingerprint", 1, [0x0000, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0009], [0x000A, 0x0019]),
    ],
)
def test_simple_descriptors(variant: str, endpoint: int, inputs: list[int], outputs: list[int]) -> None:
    [answer] = make(variant=variant).handle(zdo(0x0004, b"\x0a" + t.NWK(NWK).serialize() + bytes([endpoint])))
    _names, schema = zdo_t.CLUSTERS[zdo_t.ZDOCmd.Simple_Desc_rsp]
    (status, _nwk, descriptor), _rest = t.deserialize(answer.payload[1:], schema)
    assert status == zdo_t.Status.SUCCESS
    assert (descriptor.endpoint, descriptor.profile) == (endpoint, HA)
    assert list(descriptor.input_clusters) == inputs
    assert list(descriptor.output_clusters) == outputs


def test_unadvertised_endpoint_is_not_active() -> None:
    [answer] = make(variant="fingerprint").handle(zdo(0x0004, b"\x0a" + t.NWK(NWK).serialize() + b"\x29"))
    assert answer.payload == b"\x0a\x83" + t.NWK(NWK).serialize() + b"\x00"


def test_unknown_zdo_request_is_not_supported() -> None:
    [answer] = make().handle(zdo(0x0032, b"\x0b\x00"))  # Mgmt_Rtg_req
    assert (answer.cluster_id, answer.payload) == (0x8032, b"\x0b\x84")


def test_ieee_address_request_about_itself_only() -> None:
    switch = make()
    [answer] = switch.handle(zdo(0x0001, b"\x0c" + t.NWK(NWK).serialize() + b"\x00\x00"), broadcast=True)
    assert answer.payload == b"\x0c\x00" + IEEE.serialize() + t.NWK(NWK).serialize()
    assert switch.handle(zdo(0x0001, b"\x0d\x99\x99\x00\x00"), broadcast=True) == []


def test_leave_without_and_with_rejoin() -> None:
    switch = make()
    [answer, announce] = switch.handle(zdo(0x0034, b"\x0e" + IEEE.serialize() + b"\x80"))
    assert answer.payload == b"\x0e\x00"
    assert announce.cluster_id == 0x0013
    assert not switch.left
    [answer] = switch.handle(zdo(0x0034, b"\x0f" + IEEE.serialize() + b"\x00"))
    assert answer.payload == b"\x0f\x00"
    assert switch.left
    assert switch.handle(zdo(0x0002, b"\x10" + t.NWK(NWK).serialize())) == []


# --- ZCL: Basic, OTA ------------------------------------------------------------------------------


def test_basic_model_and_manufacturer_read() -> None:
    [answer] = make().handle(zcl(0x0000, "00 21 00 04 00 05 00"))
    model = b"lumi.switch.b1nc01".hex(" ").upper()
    assert hexes([answer]) == [f"18 21 01 04 00 00 42 04 4C 55 4D 49 05 00 00 42 12 {model}"]
    assert (answer.src_endpoint, answer.dst_endpoint, answer.cluster_id) == (1, 1, 0x0000)


def test_basic_values() -> None:
    [answer] = make().handle(zcl(0x0000, "00 22 00 00 00 01 00 02 00 03 00 06 00 07 00 00 40 FF 00"))
    assert hexes([answer]) == [
        "18 22 01"
        " 00 00 00 20 03"  # ZCL version 3
        " 01 00 00 20 1D"  # application version 29
        " 02 00 00 20 02"  # stack version 2
        " 03 00 00 20 01"  # hardware version 1
        " 06 00 00 42 0A 30 36 2D 31 35 2D 32 30 32 32"  # 06-15-2022
        " 07 00 00 30 01"  # mains, single phase
        " 00 40 00 42 0A 30 2E 30 2E 30 5F 30 30 32 39"  # 0.0.0_0029
        " FF 00 86"  # unknown: unsupported
    ]


def test_basic_also_answers_with_lumi_manufacturer_code() -> None:
    [answer] = make().handle(zcl(0x0000, "04 5F 11 23 00 05 00"))
    assert hexes([answer])[0].startswith("1C 5F 11 23 01 05 00 00 42 12")


def test_ota_client_current_file_version() -> None:
    # zigpy reads the OTA *client* cluster with direction server->client; the answer comes back flipped.
    [answer] = make().handle(zcl(0x0019, "18 24 00 02 00"))
    assert hexes([answer]) == ["10 24 01 02 00 00 23 1D 00 00 00"]


def test_ota_image_notify_needs_no_answer() -> None:
    assert make().handle(zcl(0x0019, "19 25 00 01 64")) == []


# --- ZCL: On/Off ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "before", "after"),
    [("01", False, True), ("00", True, False), ("02", False, True), ("02", True, False)],
)
def test_on_off_commands_answer_and_report(command: str, before: bool, after: bool) -> None:
    switch = make(relay=before)
    default, report = switch.handle(zcl(0x0006, f"01 40 {command}"))
    assert hexes([default]) == [f"18 40 0B {command} 00"]
    assert report.payload == bytes([0x18, tsn_of(report), 0x0A, 0x00, 0x00, 0x10, int(after)])
    assert report.src_endpoint == 1
    assert switch.relay is after


def test_on_off_with_default_response_disabled_only_reports() -> None:
    switch = make()
    [report] = switch.handle(zcl(0x0006, "11 41 01"))
    assert report.payload[2:] == bytes.fromhex("0A 00 00 10 01")


def test_on_off_unknown_command_and_attribute_read() -> None:
    switch = make(relay=True)
    assert hexes(switch.handle(zcl(0x0006, "01 42 40"))) == ["18 42 0B 40 81"]
    assert hexes(switch.handle(zcl(0x0006, "00 43 00 00 00"))) == ["18 43 01 00 00 00 10 01"]


def test_broadcast_command_acts_without_default_response() -> None:
    switch = make()
    frames = switch.handle(zcl(0x0006, "01 44 01"), broadcast=True)
    assert [frame.payload[2] for frame in frames] == [0x0A]  # the report only
    assert switch.relay


# --- ZCL: the Lumi cluster -----------------------------------------------------------------------


def test_lumi_read_with_manufacturer_code() -> None:
    # §7: read of operation_mode -> control_relay.
    assert hexes(make().handle(zcl(0xFCC0, "14 5F 11 50 00 00 02"))) == ["1C 5F 11 50 01 00 02 00 20 01"]


def test_lumi_read_of_every_attribute() -> None:
    switch = make(flip_indicator_light=1, power_outage_memory=True, operation_mode=0)
    [answer] = switch.handle(zcl(0xFCC0, "14 5F 11 51 00 09 00 F0 00 01 02 00 02 F7 00"))
    assert (
        answer.payload
        == bytes.fromhex(
            "1C 5F 11 51 01 09 00 00 20 01 F0 00 00 20 01 01 02 00 10 01 00 02 00 20 00 F7 00 00 41 1F"
        )
        + switch.heartbeat_body()
    )


def test_lumi_attributes_need_the_manufacturer_code() -> None:
    switch = make()
    assert hexes(switch.handle(zcl(0xFCC0, "10 52 00 00 02 01 02"))) == ["18 52 01 00 02 86 01 02 86"]
    assert hexes(switch.handle(zcl(0xFCC0, "10 53 02 00 02 20 00"))) == ["18 53 04 86 00 02"]
    assert switch.operation_mode == 1
    # Another manufacturer's code does not do either.
    assert hexes(switch.handle(zcl(0xFCC0, "14 34 12 54 00 00 02"))) == ["1C 34 12 54 01 00 02 86"]


def test_lumi_writes() -> None:
    switch = make()
    # §7 frames: decoupled, power-outage memory on; Zigbee2MQTT disables the default response.
    assert hexes(switch.handle(zcl(0xFCC0, "14 5F 11 55 02 00 02 20 00"))) == ["1C 5F 11 55 04 00"]
    assert hexes(switch.handle(zcl(0xFCC0, "14 5F 11 56 02 01 02 10 01"))) == ["1C 5F 11 56 04 00"]
    assert hexes(switch.handle(zcl(0xFCC0, "14 5F 11 57 02 F0 00 20 01 09 00 20 01"))) == [
        "1C 5F 11 57 04 00"
    ]
    assert (switch.operation_mode, switch.power_outage_memory, switch.flip_indicator_light, switch.mode) == (
        0,
        True,
        1,
        1,
    )


def test_lumi_write_errors() -> None:
    switch = make()
    wrong_type, bad_value, read_only = switch.handle(zcl(0xFCC0, "14 5F 11 58 02 00 02 21 00 00")) + (
        switch.handle(zcl(0xFCC0, "14 5F 11 59 02 00 02 20 05"))
        + switch.handle(zcl(0xFCC0, "14 5F 11 5A 02 F7 00 41 01 00"))
    )
    assert hexes([wrong_type, bad_value, read_only]) == [
        "1C 5F 11 58 04 8D 00 02",
        "1C 5F 11 59 04 87 00 02",
        "1C 5F 11 5A 04 88 F7 00",
    ]
    assert switch.operation_mode == 1


def test_undivided_write_applies_nothing_on_any_error() -> None:
    switch = make()
    answer = switch.handle(zcl(0xFCC0, "14 5F 11 5B 03 00 02 20 00 01 02 20 01"))
    assert hexes(answer) == ["1C 5F 11 5B 04 8D 01 02"]
    assert switch.operation_mode == 1
    # A plain write applies the good record and reports the bad one.
    switch.handle(zcl(0xFCC0, "14 5F 11 5C 02 00 02 20 00 01 02 20 01"))
    assert switch.operation_mode == 0


def test_write_no_response() -> None:
    switch = make()
    assert switch.handle(zcl(0xFCC0, "14 5F 11 5D 05 00 02 20 00")) == []
    assert switch.operation_mode == 0


def test_configure_reporting_is_acknowledged() -> None:
    answer = make().handle(zcl(0x0006, "10 5E 06 00 00 00 10 01 00 2C 01"))
    assert hexes(answer) == ["18 5E 07 00"]


# --- ZCL: errors and groups --------------------------------------------------------------------------


def test_unknown_cluster_and_unknown_general_command() -> None:
    switch = make()
    assert hexes(switch.handle(zcl(0x0300, "01 60 00"))) == ["18 60 0B 00 C3"]
    assert hexes(switch.handle(zcl(0x0006, "10 61 0C 00 00 10"))) == ["18 61 0B 0C 82"]
    assert switch.handle(zcl(0x0006, "01 62 01", endpoint=7)) == []  # no such endpoint: APS drops it


def test_groups() -> None:
    switch = make()
    assert hexes(switch.handle(zcl(0x0004, "01 70 00 34 12 00"))) == ["19 70 00 00 34 12"]
    assert hexes(switch.handle(zcl(0x0004, "01 71 00 34 12 00"))) == ["19 71 00 8A 34 12"]
    assert hexes(switch.handle(zcl(0x0004, "01 72 02 00"))) == ["19 72 02 07 01 34 12"]
    assert hexes(switch.handle(zcl(0x0004, "01 73 03 34 12"))) == ["19 73 03 00 34 12"]
    assert switch.groups == set()


# --- physical events -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value"),
    [("single", "01 00"), ("double", "02 00"), ("hold", "00 00"), ("triple", "03 00"), ("release", "FF 00")],
)
def test_press_bytes(kind: str, value: str) -> None:
    switch = make(operation_mode=0)
    [report] = switch.press(kind)
    assert (report.src_endpoint, report.dst_endpoint, report.profile_id, report.cluster_id) == (
        41,
        1,
        HA,
        0x0012,
    )
    assert report.payload.hex(" ").upper() == f"18 {tsn_of(report):02X} 0A 55 00 21 {value}"


def test_press_in_decoupled_mode_leaves_the_relay() -> None:
    switch = make(operation_mode=0, relay=True)
    assert len(switch.press("single")) == 1
    assert switch.relay


def test_single_press_in_control_relay_mode_toggles_and_reports() -> None:
    switch = make(relay=False)
    press, report = switch.press("single")
    assert press.cluster_id == 0x0012
    assert (report.cluster_id, report.payload[2:]) == (0x0006, bytes.fromhex("0A 00 00 10 01"))
    assert switch.relay
    assert len(switch.press("double")) == 1  # only a single press switches
    assert switch.relay


def test_presses_need_event_mode() -> None:
    switch = make(operation_mode=0, mode=0)
    assert switch.press("single") == []


def test_unknown_press_kind() -> None:
    with pytest.raises(ValueError, match="quadruple"):
        make().press("quadruple")


def test_spontaneous_frames_count_their_own_tsn() -> None:
    switch = make(operation_mode=0)
    first, second = switch.press("single")[0], switch.press("double")[0]
    assert tsn_of(second) == (tsn_of(first) + 1) & 0xFF
    [answer] = switch.handle(zcl(0x0006, "00 99 00 00"))
    assert tsn_of(answer) == 0x99


def test_heartbeat_matches_the_reference_sample() -> None:
    switch = make(relay=True, temperature=31, power_outages=1)
    [report] = switch.heartbeat()
    assert (report.src_endpoint, report.dst_endpoint, report.cluster_id) == (1, 1, 0xFCC0)
    assert (
        report.payload
        == bytes([0x1C, 0x5F, 0x11, tsn_of(report), 0x0A, 0xF7, 0x00, 0x41, 31]) + HEARTBEAT_SAMPLE
    )


def test_heartbeat_with_a_new_temperature() -> None:
    switch = make()
    [report] = switch.heartbeat(temperature=-5.4)
    assert b"\x03\x28\xfb" in report.payload  # int8 -5
    assert switch.temperature == -5.4
    [report] = switch.heartbeat(temperature=30.5)
    assert b"\x03\x28\x1f" in report.payload  # halves round up: 31
    with pytest.raises(ValueError, match="temperature"):
        switch.heartbeat(temperature=300)


@pytest.mark.parametrize(("memory", "relay_after"), [(True, True), (False, False)])
def test_power_cycle(memory: bool, relay_after: bool) -> None:
    switch = make(
        relay=True, power_outage_memory=memory, operation_mode=0, flip_indicator_light=1, groups=[7]
    )
    announce, report, heartbeat = switch.power_cycle()
    assert (announce.cluster_id, announce.src_endpoint) == (0x0013, 0)
    assert announce.payload[1:] == t.NWK(NWK).serialize() + IEEE.serialize() + b"\x8e"
    assert report.payload[2:] == bytes.fromhex("0A 00 00 10") + bytes([relay_after])
    assert b"\x05\x21\x02\x00" in heartbeat.payload  # boot counter: one outage -> 2
    assert switch.power_outages == 1
    assert switch.relay is relay_after
    # Flash survives a power cut.
    assert (switch.operation_mode, switch.flip_indicator_light, switch.groups) == (0, 1, {7})


def test_silent_switch_answers_nothing_but_still_switches() -> None:
    switch = make()
    switch.responsive = False
    assert switch.handle(zdo(0x0002, b"\x01" + t.NWK(NWK).serialize())) == []
    assert switch.handle(zcl(0x0006, "01 01 01")) == []
    assert switch.press("single") == []
    assert switch.heartbeat() == []
    assert switch.power_cycle() == []
    assert switch.relay is False  # the command never arrived; the press toggled; the power cut cleared


# --- identity and persistence -------------------------------------------------------------------------


def test_random_addresses() -> None:
    rng = random.Random(4)
    switches = [SimulatedSwitch.create(rng, taken_nwks=[0x0000]) for _ in range(20)]
    for switch in switches:
        assert str(switch.ieee).startswith("54:ef:44:")
        assert 0x0001 <= switch.nwk <= 0xFFF7
    assert len({switch.ieee for switch in switches}) == 20


def test_persistence_round_trip() -> None:
    switch = make(
        variant="fingerprint",
        relay=True,
        operation_mode=0,
        power_outage_memory=True,
        flip_indicator_light=1,
        mode=0,
        power_outages=3,
        temperature=27.5,
        firmware_version=24,
        responsive=False,
        groups=[1, 2],
    )
    record = switch.to_dict()
    assert record["ieee"] == "54:ef:44:10:00:00:00:01"
    assert record["operation_mode"] == "decoupled"
    restored = SimulatedSwitch.from_dict(record)
    assert restored.to_dict() == record
    assert restored.ieee == IEEE
    assert restored.sw_build_id == "0.0.0_0024"
    assert SimulatedSwitch.from_dict({**record, "nwk": 0x1234}).nwk == 0x1234  # a hand-written int works too


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"ieee": "nope"}, "ieee"),
        ({"nwk": "0x0000"}, "(values)"),
        ({"operation_mode": "sideways"}, "operation_mode"),
    ],
)
def test_bad_records_name_the_key(change: dict[str, str], key: str) -> None:
    record = {**make().to_dict(), **change}
    with pytest.raises(ValueError, match=key.replace("(", r"\(").replace(")", r"\)")):
        SimulatedSwitch.from_dict(record)


@pytest.mark.parametrize("kind", ["squeeze", {"single": 1}, ["double"], 1])
def test_an_unknown_press_kind_is_a_clear_error(kind: object) -> None:
    with pytest.raises(ValueError, match="unknown press kind"):
        make().press(kind)  # type: ignore[arg-type]
