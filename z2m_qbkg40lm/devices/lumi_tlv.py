"""The Lumi TLV struct carried by the heartbeat (0xFCC0 attribute 0x00F7).

A body is a run of items `[index: 1 byte][ZCL type id: 1 byte][value]`, the value sized and encoded
as that ZCL type (little-endian; strings with a length prefix). Decoding never raises on bytes:
it stops at the first thing it cannot read and says why, keeping the items before it, because a
heartbeat with a new or mangled item still carries a usable temperature and relay state.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

logger = logging.getLogger(__name__)

TlvValue = int | bool | bytes | float | str
"""One decoded item: bool, int (integers, bitmaps, enums, general data), float, bytes or str."""


class TlvError(ValueError):
    """A TLV body that cannot be fully decoded (strict mode) or a value that cannot be encoded."""


_Kind = Literal["bool", "unsigned", "signed", "float", "octets"]

# Fixed-size ZCL types: id -> (size in bytes, how to read it). The standard ZCL sizes, so that a
# type the switch does not send today still leaves the items after it readable.
_FIXED: dict[int, tuple[int, _Kind]] = {
    **{0x08 + n: (n + 1, "unsigned") for n in range(8)},  # data8 .. data64
    0x10: (1, "bool"),
    **{0x18 + n: (n + 1, "unsigned") for n in range(8)},  # map8 .. map64
    **{0x20 + n: (n + 1, "unsigned") for n in range(8)},  # uint8 .. uint64
    **{0x28 + n: (n + 1, "signed") for n in range(8)},  # int8 .. int64
    0x30: (1, "unsigned"),  # enum8
    0x31: (2, "unsigned"),  # enum16
    0x38: (2, "float"),  # semi-precision
    0x39: (4, "float"),  # single
    0x3A: (8, "float"),  # double
    0xE0: (4, "unsigned"),  # time of day
    0xE1: (4, "unsigned"),  # date
    0xE2: (4, "unsigned"),  # UTC time
    0xE8: (2, "unsigned"),  # cluster id
    0xE9: (2, "unsigned"),  # attribute id
    0xEA: (4, "unsigned"),  # BACnet OID
    0xF0: (8, "unsigned"),  # IEEE address
    0xF1: (16, "octets"),  # 128-bit security key
}

_FLOAT_FORMATS = {2: "<e", 4: "<f", 8: "<d"}

OCTET_STRING = 0x41
CHAR_STRING = 0x42
LONG_OCTET_STRING = 0x43
LONG_CHAR_STRING = 0x44

# String type id -> size of its length prefix.
_STRINGS: dict[int, int] = {OCTET_STRING: 1, CHAR_STRING: 1, LONG_OCTET_STRING: 2, LONG_CHAR_STRING: 2}


@dataclass(frozen=True)
class TlvDecoded:
    """The items decoded from a body, and why decoding stopped early (None when it did not)."""

    items: dict[int, TlvValue] = field(default_factory=dict)
    problem: str | None = None

    @property
    def complete(self) -> bool:
        """True when the whole body was decoded."""
        return self.problem is None


def _read_fixed(data: bytes, kind: _Kind) -> TlvValue:
    if kind == "bool":
        # ZCL: 0 false, 1 true, 0xFF invalid; only a real 1 counts as true.
        return data[0] == 1
    if kind == "float":
        value: float = struct.unpack(_FLOAT_FORMATS[len(data)], data)[0]
        return value
    if kind == "octets":
        return bytes(data)
    return int.from_bytes(data, "little", signed=kind == "signed")


def decode_tlv(body: bytes) -> TlvDecoded:
    """Decode a TLV body as far as possible; never raises on bytes."""
    items: dict[int, TlvValue] = {}
    pos = 0
    end = len(body)
    while pos < end:
        # Lumi firmware sometimes appends one stray 0x00 after the last item.
        if pos == end - 1 and body[pos] == 0x00:
            break
        if end - pos < 2:
            return TlvDecoded(items, f"truncated item at offset {pos}: index {body[pos]} without a type")
        index, type_id = body[pos], body[pos + 1]
        start = pos + 2
        if type_id in _FIXED:
            size, kind = _FIXED[type_id]
            if end - start < size:
                return TlvDecoded(
                    items,
                    f"truncated item {index} at offset {pos}: type 0x{type_id:02X} needs {size} byte(s), "
                    f"{end - start} left",
                )
            items[index] = _read_fixed(body[start : start + size], kind)
            pos = start + size
        elif type_id in _STRINGS:
            prefix = _STRINGS[type_id]
            if end - start < prefix:
                return TlvDecoded(items, f"truncated item {index} at offset {pos}: string length missing")
            length = int.from_bytes(body[start : start + prefix], "little")
            start += prefix
            # An all-ones length is ZCL's "invalid string": no data follows.
            if length == (1 << (8 * prefix)) - 1:
                length = 0
            if end - start < length:
                return TlvDecoded(
                    items,
                    f"truncated item {index} at offset {pos}: string of {length} byte(s), {end - start} left",
                )
            raw = body[start : start + length]
            is_text = type_id in (CHAR_STRING, LONG_CHAR_STRING)
            items[index] = raw.decode("utf-8", errors="replace") if is_text else bytes(raw)
            pos = start + length
        else:
            # No way to know how long an unknown type is, so nothing after it can be trusted.
            return TlvDecoded(items, f"unknown ZCL type 0x{type_id:02X} for item {index} at offset {pos}")
    return TlvDecoded(items)


def parse_tlv(body: bytes, *, strict: bool = False) -> dict[int, TlvValue]:
    """Decode a TLV body to index -> value; a partial body is logged (or raises TlvError if strict)."""
    decoded = decode_tlv(body)
    if decoded.problem is not None:
        if strict:
            raise TlvError(decoded.problem)
        logger.warning("Lumi TLV: %s; keeping the %d item(s) before it", decoded.problem, len(decoded.items))
    return decoded.items


# --- Encoding (used by the simulated switch to build heartbeats) ----------------------------------


def _encode_fixed(index: int, type_id: int, value: TlvValue) -> bytes:
    size, kind = _FIXED[type_id]
    if kind == "bool":
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise TlvError(f"item {index}: bool needs True/False or 0/1, got {value!r}")
        return bytes([int(value)])
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TlvError(f"item {index}: type 0x{type_id:02X} needs a number, got {value!r}")
        try:
            return struct.pack(_FLOAT_FORMATS[size], value)
        except OverflowError as exc:
            raise TlvError(f"item {index}: {value!r} does not fit type 0x{type_id:02X}") from exc
    if kind == "octets":
        if not isinstance(value, bytes) or len(value) != size:
            raise TlvError(f"item {index}: type 0x{type_id:02X} needs {size} bytes, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TlvError(f"item {index}: type 0x{type_id:02X} needs an int, got {value!r}")
    try:
        return value.to_bytes(size, "little", signed=kind == "signed")
    except OverflowError as exc:
        raise TlvError(f"item {index}: {value} does not fit type 0x{type_id:02X}") from exc


def _encode_string(index: int, type_id: int, value: TlvValue) -> bytes:
    prefix = _STRINGS[type_id]
    if isinstance(value, str):
        raw = value.encode("utf-8")
    elif isinstance(value, bytes):
        raw = value
    else:
        raise TlvError(f"item {index}: type 0x{type_id:02X} needs bytes or str, got {value!r}")
    # The all-ones length means "invalid string", so the longest real string is one shorter.
    if len(raw) >= (1 << (8 * prefix)) - 1:
        raise TlvError(f"item {index}: string of {len(raw)} bytes is too long for type 0x{type_id:02X}")
    return len(raw).to_bytes(prefix, "little") + raw


def encode_tlv(items: Iterable[tuple[int, int, TlvValue]]) -> bytes:
    """Encode (index, ZCL type id, value) items into a TLV body; raises TlvError on a bad item."""
    out = bytearray()
    for index, type_id, value in items:
        if not 0 <= index <= 0xFF:
            raise TlvError(f"index {index} does not fit one byte")
        out += bytes([index, type_id])
        if type_id in _FIXED:
            out += _encode_fixed(index, type_id, value)
        elif type_id in _STRINGS:
            out += _encode_string(index, type_id, value)
        else:
            raise TlvError(f"item {index}: unsupported ZCL type 0x{type_id:02X}")
    return bytes(out)
