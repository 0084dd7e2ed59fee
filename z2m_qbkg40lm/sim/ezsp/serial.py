"""The EmberZNet NCP behind a serial line (`sim.serial_line`, TCP or pty): ASH in, EZSP to the NCP.

A muted NCP (a hung chip) neither reads nor writes anything. Like a real NCP behind a serial
port, it says nothing when a host connects: the host starts the
link with RST (bellows waits 2 s for a start-up reset on `socket://`, then sends one), which
resets the NCP. Faults of the line itself, injected on demand: DATA frames to the host corrupted
(one byte flipped: the host's CRC check fails, it NAKs and the NCP sends again) or lost (the NCP's
acknowledgement timer sends them again), and DATA frames from the host lost (the host's own timer
sends them again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from z2m_qbkg40lm.sim.ezsp.ash import FLAG, RESERVED, ResetReason
from z2m_qbkg40lm.sim.ezsp.ash_link import NcpAshLink
from z2m_qbkg40lm.sim.ezsp.ncp import EzspNcp
from z2m_qbkg40lm.sim.serial_line import Line

LOGGER = logging.getLogger(__name__)

_ESCAPE = 0x7D


@dataclass
class LineFaults:
    """How many of the next DATA frames the line spoils, by kind."""

    corrupt_to_host: int = 0
    lose_to_host: int = 0
    lose_from_host: int = 0


def _is_data(frame: bytes) -> bool:
    """True for an ASH DATA frame (control byte 0xxxxxxx), stuffed or not."""
    if not frame or frame[0] == FLAG:
        return False
    control = frame[1] ^ 0x20 if frame[0] == _ESCAPE and len(frame) > 1 else frame[0]
    return control & 0x80 == 0


class AshPort:
    """The NCP's end of the serial line: one host at a time, one ASH link per connection."""

    def __init__(
        self,
        ncp: EzspNcp,
        *,
        on_reset: Callable[[], None] | None = None,
        muted: Callable[[], bool] = lambda: False,
    ) -> None:
        self._ncp = ncp
        self._muted = muted
        self._on_reset = on_reset or ncp.reset
        self._line: Line | None = None
        self._link: NcpAshLink | None = None
        self._incoming = bytearray()
        self.faults = LineFaults()

    @property
    def link(self) -> NcpAshLink | None:
        """The ASH link of the connected host (None when none is)."""
        return self._link

    def connected(self, line: Line) -> None:
        """A host opened the line; a previous one is cut (the NCP has one serial port)."""
        if self._line is not None and self._line is not line:
            LOGGER.warning("A new host connected: closing the previous connection")
            previous = self._line
            self._forget()
            previous.close()
        loop = asyncio.get_running_loop()
        self._line = line
        self._incoming.clear()
        self._link = NcpAshLink(self._to_host, self._command, loop.call_later, on_reset=self._on_reset)
        self._ncp.send_callback = self._link.send

    def received(self, line: Line, data: bytes) -> None:
        """Bytes from the host."""
        if line is not self._line or self._link is None:
            return
        if self._muted():
            LOGGER.debug("Muted, ignoring %d byte(s) from the host", len(data))
            return
        if not self.faults.lose_from_host:
            self._link.receive(data)
            return
        self._incoming += data
        while (end := self._incoming.find(FLAG)) >= 0:
            frame = bytes(self._incoming[: end + 1])
            del self._incoming[: end + 1]
            if self.faults.lose_from_host and _is_data(frame):
                self.faults.lose_from_host -= 1
                LOGGER.warning("Fault: a DATA frame from the host is lost on the line")
                continue
            self._link.receive(frame)
        if not self.faults.lose_from_host and self._incoming:
            rest = bytes(self._incoming)
            self._incoming.clear()
            self._link.receive(rest)

    def disconnected(self, line: Line) -> None:
        """The host's connection ended; the NCP keeps running."""
        if line is self._line:
            self._forget()

    def _forget(self) -> None:
        if self._link is not None:
            self._link.close()
        self._link = None
        self._line = None
        self._ncp.send_callback = None

    def drop(self) -> bool:
        """Cut the line (a fault); False when no host is connected."""
        line = self._line
        if line is None:
            return False
        self._forget()
        line.close()
        return True

    def reset_by_itself(self, reason: ResetReason) -> None:
        """The NCP restarts on its own: RSTACK to the host (and the NCP's reset)."""
        if self._link is not None and self._link.connected:
            self._link.reset_by_itself(reason)
        else:
            self._on_reset()

    def _command(self, frame: bytes) -> None:
        answer = self._ncp.handle(frame)
        if answer is not None and self._link is not None:
            self._link.send(answer)

    def _to_host(self, frame: bytes) -> None:
        if self._line is None or self._muted():
            return
        faults = self.faults
        if (faults.lose_to_host or faults.corrupt_to_host) and _is_data(frame):
            if faults.lose_to_host:
                faults.lose_to_host -= 1
                LOGGER.warning("Fault: a DATA frame to the host is lost on the line")
                return
            faults.corrupt_to_host -= 1
            LOGGER.warning("Fault: a DATA frame to the host is corrupted on the line")
            spoiled = bytearray(frame)
            middle = len(spoiled) // 2
            # One bit flipped, into a byte that needs no stuffing: the frame keeps its length.
            spoiled[middle] = next(
                spoiled[middle] ^ bit for bit in (1, 2, 4, 8) if spoiled[middle] ^ bit not in RESERVED
            )
            frame = bytes(spoiled)
        self._line.write(frame)
