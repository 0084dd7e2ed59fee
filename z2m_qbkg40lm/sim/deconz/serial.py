"""The deCONZ firmware behind a serial line (`sim.serial_line`, TCP or pty): SLIP frames in, answers out.

Like the USB serial port of a ConBee II, the line says nothing when a host opens it; the host
starts with its own commands. A muted firmware (a hung chip) neither reads nor writes anything.
Frames with a bad checksum are dropped (`slip`); the protocol has no acknowledgement, so nothing
is sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from z2m_qbkg40lm.sim.deconz import slip
from z2m_qbkg40lm.sim.deconz.protocol import DeconzProtocol
from z2m_qbkg40lm.sim.serial_line import Line

LOGGER = logging.getLogger(__name__)


class DeconzPort:
    """The firmware's end of the serial line: one host at a time."""

    def __init__(
        self,
        protocol: DeconzProtocol,
        *,
        muted: Callable[[], bool] = lambda: False,
        on_connect: Callable[[], None] = lambda: None,
    ) -> None:
        self._protocol = protocol
        self._muted = muted
        self._on_connect = on_connect
        self._line: Line | None = None
        self.decoder = slip.SlipDecoder()

    @property
    def connected_host(self) -> bool:
        """True while a host has the line open."""
        return self._line is not None

    def connected(self, line: Line) -> None:
        """A host opened the line; a previous one is cut (the stick has one serial port)."""
        if self._line is not None and self._line is not line:
            LOGGER.warning("A new host connected: closing the previous connection")
            previous = self._line
            self._line = None
            previous.close()
        self._line = line
        self.decoder = slip.SlipDecoder()
        self._on_connect()

    def received(self, line: Line, data: bytes) -> None:
        """Bytes from the host: every complete frame is answered in turn."""
        if line is not self._line:
            return
        if self._muted():
            LOGGER.debug("Muted, ignoring %d byte(s) from the host", len(data))
            return
        for frame in self.decoder.feed(data):
            answer = self._protocol.handle(frame)
            if answer is not None:
                self.send(answer)

    def disconnected(self, line: Line) -> None:
        """The host's connection ended; the firmware keeps running."""
        if line is self._line:
            self._line = None

    def drop(self) -> bool:
        """Cut the line (a fault, or a reset's USB re-enumeration); False when no host is connected."""
        line = self._line
        if line is None:
            return False
        self._line = None
        line.close()
        return True

    def send(self, frame: bytes) -> None:
        """A frame to the host, SLIP-framed (lost when no host listens or the chip is muted)."""
        if self._line is None or self._muted():
            return
        self._line.write(slip.encode(frame))
