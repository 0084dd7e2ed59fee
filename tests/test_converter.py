"""QBKG40LM converters, both ways, called with messages and values: no radio, no broker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from z2m_qbkg40lm.devices.definition import (
    AttributeMessage,
    ClusterCommand,
    ConversionError,
    DeviceDefinition,
    InboundConverter,
    Options,
    ReadAttributes,
    SetPlan,
    State,
    WriteAttribute,
)
from z2m_qbkg40lm.devices.exposes import readable_properties as exposed_readable
from z2m_qbkg40lm.devices.exposes import settable_properties as exposed_settable
from z2m_qbkg40lm.devices.lumi_tlv import encode_tlv
from z2m_qbkg40lm.devices.qbkg40lm import (
    ENDPOINT_PATCHES,
    LUMI_CLUSTER,
    QBKG40LM,
    device_temperature,
)
from z2m_qbkg40lm.devices.registry import (
    DEFINITIONS,
    convert_inbound,
    find_definition,
    plan_get,
    plan_set,
    readable_properties,
    settable_properties,
)

LUMI = 0xFCC0
MFR = 0x115F
ON_OFF = 0x0006
MULTISTATE = 0x0012

QBKG40LM_BODY = bytes.fromhex(
    "64 10 01 03 28 1F 05 21 02 00 9A 20 00 08 21 14 01 09 21 00 01 0B 20 00 0A 21 00 00 0C 20 01"
)
QBKG41LM_BODY = bytes.fromhex(
    "64 10 00 65 10 01 03 28 21 05 21 04 00 9A 20 00 08 21 19 01 09 21 00 0C 0B 20 00 0A 21 00 00 0C 20 01"
)


@pytest.fixture(autouse=True)
def _log_calls_are_well_formed(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose code made a log call whose %-arguments do not fit its format."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        record.getMessage()


def inbound(
    cluster: int, attribute: int, value: Any, *, endpoint: int = 1, options: Options | None = None
) -> State:
    message = AttributeMessage(endpoint, cluster, attribute, value)
    return convert_inbound(QBKG40LM, message, options or {})


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def set_(prop: str, value: Any, state: State | None = None, options: Options | None = None) -> SetPlan:
    return plan_set(QBKG40LM, prop, value, state or {}, options or {})


# --- The definition as data ------------------------------------------------------------------------


def test_identity() -> None:
    assert QBKG40LM.model_ids == ("lumi.switch.b1nc01",)
    assert QBKG40LM.model == "QBKG40LM"
    assert QBKG40LM.vendor == "Aqara"
    assert QBKG40LM.description == "Smart wall switch E1 (with neutral, single rocker)"
    assert QBKG40LM.supports_ota is True
    assert QBKG40LM.manufacturer_clusters == (LUMI_CLUSTER,)
    assert QBKG40LM.endpoint_patches == ENDPOINT_PATCHES


def test_configure_writes_event_mode_without_waiting() -> None:
    assert QBKG40LM.configure == (
        WriteAttribute(1, LUMI, 0x0009, 0x20, 1, manufacturer=MFR, await_response=False),
    )


def test_find_definition() -> None:
    assert find_definition("lumi.switch.b1nc01") is QBKG40LM
    assert find_definition("lumi.switch.b1nc01\x00") is QBKG40LM
    assert find_definition("lumi.switch.b2nc01") is None
    assert find_definition("") is None
    assert find_definition(None) is None
    assert QBKG40LM in DEFINITIONS


def test_converters_agree_with_the_exposes() -> None:
    # What /set and /get accept must be exactly what the exposes advertise as SET and GET.
    assert settable_properties(QBKG40LM) == exposed_settable(QBKG40LM.exposes)
    assert readable_properties(QBKG40LM) == exposed_readable(QBKG40LM.exposes)


# --- Inbound: OnOff -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "state"), [(True, "ON"), (False, "OFF"), (1, "ON"), (0, "OFF")])
def test_on_off_report(value: Any, state: str) -> None:
    assert inbound(ON_OFF, 0x0000, value) == {"state": state}


def test_on_off_read_answer_converts_the_same() -> None:
    message = AttributeMessage(1, ON_OFF, 0x0000, True, kind="read")
    assert convert_inbound(QBKG40LM, message, {}) == {"state": "ON"}


def test_state_action_option_adds_the_action() -> None:
    assert inbound(ON_OFF, 0x0000, True, options={"state_action": True}) == {"state": "ON", "action": "on"}
    assert inbound(ON_OFF, 0x0000, False, options={"state_action": True}) == {"state": "OFF", "action": "off"}
    assert inbound(ON_OFF, 0x0000, True, options={"state_action": False}) == {"state": "ON"}


@pytest.mark.parametrize("value", [2, 0xFF, "ON", None, b"\x01", 1.0])
def test_on_off_nonsense_is_ignored_with_a_warning(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(ON_OFF, 0x0000, value) == {}
    assert any("0x0006/0x0000" in w for w in warnings(caplog))


def test_undocumented_on_off_attribute_0x00f5_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(ON_OFF, 0x00F5, 50916608) == {}
    assert warnings(caplog) == []


# --- Inbound: actions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "action"), [(1, "single"), (2, "double"), (0, "hold"), (3, "triple"), (255, "release")]
)
def test_multistate_press(value: int, action: str) -> None:
    assert inbound(MULTISTATE, 0x0055, value, endpoint=41) == {"action": action}


@pytest.mark.parametrize("endpoint", [1, 41, 42, 51])
def test_multistate_from_any_endpoint(endpoint: int) -> None:
    assert inbound(MULTISTATE, 0x0055, 1, endpoint=endpoint) == {"action": "single"}


def test_multistate_integral_float_is_accepted() -> None:
    assert inbound(MULTISTATE, 0x0055, 2.0, endpoint=41) == {"action": "double"}


@pytest.mark.parametrize("value", [4, 16, 254, 1000, -1])
def test_unknown_press_code_publishes_nothing_and_warns(value: int, caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(MULTISTATE, 0x0055, value, endpoint=41) == {}
    [warning] = warnings(caplog)
    assert "unknown press code" in warning
    assert repr(value) in warning


@pytest.mark.parametrize("value", ["single", None, True, 1.5, b"\x01"])
def test_press_code_of_the_wrong_type_is_ignored(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(MULTISTATE, 0x0055, value, endpoint=41) == {}
    assert len(warnings(caplog)) == 1


def test_other_multistate_attributes_are_ignored() -> None:
    assert inbound(MULTISTATE, 0x004A, 3, endpoint=41) == {}


# --- Inbound: the heartbeat ---------------------------------------------------------------------------


def test_heartbeat_constructed_body_publishes_what_z2m_publishes() -> None:
    assert inbound(LUMI, 0x00F7, QBKG40LM_BODY) == {
        "state": "ON",
        "device_temperature": 31,
        "power_outage_count": 1,
    }


def test_heartbeat_qbkg41lm_capture() -> None:
    # Index 101 (the second relay) means nothing on a single rocker.
    assert inbound(LUMI, 0x00F7, QBKG41LM_BODY) == {
        "state": "OFF",
        "device_temperature": 33,
        "power_outage_count": 3,
    }


def test_heartbeat_temperature_is_an_int_at_precision_0() -> None:
    result = inbound(LUMI, 0x00F7, QBKG40LM_BODY)
    assert type(result["device_temperature"]) is int


def test_heartbeat_with_trailing_null(caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(LUMI, 0x00F7, QBKG40LM_BODY + b"\x00")["device_temperature"] == 31
    assert warnings(caplog) == []


def test_heartbeat_accepts_bytearray() -> None:
    assert inbound(LUMI, 0x00F7, bytearray(QBKG40LM_BODY))["state"] == "ON"


def test_heartbeat_tolerates_a_str_made_byte_for_byte() -> None:
    assert inbound(LUMI, 0x00F7, QBKG40LM_BODY.decode("latin-1"))["device_temperature"] == 31


class _CharacterStringLike(str):
    """Like zigpy's CharacterString: text cut at the first NUL, the real bytes in `.raw`."""

    raw: bytes


def test_heartbeat_uses_the_raw_bytes_of_a_character_string() -> None:
    text = _CharacterStringLike(QBKG40LM_BODY.split(b"\x00")[0].decode("utf-8", errors="replace"))
    text.raw = QBKG40LM_BODY
    assert inbound(LUMI, 0x00F7, text) == {"state": "ON", "device_temperature": 31, "power_outage_count": 1}


def test_heartbeat_str_beyond_latin1_does_not_raise() -> None:
    assert inbound(LUMI, 0x00F7, "\u20ac") == {}


def test_heartbeat_truncated_publishes_what_was_decoded(caplog: pytest.LogCaptureFixture) -> None:
    body = bytes.fromhex("64 10 01 03 28 1F 05 21 02")
    assert inbound(LUMI, 0x00F7, body) == {"state": "ON", "device_temperature": 31}
    [warning] = warnings(caplog)
    assert "malformed" in warning
    assert "truncated item 5" in warning


def test_heartbeat_unknown_type_first_publishes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(LUMI, 0x00F7, bytes.fromhex("03 77 1F 64 10 01")) == {}
    assert any("unknown ZCL type 0x77" in w for w in warnings(caplog))


def test_heartbeat_empty_body_publishes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(LUMI, 0x00F7, b"") == {}
    assert warnings(caplog) == []


@pytest.mark.parametrize("value", [None, 5, [1, 2], True])
def test_heartbeat_not_a_string_is_ignored(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(LUMI, 0x00F7, value) == {}
    assert any("expected an octet string" in w for w in warnings(caplog))


def test_heartbeat_items_of_odd_types_are_skipped_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    body = encode_tlv([(3, 0x41, b"\x1f"), (5, 0x39, 2.0), (100, 0x42, "on"), (3, 0x10, True)])
    assert inbound(LUMI, 0x00F7, body) == {}
    assert len(warnings(caplog)) == 3


def test_heartbeat_state_as_uint8() -> None:
    assert inbound(LUMI, 0x00F7, encode_tlv([(100, 0x20, 1)])) == {"state": "ON"}
    assert inbound(LUMI, 0x00F7, encode_tlv([(100, 0x20, 2)])) == {"state": "OFF"}


def test_heartbeat_negative_temperature() -> None:
    assert inbound(LUMI, 0x00F7, encode_tlv([(3, 0x28, -5)])) == {"device_temperature": -5}


# --- Calibration and precision -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "options", "expected"),
    [
        (31, {}, 31),
        (31, {"device_temperature_calibration": -1.25, "device_temperature_precision": 1}, 29.8),
        (31, {"device_temperature_calibration": -1.25}, 30),  # 29.75 -> 30 at precision 0
        (31, {"device_temperature_calibration": 2}, 33),
        (31, {"device_temperature_calibration": -0.5}, 31),  # 30.5: half up, like Math.round
        (20, {"device_temperature_calibration": 0.5}, 21),  # 20.5: Python's round() would give 20
        (22, {"device_temperature_calibration": 0.5}, 23),  # 22.5: round() would give 22
        (-3, {"device_temperature_calibration": 0.5}, -2),  # -2.5: towards +infinity, like Math.round
        (31, {"device_temperature_calibration": 0.125, "device_temperature_precision": 2}, 31.13),
        (31, {"device_temperature_calibration": 0.1234, "device_temperature_precision": 3}, 31.123),
        (31, {"device_temperature_precision": 2}, 31),  # 31.00 is published as 31, as JavaScript does
    ],
)
def test_device_temperature_calibration_and_precision(raw: int, options: Options, expected: float) -> None:
    result = device_temperature(raw, options)
    assert result == expected
    assert type(result) is type(expected)


def test_precision_0_always_gives_an_int() -> None:
    value = device_temperature(31, {"device_temperature_calibration": 0.4, "device_temperature_precision": 0})
    assert value == 31
    assert type(value) is int


def test_calibration_and_precision_apply_to_the_heartbeat() -> None:
    options = {"device_temperature_calibration": -1.25, "device_temperature_precision": 1}
    assert inbound(LUMI, 0x00F7, QBKG40LM_BODY, options=options)["device_temperature"] == 29.8


@pytest.mark.parametrize(
    "options",
    [
        {"device_temperature_precision": 4},
        {"device_temperature_precision": -1},
        {"device_temperature_precision": "1"},
        {"device_temperature_precision": 1.5},
        {"device_temperature_precision": True},
    ],
)
def test_bad_precision_falls_back_to_0_with_a_warning(
    options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    assert device_temperature(31.4, options) == 31
    assert any("device_temperature_precision" in w for w in warnings(caplog))


def test_precision_as_integral_float_is_accepted(caplog: pytest.LogCaptureFixture) -> None:
    assert (
        device_temperature(31, {"device_temperature_calibration": 0.25, "device_temperature_precision": 1.0})
        == 31.3
    )
    assert warnings(caplog) == []


@pytest.mark.parametrize("calibration", ["-1", True, float("nan"), float("inf"), [1]])
def test_bad_calibration_is_ignored_with_a_warning(
    calibration: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert device_temperature(31, {"device_temperature_calibration": calibration}) == 31
    assert any("device_temperature_calibration" in w for w in warnings(caplog))


# --- Inbound: Lumi settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "mode"), [(1, "control_relay"), (0, "decoupled")])
def test_operation_mode(value: int, mode: str) -> None:
    assert inbound(LUMI, 0x0200, value) == {"operation_mode": mode}


@pytest.mark.parametrize("value", [2, "decoupled", None])
def test_operation_mode_nonsense_is_ignored(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(LUMI, 0x0200, value) == {}
    assert len(warnings(caplog)) == 1


@pytest.mark.parametrize("value", [0, 1])
def test_attribute_0x0009_is_not_operation_mode(value: int, caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(LUMI, 0x0009, value) == {}
    assert warnings(caplog) == []


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (1, True), (0, False)])
def test_power_outage_memory(value: Any, expected: bool) -> None:
    assert inbound(LUMI, 0x0201, value) == {"power_outage_memory": expected}


@pytest.mark.parametrize("value", [2, "true", None])
def test_power_outage_memory_nonsense_is_ignored(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(LUMI, 0x0201, value) == {}
    assert len(warnings(caplog)) == 1


@pytest.mark.parametrize(("value", "expected"), [(1, "ON"), (0, "OFF"), (2, "OFF"), (True, "ON")])
def test_flip_indicator_light(value: Any, expected: str) -> None:
    assert inbound(LUMI, 0x00F0, value) == {"flip_indicator_light": expected}


def test_flip_indicator_light_of_the_wrong_type_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    assert inbound(LUMI, 0x00F0, "ON") == {}
    assert len(warnings(caplog)) == 1


@pytest.mark.parametrize("attribute", [0x00FC, 0x0002, 0x0203, 0x0517, 0x00F6])
def test_other_lumi_attributes_are_ignored(attribute: int) -> None:
    assert inbound(LUMI, attribute, 1) == {}


def test_unrelated_cluster_is_ignored() -> None:
    assert inbound(0x0000, 0x0005, "lumi.switch.b1nc01") == {}


# --- Outbound: state ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "command", "state"),
    [("ON", 0x01, "ON"), ("OFF", 0x00, "OFF"), ("on", 0x01, "ON"), ("Off", 0x00, "OFF")],
)
def test_set_state(value: str, command: int, state: str) -> None:
    assert set_("state", value) == SetPlan((ClusterCommand(1, ON_OFF, command),), {"state": state})


@pytest.mark.parametrize(("current", "expected"), [("ON", {"state": "OFF"}), ("OFF", {"state": "ON"})])
def test_toggle_of_a_known_state_is_optimistic(current: str, expected: State) -> None:
    plan = set_("state", "toggle", state={"state": current})
    assert plan == SetPlan((ClusterCommand(1, ON_OFF, 0x02),), expected)


@pytest.mark.parametrize("current", [{}, {"state": None}, {"state": "unknown"}])
def test_toggle_of_an_unknown_state_waits_for_the_device(current: State) -> None:
    assert set_("state", "TOGGLE", state=current) == SetPlan((ClusterCommand(1, ON_OFF, 0x02),))


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "true"), (1, "1"), ("blink", "'blink'"), (None, "null"), ({"state": "ON"}, '{"state": "ON"}')],
)
def test_set_state_refuses_non_commands(value: Any, shown: str) -> None:
    with pytest.raises(ConversionError) as info:
        set_("state", value)
    assert str(info.value) == f"state: {shown} is not one of ON, OFF, TOGGLE"


def test_get_state() -> None:
    assert plan_get(QBKG40LM, "state") == (ReadAttributes(1, ON_OFF, (0x0000,)),)


# --- Outbound: operation_mode -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("control_relay", 1),
        ("decoupled", 0),
        ("Decoupled", 0),
        ({"state": "decoupled"}, 0),
        ({"state": "control_relay", "button": "single"}, 1),
    ],
)
def test_set_operation_mode_writes_then_reads_back(value: Any, code: int) -> None:
    plan = set_("operation_mode", value)
    assert plan.operations == (
        WriteAttribute(1, LUMI, 0x0200, 0x20, code, manufacturer=MFR),
        ReadAttributes(1, LUMI, (0x0200,), manufacturer=MFR),
    )
    # Never optimistic: the state comes from the device's answer to the read.
    assert plan.optimistic_state == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("foo", "operation_mode: 'foo' is not one of control_relay, decoupled"),
        (1, "operation_mode: 1 is not one of control_relay, decoupled"),
        (
            {"mode": "decoupled"},
            'operation_mode: {"mode": "decoupled"} is not one of control_relay, decoupled',
        ),
        ({"state": 0}, 'operation_mode: {"state": 0} is not one of control_relay, decoupled'),
        ("event", "operation_mode: 'event' is not one of control_relay, decoupled"),
    ],
)
def test_set_operation_mode_refuses(value: Any, message: str) -> None:
    with pytest.raises(ConversionError) as info:
        set_("operation_mode", value)
    assert str(info.value) == message + ' (any case, or {"state": ...})'


def test_get_operation_mode() -> None:
    assert plan_get(QBKG40LM, "operation_mode") == (ReadAttributes(1, LUMI, (0x0200,), manufacturer=MFR),)


# --- Outbound: power_outage_memory ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire", "published"),
    [(True, 1, True), (False, 0, False), ("true", 1, True), ("FALSE", 0, False)],
)
def test_set_power_outage_memory(value: Any, wire: int, published: bool) -> None:
    assert set_("power_outage_memory", value) == SetPlan(
        (WriteAttribute(1, LUMI, 0x0201, 0x10, wire, manufacturer=MFR),),
        {"power_outage_memory": published},
    )


@pytest.mark.parametrize("value", [2, -1, 0.5, "yes", "", " true", None, [], {"state": "ON"}])
def test_set_power_outage_memory_refuses(value: Any) -> None:
    with pytest.raises(ConversionError) as info:
        set_("power_outage_memory", value)
    assert str(info.value).startswith("power_outage_memory: ")
    assert str(info.value).endswith(
        ' is not one of true, false (also 1, 0, "ON", "OFF", "true", "false", "1", "0"; strings in any case)'
    )


def test_get_power_outage_memory() -> None:
    assert plan_get(QBKG40LM, "power_outage_memory") == (
        ReadAttributes(1, LUMI, (0x0201,), manufacturer=MFR),
    )


# --- Outbound: flip_indicator_light ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire", "published"), [("ON", 1, "ON"), ("OFF", 0, "OFF"), ("on", 1, "ON")]
)
def test_set_flip_indicator_light(value: str, wire: int, published: str) -> None:
    assert set_("flip_indicator_light", value) == SetPlan(
        (WriteAttribute(1, LUMI, 0x00F0, 0x20, wire, manufacturer=MFR),),
        {"flip_indicator_light": published},
    )


@pytest.mark.parametrize("value", [True, 1, "TOGGLE", None])
def test_set_flip_indicator_light_refuses(value: Any) -> None:
    with pytest.raises(
        ConversionError, match=r"^flip_indicator_light: .* is not one of ON, OFF \(any case\)$"
    ):
        set_("flip_indicator_light", value)


def test_get_flip_indicator_light() -> None:
    assert plan_get(QBKG40LM, "flip_indicator_light") == (
        ReadAttributes(1, LUMI, (0x00F0,), manufacturer=MFR),
    )


# --- Both ways: what a /set writes comes back as the same published value ------------------------------


@pytest.mark.parametrize(
    ("prop", "value", "published"),
    [
        ("operation_mode", "decoupled", "decoupled"),
        ("operation_mode", "control_relay", "control_relay"),
        ("power_outage_memory", True, True),
        ("power_outage_memory", False, False),
        ("flip_indicator_light", "ON", "ON"),
        ("flip_indicator_light", "OFF", "OFF"),
    ],
)
def test_written_value_reads_back_as_the_same_property(prop: str, value: Any, published: Any) -> None:
    [write, *_] = set_(prop, value).operations
    assert isinstance(write, WriteAttribute)
    assert inbound(write.cluster_id, write.attribute_id, write.value, endpoint=write.endpoint) == {
        prop: published
    }


@pytest.mark.parametrize(("value", "published"), [("ON", "ON"), ("OFF", "OFF")])
def test_state_command_and_report_agree(value: str, published: str) -> None:
    [command] = set_("state", value).operations
    assert isinstance(command, ClusterCommand)
    assert inbound(ON_OFF, 0x0000, command.command_id == 0x01) == {"state": published}


# --- Registry: refusals name the property and why -------------------------------------------------------

SETTABLE = "state, power_outage_memory, flip_indicator_light, operation_mode"


def test_set_unknown_property() -> None:
    with pytest.raises(ConversionError) as info:
        set_("brightness", 10)
    assert str(info.value) == f"no such property 'brightness' on QBKG40LM; settable: {SETTABLE}"


@pytest.mark.parametrize("prop", ["device_temperature", "action", "linkquality"])
def test_set_read_only_property(prop: str) -> None:
    with pytest.raises(ConversionError) as info:
        set_(prop, 1)
    assert str(info.value) == f"{prop}: read-only on QBKG40LM, it cannot be set; settable: {SETTABLE}"


def test_set_of_an_option_is_not_a_property() -> None:
    with pytest.raises(ConversionError, match="no such property 'device_temperature_calibration'"):
        set_("device_temperature_calibration", 1)


@pytest.mark.parametrize("prop", ["device_temperature", "action", "linkquality"])
def test_get_not_readable(prop: str) -> None:
    with pytest.raises(ConversionError) as info:
        plan_get(QBKG40LM, prop)
    assert str(info.value) == f"{prop}: not readable on QBKG40LM; readable: {SETTABLE}"


def test_get_unknown_property() -> None:
    with pytest.raises(ConversionError) as info:
        plan_get(QBKG40LM, "power_outage_count")
    assert str(info.value) == f"no such property 'power_outage_count' on QBKG40LM; readable: {SETTABLE}"


def test_conversion_error_is_a_value_error() -> None:
    assert issubclass(ConversionError, ValueError)


# --- Registry: merging and the safety net -------------------------------------------------------------


def _definition_with(*inbound_converters: InboundConverter) -> DeviceDefinition:
    return DeviceDefinition(
        model_ids=("test.model",),
        model="TEST",
        vendor="Test",
        description="test",
        exposes=(),
        options=(),
        inbound=inbound_converters,
        outbound=(),
        configure=(),
    )


def test_convert_inbound_merges_every_matching_converter_in_order() -> None:
    definition = _definition_with(
        InboundConverter(1, frozenset({2}), lambda m, o: {"a": 1, "b": 1}),
        InboundConverter(1, frozenset({3}), lambda m, o: {"c": 1}),
        InboundConverter(1, frozenset({2, 3}), lambda m, o: {"b": 2}),
    )
    assert convert_inbound(definition, AttributeMessage(1, 1, 2, 0), {}) == {"a": 1, "b": 2}


def test_a_raising_converter_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    def broken(message: AttributeMessage, options: Options) -> State:
        raise KeyError("bug")

    definition = _definition_with(
        InboundConverter(1, frozenset({2}), broken),
        InboundConverter(1, frozenset({2}), lambda m, o: {"ok": True}),
    )
    assert convert_inbound(definition, AttributeMessage(1, 1, 2, 0), {}) == {"ok": True}
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None
    assert "TEST: converter for 0x0001/0x0002 failed" in record.getMessage()


def test_plan_set_on_a_definition_without_outbound() -> None:
    with pytest.raises(ConversionError, match=r"^no such property 'state' on TEST; settable: $"):
        plan_set(_definition_with(), "state", "ON", {}, {})
