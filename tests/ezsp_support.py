"""An emulated EZSP NCP on a pseudo-terminal for unmodified bellows, without the rest of the emulator.

A pty, as a USB stick: on socket:// bellows first waits 2 s for a reset a network coordinator may
send by itself, at every reset (the end-to-end suite goes over socket://).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import zigpy.config
from bellows.ezsp import EZSP

from z2m_qbkg40lm.sim.ezsp.ncp import EzspNcp
from z2m_qbkg40lm.sim.ezsp.serial import AshPort
from z2m_qbkg40lm.sim.serial_line import PtyLine

TIMEOUT = 10.0


@asynccontextmanager
async def ncp_listening(ncp: EzspNcp, on_reset: Callable[[], None] | None = None) -> AsyncIterator[str]:
    """The NCP behind a pseudo-terminal (its path yielded) for as long as the block runs."""
    line = PtyLine(AshPort(ncp, on_reset=on_reset))
    path = await line.start()
    try:
        yield path
    finally:
        await line.stop()


async def bellows_connected(path: str) -> EZSP:
    """bellows's EZSP, connected (reset, version agreed) to the NCP on `path`."""
    ezsp = EZSP(zigpy.config.SCHEMA_DEVICE({zigpy.config.CONF_DEVICE_PATH: path}))
    await asyncio.wait_for(ezsp.connect(use_thread=False), TIMEOUT)
    return ezsp
