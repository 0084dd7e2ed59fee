"""ZCL data types as a table, and plain JSON values encoded as the bytes of an attribute record.

`encode_value(type_id, value)` is what a simulated device puts after the type byte of a Report
Attributes record. The JSON form of each kind of type:

- integers (data, bitmap, unsigned, signed, enumeration, UTC time, cluster, attribute and BACnet
  ids): a JSON integer that fits the type's size and sign;
- boolean (0x10): `true`/`false`, or an integer 0-255 for the raw byte (255 is ZCL's invalid
  value), since real devices send odd values and a test may want to see how they are handled;
- floats (semi 0x38, single 0x39, double 0x3A): a JSON number that the precision can hold;
- character strings (0x42, 0x44): text, at most 254 (65534) bytes in UTF-8;
- octet strings (0x41, 0x43), time of day, date, 128-bit key, and the composite array, structure,
  set and bag: hex text of the bytes (for the composites, the encoding that follows the type
  byte: element type, count, elements), spaces allowed;
- EUI-64 (0xF0): `0x` and 16 hex digits, most significant first (`0x54ef441000000001`), or the
  colon form;
- no data (0x00) and unknown (0xFF): `null`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from zigpy.zcl import foundation

Kind = Literal[
    "none", "unsigned", "signed", "bool", "float", "text", "octets", "fixed_hex", "composite", "eui64"
]


class ZclValueError(ValueError):
    """A value that does not fit its ZCL type; the message says what would."""


@dataclass(frozen=True)
class ZclType:
    """One ZCL data type: id, short name (the specification's), the JSON form, and its size.

    `size` is the value's length in bytes for fixed types, the length prefix's for strings, and
    0 for the composites (whose length the encoding itself gives) and the empty types.
    """

    type_id: int
    name: str
    kind: Kind
    size: int

    def __str__(self) -> str:
        return f"{self.name} (0x{self.type_id:02X})"


def _types() -> dict[int, ZclType]:
    table = [
        ZclType(0x00, "nodata", "none", 0),
        ZclType(0x10, "bool", "bool", 1),
        ZclType(0x30, "enum8", "unsigned", 1),
        ZclType(0x31, "enum16", "unsigned", 2),
        ZclType(0x38, "semi", "float", 2),
        ZclType(0x39, "single", "float", 4),
        ZclType(0x3A, "double", "float", 8),
        ZclType(0x41, "octstr", "octets", 1),
        ZclType(0x42, "string", "text", 1),
        ZclType(0x43, "octstr16", "octets", 2),
        ZclType(0x44, "string16", "text", 2),
        ZclType(0x48, "array", "composite", 0),
        ZclType(0x4C, "struct", "composite", 0),
        ZclType(0x50, "set", "composite", 0),
        ZclType(0x51, "bag", "composite", 0),
        ZclType(0xE0, "ToD", "fixed_hex", 4),
        ZclType(0xE1, "date", "fixed_hex", 4),
        ZclType(0xE2, "UTC", "unsigned", 4),
        ZclType(0xE8, "clusterId", "unsigned", 2),
        ZclType(0xE9, "attribId", "unsigned", 2),
        ZclType(0xEA, "bacOID", "unsigned", 4),
        ZclType(0xF0, "EUI64", "eui64", 8),
        ZclType(0xF1, "key128", "fixed_hex", 16),
        ZclType(0xFF, "unk", "none", 0),
    ]
    for size in range(1, 9):  # 8 to 64 bits
        table.append(ZclType(0x07 + size, f"data{8 * size}", "unsigned", size))
        table.append(ZclType(0x17 + size, f"map{8 * size}", "unsigned", size))
        table.append(ZclType(0x1F + size, f"uint{8 * size}", "unsigned", size))
        table.append(ZclType(0x27 + size, f"int{8 * size}", "signed", size))
    return {each.type_id: each for each in table}


ZCL_TYPES: Final[Mapping[int, ZclType]] = _types()
"""Every data type the ZCL specification (revision 8) defines, by type id."""

_FLOAT_FORMATS: Final = {2: "<e", 4: "<f", 8: "<d"}
_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})*")
_EUI64: Final = re.compile(r"(?:0x)?([0-9a-fA-F]{16})|([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){7})")


def zcl_type(type_id: int) -> ZclType:
    """The ZCL type of an id; ZclValueError for an id the specification does not define."""
    found = ZCL_TYPES.get(type_id)
    if found is None:
        raise ZclValueError(
            f"unknown ZCL type id 0x{type_id:02X} ({type_id}); e.g. 0x10 bool, 0x20 uint8, 0x21 uint16,"
            " 0x28 int8, 0x30 enum8, 0x39 single, 0x41 octstr, 0x42 string"
        )
    return found


def hex_bytes(text: Any, what: str = "value") -> bytes:
    """Bytes from hex text (`"aa10 05"`); ZclValueError naming `what` otherwise."""
    if not isinstance(text, str):
        raise ZclValueError(f'{what} must be hex text such as "aa1005", not {show(text)}')
    compact = "".join(text.split())
    if not _HEX.fullmatch(compact):
        raise ZclValueError(f"{what} must be hex text (pairs of 0-9 a-f), not {show(text)}")
    return bytes.fromhex(compact)


def encode_value(type_id: int, value: Any) -> bytes:
    """The bytes of `value` as ZCL type `type_id` (what follows the type byte in a record)."""
    kind = zcl_type(type_id)
    encoder = _ENCODERS[kind.kind]
    return encoder(kind, value)


def _encode_none(kind: ZclType, value: Any) -> bytes:
    if value is not None:
        raise ZclValueError(f"{kind} carries no value: give null, not {show(value)}")
    return b""


def _integer(kind: ZclType, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ZclValueError(f"{kind} needs an integer from {low} to {high}, not {show(value)}")
    if not low <= value <= high:
        raise ZclValueError(f"{value} does not fit {kind}: expected {low} to {high}")
    return value


def _encode_unsigned(kind: ZclType, value: Any) -> bytes:
    number = _integer(kind, value, 0, (1 << (8 * kind.size)) - 1)
    return number.to_bytes(kind.size, "little")


def _encode_signed(kind: ZclType, value: Any) -> bytes:
    limit = 1 << (8 * kind.size - 1)
    number = _integer(kind, value, -limit, limit - 1)
    return number.to_bytes(kind.size, "little", signed=True)


def _encode_bool(kind: ZclType, value: Any) -> bytes:
    if isinstance(value, bool):
        return bytes([value])
    if isinstance(value, int) and 0 <= value <= 255:
        return bytes([value])
    raise ZclValueError(f"{kind} needs true, false or a raw byte 0-255, not {show(value)}")


def _encode_float(kind: ZclType, value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ZclValueError(f"{kind} needs a number, not {show(value)}")
    try:
        return struct.pack(_FLOAT_FORMATS[kind.size], value)
    except (OverflowError, struct.error):
        raise ZclValueError(f"{value} does not fit {kind}: too large for its precision") from None


def _length_prefixed(kind: ZclType, data: bytes, unit: str) -> bytes:
    limit = (1 << (8 * kind.size)) - 2  # the largest length value means "invalid"
    if len(data) > limit:
        raise ZclValueError(f"{len(data)} {unit} do not fit {kind}: at most {limit}")
    return len(data).to_bytes(kind.size, "little") + data


def _encode_text(kind: ZclType, value: Any) -> bytes:
    if not isinstance(value, str):
        raise ZclValueError(f"{kind} needs text, not {show(value)}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ZclValueError(f"{kind} needs text that UTF-8 can encode (no lone surrogates)") from None
    return _length_prefixed(kind, data, "bytes of UTF-8")


def _encode_octets(kind: ZclType, value: Any) -> bytes:
    return _length_prefixed(kind, hex_bytes(value, f"a {kind.name} value"), "bytes")


def _encode_fixed_hex(kind: ZclType, value: Any) -> bytes:
    data = hex_bytes(value, f"a {kind.name} value")
    if len(data) != kind.size:
        raise ZclValueError(
            f"{kind} needs exactly {kind.size} bytes ({2 * kind.size} hex digits), not {len(data)}"
        )
    return data


def _encode_composite(kind: ZclType, value: Any) -> bytes:
    data = hex_bytes(value, f"a {kind.name} value")
    # zigpy parses what the daemon receives: an encoding it cannot read would drop the whole frame.
    try:
        _parsed, rest = foundation.TypeValue.deserialize(bytes([kind.type_id]) + data)
    except (ValueError, KeyError, IndexError) as exc:
        raise ZclValueError(f"{data.hex()} is not a valid {kind} encoding: {exc}") from None
    if rest:
        raise ZclValueError(f"{data.hex()} is not a valid {kind} encoding: {len(rest)} byte(s) left over")
    return data


def _encode_eui64(kind: ZclType, value: Any) -> bytes:
    match = _EUI64.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ZclValueError(f'{kind} needs an address such as "0x54ef441000000001", not {show(value)}')
    digits = (match.group(1) or match.group(2)).replace(":", "")
    return bytes.fromhex(digits)[::-1]  # least significant byte first on the wire


_ENCODERS: Final = {
    "none": _encode_none,
    "unsigned": _encode_unsigned,
    "signed": _encode_signed,
    "bool": _encode_bool,
    "float": _encode_float,
    "text": _encode_text,
    "octets": _encode_octets,
    "fixed_hex": _encode_fixed_hex,
    "composite": _encode_composite,
    "eui64": _encode_eui64,
}


def show(value: Any) -> str:
    """A JSON value as the user wrote it, shortened."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
