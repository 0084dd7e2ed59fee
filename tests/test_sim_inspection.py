"""`simulation/inject` and `simulation/frames` below the front-ends: ZCL value encoding, request
checks, the Report Attributes frame a switch sends, the bounded log of received frames, and the
decoding of what a switch received. zigpy's own ZCL parser is the oracle for the bytes."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import zigpy.types as t
from zigpy.zcl import foundation

from z2m_qbkg40lm.sim.frame_log import FrameLog, ReceivedFrame
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.inspection import (
    MAX_ZCL_PAYLOAD,
    InspectionError,
    inject,
    parse_frames,
    parse_inject,
    take_frames,
)
from z2m_qbkg40lm.sim.switch import SimulatedSwitch
from z2m_qbkg40lm.sim.zcl_decode import decode, to_json
from z2m_qbkg40lm.sim.zcl_values import ZCL_TYPES, ZclValueError, encode_value

IEEE = t.EUI64.convert("54:ef:44:10:00:00:00:01")
HA = 0x0104
LUMI = 0xFCC0
LUMI_CODE = 0x115F
SWITCH = "0x54ef441000000001"


def make(**kwargs: Any) -> SimulatedSwitch:
    return SimulatedSwitch(IEEE, 0x1234, **kwargs)


def from_coordinator(cluster: int, payload: bytes, endpoint: int = 1) -> ApsFrame:
    return ApsFrame(1, endpoint, HA, cluster, payload)


def general(
    command: foundation.GeneralCommand,
    tsn: int,
    manufacturer: int | None = None,
    *,
    disable_default_response: bool = True,
    **fields: Any,
) -> bytes:
    """A foundation command as zigpy frames it."""
    hdr = foundation.ZCLHeader.general(tsn, command, manufacturer=manufacturer)
    hdr.frame_control = hdr.frame_control.replace(disable_default_response=disable_default_response)
    body = foundation.GENERAL_COMMANDS[command].schema(**fields)
    return bytes(hdr.serialize() + body.serialize())


def decoded_value(type_id: int, data: bytes) -> Any:
    """What zigpy reads from a record value, as JSON."""
    typed, rest = foundation.TypeValue.deserialize(bytes([type_id]) + data)
    assert rest == b""
    return to_json(typed.value)


# --- ZCL values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_id", "value", "wire", "read_back"),
    [
        (0x10, True, "01", True),
        (0x10, False, "00", False),
        (0x10, 255, "ff", 255),  # ZCL's invalid boolean: a real device's odd value
        (0x20, 255, "ff", 255),
        (0x21, 0x1234, "3412", 0x1234),
        (0x22, 0x123456, "563412", 0x123456),
        (0x27, 2**64 - 1, "ff" * 8, 2**64 - 1),
        (0x28, -128, "80", -128),
        (0x29, -2, "feff", -2),
        (0x2B, -(2**31), "00000080", -(2**31)),
        (0x30, 3, "03", 3),
        (0x18, 0b1010, "0a", 0b1010),
        (0x08, 7, "07", "07"),
        (0x0B, 0x01020304, "04030201", "04030201"),  # general data: the bytes as they are
        (0x38, 1.0, "003c", 1.0),
        (0x39, -2.5, "000020c0", -2.5),
        (0x3A, 0.1, "9a9999999999b93f", 0.1),
        (0x41, "aa10 0541", "04aa100541", "aa100541"),
        (0x41, "", "00", ""),
        (0x43, "0102", "02000102", "0102"),
        (0x42, "lumi.switch.b1nc01", "12" + b"lumi.switch.b1nc01".hex(), "lumi.switch.b1nc01"),
        (0x44, "é", "0200c3a9", "é"),
        (0xF0, "0x54ef441000000001", "010000001044ef54", "0x54ef441000000001"),
        (0xF0, "54:ef:44:10:00:00:00:01", "010000001044ef54", "0x54ef441000000001"),
        (0xE2, 700_000_000, (700_000_000).to_bytes(4, "little").hex(), 700_000_000),
        (0xE8, 0xFCC0, "c0fc", 0xFCC0),
        (
            0xF1,
            "00112233445566778899aabbccddeeff",
            "00112233445566778899aabbccddeeff",
            "00112233445566778899aabbccddeeff",
        ),
        (0x48, "20 0200 0102", "2002000102", {"type": 0x20, "value": [1, 2]}),
        (
            0x4C,
            "0200 20 05 21 0600",
            "02002005210600",
            [{"type": 0x20, "value": 5}, {"type": 0x21, "value": 6}],
        ),
        (0x00, None, "", None),
    ],
)
def test_values_encode_as_zigpy_reads_them(type_id: int, value: Any, wire: str, read_back: Any) -> None:
    data = encode_value(type_id, value)
    assert data.hex() == wire.replace(" ", "")
    assert decoded_value(type_id, data) == read_back


def test_every_zcl_type_of_the_specification_is_known_to_zigpy_too() -> None:
    for type_id in ZCL_TYPES:
        foundation.DataType.from_type_id(foundation.DataTypeId(type_id))


@pytest.mark.parametrize(
    ("type_id", "value", "message"),
    [
        (0x20, 256, "256 does not fit uint8 (0x20): expected 0 to 255"),
        (0x20, -1, "-1 does not fit uint8 (0x20)"),
        (0x20, True, "uint8 (0x20) needs an integer from 0 to 255, not true"),
        (0x20, 1.5, "uint8 (0x20) needs an integer"),
        (0x20, "1", "uint8 (0x20) needs an integer"),
        (0x28, 128, "128 does not fit int8 (0x28): expected -128 to 127"),
        (0x10, 256, "bool (0x10) needs true, false or a raw byte 0-255, not 256"),
        (0x10, "true", "bool (0x10) needs true, false"),
        (0x38, 70000, "70000 does not fit semi (0x38): too large"),
        (0x39, 1e39, "does not fit single (0x39)"),
        (0x39, "1", "single (0x39) needs a number"),
        (0x41, "abc", "must be hex text"),
        (0x41, "zz", "must be hex text"),
        (0x41, 12, "must be hex text"),
        (0x41, "00" * 255, "255 bytes do not fit octstr (0x41): at most 254"),
        (0x42, 5, "string (0x42) needs text, not 5"),
        (0x42, "x" * 255, "255 bytes of UTF-8 do not fit string (0x42)"),
        (0xF0, "0x54ef44", "EUI64 (0xF0) needs an address"),
        (0xF1, "0011", "key128 (0xF1) needs exactly 16 bytes (32 hex digits), not 2"),
        (0xE0, "01020304ff", "ToD (0xE0) needs exactly 4 bytes"),
        (0x48, "20 0300 0102", "is not a valid array (0x48) encoding"),
        (0x48, "20 0100 0102", "1 byte(s) left over"),
        (0x00, 0, "nodata (0x00) carries no value: give null, not 0"),
        (0x99, 1, "unknown ZCL type id 0x99"),
        (0x05, 1, "unknown ZCL type id 0x05"),
    ],
)
def test_values_that_do_not_fit_their_type_are_refused_with_a_reason(
    type_id: int, value: Any, message: str
) -> None:
    with pytest.raises(ZclValueError) as caught:
        encode_value(type_id, value)
    assert message in str(caught.value)


# --- simulation/inject: the request ---------------------------------------------------------------


def test_inject_request_with_names_and_hex_text() -> None:
    request = parse_inject(
        {
            "ieee": SWITCH,
            "cluster": "manuSpecificLumi",
            "manufacturer_code": "0x115F",
            "attributes": [{"id": "power_outage_memory", "type": "bool", "value": True}],
            "transaction": "t1",
        }
    )
    assert request.switch == SWITCH
    report = request.report
    assert (report.endpoint, report.cluster_id, report.manufacturer) == (1, LUMI, LUMI_CODE)
    [attribute] = report.attributes
    assert (attribute.attribute_id, attribute.zcl_type, attribute.value) == (0x0201, 0x10, True)


def test_inject_request_by_numbers() -> None:
    report = parse_inject(
        {
            "id": "hall",
            "endpoint": 41,
            "cluster": 0x0012,
            "attributes": [
                {"id": 0x0055, "type": 0x21, "value": 2},
                {"id": "0x0055", "type": "0x21", "value": 1},
            ],
        }
    ).report
    assert (report.endpoint, report.cluster_id, report.manufacturer) == (41, 0x0012, None)
    assert [(a.attribute_id, a.zcl_type, a.value) for a in report.attributes] == [
        (0x55, 0x21, 2),
        (0x55, 0x21, 1),
    ]


def test_endpoints_and_clusters_the_switch_does_not_have_are_allowed() -> None:
    # Real devices send from endpoints they never advertised; what the daemon makes of it is the test.
    report = parse_inject(
        {
            "id": SWITCH,
            "endpoint": 240,
            "cluster": 0x1234,
            "attributes": [{"id": 1, "type": 0x20, "value": 1}],
        }
    ).report
    [frame], _answer = inject(make(), report)
    assert (frame.src_endpoint, frame.cluster_id) == (240, 0x1234)


def test_hex_values_are_echoed_without_spaces() -> None:
    request = parse_inject(
        {"id": SWITCH, "cluster": 0, "attributes": [{"id": 0xFFF0, "type": 0x41, "value": "AA10 0541"}]}
    )
    _frames, answer = inject(make(), request.report)
    assert answer["attributes"] == [{"id": 0xFFF0, "type": 0x41, "value": "aa100541"}]


def test_injected_heartbeat_is_the_frame_the_firmware_sends_itself() -> None:
    own = make()
    [heartbeat] = own.heartbeat()
    request = parse_inject(
        {
            "id": SWITCH,
            "endpoint": 1,
            "cluster": LUMI,
            "manufacturer_code": LUMI_CODE,
            "attributes": [{"id": 0x00F7, "type": 0x41, "value": own.heartbeat_body().hex()}],
        }
    )
    other = make()
    frames, answer = inject(other, request.report)
    assert frames == [heartbeat]  # same TSN too: both switches start counting from 0
    assert answer == {
        "endpoint": 1,
        "cluster": LUMI,
        "manufacturer_code": LUMI_CODE,
        "attributes": [{"id": 0x00F7, "type": 0x41, "value": own.heartbeat_body().hex()}],
        "tsn": 1,
        "frame": heartbeat.payload.hex(),
        "sent": True,
    }


def test_injected_report_parses_in_zigpy_as_sent() -> None:
    request = parse_inject(
        {
            "id": SWITCH,
            "cluster": 0,
            "attributes": [
                {"id": 65520, "type": 65, "value": "aa10054187011100"},
                {"id": 5, "type": 66, "value": "x"},
            ],
        }
    )
    [frame], answer = inject(make(), request.report)
    assert (frame.src_endpoint, frame.dst_endpoint, frame.profile_id, frame.cluster_id) == (1, 1, HA, 0)
    hdr, body = foundation.ZCLHeader.deserialize(frame.payload)
    assert hdr.command_id == foundation.GeneralCommand.Report_Attributes
    assert hdr.direction == foundation.Direction.Server_to_Client
    assert hdr.manufacturer is None and hdr.frame_control.disable_default_response
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Report_Attributes].schema
    args, rest = schema.deserialize(body)
    assert rest == b""
    assert [(r.attrid, r.value.type, to_json(r.value.value)) for r in args.attribute_reports] == [
        (65520, 0x41, "aa10054187011100"),
        (5, 0x42, "x"),
    ]
    assert answer["tsn"] == hdr.tsn


def test_a_silent_switch_sends_nothing_but_the_answer_says_so() -> None:
    request = parse_inject({"id": SWITCH, "cluster": 6, "attributes": [{"id": 0, "type": 16, "value": True}]})
    frames, answer = inject(make(responsive=False), request.report)
    assert frames == [] and answer["sent"] is False


def test_the_longest_report_one_frame_carries_is_accepted_and_one_byte_more_refused() -> None:
    # Header 5 bytes (manufacturer-specific), record header 3, octet string length 1: 73 bytes of data.
    fits = "00" * (MAX_ZCL_PAYLOAD - 9)
    message = {"id": SWITCH, "cluster": LUMI, "manufacturer_code": LUMI_CODE}
    request = parse_inject({**message, "attributes": [{"id": 0xF7, "type": 0x41, "value": fits}]})
    assert len(request.report.payload(0)) == MAX_ZCL_PAYLOAD
    with pytest.raises(InspectionError, match=r"the report is 83 bytes, one Zigbee frame carries at most 82"):
        parse_inject({**message, "attributes": [{"id": 0xF7, "type": 0x41, "value": fits + "00"}]})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("hall", "expected a JSON object"),
        ({"cluster": 6, "attributes": []}, "the switch is missing"),
        ({"id": 5, "cluster": 6}, "id must be a text"),
        ({"id": "a", "ieee": "b", "cluster": 6}, "id and ieee name different switches"),
        ({"id": "a", "cluster": 6, "manufacturer": 4447, "attributes": []}, "unknown key(s) manufacturer"),
        ({"id": "a", "attributes": [{"id": 0, "type": 16, "value": True}]}, "cluster is missing"),
        ({"id": "a", "cluster": 70000, "attributes": []}, "cluster must be a number from 0 to 65535"),
        (
            {"id": "a", "cluster": "0xZZ", "attributes": []},
            "cluster must be a number from 0 to 65535 (or hex text",
        ),
        ({"id": "a", "cluster": "lights", "attributes": []}, "unknown cluster name 'lights'"),
        (
            {"id": "a", "cluster": 6, "endpoint": 0, "attributes": []},
            "endpoint must be a number from 1 to 240",
        ),
        (
            {"id": "a", "cluster": 6, "endpoint": 255, "attributes": []},
            "endpoint must be a number from 1 to 240",
        ),
        ({"id": "a", "cluster": 6, "endpoint": True, "attributes": []}, "endpoint must be a number"),
        (
            {"id": "a", "cluster": 6, "manufacturer_code": 65536, "attributes": []},
            "manufacturer_code must be",
        ),
        ({"id": "a", "cluster": 6}, "attributes must be a non-empty list"),
        ({"id": "a", "cluster": 6, "attributes": []}, "attributes must be a non-empty list"),
        ({"id": "a", "cluster": 6, "attributes": [5]}, "attributes[0] must be"),
        ({"id": "a", "cluster": 6, "attributes": [{"id": 0, "type": 16}]}, "attributes[0].value is missing"),
        (
            {"id": "a", "cluster": 6, "attributes": [{"id": 0, "value": 1}]},
            "attributes[0] needs an id and a ZCL type",
        ),
        (
            {"id": "a", "cluster": 6, "attributes": [{"id": 0, "type": 16, "value": 1, "unit": "x"}]},
            "attributes[0] has unknown key(s) unit",
        ),
        (
            {
                "id": "a",
                "cluster": 6,
                "attributes": [{"id": 0, "type": 16, "value": True}, {"id": 0, "type": 0x99}],
            },
            "attributes[1].type: unknown ZCL type id 0x99",
        ),
        (
            {"id": "a", "cluster": 6, "attributes": [{"id": 0, "type": "uint7", "value": 1}]},
            "unknown ZCL type 'uint7'",
        ),
        (
            {"id": "a", "cluster": 6, "attributes": [{"id": 0, "type": 0x20, "value": 300}]},
            "attributes[0].value: 300 does not fit uint8 (0x20): expected 0 to 255",
        ),
        (
            {"id": "a", "cluster": 6, "attributes": [{"id": "brightness", "type": 0x20, "value": 3}]},
            "cluster 0x0006 has no attribute named 'brightness'",
        ),
        (
            {
                "id": "a",
                "cluster": LUMI,
                "manufacturer_code": 0x1234,
                "attributes": [{"id": "mode", "type": 0x20, "value": 1}],
            },
            "no attribute named 'mode' for manufacturer 0x1234",
        ),
        (
            {"id": "a", "cluster": 6, "attributes": [{"id": 65536, "type": 0x20, "value": 3}]},
            "attributes[0].id must",
        ),
    ],
)
def test_bad_inject_requests_name_what_is_wrong(payload: Any, message: str) -> None:
    with pytest.raises(InspectionError) as caught:
        parse_inject(payload)
    assert message in str(caught.value)
    assert str(caught.value).startswith("Invalid payload: ")


def test_frames_request() -> None:
    assert parse_frames({"id": "hall"}).cluster_id is None
    assert parse_frames({"ieee": SWITCH, "cluster": "0xFCC0", "transaction": 3}).cluster_id == LUMI
    assert parse_frames({"id": "hall", "cluster": "on_off"}).cluster_id == 6
    with pytest.raises(InspectionError, match="unknown key"):
        parse_frames({"id": "hall", "clusters": [6]})
    with pytest.raises(InspectionError, match="unknown cluster name"):
        parse_frames({"id": "hall", "cluster": "x"})


# --- the log of received frames -------------------------------------------------------------------


def test_the_log_keeps_the_newest_frames_and_counts_the_dropped_ones_per_cluster() -> None:
    log = FrameLog(limit=3)
    for cluster in (6, 6, LUMI, 0, 6):
        log.record(from_coordinator(cluster, b"\x10\x01\x00"))
    assert len(log) == 3
    taken = log.take(LUMI)
    assert [each.frame.cluster_id for each in taken.frames] == [LUMI] and taken.dropped == 0
    taken = log.take()
    assert [each.frame.cluster_id for each in taken.frames] == [0, 6]
    assert taken.dropped == 2  # both On/Off
    assert log.take() == log.take()
    assert log.take().frames == [] and log.take().dropped == 0


def test_a_filtered_take_leaves_the_other_clusters_and_their_dropped_count() -> None:
    log = FrameLog(limit=2)
    for cluster in (0, 6, 6):
        log.record(from_coordinator(cluster, b"\x10\x01\x00"))
    taken = log.take(6)
    assert len(taken.frames) == 2 and taken.dropped == 0
    rest = log.take()
    assert rest.frames == [] and rest.dropped == 1  # the Basic frame pushed out unread


def test_the_switch_logs_zcl_frames_it_receives_but_not_zdo_and_nothing_while_silent() -> None:
    switch = make()
    write = general(
        foundation.GeneralCommand.Write_Attributes,
        7,
        LUMI_CODE,
        attributes=[foundation.Attribute(0x0201, foundation.TypeValue(0x10, t.Bool.true))],
    )
    switch.handle(from_coordinator(LUMI, write))
    switch.handle(ApsFrame(0, 0, 0, 0x0002, b"\x07" + t.NWK(0x1234).serialize()))  # Node_Desc_req
    switch.handle(from_coordinator(6, b"\x01\x08\x02"), broadcast=True)  # toggle to a group
    switch.responsive = False
    switch.handle(from_coordinator(6, b"\x01\x09\x02"))
    taken = switch.received.take()
    assert [(each.frame.payload, each.broadcast) for each in taken.frames] == [
        (write, False),
        (b"\x01\x08\x02", True),
    ]


# --- decoding -------------------------------------------------------------------------------------


def received(cluster: int, payload: bytes, *, endpoint: int = 1, broadcast: bool = False) -> ReceivedFrame:
    return ReceivedFrame(from_coordinator(cluster, payload, endpoint), broadcast, 1_700_000_000.25)


def test_a_lumi_write_decodes_with_the_definitions_names() -> None:
    write = general(
        foundation.GeneralCommand.Write_Attributes,
        7,
        LUMI_CODE,
        attributes=[foundation.Attribute(0x0201, foundation.TypeValue(0x10, t.Bool.true))],
    )
    assert decode(received(LUMI, write)) == {
        "received_at": "2023-11-14T22:13:20.250Z",
        "endpoint": 1,
        "source_endpoint": 1,
        "profile": HA,
        "cluster": LUMI,
        "cluster_name": "manuSpecificLumi",
        "broadcast": False,
        "raw": write.hex(),
        "frame_type": "global",
        "direction": "client_to_server",
        "manufacturer_code": LUMI_CODE,
        "disable_default_response": True,
        "tsn": 7,
        "command": 2,
        "command_name": "write_attributes",
        "attributes": [{"id": 0x0201, "name": "power_outage_memory", "type": 0x10, "value": True}],
    }


def test_the_prevent_reset_write_on_basic_has_no_attribute_name() -> None:
    value = t.LVBytes(bytes.fromhex("aa1005414701011001"))
    write = general(
        foundation.GeneralCommand.Write_Attributes,
        9,
        LUMI_CODE,
        attributes=[foundation.Attribute(0xFFF0, foundation.TypeValue(0x41, value))],
    )
    decoded = decode(received(0, write))
    assert decoded["cluster_name"] == "basic"
    assert decoded["attributes"] == [
        {"id": 0xFFF0, "name": None, "type": 0x41, "value": "aa1005414701011001"}
    ]


def test_read_configure_reporting_and_report_decode_their_attributes() -> None:
    read = general(
        foundation.GeneralCommand.Read_Attributes, 1, attribute_ids=[t.uint16_t(0), t.uint16_t(0x4003)]
    )
    assert decode(received(6, read))["attributes"] == [
        {"id": 0, "name": "on_off"},
        {"id": 0x4003, "name": "start_up_on_off"},
    ]
    send = foundation.AttributeReportingConfig()
    send.direction, send.attrid, send.datatype = foundation.ReportingDirection.SendReports, 0, 0x10
    send.min_interval, send.max_interval = 0, 300
    analog = foundation.AttributeReportingConfig()
    analog.direction, analog.attrid, analog.datatype = foundation.ReportingDirection.SendReports, 0, 0x29
    analog.min_interval, analog.max_interval, analog.reportable_change = 10, 3600, 50
    receive = foundation.AttributeReportingConfig()
    receive.direction, receive.attrid, receive.timeout = foundation.ReportingDirection.ReceiveReports, 0, 60
    hdr = foundation.ZCLHeader.general(2, foundation.GeneralCommand.Configure_Reporting)
    configure = bytes(hdr.serialize()) + send.serialize() + analog.serialize() + receive.serialize()
    assert decode(received(6, configure))["attributes"] == [
        {
            "id": 0,
            "name": "on_off",
            "direction": "send",
            "type": 0x10,
            "min_interval": 0,
            "max_interval": 300,
            "reportable_change": None,
        },
        {
            "id": 0,
            "name": "on_off",
            "direction": "send",
            "type": 0x29,
            "min_interval": 10,
            "max_interval": 3600,
            "reportable_change": 50,
        },
        {"id": 0, "name": "on_off", "direction": "receive", "timeout": 60},
    ]
    report = general(
        foundation.GeneralCommand.Report_Attributes,
        3,
        attribute_reports=[foundation.Attribute(0x0055, foundation.TypeValue(0x21, t.uint16_t(2)))],
    )
    decoded = decode(received(0x0012, report, endpoint=41))
    assert (decoded["cluster_name"], decoded["endpoint"]) == ("multistate_input", 41)
    assert decoded["attributes"] == [{"id": 0x0055, "name": "present_value", "type": 0x21, "value": 2}]


def test_cluster_commands_and_other_foundation_commands_give_their_fields() -> None:
    hdr = foundation.ZCLHeader.cluster(4, 0x42)
    timed = bytes(hdr.serialize()) + bytes.fromhex("00 3200 0000")
    decoded = decode(received(6, timed, broadcast=True))
    assert (decoded["frame_type"], decoded["command"], decoded["command_name"]) == (
        "cluster",
        0x42,
        "on_with_timed_off",
    )
    assert decoded["fields"] == {"on_off_control": 0, "on_time": 50, "off_wait_time": 0}
    assert decoded["broadcast"] is True and decoded["disable_default_response"] is False
    default = general(
        foundation.GeneralCommand.Default_Response, 5, command_id=0x0A, status=foundation.Status.SUCCESS
    )
    assert decode(received(6, default))["fields"] == {"command_id": 0x0A, "status": 0}
    add = bytes(foundation.ZCLHeader.cluster(6, 0x00).serialize()) + bytes.fromhex("3412 00")
    assert decode(received(4, add))["fields"] == {"group_id": 0x1234, "group_name": ""}


@pytest.mark.parametrize(
    ("payload", "fields", "error"),
    [
        ("14", {}, "not a ZCL frame: "),
        (
            "10 01 00 00",
            {"command": 0, "command_name": "read_attributes"},
            "cannot decode the command's payload 00",
        ),
        ("10 01 5f", {"command": 0x5F, "command_name": None}, "no foundation command 0x5F"),
        (
            "11 01 55",
            {"command": 0x55, "command_name": None},
            "zigpy defines no command 0x55 of cluster 0x0006",
        ),
        ("15 5f11 01 00", {"manufacturer_code": LUMI_CODE}, "a manufacturer-specific cluster command"),
        ("13 01 00", {"frame_type": "reserved"}, "reserved frame type 3"),
        ("11 01 42 00 05", {"command_name": "on_with_timed_off"}, "cannot decode the command's payload 0005"),
    ],
)
def test_frames_that_do_not_decode_keep_the_raw_bytes_and_say_why(
    payload: str, fields: dict[str, Any], error: str
) -> None:
    raw = bytes.fromhex(payload)
    decoded = decode(received(6, raw))
    assert decoded["raw"] == raw.hex()
    assert decoded["error"].startswith(error), decoded
    for key, value in fields.items():
        assert decoded[key] == value


def test_trailing_bytes_after_a_command_are_shown() -> None:
    decoded = decode(received(6, bytes.fromhex("11 0c 02 ff")))
    assert (decoded["command_name"], decoded["fields"], decoded["trailing"]) == ("toggle", {}, "ff")
    assert "error" not in decoded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (t.Bool.false, False),
        (t.Bool(2), 2),
        (t.LVBytes(b"\x01\xff"), "01ff"),
        (t.EUI64.convert("54:ef:44:10:00:00:00:01"), "0x54ef441000000001"),
        (foundation.Status.UNSUPPORTED_ATTRIBUTE, 0x86),
        (float("nan"), "nan"),
        (t.CharacterString("abc"), "abc"),
        (foundation.TypeValue(0x20, t.uint8_t(3)), {"type": 0x20, "value": 3}),
        ([t.uint16_t(1), t.uint16_t(2)], [1, 2]),
    ],
)
def test_zigpy_values_become_json(value: Any, expected: Any) -> None:
    assert to_json(value) == expected


def test_take_frames_answers_with_the_decoded_frames_and_the_dropped_count() -> None:
    switch = make()
    switch.received = FrameLog(limit=1)
    switch.handle(from_coordinator(6, b"\x11\x01\x01"))
    switch.handle(from_coordinator(6, b"\x11\x02\x00"))
    answer = take_frames(switch, None)
    assert answer["cluster"] is None and answer["dropped"] == 1
    assert [(frame["tsn"], frame["command_name"]) for frame in answer["frames"]] == [(2, "off")]
    assert take_frames(switch, 6) == {"cluster": 6, "frames": [], "dropped": 0}


def test_any_bytes_decode_to_json_without_raising() -> None:
    # zigpy's parsers fail in assorted ways on junk; every frame must still be listed, as JSON.
    rng = random.Random(7)
    clusters = [0x0000, 0x0004, 0x0006, 0x0012, 0x0019, 0x0300, LUMI, 0x1234]
    for _ in range(5000):
        control = rng.choice([0x00, 0x01, 0x04, 0x05, 0x08, 0x09, 0x10, 0x11, 0x14, 0x15, 0x18, 0x1C])
        manufacturer = b"\x5f\x11" if control & 0x04 else b""
        command = rng.randrange(0x18) if rng.random() < 0.7 else rng.randrange(256)
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(30)))
        raw = bytes([control]) + manufacturer + bytes([1, command]) + body
        decoded = decode(received(rng.choice(clusters), raw))
        json.dumps(decoded, allow_nan=False)
        assert decoded["raw"] == raw.hex()


def test_reporting_configuration_records_become_objects() -> None:
    record = foundation.AttributeReportingConfig()
    record.direction, record.attrid, record.timeout = foundation.ReportingDirection.ReceiveReports, 5, 60
    assert to_json(record) == {"direction": 1, "attrid": 5, "timeout": 60}
