"""Home Assistant discovery payloads, built without I/O: shapes, ids, overrides, accepted keys.

The accepted-key lists below are what Home Assistant's MQTT discovery validates per component.
They were read from Home Assistant's own source (home-assistant/core, as stored by the project's
code search, whose copies are older than the current release):
  homeassistant/components/mqtt/schemas.py (c6ca7f5): MQTT_ENTITY_COMMON_SCHEMA, the device and
      origin schemas, the availability list entries;
  homeassistant/components/mqtt/config.py (459c79f): SCHEMA_BASE, MQTT_RO_SCHEMA, MQTT_RW_SCHEMA;
  homeassistant/components/mqtt/{switch,select,sensor}.py (58963430, 20dc1b2, 17309b7),
      event.py (03ffd74), device_trigger.py (5974c77): each platform's own keys;
  binary_sensor.py, number.py, button.py: from the same era's platform schemas (not re-read).
Added from later releases, which those copies predate: `default_entity_id` in the common schema
(Home Assistant 2025.10; the entity id comes only from it since 2026.11, per the project's
reference), `device_class` on switches, `suggested_display_precision` and `options` on sensors.
Home Assistant drops unknown keys silently (`extra=vol.REMOVE_EXTRA`), so a misspelt key would go
unnoticed in use: this test is where it is caught.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from z2m_qbkg40lm.bridge.ha_entities import (
    BRIDGE_ENTITIES,
    ORIGIN,
    BridgeTarget,
    DiscoveryTarget,
    bridge_configs,
    bridge_node_id,
    device_configs,
    merge,
    object_id,
    trigger_config,
)
from z2m_qbkg40lm.devices.definition import DeviceDefinition
from z2m_qbkg40lm.devices.exposes import Access, binary, enum, iter_features, numeric
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM

IEEE = "0x54ef441000abcdef"
COORDINATOR = "0x00124b0012345678"
BASE = "zigbee2mqtt"
PREFIX = "homeassistant"
NAME = "hall_switch"

_COMMON = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "device",
    "origin",
    "enabled_by_default",
    "entity_category",
    "entity_picture",
    "icon",
    "json_attributes_topic",
    "json_attributes_template",
    "object_id",
    "default_entity_id",
    "unique_id",
}
_BASE = {"qos", "encoding"}
_RO = _BASE | {"state_topic", "value_template"}
_RW = _BASE | {"command_topic", "optimistic", "retain", "state_topic"}

ACCEPTED: dict[str, set[str]] = {
    "switch": _COMMON
    | _RW
    | {"name", "payload_on", "payload_off", "state_on", "state_off", "value_template", "device_class"},
    "select": _COMMON | _RW | {"command_template", "name", "options", "value_template"},
    "sensor": _COMMON
    | _RO
    | {
        "device_class",
        "expire_after",
        "force_update",
        "last_reset_value_template",
        "name",
        "options",
        "state_class",
        "suggested_display_precision",
        "unit_of_measurement",
    },
    "binary_sensor": _COMMON
    | _RO
    | {"device_class", "expire_after", "force_update", "name", "off_delay", "payload_off", "payload_on"},
    "number": _COMMON
    | _RW
    | {
        "command_template",
        "device_class",
        "min",
        "max",
        "mode",
        "name",
        "payload_reset",
        "step",
        "unit_of_measurement",
        "value_template",
    },
    "button": _COMMON
    | _BASE
    | {"command_template", "command_topic", "device_class", "name", "payload_press", "retain"},
    "event": _COMMON | _RO | {"device_class", "name", "event_types"},
    # device_trigger.py's TRIGGER_DISCOVERY_SCHEMA; `origin` is read by discovery.py for any config.
    "device_automation": _BASE
    | {"automation_type", "device", "payload", "subtype", "topic", "type", "value_template", "origin"},
}
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_ENTRY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
REQUIRED = {
    "switch": {"command_topic"},
    "select": {"command_topic", "options"},
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "number": {"command_topic"},
    "button": {"command_topic"},
    "event": {"state_topic", "event_types"},
    "device_automation": {"automation_type", "device", "subtype", "topic", "type"},
}
TOPIC_LEVEL = re.compile(r"^[a-zA-Z0-9_-]+$")


def target(**changes: Any) -> DiscoveryTarget:
    values: dict[str, Any] = {
        "ieee": IEEE,
        "friendly_name": NAME,
        "definition": QBKG40LM,
        "base_topic": BASE,
        "discovery_prefix": PREFIX,
        "coordinator_ieee": COORDINATOR,
        "availability": True,
        "sw_build_id": "0.0.0_0029",
    }
    values.update(changes)
    return DiscoveryTarget(**values)


def component_of(topic: str) -> str:
    prefix, component, node, config_id, tail = topic.split("/")
    assert (prefix, tail) == (PREFIX, "config")
    assert TOPIC_LEVEL.match(node) and TOPIC_LEVEL.match(config_id), topic
    return component


def check_accepted(topic: str, payload: dict[str, Any]) -> None:
    component = component_of(topic)
    unknown = set(payload) - ACCEPTED[component]
    assert not unknown, f"{topic}: Home Assistant does not accept {sorted(unknown)}"
    missing = REQUIRED[component] - set(payload)
    assert not missing, f"{topic}: missing required {sorted(missing)}"
    assert not set(payload["device"]) - DEVICE_KEYS, payload["device"]
    assert payload["device"].get("identifiers"), "a device needs an identifier"
    assert not set(payload.get("origin", {})) - ORIGIN_KEYS
    for entry in payload.get("availability", []):
        assert not set(entry) - AVAILABILITY_ENTRY_KEYS, entry
    if payload.get("entity_category") == "config":
        assert "command_topic" in payload, f"{topic}: 'config' entities must be settable"


# --- the QBKG40LM's entities ----------------------------------------------------------------------


def test_one_config_per_entity_under_the_ieee_node() -> None:
    configs = device_configs(target())
    assert sorted(configs) == [
        f"{PREFIX}/event/{IEEE}/action/config",
        f"{PREFIX}/select/{IEEE}/operation_mode/config",
        f"{PREFIX}/sensor/{IEEE}/device_temperature/config",
        f"{PREFIX}/sensor/{IEEE}/linkquality/config",
        f"{PREFIX}/switch/{IEEE}/switch/config",
        f"{PREFIX}/switch/{IEEE}/switch_flip_indicator_light/config",
        f"{PREFIX}/switch/{IEEE}/switch_power_outage_memory/config",
    ]


def test_main_switch_is_zigbee2mqtts() -> None:
    payload = device_configs(target())[f"{PREFIX}/switch/{IEEE}/switch/config"]
    assert payload["name"] is None
    assert payload["command_topic"] == f"{BASE}/{NAME}/set"
    assert payload["state_topic"] == f"{BASE}/{NAME}"
    assert (payload["payload_on"], payload["payload_off"]) == ("ON", "OFF")
    assert payload["value_template"] == '{{ value_json["state"] }}'
    assert payload["unique_id"] == f"{IEEE}_switch_{BASE}"
    assert payload["object_id"] == NAME
    assert payload["default_entity_id"] == f"switch.{NAME}"
    assert payload["origin"] == ORIGIN


def test_settings_entities() -> None:
    configs = device_configs(target())
    mode = configs[f"{PREFIX}/select/{IEEE}/operation_mode/config"]
    assert mode["options"] == ["control_relay", "decoupled"]
    assert mode["command_topic"] == f"{BASE}/{NAME}/set/operation_mode"
    assert (mode["name"], mode["icon"], mode["entity_category"]) == ("Operation mode", "mdi:tune", "config")
    assert mode["value_template"] == '{{ value_json["operation_mode"] }}'
    assert mode["default_entity_id"] == f"select.{NAME}_operation_mode"

    memory = configs[f"{PREFIX}/switch/{IEEE}/switch_power_outage_memory/config"]
    assert (memory["payload_on"], memory["payload_off"]) == ("true", "false")
    assert memory["value_template"] == (
        '{% if value_json["power_outage_memory"] %}true{% else %}false{% endif %}'
    )
    assert memory["command_topic"] == f"{BASE}/{NAME}/set/power_outage_memory"
    assert (memory["entity_category"], memory["icon"]) == ("config", "mdi:memory")
    assert memory["object_id"] == f"{NAME}_power_outage_memory"
    assert memory["unique_id"] == f"{IEEE}_switch_power_outage_memory_{BASE}"

    light = configs[f"{PREFIX}/switch/{IEEE}/switch_flip_indicator_light/config"]
    assert (light["payload_on"], light["payload_off"]) == ("ON", "OFF")
    assert light["command_topic"] == f"{BASE}/{NAME}/set/flip_indicator_light"
    assert (light["name"], light["icon"]) == ("Flip indicator light", "mdi:arrow-left-right")


def test_diagnostic_sensors() -> None:
    configs = device_configs(target())
    temperature = configs[f"{PREFIX}/sensor/{IEEE}/device_temperature/config"]
    assert "name" not in temperature  # named by its device class, as in Zigbee2MQTT
    assert temperature["device_class"] == "temperature"
    assert temperature["unit_of_measurement"] == "°C"
    assert (temperature["state_class"], temperature["entity_category"]) == ("measurement", "diagnostic")
    assert temperature["enabled_by_default"] is True
    assert "command_topic" not in temperature

    lqi = configs[f"{PREFIX}/sensor/{IEEE}/linkquality/config"]
    assert (lqi["name"], lqi["icon"], lqi["unit_of_measurement"]) == ("Linkquality", "mdi:signal", "lqi")
    assert lqi["enabled_by_default"] is False
    assert lqi["entity_category"] == "diagnostic"


def test_presses_as_an_event_entity() -> None:
    event = device_configs(target())[f"{PREFIX}/event/{IEEE}/action/config"]
    assert event["event_types"] == ["single", "double"]
    assert event["state_topic"] == f"{BASE}/{NAME}"
    assert "single" in event["value_template"] and "event_type" in event["value_template"]
    assert event["default_entity_id"] == f"event.{NAME}_action"


def test_every_entity_shares_one_device_block_and_the_availability_list() -> None:
    configs = device_configs(target())
    blocks = [payload["device"] for payload in configs.values()]
    assert all(block == blocks[0] for block in blocks)
    assert blocks[0] == {
        "identifiers": [f"zigbee2mqtt_{IEEE}"],
        "manufacturer": "Aqara",
        "model": "Smart wall switch E1 (with neutral, single rocker)",
        "model_id": "QBKG40LM",
        "name": NAME,
        "sw_version": "0.0.0_0029",
        "via_device": f"zigbee2mqtt_bridge_{COORDINATOR}",
    }
    for payload in configs.values():
        assert payload["availability"] == [
            {"topic": f"{BASE}/bridge/state", "value_template": "{{ value_json.state }}"},
            {"topic": f"{BASE}/{NAME}/availability", "value_template": "{{ value_json.state }}"},
        ]
        assert payload["availability_mode"] == "all"


def test_without_device_availability_only_the_bridge_state_counts() -> None:
    for payload in device_configs(target(availability=False, sw_build_id=None)).values():
        assert payload["availability"] == [
            {"topic": f"{BASE}/bridge/state", "value_template": "{{ value_json.state }}"}
        ]
        assert "availability_mode" not in payload
        assert "sw_version" not in payload["device"]


def test_device_trigger_per_action_value() -> None:
    topic, payload = trigger_config(target(), "double")
    assert topic == f"{PREFIX}/device_automation/{IEEE}/action_double/config"
    assert payload == {
        "automation_type": "trigger",
        "device": device_configs(target())[f"{PREFIX}/switch/{IEEE}/switch/config"]["device"],
        "origin": ORIGIN,
        "payload": "double",
        "subtype": "double",
        "topic": f"{BASE}/{NAME}/action",
        "type": "action",
    }


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "component", "config_id", "expected"),
    [
        ("hall_switch", "switch", "switch", "hall_switch"),
        ("hall_switch", "switch", "switch_power_outage_memory", "hall_switch_power_outage_memory"),
        ("hall_switch", "select", "operation_mode", "hall_switch_operation_mode"),
        ("Ground floor/Hall", "sensor", "linkquality", "ground_floor_hall_linkquality"),
    ],
)
def test_object_ids(name: str, component: str, config_id: str, expected: str) -> None:
    assert object_id(name, component, config_id) == expected


def test_a_name_with_a_slash_keeps_its_topics_and_gets_a_safe_entity_id() -> None:
    configs = device_configs(target(friendly_name="Ground floor/Hall"))
    switch = configs[f"{PREFIX}/switch/{IEEE}/switch/config"]
    assert switch["state_topic"] == f"{BASE}/Ground floor/Hall"
    assert switch["default_entity_id"] == "switch.ground_floor_hall"
    assert switch["device"]["name"] == "Ground floor/Hall"


# --- overrides -------------------------------------------------------------------------------------


def test_merge_deletes_with_none_and_merges_mappings() -> None:
    assert merge({"a": 1, "b": {"c": 2, "d": 3}}, {"a": None, "b": {"d": None, "e": 4}}) == {
        "b": {"c": 2, "e": 4}
    }


def test_overrides_for_all_entities_for_one_entity_and_for_the_device() -> None:
    overrides = {
        "expire_after": 30,
        "icon": None,
        "linkquality": {"enabled_by_default": True},
        "device_temperature": None,
        "device": {"suggested_area": "Hall"},
    }
    configs = device_configs(target(overrides=overrides))
    assert f"{PREFIX}/sensor/{IEEE}/device_temperature/config" not in configs
    lqi = configs[f"{PREFIX}/sensor/{IEEE}/linkquality/config"]
    assert lqi["enabled_by_default"] is True
    assert "icon" not in lqi
    for payload in configs.values():
        assert payload["expire_after"] == 30
        assert payload["device"]["suggested_area"] == "Hall"
        assert payload["device"]["identifiers"] == [f"zigbee2mqtt_{IEEE}"]
    _, trigger = trigger_config(target(overrides=overrides), "single")
    assert trigger["device"]["suggested_area"] == "Hall"


# --- what Home Assistant accepts ------------------------------------------------------------------


def test_every_payload_uses_only_keys_home_assistant_accepts() -> None:
    configs = device_configs(target())
    configs.update(dict([trigger_config(target(), action) for action in ("single", "double", "hold")]))
    bridge = BridgeTarget(BASE, PREFIX, COORDINATOR, "zStack3x0", "0.1.0", frozenset({"connection_state"}))
    configs.update(bridge_configs(bridge))
    for topic, payload in configs.items():
        check_accepted(topic, payload)


def test_every_bridge_entity_uses_only_accepted_keys() -> None:
    everything = frozenset(BRIDGE_ENTITIES)
    configs = bridge_configs(BridgeTarget(BASE, PREFIX, COORDINATOR, "zStack3x0", "0.1.0", everything))
    assert len(configs) == len(everything)
    node = bridge_node_id(BASE, COORDINATOR)
    assert node == f"1221051039810110150109113116116_{COORDINATOR}"
    for topic, payload in configs.items():
        assert topic.split("/")[2] == node
        check_accepted(topic, payload)
        assert payload["device"]["identifiers"] == [f"zigbee2mqtt_bridge_{COORDINATOR}"]


def test_bridge_entities_take_zigbee2mqtt_2_14_fields() -> None:
    """As Zigbee2MQTT 2.14.1 publishes them (recorded side by side, tests/data)."""
    configs = bridge_configs(
        BridgeTarget(BASE, PREFIX, COORDINATOR, "zStack3x0", "0.1.0", frozenset(BRIDGE_ENTITIES))
    )
    by_name = {topic.split("/")[3]: payload for topic, payload in configs.items()}
    assert "connection_state" in by_name and "availability" not in by_name["connection_state"]
    for name in set(by_name) - {"connection_state"}:
        assert by_name[name]["availability_mode"] == "all", name
    assert "entity_category" not in by_name["permit_join"] and "entity_category" not in by_name["restart"]
    assert "icon" not in by_name["log_level"]
    assert (
        by_name["log_level"]["command_template"]
        == '{"options": {"advanced": {"log_level": "{{ value }}" } } }'
    )
    assert by_name["restart_required"]["enabled_by_default"] is False
    assert by_name["coordinator_version"]["value_template"] == "{{ value_json.coordinator.meta.revision }}"


@pytest.mark.parametrize(("last_seen", "device_class"), [("ISO_8601", "timestamp"), ("epoch", None)])
def test_last_seen_gives_zigbee2mqtts_last_seen_sensor(last_seen: str, device_class: str | None) -> None:
    assert not [topic for topic in device_configs(target()) if "last_seen" in topic]
    configs = device_configs(target(last_seen=last_seen))
    sensor = configs[f"{PREFIX}/sensor/{IEEE}/last_seen/config"]
    assert (sensor["name"], sensor["icon"], sensor["enabled_by_default"]) == ("Last seen", "mdi:clock", False)
    assert sensor["value_template"] == "{{ value_json.last_seen }}"
    assert sensor["state_topic"] == f"{BASE}/{NAME}" and sensor.get("device_class") == device_class
    assert sensor["unique_id"] == f"{IEEE}_last_seen_{BASE}"
    check_accepted(f"{PREFIX}/sensor/{IEEE}/last_seen/config", sensor)


def commands_reach(configs: dict[str, dict[str, Any]], prop: str) -> bool:
    state_topic = f"{BASE}/{NAME}"
    for payload in configs.values():
        topic = payload.get("command_topic")
        if topic == f"{state_topic}/set/{prop}":
            return True
        # The main switch sends its bare payload_on/off to <FN>/set, which means {"state": …}.
        if topic == f"{state_topic}/set" and prop == "state" and payload["payload_on"] == "ON":
            return True
    return False


def test_every_settable_expose_has_a_command_path() -> None:
    configs = device_configs(target())
    settable = [f.property for f in iter_features(QBKG40LM.exposes) if f.is_settable()]
    assert settable == ["state", "power_outage_memory", "flip_indicator_light", "operation_mode"]
    for prop in settable:
        assert commands_reach(configs, prop), f"no discovery entity sends /set for {prop}"


def test_the_builder_follows_the_exposes_of_another_definition() -> None:
    """A second device is a definition, not bridge code: its exposes map to entities on their own."""
    other = DeviceDefinition(
        model_ids=("lumi.other",),
        model="XX1",
        vendor="Aqara",
        description="Imaginary device",
        exposes=(
            numeric("brightness", Access.ALL, value_min=0, value_max=254, value_step=1),
            binary("contact", Access.STATE, True, False, category="config"),
            enum("mode", Access.STATE, ("a", "b")),
        ),
        options=(),
        inbound=(),
        outbound=(),
        configure=(),
    )
    configs = device_configs(target(definition=other))
    assert sorted(configs) == [
        f"{PREFIX}/binary_sensor/{IEEE}/contact/config",
        f"{PREFIX}/number/{IEEE}/brightness/config",
        f"{PREFIX}/sensor/{IEEE}/mode/config",
    ]
    number = configs[f"{PREFIX}/number/{IEEE}/brightness/config"]
    assert (number["min"], number["max"], number["step"]) == (0, 254, 1)
    assert number["command_topic"] == f"{BASE}/{NAME}/set/brightness"
    # A read-only entity cannot be "config" in Home Assistant: shown as diagnostic instead.
    assert configs[f"{PREFIX}/binary_sensor/{IEEE}/contact/config"]["entity_category"] == "diagnostic"
    for topic, payload in configs.items():
        check_accepted(topic, payload)


def test_the_key_check_can_fail() -> None:
    payload = device_configs(target())[f"{PREFIX}/switch/{IEEE}/switch/config"]
    with pytest.raises(AssertionError, match="does not accept"):
        check_accepted(f"{PREFIX}/switch/{IEEE}/switch/config", payload | {"json_attributes": "x"})
