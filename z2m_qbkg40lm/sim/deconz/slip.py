"""The deCONZ serial protocol's framing: SLIP (RFC 1055) around each frame, a 16-bit checksum last.

Facts from dresden elektronik's serial protocol document as zigpy-deconz's `uart` mirrors it:
a frame travels between two END bytes (0xC0); END and ESC (0xDB) inside it become ESC ESC_END
(0xDC) and ESC ESC_ESC (0xDD). The last two bytes before the closing END are the two's complement
of the sum of the frame's bytes, little-endian. A frame whose checksum does not match, or that is
too short to hold one, is dropped; there is no acknowledgement and no retransmission.
"""

from __future__ import annotations

from typing import Final

END: Final = 0xC0
ESC: Final = 0xDB
ESC_END: Final = 0xDC
ESC_ESC: Final = 0xDD
CHECKSUM_SIZE: Final = 2
MIN_LENGTH: Final = 4
"""The fewest bytes, checksum included, a frame can have (shorter ones are dropped as noise)."""


def checksum(frame: bytes) -> bytes:
    """The two checksum bytes of a frame: minus the sum of its bytes, 16 bits, little-endian."""
    return ((-sum(frame)) & 0xFFFF).to_bytes(CHECKSUM_SIZE, "little")


def escape(data: bytes) -> bytes:
    """SLIP byte stuffing."""
    return data.replace(bytes([ESC]), bytes([ESC, ESC_ESC])).replace(bytes([END]), bytes([ESC, ESC_END]))


def unescape(data: bytes) -> bytes | None:
    """SLIP byte stuffing undone; None when an ESC is not followed by ESC_END or ESC_ESC."""
    out = bytearray()
    escaped = False
    for byte in data:
        if escaped:
            if byte == ESC_END:
                out.append(END)
            elif byte == ESC_ESC:
                out.append(ESC)
            else:
                return None
            escaped = False
        elif byte == ESC:
            escaped = True
        else:
            out.append(byte)
    return None if escaped else bytes(out)


def encode(frame: bytes) -> bytes:
    """A frame as it goes on the line: checksum appended, stuffed, between END bytes."""
    return bytes([END]) + escape(frame + checksum(frame)) + bytes([END])


class SlipDecoder:
    """Frames out of a byte stream that may split or join them anywhere."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.rejected = 0
        """Frames dropped so far: bad checksum, bad stuffing or too short."""

    def feed(self, data: bytes) -> list[bytes]:
        """The frames (checksum checked and removed) completed by these bytes."""
        self._buffer += data
        frames: list[bytes] = []
        while (end := self._buffer.find(END)) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if not raw:
                continue  # the END that opens a frame, or line noise between frames
            frame = self._checked(raw)
            if frame is None:
                self.rejected += 1
            else:
                frames.append(frame)
        return frames

    @staticmethod
    def _checked(raw: bytes) -> bytes | None:
        data = unescape(raw)
        if data is None or len(data) < MIN_LENGTH:
            return None
        frame, received = data[:-CHECKSUM_SIZE], data[-CHECKSUM_SIZE:]
        return frame if checksum(frame) == received else None
