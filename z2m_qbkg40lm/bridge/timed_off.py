"""The daemon's own off timer, for a switch that refuses On/Off `OnWithTimedOff` (0x42).

`{"state": "ON", "on_time": 30}` to such a switch becomes On now and, from this timer, Off 30 s
later. What users expect of it, and what it does:

- A newer `/set` of `state` (any value) cancels the pending off: the newer command wins. So does a
  report of the device saying it is already off (the rocker, a power cut). A newer
  `{"state": "ON", "on_time": …}` starts the countdown again with the new time.
- A daemon restart neither loses nor repeats it: pending offs are kept in `timed_off.json` in the
  data directory (written atomically, private), with the wall-clock time they are due. On start
  an off whose time passed while the daemon was not running is sent at once; the others are armed
  again for the time left. A shutdown keeps the file as it is.
- The off goes to the device, not to its name: a rename keeps it; a removal drops it.
- It is sent once (through the device's line of commands, between two commands, never during
  one); a device that does not answer gets an error on `bridge/logging` and the relay stays on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.atomic_file import write_atomically
from z2m_qbkg40lm.devices.definition import (
    ClusterCommand,
    ReadAttributes,
    State,
    WriteAttribute,
    ZclOperation,
)

_LOGGER = logging.getLogger(__name__)

TIMED_OFF_FILE = "timed_off.json"
FILE_VERSION = 1

_OPERATION_TYPES: dict[str, type[ClusterCommand] | type[WriteAttribute] | type[ReadAttributes]] = {
    "ClusterCommand": ClusterCommand,
    "WriteAttribute": WriteAttribute,
    "ReadAttributes": ReadAttributes,
}


@dataclass(frozen=True)
class PendingOff:
    """An off the timer will send: to which device, when (epoch seconds), what, and the state after."""

    ieee: str
    due: float
    operations: tuple[ZclOperation, ...]
    state: State


Fire = Callable[[PendingOff], Awaitable[None]]


def encode_operation(operation: ZclOperation) -> dict[str, Any]:
    """A ZCL operation as JSON-ready data (its class name and fields)."""
    return {"type": type(operation).__name__, **dataclasses.asdict(operation)}


def decode_operation(data: Mapping[str, Any]) -> ZclOperation:
    """The ZCL operation `encode_operation` wrote; ValueError when the data is not one."""
    fields = dict(data)
    kind = _OPERATION_TYPES.get(str(fields.pop("type", "")))
    if kind is None:
        raise ValueError(f"unknown operation type {data.get('type')!r}")
    for name in ("args", "attribute_ids"):
        if isinstance(fields.get(name), list):
            fields[name] = tuple(fields[name])
    try:
        return kind(**fields)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


class TimedOffs:
    """The pending offs, one per device at most, each with its own waiting task."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._path = path
        self._clock = clock
        self._sleep = sleep
        self._pending: dict[str, PendingOff] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._firing: set[str] = set()
        self._fire: Fire | None = None
        self._name: Callable[[str], str] = str

    def bind(self, fire: Fire, name: Callable[[str], str] = str) -> None:
        """Who sends an off when it is due (the bridge, through the device's line), and how a
        device is named in the log (its friendly name)."""
        self._fire = fire
        self._name = name

    def pending(self, ieee: str) -> PendingOff | None:
        """The device's pending off, if any."""
        return self._pending.get(ieee)

    async def start(self) -> None:
        """Load the offs pending when the daemon last stopped: send the overdue ones now, arm the rest."""
        for pending in self._load():
            overdue = self._clock() - pending.due
            if overdue >= 0:
                _LOGGER.info(
                    "The off of '%s' was due at %s while the daemon was not running: sending it now",
                    self._name(pending.ieee),
                    datetime.fromtimestamp(pending.due, UTC).isoformat(timespec="seconds"),
                )
            else:
                _LOGGER.info("Off of '%s' armed again: due in %.1f s", self._name(pending.ieee), -overdue)
            self._arm(pending)

    async def stop(self) -> None:
        """Stop every countdown; the file keeps the pending offs for the next start."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def arm(self, ieee: str, delay_s: float, operations: tuple[ZclOperation, ...], state: State) -> None:
        """Send `operations` to the device after `delay_s` seconds (replacing its pending off)."""
        self.cancel(ieee, "a new on_time")
        self._arm(PendingOff(ieee, self._clock() + delay_s, operations, dict(state)))
        self._save()

    def cancel(self, ieee: str, reason: str) -> bool:
        """Drop the device's pending off (not one being sent); True when there was one."""
        if ieee in self._firing or ieee not in self._pending:
            return False
        del self._pending[ieee]
        task = self._tasks.pop(ieee, None)
        if task is not None:
            task.cancel()
        _LOGGER.info("Pending off of '%s' cancelled: %s", self._name(ieee), reason)
        self._save()
        return True

    def cancel_for_keys(self, ieee: str, keys: Iterable[str], reason: str) -> bool:
        """Cancel the pending off when `keys` touch what it would change (a newer `/set` of state)."""
        pending = self._pending.get(ieee)
        if pending is None or pending.state.keys().isdisjoint(keys):
            return False
        return self.cancel(ieee, reason)

    def cancel_when_reached(self, ieee: str, state: Mapping[str, Any]) -> bool:
        """Cancel the pending off when the device reports the state it would bring (already off)."""
        pending = self._pending.get(ieee)
        if pending is None or not pending.state:
            return False
        if any(state.get(key, object()) != value for key, value in pending.state.items()):
            return False
        return self.cancel(ieee, "the device reported it is already off")

    def forget(self, ieee: str) -> None:
        """The device was removed: drop its pending off without a word."""
        if self._pending.pop(ieee, None) is not None:
            task = self._tasks.pop(ieee, None)
            if task is not None:
                task.cancel()
            self._save()

    def _arm(self, pending: PendingOff) -> None:
        self._pending[pending.ieee] = pending
        task = asyncio.get_running_loop().create_task(self._countdown(pending), name=f"off {pending.ieee}")
        self._tasks[pending.ieee] = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("%s failed: %r", task.get_name(), task.exception(), exc_info=task.exception())

    async def _countdown(self, pending: PendingOff) -> None:
        await self._sleep(max(0.0, pending.due - self._clock()))
        self._firing.add(pending.ieee)
        try:
            if self._fire is not None:
                await self._fire(pending)
        except asyncio.CancelledError:
            # Shutting down while sending: kept in the file, sent on the next start (an off sent
            # twice is harmless, an off lost leaves the relay on).
            self._firing.discard(pending.ieee)
            raise
        self._firing.discard(pending.ieee)
        if self._pending.get(pending.ieee) is pending:
            del self._pending[pending.ieee]
            self._save()
        if self._tasks.get(pending.ieee) is asyncio.current_task():
            del self._tasks[pending.ieee]

    def _load(self) -> list[PendingOff]:
        if self._path is None or not self._path.exists():
            return []
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            offs = data["offs"]
            loaded = [
                PendingOff(
                    ieee=str(ieee),
                    due=float(entry["due"]),
                    operations=tuple(decode_operation(op) for op in entry["operations"]),
                    state=dict(entry["state"]),
                )
                for ieee, entry in offs.items()
            ]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            _LOGGER.warning(
                "Pending offs in %s are unreadable (%s): none is sent",
                self._path,
                str(exc) or type(exc).__name__,
            )
            return []
        return loaded

    def _save(self) -> None:
        if self._path is None:
            return
        offs = {
            ieee: {
                "due": pending.due,
                "operations": [encode_operation(op) for op in pending.operations],
                "state": pending.state,
            }
            for ieee, pending in sorted(self._pending.items())
        }
        try:
            text = json.dumps({"version": FILE_VERSION, "offs": offs}, sort_keys=True, indent=1)
        except (TypeError, ValueError) as exc:
            _LOGGER.warning("Pending offs cannot be kept across a restart (%s)", exc)
            return
        try:
            write_atomically(self._path, text)
        except OSError:
            _LOGGER.exception("Cannot save the pending offs to %s", self._path)
