"""The "prevent reset" exchange of the Lumi E1 family, switch side (qbkg40lm-zigbee.md §8).

The switch reports Basic (0x0000) attribute 0xFFF0, an octet string starting `aa 10 05 41 87`; the
stock hub answers with a write of Basic 0xFFF0 = `aa 10 05 41 47 01 01 10 01` (type 0x41,
manufacturer code 0x115F) on endpoint 1. Without the answer these devices can reset themselves.

The model (the real schedule is UNCERTAIN; the reference only knows the trigger from a long
press): once joined, the switch sends the report `prevent_reset_delay_s` after joining or booting,
late enough for the coordinator to have interviewed it and to know its model, which a hub needs to
answer. An answer (that exact write, with that manufacturer code; a write of any other value is
refused with INVALID_VALUE) clears the count of unanswered reports and the next report follows
`prevent_reset_interval_s` later. An unanswered report is sent again every `prevent_reset_retry_s`;
when `prevent_reset_attempts` reports in a row went unanswered and one more retry wait passed,
the switch leaves the network, as after a factory reset: the coordinator sees it leave, and the
switch forgets the network (it needs pairing again). See sim/firmware_settings.py for the defaults.

Choices: the report is manufacturer-specific (code 0x115F, the answer's code), from endpoint 1 with
the default response disabled, like the switch's other reports. A silent switch (`responsive` off)
neither sends nor counts attempts: silence stands for a radio problem the tests want to outlast, not
for a hub that ignores the switch. The count is not saved: a restarted simulation starts the cycle
afresh (first report after the delay), as a reboot does. With `prevent_reset` off the switch never
sends the report and never leaves for this reason.
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, Literal

import zigpy.types as t

from z2m_qbkg40lm.devices.qbkg40lm import HA_PROFILE, LUMI_MANUFACTURER_CODE, SWITCH_ENDPOINT
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.ota_client import SwitchLink, Timer

if TYPE_CHECKING:
    from z2m_qbkg40lm.sim.firmware_settings import FirmwareSettings
    from z2m_qbkg40lm.sim.switch import SimulatedSwitch

LOGGER = logging.getLogger(__name__)

BASIC_CLUSTER: Final = 0x0000
ATTR_PREVENT_RESET: Final = 0xFFF0
OCTET_STRING: Final = 0x41
TRIGGER: Final = bytes.fromhex("aa 10 05 41 87 01 01 10 00")
"""The value the switch reports."""
ANSWER: Final = bytes.fromhex("aa 10 05 41 47 01 01 10 01")
"""The value the hub writes back."""
_REPORT_FRAME_CONTROL: Final = 0x1C
"""Global command, manufacturer-specific, server to client, default response disabled."""
_REPORT_ATTRIBUTES: Final = 0x0A

Step = Literal["first", "periodic", "retry"]


def report_frame(tsn: int) -> ApsFrame:
    """The trigger report: `1C 5F 11 tt 0A F0 FF 41 09 aa 10 05 41 87 01 01 10 00`."""
    payload = (
        bytes([_REPORT_FRAME_CONTROL])
        + t.uint16_t(LUMI_MANUFACTURER_CODE).serialize()
        + bytes([tsn, _REPORT_ATTRIBUTES])
        + t.uint16_t(ATTR_PREVENT_RESET).serialize()
        + bytes([OCTET_STRING, len(TRIGGER)])
        + TRIGGER
    )
    return ApsFrame(SWITCH_ENDPOINT, 1, HA_PROFILE, BASIC_CLUSTER, payload)


class PreventReset:
    """One switch's prevent-reset cycle: when to report, the unanswered count, the leave."""

    def __init__(self, switch: SimulatedSwitch) -> None:
        self._switch = switch
        self._link: SwitchLink | None = None
        self._timer: Timer | None = None
        self._step: Step | None = None
        self.unanswered = 0
        """Reports sent since the last answer."""
        self.reports = 0
        """Reports sent since the switch was created (answered or not)."""
        self.answers = 0
        """Answers received since the switch was created."""

    def attach(self, link: SwitchLink | None) -> None:
        """The switch is put on a radio (the cycle starts if it is joined) or taken off it (it stops)."""
        self.stop()
        self._link = link
        if link is not None and self._switch.joined:
            self.start()

    def start(self) -> None:
        """The switch joined or booted on a network: the first report after the delay."""
        self.unanswered = 0
        self._schedule("first")

    def stop(self) -> None:
        """No more reports (power lost, left the network, taken off the radio)."""
        self._cancel()
        self._step = None
        self.unanswered = 0

    def answered(self) -> None:
        """The hub wrote the answer: the count starts again, the next report in an interval."""
        self.answers += 1
        self.unanswered = 0
        LOGGER.debug("Switch %s: prevent-reset answer received", self._switch.ieee)
        if self._step is not None:
            self._schedule("periodic")

    def why_not(self, settings: FirmwareSettings) -> str:
        """Why the report cannot be sent now with these settings (empty when it can)."""
        switch = self._switch
        if not settings.prevent_reset:
            return "prevent_reset is off: the switch sends no prevent-reset report"
        if self._link is None:
            return "the switch is on no running radio"
        if not switch.joined or switch.left:
            return "the switch is not on a network"
        if not switch.responsive:
            return "the switch is silent: nothing it sends leaves it"
        return ""

    def can_send(self, settings: FirmwareSettings) -> bool:
        """True when `send_now()` would send the report."""
        return not self.why_not(settings)

    def send_now(self) -> bool:
        """Send the report now (an attempt, the retry wait restarts); False when it cannot leave."""
        if not self.can_send(self._switch.firmware):
            return False
        self._send()
        return True

    def settings_changed(self) -> None:
        """New timings apply from now to the wait in progress; switched off, the cycle stops."""
        if not self._switch.firmware.prevent_reset:
            self.stop()
        elif self._step is not None:
            self._schedule(self._step)
        elif self._link is not None and self._switch.joined and not self._switch.left:
            self.start()

    def status(self) -> dict[str, Any]:
        """What the cycle is doing: `waiting_for` (first, periodic, retry or null) and the counts."""
        return {
            "waiting_for": self._step,
            "unanswered": self.unanswered,
            "reports": self.reports,
            "answers": self.answers,
        }

    # --- the cycle ------------------------------------------------------------------------------

    def _due(self) -> None:
        self._timer = None
        settings = self._switch.firmware
        if self.unanswered >= settings.prevent_reset_attempts:
            LOGGER.warning(
                "Switch %s: %d prevent-reset report(s) in a row unanswered: it leaves the network",
                self._switch.ieee,
                self.unanswered,
            )
            self._step = None
            self._switch.leave_network()
            return
        if self._switch.responsive:
            self._send()
        else:
            self._schedule("retry")  # silent: nothing leaves, nothing is counted

    def _send(self) -> None:
        self.unanswered += 1
        self.reports += 1
        LOGGER.debug("Switch %s: prevent-reset report (%d unanswered)", self._switch.ieee, self.unanswered)
        self._schedule("retry")
        self._switch.send_own([report_frame(self._switch.next_tsn())])

    def _schedule(self, step: Step) -> None:
        self._cancel()
        settings = self._switch.firmware
        if self._link is None or not settings.prevent_reset:
            self._step = None
            return
        delay = {
            "first": settings.prevent_reset_delay_s,
            "periodic": settings.prevent_reset_interval_s,
            "retry": settings.prevent_reset_retry_s,
        }[step]
        self._step = step
        self._timer = self._link.call_later(delay, self._due)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
