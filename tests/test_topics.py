"""Pure parsing of command topics and payloads."""

from __future__ import annotations

import pytest

from z2m_qbkg40lm.bridge.ha_entities import BridgeTarget, bridge_configs
from z2m_qbkg40lm.bridge.topics import (
    MAX_PAYLOAD_BYTES,
    BridgeRequest,
    DeviceCommand,
    EmptyRequest,
    PayloadError,
    clears_retained,
    command_filters,
    command_properties,
    parse_topic,
    request_payload,
)


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching, enough for + and a trailing #."""
    filter_parts, topic_parts = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(filter_parts):
        if part == "#":
            return True
        if index >= len(topic_parts) or (part != "+" and part != topic_parts[index]):
            return False
    return len(filter_parts) == len(topic_parts)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("z/hall/set", DeviceCommand("hall", "set", None)),
        ("z/hall/set/state", DeviceCommand("hall", "set", "state")),
        ("z/floor/hall/get", DeviceCommand("floor/hall", "get", None)),
        ("z/floor/hall/get/operation_mode", DeviceCommand("floor/hall", "get", "operation_mode")),
        ("z/bridge/request/permit_join", BridgeRequest("permit_join")),
        ("z/bridge/request/simulation/press", BridgeRequest("simulation/press")),
        ("z/hall", None),
        ("z/bridge/state", None),
        ("z/bridge/request/", None),
        ("other/hall/set", None),
    ],
)
def test_parse_topic(topic: str, expected: object) -> None:
    assert parse_topic("z", topic) == expected


def test_command_filters_reach_every_command_and_no_state_topic() -> None:
    filters = command_filters("z", ["hall", "floor/hall"])
    commands = [
        "z/hall/set",
        "z/hall/set/state",
        "z/0x54ef441000abcdef/get",
        "z/floor/hall/set",
        "z/floor/hall/get/state",
        "z/bridge/request/permit_join",
        "z/unknown/set",
    ]
    for topic in commands:
        assert any(matches(f, topic) for f in filters), topic
    published = [
        "z/hall",
        "z/floor/hall",
        "z/bridge/state",
        "z/bridge/logging",
        "z/bridge/response/permit_join",
    ]
    for topic in published:
        assert not any(matches(f, topic) for f in filters), topic


@pytest.mark.parametrize(
    ("command", "payload", "expected"),
    [
        (DeviceCommand("h", "set", None), b'{"state": "ON"}', {"state": "ON"}),
        (DeviceCommand("h", "set", None), b"toggle", {"state": "toggle"}),
        (DeviceCommand("h", "set", None), b" Off ", {"state": "Off"}),
        (DeviceCommand("h", "set", "power_outage_memory"), b"true", {"power_outage_memory": True}),
        (DeviceCommand("h", "set", "state"), b"ON", {"state": "ON"}),
        (DeviceCommand("h", "get", None), b'{"state": ""}', {"state": ""}),
        (DeviceCommand("h", "get", "state"), b"", {"state": ""}),
    ],
)
def test_command_properties(command: DeviceCommand, payload: bytes, expected: dict[str, object]) -> None:
    assert command_properties(command, payload) == expected


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"{broken", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b"{}", "empty"),
        (b"\xff", "UTF-8"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "larger"),
        (b"on please", "not JSON"),
    ],
)
def test_bad_payloads_say_why(payload: bytes, words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        command_properties(DeviceCommand("h", "set", None), payload)


@pytest.mark.parametrize(
    ("command", "payload", "words"),
    [
        (DeviceCommand("h", "set", None), b'{"state": "ON", "brightness": NaN}', "NaN is not a JSON number"),
        (DeviceCommand("h", "set", None), b'{"device_temperature": 1e400}', "out of the range"),
        (DeviceCommand("h", "set", "state"), b"Infinity", "Infinity is not a JSON number"),
        (DeviceCommand("h", "set", None), b"[" * 10_000 + b"]" * 10_000, "nested deeper than 32 levels"),
        (DeviceCommand("h", "set", "state"), b"[" * 10_000 + b"]" * 10_000, "nested deeper than 32 levels"),
        (DeviceCommand("h", "get", None), b'{"state": -Infinity}', "not standard JSON"),
    ],
)
def test_non_standard_json_is_refused(command: DeviceCommand, payload: bytes, words: str) -> None:
    with pytest.raises(PayloadError, match=words) as refused:
        command_properties(command, payload)
    assert len(str(refused.value)) < 200, "the payload is shown shortened"


def test_a_refused_set_keeps_its_transaction_for_the_answer() -> None:
    with pytest.raises(PayloadError) as refused:
        command_properties(DeviceCommand("h", "set", None), b'{"state": NaN, "transaction": "t1"}')
    assert refused.value.transaction == "t1"


@pytest.mark.parametrize("payload", [b"", b"  ", b"\n"])
def test_an_empty_request_is_refused(payload: bytes) -> None:
    with pytest.raises(EmptyRequest, match="clears a retained one"):
        request_payload(payload)


@pytest.mark.parametrize(
    ("parsed", "payload", "clears"),
    [
        (DeviceCommand("h", "set", None), b"", True),
        (DeviceCommand("h", "set", "state"), b"", True),
        (DeviceCommand("h", "get", None), b"", True),
        (DeviceCommand("h", "set", None), b" \n", False),  # blank: a mistake, answered
        (BridgeRequest("restart"), b" ", False),
        (BridgeRequest("restart"), b"", True),
        (DeviceCommand("h", "get", "state"), b"", False),  # `-n` reads the property
        (DeviceCommand("h", "set", None), b"on", False),
        (BridgeRequest("restart"), b"{}", False),
    ],
)
def test_an_empty_message_clears_a_retained_one_and_is_no_command(
    parsed: DeviceCommand | BridgeRequest, payload: bytes, clears: bool
) -> None:
    assert clears_retained(parsed, payload) is clears


def test_request_payloads() -> None:
    assert request_payload(b'{"time": 60}') == {"time": 60}
    assert request_payload(b"hall_switch") == "hall_switch", "not JSON: the raw text"
    with pytest.raises(PayloadError, match="NaN is not a JSON number") as refused:
        request_payload(b'{"id": "x", "options": {"device_temperature_calibration": NaN}, "transaction": 7}')
    assert refused.value.transaction == 7
    with pytest.raises(PayloadError, match="nested deeper"):
        request_payload(b'{"a":' * 10_000 + b"1" + b"}" * 10_000)


def test_the_home_assistant_restart_button_sends_a_request() -> None:
    target = BridgeTarget(
        base_topic="z",
        discovery_prefix="homeassistant",
        coordinator_ieee="0x00124b0000000001",
        coordinator_type="zstack",
        version="1.0.0",
        entities=frozenset({"restart"}),
    )
    (restart,) = bridge_configs(target).values()
    assert restart["command_topic"] == "z/bridge/request/restart"
    assert request_payload(restart["payload_press"].encode()) == {}


def test_an_empty_property_is_kept_so_that_it_gets_an_error() -> None:
    assert parse_topic("base", "base/hall/set/") == DeviceCommand(device="hall", action="set", property="")
    assert parse_topic("base", "base/hall/get/") == DeviceCommand(device="hall", action="get", property="")
