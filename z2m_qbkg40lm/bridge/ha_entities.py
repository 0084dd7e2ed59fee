"""Home Assistant MQTT discovery payloads, built from a device definition's exposes. Pure: no I/O.

One entity per exposed property, chosen by expose type and access the way Zigbee2MQTT does
(a `switch` expose -> switch; settable binary -> switch; settable enum -> select; settable
numeric -> number; read-only ones -> sensor / binary_sensor; the `action` enum -> an `event`
entity plus one device trigger per action value). Ids, topics and the device block follow
Zigbee2MQTT 2.x, so that Home Assistant keeps its entities (and their history) after a swap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from z2m_qbkg40lm import __version__
from z2m_qbkg40lm.devices.definition import DeviceDefinition
from z2m_qbkg40lm.devices.exposes import (
    BinaryExpose,
    EnumExpose,
    Expose,
    NumericExpose,
    PropertyExpose,
    SwitchExpose,
)

Payload = dict[str, Any]

ACTION_PROPERTY = "action"
ORIGIN: Payload = {"name": "z2m-qbkg40lm", "sw_version": __version__}
"""Who published the discovery message (HA logs it); honest rather than "Zigbee2MQTT"."""

AVAILABILITY_TEMPLATE = "{{ value_json.state }}"

# Per-property presentation, as Zigbee2MQTT's discovery lookups give it for these properties.
_ICONS = {
    "operation_mode": "mdi:tune",
    "power_outage_memory": "mdi:memory",
    "flip_indicator_light": "mdi:arrow-left-right",
    "linkquality": "mdi:signal",
    ACTION_PROPERTY: "mdi:gesture-double-tap",
}
_DEVICE_CLASSES = {"device_temperature": "temperature", "temperature": "temperature"}
_ENABLED_BY_DEFAULT = {"device_temperature": True, "linkquality": False}
_ENTITY_CATEGORIES = {"operation_mode": "config"}

_UNSAFE_ID = re.compile(r"[^a-z0-9_]")


@dataclass(frozen=True)
class DiscoveryTarget:
    """Everything the payloads of one device depend on."""

    ieee: str
    friendly_name: str
    definition: DeviceDefinition
    base_topic: str
    discovery_prefix: str
    coordinator_ieee: str
    availability: bool
    """The device has its own availability topic (availability_mode `all` with bridge/state)."""
    sw_build_id: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """The device's `homeassistant:` option, merged last (`null` deletes a key or an entity)."""
    firmware_updates: bool = False
    """The daemon serves `device/ota_update/update`: devices whose definition supports OTA get an
    `update` entity."""
    last_seen: str = "disable"
    """`advanced.last_seen`: unless `disable`, a "Last seen" sensor (disabled by default), as in
    Zigbee2MQTT."""


@dataclass(frozen=True)
class EntitySpec:
    """One entity before the common fields: component, config id and its own fields."""

    component: str
    config_id: str
    fields: Payload
    command_property: str | None = None
    """The property a command of this entity sets (None for read-only entities)."""


# --- names and ids ---------------------------------------------------------------------------


def object_id_base(friendly_name: str) -> str:
    """The entity id part from a friendly name: lower case, anything but [a-z0-9_] becomes `_`."""
    return _UNSAFE_ID.sub("_", friendly_name.lower())


def object_id(friendly_name: str, component: str, config_id: str) -> str:
    """Zigbee2MQTT's object id: the name, plus the config id without a leading component name."""
    if config_id == component:
        suffix = ""
    elif config_id.startswith(component + "_"):
        suffix = config_id[len(component) :]
    else:
        suffix = "_" + config_id
    return object_id_base(friendly_name) + suffix


def discovery_topic(prefix: str, component: str, node_id: str, config_id: str) -> str:
    """`<prefix>/<component>/<node_id>/<config_id>/config`."""
    return f"{prefix}/{component}/{node_id}/{config_id}/config"


def bridge_identifier(coordinator_ieee: str) -> str:
    """The Home Assistant device identifier of the bridge (Zigbee2MQTT's)."""
    return f"zigbee2mqtt_bridge_{coordinator_ieee}"


def device_block(target: DiscoveryTarget) -> Payload:
    """The `device` object shared by every entity and trigger of the device."""
    definition = target.definition
    block: Payload = {
        "identifiers": [f"zigbee2mqtt_{target.ieee}"],
        "manufacturer": definition.vendor,
        "model": definition.description,
        "model_id": definition.model,
        "name": target.friendly_name,
        "via_device": bridge_identifier(target.coordinator_ieee),
    }
    if target.sw_build_id:
        block["sw_version"] = target.sw_build_id
    override = target.overrides.get("device")
    if isinstance(override, Mapping):
        block = merge(block, override)
    return block


def availability_list(target: DiscoveryTarget) -> Payload:
    """`availability` (and `availability_mode`): bridge/state, plus the device topic when it has one."""
    entries = [{"topic": f"{target.base_topic}/bridge/state", "value_template": AVAILABILITY_TEMPLATE}]
    fields: Payload = {"availability": entries}
    if target.availability:
        entries.append(
            {
                "topic": f"{target.base_topic}/{target.friendly_name}/availability",
                "value_template": AVAILABILITY_TEMPLATE,
            }
        )
        fields["availability_mode"] = "all"
    return fields


def merge(payload: Mapping[str, Any], overrides: Mapping[str, Any]) -> Payload:
    """Overrides merged into a payload: `None` deletes a key, mappings merge recursively."""
    merged = dict(payload)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# --- exposes -> entities ---------------------------------------------------------------------


def _template(prop: str) -> str:
    return '{{ value_json["' + prop + '"] }}'


def _bool_template(prop: str) -> str:
    return '{% if value_json["' + prop + '"] %}true{% else %}false{% endif %}'


def _payload_text(value: Any) -> str:
    """A binary value as HA sends and compares it: JSON for booleans and numbers, else the text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _binary_fields(expose: BinaryExpose) -> Payload:
    booleans = isinstance(expose.value_on, bool)
    return {
        "payload_on": _payload_text(expose.value_on),
        "payload_off": _payload_text(expose.value_off),
        "value_template": _bool_template(expose.property) if booleans else _template(expose.property),
    }


def _presentation(expose: PropertyExpose, read_only: bool) -> Payload:
    fields: Payload = {}
    device_class = _DEVICE_CLASSES.get(expose.property)
    if device_class is not None:
        fields["device_class"] = device_class
    else:
        fields["name"] = expose.label
    category = _ENTITY_CATEGORIES.get(expose.property, expose.category)
    if category == "config" and read_only:
        category = "diagnostic"  # Home Assistant refuses `config` on entities that cannot be set
    if category is not None:
        fields["entity_category"] = category
    if expose.property in _ICONS:
        fields["icon"] = _ICONS[expose.property]
    if expose.property in _ENABLED_BY_DEFAULT:
        fields["enabled_by_default"] = _ENABLED_BY_DEFAULT[expose.property]
    return fields


def _entity_for(expose: PropertyExpose, state_topic: str, command_topic: str) -> list[EntitySpec]:
    prop = expose.property
    settable = expose.is_settable()
    base: Payload = {"state_topic": state_topic}
    set_fields: Payload = {"command_topic": f"{command_topic}/{prop}"} if settable else {}
    presentation = _presentation(expose, read_only=not settable)
    command = prop if settable else None
    if isinstance(expose, BinaryExpose):
        component = "switch" if settable else "binary_sensor"
        config_id = f"switch_{prop}" if settable else prop
        fields = base | _binary_fields(expose) | set_fields | presentation
        return [EntitySpec(component, config_id, fields, command)]
    if isinstance(expose, EnumExpose):
        if prop == ACTION_PROPERTY and not settable:
            return [_event_entity(expose, state_topic)]
        if settable:
            fields = (
                base
                | {"options": list(expose.values), "value_template": _template(prop)}
                | set_fields
                | presentation
            )
            return [EntitySpec("select", prop, fields, command)]
        fields = base | {"value_template": _template(prop)} | presentation
        return [EntitySpec("sensor", prop, fields)]
    if isinstance(expose, NumericExpose):
        fields = base | {"value_template": _template(prop)} | presentation
        if expose.unit is not None:
            fields["unit_of_measurement"] = expose.unit
        if settable:
            for key, value in (
                ("min", expose.value_min),
                ("max", expose.value_max),
                ("step", expose.value_step),
            ):
                if value is not None:
                    fields[key] = value
            return [EntitySpec("number", prop, fields | set_fields, command)]
        fields["state_class"] = "measurement"
        return [EntitySpec("sensor", prop, fields)]
    return []


def _event_entity(expose: EnumExpose, state_topic: str) -> EntitySpec:
    """Presses as an `event` entity: the state message's `action`, when it is an exposed value."""
    values = ", ".join(f'"{value}"' for value in expose.values)
    template = (
        "{% if value_json.action is defined and value_json.action in [" + values + "] %}"
        '{"event_type": "{{ value_json.action }}"}{% endif %}'
    )
    fields: Payload = {
        "event_types": list(expose.values),
        "icon": _ICONS[ACTION_PROPERTY],
        "name": expose.label,
        "state_topic": state_topic,
        "value_template": template,
    }
    return EntitySpec("event", ACTION_PROPERTY, fields)


def entity_specs(exposes: Iterable[Expose], state_topic: str) -> list[EntitySpec]:
    """Every entity of a device, from its exposes (commands go to `<state_topic>/set`)."""
    command_topic = f"{state_topic}/set"
    specs: list[EntitySpec] = []
    for expose in exposes:
        if isinstance(expose, SwitchExpose):
            for feature in expose.features():
                if feature.property != "state" or not isinstance(feature, BinaryExpose):
                    specs.extend(_entity_for(feature, state_topic, command_topic))
                    continue
                suffix = f"_{expose.endpoint}" if expose.endpoint else ""
                fields = (
                    {"name": None, "state_topic": state_topic, "command_topic": command_topic}
                    | _binary_fields(feature)
                    | {"value_template": _template("state")}
                )
                specs.append(EntitySpec("switch", "switch" + suffix, fields, "state"))
        elif isinstance(expose, PropertyExpose):
            specs.extend(_entity_for(expose, state_topic, command_topic))
    return specs


# --- firmware ---------------------------------------------------------------------------------

OTA_UPDATE_REQUEST = "device/ota_update/update"

# `value_json['update']`, not `value_json.update`: the latter is the dict's `update` method.
UPDATE_TEMPLATE = (
    "{% set u = value_json['update'] if value_json['update'] is defined else none %}"
    "{% if u is mapping %}{{ {"
    "'installed_version': u['installed_version'], "
    "'latest_version': u['latest_version'], "
    "'in_progress': u['state'] == 'updating', "
    "'update_percentage': u['progress'] if u['progress'] is defined else none"
    "} | to_json }}{% endif %}"
)
"""The state message's `update` object as Home Assistant's update entity reads it (JSON); nothing
while a device has no `update` yet (no check ran), which Home Assistant ignores."""


def last_seen_entity(last_seen: str, state_topic: str) -> EntitySpec:
    """Zigbee2MQTT's "Last seen" sensor: a timestamp for the ISO 8601 formats, else a number."""
    fields: Payload = {
        "enabled_by_default": False,
        "entity_category": "diagnostic",
        "icon": "mdi:clock",
        "name": "Last seen",
        "state_topic": state_topic,
        "value_template": "{{ value_json.last_seen }}",
    }
    if last_seen.startswith("ISO_8601"):
        fields["device_class"] = "timestamp"
    return EntitySpec("sensor", "last_seen", fields)


UPDATE_PICTURE = "https://github.com/Koenkk/zigbee2mqtt/raw/master/images/logo.png"


def update_entity(target: DiscoveryTarget, state_topic: str) -> EntitySpec:
    """The firmware `update` entity: versions and progress from the state, install by request."""
    fields: Payload = {
        "command_topic": f"{target.base_topic}/bridge/request/{OTA_UPDATE_REQUEST}",
        "device_class": "firmware",
        "entity_category": "config",
        "name": None,
        # Zigbee2MQTT's picture and spacing (2.14.1, recorded side by side in tests/data).
        "entity_picture": UPDATE_PICTURE,
        "payload_install": json.dumps({"id": target.ieee}),
        "state_topic": state_topic,
        "value_template": UPDATE_TEMPLATE,
    }
    return EntitySpec("update", "update", fields)


# --- whole payloads --------------------------------------------------------------------------


def device_configs(target: DiscoveryTarget) -> dict[str, Payload]:
    """Every entity config of one device, by discovery topic (overrides applied; `{}` if disabled)."""
    state_topic = f"{target.base_topic}/{target.friendly_name}"
    specs = entity_specs(target.definition.exposes, state_topic)
    if target.last_seen != "disable":
        specs.append(last_seen_entity(target.last_seen, state_topic))
    if target.firmware_updates and target.definition.supports_ota:
        specs.append(update_entity(target, state_topic))
    config_ids = {spec.config_id for spec in specs}
    shared = {
        key: value for key, value in target.overrides.items() if key not in config_ids and key != "device"
    }
    device = device_block(target)
    availability = availability_list(target)
    configs: dict[str, Payload] = {}
    for spec in specs:
        if spec.config_id in target.overrides and target.overrides[spec.config_id] is None:
            continue  # `<config id>: null` in the overrides removes the entity
        oid = object_id(target.friendly_name, spec.component, spec.config_id)
        payload: Payload = (
            spec.fields
            | availability
            | {
                "default_entity_id": f"{spec.component}.{oid}",
                "device": device,
                "object_id": oid,
                "origin": ORIGIN,
                "unique_id": f"{target.ieee}_{spec.config_id}_{target.base_topic}",
            }
        )
        payload = merge(payload, shared)
        own = target.overrides.get(spec.config_id)
        if isinstance(own, Mapping):
            payload = merge(payload, own)
        configs[discovery_topic(target.discovery_prefix, spec.component, target.ieee, spec.config_id)] = (
            payload
        )
    return configs


def trigger_topic(prefix: str, ieee: str, action: str) -> str:
    """The discovery topic of the device trigger for one action value."""
    return discovery_topic(prefix, "device_automation", ieee, f"action_{trigger_id(action)}")


def trigger_id(action: str) -> str:
    """An action value made safe for a topic level ([a-zA-Z0-9_-])."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", action)


def trigger_config(target: DiscoveryTarget, action: str) -> tuple[str, Payload]:
    """The device trigger for one action value: its topic and payload."""
    payload: Payload = {
        "automation_type": "trigger",
        "device": device_block(target),
        "origin": ORIGIN,
        "payload": action,
        "subtype": action,
        "topic": f"{target.base_topic}/{target.friendly_name}/{ACTION_PROPERTY}",
        "type": ACTION_PROPERTY,
    }
    return trigger_topic(target.discovery_prefix, target.ieee, action), payload


# --- the bridge device (Zigbee2MQTT's "Zigbee2MQTT Bridge") ----------------------------------


@dataclass(frozen=True)
class BridgeTarget:
    """What the bridge entities depend on."""

    base_topic: str
    discovery_prefix: str
    coordinator_ieee: str
    coordinator_type: str
    version: str
    entities: frozenset[str] = frozenset({"connection_state"})
    """Which bridge entities to publish; only those whose topics the daemon serves."""


BRIDGE_ENTITIES = (
    "connection_state",
    "permit_join",
    "restart",
    "log_level",
    "restart_required",
    "coordinator_version",
    "version",
)
"""Zigbee2MQTT 2.14.1's bridge entities (its fields, as recorded in tests/data), but the network
map: this daemon does not serve `bridge/request/networkmap`."""
LOG_LEVELS = ("error", "warning", "info", "debug")


def bridge_node_id(base_topic: str, coordinator_ieee: str) -> str:
    """Zigbee2MQTT's node id for the bridge: the base topic's character codes, `_`, the coordinator."""
    return "".join(str(ord(c)) for c in base_topic) + "_" + coordinator_ieee


def _bridge_entity(target: BridgeTarget, name: str) -> tuple[str, Payload] | None:
    base = target.base_topic
    info = f"{base}/bridge/info"
    state = f"{base}/bridge/state"
    specs: dict[str, tuple[str, Payload]] = {
        "connection_state": (
            "binary_sensor",
            {
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "name": "Connection state",
                "payload_off": "offline",
                "payload_on": "online",
                "state_topic": state,
                "value_template": "{{ value_json.state }}",
            },
        ),
        "permit_join": (
            "switch",
            {
                "command_topic": f"{base}/bridge/request/permit_join",
                "icon": "mdi:human-greeting-proximity",
                "name": "Permit join",
                "payload_off": '{"time": 0}',
                "payload_on": '{"time": 254}',
                "state_off": "false",
                "state_on": "true",
                "state_topic": info,
                "value_template": "{{ value_json.permit_join | lower }}",
            },
        ),
        "restart": (
            "button",
            {
                "command_topic": f"{base}/bridge/request/restart",
                "device_class": "restart",
                "name": "Restart",
                # Not Zigbee2MQTT's "": an empty request is ignored (it is how a retained one is cleared).
                "payload_press": "{}",
            },
        ),
        "log_level": (
            "select",
            {
                "command_template": '{"options": {"advanced": {"log_level": "{{ value }}" } } }',
                "command_topic": f"{base}/bridge/request/options",
                "entity_category": "config",
                "name": "Log level",
                "options": list(LOG_LEVELS),
                "state_topic": info,
                "value_template": "{{ value_json.log_level | lower }}",
            },
        ),
        "restart_required": (
            "binary_sensor",
            {
                "device_class": "problem",
                "enabled_by_default": False,
                "entity_category": "diagnostic",
                "name": "Restart required",
                "payload_off": False,
                "payload_on": True,
                "state_topic": info,
                "value_template": "{{ value_json.restart_required }}",
            },
        ),
        "coordinator_version": (
            "sensor",
            {
                "enabled_by_default": False,
                "entity_category": "diagnostic",
                "icon": "mdi:chip",
                "name": "Coordinator version",
                "state_topic": info,
                "value_template": "{{ value_json.coordinator.meta.revision }}",
            },
        ),
        "version": (
            "sensor",
            {
                "entity_category": "diagnostic",
                "icon": "mdi:zigbee",
                "name": "Version",
                "state_topic": info,
                "value_template": "{{ value_json.version }}",
            },
        ),
    }
    if name not in specs:
        return None
    component, fields = specs[name]
    oid = f"zigbee2mqtt_bridge_{name}"
    availability: Payload = {}
    if name != "connection_state":  # the connection state must show "off" when the bridge is offline
        availability = {
            "availability": [{"topic": state, "value_template": AVAILABILITY_TEMPLATE}],
            "availability_mode": "all",
        }
    payload = (
        fields
        | availability
        | {
            "default_entity_id": f"{component}.{oid}",
            "device": bridge_device_block(target),
            "object_id": oid,
            "origin": ORIGIN,
            "unique_id": f"bridge_{target.coordinator_ieee}_{name}_{base}",
        }
    )
    node = bridge_node_id(base, target.coordinator_ieee)
    return discovery_topic(target.discovery_prefix, component, node, name), payload


def bridge_device_block(target: BridgeTarget) -> Payload:
    """The bridge's own Home Assistant device."""
    return {
        "hw_version": target.coordinator_type,
        "identifiers": [bridge_identifier(target.coordinator_ieee)],
        "manufacturer": "Zigbee2MQTT",
        "model": "Bridge",
        "name": "Zigbee2MQTT Bridge",
        "sw_version": target.version,
    }


def bridge_configs(target: BridgeTarget) -> dict[str, Payload]:
    """The bridge entities' configs by discovery topic."""
    configs: dict[str, Payload] = {}
    for name in BRIDGE_ENTITIES:
        if name in target.entities and (entity := _bridge_entity(target, name)) is not None:
            configs[entity[0]] = entity[1]
    return configs
