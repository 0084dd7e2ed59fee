"""An emulated chip's state file: its non-volatile memory and the switches, as JSON.

Every emulated coordinator keeps one (Z-Stack's NVRAM, EmberZNet's tokens): written atomically
(a temporary file beside it, fsync, rename), with the owner's permissions only (it holds the
network key), half a second after a change so that a host writing hundreds of NV items in a row
costs one write, or at once when it must not be lost (a join, a leave, a formed network, a stop).
A missing or empty file is a factory-new chip.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from z2m_qbkg40lm.atomic_file import write_atomically

SAVE_DELAY: Final = 0.5
"""Seconds a change waits for more before the file is written."""


class ChipStateFile:
    """Reads the file once and writes `snapshot()` to it, now or soon; without a path, nothing."""

    def __init__(self, path: Path | None, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._handle: asyncio.TimerHandle | None = None

    def read(self) -> dict[str, Any] | None:
        """The file's object; None for a factory-new chip; ValueError when it is no JSON object."""
        if self.path is None:
            return None
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"emulator state file {self.path} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"emulator state file {self.path} holds no JSON object")  # noqa: TRY004 - a bad file
        return data

    def save(self) -> None:
        """Write the file now (a pending timed write is dropped)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(self._snapshot(), indent=1) + "\n")

    def soon(self) -> None:
        """Write the file within SAVE_DELAY (at once when no event loop runs yet)."""
        if self.path is None or self._handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        self._handle = loop.call_later(SAVE_DELAY, self.save)

    def changed(self, *, membership: bool = False) -> None:
        """The chip's world changed: write soon, or now when switches joined or left (a membership
        a restart must not lose)."""
        if membership:
            self.save()
        else:
            self.soon()

    @property
    def pending(self) -> bool:
        """True while a timed write waits."""
        return self._handle is not None


def switches_of(path: Path) -> list[dict[str, Any]]:
    """The switch records of another emulator's state file, whatever its chip (every chip keeps
    them under "switches", in `SimulatedWorld.records()`'s form); ValueError when it has none."""
    data = ChipStateFile(path, dict).read()
    if data is None:
        raise ValueError(f"--switches-from {path}: no emulator state file there (missing or empty)")
    records = data.get("switches")
    if not isinstance(records, list) or not all(isinstance(each, dict) for each in records):
        raise ValueError(f"--switches-from {path}: no list of switches in it")
    return records
