"""An emulated EZSP NCP on a TCP port for unmodified bellows, without the rest of the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import zigpy.config
from bellows.ezsp import EZSP

from z2m_qbkg40lm.sim.ezsp.ncp import EzspNcp
from z2m_qbkg40lm.sim.ezsp.serial import AshPort
from z2m_qbkg40lm.sim.serial_line import TcpLine

TIMEOUT = 10.0


@asynccontextmanager
async def ncp_listening(ncp: EzspNcp, on_reset: Callable[[], None] | None = None) -> AsyncIterator[int]:
    """The NCP behind a TCP port (yielded) for as long as the block runs."""
    line = TcpLine(AshPort(ncp, on_reset=on_reset), "127.0.0.1", 0)
    address = await line.start()
    try:
        yield int(address.rsplit(":", 1)[1])
    finally:
        await line.stop()


async def bellows_connected(port: int) -> EZSP:
    """bellows's EZSP, connected (reset, version agreed) to the NCP on `port`."""
    ezsp = EZSP(zigpy.config.SCHEMA_DEVICE({zigpy.config.CONF_DEVICE_PATH: f"socket://127.0.0.1:{port}"}))
    await asyncio.wait_for(ezsp.connect(use_thread=False), TIMEOUT)
    return ezsp
