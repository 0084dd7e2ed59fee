"""The On/Off cluster's timed operation (OnTime, OffWaitTime, OnWithTimedOff), as pure state.

ZCL specification, On/Off cluster (0x0006), OnWithTimedOff (0x42), effect on receipt:

1. Accept-only-when-on (bit 0 of the on/off control field) set while the relay is off: the command
   is discarded.
2. Else, OffWaitTime above 0 while the relay is off: OffWaitTime = min(OffWaitTime, off wait time);
   the relay stays off.
3. Else: OnTime = max(OnTime, on time), OffWaitTime = off wait time, the relay goes on.

Then, when OnTime and OffWaitTime are both below 0xFFFF, the device updates them every tenth of a
second until both are 0: while on, OnTime counts down, and when it reaches 0 OffWaitTime becomes 0
and the relay goes off; while off, OffWaitTime counts down. (The off wait therefore guards the
relay only after it was switched off before its on time ran out: by an Off or Toggle command or a
press, the case the specification means it for.) The plain commands take part: On sets
OffWaitTime to 0 when OnTime is 0; Off sets OnTime to 0; Toggle does what On or Off would.

`OnOffTiming` holds the two attributes and whether the update runs; the switch owns the relay, the
timer (`counting()` says when it needs one) and the report when the relay goes off by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FOREVER: Final = 0xFFFF
"""An OnTime or OffWaitTime of 0xFFFF: no timed operation."""
TICK_SECONDS: Final = 0.1


@dataclass
class OnOffTiming:
    """OnTime and OffWaitTime (tenths of a second) and the update the specification runs on them."""

    on_time: int = 0
    off_wait_time: int = 0
    running: bool = False
    """The tenth-of-a-second update started by OnWithTimedOff is in progress."""

    def timed_on(
        self, relay: bool, accept_only_when_on: bool, on_time: int, off_wait_time: int
    ) -> bool | None:
        """OnWithTimedOff received: the relay afterwards, or None when the command is discarded."""
        if accept_only_when_on and not relay:
            return None
        if self.off_wait_time > 0 and not relay:
            self.off_wait_time = min(self.off_wait_time, off_wait_time)
            result = False
        else:
            self.on_time = max(self.on_time, on_time)
            self.off_wait_time = off_wait_time
            result = True
        self.running = self.on_time < FOREVER and self.off_wait_time < FOREVER
        self._settle()
        return result

    def on_received(self) -> None:
        """The On command (or a press that turns the relay on)."""
        if self.on_time == 0:
            self.off_wait_time = 0
        self._settle()

    def off_received(self) -> None:
        """The Off command (or a press that turns the relay off)."""
        self.on_time = 0
        self._settle()

    def counting(self, relay: bool) -> bool:
        """True while a tick would change something: the switch keeps its timer only then."""
        if not self.running or FOREVER in (self.on_time, self.off_wait_time):
            return False
        return self.on_time > 0 if relay else self.off_wait_time > 0

    def tick(self, relay: bool) -> bool:
        """A tenth of a second passed; True when the relay must go off now (the on time ran out)."""
        if not self.counting(relay):
            return False
        if relay:
            self.on_time -= 1
            if self.on_time == 0:
                self.off_wait_time = 0
                self.running = False
                return True
        else:
            self.off_wait_time -= 1
        self._settle()
        return False

    def power_lost(self) -> None:
        """The attributes live in RAM: a reboot clears them and ends the update."""
        self.on_time = 0
        self.off_wait_time = 0
        self.running = False

    def _settle(self) -> None:
        if self.on_time == 0 and self.off_wait_time == 0:
            self.running = False
