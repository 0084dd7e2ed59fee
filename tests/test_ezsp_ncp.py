"""The EZSP emulator's command layer: unmodified bellows connects over a pty, resets the NCP
and agrees on the protocol version; a command the NCP does not serve is answered, not ignored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import bellows.types as bt
import pytest
from bellows.exception import InvalidCommandError
from bellows.ezsp import EZSP

from tests.ezsp_support import bellows_connected, ncp_listening
from z2m_qbkg40lm.sim.ezsp.ncp import PROTOCOL_VERSION, STACK_TYPE, STACK_VERSION, EzspNcp

TIMEOUT = 10.0


@pytest.fixture
async def ncp_port() -> AsyncIterator[tuple[EzspNcp, str]]:
    ncp = EzspNcp()
    async with ncp_listening(ncp) as path:
        yield ncp, path


async def _connected(path: str) -> EZSP:
    return await bellows_connected(path)


async def test_bellows_resets_the_ncp_and_agrees_on_its_version(ncp_port: tuple[EzspNcp, str]) -> None:
    ncp, path = ncp_port
    ezsp = await _connected(path)
    try:
        assert ezsp.ezsp_version == PROTOCOL_VERSION
        assert ncp.protocol_version == PROTOCOL_VERSION
        assert await ezsp.echo(data=b"\x00\x7e\x7d\x11") == [b"\x00\x7e\x7d\x11"]
    finally:
        await ezsp.disconnect()


async def test_a_command_the_ncp_does_not_serve_gets_invalid_command(ncp_port: tuple[EzspNcp, str]) -> None:
    _ncp, path = ncp_port
    ezsp = await _connected(path)
    try:
        with pytest.raises(InvalidCommandError, match="ERROR_INVALID_FRAME_ID"):
            await asyncio.wait_for(ezsp.getValue(valueId=bt.EzspValueId.VALUE_VERSION_INFO), TIMEOUT)
        await asyncio.wait_for(ezsp.nop(), TIMEOUT)  # and the link goes on
    finally:
        await ezsp.disconnect()


def test_the_first_version_is_answered_with_the_ncps_own_in_the_legacy_format() -> None:
    ncp = EzspNcp()
    answer = ncp.handle(bytes((0x00, 0x00, 0x00, 4)))  # legacy `version`, protocol 4 wanted
    assert answer == bytes((0x00, 0x80, 0x00, PROTOCOL_VERSION, STACK_TYPE)) + STACK_VERSION.to_bytes(
        2, "little"
    )
    assert ncp.protocol_version is None  # not agreed until the host names it
    assert ncp.handle(bytes((0x01, 0x00, 0x01, 0x00, 0x00, PROTOCOL_VERSION))) is not None
    assert ncp.protocol_version == PROTOCOL_VERSION
    ncp.reset()
    assert ncp.protocol_version is None
