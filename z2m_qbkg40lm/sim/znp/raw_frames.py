"""MT frames the emulator builds byte by byte, where zigpy-znp's command classes do not fit.

zigpy-znp describes the commands it uses; zigbee-herdsman uses a few more (the ZDO-subsystem
requests and their direct callbacks, ZDO_EXT_NWK_INFO, the group commands), and for some
zigpy-znp's description differs from what Z-Stack sends (ZDO_EXT_NWK_INFO). Those are answered
with a `RawCommand`: the header and the payload bytes exactly as Z-Stack puts them on the wire.
"""

# zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from dataclasses import dataclass

import zigpy_znp.types as t
from zigpy_znp.frames import GeneralFrame


@dataclass(frozen=True)
class RawCommand:
    """One MT frame: type, subsystem, command id and payload bytes."""

    type: t.CommandType
    subsystem: t.Subsystem
    command_id: int
    data: bytes

    @property
    def header(self) -> t.CommandHeader:
        """The two MT command bytes."""
        return t.CommandHeader(0, id=self.command_id, subsystem=self.subsystem, type=self.type)

    def to_frame(self, *, align: bool = False) -> GeneralFrame:
        """The frame to send (`align` is for zigpy-znp's structs; raw bytes have none)."""
        return GeneralFrame(self.header, t.Bytes(self.data))

    def __str__(self) -> str:
        return f"{self.subsystem.name} {self.type.name} 0x{self.command_id:02X}: {self.data.hex(' ')}"


def srsp(subsystem: t.Subsystem, command_id: int, data: bytes) -> RawCommand:
    """The synchronous answer to a request."""
    return RawCommand(t.CommandType.SRSP, subsystem, command_id, data)


def areq(subsystem: t.Subsystem, command_id: int, data: bytes) -> RawCommand:
    """An asynchronous callback."""
    return RawCommand(t.CommandType.AREQ, subsystem, command_id, data)


def status_srsp(subsystem: t.Subsystem, command_id: int, status: int = 0) -> RawCommand:
    """The one-byte status answer most requests get (0: SUCCESS)."""
    return srsp(subsystem, command_id, bytes([status]))
