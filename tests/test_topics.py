"""Pure parsing of command topics and payloads."""

from __future__ import annotations

import pytest

from z2m_qbkg40lm.bridge.topics import (
    MAX_PAYLOAD_BYTES,
    BridgeRequest,
    DeviceCommand,
    PayloadError,
    command_filters,
    command_properties,
    parse_topic,
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
