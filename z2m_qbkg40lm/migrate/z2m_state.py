"""Zigbee2MQTT's state.json: the last state of each device (keyed "0x…") and group (keyed by number).

The daemon keeps the same shape (bridge/state.py), so a device's state carries over as it is,
less what the daemon's devices do not expose (it would drop that with a warning at start).
Group states are left out: the daemon has no groups.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.bridge.state import UNCACHED_KEYS
from z2m_qbkg40lm.bridge.state_check import StateSchema
from z2m_qbkg40lm.devices.registry import DEFINITIONS
from z2m_qbkg40lm.migrate.errors import MigrationError, read_json_file

STATE_FILE = "state.json"
_IEEE = re.compile(r"^0x[0-9a-fA-F]{16}$")


@dataclass(frozen=True)
class Z2mState:
    """Device states by IEEE address ("0x…", lower case), as the file holds them."""

    devices: dict[str, dict[str, Any]]
    groups: int


def read_z2m_state(path: Path) -> Z2mState:
    """Read state.json; a missing file is an empty state (Zigbee2MQTT may run without one)."""
    if not path.exists():
        return Z2mState(devices={}, groups=0)
    loaded = read_json_file(path)
    if not isinstance(loaded, dict):
        raise MigrationError(path, f"expected a JSON object of states, found {type(loaded).__name__}")
    devices: dict[str, dict[str, Any]] = {}
    groups = 0
    for key, state in loaded.items():
        if key.isdigit():
            groups += 1
        elif not _IEEE.match(key):
            raise MigrationError(path, f"{key[:40]!r} is neither an IEEE address nor a group number")
        elif not isinstance(state, dict):
            raise MigrationError(path, f"the state of {key} is not an object")
        else:
            devices[key.lower()] = state
    return Z2mState(devices=devices, groups=groups)


def daemon_states(states: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], int]:
    """The states as the daemon's cache keeps them, and how many values were left out."""
    schema = StateSchema(DEFINITIONS, UNCACHED_KEYS)
    kept: dict[str, dict[str, Any]] = {}
    dropped = 0
    for ieee, state in states.items():
        clean, problems = schema.clean(state)
        dropped += len(problems)
        if clean:
            kept[ieee] = clean
    return kept, dropped


def format_state(states: dict[str, dict[str, Any]]) -> str:
    """state.json's text, indented as Zigbee2MQTT writes it."""
    return json.dumps(states, indent=4)
