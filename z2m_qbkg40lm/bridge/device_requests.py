"""The `bridge/request/device/...` requests: rename, remove, options, configure, interview.

A request that changes settings writes the configuration file first and changes the running
daemon only once that worked, so a failure leaves everything as it was. The other extensions hear
of renames and removals (`on_device_renamed`, `on_device_removed`) after `bridge.settings`
already holds the new state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from z2m_qbkg40lm.bridge.bridge_info import device_settings, merge, whole_numbers_as_integers
from z2m_qbkg40lm.bridge.config_writer import Delete, Edit, SetValue, device_key
from z2m_qbkg40lm.bridge.extension import RequestError, RequestHandler
from z2m_qbkg40lm.bridge.mqtt_options import overrides_refusal
from z2m_qbkg40lm.bridge.topics import command_filters
from z2m_qbkg40lm.config import DeviceConfig, friendly_name_problem
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError
from z2m_qbkg40lm.zigbee.radio import DeviceInfo

if TYPE_CHECKING:
    from z2m_qbkg40lm.bridge.bridge_api import BridgeApi

_LOGGER = logging.getLogger(__name__)

RESERVED_NAMES = ("bridge",)
"""`<base>/bridge/...` is the bridge's own: a device named so would collide with it."""

# Options the daemon applies as soon as they are set; others wait for a restart.

_RENAME_EXPECTED = (
    'expected {"from": "<name or IEEE address>", "to": "<new name>"} or {"last": true, "to": …}'
)
_ID_EXPECTED = 'expected {"id": "<friendly name or IEEE address>"} or the bare name'


def _problems(error: ValidationError) -> str:
    """pydantic's complaints as `key: problem` parts."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{where}: {message.removeprefix('Value error, ')}" if where else message)
    return "; ".join(dict.fromkeys(parts))


def _given_id(message: Any) -> str:
    """The device a request names: a bare string or `{"id": ...}`."""
    if isinstance(message, str) and message:
        return message
    if isinstance(message, dict) and isinstance(message.get("id"), str) and message["id"]:
        return str(message["id"])
    raise RequestError(f"Invalid payload: {_ID_EXPECTED}")


def _flag(message: Any, key: str) -> bool:
    value = message.get(key, False) if isinstance(message, dict) else False
    if not isinstance(value, bool):
        raise RequestError(f"Invalid payload: '{key}' must be true or false")
    return value


class DeviceRequests:
    """Handlers of the device requests, sharing the bridge API's publishing and file writing."""

    def __init__(self, api: BridgeApi) -> None:
        self._api = api
        self._moving = asyncio.Lock()
        """Held for a whole rename or removal, its announcements included: the extensions (and the
        retained topics) must see one device move at a time. One lock for all devices, not one per
        device: a rename resolves its `from` name only when its turn comes, so `a -> b` and
        `b -> c` sent back to back both succeed, in order."""

    def handlers(self) -> dict[str, RequestHandler]:
        """The request paths and their handlers."""
        return {
            "device/rename": self.rename,
            "device/remove": self.remove,
            "device/options": self.options,
            "device/configure": self.configure,
            "device/interview": self.interview,
        }

    @property
    def _bridge(self) -> Any:
        return self._api.context.bridge

    def _device(self, name: str) -> DeviceInfo:
        device: DeviceInfo | None = self._bridge.resolve(name)
        if device is None:
            raise RequestError(f"Device '{name}' does not exist")
        return device

    # --- rename ------------------------------------------------------------------------------------

    async def rename(self, message: Any) -> dict[str, Any]:
        """`{"from", "to", "homeassistant_rename"?}` or `{"last": true, "to"}`: the device's topics move."""
        if not isinstance(message, dict) or not isinstance(message.get("to"), str):
            raise RequestError(f"Invalid payload: {_RENAME_EXPECTED}")
        new: str = message["to"]
        homeassistant_rename = _flag(message, "homeassistant_rename")
        if message.get("last") is not True and not isinstance(message.get("from"), str):
            raise RequestError(f"Invalid payload: {_RENAME_EXPECTED}")
        async with self._moving:
            return await self._rename(message, new, homeassistant_rename)

    async def _rename(self, message: dict[str, Any], new: str, homeassistant_rename: bool) -> dict[str, Any]:
        # Resolved and checked under the lock: two renames at once must not both take one name.
        async with self._api.lock:
            if message.get("last") is True:
                if self._api.last_joined is None or self._bridge.resolve(self._api.last_joined) is None:
                    raise RequestError("No device has joined since start")
                ieee: str = self._api.last_joined
            else:
                ieee = self._device(message["from"]).ieee
            old: str = self._bridge.friendly_name(ieee)
            self._check_new_name(ieee, new)
            current: DeviceConfig = self._bridge.device_config(ieee)
            settings = DeviceConfig.model_validate({**device_settings(current), "friendly_name": new})
            await self._api.persist(
                lambda doc: self._device_edits(doc, ieee, settings, {"friendly_name": new})
            )
            self._bridge.settings[ieee] = settings
        base = self._api.context.config.mqtt.base_topic
        for topic_filter in command_filters(base, [new]):
            self._api.context.mqtt.subscribe(topic_filter)
        self._unsubscribe_unused(old)
        if old != new:
            await self._api.clear_retained(old)
            await self._api.clear_retained(f"{old}/availability")
        await self._api.publish_devices()
        await self._api.publish_info()
        await self._bridge.notify("on_device_renamed", ieee, old, new, homeassistant_rename)
        if self._bridge.has_state(ieee):
            await self._bridge.publish_state(ieee, {}, force=True)
        _LOGGER.info("Successfully renamed - %s to %s", old, new)
        return {"from": old, "homeassistant_rename": homeassistant_rename, "to": new}

    def _check_new_name(self, ieee: str, new: str) -> None:
        problem = friendly_name_problem(new)
        if problem is not None:
            raise RequestError(f"Invalid friendly_name: {problem}")
        if new in RESERVED_NAMES or new.startswith(tuple(f"{name}/" for name in RESERVED_NAMES)):
            raise RequestError(f"Invalid friendly_name: '{new}' is reserved for the bridge's topics")
        holder = self._bridge.resolve(new)
        in_settings = any(
            other != ieee and settings.friendly_name == new
            for other, settings in self._bridge.settings.items()
        )
        if in_settings or (holder is not None and holder.ieee != ieee):
            raise RequestError(f"friendly_name '{new}' is already in use")

    @staticmethod
    def _device_edits(
        document: dict[str, Any], ieee: str, settings: DeviceConfig, changes: dict[str, Any]
    ) -> list[Edit]:
        """Edits writing `changes` (None: remove the key) under the device's `devices:` entry."""
        key = device_key(document, ieee)
        devices = document.get("devices")
        if not isinstance(devices, dict) or not isinstance(devices.get(key), dict):
            # A new entry needs its friendly_name: the file must load on the next start.
            return [SetValue(("devices", key), device_settings(settings))]
        return [
            Delete(("devices", key, name)) if value is None else SetValue(("devices", key, name), value)
            for name, value in changes.items()
        ]

    # --- remove --------------------------------------------------------------------------------------

    async def remove(self, message: Any) -> dict[str, Any]:
        """`{"id", "force"?, "block"?}` or the bare id: off the network, out of the configuration."""
        given = _given_id(message)
        force = _flag(message, "force")
        if _flag(message, "block"):
            raise RequestError(
                "block is not supported: this daemon has no blocklist. Remove the device without "
                "'block' and keep permit join closed so that it cannot join again"
            )
        async with self._moving:
            await self._remove(given, force)
        return {"block": False, "force": force, "id": given}

    async def _remove(self, given: str, force: bool) -> None:
        ieee = self._device(given).ieee
        name: str = self._bridge.friendly_name(ieee)
        async with self._api.lock:
            self._api.removed.add(ieee)
            try:
                await self._api.context.radio.remove(ieee, force=force)
            except DeviceCommandError as exc:
                self._api.removed.discard(ieee)
                raise RequestError(
                    f"Failed to remove device '{name}' (block: false, force: {str(force).lower()}) ({exc})"
                ) from None
            self._bridge.forget_device(ieee)
            try:
                await self._api.persist(lambda doc: [Delete(("devices", device_key(doc, ieee)))])
            except RequestError as exc:
                raise RequestError(f"Device '{name}' was removed from the network, but: {exc}") from None
            finally:
                await self._removed(ieee, name, force)

    def _unsubscribe_unused(self, name: str) -> None:
        """Drop the command subscriptions `name` had, unless a device still has that name."""
        base = self._api.context.config.mqtt.base_topic
        names = [settings.friendly_name for settings in self._bridge.settings.values()]
        needed = set(command_filters(base, names))
        for topic_filter in command_filters(base, [name]):
            if topic_filter not in needed:
                self._api.context.mqtt.unsubscribe(topic_filter)

    async def _removed(self, ieee: str, name: str, force: bool) -> None:
        """Clear the removed device's retained messages and tell everyone."""
        self._unsubscribe_unused(name)
        await self._api.clear_retained(name)
        await self._api.clear_retained(f"{name}/availability")
        await self._api.publish_devices()
        await self._api.publish_info()
        await self._bridge.notify("on_device_removed", ieee, name)
        _LOGGER.info("Successfully removed device '%s'%s", name, " (forced)" if force else "")

    # --- options ----------------------------------------------------------------------------------------

    async def options(self, message: Any) -> dict[str, Any]:
        """`{"id", "options": {...}}`: change a device's settings (None resets one), live and on file."""
        expected = 'expected {"id": "<name or IEEE address>", "options": {"retain": true, ...}}'
        if not isinstance(message, dict) or not isinstance(message.get("options"), dict):
            raise RequestError(f"Invalid payload: {expected}")
        given = _given_id(message)
        changes: dict[str, Any] = message["options"]
        if not changes:
            raise RequestError(f"Invalid payload: {expected}")
        if "friendly_name" in changes:
            raise RequestError("friendly_name is changed with bridge/request/device/rename")
        refusal = overrides_refusal(changes.get("homeassistant"))
        if refusal is not None:
            raise RequestError(f"Invalid options: {refusal}")
        ieee = self._device(given).ieee
        name = self._bridge.friendly_name(ieee)
        async with self._api.lock:
            current: DeviceConfig = self._bridge.device_config(ieee)
            before = device_settings(current)
            try:
                merged = merge(
                    before, {key: value for key, value in changes.items() if key != "homeassistant"}
                )
                if "homeassistant" in changes:
                    # Replaced whole: inside the overrides `null` means "delete this discovery key",
                    # which a deep merge (where null resets a setting) would lose.
                    merged["homeassistant"] = changes["homeassistant"]
                settings = DeviceConfig.model_validate(merged)
            except ValidationError as exc:
                raise RequestError(f"Invalid options for '{name}': {_problems(exc)}") from None
            after = device_settings(settings)
            written = {key: after.get(key) for key in changes}
            await self._api.persist(lambda doc: self._device_edits(doc, ieee, settings, written))
            self._bridge.settings[ieee] = settings
        # Every device setting applies at once: the extensions follow on_device_options_changed.
        restart_required = False
        await self._api.publish_devices()
        await self._api.publish_info()
        await self._bridge.notify("on_device_options_changed", ieee)
        _LOGGER.info("Changed options of '%s': %s", name, ", ".join(sorted(changes)))
        return {
            "from": _shown_options(before),
            "id": given,
            "restart_required": restart_required,
            "to": _shown_options(after),
        }

    # --- configure, interview -------------------------------------------------------------------------

    async def configure(self, message: Any) -> dict[str, Any]:
        """`{"id"}` or the bare id: run the definition's configure step again."""
        given = _given_id(message)
        device = self._device(given)
        definition = self._bridge.definition_of(device)
        if definition is None or not definition.configure:
            raise RequestError(f"Device '{given}' cannot be configured")
        try:
            await self._api.context.radio.execute(device.ieee, definition.configure)
        except DeviceCommandError as exc:
            raise RequestError(f"Failed to configure ({exc})") from None
        _LOGGER.info("Successfully configured '%s'", self._bridge.friendly_name(device.ieee))
        await self._api.publish_devices()
        return {"id": given}

    async def interview(self, message: Any) -> dict[str, Any]:
        """`{"id"}` or the bare id: interview the device again; answered once it ended."""
        given = _given_id(message)
        ieee = self._device(given).ieee
        try:
            await self._api.context.radio.reinterview(ieee)
        except DeviceCommandError as exc:
            raise RequestError(f"Interview of '{given}' ({ieee}) failed: {exc}") from None
        return {"id": given}


def _shown_options(settings: dict[str, Any]) -> dict[str, Any]:
    """A device's settings as Zigbee2MQTT's device/options response shows them: without the
    friendly name (renames have their own request), whole numbers as integers."""
    shown: dict[str, Any] = whole_numbers_as_integers(
        {key: value for key, value in settings.items() if key != "friendly_name"}
    )
    return shown
