"""A received ZCL frame decoded into JSON-able values, with zigpy's ZCL definitions.

`decode(received)` gives the addressing (endpoint, source endpoint, profile, cluster, broadcast),
the raw payload as hex, the ZCL header (frame type, direction, manufacturer code, the
disable-default-response bit, transaction number, command id and name) and the body: for Read,
Write, Configure Reporting and Report Attributes the `attributes` (id, name, type, value; the
reporting settings), for other commands their `fields`. A frame that cannot be decoded keeps
what could be read and says why in `error`. Values: numbers, `true`/`false`, text, bytes and keys
as hex, addresses as `0x…`, composite values as lists and objects.
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any, Final

import zigpy.types as t
from zigpy.zcl import foundation

from z2m_qbkg40lm.sim.frame_log import ReceivedFrame
from z2m_qbkg40lm.sim.zcl_names import attribute_name, cluster_command, cluster_name

Json = dict[str, Any]


def decode(received: ReceivedFrame) -> Json:
    """A received frame as JSON: addressing, header, body; `error` where decoding stopped."""
    frame = received.frame
    moment = datetime.datetime.fromtimestamp(received.received_at, datetime.UTC)
    result: Json = {
        "received_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "endpoint": frame.dst_endpoint,
        "source_endpoint": frame.src_endpoint,
        "profile": frame.profile_id,
        "cluster": frame.cluster_id,
        "cluster_name": cluster_name(frame.cluster_id),
        "broadcast": received.broadcast,
        "raw": frame.payload.hex(),
    }
    try:
        hdr, body = foundation.ZCLHeader.deserialize(frame.payload)
    except ValueError as exc:
        result["error"] = f"not a ZCL frame: {exc}"
        return result
    control = hdr.frame_control
    manufacturer = None if hdr.manufacturer is None else int(hdr.manufacturer)
    command_id = int(hdr.command_id)
    command, unknown = _command(frame.cluster_id, hdr)
    result.update(
        frame_type="global" if control.is_general else "cluster" if control.is_cluster else "reserved",
        direction="client_to_server"
        if hdr.direction == foundation.Direction.Client_to_Server
        else "server_to_client",
        manufacturer_code=manufacturer,
        disable_default_response=bool(control.disable_default_response),
        tsn=int(hdr.tsn),
        command=command_id,
        command_name=None if command is None else _command_name(command, control.is_general),
    )
    if command is None:
        result["error"] = unknown
        return result
    args: Any
    try:
        args, rest = command.schema.deserialize(body)
        describe = _ATTRIBUTE_COMMANDS.get(command_id) if control.is_general else None
        if describe is None:
            result["fields"] = _fields(args)
        else:
            records = getattr(args, command.schema.fields[0].name)
            result["attributes"] = [describe(frame.cluster_id, manufacturer, record) for record in records]
    except (ValueError, KeyError, IndexError) as exc:
        result["error"] = f"cannot decode the command's payload {body.hex() or '(empty)'}: {exc}"
        return result
    if rest:
        result["trailing"] = rest.hex()  # after the command: zigpy ignores it too
    return result


def _command(cluster_id: int, hdr: foundation.ZCLHeader) -> tuple[foundation.ZCLCommandDef | None, str]:
    """zigpy's definition of the frame's command, or None and why there is none."""
    command_id = int(hdr.command_id)
    control = hdr.frame_control
    if control.is_general:
        general = foundation.GENERAL_COMMANDS.get(foundation.GeneralCommand(command_id))
        return general, f"no foundation command 0x{command_id:02X}"
    if not control.is_cluster:
        return None, f"reserved frame type {int(control.frame_type)}"
    if hdr.manufacturer is not None:
        return None, "a manufacturer-specific cluster command: its payload has no public definition"
    specific = cluster_command(cluster_id, hdr.direction, command_id)
    return specific, f"zigpy defines no command 0x{command_id:02X} of cluster 0x{cluster_id:04X}"


def _command_name(command: foundation.ZCLCommandDef, general: bool) -> str:
    # zigpy spells foundation commands Read_Attributes, cluster commands on_with_timed_off.
    name = str(command.name)
    return name.lower() if general else name


# --- attribute records ---------------------------------------------------------------------------


def _named(cluster_id: int, manufacturer: int | None, attribute_id: int) -> Json:
    return {"id": attribute_id, "name": attribute_name(cluster_id, manufacturer, attribute_id)}


def _read_record(cluster_id: int, manufacturer: int | None, record: Any) -> Json:
    return _named(cluster_id, manufacturer, int(record))


def _attribute_record(cluster_id: int, manufacturer: int | None, record: Any) -> Json:
    typed: foundation.TypeValue = record.value
    return {
        **_named(cluster_id, manufacturer, int(record.attrid)),
        "type": int(typed.type),
        "value": to_json(typed.value),
    }


def _reporting_record(cluster_id: int, manufacturer: int | None, record: Any) -> Json:
    config: foundation.AttributeReportingConfig = record
    described = _named(cluster_id, manufacturer, int(config.attrid))
    if config.direction == foundation.ReportingDirection.ReceiveReports:
        described.update(direction="receive", timeout=int(config.timeout))
        return described
    change = getattr(config, "reportable_change", None)
    described.update(
        direction="send",
        type=int(config.datatype),
        min_interval=int(config.min_interval),
        max_interval=int(config.max_interval),
        reportable_change=None if change is None else to_json(change),
    )
    return described


_ATTRIBUTE_COMMANDS: Final[dict[int, Callable[[int, int | None, Any], Json]]] = {
    foundation.GeneralCommand.Read_Attributes: _read_record,
    foundation.GeneralCommand.Write_Attributes: _attribute_record,
    foundation.GeneralCommand.Write_Attributes_Undivided: _attribute_record,
    foundation.GeneralCommand.Write_Attributes_No_Response: _attribute_record,
    foundation.GeneralCommand.Configure_Reporting: _reporting_record,
    foundation.GeneralCommand.Report_Attributes: _attribute_record,
}


# --- values --------------------------------------------------------------------------------------


def _fields(args: Any) -> Json:
    return {name: to_json(value) for name, value in args.as_dict().items()}


def to_json(value: Any) -> Any:
    """A zigpy value as JSON: numbers, booleans, text, hex for bytes, lists and objects."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, t.Bool):
        # 0 and 1 are the booleans; anything else is an odd byte a device sent, shown as it was.
        return bool(value) if int(value) in (0, 1) else int(value)
    if isinstance(value, t.EUI64):
        return "0x" + "".join(f"{octet:02x}" for octet in reversed(value))
    if isinstance(value, t.FixedList) and value._item_type is t.uint8_t:
        # Keys, and the general data types (data8-data64), which zigpy reads as lists of bytes.
        return bytes(value.serialize()).hex()
    if isinstance(value, int):  # zigpy's enums and bitmaps are ints too
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or infinity
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, foundation.TypeValue):  # arrays, sets and bags too, with their element type
        return {"type": int(value.type), "value": to_json(value.value)}
    if isinstance(value, t.Struct):
        return _fields(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(item) for item in value]
    if isinstance(value, t.NoData | foundation.Unknown):
        return None
    if hasattr(value, "__dict__"):  # zigpy's plain record classes (reporting configurations)
        return {name: to_json(item) for name, item in vars(value).items() if not name.startswith("_")}
    return str(value)
