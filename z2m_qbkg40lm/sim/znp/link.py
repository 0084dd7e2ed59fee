"""Z-Stack's framing on the emulated chip's serial line (`sim.serial_line`, TCP or pty).

MT frames (`FE LEN CMD0 CMD1 DATA FCS`, framed with zigpy-znp's `TransportFrame`) go to and from
a `ZStackFirmware`.
"""

# zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from typing import Final

from zigpy_znp.exceptions import InvalidFrame
from zigpy_znp.frames import GeneralFrame, TransportFrame

from z2m_qbkg40lm.sim.serial_line import Line
from z2m_qbkg40lm.sim.znp.firmware import ZStackFirmware

LOGGER = logging.getLogger(__name__)

SOF: Final = 0xFE
MAX_LENGTH: Final = 250


class MtFramer:
    """Cuts a byte stream into MT frames; garbage before a start-of-frame byte is skipped."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[GeneralFrame]:
        """Append bytes; return the complete frames they finish."""
        self._buffer += data
        frames: list[GeneralFrame] = []
        while True:
            start = self._buffer.find(SOF)
            if start < 0:
                self._buffer.clear()
                return frames
            del self._buffer[:start]
            if len(self._buffer) < 2:
                return frames
            length = self._buffer[1]
            if length > MAX_LENGTH:
                del self._buffer[:1]
                continue
            if len(self._buffer) < length + 5:
                return frames
            try:
                frame, _rest = TransportFrame.deserialize(bytes(self._buffer[: length + 5]))
            except InvalidFrame as exc:
                LOGGER.warning("Dropping a corrupt MT frame: %s", exc)
                del self._buffer[:1]
                continue
            del self._buffer[: length + 5]
            frames.append(frame.payload)


class _MtHost:
    """The chip's link to one host: MT frames framed onto the serial line."""

    def __init__(self, line: Line) -> None:
        self._line = line

    def send(self, frame: GeneralFrame) -> None:
        """Frame and write one MT frame."""
        self._line.write(TransportFrame(frame).serialize())

    def close(self) -> None:
        """Cut the line."""
        self._line.close()


class MtPort:
    """The Z-Stack chip behind a serial line (`sim.serial_line`): bytes in, MT frames to the chip."""

    def __init__(self, firmware: ZStackFirmware) -> None:
        self._firmware = firmware
        self._hosts: dict[Line, tuple[_MtHost, MtFramer]] = {}

    def connected(self, line: Line) -> None:
        """A host opened the line."""
        host = _MtHost(line)
        self._hosts[line] = (host, MtFramer())
        self._firmware.attach(host)

    def received(self, line: Line, data: bytes) -> None:
        """Bytes from the host, cut into MT frames for the chip."""
        host = self._hosts.get(line)
        if host is None:
            return
        for frame in host[1].feed(data):
            self._firmware.frame_received(frame)

    def disconnected(self, line: Line) -> None:
        """The host went away; the chip keeps running."""
        host = self._hosts.pop(line, None)
        if host is not None:
            self._firmware.detach(host[0])
