"""ASH, the serial framing of a Silicon Labs EmberZNet network co-processor, as the NCP speaks it.

Facts from Silicon Labs' UG101 ("UART-EZSP Gateway Protocol Reference", ASH version 2); no code
from a host library. A frame on the wire is::

    control  data...  CRC-high  CRC-low  0x7E (flag)

- **CRC**: CRC-CCITT (polynomial 0x1021, initial value 0xFFFF, no reflection), big-endian, over
  the control byte and the data as sent (after randomisation).
- **Byte stuffing**: the reserved bytes 0x7E (flag), 0x7D (escape), 0x11 (XON), 0x13 (XOFF),
  0x18 (substitute) and 0x1A (cancel) are sent as 0x7D followed by the byte with bit 5 flipped.
- **Cancel (0x1A)** discards the frame being received; **substitute (0x18)**, which a UART puts in
  place of a byte with a framing error, makes the frame bad (discarded at the next flag);
  XON and XOFF are flow control and never part of a frame.
- **Randomisation**: the data of a DATA frame is XORed with a pseudo-random sequence (seed 0x42;
  for each next byte: shift right, XOR with 0xB8 when the bit shifted out was 1), so that frames
  full of reserved bytes do not double in size. Only DATA frames are randomised.
- **Control byte**: DATA `0 frmNum(3) reTx(1) ackNum(3)`, ACK `100 0 nRdy ackNum(3)`,
  NAK `101 0 nRdy ackNum(3)`, RST `0xC0`, RSTACK `0xC1` (data: version 0x02, reset reason),
  ERROR `0xC2` (data: version 0x02, error code).

This module is pure: `encode` and `AshDecoder` turn frames into bytes and back. The protocol's
state (frame numbers, the window, acknowledgements and retransmission) is the link's, built on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

FLAG: Final = 0x7E
ESCAPE: Final = 0x7D
XON: Final = 0x11
XOFF: Final = 0x13
SUBSTITUTE: Final = 0x18
CANCEL: Final = 0x1A
RESERVED: Final = frozenset({FLAG, ESCAPE, XON, XOFF, SUBSTITUTE, CANCEL})
_FLIP: Final = 0x20

VERSION: Final = 0x02
"""The ASH version an RSTACK or ERROR frame carries."""
MAX_DATA: Final = 128
"""The longest data field of a DATA frame (an EZSP frame) the NCP accepts."""

_RANDOM_SEED: Final = 0x42
_RANDOM_XOR: Final = 0xB8


class FrameType(IntEnum):
    """What the control byte says the frame is."""

    DATA = 0
    ACK = 1
    NAK = 2
    RST = 3
    RSTACK = 4
    ERROR = 5


class ResetReason(IntEnum):
    """The reset reasons of RSTACK and ERROR frames (UG101, "reset and error codes")."""

    UNKNOWN = 0x00
    EXTERNAL = 0x01
    POWER_ON = 0x02
    WATCHDOG = 0x03
    ASSERT = 0x06
    BOOTLOADER = 0x09
    SOFTWARE = 0x0B
    EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT = 0x51
    CHIP_SPECIFIC = 0x80


@dataclass(frozen=True, slots=True)
class Frame:
    """One ASH frame: its control byte and its data (DATA frames: not randomised)."""

    control: int
    data: bytes = b""

    @property
    def type(self) -> FrameType:
        """The frame's type, from its control byte."""
        return frame_type(self.control)

    @property
    def frame_number(self) -> int:
        """frmNum of a DATA frame."""
        return (self.control >> 4) & 0x07

    @property
    def ack_number(self) -> int:
        """ackNum of a DATA, ACK or NAK frame: the frame number the sender expects next."""
        return self.control & 0x07

    @property
    def retransmitted(self) -> bool:
        """reTx of a DATA frame: sent before and not acknowledged."""
        return bool(self.control & 0x08)

    @property
    def not_ready(self) -> bool:
        """nRdy of an ACK or NAK frame: the sender cannot take DATA frames now."""
        return bool(self.control & 0x08)


def frame_type(control: int) -> FrameType:
    """The type a control byte gives."""
    if not control & 0x80:
        return FrameType.DATA
    if control & 0xE0 == 0x80:
        return FrameType.ACK
    if control & 0xE0 == 0xA0:
        return FrameType.NAK
    if control == 0xC0:
        return FrameType.RST
    if control == 0xC1:
        return FrameType.RSTACK
    if control == 0xC2:
        return FrameType.ERROR
    raise ValueError(f"0x{control:02X} is no ASH control byte")


def data_frame(frame_number: int, ack_number: int, data: bytes, *, retransmitted: bool = False) -> Frame:
    """A DATA frame carrying `data` (an EZSP frame)."""
    control = ((frame_number & 0x07) << 4) | (0x08 if retransmitted else 0) | (ack_number & 0x07)
    return Frame(control, bytes(data))


def ack_frame(ack_number: int, *, not_ready: bool = False) -> Frame:
    """An ACK: every frame before `ack_number` arrived."""
    return Frame(0x80 | (0x08 if not_ready else 0) | (ack_number & 0x07))


def nak_frame(ack_number: int, *, not_ready: bool = False) -> Frame:
    """A NAK: a bad frame arrived; `ack_number` is still the one expected."""
    return Frame(0xA0 | (0x08 if not_ready else 0) | (ack_number & 0x07))


def rstack_frame(reason: ResetReason) -> Frame:
    """The NCP's answer to RST, and what it says after any reset: version and reason."""
    return Frame(0xC1, bytes((VERSION, int(reason))))


def error_frame(code: ResetReason) -> Frame:
    """The NCP's report of a fatal error: it then waits for a RST."""
    return Frame(0xC2, bytes((VERSION, int(code))))


def randomise(data: bytes) -> bytes:
    """XOR `data` with ASH's pseudo-random sequence (its own inverse)."""
    out = bytearray(len(data))
    value = _RANDOM_SEED
    for index, byte in enumerate(data):
        out[index] = byte ^ value
        value = (value >> 1) ^ _RANDOM_XOR if value & 1 else value >> 1
    return bytes(out)


def crc_ccitt(data: bytes) -> int:
    """CRC-CCITT: polynomial 0x1021, initial value 0xFFFF, MSB first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _stuff(raw: bytes) -> bytes:
    out = bytearray()
    for byte in raw:
        if byte in RESERVED:
            out += bytes((ESCAPE, byte ^ _FLIP))
        else:
            out.append(byte)
    return bytes(out)


def encode(frame: Frame) -> bytes:
    """The bytes of a frame on the wire, the closing flag included."""
    data = randomise(frame.data) if frame.type is FrameType.DATA else frame.data
    body = bytes((frame.control,)) + data
    return _stuff(body + crc_ccitt(body).to_bytes(2, "big")) + bytes((FLAG,))


class BadFrame(ValueError):
    """Bytes between two flags that are no frame: cut short, a wrong CRC, a framing error."""


class AshDecoder:
    """Cuts a byte stream into frames: `feed()` returns the frames, and the bad frames as
    `BadFrame` (to be answered with a NAK while the link is up), in arrival order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._escaped = False
        self._bad: str | None = None

    def feed(self, chunk: bytes) -> list[Frame | BadFrame]:
        """Append bytes; return what the flags among them completed."""
        out: list[Frame | BadFrame] = []
        for byte in chunk:
            if byte == FLAG:
                result = self._end()
                if result is not None:
                    out.append(result)
            elif byte == CANCEL:
                self._reset()  # the sender gave the frame up: no NAK
            elif byte in (XON, XOFF):
                continue
            elif byte == SUBSTITUTE:
                self._bad = "a byte with a framing error (substitute byte)"
            elif byte == ESCAPE:
                self._escaped = True
            elif self._escaped:
                self._buffer.append(byte ^ _FLIP)
                self._escaped = False
            else:
                self._buffer.append(byte)
        return out

    def _reset(self) -> None:
        self._buffer.clear()
        self._escaped = False
        self._bad = None

    def _end(self) -> Frame | BadFrame | None:
        raw, bad, escaped = bytes(self._buffer), self._bad, self._escaped
        self._reset()
        if not raw and bad is None and not escaped:
            return None  # back-to-back flags: nothing between them
        if bad is not None:
            return BadFrame(bad)
        if escaped:
            return BadFrame("an escape byte right before the flag")
        if len(raw) < 3:
            return BadFrame(f"{len(raw)} byte(s) between flags, a frame has at least 3")
        body, crc = raw[:-2], int.from_bytes(raw[-2:], "big")
        if crc_ccitt(body) != crc:
            return BadFrame(f"CRC 0x{crc:04X}, the frame's bytes give 0x{crc_ccitt(body):04X}")
        control, data = body[0], body[1:]
        try:
            kind = frame_type(control)
        except ValueError as exc:
            return BadFrame(str(exc))
        if kind is FrameType.DATA:
            if not data or len(data) > MAX_DATA:
                return BadFrame(f"a DATA frame of {len(data)} data bytes (1 to {MAX_DATA})")
            data = randomise(data)
        return Frame(control, data)
