"""The bridge: radio events become published state; `/set` and `/get` become converter plans.

Everything a user can get wrong (payload, device, property, value) ends here as one log line that
names the device, the property and why; it reaches `<base>/bridge/logging` through the log handler.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from z2m_qbkg40lm.bridge.command_queue import CommandQueue, QueuedCommand, relative_properties
from z2m_qbkg40lm.bridge.extension import CommandResult, Extension
from z2m_qbkg40lm.bridge.read_answers import ReadAnswers
from z2m_qbkg40lm.bridge.state import UNCACHED_KEYS, StateStore
from z2m_qbkg40lm.bridge.topics import (
    BridgeRequest,
    DeviceCommand,
    PayloadError,
    clears_retained,
    command_properties,
    parse_topic,
)
from z2m_qbkg40lm.config import Config, DeviceConfig
from z2m_qbkg40lm.devices.definition import (
    AttributeMessage,
    ConversionError,
    DeviceDefinition,
    SetPlan,
    ZclOperation,
)
from z2m_qbkg40lm.devices.exposes import readable_properties
from z2m_qbkg40lm.devices.registry import (
    convert_inbound,
    find_definition,
    merged_reads,
    plan_get,
    plan_set,
)
from z2m_qbkg40lm.strict_json import finite_copy, sendable
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError
from z2m_qbkg40lm.zigbee.radio import DeviceInfo

_LOGGER = logging.getLogger(__name__)

LOST_ADAPTER_DRAIN_S = 2.0
"""How long commands get to answer (with the lost adapter's reason) before the daemon stops."""


def to_json(payload: Any) -> str:
    """Zigbee2MQTT's serialisation: sorted keys, no whitespace, UTF-8 kept (a lone surrogate, which
    UTF-8 cannot encode, as its escape); standard JSON only.

    A number that is not finite (from a calibration of `.nan` in the file, say) is written as
    `null`, as JavaScript's JSON.stringify does, and logged as an error: never `NaN` or `Infinity`.
    """
    try:
        return _dumps(payload)
    except ValueError:
        cleaned, replaced = finite_copy(payload)
        if not replaced:
            raise
        _LOGGER.error("Not a finite number, published as null: %s", ", ".join(replaced))
        return _dumps(cleaned)


def _dumps(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return sendable(text)


class Publisher(Protocol):
    """The MQTT side as the bridge sees it."""

    @property
    def can_publish(self) -> bool:
        """True while connected to the broker."""
        ...

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> bool:
        """Publish one message; False when not connected."""
        ...


class RadioPort(Protocol):
    """The radio side as the bridge sees it."""

    events: asyncio.Queue[ev.RadioEvent]

    def devices(self) -> list[DeviceInfo]:
        """Every device on the network except the coordinator."""
        ...

    def device(self, ieee: str) -> DeviceInfo | None:
        """One device by IEEE address."""
        ...

    async def execute(self, ieee: str, operations: tuple[ZclOperation, ...]) -> None:
        """Run ZCL operations on a device."""
        ...


RequestHandler = Callable[[str, bytes], Coroutine[Any, Any, None]]
_Plan = TypeVar("_Plan")


class Bridge:
    """Device state, commands and the topics of `<base>/<friendly_name>`."""

    def __init__(self, config: Config, radio: RadioPort, state: StateStore, publisher: Publisher) -> None:
        self._config = config
        self._base = config.mqtt.base_topic
        self._radio = radio
        self._state = state
        self._publisher = publisher
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, tuple[dict[str, Any], bool]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._queues: dict[str, CommandQueue] = {}
        self._last_published: dict[str, str] = {}
        self._publish_count: dict[str, int] = {}
        self._flush_later: list[tuple[str, dict[str, Any], bool]] = []
        self.request_handler: RequestHandler | None = None
        self.on_radio_lost: Callable[[str], None] | None = None
        self.extensions: list[Extension] = []
        self.read_watchers: set[ReadAnswers] = set()
        # Friendly names and options, changed at run time by requests (rename, device options).
        self.settings: dict[str, DeviceConfig] = dict(config.devices)

    # --- names -------------------------------------------------------------------------------

    def device_config(self, ieee: str) -> DeviceConfig:
        """The device's settings from the configuration, or the defaults with its IEEE as name."""
        return self.settings.get(ieee) or DeviceConfig(friendly_name=ieee)

    def friendly_name(self, ieee: str) -> str:
        """The name the device's topics use."""
        return self.device_config(ieee).friendly_name

    def resolve(self, name: str) -> DeviceInfo | None:
        """A device by friendly name or IEEE address (any case, with or without 0x)."""
        for device in self._radio.devices():
            if self.friendly_name(device.ieee) == name:
                return device
        wanted = name.lower().replace(":", "")
        wanted = wanted if wanted.startswith("0x") else "0x" + wanted
        return self._radio.device(wanted)

    def known_names(self) -> list[str]:
        """Friendly names of every device on the network."""
        return sorted(self.friendly_name(device.ieee) for device in self._radio.devices())

    def definition_of(self, device: DeviceInfo) -> DeviceDefinition | None:
        """The device's definition, when the daemon supports its model."""
        return find_definition(device.model_id)

    # --- tasks -------------------------------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, None], what: str) -> None:
        """Run a coroutine as a tracked task; an exception in it is logged, never lost."""
        task = asyncio.get_running_loop().create_task(coroutine, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("%s failed: %r", task.get_name(), task.exception(), exc_info=task.exception())

    async def close(self) -> None:
        """Cancel running command tasks."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def notify(self, hook: str, *args: Any) -> None:
        """Call one hook of every extension; a failing extension is logged and skipped."""
        for extension in self.extensions:
            try:
                await getattr(extension, hook)(*args)
            except Exception:
                _LOGGER.exception("Extension %s failed in %s", type(extension).__name__, hook)

    # --- MQTT -> Zigbee ----------------------------------------------------------------------

    async def on_connected(self) -> None:
        """After every (re)connect: say we are online and republish every device's state."""
        await self._publisher.publish(
            f"{self._base}/bridge/state", to_json({"state": "online"}), retain=True, qos=1
        )
        for device in self._radio.devices():
            if self._state.has(device.ieee):
                await self.publish_state(device.ieee, {}, force=True)
        await self.notify("on_connected")

    async def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """Dispatch one MQTT message; bad input is logged and changes nothing."""
        parsed = parse_topic(self._base, topic)
        if parsed is None:
            await self.notify("on_message", topic, payload, retained)
            return
        if clears_retained(parsed, payload):
            _LOGGER.debug("Ignoring the empty message on '%s': it clears a retained one", topic)
            return
        if retained:
            # A retained command would be replayed on every reconnect and restart.
            _LOGGER.warning("Ignoring retained message on '%s': commands must not be retained", topic)
            return
        if isinstance(parsed, BridgeRequest):
            if self.request_handler is not None:
                self.spawn(self.request_handler(parsed.path, payload), f"request {parsed.path}")
            return
        self._handle_command(parsed, payload)

    def _handle_command(self, command: DeviceCommand, payload: bytes) -> None:
        device = self.resolve(command.device)
        ieee = None if device is None else device.ieee
        try:
            properties = command_properties(command, payload)
        except PayloadError as exc:
            name = command.device if device is None else self.friendly_name(device.ieee)
            self._refuse(
                command,
                ieee,
                {},
                exc.transaction,
                f"Invalid payload for '{command.action}' on '{name}': {exc}",
            )
            return
        # The caller's own id for the command's result (not a Zigbee2MQTT feature: see README).
        transaction = properties.pop("transaction", None) if command.property is None else None
        if device is None:
            known = ", ".join(self.known_names()) or "none"
            message = f"Entity '{command.device}' is unknown (devices: {known})"
            self._refuse(command, None, properties, transaction, message)
            return
        name = self.friendly_name(device.ieee)
        definition = self.definition_of(device)
        if definition is None:
            message = f"Cannot publish to unsupported device '{name}' (model {device.model_id})"
            self._refuse(command, device.ieee, properties, transaction, message)
            return
        if not properties:
            self._refuse(
                command, device.ieee, {}, transaction, f"No property given for '{command.action}' on '{name}'"
            )
            return
        try:
            if command.action == "set":
                state = self._state.get(device.ieee)
                options = self.device_config(device.ieee).converter_options()
                set_plans = self._plan_all(
                    "set",
                    name,
                    properties,
                    lambda prop, value: plan_set(definition, prop, value, state, options),
                )

                def replan(prop: str, value: Any) -> SetPlan:
                    # Against the state when the command's turn comes (TOGGLE after TOGGLE).
                    return plan_set(definition, prop, value, self._state.get(device.ieee), options)

                queued = QueuedCommand(
                    command,
                    device.ieee,
                    properties,
                    transaction,
                    dict(set_plans),
                    relative_properties(definition, properties),
                    replan,
                )
            else:
                reads = self._plan_all("get", name, properties, lambda prop, _: plan_get(definition, prop))
                queued = QueuedCommand(command, device.ieee, properties, transaction, dict(reads))
        except ConversionError as exc:
            self._refuse(command, device.ieee, properties, transaction, str(exc))
            return
        self._enqueue(queued)

    def _enqueue(self, queued: QueuedCommand) -> None:
        """Put an accepted command in its device's line; refuse it at once when the line is full."""
        queue = self._queues.setdefault(queued.ieee, CommandQueue())
        name = self.friendly_name(queued.ieee)
        admission = queue.offer(queued)
        if not admission.accepted:
            listed = "', '".join(queued.properties)
            message = (
                f"Publish '{queued.action}' '{listed}' to '{name}' refused: {admission.waiting} commands "
                "are already waiting for the device; send it again once they are done"
            )
            self._refuse(queued.command, queued.ieee, queued.properties, queued.transaction, message)
            return
        for ended in admission.ended:
            self._end_replaced(ended, name)
        if not queue.draining:
            queue.draining = True
            self.spawn(self._drain(queued.ieee, queue), f"commands to {name}")

    def _end_replaced(self, queued: QueuedCommand, name: str) -> None:
        """A waiting `/set` whose every property a newer one took over: its result, at once.

        Not an error of the daemon or the device (logged at info), but the command was not
        carried out, so its result is an error that says why."""
        message = "\n".join(
            f"Publish 'set' '{prop}' to '{name}' not sent: replaced by a newer /set of '{prop}'"
            for prop in queued.replaced
        )
        _LOGGER.info("%s", message)
        result = CommandResult(
            queued.command.device, queued.ieee, "set", queued.replaced, message, queued.transaction
        )
        self.spawn(self.notify("on_command_result", result), "command result")

    async def _drain(self, ieee: str, queue: CommandQueue) -> None:
        """Carry out a device's waiting commands, oldest first, until none is left."""
        while (queued := queue.next()) is not None:
            try:
                if queued.action == "set":
                    await self._run_set(queued)
                else:
                    await self._run_get(queued)
            except Exception:
                # The commands behind it are still carried out.
                _LOGGER.exception("%s on '%s' failed", queued.action, self.friendly_name(ieee))
            for _ in range(queue.take_owed_answers()):
                # The state message each command replaced while waiting is owed (one per command).
                await self.publish_state(ieee, {}, force=True)

    def _refuse(
        self,
        command: DeviceCommand,
        ieee: str | None,
        properties: dict[str, Any],
        transaction: Any,
        message: str,
    ) -> None:
        """Log why a command is refused and report it as its result."""
        _LOGGER.error("%s", message)
        result = CommandResult(command.device, ieee, command.action, properties, message, transaction)
        self.spawn(self.notify("on_command_result", result), "command result")

    def _plan_all(
        self, action: str, name: str, properties: dict[str, Any], plan: Callable[[str, Any], _Plan]
    ) -> list[tuple[str, _Plan]]:
        """Plan every property of a command, or refuse the whole command (all or nothing).

        Raises ConversionError whose message has one line per bad property.
        """
        planned: list[tuple[str, _Plan]] = []
        problems: list[str] = []
        for prop, value in properties.items():
            try:
                planned.append((prop, plan(prop, value)))
            except ConversionError as exc:
                problems.append(f"Publish '{action}' '{prop}' to '{name}' failed: '{exc}'")
        if problems:
            raise ConversionError("\n".join(problems))
        return planned

    def device_lock(self, ieee: str) -> asyncio.Lock:
        """Commands to one device run one at a time, in the order they arrived."""
        return self._locks.setdefault(ieee, asyncio.Lock())

    async def _run_set(self, queued: QueuedCommand) -> None:
        """Carry out a planned `/set`; its result's state holds what was applied.

        The plans were checked when the message arrived; each is made again once the device's
        earlier commands are done, so that a plan depending on the state (TOGGLE) sees it current.

        That is the cached state with each acknowledged plan's state (also with `optimistic:
        false`, when it is not published) and the answers of the plans' read-backs.
        """
        ieee, properties = queued.ieee, queued.properties
        name = self.friendly_name(ieee)
        errors: list[str] = []
        applied: dict[str, Any] = {}
        async with self.device_lock(ieee), ReadAnswers(self, ieee) as answers:
            for prop, value in properties.items():
                checked_plan: SetPlan = queued.plans[prop]
                try:
                    plan: SetPlan = checked_plan if queued.replan is None else queued.replan(prop, value)
                except ConversionError:
                    plan = checked_plan
                published_before = self._publish_count.get(ieee, 0)
                expected = answers.expect(plan.operations)
                try:
                    await self._radio.execute(ieee, plan.operations)
                except DeviceCommandError as exc:
                    answers.forget(expected)
                    message = f"Publish 'set' '{prop}' to '{name}' failed: '{exc}'"
                    _LOGGER.error("%s", message)
                    errors.append(message)
                    continue
                applied.update(plan.optimistic_state)
                if plan.optimistic_state and self.device_config(ieee).optimistic:
                    # Every /set is answered by a state message: forced, unless the device's own
                    # report was already published meanwhile (then an identical one is left out).
                    unanswered = self._publish_count.get(ieee, 0) == published_before
                    await self.publish_state(ieee, plan.optimistic_state, force=unanswered)
            applied.update(await answers.wait())
        error = "\n".join(errors) or None
        state = {**self._state.get(ieee), **applied}
        result = CommandResult(
            queued.command.device, ieee, "set", properties, error, queued.transaction, state
        )
        await self.notify("on_command_result", result)

    async def _run_get(self, queued: QueuedCommand) -> None:
        """Carry out a planned `/get`; its result's state holds the values read."""
        ieee = queued.ieee
        name = self.friendly_name(ieee)
        errors: list[str] = []
        async with self.device_lock(ieee), ReadAnswers(self, ieee) as answers:
            for prop in queued.properties:
                operations: tuple[ZclOperation, ...] = queued.plans[prop]
                expected = answers.expect(operations)
                try:
                    # The answer comes back as an attribute read event and is published as state.
                    await self._radio.execute(ieee, operations)
                except DeviceCommandError as exc:
                    answers.forget(expected)
                    message = f"Publish 'get' '{prop}' to '{name}' failed: '{exc}'"
                    _LOGGER.error("%s", message)
                    errors.append(message)
            values = await answers.wait()
        error = "\n".join(errors) or None
        state = {**self._state.get(ieee), **values}
        result = CommandResult(
            queued.command.device, ieee, "get", queued.properties, error, queued.transaction, state
        )
        await self.notify("on_command_result", result)

    # --- Zigbee -> MQTT ----------------------------------------------------------------------

    async def run_radio_events(self) -> None:
        """Consume radio events for the daemon's lifetime.

        Attributes that arrive together (the answers of one read, a burst of reports) become one
        state message: pending state is published once the queue is drained.
        """
        while True:
            event = await self._radio.events.get()
            try:
                await self.handle_radio_event(event)
            except Exception:
                _LOGGER.exception("Handling %s failed", event)
            await self.notify("on_radio_event", event)
            for watcher in list(self.read_watchers):
                await watcher.on_radio_event(event)
            if self._radio.events.empty():
                await self.flush_pending_states()

    def _queue_state(self, ieee: str, partial: dict[str, Any], *, force: bool = False) -> None:
        pending, pending_force = self._pending.get(ieee, ({}, False))
        if "action" in pending and "action" in partial:
            # Two presses in one burst are two events: never merge them into one message.
            self._flush_later.append((ieee, pending, pending_force))
            pending, pending_force = {}, False
        pending.update(partial)
        self._pending[ieee] = (pending, pending_force or force)

    async def flush_pending_states(self) -> None:
        """Publish the state messages that radio events have queued."""
        ready, self._flush_later = self._flush_later, []
        ready.extend((ieee, partial, force) for ieee, (partial, force) in self._pending.items())
        self._pending = {}
        for ieee, partial, force in ready:
            await self.publish_state(ieee, partial, force=force)

    async def handle_radio_event(self, event: ev.RadioEvent) -> None:
        """Apply one radio event to the state and the topics."""
        match event:
            case ev.AttributeReceived():
                await self._on_attribute(event)
            case ev.FrameReceived():
                await self._on_frame(event)
            case ev.DeviceJoined():
                _LOGGER.info(
                    "Device '%s' joined (network address 0x%04x)", self.friendly_name(event.ieee), event.nwk
                )
            case ev.DeviceInterviewStarted():
                _LOGGER.info("Starting interview of '%s'", self.friendly_name(event.ieee))
            case ev.DeviceInterviewed():
                self.spawn(self.on_interviewed(event.ieee), f"configure {event.ieee}")
            case ev.DeviceInterviewFailed():
                _LOGGER.error("Interview of '%s' failed: %s", self.friendly_name(event.ieee), event.reason)
            case ev.DeviceAnnounced():
                _LOGGER.info("Device '%s' announced itself", self.friendly_name(event.ieee))
                # After a power cut the relay may have changed without a report: read it again.
                self.spawn(self.refresh(event.ieee, ("state",)), f"refresh {event.ieee}")
            case ev.DeviceLeft():
                _LOGGER.warning("Device '%s' left the network", self.friendly_name(event.ieee))
            case ev.RadioRecovered():
                # Reports sent while the coordinator was deaf are lost: read the relays again.
                for device in self._radio.devices():
                    if device.interviewed:
                        self.spawn(self.refresh(device.ieee, ("state",)), f"refresh {device.ieee}")
            case ev.RadioLost():
                _LOGGER.error("Adapter disconnected (%s), stopping", event.reason)
                # The radio now refuses every command at once: let those under way or queued
                # answer their callers before the daemon stops (and cancels what is left).
                deadline = asyncio.get_running_loop().time() + LOST_ADAPTER_DRAIN_S
                while self._tasks and (left := deadline - asyncio.get_running_loop().time()) > 0:
                    await asyncio.wait(set(self._tasks), timeout=left)
                if self.on_radio_lost is not None:
                    self.on_radio_lost(event.reason)

    async def _on_attribute(self, event: ev.AttributeReceived) -> None:
        device = self._radio.device(event.ieee)
        definition = None if device is None else self.definition_of(device)
        if definition is None:
            return
        message = AttributeMessage(
            endpoint=event.endpoint,
            cluster_id=event.cluster_id,
            attribute_id=event.attribute_id,
            value=event.value,
            kind=event.kind,
        )
        partial = convert_inbound(definition, message, self.device_config(event.ieee).converter_options())
        if not partial:
            return
        if event.linkquality is not None:
            partial["linkquality"] = event.linkquality
        # A read answers a /get (or a refresh): it is published even when nothing changed.
        self._queue_state(event.ieee, partial, force=event.kind == "read")

    async def _on_frame(self, event: ev.FrameReceived) -> None:
        if event.linkquality is not None:
            self._state.update(event.ieee, {"linkquality": event.linkquality})
        if self._config.advanced.last_seen != "disable" and self._state.has(event.ieee):
            # Merged with the attributes of the same frame, if any, into one message.
            self._queue_state(event.ieee, {}, force=True)

    async def on_interviewed(self, ieee: str) -> None:
        """Configure a freshly interviewed device and publish its state."""
        device = self._radio.device(ieee)
        if device is None:
            return
        name = self.friendly_name(ieee)
        definition = self.definition_of(device)
        if definition is None:
            _LOGGER.warning(
                "Device '%s' (model %s by %s) is not supported by this daemon",
                name,
                device.model_id,
                device.manufacturer,
            )
            return
        _LOGGER.info("Successfully interviewed '%s', device has successfully been paired", name)
        _LOGGER.info(
            "Device '%s' is supported, identified as: %s %s", name, definition.vendor, definition.model
        )
        try:
            await self._radio.execute(ieee, definition.configure)
            _LOGGER.info("Successfully configured '%s'", name)
        except DeviceCommandError as exc:
            _LOGGER.error("Failed to configure '%s': %s", name, exc)
        await self.refresh(ieee)

    async def refresh(self, ieee: str, properties: tuple[str, ...] | None = None) -> None:
        """Read properties (all readable ones by default) from the device; answers publish state."""
        device = self._radio.device(ieee)
        definition = None if device is None else self.definition_of(device)
        if definition is None:
            return
        wanted = properties if properties is not None else readable_properties(definition.exposes)
        try:
            # One request per cluster: the answers arrive together and make one state message.
            reads = merged_reads(op for prop in wanted for op in plan_get(definition, prop))
            await self._radio.execute(ieee, reads)
        except (ConversionError, DeviceCommandError) as exc:
            _LOGGER.warning("Reading %s of '%s' failed: %s", ", ".join(wanted), self.friendly_name(ieee), exc)

    async def publish_startup_states(self) -> None:
        """At start: publish every cached state, and read the devices nothing is cached for."""
        for device in self._radio.devices():
            if self._state.has(device.ieee):
                await self.publish_state(device.ieee, {}, force=True)
            elif device.interviewed:
                self.spawn(self.refresh(device.ieee), f"refresh {device.ieee}")

    async def publish_state(self, ieee: str, partial: dict[str, Any], *, force: bool = False) -> None:
        """Merge a partial state into the cache and publish the device's state message.

        A message identical to the device's previous one is not sent again unless forced (a read
        answer, a reconnect): after a `/set` the optimistic state and the device's report are
        usually the same, and a second identical message only costs traffic and, with Nagle's
        algorithm on the broker, delays the next message to each subscriber by up to 40 ms.
        """
        settings = self.device_config(ieee)
        merged = self._state.update(ieee, partial)
        event_keys = not UNCACHED_KEYS.isdisjoint(partial)
        if not self._publisher.can_publish and not event_keys:
            # Kept in the cache, and every cached state is published again on (re)connect.
            return
        # With cache_state off only the new keys go out, but a republish (no partial) sends all.
        payload = merged if self._config.advanced.cache_state or not partial else dict(partial)
        payload.update({k: v for k, v in partial.items() if k not in merged})
        last_seen = self._last_seen()
        if last_seen is not None:
            payload["last_seen"] = last_seen
        text = to_json(payload)
        if text == self._last_published.get(ieee) and not (force or event_keys):
            return
        self._last_published[ieee] = text
        self._publish_count[ieee] = self._publish_count.get(ieee, 0) + 1
        await self._publisher.publish(
            f"{self._base}/{settings.friendly_name}", text, retain=settings.retain, qos=settings.qos
        )
        await self.notify("on_state_published", ieee, payload)

    def _last_seen(self) -> str | int | None:
        mode = self._config.advanced.last_seen
        now = datetime.now(UTC)
        if mode == "ISO_8601":
            return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if mode == "ISO_8601_local":
            return now.astimezone().isoformat(timespec="milliseconds")
        if mode == "epoch":
            return int(now.timestamp() * 1000)
        return None

    # --- rename and remove bookkeeping (bridge requests) --------------------------------------

    def cached_state(self, ieee: str) -> dict[str, Any]:
        """A copy of the device's cached state (empty when nothing is cached)."""
        return self._state.get(ieee)

    def has_state(self, ieee: str) -> bool:
        """True when a state is cached for the device (a renamed device's state moves with it)."""
        return self._state.has(ieee)

    def forget_device(self, ieee: str) -> None:
        """Drop what is kept about a removed device: its settings, cached state and last message."""
        self.settings.pop(ieee, None)
        self._state.remove(ieee)
        self._pending.pop(ieee, None)
        self._last_published.pop(ieee, None)
        self._publish_count.pop(ieee, None)
