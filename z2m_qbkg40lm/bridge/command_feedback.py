"""A response for every `/set` and `/get` that carries the caller's transaction id (not in Zigbee2MQTT).

Zigbee2MQTT only logs a command that failed (zigbee2mqtt issues 5579 and 30679). Here a caller that
puts `"transaction": <id>` in the JSON object of `<base>/<FN>/set` or `<base>/<FN>/get` gets one
message on `<base>/<FN>/response/<set|get>` once the Zigbee exchange is over or the command was
refused, in the shape of Zigbee2MQTT's proposal (PR #30774) and of its bridge responses:

    {"data":{"state":"ON"},"status":"ok","transaction":"a1"}
    {"data":{},"error":"Publish 'set' 'state' to 'hall_switch' failed: '…did not answer'",
     "status":"error","transaction":"a1"}
    {"data":{"state":"ON"},"error":"No converter available for 'brightness' on 'hall_switch': …",
     "status":"error","transaction":"a2"}

`FN` is the device as the command's topic named it (friendly name or IEEE address). Not retained,
QoS 1: a script waits for exactly this message. Without a transaction nothing is published, as
in Zigbee2MQTT; `/set/<property>` and `/get/<property>` carry a plain value, so no transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from z2m_qbkg40lm.bridge.bridge import to_json
from z2m_qbkg40lm.bridge.extension import CommandResult, Extension
from z2m_qbkg40lm.bridge.topics import DeviceCommand, parse_topic

_LOGGER = logging.getLogger(__name__)

RESPONSE_QOS = 1


def response_topic(base_topic: str, device: str, action: str) -> str:
    """Where the result of a `/set` or `/get` addressed to `device` is published."""
    return f"{base_topic}/{device}/response/{action}"


def response_payload(result: CommandResult) -> dict[str, Any]:
    """The response message for a command result (its transaction included).

    `data` holds each property of the command as applied (`/set`: the value the device now has,
    e.g. `ON` for a `toggle`) or as read (`/get`). On error (some property failed) `data` holds
    the properties that were carried out all the same, and is empty when none was.
    """
    done = (
        result.properties
        if result.error is None
        else {prop: value for prop, value in result.properties.items() if prop in result.applied}
    )
    if result.action == "get":
        data = {prop: result.state.get(prop) for prop in done}
    else:
        data = {prop: result.state.get(prop, value) for prop, value in done.items()}
    payload: dict[str, Any] = {"data": data, "status": "ok"}
    if result.error is not None:
        payload = {"data": data, "error": result.error, "status": "error"}
    payload["transaction"] = result.transaction
    return payload


class CommandFeedback(Extension):
    """Publishes the result of every command whose payload had a transaction id."""

    async def on_command_result(self, result: CommandResult) -> None:
        """Answer the caller on `<base>/<device>/response/<action>` when it gave a transaction."""
        if result.transaction is None:
            return
        base = self.context.config.mqtt.base_topic
        topic = response_topic(base, result.device, result.action)
        looped = parse_topic(base, topic)
        if isinstance(looped, DeviceCommand) and self.context.bridge.resolve(looped.device) is not None:
            # A device named '<this one>/response' would take the response for a command to it.
            _LOGGER.warning(
                "Not publishing the result of '%s' on '%s': that is a command topic of device '%s'",
                result.action,
                topic,
                looped.device,
            )
            return
        published = await self.context.mqtt.publish(
            topic, to_json(response_payload(result)), qos=RESPONSE_QOS
        )
        if not published:
            _LOGGER.warning(
                "The result of '%s' on '%s' was lost: not connected to the broker", result.action, topic
            )
