"""Answers the devices ask for: a definition's responders, carried out through the radio.

Lumi switches report Basic 0xFFF0 `aa 10 05 41 87 …` and expect the hub to write back; left
unanswered, they can reset themselves. The definition says which messages need an answer and what
it is (`DeviceDefinition.responders`, pure); this extension sends it.

The answer goes out at once, beside any `/set` under way for the device rather than behind the
device's command line (as in Zigbee2MQTT, which sends it from its inbound converter): it touches
none of the properties a command changes, zigpy keeps concurrent exchanges apart by transaction
number (and caps how many run per device), and commands queued for a slow device must not hold
back the answer the switch is waiting for. It runs as a
task of its own, so that the radio events behind the report are not held up while it waits for the
device's Write Attributes Response. One answer per device and responder is under way at a time; a
repeated request meanwhile is left to that answer.
"""

from __future__ import annotations

import asyncio
import logging

from z2m_qbkg40lm.bridge.extension import Context, Extension
from z2m_qbkg40lm.devices.definition import AttributeMessage, Response, WriteAttribute, ZclOperation
from z2m_qbkg40lm.devices.registry import responses
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError, describe

_LOGGER = logging.getLogger(__name__)


class DeviceResponders(Extension):
    """Sends the answers that device definitions give to attribute reports."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._answers: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def stop(self) -> None:
        """Cancel answers still waiting for their device."""
        tasks = list(self._answers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def on_radio_event(self, event: ev.RadioEvent) -> None:
        """Answer an attribute report when the device's definition has a responder for it."""
        if not isinstance(event, ev.AttributeReceived):
            return
        device = self.context.radio.device(event.ieee)
        definition = None if device is None else self.context.bridge.definition_of(device)
        if definition is None or not definition.responders:
            return
        message = event.message()
        for response in responses(definition, message):
            self._answer(event.ieee, message, response)

    def _answer(self, ieee: str, message: AttributeMessage, response: Response) -> None:
        answers = self._answers
        key = (ieee, response.name)
        running = answers.get(key)
        if running is not None and not running.done():
            _LOGGER.debug(
                "'%s' asked again (%s) while the answer is under way",
                self.context.bridge.friendly_name(ieee),
                response.name,
            )
            return
        task = asyncio.get_running_loop().create_task(
            self._send(ieee, message, response), name=f"{response.name} {ieee}"
        )
        answers[key] = task
        task.add_done_callback(lambda done: answers.pop(key, None) if answers.get(key) is done else None)

    async def _send(self, ieee: str, message: AttributeMessage, response: Response) -> None:
        name = self.context.bridge.friendly_name(ieee)
        asked = _shown(message)
        sent = ", ".join(_described(operation) for operation in response.operations)
        try:
            await self.context.radio.execute(ieee, response.operations)
        except DeviceCommandError as exc:
            _LOGGER.warning(
                "Could not answer the %s request of '%s' (%s): %s", response.name, name, asked, exc
            )
            return
        except Exception:
            _LOGGER.exception("Could not answer the %s request of '%s' (%s)", response.name, name, asked)
            return
        _LOGGER.info("Answered the %s request of '%s' (%s) with the %s", response.name, name, asked, sent)


def _value(value: object) -> str:
    return bytes(value).hex(" ") if isinstance(value, bytes | bytearray | memoryview) else repr(value)


def _shown(message: AttributeMessage) -> str:
    """The message as a log shows it: cluster/attribute, the value (hex for bytes), the endpoint."""
    return (
        f"0x{message.cluster_id:04x}/0x{message.attribute_id:04x} {_value(message.value)}"
        f" from endpoint {message.endpoint}"
    )


def _described(operation: ZclOperation) -> str:
    """An operation as the log shows it: a write with its value and endpoint."""
    if isinstance(operation, WriteAttribute):
        return f"{describe(operation)} = {_value(operation.value)} on endpoint {operation.endpoint}"
    return describe(operation)
