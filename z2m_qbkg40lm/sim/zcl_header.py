"""The ZCL frame header as the simulated switch reads and writes it: a few bytes, done by hand.

zigpy's `foundation.ZCLHeader` is a general `t.Struct` whose construction binds a signature and
converts every field; a simulated switch parses one header and builds one or two for every frame
it answers, which made the header the largest part of the simulator's share of a `/set`. The
layout (ZCL specification §2.4.1): frame control, the manufacturer code when its bit is set
(little endian), the transaction sequence number, the command id.
"""

from __future__ import annotations

from dataclasses import dataclass

_FRAME_TYPE = 0b0000_0011
_GLOBAL = 0b00
_CLUSTER = 0b01
_MANUFACTURER_SPECIFIC = 0b0000_0100
_SERVER_TO_CLIENT = 0b0000_1000
_DISABLE_DEFAULT_RESPONSE = 0b0001_0000


@dataclass(frozen=True, slots=True)
class ZclHeader:
    """One ZCL header: what the switch needs of a request, and what it writes into an answer."""

    frame_control: int
    manufacturer: int | None
    tsn: int
    command_id: int

    @classmethod
    def parse(cls, payload: bytes) -> tuple[ZclHeader, bytes]:
        """The header at the start of a ZCL frame, and the rest; ValueError when it is cut short."""
        frame_control = payload[0] if payload else 0
        manufacturer: int | None = None
        at = 1
        if frame_control & _MANUFACTURER_SPECIFIC:
            manufacturer = int.from_bytes(payload[1:3], "little")
            at = 3
        if len(payload) < at + 2:
            raise ValueError(f"a ZCL header needs {at + 2} bytes, the frame has {len(payload)}")
        return cls(frame_control, manufacturer, payload[at], payload[at + 1]), payload[at + 2 :]

    @property
    def is_general(self) -> bool:
        """A global (foundation) command, such as Read Attributes or Default Response."""
        return self.frame_control & _FRAME_TYPE == _GLOBAL

    @property
    def is_manufacturer_specific(self) -> bool:
        """The manufacturer-specific bit of the frame control."""
        return bool(self.frame_control & _MANUFACTURER_SPECIFIC)

    @property
    def client_to_server(self) -> bool:
        """Sent by a cluster's client side (the coordinator commanding the switch's server)."""
        return not self.frame_control & _SERVER_TO_CLIENT

    @property
    def disable_default_response(self) -> bool:
        """The sender asked not to get a Default Response on success."""
        return bool(self.frame_control & _DISABLE_DEFAULT_RESPONSE)


def header_bytes(
    *,
    general: bool,
    server_to_client: bool,
    manufacturer: int | None,
    tsn: int,
    command_id: int,
) -> bytes:
    """A header the switch sends: Default Response always disabled, reserved bits clear."""
    frame_control = (_GLOBAL if general else _CLUSTER) | _DISABLE_DEFAULT_RESPONSE
    if server_to_client:
        frame_control |= _SERVER_TO_CLIENT
    if manufacturer is None:
        return bytes((frame_control, tsn & 0xFF, command_id & 0xFF))
    frame_control |= _MANUFACTURER_SPECIFIC
    return bytes((frame_control, *manufacturer.to_bytes(2, "little"), tsn & 0xFF, command_id & 0xFF))
