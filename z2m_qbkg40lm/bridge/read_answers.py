"""Collects the answers of one command's reads, so its result can report the values read."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from z2m_qbkg40lm.devices.definition import AttributeMessage, ReadAttributes, ZclOperation
from z2m_qbkg40lm.devices.registry import convert_inbound
from z2m_qbkg40lm.zigbee import events as ev

if TYPE_CHECKING:
    from z2m_qbkg40lm.bridge.bridge import Bridge

_LOGGER = logging.getLogger(__name__)


class ReadAnswers:
    """The values one command's reads brought back, for its `CommandResult`.

    zigpy puts a read's answer on the radio event queue before `execute()` returns, and
    `run_radio_events` applies it a moment later. To report the values read, a command watches
    those events: for as long as it runs, this object is among the bridge's read watchers (called
    once an event has been applied) and collects the answers it expects, converted like any
    attribute. `wait()` returns once all arrived, or after
    `TIMEOUT_S` with what did.
    """

    TIMEOUT_S = 5.0

    def __init__(self, bridge: Bridge, ieee: str) -> None:
        self._bridge = bridge
        self._ieee = ieee
        device = bridge._radio.device(ieee)
        self._definition = None if device is None else bridge.definition_of(device)
        self._options = bridge.device_config(ieee).converter_options()
        self._missing: set[tuple[int, int, int]] = set()
        self._complete = asyncio.Event()
        self._values: dict[str, Any] = {}

    async def __aenter__(self) -> ReadAnswers:
        self._bridge.read_watchers.add(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._bridge.read_watchers.discard(self)

    def expect(self, operations: tuple[ZclOperation, ...]) -> set[tuple[int, int, int]]:
        """Note the answers that these operations' reads will bring; returns their keys."""
        if self._definition is None:
            return set()
        keys = {
            (operation.endpoint, operation.cluster_id, attribute_id)
            for operation in operations
            if isinstance(operation, ReadAttributes)
            for attribute_id in operation.attribute_ids
        }
        self._missing |= keys
        return keys

    def forget(self, keys: set[tuple[int, int, int]]) -> None:
        """Stop expecting answers (their read failed)."""
        self._missing -= keys

    async def on_radio_event(self, event: ev.RadioEvent) -> None:
        """Collect an expected read answer."""
        if not isinstance(event, ev.AttributeReceived) or event.ieee != self._ieee or event.kind != "read":
            return
        key = (event.endpoint, event.cluster_id, event.attribute_id)
        if key not in self._missing or self._definition is None:
            return
        message = AttributeMessage(event.endpoint, event.cluster_id, event.attribute_id, event.value, "read")
        self._values.update(convert_inbound(self._definition, message, self._options))
        self._missing.discard(key)
        if not self._missing:
            self._complete.set()

    async def wait(self) -> dict[str, Any]:
        """The converted values read, once every expected answer was applied (or the time is up)."""
        if self._missing:
            self._complete.clear()
            try:
                await asyncio.wait_for(self._complete.wait(), self.TIMEOUT_S)
            except TimeoutError:
                _LOGGER.warning(
                    "Read answers from '%s' were not applied within %s s",
                    self._bridge.friendly_name(self._ieee),
                    self.TIMEOUT_S,
                )
        return dict(self._values)
