"""What one command brings back from its device while it runs, so that it makes one state message.

A `/set` or `/get` may cause several frames from the device: the answers of its reads (a `/get`
of `state` and `operation_mode` reads two clusters; `operation_mode`'s `/set` reads the mode back),
the report that confirms an On/Off command, and with `last_seen` every frame. Published one by one
they would be several state messages for one command. So while a command runs, the bridge hands
its device's converted attributes to the command's capture instead of publishing them: the answers
of its own reads become part of the command's one message, the other reports are held and
published after it (those that merely repeat it are left out), and presses are never held.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from z2m_qbkg40lm.devices.definition import ReadAttributes, ZclOperation

_LOGGER = logging.getLogger(__name__)

AnswerKey = tuple[int, int, int]
"""(endpoint, cluster id, attribute id) of an expected read answer."""


@dataclass(frozen=True)
class HeldReport:
    """A device report that arrived during a command, published after the command's message."""

    partial: dict[str, Any]
    kind: str


class ReadAnswers:
    """The read answers one command expects, and the device's other reports while it runs.

    `wait()` returns once every expected answer arrived, or after `TIMEOUT_S` with what did.
    """

    TIMEOUT_S = 5.0

    def __init__(self, device_name: str) -> None:
        self._device_name = device_name
        self._missing: set[AnswerKey] = set()
        self._complete = asyncio.Event()
        self._values: dict[str, Any] = {}
        self.held: list[HeldReport] = []

    def expect(self, operations: tuple[ZclOperation, ...]) -> set[AnswerKey]:
        """Note the answers that these operations' reads will bring; returns their keys."""
        keys = {
            (operation.endpoint, operation.cluster_id, attribute_id)
            for operation in operations
            if isinstance(operation, ReadAttributes)
            for attribute_id in operation.attribute_ids
        }
        self._missing |= keys
        return keys

    def forget(self, keys: set[AnswerKey]) -> None:
        """Stop expecting answers (their read failed)."""
        self._missing -= keys
        if not self._missing:
            self._complete.set()

    def take(self, key: AnswerKey, kind: str, partial: dict[str, Any]) -> bool:
        """Take a converted attribute of the device: an expected read answer joins the command's
        values, another report is held; a press is not taken (False: publish it now)."""
        if kind == "read" and key in self._missing:
            self._values.update(partial)
            self._missing.discard(key)
            if not self._missing:
                self._complete.set()
            return True
        if "action" in partial:
            return False
        self.held.append(HeldReport(dict(partial), kind))
        return True

    async def wait(self) -> dict[str, Any]:
        """The converted values read, once every expected answer was taken (or the time is up)."""
        if self._missing:
            self._complete.clear()
            try:
                await asyncio.wait_for(self._complete.wait(), self.TIMEOUT_S)
            except TimeoutError:
                _LOGGER.warning(
                    "Read answers from '%s' were not applied within %s s", self._device_name, self.TIMEOUT_S
                )
        return dict(self._values)
