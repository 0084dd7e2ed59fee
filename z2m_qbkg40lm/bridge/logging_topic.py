"""Log records mirrored on `<base>/bridge/logging` as `{"level": …, "message": …}`, like Zigbee2MQTT.

Records of the MQTT client itself are not mirrored: "not connected, dropping message" published on
MQTT would only produce another such record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from z2m_qbkg40lm.bridge.bridge import Publisher, to_json
from z2m_qbkg40lm.redaction import protect

_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
}
_NOT_MIRRORED = ("z2m_qbkg40lm.mqtt", "aiomqtt", "paho")
_QUEUE_LIMIT = 1000


def level_name(levelno: int) -> str:
    """Zigbee2MQTT's name for a logging level."""
    if levelno >= logging.ERROR:
        return "error"
    return _LEVEL_NAMES.get(levelno, "warning" if levelno > logging.INFO else "debug")


class MqttLogHandler(logging.Handler):
    """Queues records (from any thread) for `publish_forever` to send."""

    def __init__(self, loop: asyncio.AbstractEventLoop, level: int) -> None:
        super().__init__(level)
        protect(self)  # the network key and passwords never reach MQTT, whatever the log level
        self._loop = loop
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=_QUEUE_LIMIT)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_NOT_MIRRORED):
            return
        try:
            item = (level_name(record.levelno), record.getMessage())
        except (TypeError, ValueError):
            self.handleError(record)
            return
        # A closed loop means the daemon is stopping; the console still has the record.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: tuple[str, str]) -> None:
        if not self._queue.full():
            self._queue.put_nowait(item)

    async def publish_forever(
        self, publisher: Publisher, base_topic: str, wait_connected: Callable[[], Awaitable[None]]
    ) -> None:
        """Send queued records; consecutive identical ones are sent once (as Zigbee2MQTT does).

        Records made while the broker is away wait in the queue (up to a limit) instead of being lost.
        """
        previous: str | None = None
        while True:
            level, message = await self._queue.get()
            await wait_connected()
            payload = to_json({"level": level, "message": message})
            if payload == previous:
                continue
            previous = payload
            await publisher.publish(f"{base_topic}/bridge/logging", payload)
