"""Extensions: the features that sit beside the bridge's core (Zigbee2MQTT's own architecture).

The core (`Bridge`) owns device state, `/set` and `/get`. Everything else — the bridge API topics,
availability, Home Assistant discovery, command feedback, the settings guard — is an `Extension`
that the bridge calls at a few well-defined moments. Each hook is awaited in turn; an exception in
one extension is logged and never reaches the others or the bridge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from z2m_qbkg40lm.config import Config
from z2m_qbkg40lm.zigbee import events as ev

if TYPE_CHECKING:
    from z2m_qbkg40lm.bridge.bridge import Bridge
    from z2m_qbkg40lm.mqtt.client import MqttClient
    from z2m_qbkg40lm.zigbee.radio import Radio

RequestHandler = Callable[[Any], Awaitable[dict[str, Any]]]
"""A bridge request handler: the parsed payload in, the response's `data` out (raise RequestError)."""


class RequestError(Exception):
    """A bridge request that cannot be served; the message goes into the error response."""


@dataclass(frozen=True)
class CommandResult:
    """How one `/set` or `/get` message ended, once every Zigbee exchange it caused is over.

    `ieee` is None when the device named in the topic is unknown; `error` is None on success;
    `transaction` is the caller's own id, when the payload carried one. `applied`: the properties
    carried out (or read) although others failed.
    """

    device: str
    ieee: str | None
    action: Literal["set", "get"]
    properties: dict[str, Any]
    error: str | None
    transaction: Any = None
    state: dict[str, Any] = field(default_factory=dict)
    applied: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Context:
    """What an extension may use: the configuration, the core, the radio and the broker."""

    config: Config
    config_path: Path
    data_dir: Path
    bridge: Bridge
    radio: Radio
    mqtt: MqttClient
    request_restart: Callable[[], None]


class Extension:
    """Base class: every hook does nothing until overridden."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def request_handlers(self) -> dict[str, RequestHandler]:
        """Bridge requests this extension serves, by lower-case path (`device/rename`)."""
        return {}

    def topic_filters(self) -> list[str]:
        """Extra MQTT subscriptions (outside the command topics), e.g. `homeassistant/status`."""
        return []

    async def start(self) -> None:
        """Called once, after the radio started and before the first MQTT connection."""

    async def stop(self) -> None:
        """Called once at shutdown, while MQTT may still be connected."""

    async def on_connected(self) -> None:
        """After every (re)connect, once the bridge has published `bridge/state` online."""

    async def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message on one of `topic_filters()`."""

    async def on_radio_event(self, event: ev.RadioEvent) -> None:
        """Every radio event, after the bridge has applied it."""

    async def on_state_published(self, ieee: str, payload: dict[str, Any]) -> None:
        """A device state message was just published (or kept while disconnected)."""

    async def on_command_result(self, result: CommandResult) -> None:
        """A `/set` or `/get` message has been carried out or refused."""

    async def on_device_renamed(
        self, ieee: str, old_name: str, new_name: str, homeassistant_rename: bool = False
    ) -> None:
        """A device got a new friendly name (its topics move); `homeassistant_rename` asks for new
        Home Assistant entity ids too."""

    async def on_device_options_changed(self, ieee: str) -> None:
        """A device's settings changed at run time (`bridge.settings` already holds the new ones)."""

    async def on_device_removed(self, ieee: str, name: str) -> None:
        """A device was removed from the network and the configuration."""
