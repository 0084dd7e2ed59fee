"""Keeps operation_mode, flip_indicator_light and power_outage_memory as the user last set them.

Users report that the QBKG40LM drops these settings by itself, without a report
(zigbee-herdsman-converters issue 12568). The guard remembers the value of each that the user last
set successfully with a `/set` (per device, in `<data_dir>/settings_guard.json`), reads them back
every `settings_guard.check_interval` minutes and shortly after the device announces itself, joins
again or is interviewed again, and writes back a setting that drifted: with a WARNING in the log
and a `device_setting_reapplied` event on `<base>/bridge/event`. A setting the user never set is
never enforced; a new `/set` replaces the remembered value. Not in Zigbee2MQTT.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.atomic_file import write_atomically
from z2m_qbkg40lm.bridge.bridge import to_json
from z2m_qbkg40lm.bridge.extension import CommandResult, Context, Extension, RequestError, RequestHandler
from z2m_qbkg40lm.devices.definition import (
    AttributeMessage,
    ConversionError,
    DeviceDefinition,
    ReadAttributes,
    State,
    WriteAttribute,
    ZclOperation,
)
from z2m_qbkg40lm.devices.registry import convert_inbound, merged_reads, plan_get, plan_set
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError

_LOGGER = logging.getLogger(__name__)

GUARDED_SETTINGS = ("operation_mode", "flip_indicator_light", "power_outage_memory")
STORE_FILE = "settings_guard.json"
STORE_VERSION = 1
SETTLE_S = 2.0
"""After an announce or join, wait this long before reading: a rebooted device often announces
more than once, and Zigbee2MQTT also re-reads 2 s after an announce."""
ANSWER_TIMEOUT_S = 5.0
"""How long read answers may take to be applied once zigpy has them (they are queued by then)."""

_AnswerKey = tuple[int, int, int]


class RememberedSettings:
    """What the user last set, per device: `{ieee: {setting: value}}` in a JSON file.

    Written atomically (temporary file, fsync, rename) on every change: changes are rare, and a
    crash must never leave a half-written file.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._devices: dict[str, dict[str, Any]] = {}

    def load(self) -> None:
        """Read the file; an unreadable one is kept aside and nothing is remembered."""
        if not self._path.exists():
            return
        try:
            loaded = json.loads(self._path.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict) or loaded.get("version") != STORE_VERSION:
                raise ValueError(f"expected a JSON object with version {STORE_VERSION}")
            devices = loaded.get("devices")
            if not isinstance(devices, dict):
                raise TypeError("expected 'devices' to be a JSON object")
        except (OSError, ValueError, TypeError) as exc:
            aside = self._path.with_suffix(".corrupt")
            _LOGGER.warning(
                "Remembered settings %s are unreadable (%s); kept as %s, starting with none",
                self._path,
                exc,
                aside,
            )
            self._path.replace(aside)
            return
        self._devices = {
            str(ieee): {k: v for k, v in settings.items() if k in GUARDED_SETTINGS}
            for ieee, settings in devices.items()
            if isinstance(settings, dict)
        }

    def devices(self) -> list[str]:
        """IEEE addresses of the devices with a remembered setting."""
        return [ieee for ieee, settings in self._devices.items() if settings]

    def get(self, ieee: str) -> dict[str, Any]:
        """A copy of one device's remembered settings."""
        return dict(self._devices.get(ieee, {}))

    def remember(self, ieee: str, settings: dict[str, Any]) -> None:
        """Merge settings the user just set; saved at once when something changed."""
        current = self._devices.setdefault(ieee, {})
        if any(current.get(k, object()) != v for k, v in settings.items()):
            current.update(settings)
            self.save()

    def forget(self, ieee: str) -> None:
        """Forget a device (it was removed)."""
        if self._devices.pop(ieee, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the file now, atomically."""
        text = json.dumps({"devices": self._devices, "version": STORE_VERSION}, sort_keys=True, indent=1)
        try:
            write_atomically(self._path, text + "\n")
        except OSError:
            _LOGGER.exception("Cannot save the remembered settings to %s", self._path)


def written_value(definition: DeviceDefinition, prop: str, value: Any, options: Any) -> Any:
    """A `/set` value as the device will report it (`"DECOUPLED"` -> `"decoupled"`, `"true"` -> true).

    The value the plan writes is passed through the definition's own inbound converters, so the
    remembered value compares equal to what a read-back gives. None when it cannot be worked out.
    """
    try:
        plan = plan_set(definition, prop, value, {}, options)
    except ConversionError:
        return None
    for operation in plan.operations:
        if isinstance(operation, WriteAttribute):
            message = AttributeMessage(
                operation.endpoint, operation.cluster_id, operation.attribute_id, operation.value, "read"
            )
            converted = convert_inbound(definition, message, options)
            if prop in converted:
                return converted[prop]
    return plan.optimistic_state.get(prop)


class _Answers:
    """The read answers one check waits for, converted to state as they are applied."""

    def __init__(
        self, ieee: str, definition: DeviceDefinition, options: Any, operations: Iterable[ZclOperation]
    ) -> None:
        self.ieee = ieee
        self._definition = definition
        self._options = options
        self._missing: set[_AnswerKey] = {
            (op.endpoint, op.cluster_id, attribute_id)
            for op in operations
            if isinstance(op, ReadAttributes)
            for attribute_id in op.attribute_ids
        }
        self._complete = asyncio.Event()
        self.values: State = {}

    def take(self, event: ev.AttributeReceived) -> None:
        """Collect the event when it is one of the expected answers."""
        key = (event.endpoint, event.cluster_id, event.attribute_id)
        if event.ieee != self.ieee or event.kind != "read" or key not in self._missing:
            return
        message = AttributeMessage(event.endpoint, event.cluster_id, event.attribute_id, event.value, "read")
        self.values.update(convert_inbound(self._definition, message, self._options))
        self._missing.discard(key)
        if not self._missing:
            self._complete.set()

    async def wait(self) -> State:
        """The values read, once every answer was applied or after ANSWER_TIMEOUT_S."""
        if self._missing:
            try:
                await asyncio.wait_for(self._complete.wait(), ANSWER_TIMEOUT_S)
            except TimeoutError:
                _LOGGER.warning("Settings guard: read answers from %s were not applied in time", self.ieee)
        return self.values


class SettingsGuard(Extension):
    """Remembers the guarded settings the user set, checks them, and re-applies drifted ones."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._config = context.config.settings_guard
        self._store = RememberedSettings(context.data_dir / STORE_FILE)
        self._answers: list[_Answers] = []
        self._settling: set[str] = set()
        self._periodic: asyncio.Task[None] | None = None

    def request_handlers(self) -> dict[str, RequestHandler]:
        """`simulation/revert_settings`: a simulated switch silently forgets its settings."""
        return {"simulation/revert_settings": self._sim_revert_settings}

    async def start(self) -> None:
        """Load the remembered settings and start the periodic check."""
        if not self._config.enabled:
            return
        self._store.load()
        self._periodic = asyncio.get_running_loop().create_task(
            self._check_periodically(), name="settings guard"
        )

    async def stop(self) -> None:
        """Stop the periodic check."""
        if self._periodic is not None:
            self._periodic.cancel()
            await asyncio.gather(self._periodic, return_exceptions=True)
            self._periodic = None

    async def on_command_result(self, result: CommandResult) -> None:
        """Remember the guarded settings a `/set` applied (all its keys, or those it carried out
        when others failed)."""
        if not self._config.enabled or result.action != "set" or result.ieee is None:
            return
        done = frozenset(result.properties) if result.error is None else result.applied
        guarded = {
            prop: value
            for prop, value in result.properties.items()
            if prop in GUARDED_SETTINGS and prop in done
        }
        if not guarded:
            return
        ieee = result.ieee
        definition = self._definition(ieee)
        if definition is None:
            return
        options = self.context.bridge.device_config(ieee).converter_options()
        settings = {}
        for prop, value in guarded.items():
            wanted = written_value(definition, prop, value, options)
            if wanted is None:
                wanted = result.state.get(prop)
            if wanted is not None:
                settings[prop] = wanted
        _LOGGER.debug("Settings guard: remembering %s for %s", settings, ieee)
        self._store.remember(ieee, settings)

    async def on_radio_event(self, event: ev.RadioEvent) -> None:
        """Collect read answers; check a device that announced itself or joined again."""
        if isinstance(event, ev.AttributeReceived):
            for answers in self._answers:
                answers.take(event)
        elif (
            isinstance(event, ev.DeviceAnnounced | ev.DeviceJoined | ev.DeviceInterviewed)
            and self._config.enabled
            and self._store.get(event.ieee)
            and event.ieee not in self._settling
        ):
            self._settling.add(event.ieee)
            self.context.bridge.spawn(self._check_after_settling(event.ieee), f"settings guard {event.ieee}")

    async def on_device_removed(self, ieee: str, name: str) -> None:
        """Forget a removed device's settings."""
        self._store.forget(ieee)

    # --- checks ---------------------------------------------------------------------------------

    async def _check_periodically(self) -> None:
        interval_s = self._config.check_interval * 60
        while True:
            await asyncio.sleep(interval_s)
            for ieee in self._store.devices():
                try:
                    await self.check(ieee)
                except Exception:
                    _LOGGER.exception("Settings guard: checking %s failed", ieee)

    async def _check_after_settling(self, ieee: str) -> None:
        try:
            await asyncio.sleep(SETTLE_S)
        finally:
            self._settling.discard(ieee)
        await self.check(ieee)

    def _definition(self, ieee: str) -> DeviceDefinition | None:
        device = self.context.radio.device(ieee)
        return None if device is None else self.context.bridge.definition_of(device)

    async def check(self, ieee: str) -> None:
        """Read the device's remembered settings back and re-apply each one that drifted."""
        # The device's command lock: a check never interleaves with a user's /set.
        async with self.context.bridge.device_lock(ieee):
            wanted = self._store.get(ieee)
            definition = self._definition(ieee)
            if not wanted or definition is None:
                return
            name = self.context.bridge.friendly_name(ieee)
            try:
                reads = merged_reads(op for prop in wanted for op in plan_get(definition, prop))
                found = await self._execute(ieee, definition, reads)
            except (ConversionError, DeviceCommandError) as exc:
                _LOGGER.warning(
                    "Reading the settings of '%s' failed (%s); trying again at the next check",
                    name,
                    exc,
                )
                return
            for prop, value in wanted.items():
                if prop not in found or found[prop] == value:
                    continue
                if self._store.get(ieee).get(prop) != value:
                    continue  # the user set it again meanwhile
                await self._reapply(ieee, definition, prop, found=found[prop], wanted=value)

    async def _reapply(
        self, ieee: str, definition: DeviceDefinition, prop: str, *, found: Any, wanted: Any
    ) -> None:
        name = self.context.bridge.friendly_name(ieee)
        _LOGGER.warning(
            "Device '%s' (%s) lost its setting '%s': found %s, wanted %s (as last set); writing it again",
            name,
            ieee,
            prop,
            to_json(found),
            to_json(wanted),
        )
        options = self.context.bridge.device_config(ieee).converter_options()
        try:
            plan = plan_set(definition, prop, wanted, {}, options)
            operations = plan.operations
            if not any(isinstance(op, ReadAttributes) for op in operations):
                # Read it back: the answer confirms the write and publishes the state.
                operations = (*operations, *plan_get(definition, prop))
            now = await self._execute(ieee, definition, operations)
        except (ConversionError, DeviceCommandError) as exc:
            _LOGGER.warning(
                "Re-applying '%s' on '%s' failed (%s); trying again at the next check", prop, name, exc
            )
            return
        if now.get(prop) != wanted:
            _LOGGER.warning(
                "Device '%s' did not keep '%s' = %s (it reads %s); trying again at the next check",
                name,
                prop,
                to_json(wanted),
                to_json(now.get(prop)),
            )
            return
        _LOGGER.info("Re-applied '%s' = %s on '%s'", prop, to_json(wanted), name)
        event = {
            "data": {
                "found": found,
                "friendly_name": name,
                "ieee_address": ieee,
                "setting": prop,
                "wanted": wanted,
            },
            "type": "device_setting_reapplied",
        }
        base = self.context.config.mqtt.base_topic
        await self.context.mqtt.publish(f"{base}/bridge/event", to_json(event))

    async def _execute(
        self, ieee: str, definition: DeviceDefinition, operations: tuple[ZclOperation, ...]
    ) -> State:
        """Run operations on the device; returns the values its read answers gave."""
        options = self.context.bridge.device_config(ieee).converter_options()
        answers = _Answers(ieee, definition, options, operations)
        self._answers.append(answers)
        try:
            await self.context.radio.execute(ieee, operations)
            return await answers.wait()
        finally:
            self._answers.remove(answers)

    # --- simulation -----------------------------------------------------------------------------

    async def _sim_revert_settings(self, message: Any) -> dict[str, Any]:
        simulation = self.context.radio.simulation
        if simulation is None:
            raise RequestError("simulation requests need the virtual adapter")
        if isinstance(message, str):
            name = message
        elif isinstance(message, dict) and isinstance(message.get("id"), str):
            name = message["id"]
        else:
            raise RequestError('Invalid payload: expected {"id": "<friendly name or IEEE address>"}')
        device = self.context.bridge.resolve(name)
        if device is None:
            raise RequestError(f"Device '{name}' does not exist")
        try:
            await simulation.revert_settings(device.ieee)
        except ValueError as exc:  # SimulationError
            raise RequestError(str(exc)) from None
        return {"id": device.ieee}
