"""`simulation/inject` and `simulation/frames`: what users send through a simulated switch, and
what it received. Shared by the virtual adapter (served by the daemon) and the Z-Stack emulator
(served by `emulate`), which only resolve the switch and carry the frames.

`inject`: the switch sends one ZCL Report Attributes frame built from the request, exactly as it
sends its own reports (server to client, disable-default-response set, its next transaction
number), so the daemon receives and converts it as a report of the device::

    {"id": "0x54ef44…", "endpoint": 1, "cluster": 64704, "manufacturer_code": 4447,
     "attributes": [{"id": 247, "type": 65, "value": "64100103281f…"}]}

`id` (or `ieee`) names the switch; `endpoint` (1-240, default 1), `cluster` (an id, `"0xFCC0"`, or
a name: `on_off`, `manuSpecificLumi`), `manufacturer_code` (optional), and `attributes`: each an
`id` (a number or the attribute's name), a ZCL `type` id (or its name: `uint8`, `octstr`) and a
`value` in the JSON form `zcl_values` describes. Any endpoint and cluster are allowed, also ones the
switch does not have: real devices send from endpoints they never advertised, and seeing what the
daemon does with that is the point (zigpy converts nothing from endpoints and clusters it does not
know of the device, but counts the frame as a sign of life). Everything else is checked: a value
that does not fit its type, an unknown type, a frame longer than one Zigbee frame carries
(`MAX_ZCL_PAYLOAD`), unknown keys.

`frames`: the ZCL frames the switch received since the last call, decoded (zcl_decode.py), oldest
first, with `dropped`, the number of older ones the bounded log lost meanwhile; `cluster` takes
only that cluster's frames and leaves the others for a later call.
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import zigpy.types as t
from zigpy.zcl import foundation

from z2m_qbkg40lm.devices.qbkg40lm import HA_PROFILE
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.switch import COORDINATOR_ENDPOINT, SimulatedSwitch
from z2m_qbkg40lm.sim.zcl_decode import decode
from z2m_qbkg40lm.sim.zcl_names import attribute_by_name, cluster_by_name
from z2m_qbkg40lm.sim.zcl_values import ZCL_TYPES, ZclValueError, encode_value, show, zcl_type

# A 127-byte 802.15.4 frame less the MAC header and checksum (11), the NWK header (8) with its
# security header and MIC (14 + 4), and the APS header (8): what one unfragmented frame carries.
MAX_ZCL_PAYLOAD: Final = 82
MAX_ENDPOINT: Final = 240  # 241-254 are reserved, 255 is the broadcast endpoint
_SWITCH_KEYS: Final = ("id", "ieee")
_INJECT_KEYS: Final = frozenset({*_SWITCH_KEYS, "endpoint", "cluster", "manufacturer_code", "attributes"})
_FRAMES_KEYS: Final = frozenset({*_SWITCH_KEYS, "cluster"})
_ATTRIBUTE_KEYS: Final = frozenset({"id", "type", "value"})
_HEX_KINDS: Final = frozenset({"octets", "fixed_hex", "composite"})
_TYPES_BY_NAME: Final = {kind.name.lower(): kind.type_id for kind in ZCL_TYPES.values()}

Json = dict[str, Any]


class InspectionError(ValueError):
    """A bad `simulation/inject` or `simulation/frames` request; the message names what is wrong."""


@dataclass(frozen=True)
class ReportedAttribute:
    """One attribute of an injected report: id, ZCL type, the value as given and as encoded."""

    attribute_id: int
    zcl_type: int
    value: Any
    encoded: bytes

    def record(self) -> bytes:
        """The attribute record: id, type, value."""
        return self.attribute_id.to_bytes(2, "little") + bytes([self.zcl_type]) + self.encoded


@dataclass(frozen=True)
class AttributeReport:
    """A Report Attributes frame to send: where from, and what."""

    endpoint: int
    cluster_id: int
    manufacturer: int | None
    attributes: tuple[ReportedAttribute, ...]

    def payload(self, tsn: int) -> bytes:
        """The ZCL frame, as the switch's own reports are framed."""
        hdr = foundation.ZCLHeader(
            frame_control=foundation.FrameControl(
                frame_type=foundation.FrameType.GLOBAL_COMMAND,
                is_manufacturer_specific=self.manufacturer is not None,
                direction=foundation.Direction.Server_to_Client,
                disable_default_response=1,
                reserved=0,
            ),
            manufacturer=None if self.manufacturer is None else t.uint16_t(self.manufacturer),
            tsn=t.uint8_t(tsn),
            command_id=foundation.GeneralCommand.Report_Attributes,
        )
        return bytes(hdr.serialize()) + b"".join(attribute.record() for attribute in self.attributes)


@dataclass(frozen=True)
class InjectRequest:
    """A parsed `simulation/inject`: the switch's name and the report it is to send."""

    switch: str
    report: AttributeReport


@dataclass(frozen=True)
class FramesRequest:
    """A parsed `simulation/frames`: the switch's name and an optional cluster filter."""

    switch: str
    cluster_id: int | None


# --- requests ------------------------------------------------------------------------------------


def parse_inject(message: Any) -> InjectRequest:
    """Check a `simulation/inject` payload; InspectionError names the first thing wrong."""
    body = _object(message, _INJECT_KEYS, '{"id": …, "cluster": …, "attributes": [{"id", "type", "value"}]}')
    name = _switch(body)
    endpoint = _number(body.get("endpoint", 1), "endpoint", 1, MAX_ENDPOINT)
    if "cluster" not in body:
        raise InspectionError('Invalid payload: cluster is missing (an id such as 6, "0xFCC0", or a name)')
    cluster_id = _cluster(body["cluster"])
    manufacturer_value = body.get("manufacturer_code")
    manufacturer = (
        None if manufacturer_value is None else _number(manufacturer_value, "manufacturer_code", 0, 0xFFFF)
    )
    items = body.get("attributes")
    if not isinstance(items, list) or not items:
        raise InspectionError(
            'Invalid payload: attributes must be a non-empty list of {"id": …, "type": …, "value": …}'
        )
    attributes = tuple(
        _attribute(item, f"attributes[{index}]", cluster_id, manufacturer) for index, item in enumerate(items)
    )
    report = AttributeReport(endpoint, cluster_id, manufacturer, attributes)
    size = len(report.payload(0))
    if size > MAX_ZCL_PAYLOAD:
        raise InspectionError(
            f"Invalid payload: the report is {size} bytes, one Zigbee frame carries at most"
            f" {MAX_ZCL_PAYLOAD} bytes of ZCL (header and attribute records): send fewer or shorter values"
        )
    return InjectRequest(name, report)


def parse_frames(message: Any) -> FramesRequest:
    """Check a `simulation/frames` payload; InspectionError names the first thing wrong."""
    body = _object(message, _FRAMES_KEYS, '{"id": …, "cluster": … (optional)}')
    cluster = body.get("cluster")
    return FramesRequest(_switch(body), None if cluster is None else _cluster(cluster))


# --- acting on a switch ---------------------------------------------------------------------------


def inject(switch: SimulatedSwitch, report: AttributeReport) -> tuple[list[ApsFrame], Json]:
    """The frames that leave the switch for an injected report (none while it is silent or gone)
    and the answer's data."""
    tsn = switch.next_tsn()
    payload = report.payload(tsn)
    frame = ApsFrame(report.endpoint, COORDINATOR_ENDPOINT, HA_PROFILE, report.cluster_id, payload)
    sent = switch.responsive and not switch.left
    answer = {
        "endpoint": report.endpoint,
        "cluster": report.cluster_id,
        "manufacturer_code": report.manufacturer,
        "attributes": [
            {"id": each.attribute_id, "type": each.zcl_type, "value": each.value}
            for each in report.attributes
        ],
        "tsn": tsn,
        "frame": payload.hex(),
        "sent": sent,
    }
    return ([frame] if sent else []), answer


def take_frames(switch: SimulatedSwitch, cluster_id: int | None) -> Json:
    """The answer's data: the switch's received frames since the last take, decoded."""
    taken = switch.received.take(cluster_id)
    return {
        "cluster": cluster_id,
        "frames": [decode(each) for each in taken.frames],
        "dropped": taken.dropped,
    }


# --- parsing helpers -------------------------------------------------------------------------------


def _object(message: Any, keys: frozenset[str], shape: str) -> Mapping[str, Any]:
    if not isinstance(message, dict):
        raise InspectionError(f"Invalid payload: expected a JSON object {shape}")
    unknown = sorted(set(message) - keys - {"transaction"})
    if unknown:
        raise InspectionError(
            f"Invalid payload: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(keys))})"
        )
    return message


def _switch(body: Mapping[str, Any]) -> str:
    given = [body[key] for key in _SWITCH_KEYS if key in body]
    if not given:
        raise InspectionError(
            'Invalid payload: the switch is missing: give {"id": "<IEEE address or friendly name>"}'
        )
    if any(not isinstance(name, str) or not name for name in given):
        raise InspectionError('Invalid payload: id must be a text: "<IEEE address or friendly name>"')
    if len(set(given)) > 1:
        raise InspectionError("Invalid payload: id and ieee name different switches: give one")
    name: str = given[0]
    return name


def _number(value: Any, what: str, low: int, high: int) -> int:
    """An integer given as a JSON number or as hex text ("0x115F")."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.lower().startswith("0x"):
        try:
            number = int(value, 16)
        except ValueError:
            number = None
    if number is None or not low <= number <= high:
        raise InspectionError(
            f"Invalid payload: {what} must be a number from {low} to {high} (or hex text such as"
            f' "0x{high:X}"), not {show(value)}'
        )
    return number


def _cluster(value: Any) -> int:
    if isinstance(value, str) and not value.lower().startswith("0x"):
        found = cluster_by_name(value)
        if found is None:
            raise InspectionError(
                f'Invalid payload: unknown cluster name {value!r}: give its id (6, "0xFCC0") or a'
                " name such as basic, on_off, multistate_input, manuSpecificLumi"
            )
        return found
    return _number(value, "cluster", 0, 0xFFFF)


def _attribute(item: Any, where: str, cluster_id: int, manufacturer: int | None) -> ReportedAttribute:
    if not isinstance(item, dict):
        raise InspectionError(f'Invalid payload: {where} must be {{"id": …, "type": …, "value": …}}')
    unknown = sorted(set(item) - _ATTRIBUTE_KEYS)
    if unknown:
        raise InspectionError(
            f"Invalid payload: {where} has unknown key(s) {', '.join(unknown)} (known: id, type, value)"
        )
    if "id" not in item or "type" not in item:
        raise InspectionError(f"Invalid payload: {where} needs an id and a ZCL type")
    identifier = item["id"]
    if isinstance(identifier, str) and not identifier.lower().startswith("0x"):
        found = attribute_by_name(cluster_id, manufacturer, identifier)
        if found is None:
            raise InspectionError(
                f"Invalid payload: {where}.id: cluster 0x{cluster_id:04X} has no attribute named"
                f" {identifier!r}{'' if manufacturer is None else f' for manufacturer 0x{manufacturer:04X}'}:"
                " give its id"
            )
        attribute_id = found
    else:
        attribute_id = _number(identifier, f"{where}.id", 0, 0xFFFF)
    type_id = _type_id(item["type"], f"{where}.type")
    if "value" not in item and zcl_type(type_id).kind != "none":
        raise InspectionError(f"Invalid payload: {where}.value is missing")
    value = item.get("value")
    try:
        encoded = encode_value(type_id, value)
    except ZclValueError as exc:
        raise InspectionError(f"Invalid payload: {where}.value: {exc}") from None
    if isinstance(value, str) and zcl_type(type_id).kind in _HEX_KINDS:
        value = "".join(value.split()).lower()  # echoed as the frames request shows bytes
    return ReportedAttribute(attribute_id, type_id, value, encoded)


def _type_id(value: Any, where: str) -> int:
    if isinstance(value, str) and not value.lower().startswith("0x"):
        found = _TYPES_BY_NAME.get(value.lower())
        if found is None:
            raise InspectionError(
                f"Invalid payload: {where}: unknown ZCL type {value!r}; e.g. bool, uint8, uint16, int8,"
                " enum8, single, octstr, string, or the type id"
            )
        return found
    type_id = _number(value, where, 0, 0xFF)
    try:
        zcl_type(type_id)
    except ZclValueError as exc:
        raise InspectionError(f"Invalid payload: {where}: {exc}") from None
    return type_id
