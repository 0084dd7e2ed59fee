"""The state cache: the last published state of every device, kept across restarts.

Written atomically (temporary file + rename) shortly after each change and at shutdown, so a crash
loses at most the last second of changes and never leaves a half-written file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.atomic_file import write_atomically
from z2m_qbkg40lm.bridge.state_check import IEEE_KEY, StateSchema
from z2m_qbkg40lm.devices.definition import DeviceDefinition
from z2m_qbkg40lm.devices.registry import DEFINITIONS

_LOGGER = logging.getLogger(__name__)

STATE_FILE = "state.json"
CORRUPT_STATE_FILE = "state.corrupt"
"""An unreadable state.json is kept under this name (once) for whoever wants to look into it."""
SAVE_DELAY_S = 1.0

# Zigbee2MQTT never caches these: an action is an event, not a state.
UNCACHED_KEYS = frozenset({"action", "elapsed", "duration"})


def format_states(states: dict[str, dict[str, Any]]) -> str:
    """The state cache file's text (import-z2m writes Zigbee2MQTT's states in it too)."""
    return json.dumps(states, sort_keys=True, indent=1)


class StateStore:
    """Device states keyed by IEEE address ("0x…"), persisted to `<data_dir>/state.json`."""

    def __init__(self, path: Path, definitions: Iterable[DeviceDefinition] = DEFINITIONS) -> None:
        self._path = path
        self._schema = StateSchema(definitions, UNCACHED_KEYS)
        self._states: dict[str, dict[str, Any]] = {}
        self._save_task: asyncio.Task[None] | None = None

    def load(self) -> None:
        """Read the file; an unreadable file is kept aside and the cache starts empty.

        What does not fit the device definitions (a wrong type, an unknown key) is dropped, with
        one warning naming all of it.
        """
        if not self._path.exists():
            return
        try:
            loaded = json.loads(self._path.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise TypeError(f"not a JSON object but {type(loaded).__name__}")
        except (OSError, ValueError, TypeError, RecursionError) as exc:
            aside = self._path.with_name(CORRUPT_STATE_FILE)
            _LOGGER.warning(
                "State cache %s is unreadable (%s); kept as %s, starting empty",
                self._path,
                str(exc) or type(exc).__name__,
                aside,
            )
            try:
                self._path.replace(aside)
            except OSError as moved:
                _LOGGER.warning("Cannot keep %s aside (%s)", self._path, moved.strerror)
            return
        dropped: list[str] = []
        for ieee, state in loaded.items():
            if not IEEE_KEY.match(ieee):
                dropped.append(f"{ieee[:40]!r} (not an IEEE address like 0x54ef441000abcdef)")
            elif not isinstance(state, dict):
                dropped.append(f"{ieee} (not an object)")
            else:
                kept, problems = self._schema.clean(state)
                dropped.extend(f"{ieee} {problem}" for problem in problems)
                if kept:
                    self._states[ieee] = kept
        if dropped:
            _LOGGER.warning(
                "State cache %s: dropped what does not fit the devices: %s", self._path, "; ".join(dropped)
            )

    def get(self, ieee: str) -> dict[str, Any]:
        """A copy of one device's cached state (empty when unknown)."""
        return dict(self._states.get(ieee, {}))

    def has(self, ieee: str) -> bool:
        """True when something is cached for the device."""
        return bool(self._states.get(ieee))

    def update(self, ieee: str, partial: dict[str, Any]) -> dict[str, Any]:
        """Merge a partial state (uncached keys left out) and schedule a save; returns the merged state."""
        cached = {k: v for k, v in partial.items() if k not in UNCACHED_KEYS}
        state = self._states.setdefault(ieee, {})
        if cached and any(state.get(k, object()) != v for k, v in cached.items()):
            state.update(cached)
            self._schedule_save()
        return dict(state)

    def remove(self, ieee: str) -> None:
        """Forget a device."""
        if self._states.pop(ieee, None) is not None:
            self._schedule_save()

    def _schedule_save(self) -> None:
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.get_running_loop().create_task(self._save_soon())

    async def _save_soon(self) -> None:
        await asyncio.sleep(SAVE_DELAY_S)
        self.save()

    def save(self) -> None:
        """Write the cache now, atomically."""
        try:
            write_atomically(self._path, format_states(self._states))
        except OSError:
            _LOGGER.exception("Cannot save the state cache to %s", self._path)

    async def close(self) -> None:
        """Cancel the pending delayed save and write now."""
        if self._save_task is not None and not self._save_task.done():
            self._save_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._save_task
        self.save()
