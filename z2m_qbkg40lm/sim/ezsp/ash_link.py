"""The NCP's side of the ASH protocol: frame numbers, acknowledgements, the window, resends, resets.

Facts from Silicon Labs' UG101 (ASH version 2), as an NCP behaves:

- The host starts the link with RST (after cancel bytes); the NCP resets its link state and answers
  RSTACK with the reason of its last reset. An NCP that resets by itself (a fault) sends RSTACK
  unprompted: the host must notice. Before the first RST, and after an ERROR frame, the NCP
  answers nothing but RST.
- DATA frames carry a frame number (frmNum) and the number of the next frame the sender expects
  (ackNum, which acknowledges every earlier one). A DATA frame in sequence is delivered and
  acknowledged with an ACK; a retransmitted one already delivered is acknowledged again and
  dropped; one out of sequence, and a bad frame, get one NAK (the "reject condition", left when
  a frame in sequence arrives).
- The NCP sends up to `window` DATA frames without acknowledgement. A NAK makes it resend every
  unacknowledged frame from the NAK's ackNum, marked retransmitted; so does the acknowledgement
  timer. After `MAX_TIMEOUTS` timeouts in a row it sends ERROR (exceeded maximum ACK timeout
  count) and waits for RST.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Final

from z2m_qbkg40lm.sim.ezsp.ash import (
    AshDecoder,
    BadFrame,
    Frame,
    FrameType,
    ResetReason,
    ack_frame,
    data_frame,
    encode,
    error_frame,
    nak_frame,
    rstack_frame,
)
from z2m_qbkg40lm.sim.ota_client import Timer

LOGGER = logging.getLogger(__name__)

WINDOW: Final = 5
"""DATA frames the NCP sends before it waits for an acknowledgement."""
ACK_TIMEOUT_S: Final = 1.6
"""How long a sent DATA frame waits for its acknowledgement before it is sent again."""
MAX_TIMEOUTS: Final = 4
"""Timeouts in a row after which the NCP gives up with an ERROR frame."""


class NcpAshLink:
    """ASH for one serial line: bytes in (`receive`), EZSP frames out to `deliver`, EZSP frames
    in (`send`), bytes out to `write`."""

    def __init__(
        self,
        write: Callable[[bytes], None],
        deliver: Callable[[bytes], None],
        call_later: Callable[[float, Callable[[], None]], Timer],
        *,
        on_reset: Callable[[], None] | None = None,
        window: int = WINDOW,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self._write = write
        self._deliver = deliver
        self._call_later = call_later
        self._on_reset = on_reset
        self._window = window
        self._ack_timeout_s = ack_timeout_s
        self._decoder = AshDecoder()
        self.connected = False
        self.reset_reason = ResetReason.POWER_ON
        """What the next RSTACK says: the reason of the NCP's last reset."""
        self._expected = 0  # the next frame number from the host (our ackNum)
        self._next_frame = 0  # our next frame number
        self._unacked: deque[tuple[int, bytes]] = deque()
        self._queued: deque[bytes] = deque()
        self._rejecting = False
        self._timer: Timer | None = None
        self._timeouts = 0

    # --- bytes from the host ---------------------------------------------------------------------

    def receive(self, chunk: bytes) -> None:
        """Bytes from the serial line."""
        for item in self._decoder.feed(chunk):
            if isinstance(item, BadFrame):
                LOGGER.debug("ASH: bad frame from the host: %s", item)
                if self.connected:
                    self._reject()
            else:
                self._frame(item)

    def _frame(self, frame: Frame) -> None:
        kind = frame.type
        if kind is FrameType.RST:
            self._reset_link()
            self._send_frame(rstack_frame(self.reset_reason))
            self.connected = True
            if self._on_reset is not None:
                self._on_reset()
            return
        if not self.connected or kind in (FrameType.RSTACK, FrameType.ERROR):
            return  # before RST, after ERROR: nothing but RST counts; the host sends no RSTACK
        self._acknowledged(frame.ack_number)
        if kind is FrameType.NAK:
            self._resend()
        elif kind is FrameType.DATA:
            self._data(frame)

    def _data(self, frame: Frame) -> None:
        if frame.frame_number == self._expected:
            self._expected = (self._expected + 1) % 8
            self._rejecting = False
            self._send_frame(ack_frame(self._expected))
            self._deliver(frame.data)
        elif frame.retransmitted:
            self._send_frame(ack_frame(self._expected))  # delivered before: acknowledge again
        else:
            self._reject()

    def _reject(self) -> None:
        if not self._rejecting:
            self._rejecting = True
            self._send_frame(nak_frame(self._expected))

    # --- EZSP frames to the host ------------------------------------------------------------------

    def send(self, ezsp_frame: bytes) -> None:
        """Send an EZSP frame: now if the window has room, else once earlier frames are acknowledged."""
        if not self.connected:
            return  # a real NCP drops what it would send before the host's RST
        self._queued.append(bytes(ezsp_frame))
        self._pump()

    def _pump(self) -> None:
        while self._queued and len(self._unacked) < self._window:
            data = self._queued.popleft()
            number = self._next_frame
            self._next_frame = (number + 1) % 8
            self._unacked.append((number, data))
            self._send_frame(data_frame(number, self._expected, data))
        self._arm()

    def _acknowledged(self, ack_number: int) -> None:
        """The host has every frame before `ack_number`."""
        if not any(number == ack_number for number, _ in self._unacked) and ack_number != self._next_frame:
            return  # acknowledges nothing we have out (an old or a wrong number)
        progressed = False
        while self._unacked and self._unacked[0][0] != ack_number:
            self._unacked.popleft()
            progressed = True
        if progressed:
            self._timeouts = 0
            self._disarm()
            self._pump()

    def _resend(self) -> None:
        for number, data in self._unacked:
            self._send_frame(data_frame(number, self._expected, data, retransmitted=True))
        self._disarm()
        self._arm()

    def _arm(self) -> None:
        if self._unacked and self._timer is None:
            self._timer = self._call_later(self._ack_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if not self._unacked or not self.connected:
            return
        self._timeouts += 1
        if self._timeouts >= MAX_TIMEOUTS:
            LOGGER.warning("ASH: the host acknowledged nothing %d times in a row: ERROR", self._timeouts)
            self.fail(ResetReason.EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT)
            return
        self._resend()

    # --- resets -----------------------------------------------------------------------------------

    def fail(self, code: ResetReason) -> None:
        """A fatal error: ERROR to the host, then nothing but RST is answered."""
        self._send_frame(error_frame(code))
        self._reset_link()
        self.connected = False
        self.reset_reason = code

    def reset_by_itself(self, reason: ResetReason = ResetReason.SOFTWARE) -> None:
        """The NCP restarts (a fault, a watchdog): frames under way are lost, RSTACK is sent."""
        self._reset_link()
        self.reset_reason = reason
        self._send_frame(rstack_frame(reason))
        self.connected = True
        if self._on_reset is not None:
            self._on_reset()

    def close(self) -> None:
        """The line is gone: no more timers, nothing more is sent."""
        self._reset_link()
        self.connected = False

    def _reset_link(self) -> None:
        self._disarm()
        self._expected = 0
        self._next_frame = 0
        self._unacked.clear()
        self._queued.clear()
        self._rejecting = False
        self._timeouts = 0
        self._decoder = AshDecoder()

    def _send_frame(self, frame: Frame) -> None:
        self._write(encode(frame))
