"""What a cached device state may hold: the definitions' exposes, and the keys the bridge adds.

state.json is read back and published as is, so a file edited by hand (or by anyone who could
write it) must not put a wrong type, an unknown key or markup into a device's state topic. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from z2m_qbkg40lm.devices.definition import DeviceDefinition
from z2m_qbkg40lm.devices.exposes import BinaryExpose, EnumExpose, NumericExpose, PropertyExpose

Check = Callable[[Any], str | None]
"""None when a value fits, else why it does not."""

IEEE_KEY = re.compile(r"^0x[0-9a-f]{16}$")

# The `update` object of the OTA extension (Zigbee2MQTT's shape).
_UPDATE_STATES = ("idle", "available", "updating", "scheduled")
_SHOWN_LENGTH = 40


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_LENGTH else text[: _SHOWN_LENGTH - 1] + "…"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(value: Any, allowed: Any) -> bool:
    """Equal and of the same type: `1` is not `True`, `1.0` is not `"1"`."""
    return type(value) is type(allowed) and value == allowed


def _binary(expose: BinaryExpose) -> Check:
    def check(value: Any) -> str | None:
        if _same(value, expose.value_on) or _same(value, expose.value_off):
            return None
        return f"{_shown(value)} is neither {expose.value_on!r} nor {expose.value_off!r}"

    return check


def _numeric(expose: NumericExpose) -> Check:
    def check(value: Any) -> str | None:
        if not _is_number(value):
            return f"{_shown(value)} is not a number"
        if expose.value_min is not None and value < expose.value_min:
            return f"{value} is below {expose.value_min}"
        if expose.value_max is not None and value > expose.value_max:
            return f"{value} is above {expose.value_max}"
        return None

    return check


def _enum(expose: EnumExpose) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in expose.values:
            return None
        return f"{_shown(value)} is not one of {', '.join(expose.values)}"

    return check


def _integer(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"{_shown(value)} is not an integer"


def _optional(kind: type, what: str) -> Check:
    def check(value: Any) -> str | None:
        if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
            return None
        return f"{_shown(value)} is not {what}"

    return check


_UPDATE_FIELDS: dict[str, Check] = {
    "state": lambda v: None if v in _UPDATE_STATES and isinstance(v, str) else f"{_shown(v)} is not a state",
    "installed_version": _optional(int, "a version number"),
    "latest_version": _optional(int, "a version number"),
    "latest_source": _optional(str, "text"),
    "latest_release_notes": _optional(str, "text"),
    "progress": lambda v: None if _is_number(v) else f"{_shown(v)} is not a number",
    "remaining": lambda v: None if _is_number(v) else f"{_shown(v)} is not a number",
}


def _update(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"{_shown(value)} is not an object"
    for key, field in value.items():
        check = _UPDATE_FIELDS.get(key)
        if check is None:
            return f"unknown field {_shown(key)}"
        problem = check(field)
        if problem is not None:
            return f"{key}: {problem}"
    return None


# Keys the bridge puts into a state beside the exposes' properties.
_BRIDGE_KEYS: dict[str, Check] = {"power_outage_count": _integer, "update": _update}


def _expose_check(expose: PropertyExpose) -> Check | None:
    if isinstance(expose, BinaryExpose):
        return _binary(expose)
    if isinstance(expose, NumericExpose):
        return _numeric(expose)
    if isinstance(expose, EnumExpose):
        return _enum(expose)
    return None


class StateSchema:
    """The checks of every cacheable property of the given definitions."""

    def __init__(self, definitions: Iterable[DeviceDefinition], uncached: Iterable[str]) -> None:
        # A property is checked against every definition exposing it; any fitting one will do.
        self._checks: dict[str, list[Check]] = {}
        for definition in definitions:
            for expose in definition.exposes:
                for feature in expose.features():
                    check = _expose_check(feature)
                    if feature.is_state() and check is not None:
                        self._checks.setdefault(feature.property, []).append(check)
        for key, check in _BRIDGE_KEYS.items():
            self._checks.setdefault(key, []).append(check)
        for key in uncached:
            self._checks.pop(key, None)

    def problem(self, key: str, value: Any) -> str | None:
        """Why `key: value` cannot be in a cached state, or None when it can."""
        checks = self._checks.get(key)
        if checks is None:
            return "unknown property"
        problems = [check(value) for check in checks]
        return None if None in problems else problems[0]

    def clean(self, state: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The state without what does not fit, and one `key (why)` line per dropped entry."""
        kept: dict[str, Any] = {}
        dropped: list[str] = []
        for key, value in state.items():
            problem = self.problem(key, value)
            if problem is None:
                kept[key] = value
            else:
                dropped.append(f"{_shown(key)[1:-1]} ({problem})")
        return kept, dropped
