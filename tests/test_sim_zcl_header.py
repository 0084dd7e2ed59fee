"""The simulated switch's hand-made ZCL header reads and writes what zigpy's ZCLHeader does."""

from __future__ import annotations

import itertools

import pytest
from zigpy.zcl import foundation

from z2m_qbkg40lm.sim.zcl_header import ZclHeader, header_bytes

MANUFACTURERS = (None, 0x115F)


@pytest.mark.parametrize(
    ("frame_control", "manufacturer"),
    [(fc, m) for fc in range(256) for m in MANUFACTURERS if bool(fc & 0x04) == (m is not None)],
)
def test_parse_agrees_with_zigpy(frame_control: int, manufacturer: int | None) -> None:
    """Every frame control byte, with and without a manufacturer code, reads as zigpy reads it."""
    code = b"" if manufacturer is None else manufacturer.to_bytes(2, "little")
    payload = bytes([frame_control]) + code + bytes([0xA7, 0x0B]) + b"\x01\x02"
    ours, rest = ZclHeader.parse(payload)
    theirs, their_rest = foundation.ZCLHeader.deserialize(payload)
    assert rest == their_rest == b"\x01\x02"
    assert ours.manufacturer == theirs.manufacturer
    assert (ours.tsn, ours.command_id) == (theirs.tsn, theirs.command_id)
    assert ours.is_general == theirs.frame_control.is_general
    assert ours.is_manufacturer_specific == bool(theirs.frame_control.is_manufacturer_specific)
    assert ours.client_to_server == (theirs.direction == foundation.Direction.Client_to_Server)
    assert ours.disable_default_response == bool(theirs.frame_control.disable_default_response)


@pytest.mark.parametrize("payload", [b"", b"\x18", b"\x18\x01", b"\x1c\x5f\x11\x01"])
def test_parse_refuses_a_header_cut_short(payload: bytes) -> None:
    """Too few bytes for the header is a ValueError, as with zigpy."""
    with pytest.raises(ValueError, match="ZCL header"):
        ZclHeader.parse(payload)
    with pytest.raises(ValueError):
        foundation.ZCLHeader.deserialize(payload)


@pytest.mark.parametrize(
    ("general", "server_to_client", "manufacturer"),
    list(itertools.product((True, False), (True, False), MANUFACTURERS)),
)
def test_header_bytes_agree_with_zigpy(
    general: bool, server_to_client: bool, manufacturer: int | None
) -> None:
    """An answer's header is byte for byte the one zigpy's ZCLHeader would write."""
    direction = (
        foundation.Direction.Server_to_Client if server_to_client else foundation.Direction.Client_to_Server
    )
    theirs = foundation.ZCLHeader(
        frame_control=foundation.FrameControl(
            frame_type=foundation.FrameType.GLOBAL_COMMAND
            if general
            else foundation.FrameType.CLUSTER_COMMAND,
            is_manufacturer_specific=manufacturer is not None,
            direction=direction,
            disable_default_response=1,
            reserved=0,
        ),
        manufacturer=manufacturer,
        tsn=0xFE,
        command_id=0x0A,
    )
    ours = header_bytes(
        general=general,
        server_to_client=server_to_client,
        manufacturer=manufacturer,
        tsn=0xFE,
        command_id=0x0A,
    )
    assert ours == theirs.serialize()
