"""The known device definitions, and the pure steps the bridge takes with one.

`convert_inbound` turns a received attribute into partial state. `plan_command` and
`plan_get_command` turn a whole `/set` or `/get` into steps, in Zigbee2MQTT's order, each with its
ZCL operations or the error (worded as Zigbee2MQTT words it) that says which property and why;
`plan_set` and `plan_get` do the same for one property.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from z2m_qbkg40lm.devices.definition import (
    AttributeMessage,
    ConversionError,
    DeviceDefinition,
    Options,
    OutboundConverter,
    ReadAttributes,
    Response,
    SetPlan,
    State,
    ZclOperation,
)
from z2m_qbkg40lm.devices.exposes import find_feature
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM

logger = logging.getLogger(__name__)

DEFINITIONS: tuple[DeviceDefinition, ...] = (QBKG40LM,)

_BY_MODEL_ID: dict[str, DeviceDefinition] = {
    model_id: definition for definition in DEFINITIONS for model_id in definition.model_ids
}


def find_definition(model_id: str | None) -> DeviceDefinition | None:
    """The definition for a Basic modelIdentifier, or None when the device is not supported."""
    if model_id is None:
        return None
    # Some firmwares pad the identifier with NULs or spaces; the id itself never contains them.
    return _BY_MODEL_ID.get(model_id.strip("\x00 "))


def convert_inbound(definition: DeviceDefinition, message: AttributeMessage, options: Options) -> State:
    """The partial state from one attribute message: every matching converter, merged in order."""
    state: State = {}
    for converter in definition.inbound:
        if not converter.matches(message):
            continue
        try:
            state.update(converter.convert(message, options))
        except Exception:
            # Converters are written not to raise; if one still does, lose this message, not the
            # radio listener that called us.
            logger.exception(
                "%s: converter for 0x%04X/0x%04X failed on %r",
                definition.model,
                message.cluster_id,
                message.attribute_id,
                message.value,
            )
    return state


# --- /set and /get --------------------------------------------------------------------------------


def _reads(definition: DeviceDefinition, prop: str) -> tuple[ZclOperation, ...]:
    for converter in definition.outbound:
        if prop in converter.keys and converter.read is not None:
            operations = converter.read(prop)
            if operations:
                return operations
    return ()


def _properties(definition: DeviceDefinition) -> list[str]:
    # Exposed properties first in expose order, then any converter-only keys, sorted.
    names: dict[str, None] = {}
    for expose in definition.exposes:
        for feature in expose.features():
            names[feature.property] = None
    for converter in sorted(definition.outbound, key=lambda c: sorted(c.keys)):
        if converter.convert_message is not None:
            continue  # its other keys (on_time) only go with an exposed one (state)
        for key in sorted(converter.keys):
            names[key] = None
    return list(names)


def settable_properties(definition: DeviceDefinition) -> tuple[str, ...]:
    """Properties a `/set` can change, in expose order."""
    return tuple(p for p in _properties(definition) if _set_converter(definition, p) is not None)


def readable_properties(definition: DeviceDefinition) -> tuple[str, ...]:
    """Properties a `/get` can refresh, in expose order."""
    return tuple(p for p in _properties(definition) if _reads(definition, p))


def _is_known(definition: DeviceDefinition, prop: str) -> bool:
    return find_feature(definition.exposes, prop) is not None or any(
        prop in converter.keys for converter in definition.outbound
    )


def plan_set(definition: DeviceDefinition, prop: str, value: Any, state: State, options: Options) -> SetPlan:
    """The ZCL operations (and optimistic state) for `/set` of one property; ConversionError if refused."""
    converter = _set_converter(definition, prop)
    if converter is None:
        raise ConversionError(_not_settable(definition, prop))
    if converter.convert_message is not None:
        return converter.convert_message({prop: value}, state, options)
    assert converter.convert is not None  # _set_converter only finds converters that set
    return converter.convert(prop, value, state, options)


def _set_converter(definition: DeviceDefinition, prop: str) -> OutboundConverter | None:
    for converter in definition.outbound:
        if prop in converter.keys and (converter.convert or converter.convert_message) is not None:
            return converter
    return None


def _not_settable(definition: DeviceDefinition, prop: str) -> str:
    settable = ", ".join(settable_properties(definition))
    if _is_known(definition, prop):
        return f"{prop}: read-only on {definition.model}, it cannot be set; settable: {settable}"
    return f"no such property '{prop}' on {definition.model}; settable: {settable}"


def plan_get(definition: DeviceDefinition, prop: str) -> tuple[ZclOperation, ...]:
    """The ZCL reads for `/get` of one property; ConversionError when unknown or not readable."""
    operations = _reads(definition, prop)
    if operations:
        return operations
    raise ConversionError(_not_readable(definition, prop))


def _not_readable(definition: DeviceDefinition, prop: str) -> str:
    readable = ", ".join(readable_properties(definition))
    if _is_known(definition, prop):
        return f"{prop}: not readable on {definition.model}; readable: {readable}"
    return f"no such property '{prop}' on {definition.model}; readable: {readable}"


def merged_reads(operations: Iterable[ZclOperation]) -> tuple[ZclOperation, ...]:
    """The same operations with reads of one cluster merged into one request (one frame a check)."""
    groups: dict[tuple[int, int, int | None], list[int]] = {}
    others: list[ZclOperation] = []
    for operation in operations:
        if isinstance(operation, ReadAttributes):
            ids = groups.setdefault((operation.endpoint, operation.cluster_id, operation.manufacturer), [])
            ids.extend(a for a in operation.attribute_ids if a not in ids)
        else:
            others.append(operation)
    reads = [ReadAttributes(e, c, tuple(ids), m) for (e, c, m), ids in groups.items()]
    return (*others, *reads)


# --- Answers a device asks for ----------------------------------------------------------------------


def responses(definition: DeviceDefinition, message: AttributeMessage) -> tuple[Response, ...]:
    """The answers the definition's responders give to one attribute message (usually none)."""
    answers: list[Response] = []
    for responder in definition.responders:
        if not responder.matches(message):
            continue
        try:
            operations = responder.respond(message)
        except Exception:
            # Like a converter: lose this answer, not the radio listener that called us.
            logger.exception(
                "%s: responder '%s' failed on 0x%04X/0x%04X %r",
                definition.model,
                responder.name,
                message.cluster_id,
                message.attribute_id,
                message.value,
            )
            continue
        if operations:
            answers.append(Response(responder.name, operations))
    return tuple(answers)


# --- whole commands, in Zigbee2MQTT's order ----------------------------------------------------------

GENERIC_KEYS = frozenset({"read", "write", "command"})
"""Keys every device takes on `/set` (Zigbee2MQTT's generic converters), when no converter of the
definition claims them."""

STATE_KEYS = ("state", "brightness", "brightness_percent")
"""Zigbee2MQTT carries these out last when `state` is OFF (settings first, then off), else first."""

GenericPlanner = Callable[[str, Any], SetPlan]
"""`(key, value) -> SetPlan` for the generic keys; raises ConversionError."""


def generic_only_definition(model_id: str | None, vendor: str | None) -> DeviceDefinition:
    """A definition with no converters, for commanding a device this daemon does not support with
    the generic keys only (every other key gets "No converter available")."""
    return DeviceDefinition(
        model_ids=(),
        model=model_id or "unknown model",
        vendor=vendor or "unknown vendor",
        description="Not supported by this daemon",
        exposes=(),
        options=(),
        inbound=(),
        outbound=(),
        configure=(),
    )


_SHOWN_CHARS = 200


@dataclass(frozen=True)
class PlannedStep:
    """One converter's part of a command: the keys it claims, and its plan or the error to log."""

    keys: tuple[str, ...]
    plan: SetPlan | None = None
    error: str | None = None


def set_order(properties: Mapping[str, Any]) -> list[str]:
    """The keys of a `/set` in the order Zigbee2MQTT carries them out: `state`, `brightness` and
    `brightness_percent` last when `state` is the string OFF (any case), else first; the others
    keep their order."""
    state = properties.get("state")
    off = isinstance(state, str) and state.lower() == "off"
    leading = [key for key in properties if key in STATE_KEYS]
    others = [key for key in properties if key not in STATE_KEYS]
    return [*others, *leading] if off else [*leading, *others]


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def no_converter(key: str, value: Any, device_name: str, why: str) -> str:
    """Zigbee2MQTT's line for a key no converter takes, with the reason after it."""
    return f"No converter available for '{key}' on '{device_name}': ({_json(value)}); {why}"


def publish_failed(action: str, key: str, device_name: str, why: object) -> str:
    """Zigbee2MQTT's line for a key whose converter (or its ZCL exchange) failed."""
    return f"Publish '{action}' '{key}' to '{device_name}' failed: '{why}'"


def plan_command(
    definition: DeviceDefinition,
    properties: Mapping[str, Any],
    state: State,
    options: Options,
    *,
    device_name: str,
    generic: GenericPlanner | None = None,
) -> list[PlannedStep]:
    """The steps of a `/set`, in Zigbee2MQTT's order: one per converter (which claims all of its keys
    in the message and runs at the first of them), one error step per key nothing takes."""
    steps: list[PlannedStep] = []
    used: set[int] = set()
    for key in set_order(properties):
        value = properties[key]
        converter = _set_converter(definition, key)
        if converter is not None:
            if id(converter) in used:
                continue  # it ran with an earlier key of this message
            used.add(id(converter))
            claimed = tuple(k for k in set_order(properties) if k in converter.keys)
            try:
                if converter.convert_message is not None:
                    values = {k: properties[k] for k in claimed}
                    plan = converter.convert_message(values, state, options)
                else:
                    assert converter.convert is not None
                    plan = converter.convert(key, value, state, options)
            except ConversionError as exc:
                steps.append(PlannedStep(claimed, error=publish_failed("set", key, device_name, exc)))
                continue
            steps.append(PlannedStep(claimed, plan))
        elif key in GENERIC_KEYS and not _is_known(definition, key):
            if generic is None:
                why = f"'{key}' (Zigbee2MQTT's generic converter) is not available in this version"
                steps.append(PlannedStep((key,), error=no_converter(key, value, device_name, why)))
                continue
            try:
                steps.append(PlannedStep((key,), generic(key, value)))
            except ConversionError as exc:
                steps.append(PlannedStep((key,), error=publish_failed("set", key, device_name, exc)))
        else:
            why = _not_settable(definition, key)
            steps.append(PlannedStep((key,), error=no_converter(key, value, device_name, why)))
    return steps


def plan_get_command(
    definition: DeviceDefinition, properties: Mapping[str, Any], *, device_name: str
) -> list[PlannedStep]:
    """The steps of a `/get`: the reads of one cluster merged into one step (one request, one answer),
    in the order of their first property, and an error step per property that cannot be read."""
    steps: list[PlannedStep] = []
    groups: dict[tuple[int, int, int | None], tuple[list[str], list[int], int]] = {}
    for key, value in properties.items():
        operations = _reads(definition, key)
        if not operations:
            why = _not_readable(definition, key)
            steps.append(PlannedStep((key,), error=no_converter(key, value, device_name, why)))
            continue
        for operation in operations:
            if not isinstance(operation, ReadAttributes):
                steps.append(PlannedStep((key,), SetPlan((operation,))))
                continue
            group = (operation.endpoint, operation.cluster_id, operation.manufacturer)
            if group not in groups:
                groups[group] = ([], [], len(steps))
                steps.append(PlannedStep(()))  # placeholder, filled below
            keys, ids, _ = groups[group]
            if key not in keys:
                keys.append(key)
            ids.extend(a for a in operation.attribute_ids if a not in ids)
    for (endpoint, cluster_id, manufacturer), (keys, ids, index) in groups.items():
        read = ReadAttributes(endpoint, cluster_id, tuple(ids), manufacturer)
        steps[index] = PlannedStep(tuple(keys), SetPlan((read,)))
    return steps


def claimed_together(definition: DeviceDefinition, prop: str) -> frozenset[str]:
    """The keys one converter claims with `prop` (`state`, `on_time`, `off_wait_time`): a newer
    `/set` of one of them takes the others of an older waiting `/set` along."""
    converter = _set_converter(definition, prop)
    if converter is None or converter.convert_message is None:
        return frozenset({prop})
    return converter.keys
