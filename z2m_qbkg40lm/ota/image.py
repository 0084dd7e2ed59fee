"""Zigbee OTA upgrade files (ZCL specification, section 11.4): header parsing, checks, a builder.

Pure: bytes in, values or `OtaImageError` out. A file is usable only when everything its header
says holds for the bytes: the magic number, the header version, a header length that matches the
optional fields its field control announces, a total size equal to the file's size, and
sub-elements (tag, length, data) that fill the rest exactly, with an upgrade image among them, and
an Image Integrity Code element, when there is one, last and holding the AES-MMO hash of all that
precedes it. The builder writes such files, for tests and demonstrations.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

MAGIC = 0x0BEEF11E
HEADER_VERSION = 0x0100
"""The only header version the specification defines (major 1, minor 0)."""
BASE_HEADER_LENGTH = 56
"""The header without its optional fields."""
HEADER_STRING_LENGTH = 32
ZIGBEE_PRO_STACK = 0x0002

FIELD_SECURITY_CREDENTIAL = 0x0001
FIELD_DEVICE_SPECIFIC = 0x0002
FIELD_HARDWARE_VERSIONS = 0x0004
_KNOWN_FIELDS = FIELD_SECURITY_CREDENTIAL | FIELD_DEVICE_SPECIFIC | FIELD_HARDWARE_VERSIONS

TAG_UPGRADE_IMAGE = 0x0000
TAG_IMAGE_INTEGRITY_CODE = 0x0003
INTEGRITY_CODE_LENGTH = 16
SUB_ELEMENT_HEADER_LENGTH = 6
"""Tag id (2 bytes) and length (4 bytes) before each sub-element's data."""

_BASE = struct.Struct("<IHHHHHIH32sI")


class OtaImageError(ValueError):
    """Bytes that are not a usable OTA upgrade file; the message says what is wrong."""


@dataclass(frozen=True)
class OtaHeader:
    """The OTA header of an upgrade file."""

    header_version: int
    header_length: int
    field_control: int
    manufacturer_code: int
    image_type: int
    file_version: int
    stack_version: int
    header_string: str
    total_size: int
    """The whole file, header included, as the header states it."""
    security_credential_version: int | None = None
    destination: str | None = None
    """For a device-specific file: the IEEE address ("0x…") of the only device it is for."""
    min_hardware_version: int | None = None
    max_hardware_version: int | None = None

    def describe(self) -> str:
        """A short human description, e.g. `manufacturer 0x115F, image type 0x1888, version 29`."""
        return (
            f"manufacturer 0x{self.manufacturer_code:04X}, image type 0x{self.image_type:04X}, "
            f"version {self.file_version}"
        )

    def fits_hardware(self, hardware_version: int | None) -> bool:
        """True when the file does not limit hardware versions, or `hardware_version` is in range."""
        if self.min_hardware_version is None and self.max_hardware_version is None:
            return True
        if hardware_version is None:
            return False
        low = self.min_hardware_version if self.min_hardware_version is not None else 0
        high = self.max_hardware_version if self.max_hardware_version is not None else 0xFFFF
        return low <= hardware_version <= high


@dataclass(frozen=True)
class SubElement:
    """One sub-element: where its data starts in the file, and how long it is."""

    tag: int
    offset: int
    length: int


def header_length_for(field_control: int) -> int:
    """The header length the optional fields announced by a field control add up to."""
    length = BASE_HEADER_LENGTH
    if field_control & FIELD_SECURITY_CREDENTIAL:
        length += 1
    if field_control & FIELD_DEVICE_SPECIFIC:
        length += 8
    if field_control & FIELD_HARDWARE_VERSIONS:
        length += 4
    return length


def _header_string(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("utf-8", errors="replace")


def parse_header(data: bytes) -> OtaHeader:
    """The OTA header at the start of `data`; OtaImageError when it is not one or is inconsistent."""
    if len(data) < 4 or int.from_bytes(data[:4], "little") != MAGIC:
        # What the file does start with is not said: an error must not show a file's content.
        raise OtaImageError("not a Zigbee OTA file (it does not start with the magic number 0x0BEEF11E)")
    if len(data) < BASE_HEADER_LENGTH:
        raise OtaImageError(
            f"truncated: {len(data)} bytes, shorter than an OTA header ({BASE_HEADER_LENGTH})"
        )
    (
        _magic,
        header_version,
        header_length,
        field_control,
        manufacturer_code,
        image_type,
        file_version,
        stack_version,
        header_string,
        total_size,
    ) = _BASE.unpack_from(data)
    if header_version != HEADER_VERSION:
        raise OtaImageError(
            f"unsupported OTA header version 0x{header_version:04X} (only 0x{HEADER_VERSION:04X} exists)"
        )
    if field_control & ~_KNOWN_FIELDS:
        raise OtaImageError(f"unknown bits in the header field control 0x{field_control:04X}")
    expected = header_length_for(field_control)
    if header_length != expected:
        raise OtaImageError(
            f"header length {header_length} does not match its field control 0x{field_control:04X} "
            f"(which makes {expected} bytes)"
        )
    if len(data) < header_length:
        raise OtaImageError(f"truncated: {len(data)} bytes, shorter than its {header_length}-byte header")
    offset = BASE_HEADER_LENGTH
    security: int | None = None
    destination: str | None = None
    low: int | None = None
    high: int | None = None
    if field_control & FIELD_SECURITY_CREDENTIAL:
        security = data[offset]
        offset += 1
    if field_control & FIELD_DEVICE_SPECIFIC:
        destination = "0x" + data[offset : offset + 8][::-1].hex()
        offset += 8
    if field_control & FIELD_HARDWARE_VERSIONS:
        low, high = struct.unpack_from("<HH", data, offset)
        if low > high:
            raise OtaImageError(f"minimum hardware version {low} is above the maximum {high}")
    return OtaHeader(
        header_version=header_version,
        header_length=header_length,
        field_control=field_control,
        manufacturer_code=manufacturer_code,
        image_type=image_type,
        file_version=file_version,
        stack_version=stack_version,
        header_string=_header_string(header_string),
        total_size=total_size,
        security_credential_version=security,
        destination=destination,
        min_hardware_version=low,
        max_hardware_version=high,
    )


def sub_elements(data: bytes, header: OtaHeader) -> list[SubElement]:
    """The sub-elements after the header; OtaImageError unless they fill the file exactly."""
    elements: list[SubElement] = []
    offset = header.header_length
    while offset < len(data):
        remaining = len(data) - offset
        if remaining < SUB_ELEMENT_HEADER_LENGTH:
            raise OtaImageError(f"{remaining} stray bytes at offset {offset}, too short for a sub-element")
        tag, length = struct.unpack_from("<HI", data, offset)
        start = offset + SUB_ELEMENT_HEADER_LENGTH
        if length > len(data) - start:
            raise OtaImageError(
                f"sub-element 0x{tag:04X} at offset {offset} claims {length} bytes "
                f"but only {len(data) - start} remain (truncated or corrupt)"
            )
        elements.append(SubElement(tag=tag, offset=start, length=length))
        offset = start + length
    if not elements:
        raise OtaImageError("no firmware after the header (no sub-element)")
    return elements


def validate_image(data: bytes) -> OtaHeader:
    """Check a whole upgrade file and return its header; OtaImageError says what is wrong."""
    header = parse_header(data)
    if header.total_size != len(data):
        problem = "truncated" if len(data) < header.total_size else "has extra bytes"
        raise OtaImageError(f"{problem}: the header says {header.total_size} bytes, the file has {len(data)}")
    elements = sub_elements(data, header)
    if not any(element.tag == TAG_UPGRADE_IMAGE for element in elements):
        raise OtaImageError("no upgrade image sub-element (tag 0x0000)")
    for number, element in enumerate(elements):
        if element.tag != TAG_IMAGE_INTEGRITY_CODE:
            continue
        if number != len(elements) - 1:
            raise OtaImageError("the image integrity code (tag 0x0003) is not the last sub-element")
        if element.length != INTEGRITY_CODE_LENGTH:
            raise OtaImageError(f"the image integrity code is {element.length} bytes, not 16")
        covered = element.offset - SUB_ELEMENT_HEADER_LENGTH
        if data[element.offset :] != integrity_code(data[:covered]):
            raise OtaImageError("the image integrity code does not match the content (corrupt file)")
    return header


def integrity_code(data: bytes) -> bytes:
    """The AES-MMO hash the Image Integrity Code sub-element carries (of everything before it)."""
    from zigpy.util import aes_mmo_hash  # zigpy's implementation (with `cryptography`'s AES)

    return bytes(aes_mmo_hash(data))


def build_image(
    *,
    manufacturer_code: int,
    image_type: int,
    file_version: int,
    payload: bytes,
    header_string: str = "",
    stack_version: int = ZIGBEE_PRO_STACK,
    hardware_versions: tuple[int, int] | None = None,
    destination: str | None = None,
    security_credential_version: int | None = None,
    extra_elements: Iterable[tuple[int, bytes]] = (),
    with_integrity_code: bool = False,
) -> bytes:
    """A valid OTA upgrade file: the header, `payload` as the upgrade image sub-element, then any
    extra (tag, data) sub-elements, and with `with_integrity_code` the Image Integrity Code last."""
    raw_string = header_string.encode("utf-8")
    if len(raw_string) > HEADER_STRING_LENGTH:
        raise ValueError(f"header string is {len(raw_string)} bytes; at most {HEADER_STRING_LENGTH}")
    field_control = 0
    optional = b""
    if security_credential_version is not None:
        field_control |= FIELD_SECURITY_CREDENTIAL
        optional += bytes([security_credential_version])
    if destination is not None:
        field_control |= FIELD_DEVICE_SPECIFIC
        optional += bytes.fromhex(destination.removeprefix("0x").replace(":", ""))[::-1]
    if hardware_versions is not None:
        field_control |= FIELD_HARDWARE_VERSIONS
        optional += struct.pack("<HH", *hardware_versions)
    elements = b"".join(
        struct.pack("<HI", tag, len(data)) + data
        for tag, data in [(TAG_UPGRADE_IMAGE, payload), *extra_elements]
    )
    header_length = header_length_for(field_control)
    total = header_length + len(elements)
    if with_integrity_code:
        total += SUB_ELEMENT_HEADER_LENGTH + INTEGRITY_CODE_LENGTH
    base = _BASE.pack(
        MAGIC,
        HEADER_VERSION,
        header_length,
        field_control,
        manufacturer_code,
        image_type,
        file_version,
        stack_version,
        raw_string.ljust(HEADER_STRING_LENGTH, b"\x00"),
        total,
    )
    image = base + optional + elements
    if with_integrity_code:
        image += struct.pack("<HI", TAG_IMAGE_INTEGRITY_CODE, INTEGRITY_CODE_LENGTH)
        image += integrity_code(image[: len(image) - SUB_ELEMENT_HEADER_LENGTH])
    return image
