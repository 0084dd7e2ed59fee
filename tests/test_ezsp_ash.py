"""ASH framing of the EZSP emulator: the protocol's own examples, bad frames, and bellows reading
what the emulator writes (and the other way round)."""

from __future__ import annotations

import pytest
from bellows import ash as bellows_ash

from z2m_qbkg40lm.sim.ezsp.ash import (
    CANCEL,
    FLAG,
    RESERVED,
    SUBSTITUTE,
    XOFF,
    AshDecoder,
    BadFrame,
    Frame,
    FrameType,
    ResetReason,
    ack_frame,
    crc_ccitt,
    data_frame,
    encode,
    error_frame,
    nak_frame,
    randomise,
    rstack_frame,
)


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (Frame(0xC0), "c0 38 bc 7e"),  # RST
        (rstack_frame(ResetReason.POWER_ON), "c1 02 02 9b 7b 7e"),
        (ack_frame(1), "81 60 59 7e"),
        (nak_frame(6), "a6 34 dc 7e"),
        # DATA 0/0 carrying EZSP "version" (sequence 0, frame control 0, id 0x00, version 6)
        (data_frame(0, 0, bytes((0, 0, 0, 6))), "00 42 21 a8 52 cd 6e 7e"),
    ],
)
def test_frames_are_the_bytes_of_the_protocols_examples(frame: Frame, wire: str) -> None:
    assert encode(frame).hex(" ") == wire
    assert AshDecoder().feed(bytes.fromhex(wire)) == [frame]


def test_the_pseudo_random_sequence_starts_as_the_protocol_says() -> None:
    assert randomise(bytes(5)).hex(" ") == "42 21 a8 54 2a"
    payload = bytes(range(256)) * 2
    assert randomise(randomise(payload)) == payload


def test_reserved_bytes_are_escaped_and_come_back() -> None:
    data = bytes(sorted(RESERVED)) * 3
    wire = encode(data_frame(3, 5, randomise(data)))  # randomised on the wire: the reserved bytes
    assert FLAG not in wire[:-1]
    assert not RESERVED & set(wire[:-1]) - {0x7D}
    [frame] = AshDecoder().feed(wire)
    assert isinstance(frame, Frame) and frame.data == randomise(data)
    assert (frame.type, frame.frame_number, frame.ack_number) == (FrameType.DATA, 3, 5)


def test_a_frame_split_anywhere_is_read_whole_and_flags_alone_are_nothing() -> None:
    wire = bytes((FLAG, FLAG)) + encode(data_frame(1, 2, b"\x7e\x11\x7d\x00")) + bytes((FLAG,))
    for cut in range(len(wire) + 1):
        decoder = AshDecoder()
        assert decoder.feed(wire[:cut]) + decoder.feed(wire[cut:]) == [data_frame(1, 2, b"\x7e\x11\x7d\x00")]


def test_a_corrupt_byte_makes_a_bad_frame_and_the_next_frame_is_read() -> None:
    good = encode(data_frame(0, 0, b"\x01\x02\x03"))
    corrupt = bytearray(good)
    corrupt[2] ^= 0x01
    out = AshDecoder().feed(bytes(corrupt) + encode(ack_frame(4)))
    assert isinstance(out[0], BadFrame) and "CRC" in str(out[0])
    assert out[1:] == [ack_frame(4)]


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        (bytes((0x81, 0x60, SUBSTITUTE, 0x59, FLAG)), "framing error"),
        (bytes((0x81, 0x7D, FLAG)), "escape byte"),
        (bytes((0x81, FLAG)), "at least 3"),
        (b"\xe0" + crc_ccitt(b"\xe0").to_bytes(2, "big") + bytes((FLAG,)), "no ASH control byte"),
        (bytes((0x00,)) + crc_ccitt(b"\x00").to_bytes(2, "big") + bytes((FLAG,)), "DATA frame of 0"),
    ],
)
def test_what_is_no_frame_is_a_bad_frame_that_says_why(wire: bytes, words: str) -> None:
    [bad] = AshDecoder().feed(wire)
    assert isinstance(bad, BadFrame) and words in str(bad)


def test_cancel_drops_the_frame_so_far_and_flow_control_bytes_are_ignored() -> None:
    wire = b"\x25\x42" + bytes((CANCEL,)) + bytes((XOFF,)) + encode(Frame(0xC0))
    assert AshDecoder().feed(wire) == [Frame(0xC0)]


def _bellows_read(wire: bytes) -> bellows_ash.AshFrame:
    assert wire[-1] == FLAG
    return bellows_ash.parse_frame(bytes(bellows_ash.AshProtocol._unstuff_bytes(wire[:-1])))


def test_bellows_reads_what_the_emulator_writes() -> None:
    data = bytes((0x7E, 0x00, 0x11, 0x13, 0x18, 0x1A, 0x7D, 0xFF))
    read = _bellows_read(encode(data_frame(5, 2, data, retransmitted=True)))
    assert isinstance(read, bellows_ash.DataFrame)
    assert (read.frm_num, read.ack_num, bool(read.re_tx), read.ezsp_frame) == (5, 2, True, data)
    rstack = _bellows_read(encode(rstack_frame(ResetReason.SOFTWARE)))
    assert isinstance(rstack, bellows_ash.RStackFrame)
    assert (rstack.version, int(rstack.reset_code)) == (2, ResetReason.SOFTWARE)
    error = _bellows_read(encode(error_frame(ResetReason.EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT)))
    assert isinstance(error, bellows_ash.ErrorFrame)
    nak = _bellows_read(encode(nak_frame(3, not_ready=True)))
    # bellows names the nRdy bit `ncp_ready`
    assert isinstance(nak, bellows_ash.NakFrame) and (nak.ack_num, bool(nak.ncp_ready)) == (3, True)


def test_the_emulator_reads_what_bellows_writes() -> None:
    data = bytes(range(0x70, 0x90))
    sent = bellows_ash.DataFrame(frm_num=6, re_tx=False, ack_num=1, ezsp_frame=data)
    wire = bytes(bellows_ash.AshProtocol._stuff_bytes(sent.to_bytes())) + bytes((FLAG,))
    [frame] = AshDecoder().feed(wire)
    assert frame == data_frame(6, 1, data)
    rst = bytes((CANCEL,)) + bytes(bellows_ash.AshProtocol._stuff_bytes(bellows_ash.RstFrame().to_bytes()))
    assert AshDecoder().feed(rst + bytes((FLAG,))) == [Frame(0xC0)]
