"""The daemon run inside the test's event loop, with the virtual adapter and the real broker.

Unlike `tests.support.DaemonProcess`, the simulated switch is then reachable from the test: it
can be made to send any frame, and the frames the daemon sends it can be recorded and answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zigpy.zcl import foundation

from tests.support import Watcher, random_base_topic, watching, write_config
from z2m_qbkg40lm.config import load_config
from z2m_qbkg40lm.daemon import EXIT_OK, Daemon
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.switch import SimulatedSwitch
from z2m_qbkg40lm.zigbee.radio import ieee_string

Answer = Callable[[ApsFrame, foundation.ZCLHeader], list[ApsFrame] | None]
"""Answers a frame in the switch's place (None: the switch's firmware model answers it)."""


@dataclass(frozen=True)
class ReceivedFrame:
    """A ZCL frame the simulated switch received, with its header decoded."""

    frame: ApsFrame
    header: foundation.ZCLHeader
    body: bytes


@dataclass
class InProcess:
    """A running daemon, its one simulated switch, and an MQTT peer on its base topic."""

    daemon: Daemon
    switch: SimulatedSwitch
    watcher: Watcher
    ieee: str
    received: list[ReceivedFrame] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def mark(self) -> int:
        """A position in the frames the switch received: later looks can start there."""
        return len(self.received)

    def received_since(
        self, position: int, predicate: Callable[[ReceivedFrame], bool]
    ) -> list[ReceivedFrame]:
        """The frames received after a position for which the predicate holds."""
        return [frame for frame in self.received[position:] if predicate(frame)]

    async def wait_received(
        self, predicate: Callable[[ReceivedFrame], bool], *, after: int = 0, timeout: float = 10.0
    ) -> ReceivedFrame:
        """The first frame the switch received after a position for which the predicate holds."""

        async def found() -> ReceivedFrame:
            while True:
                self.arrived.clear()
                match = next(iter(self.received_since(after, predicate)), None)
                if match is not None:
                    return match
                await self.arrived.wait()

        return await asyncio.wait_for(found(), timeout)

    def send_from_switch(self, frames: list[ApsFrame]) -> None:
        """The switch sends frames of its own (as over the air)."""
        self.switch.send_own(frames)

    def _record(self, original: Callable[..., list[ApsFrame]]) -> Callable[..., list[ApsFrame]]:
        def handle(frame: ApsFrame, *, broadcast: bool = False) -> list[ApsFrame]:
            if not frame.is_zdo and frame.payload:
                try:
                    header, body = foundation.ZCLHeader.deserialize(frame.payload)
                except ValueError:
                    return original(frame, broadcast=broadcast)
                self.received.append(ReceivedFrame(frame, header, body))
                self.arrived.set()
                for answer in self.answers:
                    replies = answer(frame, header)
                    if replies is not None:
                        return replies
            return original(frame, broadcast=broadcast)

        return handle


@contextlib.asynccontextmanager
async def daemon_in_process(folder: Path, **sections: Any) -> AsyncIterator[InProcess]:
    """Start the daemon with the virtual adapter; yields once the switch published its state."""
    base = random_base_topic()
    config = write_config(folder / "configuration.yaml", base, **sections)
    daemon = Daemon(load_config(config), folder / "data")
    # As `run` sets it up: log lines at info reach the log and `bridge/logging`.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(root.setLevel, level)
        watcher = await stack.enter_async_context(watching(base))
        task = asyncio.get_running_loop().create_task(daemon.run(), name="daemon under test")
        try:
            await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
            radio = daemon._radio
            assert radio is not None
            [switch] = radio._app.simulated_switches
            ieee = ieee_string(switch.ieee)
            await watcher.wait_for(ieee, lambda m: "state" in m.json())
            running = InProcess(daemon, switch, watcher, ieee)
            switch.handle = running._record(switch.handle)  # type: ignore[method-assign]
            yield running
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 30) == EXIT_OK
