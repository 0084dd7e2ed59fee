"""The deCONZ SLIP framing: frames zigpy-deconz's own UART writes are read back, split or joined
anywhere on the line; damaged ones are dropped; what the emulator writes zigpy-deconz reads."""

from __future__ import annotations

from typing import Any

import pytest
from zigpy_deconz.uart import Gateway

from z2m_qbkg40lm.sim.deconz import slip

AWKWARD = bytes([0x0D, 0x01, 0x00, 0x09, 0x00, slip.END, slip.ESC, 0x00, 0x26])
"""A frame with both special bytes in it."""


class _Transport:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


class _Api:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def data_received(self, frame: bytes) -> None:
        self.frames.append(frame)


def _host_bytes(*frames: bytes) -> bytes:
    """What zigpy-deconz's UART puts on the line for these frames."""
    gateway = Gateway(_Api())
    transport = _Transport()
    gateway._transport = transport
    for frame in frames:
        gateway.send(frame)
    return transport.written


def _host_reads(data: bytes) -> list[bytes]:
    """The frames zigpy-deconz's UART takes from these bytes."""
    api = _Api()
    gateway: Any = Gateway(api)
    gateway.data_received(data)
    return api.frames


def test_the_checksum_is_the_twos_complement_of_the_byte_sum() -> None:
    frame = bytes([0x0D, 0x01, 0x00, 0x09, 0x00])
    total = sum(frame) + int.from_bytes(slip.checksum(frame), "little")
    assert total & 0xFFFF == 0


def test_frames_from_zigpy_deconz_split_anywhere_are_read_back() -> None:
    data = _host_bytes(AWKWARD, b"\x07\x02\x00\x08\x00\x00\x00\x00")
    for cut in range(1, len(data)):
        decoder = slip.SlipDecoder()
        frames = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert frames == [AWKWARD, b"\x07\x02\x00\x08\x00\x00\x00\x00"], cut
        assert decoder.rejected == 0


def test_a_byte_at_a_time_reads_the_same() -> None:
    decoder = slip.SlipDecoder()
    frames = [frame for byte in _host_bytes(AWKWARD) for frame in decoder.feed(bytes([byte]))]
    assert frames == [AWKWARD]


def test_what_the_emulator_writes_zigpy_deconz_reads() -> None:
    encoded = slip.encode(AWKWARD)
    assert slip.END not in encoded[1:-1], "END inside a frame is stuffed"
    assert _host_reads(encoded + slip.encode(b"\x0e\x00\x00\x07\x00\x22\x00")) == [
        AWKWARD,
        b"\x0e\x00\x00\x07\x00\x22\x00",
    ]


@pytest.mark.parametrize("position", [1, 4, 8])
def test_a_corrupted_frame_is_dropped_and_the_next_one_read(position: int) -> None:
    spoiled = bytearray(_host_bytes(AWKWARD))
    spoiled[position] ^= 0x01
    decoder = slip.SlipDecoder()
    assert decoder.feed(bytes(spoiled) + _host_bytes(b"\x0d\x02\x00\x09\x00\x00\x00\x00\x00")) == [
        b"\x0d\x02\x00\x09\x00\x00\x00\x00\x00"
    ]
    assert decoder.rejected == 1


def test_bad_stuffing_and_runt_frames_are_dropped() -> None:
    decoder = slip.SlipDecoder()
    bad_escape = bytes([slip.END, 0x01, slip.ESC, 0x05, 0x02, 0x03, slip.END])
    runt = bytes([slip.END, 0x01, 0x02, slip.END])
    assert decoder.feed(bad_escape + runt) == []
    assert decoder.rejected == 2


def test_line_noise_between_frames_is_ignored() -> None:
    decoder = slip.SlipDecoder()
    assert decoder.feed(bytes([slip.END] * 5) + slip.encode(AWKWARD) + bytes([slip.END] * 3)) == [AWKWARD]
    assert decoder.rejected == 0
