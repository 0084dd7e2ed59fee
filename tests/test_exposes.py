"""Exposes: the QBKG40LM's JSON equals Zigbee2MQTT's (reference z2m-mqtt-api.md §5.2) key for key."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from z2m_qbkg40lm.devices.exposes import (
    Access,
    BinaryExpose,
    Expose,
    binary,
    enum,
    exposes_json,
    find_feature,
    iter_features,
    label_for,
    linkquality,
    numeric,
    readable_properties,
    settable_properties,
    state_properties,
    switch,
    switch_state,
)
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM

# Copied verbatim from the reference §5.2, so a difference in any key or value fails; in the order
# Zigbee2MQTT 2.14.1 publishes (the action after the settings: tests/data's recorded transcript).
REFERENCE_EXPOSES = json.loads(
    """[
{"features":[{"access":7,"description":"On/off state of the switch","label":"State","name":"state","property":"state","type":"binary","value_off":"OFF","value_on":"ON","value_toggle":"TOGGLE"}],"type":"switch"},
{"access":7,"category":"config","description":"Enable/disable the power outage memory, this recovers the on/off mode after power failure","label":"Power outage memory","name":"power_outage_memory","property":"power_outage_memory","type":"binary","value_off":false,"value_on":true},
{"access":1,"category":"diagnostic","description":"Temperature of the device","label":"Device temperature","name":"device_temperature","property":"device_temperature","type":"numeric","unit":"°C"},
{"access":7,"category":"config","description":"After turn on, the indicator light turns on while switch is off, and vice versa","label":"Flip indicator light","name":"flip_indicator_light","property":"flip_indicator_light","type":"binary","value_off":"OFF","value_on":"ON"},
{"access":7,"description":"Decoupled mode","label":"Operation mode","name":"operation_mode","property":"operation_mode","type":"enum","values":["control_relay","decoupled"]},
{"access":1,"category":"diagnostic","description":"Triggered action (e.g. a button click)","label":"Action","name":"action","property":"action","type":"enum","values":["single","double"]},
{"access":1,"category":"diagnostic","description":"Link quality (signal strength)","label":"Linkquality","name":"linkquality","property":"linkquality","type":"numeric","unit":"lqi","value_max":255,"value_min":0}
]"""  # noqa: E501 - kept verbatim from the reference
)

# Reference §5.3 plus the precision option this project keeps (old Zigbee2MQTT docs page).
REFERENCE_OPTIONS: list[dict[str, Any]] = [
    {
        "access": 2,
        "description": "Calibrates the device_temperature value (absolute offset), "
        "takes into effect on next report of device.",
        "label": "Device temperature calibration",
        "name": "device_temperature_calibration",
        "property": "device_temperature_calibration",
        "type": "numeric",
        "value_step": 0.1,
    },
    {
        "access": 2,
        "description": "Number of digits after decimal point for device_temperature, "
        "takes into effect on next report of device.",
        "label": "Device temperature precision",
        "name": "device_temperature_precision",
        "property": "device_temperature_precision",
        "type": "numeric",
        "value_max": 3,
        "value_min": 0,
    },
    {
        "access": 2,
        "description": "State actions will also be published as 'action' when true (default false).",
        "label": "State action",
        "name": "state_action",
        "property": "state_action",
        "type": "binary",
        "value_off": False,
        "value_on": True,
    },
]


def test_qbkg40lm_exposes_equal_the_reference_exactly() -> None:
    assert exposes_json(QBKG40LM.exposes) == REFERENCE_EXPOSES


def test_qbkg40lm_exposes_serialise_like_zigbee2mqtt() -> None:
    # Same bytes as the reference once both are dumped the way the bridge publishes.
    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    assert dump(exposes_json(QBKG40LM.exposes)) == dump(REFERENCE_EXPOSES)


def test_value_on_and_off_keep_their_json_types() -> None:
    memory = find_feature(QBKG40LM.exposes, "power_outage_memory")
    assert memory is not None
    out = memory.to_json()
    assert out["value_on"] is True
    assert out["value_off"] is False


def test_qbkg40lm_options() -> None:
    assert exposes_json(QBKG40LM.options) == REFERENCE_OPTIONS


def test_options_are_settable_only() -> None:
    for option in iter_features(QBKG40LM.options):
        assert option.access == Access.SET


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("state", "State"),
        ("power_outage_memory", "Power outage memory"),
        ("linkquality", "Linkquality"),
        ("device_temperature", "Device temperature"),
        ("", ""),
    ],
)
def test_label_is_the_name_with_spaces_and_a_capital(name: str, label: str) -> None:
    assert label_for(name) == label


def test_explicit_label_wins() -> None:
    assert binary("x_y", Access.STATE, 1, 0, label="Custom").to_json()["label"] == "Custom"


def test_access_bits() -> None:
    assert (int(Access.STATE), int(Access.SET), int(Access.GET)) == (1, 2, 4)
    assert (int(Access.STATE_SET), int(Access.STATE_GET), int(Access.ALL)) == (3, 5, 7)


def test_switch_has_only_type_and_features() -> None:
    out = switch(switch_state()).to_json()
    assert set(out) == {"type", "features"}


def test_endpoint_is_published_only_when_set() -> None:
    assert "endpoint" not in switch(switch_state()).to_json()
    assert switch(switch_state(), endpoint="l1").to_json()["endpoint"] == "l1"


def test_optional_fields_are_omitted_not_null() -> None:
    out = numeric("level", Access.STATE).to_json()
    assert out == {"access": 1, "label": "Level", "name": "level", "property": "level", "type": "numeric"}
    out = binary("flag", Access.ALL, "ON", "OFF").to_json()
    assert "value_toggle" not in out
    assert "description" not in out
    assert "category" not in out


def test_enum_values_keep_their_order() -> None:
    assert enum("mode", Access.ALL, ["b", "a"]).to_json()["values"] == ["b", "a"]


def test_exposes_are_frozen() -> None:
    expose = switch_state()
    with pytest.raises(dataclasses.FrozenInstanceError):
        expose.name = "other"  # type: ignore[misc]


def test_to_json_returns_a_fresh_dict() -> None:
    expose = enum("mode", Access.ALL, ["a"])
    first = expose.to_json()
    first["values"].append("b")
    first["name"] = "changed"
    assert expose.to_json()["values"] == ["a"]
    assert expose.to_json()["name"] == "mode"


def test_features_flatten_switches() -> None:
    exposes: tuple[Expose, ...] = (switch(switch_state()), linkquality())
    assert [f.property for f in iter_features(exposes)] == ["state", "linkquality"]
    state = find_feature(exposes, "state")
    assert isinstance(state, BinaryExpose)
    assert state.value_toggle == "TOGGLE"
    assert find_feature(exposes, "nothing") is None


def test_property_questions_for_qbkg40lm() -> None:
    exposes = QBKG40LM.exposes
    assert state_properties(exposes) == (
        "state",
        "power_outage_memory",
        "device_temperature",
        "flip_indicator_light",
        "operation_mode",
        "action",
        "linkquality",
    )
    assert settable_properties(exposes) == (
        "state",
        "power_outage_memory",
        "flip_indicator_light",
        "operation_mode",
    )
    assert readable_properties(exposes) == (
        "state",
        "power_outage_memory",
        "flip_indicator_light",
        "operation_mode",
    )


def test_per_expose_access_predicates() -> None:
    temperature = find_feature(QBKG40LM.exposes, "device_temperature")
    assert temperature is not None
    assert temperature.is_state()
    assert not temperature.is_settable()
    assert not temperature.is_readable()
    mode = find_feature(QBKG40LM.exposes, "operation_mode")
    assert mode is not None
    assert mode.is_state()
    assert mode.is_settable()
    assert mode.is_readable()


def test_a_property_exposed_twice_is_listed_once() -> None:
    exposes = (switch(switch_state()), binary("state", Access.STATE, "ON", "OFF"))
    assert state_properties(exposes) == ("state",)
