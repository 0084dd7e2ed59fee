"""What the simulated QBKG40LM's firmware does where the real one is not known: per-switch settings.

The settings are saved with the switch (`SimulatedSwitch.to_dict()` under `"firmware"`) and changed
on a running switch with the `simulation/firmware` request (virtual adapter and Z-Stack emulator).

- `on_with_timed_off`: the On/Off cluster implements OnWithTimedOff (0x42) and its attributes
  GlobalSceneControl, OnTime and OffWaitTime. Off: 0x42 is refused with a Default Response
  UNSUP_CLUSTER_COMMAND and the attributes are UNSUPPORTED_ATTRIBUTE, as a firmware without the
  command would answer. Whether the real QBKG40LM accepts 0x42 is UNCERTAIN.
- `prevent_reset`: the switch sends the Basic 0xFFF0 "prevent reset" report and leaves the network
  when it stays unanswered (sim/prevent_reset.py). The timings are this model's choice, not
  measured values: the real interval is UNCERTAIN. They are chosen so that a daemon that answers
  never sees a leave, and a switch survives a daemon that is away for half an hour: first report
  `prevent_reset_delay_s` (5 min) after joining or booting, then every `prevent_reset_interval_s`
  (1 h) while answered; unanswered, it is sent again every `prevent_reset_retry_s` (10 min), and
  after `prevent_reset_attempts` (4) unanswered reports in a row and one more retry wait (40 min
  after the first unanswered one) the switch leaves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final

MAX_SECONDS: Final = 7 * 24 * 3600.0
"""The longest delay a setting takes (a week): longer ones are surely typos."""
MAX_ATTEMPTS: Final = 100


class FirmwareSettingError(ValueError):
    """A firmware setting or `simulation/firmware` payload that cannot be used; the message says why."""


@dataclass(frozen=True)
class FirmwareSettings:
    """Per-switch choices of the firmware model; see the module docstring for what each does."""

    on_with_timed_off: bool = True
    prevent_reset: bool = True
    prevent_reset_delay_s: float = 300.0
    """Seconds from joining (or booting on a network) to the first report."""
    prevent_reset_interval_s: float = 3600.0
    """Seconds from an answer to the next report."""
    prevent_reset_retry_s: float = 600.0
    """Seconds from an unanswered report to the next attempt (or to leaving, after the last)."""
    prevent_reset_attempts: int = 4
    """Unanswered reports in a row after which the switch leaves the network."""

    def __post_init__(self) -> None:
        for name in self.names():
            problem = _problem(name, getattr(self, name))
            if problem is not None:
                raise FirmwareSettingError(f"{name} must be {problem}, not {getattr(self, name)!r}")

    @staticmethod
    def names() -> list[str]:
        """The setting names, as requests and the state file spell them."""
        return [each.name for each in fields(FirmwareSettings)]

    def changed(self, changes: Mapping[str, Any]) -> FirmwareSettings:
        """A copy with `changes` applied; FirmwareSettingError names an unknown key or a bad value."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            known = ", ".join(self.names())
            names = ", ".join(unknown)
            raise FirmwareSettingError(f"unknown firmware setting(s) {names}; the settings are {known}")
        values = dict(changes)
        for name in ("prevent_reset_delay_s", "prevent_reset_interval_s", "prevent_reset_retry_s"):
            if isinstance(values.get(name), int) and not isinstance(values[name], bool):
                values[name] = float(values[name])
        return replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values by name."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FirmwareSettings:
        """The inverse of `to_dict()`: missing keys take their defaults."""
        return cls().changed(data)


def _problem(name: str, value: Any) -> str | None:
    """What a setting's value must be, when `value` is not that; None when it is fine."""
    if name in ("on_with_timed_off", "prevent_reset"):
        return None if isinstance(value, bool) else "true or false"
    if name == "prevent_reset_attempts":
        whole = isinstance(value, int) and not isinstance(value, bool)
        return None if whole and 1 <= value <= MAX_ATTEMPTS else f"a whole number from 1 to {MAX_ATTEMPTS}"
    number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return None if number and 0 < value <= MAX_SECONDS else f"seconds above 0, at most {MAX_SECONDS:.0f}"


SEND_PREVENT_RESET: Final = "send_prevent_reset"
"""The `simulation/firmware` key that makes the switch send its prevent-reset report now."""
_NOT_SETTINGS: Final = frozenset({"id", "transaction"})


def firmware_request(message: Any) -> tuple[dict[str, Any], bool]:
    """A `simulation/firmware` payload: (the settings it changes, whether to send the report now).

    The payload is a JSON object with the switch's `id` (and maybe a `transaction`); every other
    key is a setting or `send_prevent_reset`. A bare string (the switch's name, as the other
    simulation requests take it) only reads. FirmwareSettingError says what is wrong.
    """
    if isinstance(message, str):
        return {}, False
    if not isinstance(message, dict):
        raise FirmwareSettingError(
            'Invalid payload: expected {"id": "<friendly name or IEEE address>", "<setting>": <value>, …}'
        )
    send = message.get(SEND_PREVENT_RESET, False)
    if not isinstance(send, bool):
        raise FirmwareSettingError(
            f"Invalid payload: {SEND_PREVENT_RESET} must be true or false, not {send!r}"
        )
    skipped = {*_NOT_SETTINGS, SEND_PREVENT_RESET}
    changes = {key: value for key, value in message.items() if key not in skipped}
    FirmwareSettings().changed(changes)  # unknown keys and bad values, named before anything changes
    return changes, send
