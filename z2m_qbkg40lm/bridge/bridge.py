"""The bridge: radio events become published state; `/set` and `/get` become converter plans.

Everything a user can get wrong (payload, device, property, value) ends here as one log line that
names the device, the property and why; it reaches `<base>/bridge/logging` through the log handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from z2m_qbkg40lm.bridge.command_queue import CommandQueue, QueuedCommand, relative_properties
from z2m_qbkg40lm.bridge.device_settings import DeviceSettings
from z2m_qbkg40lm.bridge.extension import CommandResult, Extension
from z2m_qbkg40lm.bridge.read_answers import ReadAnswers
from z2m_qbkg40lm.bridge.state import UNCACHED_KEYS, StateStore
from z2m_qbkg40lm.bridge.timed_off import PendingOff, TimedOffs
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
    ConversionError,
    DeviceDefinition,
    TimedFallback,
    ZclOperation,
)
from z2m_qbkg40lm.devices.exposes import readable_properties
from z2m_qbkg40lm.devices.registry import (
    GENERIC_KEYS,
    GenericPlanner,
    PlannedStep,
    claimed_together,
    convert_inbound,
    find_definition,
    generic_only_definition,
    merged_reads,
    plan_command,
    plan_get,
    plan_get_command,
    publish_failed,
)
from z2m_qbkg40lm.strict_json import finite_copy, sendable
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError, UnsupportedCommandError
from z2m_qbkg40lm.zigbee.radio import DeviceInfo

_LOGGER = logging.getLogger(__name__)

LOST_ADAPTER_DRAIN_S = 2.0
"""How long commands get to answer (with the lost adapter's reason) before the daemon stops."""
CONFIRM_WINDOW_S = 3.0
"""How long after a command's state message a device report that merely repeats it is left out
(a real switch reports an On/Off change within a second; a heartbeat is never such a repeat)."""
_CONFIRMS_KEPT = 8
"""Messages of back-to-back commands whose confirming reports are awaited at once, at most."""
_NOT_COMPARED = frozenset({"linkquality"})
"""Keys a report may differ in and still merely confirm a command's message."""


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

    async def execute(self, ieee: str, operations: tuple[ZclOperation, ...]) -> Any:
        """Run ZCL operations on a device; one result per operation, or None."""
        ...


RequestHandler = Callable[[str, bytes], Coroutine[Any, Any, None]]


@dataclass
class _Carried:
    """What one command did: its errors, what it applied, and its one state message."""

    errors: list[str] = field(default_factory=list)
    applied: dict[str, Any] = field(default_factory=dict)
    """Values applied (optimistic states), also when the device's `optimistic: false` hides them."""
    done: set[str] = field(default_factory=set)
    """The command's properties carried out."""
    message: dict[str, Any] = field(default_factory=dict)
    """What the command's state message carries (besides the cached state)."""


class Bridge:
    """Device state, commands and the topics of `<base>/<friendly_name>`."""

    def __init__(
        self,
        config: Config,
        radio: RadioPort,
        state: StateStore,
        publisher: Publisher,
        timed_offs: TimedOffs | None = None,
    ) -> None:
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
        self._flush_later: list[tuple[str, dict[str, Any], bool]] = []
        self._captures: dict[str, ReadAnswers] = {}
        self._confirm: dict[str, list[tuple[dict[str, Any], float]]] = {}
        self._fallback_noticed: set[str] = set()
        # Set while run_radio_events() waits for the next event with nothing left to publish.
        self._radio_idle = asyncio.Event()
        self.timed_offs = timed_offs if timed_offs is not None else TimedOffs()
        self.timed_offs.bind(self._send_timed_off, self.friendly_name)
        # The generic `read` / `write` / `command` keys of `/set` (Zigbee2MQTT's generic converters),
        # planned by devices/generic.py for the device's first endpoint; False turns them off (they
        # then get "No converter available").
        self.generic_converters = True
        self.request_handler: RequestHandler | None = None
        self.on_radio_lost: Callable[[str], None] | None = None
        self.extensions: list[Extension] = []
        self._settings = DeviceSettings(config.devices)

    # --- names -------------------------------------------------------------------------------

    @property
    def settings(self) -> DeviceSettings:
        """Friendly names and options by IEEE, changed at run time by requests (rename, device
        options, removal); every write keeps the name index `resolve` uses right."""
        return self._settings

    @settings.setter
    def settings(self, value: Mapping[str, DeviceConfig]) -> None:
        self._settings = DeviceSettings(value)

    def device_config(self, ieee: str) -> DeviceConfig:
        """The device's settings from the configuration, or the defaults with its IEEE as name."""
        return self._settings.config(ieee)

    def friendly_name(self, ieee: str) -> str:
        """The name the device's topics use."""
        return self.device_config(ieee).friendly_name

    def resolve(self, name: str) -> DeviceInfo | None:
        """A device by friendly name or IEEE address (any case, with or without 0x)."""
        # Two direct look-ups, never a walk over the network: this runs for every command.
        named = self._settings.named(name)
        if named is not None:
            device = self._radio.device(named)
            if device is not None:
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
        """Stop the off timers (pending offs stay in their file) and cancel running command tasks."""
        await self.timed_offs.stop()
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
        definition = self._command_definition(command.action, device, properties)
        if definition is None:
            message = f"Cannot publish to unsupported device '{name}' (model {device.model_id})"
            self._refuse(command, device.ieee, properties, transaction, message)
            return
        if not properties:
            self._refuse(
                command, device.ieee, {}, transaction, f"No property given for '{command.action}' on '{name}'"
            )
            return
        steps = self._plan(command.action, device.ieee, definition, properties)
        failing = frozenset(key for step in steps if step.plan is None for key in step.keys)
        if all(step.plan is None for step in steps):
            # Nothing to carry out: answered at once, without waiting for the device's turn.
            errors = [step.error or "" for step in steps]
            self._refuse(command, device.ieee, properties, transaction, *errors)
            return
        queued = QueuedCommand(
            command,
            device.ieee,
            properties,
            transaction,
            replaces_nothing=relative_properties(definition, properties) | failing,
            together=lambda prop: claimed_together(definition, prop),
        )
        self._enqueue(queued)

    def _plan(
        self, action: str, ieee: str, definition: DeviceDefinition, properties: dict[str, Any]
    ) -> list[PlannedStep]:
        """The steps of a `/set` (against the device's state now) or of a `/get`."""
        name = self.friendly_name(ieee)
        if action == "get":
            return plan_get_command(definition, properties, device_name=name)
        options = self.device_config(ieee).converter_options()
        state = self._state.get(ieee)
        return plan_command(
            definition,
            properties,
            state,
            options,
            device_name=name,
            generic=self._generic_planner(ieee, properties),
        )

    def _command_definition(
        self, action: str, device: DeviceInfo, properties: dict[str, Any]
    ) -> DeviceDefinition | None:
        """The definition a command is planned with: the device's, or, for a device this daemon has
        none for, an empty one when the `/set` names a generic converter (Zigbee2MQTT offers
        `read`, `write` and `command` for every device); None refuses the command."""
        definition = self.definition_of(device)
        if definition is not None or action != "set" or not self.generic_converters:
            return definition
        if GENERIC_KEYS.isdisjoint(properties):
            return None
        return generic_only_definition(device.model_id, device.manufacturer)

    def _generic_planner(self, ieee: str, properties: dict[str, Any]) -> GenericPlanner | None:
        """The planner of the generic keys for this device (imported only when a command names one:
        its table of Zigbee2MQTT's cluster names is large)."""
        if not self.generic_converters or GENERIC_KEYS.isdisjoint(properties):
            return None
        from z2m_qbkg40lm.devices.generic import plan_generic

        endpoint = self._first_endpoint(ieee)
        return lambda key, value: plan_generic(key, value, endpoint=endpoint)

    def _first_endpoint(self, ieee: str) -> int:
        """Where Zigbee2MQTT sends a generic converter of `<FN>/set`: the device's first endpoint."""
        details = getattr(self._radio, "details", None)  # not part of RadioPort: fakes may lack it
        found = details(ieee) if details is not None else None
        return found.endpoints[0].endpoint_id if found is not None and found.endpoints else 1

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
        *messages: str,
    ) -> None:
        """Log why a command is refused (one line per reason) and report it as its result."""
        for message in messages:
            _LOGGER.error("%s", message)
        result = CommandResult(
            command.device, ieee, command.action, properties, "\n".join(messages), transaction
        )
        self.spawn(self.notify("on_command_result", result), "command result")

    def device_lock(self, ieee: str) -> asyncio.Lock:
        """Commands to one device run one at a time, in the order they arrived."""
        return self._locks.setdefault(ieee, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _capture(self, ieee: str) -> AsyncIterator[ReadAnswers]:
        """While a command runs, the device's attributes go to it (see read_answers.py)."""
        answers = ReadAnswers(self.friendly_name(ieee))
        self._captures[ieee] = answers
        try:
            yield answers
        finally:
            if self._captures.get(ieee) is answers:
                del self._captures[ieee]

    async def _run_set(self, queued: QueuedCommand) -> None:
        """Carry out a `/set`: every step it can, in Zigbee2MQTT's order, then one state message.

        The steps are planned again now that the device's earlier commands are done, so that a
        plan depending on the state (TOGGLE) sees it current. A step that fails is logged (one line
        per step) and the others are still carried out. The state message merges every step's
        optimistic state and the answers of their read-backs; the result's state holds the cached
        state with all of that (also with `optimistic: false`, when it is not published).
        """
        ieee, properties = queued.ieee, queued.properties
        name = self.friendly_name(ieee)
        device = self._radio.device(ieee)
        definition = None if device is None else self._command_definition("set", device, properties)
        carried = _Carried()
        async with self.device_lock(ieee), self._capture(ieee) as answers:
            if definition is None:
                gone = "the device is no longer on the network"
                for key in properties:
                    carried.errors.append(publish_failed("set", key, name, gone))
                    _LOGGER.error("%s", carried.errors[-1])
            else:
                for step in self._plan("set", ieee, definition, properties):
                    await self._carry_out_step(ieee, name, step, answers, carried)
            read = await answers.wait()
            carried.applied.update(read)
            carried.message.update(read)
            await self._publish_command_state(ieee, carried.message, answers)
        state = {**self._state.get(ieee), **carried.applied}
        result = CommandResult(
            queued.command.device,
            ieee,
            "set",
            properties,
            "\n".join(carried.errors) or None,
            queued.transaction,
            state,
            frozenset(carried.done),
        )
        await self.notify("on_command_result", result)

    async def _carry_out_step(
        self, ieee: str, name: str, step: PlannedStep, answers: ReadAnswers, carried: _Carried
    ) -> None:
        """One converter's part of a `/set`; its error, or what it applied, goes into `carried`."""
        plan = step.plan
        if plan is None:
            carried.errors.append(step.error or publish_failed("set", step.keys[0], name, "not planned"))
            _LOGGER.error("%s", carried.errors[-1])
            return
        # A generic read's answer is its plan's result: converters may not claim it (no event to wait for).
        expected = set() if plan.on_results is not None else answers.expect(plan.operations)
        optimistic: dict[str, Any] = dict(plan.optimistic_state)
        armed = False
        try:
            try:
                results = await self._radio.execute(ieee, plan.operations)
            except UnsupportedCommandError:
                if plan.fallback is None:
                    raise
                answers.forget(expected)
                optimistic = await self._fall_back(ieee, name, plan.fallback)
                armed = bool(plan.fallback.later_operations)
                results = None
        except DeviceCommandError as exc:
            answers.forget(expected)
            carried.errors.append(publish_failed("set", step.keys[0], name, exc))
            _LOGGER.error("%s", carried.errors[-1])
            return
        if not armed:
            # A newer /set of the state wins over an off still pending from the daemon's timer.
            self.timed_offs.cancel_for_keys(ieee, step.keys, f"a newer /set of {', '.join(step.keys)}")
        carried.done.update(step.keys)
        carried.applied.update(optimistic)
        if optimistic and self.device_config(ieee).optimistic:
            carried.message.update(optimistic)
        if plan.on_results is not None:
            try:
                outcome = plan.on_results(tuple(results) if results is not None else ())
            except (ConversionError, ValueError, TypeError, KeyError, IndexError) as exc:
                carried.errors.append(publish_failed("set", step.keys[0], name, exc))
                _LOGGER.error("%s", carried.errors[-1])
                return
            if outcome.log:
                _LOGGER.info("%s", outcome.log)
            carried.applied.update(outcome.state)
            carried.message.update(outcome.state)

    async def _fall_back(self, ieee: str, name: str, fallback: TimedFallback) -> dict[str, Any]:
        """The device refused the plan's command as unsupported: its fallback, and the daemon's timer."""
        if ieee not in self._fallback_noticed:
            self._fallback_noticed.add(ieee)
            _LOGGER.warning("Device '%s' %s", name, fallback.notice)
        # A failure here is the step's error (DeviceCommandError goes to the caller).
        await self._radio.execute(ieee, fallback.operations)
        if fallback.later_operations:
            self.timed_offs.arm(ieee, fallback.delay_s, fallback.later_operations, fallback.later_state)
        return dict(fallback.optimistic_state)

    async def _send_timed_off(self, pending: PendingOff) -> None:
        """The timer's off is due: send it through the device's line, publish its state once."""
        ieee = pending.ieee
        if self._radio.device(ieee) is None:
            _LOGGER.warning("Pending off of %s dropped: the device is not on the network", ieee)
            return
        name = self.friendly_name(ieee)
        async with self.device_lock(ieee), self._capture(ieee) as answers:
            message: dict[str, Any] = {}
            try:
                await self._radio.execute(ieee, pending.operations)
            except DeviceCommandError as exc:
                _LOGGER.error("Off of '%s' after on_time failed: '%s'; it stays on", name, exc)
            else:
                _LOGGER.info("Off of '%s' sent: on_time is over", name)
                if self.device_config(ieee).optimistic:
                    message = dict(pending.state)
            await self._publish_command_state(ieee, message, answers)

    async def _run_get(self, queued: QueuedCommand) -> None:
        """Carry out a `/get`: the reads of each cluster in one request, then one state message."""
        ieee = queued.ieee
        name = self.friendly_name(ieee)
        device = self._radio.device(ieee)
        definition = None if device is None else self.definition_of(device)
        errors: list[str] = []
        done: set[str] = set()
        async with self.device_lock(ieee), self._capture(ieee) as answers:
            steps = [] if definition is None else self._plan("get", ieee, definition, queued.properties)
            for step in steps:
                if step.plan is None:
                    errors.append(step.error or publish_failed("get", step.keys[0], name, "not planned"))
                    _LOGGER.error("%s", errors[-1])
                    continue
                expected = answers.expect(step.plan.operations)
                try:
                    await self._radio.execute(ieee, step.plan.operations)
                except DeviceCommandError as exc:
                    answers.forget(expected)
                    for key in step.keys:
                        errors.append(publish_failed("get", key, name, exc))
                        _LOGGER.error("%s", errors[-1])
                    continue
                done.update(step.keys)
            values = await answers.wait()
            # A /get is answered by a state message even when nothing changed.
            await self._publish_command_state(ieee, values, answers)
        state = {**self._state.get(ieee), **values}
        result = CommandResult(
            queued.command.device,
            ieee,
            "get",
            queued.properties,
            "\n".join(errors) or None,
            queued.transaction,
            state,
            frozenset(done),
        )
        await self.notify("on_command_result", result)

    async def _publish_command_state(self, ieee: str, message: dict[str, Any], answers: ReadAnswers) -> None:
        """A command's one state message, then the reports its device sent meanwhile that say more.

        A report that merely repeats the command's message (the On/Off report confirming an
        optimistic ON) is left out, now or when it arrives within CONFIRM_WINDOW_S.
        """
        if message:
            await self.publish_state(ieee, message, force=True)
            values = {k: v for k, v in message.items() if k not in _NOT_COMPARED}
            until = asyncio.get_running_loop().time() + CONFIRM_WINDOW_S
            entries = self._confirm.setdefault(ieee, [])
            entries.append((values, until))
            del entries[:-_CONFIRMS_KEPT]
        while answers.held:
            held, answers.held = answers.held, []
            merged: dict[str, Any] = {}
            for report in held:
                if report.kind == "report" and self._confirms(ieee, report.partial):
                    self._state.update(ieee, report.partial)
                else:
                    merged.update(report.partial)
            if merged:
                await self.publish_state(ieee, merged, force=True)

    def _confirms(self, ieee: str, partial: dict[str, Any]) -> bool:
        """True (once per key) when a device report merely repeats a command's message just
        published; a report that says otherwise ends the confirmation of what it contradicts.

        The messages of commands carried out back to back wait in order: a report that repeats a
        later one also ends the older ones (the device did not repeat those)."""
        now = asyncio.get_running_loop().time()
        entries = [
            (values, until) for values, until in self._confirm.get(ieee, []) if values and until >= now
        ]
        keys = [key for key in partial if key not in _NOT_COMPARED]
        confirmed = False
        for index, (values, _) in enumerate(entries):
            if keys and all(key in values and values[key] == partial[key] for key in keys):
                for older, _ in entries[: index + 1]:
                    for key in keys:
                        older.pop(key, None)
                confirmed = True
                break
        if not confirmed:
            for values, _ in entries:
                for key in keys:
                    if key in values and values[key] != partial[key]:
                        del values[key]
        kept = [(values, until) for values, until in entries if values]
        if kept:
            self._confirm[ieee] = kept
        else:
            self._confirm.pop(ieee, None)
        return confirmed

    # --- Zigbee -> MQTT ----------------------------------------------------------------------

    async def run_radio_events(self) -> None:
        """Consume radio events for the daemon's lifetime.

        Attributes that arrive together (the answers of one read, a burst of reports) become one
        state message: pending state is published once the queue is drained.
        """
        while True:
            if self._radio.events.empty():
                self._radio_idle.set()
            event = await self._radio.events.get()
            self._radio_idle.clear()
            try:
                await self.handle_radio_event(event)
            except Exception:
                _LOGGER.exception("Handling %s failed", event)
            await self.notify("on_radio_event", event)
            if self._radio.events.empty():
                await self.flush_pending_states()

    async def radio_settled(self) -> None:
        """Return once every radio event so far is handled and the state messages it made are
        published (as far as `run_radio_events` goes: extension tasks it started may still run)."""
        while not (self._radio_idle.is_set() and self._radio.events.empty()):
            if self._radio_idle.is_set():
                # Events arrived while the consumer waits: it takes them on this loop iteration.
                await asyncio.sleep(0)
            else:
                await self._radio_idle.wait()

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
        message = event.message()
        partial = convert_inbound(definition, message, self.device_config(event.ieee).converter_options())
        if not partial:
            return
        if event.linkquality is not None:
            partial["linkquality"] = event.linkquality
        self.timed_offs.cancel_when_reached(event.ieee, partial)
        answers = self._captures.get(event.ieee)
        key = (event.endpoint, event.cluster_id, event.attribute_id)
        if answers is not None and answers.take(key, event.kind, partial):
            return  # part of the command under way: published with (or after) its one message
        if event.kind == "report" and "action" not in partial and self._confirms(event.ieee, partial):
            self._state.update(event.ieee, partial)
            return
        # Every report is published, also when nothing changed (a heartbeat is a sign of life).
        self._queue_state(event.ieee, partial, force=True)

    async def _on_frame(self, event: ev.FrameReceived) -> None:
        if event.linkquality is not None:
            self._state.update(event.ieee, {"linkquality": event.linkquality})
        if event.ieee in self._captures:
            return  # the command's one state message carries last_seen
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
        except ConversionError as exc:
            _LOGGER.warning("Reading %s of '%s' failed: %s", ", ".join(wanted), self.friendly_name(ieee), exc)
            return
        # In the device's line, like a /get: its answers are published before the next command
        # starts, never held by that command and published after it (an old value last).
        async with self.device_lock(ieee), self._capture(ieee) as answers:
            expected = answers.expect(reads)
            try:
                await self._radio.execute(ieee, reads)
            except DeviceCommandError as exc:
                answers.forget(expected)
                _LOGGER.warning(
                    "Reading %s of '%s' failed: %s", ", ".join(wanted), self.friendly_name(ieee), exc
                )
            read = await answers.wait()
            await self._publish_command_state(ieee, read, answers)

    async def publish_startup_states(self) -> None:
        """At start: publish every cached state, and read the devices nothing is cached for."""
        for device in self._radio.devices():
            if self._state.has(device.ieee):
                await self.publish_state(device.ieee, {}, force=True)
            elif device.interviewed:
                self.spawn(self.refresh(device.ieee), f"refresh {device.ieee}")

    async def publish_state(self, ieee: str, partial: dict[str, Any], *, force: bool = False) -> None:
        """Merge a partial state into the cache and publish the device's state message.

        Device reports, commands and reconnects publish with `force` (every report is published, as
        Zigbee2MQTT does); other publications (an extension's `update` progress) leave out a
        message identical to the device's previous one.
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
        self._settings.pop(ieee, None)
        self._settings.forget_default(ieee)
        self._state.remove(ieee)
        self._pending.pop(ieee, None)
        self._last_published.pop(ieee, None)
        self._confirm.pop(ieee, None)
        self._fallback_noticed.discard(ieee)
        self.timed_offs.forget(ieee)
