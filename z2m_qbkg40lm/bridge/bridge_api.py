"""Zigbee2MQTT's bridge API: `bridge/info`, `bridge/devices`, `bridge/groups`, `bridge/event`, and
the requests `permit_join`, `restart`, `options` and `device/...` (those in `device_requests`).

`bridge/info` and `bridge/devices` are retained and published on every connect and whenever what
they show changes. Radio events (joins, interview steps, announcements, leaves) only mark
`bridge/devices` stale: it is built once the events pause for `DEVICES_QUIET_S`, and at the latest
`DEVICES_MAX_DELAY_S` after the first one, so that a network joining or starting up costs a few
publishes rather than one per event. Requests publish it at once, before their response.

The order guarantee: while `bridge/devices` is stale, every `bridge/event` is held back and
published, in order, right after the next `bridge/devices`. So each event follows a
`bridge/devices` built after the event happened, and a client reacting to the event finds the
device in the list in at least the state the event describes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from z2m_qbkg40lm import __version__
from z2m_qbkg40lm.bridge.bridge import to_json
from z2m_qbkg40lm.bridge.bridge_info import info_payload, merge, running_config
from z2m_qbkg40lm.bridge.config_writer import (
    ConfigEditError,
    Delete,
    Edit,
    SetValue,
    apply_to_data,
    load_document,
    save_edits,
)
from z2m_qbkg40lm.bridge.device_requests import DeviceRequests
from z2m_qbkg40lm.bridge.devices_info import (
    InterviewState,
    coordinator_json,
    definition_json,
    device_json,
    interview_state,
)
from z2m_qbkg40lm.bridge.extension import Context, Extension, RequestError, RequestHandler
from z2m_qbkg40lm.bridge.logging_topic import MqttLogHandler
from z2m_qbkg40lm.bridge.mqtt_options import options_refusal
from z2m_qbkg40lm.config import Config, ConfigError, parse_config
from z2m_qbkg40lm.devices.registry import find_definition
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError
from z2m_qbkg40lm.zigbee.radio import DeviceDetails

_LOGGER = logging.getLogger(__name__)

MAX_PERMIT_JOIN_S = 254
RESTART_DELAY_S = 0.5
"""Zigbee2MQTT answers a restart request, then restarts half a second later."""
DEVICE_INFORMATION_TIMEOUT_S = 5.0
"""How long the Basic read after an interview may delay the `successful` event."""
DEVICES_QUIET_S = 0.1
"""A stale `bridge/devices` is published once no radio event changed it for this long ..."""
DEVICES_MAX_DELAY_S = 0.5
"""... or this long after it became stale, whichever comes first (a steady stream of joins)."""

_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}
# The command line quiets these below debug; a live change of the log level does the same.
_CHATTY_LOGGERS = ("zigpy", "zigpy_znp", "bellows", "zigpy_deconz", "aiosqlite")
_LIVE_OPTIONS = {("advanced", "log_level")}


class _MadeOf(NamedTuple):
    """What a device's element of `bridge/devices` is made of (its text is kept until it changes)."""

    details: DeviceDetails
    friendly_name: str
    description: str | None
    state: InterviewState


_OPTIONS_EXPECTED = (
    'expected {"options": {...}} with the settings to change, '
    'e.g. {"options": {"advanced": {"log_level": "debug"}}}'
)


class BridgeApi(Extension):
    """The bridge topics and the bridge requests of Zigbee2MQTT."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._base = context.config.mqtt.base_topic
        self.log_level: str = context.config.advanced.log_level
        self.restart_required = False
        self._changes: dict[str, Any] = {}
        """Settings changed by `options` since start (shown in `bridge/info`, some pending a restart)."""
        self._permit_end_ms: int | None = None
        self._permit_timer: asyncio.Task[None] | None = None
        self._restart_handle: asyncio.TimerHandle | None = None
        self._interviews: dict[str, InterviewState] = {}
        self.last_joined: str | None = None
        self.removed: set[str] = set()
        """Devices removed by request: their leave events are the removal's, not news."""
        self.lock = asyncio.Lock()
        """Held while a request changes settings, so that two never interleave their file writes."""
        self._devices = DeviceRequests(self)
        self._stale_since: float | None = None
        """Loop time when `bridge/devices` became stale (None: the published one is current)."""
        self._last_change = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._held_events: list[str] = []
        """`bridge/event` payloads waiting for the next `bridge/devices`, in order."""
        self._devices_lock = asyncio.Lock()
        self._device_texts: dict[str, tuple[_MadeOf, str]] = {}
        """Each device's element of the last `bridge/devices`, as JSON, with what it was made of."""
        self._stopping = False

    def request_handlers(self) -> dict[str, RequestHandler]:
        """permit_join, restart, options and the device requests."""
        return {
            "permit_join": self._permit_join,
            "restart": self._restart,
            "options": self._options,
            **self._devices.handlers(),
        }

    async def stop(self) -> None:
        """Publish a stale `bridge/devices` (and the events it holds); cancel the timers."""
        self._stopping = True
        self._cancel_flusher()
        if self._stale_since is not None or self._held_events:
            await self.publish_devices()
        async with self._devices_lock:
            pass  # a publish under way (the quiet-time task's own) has ended
        if self._restart_handle is not None:
            self._restart_handle.cancel()
        if self._permit_timer is not None:
            self._permit_timer.cancel()
            await asyncio.gather(self._permit_timer, return_exceptions=True)

    async def on_connected(self) -> None:
        """bridge/info, bridge/devices and bridge/groups after every (re)connect."""
        await self.publish_info()
        await self.publish_devices()
        await self._publish(f"{self._base}/bridge/groups", to_json([]), retain=True)

    # --- publishing -----------------------------------------------------------------------------

    async def _publish(self, topic: str, payload: str, *, retain: bool = False, qos: int = 0) -> None:
        # While disconnected nothing is sent; info and devices are published again on connect.
        if self.context.mqtt.can_publish:
            await self.context.mqtt.publish(topic, payload, retain=retain, qos=qos)

    async def publish_info(self) -> None:
        """Publish `bridge/info` (retained)."""
        await self._publish(f"{self._base}/bridge/info", to_json(self.info()), retain=True)

    async def publish_devices(self) -> None:
        """Publish `bridge/devices` (retained) now, then the events that waited for it."""
        self._cancel_flusher()
        async with self._devices_lock:
            # Built under the lock: whoever publishes last publishes the newest list.
            self._stale_since = None
            await self._publish(f"{self._base}/bridge/devices", self.devices_text(), retain=True)
            # An event held while this list was built or sent waits for the next one, which
            # marking the list stale again has already scheduled.
            while self._held_events and self._stale_since is None:
                await self._publish(f"{self._base}/bridge/event", self._held_events.pop(0))

    def devices_changed(self) -> None:
        """Mark `bridge/devices` stale: it is published after a quiet moment, events wait for it."""
        now = asyncio.get_running_loop().time()
        self._last_change = now
        if self._stale_since is None:
            self._stale_since = now
        if self._flusher is None and not self._stopping:
            self._flusher = asyncio.get_running_loop().create_task(
                self._publish_when_quiet(), name="bridge/devices publisher"
            )

    async def _publish_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        while self._stale_since is not None:
            due = min(self._last_change + DEVICES_QUIET_S, self._stale_since + DEVICES_MAX_DELAY_S)
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
                continue
            # Cleared first: publish_devices must not cancel the task that runs it.
            self._flusher = None
            try:
                await self.publish_devices()
            except Exception:
                _LOGGER.exception("Publishing bridge/devices failed")
            return
        self._flusher = None

    def _cancel_flusher(self) -> None:
        if self._flusher is not None and self._flusher is not asyncio.current_task():
            self._flusher.cancel()
        self._flusher = None

    async def clear_retained(self, topic: str) -> None:
        """Remove a retained message under the base topic (an empty retained payload)."""
        await self._publish(f"{self._base}/{topic}", "", retain=True, qos=1)

    async def publish_event(self, kind: str, ieee: str, **extra: Any) -> None:
        """Publish one `bridge/event` about a device (not retained)."""
        if not self.context.mqtt.can_publish:
            # As every message: an event while disconnected is not sent later.
            return
        data = {"friendly_name": self.context.bridge.friendly_name(ieee), "ieee_address": ieee, **extra}
        payload = to_json({"data": data, "type": kind})
        if self._stale_since is not None or self._held_events or self._devices_lock.locked():
            # Never ahead of the bridge/devices that shows what the event tells.
            self._held_events.append(payload)
            if self._stale_since is None and not self._devices_lock.locked():
                self.devices_changed()
            return
        await self._publish(f"{self._base}/bridge/event", payload)

    def info(self) -> dict[str, Any]:
        """The `bridge/info` object."""
        config: Config = self.context.config
        radio = self.context.radio
        network = radio.network_summary()
        return info_payload(
            version=__version__,
            coordinator={
                "ieee_address": network["coordinator"],
                "meta": radio.coordinator_meta(),
                "type": radio.coordinator_type,
            },
            network={key: network[key] for key in ("channel", "extended_pan_id", "pan_id")},
            log_level=self.log_level,
            permit_join_end_ms=self._permit_end_ms,
            restart_required=self.restart_required,
            mqtt_server=config.mqtt.server,
            mqtt_version=config.mqtt.version,
            config=running_config(
                config, log_level=self.log_level, devices=self.context.bridge.settings, changes=self._changes
            ),
        )

    def devices(self) -> list[dict[str, Any]]:
        """The `bridge/devices` list: the coordinator, then every device on the network.

        One pass over the network, with no lookup that walks it again: O(n) in the devices.
        """
        radio = self.context.radio
        elements = [coordinator_json(radio.coordinator_details())]
        elements += [self._element(self._made_of(details)) for details in radio.all_details()]
        return elements

    def devices_text(self) -> str:
        """`to_json(self.devices())`, re-encoding only the elements whose device changed.

        During a start-up with 200 joining switches the list goes out several times (at most every
        `DEVICES_MAX_DELAY_S`) and each time only some devices changed; an element is encoded
        alone exactly as within the list (compact, sorted keys), so the text is the same.
        """
        radio = self.context.radio
        texts = [to_json(coordinator_json(radio.coordinator_details()))]
        kept: dict[str, tuple[_MadeOf, str]] = {}
        for details in radio.all_details():
            made_of = self._made_of(details)
            cached = self._device_texts.get(details.ieee)
            if cached is None or cached[0] != made_of:
                cached = (made_of, to_json(self._element(made_of)))
            kept[details.ieee] = cached
            texts.append(cached[1])
        self._device_texts = kept
        return "[" + ",".join(texts) + "]"

    def _made_of(self, details: DeviceDetails) -> _MadeOf:
        """What a device's element is made of: its details, name, description, interview state."""
        settings = self.context.bridge.device_config(details.ieee)  # a direct look-up, its IEEE when unnamed
        state = self._interviews.get(details.ieee) or interview_state(details)
        return _MadeOf(details, settings.friendly_name, settings.description, state)

    @staticmethod
    def _element(made_of: _MadeOf) -> dict[str, Any]:
        return device_json(
            made_of.details,
            friendly_name=made_of.friendly_name,
            definition=find_definition(made_of.details.model_id),
            state=made_of.state,
            description=made_of.description,
        )

    # --- radio events -> bridge/devices, bridge/event ----------------------------------------------

    async def on_radio_event(self, event: ev.RadioEvent) -> None:
        """Joins, interviews, announcements and leaves: `bridge/devices` is stale, then the event."""
        match event:
            case ev.DeviceJoined():
                self.last_joined = event.ieee
                self.removed.discard(event.ieee)
                self.devices_changed()
                await self.publish_event("device_joined", event.ieee)
            case ev.DeviceInterviewStarted():
                self._interviews[event.ieee] = "IN_PROGRESS"
                self.devices_changed()
                await self.publish_event("device_interview", event.ieee, status="started")
            case ev.DeviceInterviewed():
                # Reading the Basic cluster takes a round trip: not on the radio event loop.
                self.context.bridge.spawn(self._interview_succeeded(event.ieee), f"interviewed {event.ieee}")
            case ev.DeviceInterviewFailed():
                self._interviews[event.ieee] = "FAILED"
                self.devices_changed()
                await self.publish_event("device_interview", event.ieee, status="failed")
            case ev.DeviceAnnounced():
                self.devices_changed()
                await self.publish_event("device_announce", event.ieee)
            case ev.DeviceLeft() if event.ieee not in self.removed:
                self.devices_changed()
                await self.publish_event("device_leave", event.ieee)
            case _:
                pass

    async def _interview_succeeded(self, ieee: str) -> None:
        """Zigbee2MQTT's interview also reads the date code, power source and build id."""
        try:
            async with asyncio.timeout(DEVICE_INFORMATION_TIMEOUT_S):
                await self.context.radio.read_device_information(ieee)
        except (DeviceCommandError, TimeoutError) as exc:
            _LOGGER.warning(
                "Reading the device information of '%s' failed: %s",
                self.context.bridge.friendly_name(ieee),
                exc or "the device did not answer",
            )
        self._interviews[ieee] = "SUCCESSFUL"
        self.devices_changed()
        device = self.context.radio.device(ieee)
        definition = None if device is None else self.context.bridge.definition_of(device)
        extra: dict[str, Any] = {"status": "successful", "supported": definition is not None}
        if definition is not None:
            extra["definition"] = definition_json(definition)
        await self.publish_event("device_interview", ieee, **extra)

    # --- settings in the configuration file -------------------------------------------------------

    async def persist(self, make_edits: Callable[[dict[str, Any]], list[Edit]]) -> None:
        """Write edits (made from the file's current content) to the configuration file.

        RequestError when the file cannot be read or written; then nothing changed.
        """
        path = self.context.config_path

        def write() -> None:
            save_edits(path, make_edits(load_document(path)))

        try:
            await asyncio.to_thread(write)
        except ConfigEditError as exc:
            raise RequestError(f"Cannot save the configuration: {exc}") from None

    # --- permit_join -----------------------------------------------------------------------------

    async def _permit_join(self, message: Any) -> dict[str, Any]:
        expected = 'expected {"time": 0..254, "device"?: "<router name>"} (seconds; 0 closes)'
        seconds = message.get("time") if isinstance(message, dict) else message
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise RequestError(f"Invalid payload: {expected}")
        if seconds > MAX_PERMIT_JOIN_S:
            raise RequestError(f"Cannot permit join for more than {MAX_PERMIT_JOIN_S} seconds.")
        name = message.get("device") if isinstance(message, dict) else None
        if name is not None and not isinstance(name, str):
            raise RequestError(f"Invalid payload: {expected}")
        data: dict[str, Any] = {"time": seconds}
        if name is None:
            await self.context.radio.permit_join(seconds)
        else:
            device = self.context.bridge.resolve(name)
            if device is None:
                raise RequestError(f"Device '{name}' does not exist")
            try:
                await self.context.radio.permit_join_via(device.ieee, seconds)
            except DeviceCommandError as exc:
                raise RequestError(f"Failed to permit join through '{name}' ({exc})") from None
            data["device"] = name
        await self.set_permit_join(seconds, via=name)
        return data

    async def set_permit_join(self, seconds: int, via: str | None = None) -> None:
        """Record that joining is open for `seconds` (0: closed) and announce it in `bridge/info`."""
        if self._permit_timer is not None:
            self._permit_timer.cancel()
            self._permit_timer = None
        if seconds:
            where = f" through '{via}'" if via else ""
            _LOGGER.info("Zigbee: allowing new devices to join%s for %d s", where, seconds)
            self._permit_end_ms = int(time.time() * 1000) + seconds * 1000
            self._permit_timer = asyncio.get_running_loop().create_task(
                self._close_permit_join_after(seconds), name="permit join timer"
            )
        else:
            _LOGGER.info("Zigbee: disabling joining new devices")
            self._permit_end_ms = None
        await self.publish_info()

    async def _close_permit_join_after(self, seconds: int) -> None:
        await asyncio.sleep(seconds)
        # The radio closes by itself at the same moment; only the announcement is ours.
        self._permit_timer = None
        self._permit_end_ms = None
        _LOGGER.info("Zigbee: disabling joining new devices")
        await self.publish_info()

    # --- restart ---------------------------------------------------------------------------------

    async def _restart(self, message: Any) -> dict[str, Any]:
        _LOGGER.info("Restarting on request")
        # Late enough for the response to go out first.
        self._restart_handle = asyncio.get_running_loop().call_later(
            RESTART_DELAY_S, self.context.request_restart
        )
        return {}

    # --- options ---------------------------------------------------------------------------------

    async def _options(self, message: Any) -> dict[str, Any]:
        options = message.get("options") if isinstance(message, dict) else None
        if not isinstance(options, dict) or not options:
            raise RequestError(f"Invalid payload: {_OPTIONS_EXPECTED}")
        options = dict(options)
        permit_join = options.pop("permit_join", None)
        if permit_join is not None and not isinstance(permit_join, bool):
            raise RequestError("Invalid payload: permit_join must be true (open for 254 s) or false")
        for section in options:
            if section not in Config.model_fields:
                raise RequestError(f"Invalid options: '{section}' is not supported by this daemon")
            if section == "devices":
                # Refused by name, also when empty (`{"devices": {}}` has no values to look at).
                raise RequestError(f"Invalid options: {options_refusal((section,))}")
        leaves = _leaves(options)
        for path, _ in leaves:
            # Only the allow-list of mqtt_options passes: MQTT is no administrator's channel.
            refusal = options_refusal(path)
            if refusal is not None:
                raise RequestError(f"Invalid options: {refusal}")
        edits: list[Edit] = [
            SetValue(path, value) if value is not None else Delete(path) for path, value in leaves
        ]
        if edits:
            await self._save_options(edits)
            self._changes = merge(self._changes, options)
            if any(path not in _LIVE_OPTIONS for path, _ in leaves):
                self.restart_required = True
            log_level = _lookup(options, ("advanced", "log_level"))
            if isinstance(log_level, str):
                self.apply_log_level("warning" if log_level == "warn" else log_level)
        if permit_join is not None:
            await self.context.radio.permit_join(MAX_PERMIT_JOIN_S if permit_join else 0)
            await self.set_permit_join(MAX_PERMIT_JOIN_S if permit_join else 0)
        else:
            await self.publish_info()
        return {"restart_required": self.restart_required}

    async def _save_options(self, edits: list[Edit]) -> None:
        """Validate the file with the edits like at start, then write them; RequestError if bad."""
        path = self.context.config_path
        async with self.lock:

            def check(document: dict[str, Any]) -> list[Edit]:
                try:
                    parse_config(apply_to_data(document, edits), path)
                except ConfigError as exc:
                    raise RequestError("Invalid options: " + "; ".join(exc.problems)) from None
                return edits

            await self.persist(check)

    def apply_log_level(self, level: str) -> None:
        """Change the log level now: the console, and `bridge/logging` (which stays at info or above)."""
        if level not in _LEVELS:
            return
        if level != self.log_level:
            _LOGGER.info("Log level changed from '%s' to '%s'", self.log_level, level)
        self.log_level = level
        root = logging.getLogger()
        root.setLevel(_LEVELS[level])
        for handler in root.handlers:
            if isinstance(handler, MqttLogHandler):
                handler.setLevel(max(logging.INFO, _LEVELS[level]))
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET if level == "debug" else logging.WARNING)


def _leaves(options: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every value in a nested options object; a mapping is descended into."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for key, value in options.items():
        path = (*prefix, str(key))
        if isinstance(value, dict):
            # An empty mapping changes nothing (it must not replace the section with `{}`).
            found.extend(_leaves(value, path))
        else:
            found.append((path, value))
    return found


def _lookup(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = tree
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
