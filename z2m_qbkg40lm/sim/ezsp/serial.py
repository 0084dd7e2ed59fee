"""One host on the emulated NCP's serial line: bytes through the ASH link to the command layer
and back. An asyncio protocol, so that a TCP listener (a network-attached EFR32) or, later, a
pseudo-terminal (a USB stick's /dev/ttyACM0) can carry it.

Like a real NCP behind a serial port, it says nothing when a host connects: the host starts the
link with RST (bellows waits 2 s for a start-up reset on `socket://`, then sends one).
"""

from __future__ import annotations

import asyncio

from z2m_qbkg40lm.sim.ezsp.ash_link import NcpAshLink
from z2m_qbkg40lm.sim.ezsp.ncp import EzspNcp


class EzspSerial(asyncio.Protocol):
    """The NCP's end of one connection."""

    def __init__(self, ncp: EzspNcp) -> None:
        self._ncp = ncp
        self._link: NcpAshLink | None = None

    @property
    def link(self) -> NcpAshLink | None:
        """The ASH link of the connection (None before it is made)."""
        return self._link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.WriteTransport):
            raise TypeError(f"the NCP needs a transport it can write to, not {transport!r}")
        loop = asyncio.get_running_loop()
        self._link = NcpAshLink(transport.write, self._command, loop.call_later, on_reset=self._ncp.reset)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._link is not None:
            self._link.close()
        self._link = None

    def data_received(self, data: bytes) -> None:
        if self._link is not None:
            self._link.receive(data)

    def _command(self, frame: bytes) -> None:
        answer = self._ncp.handle(frame)
        if answer is not None and self._link is not None:
            self._link.send(answer)
