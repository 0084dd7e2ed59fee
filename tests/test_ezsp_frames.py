"""EZSP frames of the emulator: bellows's own protocol objects write the commands the emulator
reads, and read the responses and callbacks it writes."""

from __future__ import annotations

from typing import Any

import bellows.types as bt
import pytest
from bellows.ezsp.v4 import EZSPv4
from bellows.ezsp.v13 import EZSPv13

from z2m_qbkg40lm.sim.ezsp.frames import (
    CommandFrame,
    FrameError,
    callback_frame,
    parse_command,
    response_frame,
)


def _ignore(*_args: Any) -> None:
    return None


def test_the_first_version_command_is_legacy_and_so_is_its_answer() -> None:
    host = EZSPv4(_ignore, None)
    command = parse_command(host._ezsp_frame("version", desiredProtocolVersion=4))
    assert command == CommandFrame(0, 0x0000, b"\x04", legacy=True)
    _, _, schema = host.COMMANDS["version"]
    answer = response_frame(command, bt.serialize_dict((13, 2, 0x7400), {}, schema))
    sequence, frame_id, data = host._ezsp_frame_rx(answer)
    assert (sequence, frame_id) == (0, 0x00)
    assert bt.deserialize_dict(data, schema) == (
        {"protocolVersion": 13, "stackType": 2, "stackVersion": 0x7400},
        b"",
    )


def test_an_extended_command_is_read_and_answered_in_kind() -> None:
    host = EZSPv13(_ignore, None)
    host._seq = 0x2A
    frame_id, request, reply = host.COMMANDS["getValue"]
    command = parse_command(host._ezsp_frame("getValue", valueId=bt.EzspValueId.VALUE_VERSION_INFO))
    assert (command.sequence, command.frame_id, command.legacy) == (0x2A, frame_id, False)
    assert bt.deserialize_dict(command.parameters, request)[0] == {
        "valueId": bt.EzspValueId.VALUE_VERSION_INFO
    }
    answer = response_frame(command, bt.serialize_dict((bt.EzspStatus.SUCCESS, b"\x01\x02"), {}, reply))
    assert answer[1] == 0x80
    assert host._ezsp_frame_rx(answer)[:2] == (0x2A, frame_id)


def test_a_callback_is_an_asynchronous_response_bellows_can_name() -> None:
    host = EZSPv13(_ignore, None)
    frame_id, _, schema = host.COMMANDS["stackStatusHandler"]
    frame = callback_frame(7, frame_id, bt.serialize_dict((bt.sl_Status.NETWORK_UP,), {}, schema))
    assert frame[1] == 0x90
    _, received_id, data = host._ezsp_frame_rx(frame)
    assert host.COMMANDS_BY_ID[received_id][0] == "stackStatusHandler"
    assert bt.deserialize_dict(data, schema)[0] == {"status": bt.sl_Status.NETWORK_UP}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x00\x00", "at least 3"),
        (b"\x00\x80\x01\x05\x00", "marks a response"),
        (b"\x00\x00\x02\x05\x00", "frame format version 2"),
        (b"\x00\x00\x01\x05", "at least 5"),
    ],
)
def test_what_is_no_command_says_why(data: bytes, words: str) -> None:
    with pytest.raises(FrameError, match=words):
        parse_command(data)
