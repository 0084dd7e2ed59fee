"""EZSP frames as the NCP reads commands and writes responses and callbacks.

Facts from Silicon Labs' UG100 ("EZSP Reference Guide"); no code from a host library. An EZSP
frame travels as the data of an ASH DATA frame:

- **Legacy format** (EZSP before version 8, and the host's first `version` command whatever the
  version it will speak): `sequence, frame control, frame id`, then the parameters.
- **Extended format** (version 8 and later): `sequence, frame control (low), frame control (high),
  frame id (2 bytes, little endian)`, then the parameters. The high byte's two low bits are the
  frame format version, 1; so a third byte of 0x00 can only be the legacy `version` (frame id 0).
- **Frame control (low byte)**: bit 7 set in what the NCP sends. In a response: bit 0 overflow,
  bit 1 truncated, bit 2 callback pending, bits 4-3 callback type (0 none, 1 synchronous,
  2 asynchronous), bits 6-5 network index. In a command: bits 1-0 the sleep mode the host asks for.

The parameters follow the command's definition; the emulator takes the definitions from bellows
(`bellows.ezsp.vNN.commands`), which mirror the EmberZNet headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

VERSION_FRAME_ID: Final = 0x0000
_RESPONSE: Final = 0x80
_ASYNC_CALLBACK: Final = 0x10  # callback type 2 in bits 4-3
_FORMAT_MASK: Final = 0x03
_FORMAT_VERSION: Final = 0x01


class FrameError(ValueError):
    """An EZSP frame from the host the NCP cannot read; the message says why."""


@dataclass(frozen=True, slots=True)
class CommandFrame:
    """A command from the host: its sequence number, frame id, raw parameters and format."""

    sequence: int
    frame_id: int
    parameters: bytes
    legacy: bool


def parse_command(data: bytes) -> CommandFrame:
    """Read a command frame (legacy or extended); FrameError when it is neither."""
    if len(data) < 3:
        raise FrameError(f"an EZSP frame of {len(data)} byte(s), a command has at least 3")
    sequence, control, third = data[0], data[1], data[2]
    if control & _RESPONSE:
        raise FrameError(f"frame control 0x{control:02X} marks a response, not a command")
    if third == VERSION_FRAME_ID:
        return CommandFrame(sequence, VERSION_FRAME_ID, bytes(data[3:]), legacy=True)
    if third & _FORMAT_MASK != _FORMAT_VERSION:
        raise FrameError(f"frame format version {third & _FORMAT_MASK} (0x{third:02X}); this NCP reads 1")
    if len(data) < 5:
        raise FrameError(f"an extended EZSP frame of {len(data)} byte(s), it has at least 5")
    return CommandFrame(sequence, int.from_bytes(data[3:5], "little"), bytes(data[5:]), legacy=False)


def _frame(sequence: int, control: int, frame_id: int, parameters: bytes, *, legacy: bool) -> bytes:
    if legacy:
        return bytes((sequence & 0xFF, control, frame_id & 0xFF)) + parameters
    return bytes((sequence & 0xFF, control, _FORMAT_VERSION)) + frame_id.to_bytes(2, "little") + parameters


def response_frame(command: CommandFrame, parameters: bytes, *, callback_pending: bool = False) -> bytes:
    """The NCP's response to `command`, in the command's format, with its sequence number."""
    control = _RESPONSE | (0x04 if callback_pending else 0)
    return _frame(command.sequence, control, command.frame_id, parameters, legacy=command.legacy)


def callback_frame(sequence: int, frame_id: int, parameters: bytes) -> bytes:
    """An asynchronous callback (extended format), e.g. incomingMessageHandler."""
    return _frame(sequence, _RESPONSE | _ASYNC_CALLBACK, frame_id, parameters, legacy=False)
