"""The generic converters `read`, `write` and `command` as pure functions: names, numbers,
manufacturer codes, types, the read answer as Zigbee2MQTT publishes it, and every bad input.
The last test runs the bridge in process with a device the daemon has no definition for."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import zigpy.types as t

from z2m_qbkg40lm.devices.definition import (
    ClusterCommand,
    ConversionError,
    ReadAttributes,
    WriteAttribute,
    ZclOperation,
)
from z2m_qbkg40lm.devices.generic import js_json, json_value, plan_generic
from z2m_qbkg40lm.devices.qbkg40lm import LUMI_CLUSTER
from z2m_qbkg40lm.devices.registry import GENERIC_KEYS

LUMI = 0xFCC0
LUMI_CODE = 0x115F


def _only(operations: tuple[ZclOperation, ...]) -> Any:
    assert len(operations) == 1, operations
    return operations[0]


def test_the_generic_keys() -> None:
    assert frozenset({"read", "write", "command"}) == GENERIC_KEYS


# --- read -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cluster", ["genBasic", "basic", 0, "0", "0x0000", "0x0", 0.0], ids=lambda c: f"{type(c).__name__}:{c}"
)
@pytest.mark.parametrize(
    "attributes",
    [["modelId", "swBuildId"], ["model", "sw_build_id"], [5, 0x4000], ["5", "0x4000"]],
    ids=["zigbee2mqtt", "zigpy", "numbers", "number-strings"],
)
def test_read_takes_names_and_numbers(cluster: Any, attributes: list[Any]) -> None:
    plan = plan_generic("read", {"cluster": cluster, "attributes": attributes})
    assert plan.operations == (ReadAttributes(1, 0x0000, (0x0005, 0x4000), None),)
    assert plan.optimistic_state == {}


def test_read_answer_is_keyed_by_zigbee2mqtt_names_and_logged_like_zigbee2mqtt() -> None:
    read = {"cluster": "genBasic", "attributes": ["modelId", "zclVersion", "powerSource"]}
    plan = plan_generic("read", read)
    assert plan.on_results is not None
    outcome = plan.on_results(({5: t.CharacterString("lumi.switch.b1nc01"), 0: t.uint8_t(3), 7: t.enum8(1)},))
    assert outcome.state == {}, "no state_property: nothing is published"
    assert outcome.log == (
        'Read result of \'genBasic\': {"modelId":"lumi.switch.b1nc01","zclVersion":3,"powerSource":1}'
    )


def test_read_with_state_property_publishes_the_answer_under_it() -> None:
    plan = plan_generic("read", {"cluster": "genOnOff", "attributes": ["onOff"], "state_property": "relay"})
    assert plan.on_results is not None
    outcome = plan.on_results(({0: t.Bool.true},))
    # zigbee-herdsman reads a ZCL boolean as a number.
    assert outcome.state == {"relay": {"onOff": 1}}
    assert outcome.log == "Read result of 'genOnOff': {\"onOff\":1}"


def test_read_of_a_lumi_attribute_implies_lumis_manufacturer_code() -> None:
    plan = plan_generic("read", {"cluster": "manuSpecificLumi", "attributes": ["operation_mode", "mode"]})
    assert plan.operations == (ReadAttributes(1, LUMI, (0x0200, 0x0009), LUMI_CODE),)
    assert plan.on_results is not None
    outcome = plan.on_results(({0x0200: t.uint8_t(1), 0x0009: t.uint8_t(1)},))
    # Zigbee2MQTT names 0x0009 `mode`, and 0x0200 not at all: its number is the key, and
    # JavaScript puts integer keys first.
    assert outcome.log == 'Read result of \'manuSpecificLumi\': {"512":1,"mode":1}'


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({}, LUMI_CODE),
        ({"manufacturerCode": LUMI_CODE}, LUMI_CODE),
        ({"manufacturerCode": "0x115F"}, LUMI_CODE),
        ({"manufacturerCode": 0x1234}, 0x1234),
        ({"manufacturerCode": None}, None),
    ],
)
def test_read_options_manufacturer_code(options: dict[str, Any], code: int | None) -> None:
    plan = plan_generic("read", {"cluster": LUMI, "attributes": [0x00F7], "options": options})
    assert _only(plan.operations).manufacturer == code


def test_standard_cluster_takes_the_manufacturer_code_of_the_options() -> None:
    read = {"cluster": "genBasic", "attributes": [0xFF01], "options": {"manufacturerCode": LUMI_CODE}}
    assert _only(plan_generic("read", read).operations) == ReadAttributes(1, 0, (0xFF01,), LUMI_CODE)


def test_an_attribute_with_its_own_manufacturer_code_keeps_it() -> None:
    # manuSpecificAmazonWWAH is a manufacturer cluster of zigbee-herdsman (Amazon Lab126).
    plan = plan_generic("read", {"cluster": "manuSpecificAmazonWWAH", "attributes": [0x0002]})
    assert _only(plan.operations).manufacturer == 0x1217


def test_read_goes_to_the_given_endpoint_and_the_definitions_clusters() -> None:
    plan = plan_generic(
        "read",
        {"cluster": "manuSpecificLumi", "attributes": ["heartbeat"]},
        endpoint=2,
        manufacturer_clusters=(LUMI_CLUSTER,),
    )
    assert plan.operations == (ReadAttributes(2, LUMI, (0x00F7,), LUMI_CODE),)
    with pytest.raises(ConversionError, match='unknown attribute "heartbeat"'):
        plan_generic(
            "read", {"cluster": "manuSpecificLumi", "attributes": ["heartbeat"]}, manufacturer_clusters=()
        )


# --- write ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "zcl_type", "value"),
    [
        ({"power_outage_memory": True}, 0x10, t.Bool.true),
        ({"power_outage_memory": 0}, 0x10, t.Bool.false),
        ({"0x0201": {"value": 1, "type": 16}}, 0x10, t.Bool.true),
        ({"513": {"value": 1, "type": "0x10"}}, 0x10, t.Bool.true),
        ({"flip_indicator_light": 1}, 0x20, t.uint8_t(1)),
    ],
)
def test_write_a_lumi_attribute(payload: dict[str, Any], zcl_type: int, value: Any) -> None:
    plan = plan_generic("write", {"cluster": "manuSpecificLumi", "payload": payload})
    operation = _only(plan.operations)
    assert isinstance(operation, WriteAttribute)
    attribute_id = 0x00F0 if "flip_indicator_light" in payload else 0x0201
    assert (operation.endpoint, operation.cluster_id, operation.attribute_id) == (1, LUMI, attribute_id)
    assert (operation.zcl_type, operation.value, operation.manufacturer) == (zcl_type, value, LUMI_CODE)
    assert operation.disable_default_response, "zigbee-herdsman writes with the bit set"
    assert operation.await_response


def test_write_types_come_from_zigpy_or_zigbee2mqtt_and_each_attribute_is_one_write() -> None:
    plan = plan_generic("write", {"cluster": "genOnOff", "payload": {"onTime": 10, "off_wait_time": 20}})
    assert plan.operations == (
        WriteAttribute(1, 6, 0x4001, 0x21, 10, None),
        WriteAttribute(1, 6, 0x4002, 0x21, 20, None),
    )
    assert plan.on_results is not None
    outcome = plan.on_results((None, None))
    assert outcome == type(outcome)({}, "Wrote '{\"onTime\":10,\"off_wait_time\":20}' to 'genOnOff'")


@pytest.mark.parametrize(
    ("attribute", "given", "expected"),
    [
        ("productCode", [1, 2, 255], b"\x01\x02\xff"),
        ("productCode", {"type": "Buffer", "data": [170, 16]}, b"\xaa\x10"),
        ("0xFFF0", {"value": {"type": "Buffer", "data": [170]}, "type": 0x41}, b"\xaa"),
        ("0xFFF0", {"value": [1], "type": 0x41}, b"\x01"),
    ],
)
def test_write_octet_strings(attribute: str, given: Any, expected: bytes) -> None:
    plan = plan_generic("write", {"cluster": "genBasic", "payload": {attribute: given}})
    operation = _only(plan.operations)
    assert (operation.zcl_type, bytes(operation.value)) == (0x41, expected)


def test_write_options() -> None:
    write = {
        "cluster": "genOnOff",
        "payload": {"onTime": 1},
        "options": {"disableDefaultResponse": False, "disableResponse": True, "timeout": 5000},
    }
    operation = _only(plan_generic("write", write).operations)
    assert not operation.disable_default_response
    assert not operation.await_response


# --- command --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "command", "command_id"),
    [
        ("genOnOff", "on", 1),
        ("on_off", "toggle", 2),
        (6, 0, 0),
        ("0x0006", "off", 0),
        ("genOnOff", "0x02", 2),
    ],
)
def test_commands_without_a_payload(cluster: Any, command: Any, command_id: int) -> None:
    plan = plan_generic("command", {"cluster": cluster, "command": command})
    # zigbee-herdsman asks for a Default Response: no response command answers these.
    assert plan.operations == (ClusterCommand(1, 6, command_id, (), None, disable_default_response=False),)


@pytest.mark.parametrize(
    "payload",
    [
        {"ctrlbits": 0, "ontime": 50, "offwaittime": 10},
        {"on_off_control": 0, "on_time": 50, "off_wait_time": 10},
        {"offwaittime": 10.0, "ontime": 50, "ctrlbits": 0},
    ],
)
def test_command_payload_fields_by_either_name_in_frame_order(payload: dict[str, Any]) -> None:
    plan = plan_generic("command", {"cluster": "genOnOff", "command": "onWithTimedOff", "payload": payload})
    operation = _only(plan.operations)
    assert (operation.command_id, operation.args) == (0x42, (0, 50, 10))
    assert plan.on_results is not None
    assert (
        plan.on_results((None,)).log == f"Invoked 'genOnOff.onWithTimedOff' with payload '{js_json(payload)}'"
    )


def test_fields_pair_up_as_far_as_both_namings_go() -> None:
    command = {"cluster": "genLevelCtrl", "command": "moveToLevel", "payload": {"level": 254, "transtime": 5}}
    assert _only(plan_generic("command", command).operations).args == (254, 5)
    command["command"] = "moveToLevelWithOnOff"
    assert _only(plan_generic("command", command).operations).args == (254, 5)


def test_a_command_with_a_response_is_sent_without_asking_for_a_default_response() -> None:
    plan = plan_generic("command", {"cluster": "genGroups", "command": "view", "payload": {"groupid": 3}})
    operation = _only(plan.operations)
    assert (operation.cluster_id, operation.command_id, operation.args) == (4, 1, (3,))
    assert operation.disable_default_response


def test_command_options() -> None:
    command = {
        "cluster": "genOnOff",
        "command": "on",
        "options": {"manufacturerCode": LUMI_CODE, "disableDefaultResponse": True},
    }
    operation = _only(plan_generic("command", command).operations)
    assert (operation.manufacturer, operation.disable_default_response) == (LUMI_CODE, True)


def test_command_log_without_payload_says_undefined_like_zigbee2mqtt() -> None:
    plan = plan_generic("command", {"cluster": "genOnOff", "command": "toggle"})
    assert plan.on_results is not None
    assert plan.on_results((None,)).log == "Invoked 'genOnOff.toggle' with payload 'undefined'"


# --- values as Zigbee2MQTT publishes them ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (t.Bool.true, 1),
        (True, 1),
        (t.uint16_t(513), 513),
        (t.enum8(2), 2),
        (t.CharacterString("abc"), "abc"),
        (t.LVBytes(b"\xaa\x10"), {"type": "Buffer", "data": [170, 16]}),
        (b"", {"type": "Buffer", "data": []}),
        (t.Single(1.5), 1.5),
        (t.EUI64.convert("54:ef:44:10:00:ab:cd:ef"), "0x54ef441000abcdef"),
        ([t.uint8_t(1), b"\x02"], [1, {"type": "Buffer", "data": [2]}]),
        (None, None),
    ],
)
def test_json_values(value: Any, expected: Any) -> None:
    assert json_value(value) == expected


def test_js_json_orders_integer_keys_first_and_writes_whole_floats_as_integers() -> None:
    assert js_json({"b": 1.0, "10": 2, "a": 0.5, "2": None}) == '{"2":null,"10":2,"b":1,"a":0.5}'


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("read", "genBasic", 'read: "genBasic" is not an object'),
        ("read", {"attributes": [5]}, "read: no cluster given"),
        ("read", {"cluster": "genNothing", "attributes": [5]}, 'read: unknown cluster "genNothing"'),
        ("read", {"cluster": 0x10000, "attributes": [5]}, "cluster 65536 is out of range"),
        ("read", {"cluster": True, "attributes": [5]}, "cluster true is not a name or a number"),
        ("read", {"cluster": [6], "attributes": [5]}, "cluster [6] is not a name or a number"),
        ("read", {"cluster": "genBasic"}, "attributes null is not a non-empty list"),
        ("read", {"cluster": "genBasic", "attributes": []}, "attributes [] is not a non-empty list"),
        ("read", {"cluster": "genBasic", "attributes": "modelId"}, 'attributes "modelId" is not a non-empty'),
        ("read", {"cluster": "genBasic", "attributes": ["colour"]}, 'unknown attribute "colour" of genBasic'),
        ("read", {"cluster": "genBasic", "attributes": [-1]}, "attribute -1 of genBasic (0x0000) is out of"),
        ("read", {"cluster": "genBasic", "attributes": ["0x10000"]}, 'attribute "0x10000" of genBasic'),
        ("read", {"cluster": "genBasic", "attributes": [1.5]}, "attribute 1.5 of genBasic (0x0000) is not"),
        (
            "read",
            {"cluster": "genBasic", "attributes": [5, "modelId"]},
            "attribute 5 of genBasic (0x0000) is given twice",
        ),
        ("read", {"cluster": 0, "attributes": [5], "state_property": ""}, 'state_property "" is not'),
        ("read", {"cluster": 0, "attributes": [5], "options": []}, "options [] is not an object"),
        (
            "read",
            {"cluster": 0, "attributes": [5], "options": {"srcEndpoint": 2}},
            'unknown option "srcEndpoint"',
        ),
        (
            "read",
            {"cluster": 0, "attributes": [5], "options": {"manufacturerCode": "lumi"}},
            "manufacturerCode",
        ),
        ("read", {"cluster": 0, "attributes": [5], "options": {"manufacturerCode": 70000}}, "out of range"),
        ("read", {"cluster": 0, "attributes": [5], "options": {"timeout": "soon"}}, "options.timeout"),
        ("read", {"cluster": 0, "attributes": [5], "foo": 1}, 'read: unknown field "foo"'),
        ("write", {"cluster": "genOnOff"}, "write: payload null is not an object"),
        ("write", {"cluster": "genOnOff", "payload": {}}, "write: payload {} is not an object"),
        ("write", {"cluster": "genOnOff", "payload": {"onTime": 70000}}, "70000 does not fit uint16"),
        ("write", {"cluster": "genOnOff", "payload": {"onTime": "ten"}}, '"ten" does not fit uint16'),
        ("write", {"cluster": "genOnOff", "payload": {"onTime": True}}, "true does not fit uint16"),
        ("write", {"cluster": "genBasic", "payload": {"locationDesc": 5}}, "5 does not fit string"),
        ("write", {"cluster": "genBasic", "payload": {"productCode": [256]}}, "[256] does not fit octstr"),
        (
            "write",
            {"cluster": "manuSpecificLumi", "payload": {"power_outage_memory": 2}},
            "2 does not fit bool",
        ),
        ("write", {"cluster": "genBasic", "payload": {"0x1234": 5}}, "its data type is unknown"),
        (
            "write",
            {"cluster": "genBasic", "payload": {"0x1234": {"value": 5}}},
            'give both "value" and "type"',
        ),
        (
            "write",
            {"cluster": "genBasic", "payload": {"1": {"value": 5, "type": 0x05}}},
            "not a ZCL data type",
        ),
        ("write", {"cluster": "genBasic", "payload": {"1": {"value": 5, "type": 300}}}, "is out of range"),
        ("write", {"cluster": "genBasic", "payload": {"1": {"value": 5, "type": "u8"}}}, "is not a ZCL data"),
        (
            "write",
            {"cluster": "genOnOff", "payload": {"onTime": 1}, "options": {"disableResponse": 1}},
            "true or",
        ),
        ("command", {"cluster": "genOnOff"}, "command: no command given"),
        ("command", {"cluster": "genOnOff", "command": "blink"}, 'unknown command "blink" of genOnOff'),
        ("command", {"cluster": "genOnOff", "command": 0x99}, "unknown command"),
        (
            "command",
            {"cluster": "genOnOff", "command": 256},
            "command 256 of genOnOff (0x0006) is out of range",
        ),
        ("command", {"cluster": "manuSpecificLumi", "command": 1}, "unknown command 1 of manuSpecificLumi"),
        ("command", {"cluster": "seTunneling", "command": "closeTunnel"}, "payload layout is unknown"),
        (
            "command",
            {"cluster": "genLevelCtrl", "command": "moveToLevelWithOnOff", "payload": {"optionsMask": 0}},
            'field "optionsMask" cannot be sent',
        ),
        ("command", {"cluster": "genOnOff", "command": "on", "payload": [1]}, "payload [1] is not an object"),
        (
            "command",
            {"cluster": "genOnOff", "command": "on", "payload": {"x": 1}},
            'unknown field "x"; fields: none',
        ),
        (
            "command",
            {"cluster": "genOnOff", "command": "onWithTimedOff", "payload": {"ontime": 1, "offwaittime": 1}},
            'missing field "ctrlbits"; fields: ctrlbits, ontime, offwaittime',
        ),
        (
            "command",
            {
                "cluster": "genOnOff",
                "command": "onWithTimedOff",
                "payload": {"ctrlbits": 0, "ontime": -1, "offwaittime": 0},
            },
            'field "ontime": -1 does not fit',
        ),
        (
            "command",
            {"cluster": "genOnOff", "command": "on", "options": {"disableResponse": True}},
            "unknown option",
        ),
        ("scene", {"cluster": "genOnOff"}, "not a generic converter"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConversionError) as caught:
        plan_generic(key, value)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{key}:")


def test_unknown_attribute_lists_zigbee2mqtts_names() -> None:
    with pytest.raises(
        ConversionError, match=r"known: onOff, globalSceneCtrl, onTime, offWaitTime, startUpOnOff$"
    ):
        plan_generic("read", {"cluster": "genOnOff", "attributes": ["power"]})


# --- a device the daemon has no definition for, through the bridge ------------------------------


class _Publisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    @property
    def can_publish(self) -> bool:
        return True

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> bool:
        self.messages.append((topic, payload if isinstance(payload, str) else payload.decode()))
        return True


class _Radio:
    """One device of a model the daemon does not know, answering reads from a table."""

    IEEE = "0x00124b0001020304"

    def __init__(self) -> None:
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.executed: list[tuple[ZclOperation, ...]] = []

    def devices(self) -> list[Any]:
        from z2m_qbkg40lm.zigbee.radio import DeviceInfo

        return [DeviceInfo(self.IEEE, 0x1234, "TS0001", "_TZ3000_example", True, 120)]

    def device(self, ieee: str) -> Any:
        return self.devices()[0] if ieee == self.IEEE else None

    async def execute(self, ieee: str, operations: tuple[ZclOperation, ...]) -> tuple[Any, ...]:
        self.executed.append(operations)
        return tuple(
            {5: t.CharacterString("TS0001")} if isinstance(op, ReadAttributes) else None for op in operations
        )


async def test_a_device_without_definition_takes_generic_converters_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from z2m_qbkg40lm.bridge.bridge import Bridge
    from z2m_qbkg40lm.bridge.state import StateStore
    from z2m_qbkg40lm.config import Config

    config = Config.model_validate(
        {"mqtt": {"server": "mqtt://x", "base_topic": "z"}, "serial": {"adapter": "virtual"}}
    )
    radio, publisher = _Radio(), _Publisher()
    store = StateStore(tmp_path / "state.json")
    bridge = Bridge(config, radio, store, publisher)
    caplog.set_level(logging.INFO)
    try:
        read = {"cluster": "genBasic", "attributes": ["modelId"], "state_property": "basic"}
        await bridge.on_message(f"z/{radio.IEEE}/set", f'{{"read": {js_json(read)}}}'.encode(), False)
        await bridge.on_message(
            f"z/{radio.IEEE}/set", b'{"command": {"cluster": "genOnOff", "command": "on"}}', False
        )
        await bridge.on_message(f"z/{radio.IEEE}/set", b'{"state": "ON"}', False)
        while bridge._tasks:  # the commands' line and their results
            await asyncio.wait(set(bridge._tasks))
    finally:
        await bridge.close()
        await store.close()
    assert radio.executed == [
        (ReadAttributes(1, 0, (5,), None),),
        (ClusterCommand(1, 6, 1, (), None, False),),
    ]
    assert (f"z/{radio.IEEE}", '{"basic":{"modelId":"TS0001"}}') in publisher.messages
    messages = [r.getMessage() for r in caplog.records]
    assert 'Read result of \'genBasic\': {"modelId":"TS0001"}' in messages
    assert "Invoked 'genOnOff.on' with payload 'undefined'" in messages
    assert any("Cannot publish to unsupported device" in m for m in messages), messages
