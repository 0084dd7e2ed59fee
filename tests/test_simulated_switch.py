"""The simulated QBKG40LM firmware at frame level: bytes in, bytes out, no zigpy application."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import zigpy.types as t
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.sim.firmware_settings import FirmwareSettingError, firmware_request
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


# --- a fake radio link: the switch's own frames and timers on a clock the test moves ---------------


class _FakeTimer:
    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLink:
    """A `SwitchLink` on a fake clock: `advance()` runs the timers that fall due, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sends: list[list[ApsFrame]] = []
        self._timers: list[_FakeTimer] = []

    def send(self, frames: list[ApsFrame]) -> None:
        self.sends.append(list(frames))

    def call_later(self, delay: float, callback: Callable[[], None]) -> _FakeTimer:
        timer = _FakeTimer(self.now + delay, callback)
        self._timers.append(timer)
        return timer

    def pending(self) -> list[float]:
        """When the live timers are due, soonest first."""
        self._timers = [timer for timer in self._timers if not timer.cancelled]
        return sorted(timer.due for timer in self._timers)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while (due := self.pending()) and due[0] <= end + 1e-9:  # tenths add up to a hair over
            timer = min(self._timers, key=lambda each: each.due)
            self._timers.remove(timer)
            self.now = timer.due
            timer.callback()
        self.now = end

    def frames(self) -> list[ApsFrame]:
        """The frames sent since the last call."""
        frames = [frame for sent in self.sends for frame in sent]
        self.sends.clear()
        return frames


def on_air(**kwargs: Any) -> tuple[SimulatedSwitch, FakeLink]:
    switch = make(**kwargs)
    link = FakeLink()
    switch.attach(link)
    return switch, link


def timed_on(control: int, on_time: int, off_wait_time: int, tsn: int = 0x60) -> ApsFrame:
    """OnWithTimedOff as zigpy sends it: cluster-specific, default response enabled."""
    body = bytes([control]) + t.uint16_t(on_time).serialize() + t.uint16_t(off_wait_time).serialize()
    return zcl(0x0006, f"01 {tsn:02X} 42 {body.hex()}")


def timing(switch: SimulatedSwitch) -> tuple[int, int]:
    """OnTime and OffWaitTime as a read of On/Off 0x4001 and 0x4002 answers them."""
    [answer] = switch.handle(zcl(0x0006, "00 61 00 01 40 02 40"))
    payload = answer.payload
    # Records: attribute id, status SUCCESS, type uint16 (0x21), value.
    assert payload[3:7] == b"\x01\x40\x00\x21" and payload[9:13] == b"\x02\x40\x00\x21", answer
    return int.from_bytes(payload[7:9], "little"), int.from_bytes(payload[13:15], "little")


def relay_report(frame: ApsFrame) -> bool:
    """The relay state in an On/Off attribute report (`18 tt 0A 00 00 10 vv`)."""
    assert (frame.cluster_id, frame.payload[0], frame.payload[2:6]) == (0x0006, 0x18, b"\x0a\x00\x00\x10")
    return bool(frame.payload[6])


# --- ZCL: On/Off OnWithTimedOff -------------------------------------------------------------------


def test_on_with_timed_off_switches_on_counts_down_and_reports_the_off() -> None:
    switch, link = on_air()
    default, report = switch.handle(timed_on(0, 5, 0))
    assert hexes([default]) == ["18 60 0B 42 00"]
    assert relay_report(report) is True and switch.relay
    assert timing(switch) == (5, 0)
    link.advance(0.3)
    assert timing(switch) == (2, 0) and switch.relay
    assert link.frames() == []
    link.advance(0.2)
    [off] = link.frames()
    assert relay_report(off) is False and not switch.relay
    assert (off.src_endpoint, off.dst_endpoint) == (1, 1)
    assert timing(switch) == (0, 0)
    assert link.pending() == [], "the countdown's timer ends with it"


def test_accept_only_when_on_discards_the_command_while_off() -> None:
    switch, link = on_air()
    assert hexes(switch.handle(timed_on(1, 50, 0))) == ["18 60 0B 42 00"]  # no report: nothing happened
    assert not switch.relay and timing(switch) == (0, 0) and link.pending() == []
    # While on, the same command is taken.
    switch.handle(zcl(0x0006, "11 62 01"))
    [report] = switch.handle(zcl(0x0006, "11 63 42 01 32 00 00 00"))
    assert relay_report(report) is True and timing(switch) == (50, 0)


def test_on_time_becomes_the_longer_of_the_running_and_the_new_one() -> None:
    switch, link = on_air()
    switch.handle(timed_on(0, 50, 7))
    link.advance(1.0)
    assert timing(switch) == (40, 7)
    switch.handle(timed_on(0, 20, 3))
    assert timing(switch) == (40, 3), "a shorter on time leaves the running one; the off wait is the new one"
    switch.handle(timed_on(0, 100, 3))
    assert timing(switch) == (100, 3)
    link.advance(10.0)
    assert not switch.relay
    assert timing(switch) == (0, 0), "the on time running out clears the off wait (ZCL)"


def test_off_wait_guards_the_relay_after_an_off_before_the_on_time_ran_out() -> None:
    switch, link = on_air()
    switch.handle(timed_on(0, 10, 30))
    link.advance(0.5)
    [_default, report] = switch.handle(zcl(0x0006, "01 64 00"))  # Off
    assert relay_report(report) is False
    assert timing(switch) == (0, 30)
    link.advance(1.0)
    assert timing(switch) == (0, 20), "the off wait counts down while off"
    [_default, report] = switch.handle(timed_on(0, 10, 50))
    assert relay_report(report) is False, "during the off wait the command does not switch on"
    assert timing(switch) == (0, 20), "the off wait became the shorter of the two"
    switch.handle(timed_on(0, 10, 5))
    assert timing(switch) == (0, 5)
    link.advance(0.5)
    assert timing(switch) == (0, 0) and link.pending() == []
    switch.handle(timed_on(0, 10, 0))
    assert switch.relay, "once the off wait is over, the command switches on again"


def test_on_and_toggle_follow_the_timing_rules() -> None:
    switch, link = on_air()
    switch.handle(timed_on(0, 10, 30))
    switch.handle(zcl(0x0006, "11 65 02"))  # Toggle off: on time cleared, off wait runs
    assert (switch.relay, timing(switch)) == (False, (0, 30))
    switch.handle(zcl(0x0006, "11 66 01"))  # On with OnTime 0: off wait cleared
    assert (switch.relay, timing(switch)) == (True, (0, 0))
    assert link.pending() == []
    link.advance(5.0)
    assert switch.relay, "a plain On stays on"


def test_a_press_counts_as_a_toggle_for_the_timing() -> None:
    switch, link = on_air()
    switch.handle(timed_on(0, 100, 20))
    [_press, report] = switch.press("single")
    assert relay_report(report) is False and timing(switch) == (0, 20)
    link.advance(2.0)
    assert timing(switch) == (0, 0) and link.frames() == []


def test_on_time_forever_never_counts() -> None:
    switch, link = on_air()
    switch.handle(timed_on(0, 0xFFFF, 0))
    assert switch.relay and timing(switch) == (0xFFFF, 0)
    assert link.pending() == []


def test_on_time_and_off_wait_time_are_writable() -> None:
    switch, link = on_air()
    assert hexes(switch.handle(zcl(0x0006, "00 67 02 01 40 21 14 00"))) == ["18 67 04 00"]
    assert timing(switch) == (20, 0)
    assert link.pending() == [], "a write alone starts no countdown (only OnWithTimedOff does)"
    [answer] = switch.handle(zcl(0x0006, "00 68 02 02 40 20 05"))
    assert hexes([answer]) == ["18 68 04 8D 02 40"]  # uint8 for a uint16: INVALID_DATA_TYPE
    switch.handle(timed_on(0, 10, 0))
    switch.handle(zcl(0x0006, "10 69 02 01 40 21 03 00"))  # shortened while running
    link.advance(0.3)
    assert not switch.relay


def test_global_scene_control_reads_true() -> None:
    assert hexes(make().handle(zcl(0x0006, "00 6A 00 00 40"))) == ["18 6A 01 00 40 00 10 01"]


def test_a_malformed_on_with_timed_off_is_refused() -> None:
    switch, _link = on_air()
    assert hexes(switch.handle(zcl(0x0006, "01 6B 42 00 05"))) == ["18 6B 0B 42 80"]
    assert not switch.relay


def test_without_the_firmware_setting_0x42_is_an_unsupported_command() -> None:
    switch, link = on_air()
    switch.set_firmware({"on_with_timed_off": False})
    assert hexes(switch.handle(timed_on(0, 5, 0))) == ["18 60 0B 42 81"]  # UNSUP_CLUSTER_COMMAND
    assert not switch.relay and link.pending() == []
    assert hexes(switch.handle(zcl(0x0006, "00 6C 00 00 40 01 40 02 40"))) == [
        "18 6C 01 00 40 86 01 40 86 02 40 86"
    ]
    switch.set_firmware({"on_with_timed_off": True})
    assert relay_report(switch.handle(timed_on(0, 5, 0))[1]) is True


@pytest.mark.parametrize(("memory", "relay_after"), [(True, True), (False, False)])
def test_a_power_cycle_ends_the_on_time(memory: bool, relay_after: bool) -> None:
    switch, link = on_air(power_outage_memory=memory)
    switch.handle(timed_on(0, 10, 0))
    switch.power_cycle()
    assert switch.relay is relay_after
    assert timing(switch) == (0, 0) and link.pending() == []
    link.advance(5.0)
    assert switch.relay is relay_after, "the timer is gone with the power"


def test_off_the_radio_the_countdown_pauses_and_resumes_from_the_saved_record() -> None:
    switch, link = on_air()
    switch.handle(timed_on(0, 10, 0))
    link.advance(0.4)
    switch.attach(None)
    assert link.pending() == [], "taken off the radio, no timer is left"
    record = switch.to_dict()
    assert (record["on_time"], record["off_wait_time"], record["timed_off_running"]) == (6, 0, True)
    restored = SimulatedSwitch.from_dict(record)
    restored_link = FakeLink()
    restored.attach(restored_link)
    restored_link.advance(0.6)
    [off] = restored_link.frames()
    assert relay_report(off) is False


# --- prevent reset (Basic 0xFFF0) -------------------------------------------------------------------

TRIGGER_REPORT = "1C 5F 11 {tsn:02X} 0A F0 FF 41 09 AA 10 05 41 87 01 01 10 00"
# The hub's answer, as the reference writes it (§8).
ANSWER = "14 5F 11 70 02 F0 FF 41 09 AA 10 05 41 47 01 01 10 01"


def joined(**kwargs: Any) -> tuple[SimulatedSwitch, FakeLink]:
    switch, link = on_air(**kwargs)
    switch.announce()
    return switch, link


def test_a_switch_that_never_joined_sends_no_prevent_reset_report() -> None:
    switch, link = on_air()
    assert not switch.joined and link.pending() == []


def test_the_report_follows_joining_after_the_delay() -> None:
    switch, link = joined()
    assert switch.joined and link.pending() == [300.0]
    link.advance(299.0)
    assert link.frames() == []
    link.advance(1.0)
    [report] = link.frames()
    assert hexes([report]) == [TRIGGER_REPORT.format(tsn=tsn_of(report))]
    assert (report.src_endpoint, report.dst_endpoint, report.profile_id, report.cluster_id) == (1, 1, HA, 0)
    assert switch.prevent_reset.status() == {
        "waiting_for": "retry",
        "unanswered": 1,
        "reports": 1,
        "answers": 0,
    }


def test_an_answer_resets_the_count_and_the_next_report_comes_an_interval_later() -> None:
    switch, link = joined()
    link.advance(300.0)
    link.frames()
    [answer] = switch.handle(zcl(0x0000, ANSWER))
    assert hexes([answer]) == ["1C 5F 11 70 04 00"]
    assert switch.prevent_reset.status()["unanswered"] == 0
    assert link.pending() == [3900.0]
    link.advance(3600.0)
    assert len(link.frames()) == 1


@pytest.mark.parametrize(
    ("frame", "answer"),
    [
        # Another value: INVALID_VALUE.
        ("14 5F 11 71 02 F0 FF 41 09 AA 10 05 41 47 01 01 10 00", "1C 5F 11 71 04 87 F0 FF"),
        # No manufacturer code: the attribute is Lumi's.
        ("10 72 02 F0 FF 41 09 AA 10 05 41 47 01 01 10 01", "18 72 04 86 F0 FF"),
        # Not an octet string.
        ("14 5F 11 73 02 F0 FF 20 01", "1C 5F 11 73 04 8D F0 FF"),
    ],
)
def test_only_the_exact_answer_counts(frame: str, answer: str) -> None:
    switch, link = joined()
    link.advance(300.0)
    assert hexes(switch.handle(zcl(0x0000, frame))) == [answer]
    assert switch.prevent_reset.status()["unanswered"] == 1


def test_basic_0xfff0_reads_the_trigger_with_the_lumi_code() -> None:
    switch = make()
    assert hexes(switch.handle(zcl(0x0000, "04 5F 11 74 00 F0 FF"))) == [
        "1C 5F 11 74 01 F0 FF 00 41 09 AA 10 05 41 87 01 01 10 00"
    ]


def test_unanswered_reports_are_retried_then_the_switch_leaves_and_forgets_the_network() -> None:
    switch, link = joined()
    link.advance(300.0 + 3 * 600.0)
    reports = link.frames()
    assert len(reports) == 4
    assert all(frame.payload[5:7] == b"\xf0\xff" for frame in reports)
    assert switch.prevent_reset.status()["unanswered"] == 4
    assert not switch.left
    link.advance(600.0)
    assert switch.left and not switch.joined
    assert link.sends == [[]], "the radio is told (nothing leaves a gone switch)"
    assert link.pending() == []
    assert switch.to_dict()["joined"] is False
    assert switch.handle(zcl(0x0000, ANSWER)) == [], "a switch off the network hears nothing"


def test_a_late_answer_saves_the_switch() -> None:
    switch, link = joined()
    link.advance(300.0 + 3 * 600.0)
    switch.handle(zcl(0x0000, ANSWER))
    link.advance(600.0)
    assert not switch.left and switch.prevent_reset.status()["waiting_for"] == "periodic"


def test_a_silent_switch_neither_reports_nor_counts() -> None:
    switch, link = joined(responsive=False)
    link.advance(300.0 + 10 * 600.0)
    assert not switch.left and switch.prevent_reset.status()["unanswered"] == 0
    assert link.frames() == []


def test_a_power_cycle_restarts_the_cycle() -> None:
    switch, link = joined()
    link.advance(300.0 + 600.0)
    assert switch.prevent_reset.status()["unanswered"] == 2
    switch.power_cycle()
    assert switch.prevent_reset.status()["unanswered"] == 0
    assert link.pending() == [900.0 + 300.0]


def test_off_the_radio_or_after_a_leave_request_no_timer_is_left() -> None:
    switch, link = joined()
    switch.attach(None)
    assert link.pending() == []
    switch.attach(link)
    assert link.pending() == [300.0], "back on a radio, a joined switch starts afresh"
    switch.handle(zdo(0x0034, b"\x75" + IEEE.serialize() + b"\x00"))
    assert switch.left and link.pending() == []


def test_short_timings_from_the_firmware_settings() -> None:
    switch, link = joined()
    result = switch.set_firmware(
        {"prevent_reset_delay_s": 1, "prevent_reset_retry_s": 2, "prevent_reset_attempts": 2}
    )
    assert result["firmware"]["prevent_reset_delay_s"] == 1.0
    assert link.pending() == [1.0], "the wait in progress takes the new timing from now"
    link.advance(1.0 + 2.0 + 2.0)
    assert switch.left


def test_send_now_is_an_attempt() -> None:
    switch, link = joined()
    result = switch.set_firmware({}, send_prevent_reset=True)
    assert result["prevent_reset"]["unanswered"] == 1
    [report] = link.frames()
    assert report.payload[5:7] == b"\xf0\xff"
    assert link.pending() == [600.0]


def test_prevent_reset_off_stops_the_cycle_and_refuses_send_now() -> None:
    switch, link = joined()
    switch.set_firmware({"prevent_reset": False})
    assert link.pending() == []
    with pytest.raises(ValueError, match="prevent_reset is off"):
        switch.set_firmware({}, send_prevent_reset=True)
    switch.set_firmware({"prevent_reset": True})
    assert link.pending() == [300.0]


def test_send_now_needs_a_joined_switch() -> None:
    switch, _link = on_air()
    with pytest.raises(ValueError, match="not on a network"):
        switch.set_firmware({"prevent_reset_attempts": 9}, send_prevent_reset=True)
    assert switch.firmware.prevent_reset_attempts == 4, "a refused request changes nothing"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"on_with_timed_off": "no"}, "on_with_timed_off must be true or false"),
        ({"prevent_reset_interval_s": 0}, "prevent_reset_interval_s must be seconds above 0"),
        ({"prevent_reset_retry_s": float("nan")}, "prevent_reset_retry_s must be seconds"),
        ({"prevent_reset_attempts": 0}, "prevent_reset_attempts must be a whole number from 1"),
        ({"prevent_reset_attempts": 2.5}, "prevent_reset_attempts must be a whole number"),
        ({"reset_sometimes": True}, "unknown firmware setting.*reset_sometimes; the settings are"),
    ],
)
def test_bad_firmware_settings_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make().set_firmware(changes)


def test_firmware_settings_and_joined_are_saved() -> None:
    switch, _link = joined()
    switch.set_firmware({"on_with_timed_off": False, "prevent_reset_interval_s": 60})
    record = switch.to_dict()
    assert record["joined"] is True
    assert record["firmware"]["on_with_timed_off"] is False
    restored = SimulatedSwitch.from_dict(record)
    assert restored.to_dict() == record
    old = {key: value for key, value in record.items() if key not in ("joined", "firmware")}
    restored = SimulatedSwitch.from_dict(old)
    assert restored.joined, "a record from before the key is of a switch on a network"
    assert restored.firmware.on_with_timed_off
    with pytest.raises(ValueError, match="key 'firmware'"):
        SimulatedSwitch.from_dict({**record, "firmware": {"prevent_reset_attempts": -1}})


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"id": "hall", "transaction": "t1"}, ({}, False)),
        ("hall", ({}, False)),
        (
            {"id": "hall", "prevent_reset_attempts": 2, "send_prevent_reset": True},
            ({"prevent_reset_attempts": 2}, True),
        ),
    ],
)
def test_a_firmware_request_splits_into_settings_and_send_now(message: Any, expected: Any) -> None:
    assert firmware_request(message) == expected


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (["hall"], "Invalid payload: expected"),
        ({"id": "hall", "send_prevent_reset": "yes"}, "send_prevent_reset must be true or false"),
        ({"id": "hall", "prevent_reset_delay_s": True}, "prevent_reset_delay_s must be seconds"),
        ({"id": "hall", "prevent_reset_delay_s": 8 * 24 * 3600}, "at most 604800"),
    ],
)
def test_a_bad_firmware_request_says_what_is_wrong(message: Any, words: str) -> None:
    with pytest.raises(FirmwareSettingError, match=words):
        firmware_request(message)
