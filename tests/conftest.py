"""Fixtures every test gets: no task may outlive its test, no log call may be malformed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import zigpy.util

LINGER_S = 2.0
"""The longest a task cancelled during a test's teardown (or a reply zigpy was sending) may take to
end before the test fails."""


class _FormatChecker(logging.Handler):
    """Formats every record it sees and remembers the ones whose %-arguments do not fit."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.broken: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.getMessage()
        except (TypeError, ValueError) as exc:
            self.broken.append(f"{record.pathname}:{record.lineno}: {record.msg!r} % {record.args!r}: {exc}")


@pytest.fixture(autouse=True)
def _log_calls_are_well_formed() -> Iterator[None]:
    """Fail a test whose code logs with arguments that do not match the format string."""
    checker = _FormatChecker()
    root = logging.getLogger()
    root.addHandler(checker)
    try:
        yield
    finally:
        root.removeHandler(checker)
    if checker.broken:
        pytest.fail("malformed log calls:\n" + "\n".join(checker.broken))


@pytest.fixture(autouse=True)
async def _no_lingering_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on its event loop (they are cancelled first)."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()

    def left_running() -> list[asyncio.Task[Any]]:
        return [task for task in asyncio.all_tasks() - before if task is not current and not task.done()]

    for _ in range(5):  # let tasks cancelled during teardown finish
        await asyncio.sleep(0)
    # A task already cancelled (a library's, cancelled by a callback as its connection closed) is on
    # its way out: it gets a moment more on a loaded machine. One still running fails the test now.
    # So is a reply zigpy was sending when the test ended (its fire-and-forget handler tasks, which
    # catch every failure): a switch's OTA query answered while the radio shuts down retries, then
    # ends by itself.
    zigpy_handlers = zigpy.util.CatchingTaskMixin._tasks
    ending = [task for task in left_running() if task.cancelling() or task in zigpy_handlers]
    if ending:
        await asyncio.wait(ending, timeout=LINGER_S)
        # A cancellation can be swallowed on the way (Python 3.11's wait_for inside a library, as
        # aiomqtt's housekeeping loop uses it): such a task, cancelled already, is cancelled once
        # more and given the same moment. A task nobody cancelled still fails the test.
        swallowed = [task for task in ending if not task.done()]
        for task in swallowed:
            task.cancel()
        if swallowed:
            await asyncio.wait(swallowed, timeout=LINGER_S)
    lingering = left_running()
    for task in lingering:
        task.cancel()
    if lingering:
        pytest.fail(f"{len(lingering)} task(s) left running: {lingering!r}")
