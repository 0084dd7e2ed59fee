"""Zigbee2MQTT's generic converters: `read`, `write` and `command` on `/set`, for any device.

`{"read": {"cluster": …, "attributes": [...], "options": {...}, "state_property": …}}`,
`{"write": {"cluster": …, "payload": {...}, "options": {...}}}` and
`{"command": {"cluster": …, "command": …, "payload": {...}, "options": {...}}}` become ZCL
operations; the answer of a read becomes a log line (and state, with `state_property`) worded and
shaped as Zigbee2MQTT's.

Clusters, attributes and commands are taken by Zigbee2MQTT's name (`genOnOff`, `onOff`), zigpy's
name (`on_off`), the name a device definition gives a manufacturer cluster (`manuSpecificLumi`,
`operation_mode`) or number (`6`, `"0x0006"`). The manufacturer code is, as in zigbee-herdsman:
`options.manufacturerCode` when given (`null`: none), else the cluster's own (`manuSpecificLumi`:
0x115F); an attribute with a code of its own keeps it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import zigpy.types as t
import zigpy.zcl
from zigpy.zcl import foundation

from z2m_qbkg40lm.devices.definition import (
    ClusterCommand,
    ConversionError,
    ManufacturerCluster,
    PlanOutcome,
    ReadAttributes,
    SetPlan,
    WriteAttribute,
)
from z2m_qbkg40lm.devices.registry import DEFINITIONS, GENERIC_KEYS
from z2m_qbkg40lm.devices.zcl_names import CLUSTERS, NamedCluster

"""The `/set` keys of the generic converters, valid for every device."""

DEFAULT_ENDPOINT = 1

_FIELDS = {
    "read": ("cluster", "attributes", "options", "state_property"),
    "write": ("cluster", "payload", "options"),
    "command": ("cluster", "command", "payload", "options"),
}
_OPTIONS = {
    "read": ("manufacturerCode", "timeout", "disableRecovery"),
    "write": ("manufacturerCode", "disableDefaultResponse", "disableResponse", "timeout", "disableRecovery"),
    "command": ("manufacturerCode", "disableDefaultResponse", "timeout", "disableRecovery"),
}
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_OCTET_TYPES = frozenset({0x41, 0x43})
_BOOLEAN_TYPE = 0x10
_BY_ID: dict[int, tuple[str, NamedCluster]] = {named.id: (name, named) for name, named in CLUSTERS.items()}


# --- names -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cluster:
    id: int
    label: str
    """For messages: `genOnOff (0x0006)`."""
    manufacturer_code: int | None
    named: NamedCluster | None
    zigpy_cluster: type[zigpy.zcl.Cluster] | None
    custom: ManufacturerCluster | None


@dataclass(frozen=True)
class _Attribute:
    id: int
    zcl_type: int | None
    manufacturer_code: int | None
    result_key: str
    """The key Zigbee2MQTT gives its value in a read result: its name, or its number."""


def _number(text: Any, what: str, maximum: int, where: str = "") -> int | None:
    """A number given as such or as a decimal or 0x string; None when `text` is not one."""
    if isinstance(text, bool):
        raise ConversionError(f"{what} {_show(text)}{where} is not a name or a number")
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    if isinstance(text, int):
        number = text
    elif isinstance(text, str) and _NUMBER.fullmatch(text.strip()):
        number = int(text.strip(), 0)
    else:
        return None
    if not 0 <= number <= maximum:
        raise ConversionError(f"{what} {_show(text)}{where} is out of range (0 to 0x{maximum:X})")
    return number


MANUFACTURER_SPECIFIC_CLUSTERS = 0xFC00
"""Cluster ids from here up are manufacturer-specific (ZCL)."""


def _zigpy_clusters() -> dict[int, type[zigpy.zcl.Cluster]]:
    """zigpy's standard clusters by id (zigpy 2.4 offers its registry under this name only).

    Manufacturer-specific ids are left out: the registry is global, and the radio layer registers
    the definitions' clusters in it, so what it holds there depends on whether a radio ran in this
    process. Those clusters are described by the definitions alone."""
    registry: dict[int, type[zigpy.zcl.Cluster]] = zigpy.zcl.Cluster._registry
    return {cid: cls for cid, cls in registry.items() if cid < MANUFACTURER_SPECIFIC_CLUSTERS}


def _resolve_cluster(value: Any, custom_clusters: tuple[ManufacturerCluster, ...]) -> _Cluster:
    customs = {cluster.cluster_id: cluster for cluster in custom_clusters}
    cluster_id = _number(value, "cluster", 0xFFFF)
    named: NamedCluster | None = None
    name: str | None = None
    if cluster_id is None:
        if not isinstance(value, str):
            raise ConversionError(f"cluster {_show(value)} is not a name or a number")
        if value in CLUSTERS:
            name, named = value, CLUSTERS[value]
            cluster_id = named.id
        else:
            cluster_id = next((c.cluster_id for c in custom_clusters if c.name == value), None)
            if cluster_id is None:
                cluster_id = next(
                    (cid for cid, cls in _zigpy_clusters().items() if cls.ep_attribute == value), None
                )
            if cluster_id is None:
                raise ConversionError(
                    f"unknown cluster {_show(value)}: give a Zigbee2MQTT name (genOnOff), a zigpy name "
                    '(on_off) or a number (6, "0x0006")'
                )
    if named is None and cluster_id in _BY_ID:
        name, named = _BY_ID[cluster_id]
    custom = customs.get(cluster_id)
    if custom is not None:
        name = name or custom.name
    # A manufacturer cluster is described by the definitions, not by what the radio layer may
    # have registered with zigpy: the converters stay the same with or without a radio.
    zigpy_cluster = None if custom is not None else _zigpy_clusters().get(cluster_id)
    if name is None and zigpy_cluster is not None:
        name = zigpy_cluster.ep_attribute
    label = f"{name} (0x{cluster_id:04X})" if name else f"cluster 0x{cluster_id:04X}"
    code = custom.manufacturer_code if custom is not None else named.manufacturer_code if named else None
    return _Cluster(cluster_id, label, code, named, zigpy_cluster, custom)


def _attribute_by_id(cluster: _Cluster, attribute_id: int) -> _Attribute:
    zcl_type: int | None = None
    manufacturer_code: int | None = None
    result_key = str(attribute_id)
    if cluster.named is not None:
        for name, attribute in cluster.named.attributes.items():
            if attribute.id == attribute_id:
                zcl_type, manufacturer_code, result_key = (
                    attribute.zcl_type,
                    attribute.manufacturer_code,
                    name,
                )
                break
    if cluster.custom is not None:
        for custom in cluster.custom.attributes:
            if custom.attribute_id == attribute_id:
                zcl_type = custom.zcl_type
    if cluster.zigpy_cluster is not None and attribute_id in cluster.zigpy_cluster.attributes:
        zcl_type = int(cluster.zigpy_cluster.attributes[attribute_id].zcl_type)
    return _Attribute(attribute_id, zcl_type, manufacturer_code, result_key)


def _resolve_attribute(cluster: _Cluster, value: Any) -> _Attribute:
    attribute_id = _number(value, "attribute", 0xFFFF, f" of {cluster.label}")
    if attribute_id is not None:
        return _attribute_by_id(cluster, attribute_id)
    if not isinstance(value, str):
        raise ConversionError(f"attribute {_show(value)} of {cluster.label} is not a name or a number")
    if cluster.named is not None and value in cluster.named.attributes:
        return _attribute_by_id(cluster, cluster.named.attributes[value].id)
    if cluster.custom is not None:
        for custom in cluster.custom.attributes:
            if custom.name == value:
                return _attribute_by_id(cluster, custom.attribute_id)
    if cluster.zigpy_cluster is not None and value in cluster.zigpy_cluster.attributes_by_name:
        return _attribute_by_id(cluster, int(cluster.zigpy_cluster.attributes_by_name[value].id))
    known = _known_attributes(cluster)
    hint = f"; known: {', '.join(known)}" if known else ""
    raise ConversionError(
        f"unknown attribute {_show(value)} of {cluster.label}: give a name or a number{hint}"
    )


def _known_attributes(cluster: _Cluster) -> list[str]:
    # Zigbee2MQTT's names (and a definition's), or zigpy's when Zigbee2MQTT has none.
    names: dict[str, None] = {}
    if cluster.named is not None:
        names.update(dict.fromkeys(cluster.named.attributes))
    if cluster.custom is not None:
        names.update(dict.fromkeys(a.name for a in cluster.custom.attributes))
    if not names and cluster.zigpy_cluster is not None:
        names.update(dict.fromkeys(cluster.zigpy_cluster.attributes_by_name))
    return list(names)


# --- values ------------------------------------------------------------------------------------


def _type_name(zcl_type: int) -> str:
    try:
        return f"{foundation.DataTypeId(zcl_type).name} (0x{zcl_type:02X})"  # type: ignore[no-untyped-call]
    except ValueError:
        return f"0x{zcl_type:02X}"


def _python_type(zcl_type: int, where: str) -> Any:
    try:
        return foundation.DataType.from_type_id(foundation.DataTypeId(zcl_type)).python_type  # type: ignore[no-untyped-call]
    except (ValueError, KeyError):
        raise ConversionError(f"{where}: 0x{zcl_type:02X} is not a ZCL data type") from None


def _octets(value: Any) -> bytes | None:
    if isinstance(value, Mapping) and value.get("type") == "Buffer":
        value = value.get("data")
    if isinstance(value, list) and all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value
    ):
        return bytes(value)
    return None


def _coerce(value: Any, python_type: Any, where: str, type_text: str) -> Any:
    """The value as the zigpy type that encodes it; ConversionError when it does not fit."""
    problem = f"{where}: {_show(value)} does not fit {type_text}"
    if isinstance(python_type, type) and issubclass(python_type, bytes):
        octets = _octets(value)
        if octets is None:
            raise ConversionError(f"{problem} (give a list of bytes 0-255 or a Buffer)")
        try:
            return python_type(octets)
        except (ValueError, OverflowError):
            raise ConversionError(problem) from None
    if isinstance(python_type, type) and issubclass(python_type, str):
        if not isinstance(value, str):
            raise ConversionError(problem)
        return python_type(value)
    if isinstance(python_type, type) and issubclass(python_type, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConversionError(problem)
        return python_type(value)
    if isinstance(python_type, type) and issubclass(python_type, int):
        if issubclass(python_type, t.Bool):
            if value in (True, False, 0, 1):
                return python_type(int(value))
            raise ConversionError(problem)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConversionError(problem)
        try:
            return python_type(value)
        except (ValueError, OverflowError, TypeError):
            raise ConversionError(problem) from None
    try:
        return python_type(value)
    except (ValueError, OverflowError, TypeError):
        raise ConversionError(problem) from None


def json_value(value: Any) -> Any:
    """A value read from a device as Zigbee2MQTT publishes it: numbers (booleans and enums too),
    strings, octets as a Node.js Buffer in JSON ({"type": "Buffer", "data": [...]}), lists."""
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    if isinstance(value, t.EUI64):
        return "0x" + "".join(f"{b:02x}" for b in reversed(value))
    if isinstance(value, bytes | bytearray):
        return {"type": "Buffer", "data": list(value)}
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    return str(value)


def js_json(value: Any) -> str:
    """JSON as JavaScript's JSON.stringify writes it: no spaces, integer-like keys first in
    ascending order, integral floats without a fraction."""
    return json.dumps(_js_order(value), separators=(",", ":"), ensure_ascii=False)


def _js_order(value: Any) -> Any:
    if isinstance(value, Mapping):
        keys = [str(k) for k in value]
        numeric = sorted((k for k in keys if re.fullmatch(r"0|[1-9][0-9]{0,9}", k)), key=int)
        others = [k for k in keys if k not in numeric]
        items = {str(k): v for k, v in value.items()}
        return {k: _js_order(items[k]) for k in [*numeric, *others]}
    if isinstance(value, list | tuple):
        return [_js_order(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _cluster_text(value: Any) -> str:
    """The cluster as Zigbee2MQTT's log line shows what the user gave."""
    return value if isinstance(value, str) else js_json(value)


def _show(value: Any) -> str:
    try:
        return js_json(value)
    except (TypeError, ValueError):
        return repr(value)


# --- the three converters --------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    manufacturer_code: int | None
    manufacturer_given: bool
    disable_default_response: bool | None
    disable_response: bool


def _options(key: str, given: Any) -> _Options:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConversionError(f"options {_show(given)} is not an object")
    allowed = _OPTIONS[key]
    for name in given:
        if name not in allowed:
            raise ConversionError(f"unknown option {_show(name)} for {key}; accepted: {', '.join(allowed)}")
    code: int | None = None
    if "manufacturerCode" in given and given["manufacturerCode"] is not None:
        code = _number(given["manufacturerCode"], "options.manufacturerCode", 0xFFFF)
        if code is None:
            raise ConversionError(
                f"options.manufacturerCode {_show(given['manufacturerCode'])} is not a number"
            )
    for flag in ("disableDefaultResponse", "disableResponse", "disableRecovery"):
        if flag in given and not isinstance(given[flag], bool):
            raise ConversionError(f"options.{flag} {_show(given[flag])} is not true or false")
    timeout = given.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise ConversionError(f"options.timeout {_show(timeout)} is not a number of milliseconds")
    return _Options(
        manufacturer_code=code,
        manufacturer_given="manufacturerCode" in given,
        disable_default_response=given.get("disableDefaultResponse"),
        disable_response=bool(given.get("disableResponse", False)),
    )


def _manufacturer(
    cluster: _Cluster, attributes: Iterable[_Attribute], options: _Options, key: str
) -> int | None:
    """zigbee-herdsman's rule: the attribute's own code, else the option's, else the cluster's;
    one request carries one code."""
    fallback = options.manufacturer_code if options.manufacturer_given else cluster.manufacturer_code
    codes = {a.manufacturer_code if a.manufacturer_code is not None else fallback for a in attributes}
    if len(codes) > 1:
        raise ConversionError(f"{key}: attributes with different manufacturer codes cannot go in one {key}")
    return codes.pop() if codes else fallback


def _fields(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        example = {
            "read": '{"cluster": "genBasic", "attributes": ["modelId"]}',
            "write": '{"cluster": "genOnOff", "payload": {"onTime": 10}}',
            "command": '{"cluster": "genOnOff", "command": "toggle"}',
        }[key]
        raise ConversionError(f"{_show(value)} is not an object; expected e.g. {example}")
    allowed = _FIELDS[key]
    for name in value:
        if name not in allowed:
            raise ConversionError(f"unknown field {_show(name)}; accepted: {', '.join(allowed)}")
    if "cluster" not in value:
        raise ConversionError("no cluster given")
    return value


def _plan_read(value: Mapping[str, Any], endpoint: int, customs: tuple[ManufacturerCluster, ...]) -> SetPlan:
    cluster = _resolve_cluster(value["cluster"], customs)
    names = value.get("attributes")
    if not isinstance(names, list) or not names:
        raise ConversionError(
            f"attributes {_show(names)} is not a non-empty list of attribute names or numbers"
        )
    attributes = [_resolve_attribute(cluster, name) for name in names]
    ids = [a.id for a in attributes]
    for attribute, name in zip(attributes, names, strict=True):
        if ids.count(attribute.id) > 1:
            raise ConversionError(f"attribute {_show(name)} of {cluster.label} is given twice")
    state_property = value.get("state_property")
    if state_property is not None and (not isinstance(state_property, str) or not state_property):
        raise ConversionError(f"state_property {_show(state_property)} is not a property name")
    options = _options("read", value.get("options"))
    operation = ReadAttributes(
        endpoint, cluster.id, tuple(ids), _manufacturer(cluster, attributes, options, "read")
    )
    keys = {a.id: a.result_key for a in attributes}
    cluster_text = _cluster_text(value["cluster"])

    def on_results(results: tuple[Any, ...]) -> PlanOutcome:
        answer: Mapping[int, Any] = results[0] if results and isinstance(results[0], Mapping) else {}
        result = {keys.get(int(k), str(int(k))): json_value(v) for k, v in answer.items()}
        ordered = _js_order(result)
        log = f"Read result of '{cluster_text}': {js_json(ordered)}"
        return PlanOutcome({state_property: ordered} if state_property else {}, log)

    return SetPlan((operation,), on_results=on_results)


def _plan_write(value: Mapping[str, Any], endpoint: int, customs: tuple[ManufacturerCluster, ...]) -> SetPlan:
    cluster = _resolve_cluster(value["cluster"], customs)
    payload = value.get("payload")
    if not isinstance(payload, Mapping) or not payload:
        raise ConversionError(
            f'payload {_show(payload)} is not an object of attributes and values, e.g. {{"onTime": 10}}'
        )
    options = _options("write", value.get("options"))
    planned: list[tuple[_Attribute, int, Any]] = []
    for name, given in payload.items():
        attribute = _resolve_attribute(cluster, name)
        where = f"attribute {_show(name)} of {cluster.label}"
        if isinstance(given, Mapping) and "value" in given and "type" in given:
            zcl_type = _number(given["type"], f"{where}: type", 0xFF)
            if zcl_type is None:
                raise ConversionError(f"{where}: type {_show(given['type'])} is not a ZCL data type id")
            raw = given["value"]
        elif (
            isinstance(given, Mapping)
            and ("value" in given or "type" in given)
            and given.get("type") != "Buffer"
        ):
            raise ConversionError(f'{where}: give both "value" and "type" (a ZCL data type id)')
        elif attribute.zcl_type is None:
            raise ConversionError(
                f'{where}: its data type is unknown; give {{"value": …, "type": <ZCL data type id>}}'
            )
        else:
            zcl_type, raw = attribute.zcl_type, given
        python_type = _python_type(zcl_type, where)
        planned.append((attribute, zcl_type, _coerce(raw, python_type, where, _type_name(zcl_type))))
    code = _manufacturer(cluster, [a for a, _, _ in planned], options, "write")
    # zigbee-herdsman sends writes with the disable-default-response bit unless told otherwise.
    disable_default = True if options.disable_default_response is None else options.disable_default_response
    operations = tuple(
        WriteAttribute(
            endpoint,
            cluster.id,
            attribute.id,
            zcl_type,
            coerced,
            manufacturer=code,
            await_response=not options.disable_response,
            disable_default_response=disable_default,
        )
        for attribute, zcl_type, coerced in planned
    )
    log = f"Wrote '{js_json(payload)}' to '{_cluster_text(value['cluster'])}'"
    return SetPlan(operations, on_results=lambda _results: PlanOutcome({}, log))


def _plan_command(
    value: Mapping[str, Any], endpoint: int, customs: tuple[ManufacturerCluster, ...]
) -> SetPlan:
    cluster = _resolve_cluster(value["cluster"], customs)
    if "command" not in value:
        raise ConversionError("no command given")
    given_command = value["command"]
    command_id = _number(given_command, "command", 0xFF, f" of {cluster.label}")
    named_parameters: tuple[str, ...] = ()
    has_response = False
    if command_id is None and isinstance(given_command, str) and cluster.named is not None:
        named_command = cluster.named.commands.get(given_command)
        if named_command is not None:
            command_id, named_parameters, has_response = named_command
    zigpy_commands = {} if cluster.zigpy_cluster is None else cluster.zigpy_cluster.server_commands
    if command_id is None and isinstance(given_command, str):
        command_id = next((cid for cid, c in zigpy_commands.items() if c.name == given_command), None)
    if command_id is None:
        known = list(cluster.named.commands) if cluster.named else [c.name for c in zigpy_commands.values()]
        hint = f"; known: {', '.join(known)}" if known else ""
        raise ConversionError(f"unknown command {_show(given_command)} of {cluster.label}{hint}")
    if cluster.named is not None and not named_parameters:
        for named_command in cluster.named.commands.values():
            if named_command.id == command_id:
                _, named_parameters, has_response = named_command
    definition = zigpy_commands.get(command_id)
    known_ids = {c.id for c in cluster.named.commands.values()} if cluster.named else set()
    if definition is None and command_id not in known_ids:
        raise ConversionError(f"unknown command {_show(given_command)} of {cluster.label}")
    if definition is None:
        raise ConversionError(
            f"command {_show(given_command)} of {cluster.label}: its payload layout is unknown here, "
            "so it cannot be sent"
        )
    payload = value.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise ConversionError(f"payload {_show(payload)} is not an object of the command's fields")
    args = _command_args(
        definition, named_parameters, payload, f"command {_show(given_command)} of {cluster.label}"
    )
    options = _options("command", value.get("options"))
    code = options.manufacturer_code if options.manufacturer_given else cluster.manufacturer_code
    # zigbee-herdsman asks for a Default Response unless a response command answers anyway.
    disable_default = (
        has_response if options.disable_default_response is None else options.disable_default_response
    )
    operation = ClusterCommand(
        endpoint, cluster.id, command_id, args, manufacturer=code, disable_default_response=disable_default
    )
    shown = js_json(value["payload"]) if value.get("payload") is not None else "undefined"
    log = f"Invoked '{_cluster_text(value['cluster'])}.{_cluster_text(given_command)}' with payload '{shown}'"
    return SetPlan((operation,), on_results=lambda _results: PlanOutcome({}, log))


def _command_args(
    definition: Any, named_parameters: tuple[str, ...], payload: Mapping[str, Any], where: str
) -> tuple[Any, ...]:
    """The command's arguments in frame order, from the payload's fields by either naming.

    Zigbee2MQTT's and zigpy's names of a command's fields follow the ZCL's frame order, so they pair
    up by position; where one knows more fields than the other (a later ZCL revision appended
    optional ones), they pair up as far as both go.
    """
    fields = list(definition.schema.fields)
    labels = [named_parameters[i] if i < len(named_parameters) else f.name for i, f in enumerate(fields)]
    index: dict[str, int] = {field.name: i for i, field in enumerate(fields)}
    index.update({name: i for i, name in enumerate(labels)})
    shown = ", ".join(labels) or "none"
    values: dict[int, Any] = {}
    for name, given in payload.items():
        if name in named_parameters[len(fields) :]:
            raise ConversionError(
                f"{where}: field {_show(name)} cannot be sent (zigpy's layout ends before it)"
            )
        if name not in index:
            raise ConversionError(f"{where}: unknown field {_show(name)}; fields: {shown}")
        values[index[name]] = given
    args: list[Any] = []
    for i, field in enumerate(fields):
        if i not in values:
            if getattr(field, "optional", False) and not any(j > i for j in values):
                break
            raise ConversionError(f"{where}: missing field {_show(labels[i])}; fields: {shown}")
        type_text = getattr(field.type, "__name__", str(field.type))
        args.append(_coerce(values[i], field.type, f"{where}: field {_show(labels[i])}", type_text))
    return tuple(args)


def plan_generic(
    key: str,
    value: Any,
    *,
    endpoint: int = DEFAULT_ENDPOINT,
    manufacturer_clusters: Iterable[ManufacturerCluster] | None = None,
) -> SetPlan:
    """The plan of a generic `read`, `write` or `command`; ConversionError says what is wrong.

    `manufacturer_clusters`: the manufacturer-specific clusters whose names and attributes are
    known (default: those of every device definition)."""
    if key not in GENERIC_KEYS:
        raise ConversionError(f"{key}: not a generic converter ({', '.join(sorted(GENERIC_KEYS))})")
    if manufacturer_clusters is None:
        manufacturer_clusters = (c for d in DEFINITIONS for c in d.manufacturer_clusters)
    customs = tuple(manufacturer_clusters)
    try:
        fields = _fields(key, value)
        if key == "read":
            return _plan_read(fields, endpoint, customs)
        if key == "write":
            return _plan_write(fields, endpoint, customs)
        return _plan_command(fields, endpoint, customs)
    except ConversionError as exc:
        raise ConversionError(f"{key}: {exc}") from None
