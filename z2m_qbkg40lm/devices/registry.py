"""The known device definitions, and the pure steps the bridge takes with one.

`convert_inbound` turns a received attribute into partial state; `plan_set` and `plan_get` turn a
`/set` or `/get` into ZCL operations, or into a ConversionError whose message says which property
and why, ready for the user.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from z2m_qbkg40lm.devices.definition import (
    AttributeMessage,
    ConversionError,
    DeviceDefinition,
    Options,
    OutboundConvert,
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


def _setter(definition: DeviceDefinition, prop: str) -> OutboundConvert | None:
    for converter in definition.outbound:
        if prop in converter.keys and converter.convert is not None:
            return converter.convert
    return None


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
        for key in sorted(converter.keys):
            names[key] = None
    return list(names)


def settable_properties(definition: DeviceDefinition) -> tuple[str, ...]:
    """Properties a `/set` can change, in expose order."""
    return tuple(p for p in _properties(definition) if _setter(definition, p) is not None)


def readable_properties(definition: DeviceDefinition) -> tuple[str, ...]:
    """Properties a `/get` can refresh, in expose order."""
    return tuple(p for p in _properties(definition) if _reads(definition, p))


def _is_known(definition: DeviceDefinition, prop: str) -> bool:
    return find_feature(definition.exposes, prop) is not None or any(
        prop in converter.keys for converter in definition.outbound
    )


def plan_set(definition: DeviceDefinition, prop: str, value: Any, state: State, options: Options) -> SetPlan:
    """The ZCL operations (and optimistic state) for `/set` of one property; ConversionError if refused."""
    settable = ", ".join(settable_properties(definition))
    convert = _setter(definition, prop)
    if convert is None:
        if _is_known(definition, prop):
            raise ConversionError(
                f"{prop}: read-only on {definition.model}, it cannot be set; settable: {settable}"
            )
        raise ConversionError(f"no such property '{prop}' on {definition.model}; settable: {settable}")
    return convert(prop, value, state, options)


def plan_get(definition: DeviceDefinition, prop: str) -> tuple[ZclOperation, ...]:
    """The ZCL reads for `/get` of one property; ConversionError when unknown or not readable."""
    operations = _reads(definition, prop)
    if operations:
        return operations
    readable = ", ".join(readable_properties(definition))
    if _is_known(definition, prop):
        raise ConversionError(f"{prop}: not readable on {definition.model}; readable: {readable}")
    raise ConversionError(f"no such property '{prop}' on {definition.model}; readable: {readable}")


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
