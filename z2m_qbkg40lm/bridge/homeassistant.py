"""Home Assistant MQTT discovery, and the republish on Home Assistant's birth message.

The payloads come from `ha_entities` (pure); this extension decides when to publish them:
on every (re)connect, after an interview, when a device's name, options or firmware version
change, when an action value is seen for the first time (its device trigger), and when Home
Assistant announces itself on `homeassistant.status_topic`. It also reads back the retained
configs of its devices at each connection, to keep the device triggers published by earlier
runs up to date and to clear configs it no longer generates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from z2m_qbkg40lm import __version__, strict_json
from z2m_qbkg40lm.bridge.availability import Availability, availability_enabled
from z2m_qbkg40lm.bridge.bridge import to_json
from z2m_qbkg40lm.bridge.extension import Context, Extension
from z2m_qbkg40lm.bridge.ha_entities import (
    ACTION_PROPERTY,
    OTA_UPDATE_REQUEST,
    BridgeTarget,
    DiscoveryTarget,
    Payload,
    bridge_configs,
    device_configs,
    trigger_config,
)
from z2m_qbkg40lm.devices.definition import ReadAttributes
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError

_LOGGER = logging.getLogger(__name__)

BASIC_CLUSTER = 0x0000
ATTR_SW_BUILD_ID = 0x4000
READ_SW_BUILD_ID = (ReadAttributes(endpoint=1, cluster_id=BASIC_CLUSTER, attribute_ids=(ATTR_SW_BUILD_ID,)),)


class HomeAssistant(Extension):
    """Publishes and maintains the discovery configs of every device (and of the bridge)."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        settings = context.config.homeassistant
        self._enabled = settings.enabled
        self._prefix = settings.discovery_topic
        self._status_topic = settings.status_topic
        self._birth_delay = settings.birth_republish_delay
        self._base = context.config.mqtt.base_topic
        self._coordinator = ""
        # What this run has published: discovery topic -> payload text, and each device's topics.
        self._published: dict[str, str] = {}
        self._topics: dict[str, set[str]] = {}
        # Configs of our devices found retained on the broker (they may come from an earlier run).
        self._retained: dict[str, set[str]] = {}
        self._triggers: dict[str, set[str]] = {}
        self._sw_build_ids: dict[str, str] = {}
        self._signatures: dict[str, tuple[Any, ...]] = {}
        self._with_state: set[str] = set()
        self._announced: set[str] = set()
        self._birth_task: asyncio.Task[None] | None = None

    # --- subscriptions ---------------------------------------------------------------------------

    def _scan_filter(self, ieee: str) -> str:
        """Every config under the device's node id (retained ones arrive at each connection)."""
        return f"{self._prefix}/+/{ieee}/+/config"

    def topic_filters(self) -> list[str]:
        """Home Assistant's status topic, and the retained configs of the known devices."""
        if not self._enabled:
            return []
        devices = self.context.radio.devices()
        return [self._status_topic, *(self._scan_filter(device.ieee) for device in devices)]

    # --- hooks -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Learn the coordinator; read the firmware version of devices that have not told it yet."""
        if not self._enabled:
            return
        if self.context.config.homeassistant.legacy_action_sensor:
            _LOGGER.warning("homeassistant.legacy_action_sensor is not supported by this daemon, ignored")
        self._coordinator = str(self.context.radio.network_summary()["coordinator"])
        for device in self.context.radio.devices():
            if device.interviewed and self._sw_build_id(device.ieee) is None:
                self.context.bridge.spawn(
                    self._read_sw_build_id(device.ieee), f"read swBuildId {device.ieee}"
                )

    async def stop(self) -> None:
        """Cancel a pending birth republish."""
        await self._cancel_birth()

    async def on_connected(self) -> None:
        """After every (re)connect: every config again (the broker may have lost them)."""
        if not self._enabled:
            return
        await self._publish_bridge()
        for device in self.context.radio.devices():
            first = device.ieee not in self._announced
            if await self._sync(device.ieee, force=True) and first and device.ieee in self._with_state:
                # The state went out before the entities existed: send it again for them.
                await self.context.bridge.publish_state(device.ieee, {}, force=True)

    async def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """Home Assistant's birth message, and retained configs of our devices."""
        if not self._enabled:
            return
        if topic == self._status_topic:
            text = payload.decode("utf-8", errors="replace").strip()
            if text.lower() == "online":
                await self._on_birth()
            return
        parts = topic.split("/")
        prefix_parts = self._prefix.split("/")
        if retained and parts[: len(prefix_parts)] == prefix_parts and len(parts) == len(prefix_parts) + 4:
            await self._on_retained_config(topic, parts[-3], parts[-4], payload)

    async def on_radio_event(self, event: ev.RadioEvent) -> None:
        """Discovery after an interview; firmware version answers; forget devices that left."""
        if not self._enabled:
            return
        match event:
            case ev.DeviceJoined():
                self.context.mqtt.subscribe(self._scan_filter(event.ieee))
            case ev.DeviceInterviewed():
                self.context.mqtt.subscribe(self._scan_filter(event.ieee))
                await self._sync(event.ieee)
                if self._sw_build_id(event.ieee) is None:
                    self.context.bridge.spawn(
                        self._read_sw_build_id(event.ieee), f"read swBuildId {event.ieee}"
                    )
            case ev.AttributeReceived(cluster_id=cluster, attribute_id=attribute) if (
                cluster == BASIC_CLUSTER and attribute == ATTR_SW_BUILD_ID and isinstance(event.value, str)
            ):
                version = event.value.strip("\x00 ")
                if version and self._sw_build_ids.get(event.ieee) != version:
                    self._sw_build_ids[event.ieee] = version
                    await self._sync(event.ieee)
            case ev.DeviceLeft():
                await self._clear_device(event.ieee)

    async def on_state_published(self, ieee: str, payload: dict[str, Any]) -> None:
        """Device triggers and `<base>/<FN>/action` for presses; refresh discovery if its inputs changed."""
        if not self._enabled:
            return
        self._with_state.add(ieee)
        if ieee in self._signatures and self._signature(ieee) != self._signatures[ieee]:
            # A rename or `device/options` change (name, availability, overrides) shows up here.
            await self._sync(ieee)
        action = payload.get(ACTION_PROPERTY)
        if isinstance(action, str) and action and self.context.mqtt.can_publish:
            if action not in self._triggers.setdefault(ieee, set()):
                self._triggers[ieee].add(action)
                await self._sync(ieee)
            name = self.context.bridge.friendly_name(ieee)
            await self.context.mqtt.publish(f"{self._base}/{name}/{ACTION_PROPERTY}", action)

    async def on_device_renamed(
        self, ieee: str, old_name: str, new_name: str, homeassistant_rename: bool = False
    ) -> None:
        """Same discovery topics (they use the IEEE address), new names and state topics.

        With `homeassistant_rename` the configs are cleared first, so Home Assistant drops the
        entities and creates them again with ids from the new name (as Zigbee2MQTT does).
        """
        if not self._enabled:
            return
        if homeassistant_rename:
            await self._clear_device(ieee)
        await self._sync(ieee)

    async def on_device_options_changed(self, ieee: str) -> None:
        """Overrides or availability changed: discovery follows at once."""
        if self._enabled:
            await self._sync(ieee)

    async def on_device_removed(self, ieee: str, name: str) -> None:
        """Clear every config of the device (empty retained messages)."""
        if self._enabled:
            await self._clear_device(ieee)

    # --- discovery -------------------------------------------------------------------------------

    def _sw_build_id(self, ieee: str) -> str | None:
        """Basic swBuildId: zigpy's attribute cache (kept in its database), else what we saw pass."""
        details = self.context.radio.details(ieee)
        if details is not None and details.software_build_id:
            return details.software_build_id
        return self._sw_build_ids.get(ieee)

    async def _read_sw_build_id(self, ieee: str) -> None:
        """Ask the device for Basic swBuildId; the answer arrives as an attribute event."""
        try:
            await self.context.radio.execute(ieee, READ_SW_BUILD_ID)
        except DeviceCommandError as exc:
            _LOGGER.info(
                "Cannot read the firmware version of '%s' (%s); discovery goes without sw_version",
                self.context.bridge.friendly_name(ieee),
                exc,
            )

    def _signature(self, ieee: str) -> tuple[Any, ...]:
        """What a device's discovery depends on besides its definition (cheap to compare)."""
        settings = self.context.bridge.device_config(ieee)
        return (
            settings.friendly_name,
            availability_enabled(self.context.config, settings),
            "homeassistant" in settings.model_fields_set,
            to_json(settings.homeassistant),
            self._sw_build_id(ieee),
        )

    def _target(self, ieee: str) -> DiscoveryTarget | None:
        bridge = self.context.bridge
        device = self.context.radio.device(ieee)
        definition = None if device is None else bridge.definition_of(device)
        if definition is None:
            return None
        settings = bridge.device_config(ieee)
        if "homeassistant" in settings.model_fields_set and settings.homeassistant is None:
            return None  # `homeassistant: null`: no discovery for this device
        return DiscoveryTarget(
            ieee=ieee,
            friendly_name=settings.friendly_name,
            definition=definition,
            base_topic=self._base,
            discovery_prefix=self._prefix,
            coordinator_ieee=self._coordinator,
            availability=availability_enabled(self.context.config, settings),
            sw_build_id=self._sw_build_id(ieee),
            overrides=settings.homeassistant or {},
            firmware_updates=OTA_UPDATE_REQUEST in self._served(),
            last_seen=self.context.config.advanced.last_seen,
        )

    def _configs(self, ieee: str) -> dict[str, Payload]:
        target = self._target(ieee)
        if target is None:
            return {}
        configs = device_configs(target)
        for action in sorted(self._triggers.get(ieee, ())):
            topic, payload = trigger_config(target, action)
            configs[topic] = payload
        return configs

    async def _sync(self, ieee: str, *, force: bool = False) -> bool:
        """Publish the device's configs that changed (all with force) and clear the ones gone.

        Returns True when something was published.
        """
        self._signatures[ieee] = self._signature(ieee)
        if not self.context.mqtt.can_publish:
            return False  # on_connected publishes everything
        configs = self._configs(ieee)
        stale = (self._topics.get(ieee, set()) | self._retained.get(ieee, set())) - configs.keys()
        for topic in sorted(stale):
            await self._clear(topic)
        self._retained.get(ieee, set()).difference_update(stale)
        sent = False
        for topic, payload in configs.items():
            text = to_json(payload)
            changed = force or self._published.get(topic) != text
            if changed and await self.context.mqtt.publish(topic, text, retain=True, qos=1):
                self._published[topic] = text
                sent = True
        self._topics[ieee] = set(configs)
        if configs:
            self._announced.add(ieee)
        return sent

    async def _clear(self, topic: str) -> None:
        self._published.pop(topic, None)
        await self.context.mqtt.publish(topic, "", retain=True, qos=1)

    async def _clear_device(self, ieee: str) -> None:
        topics = self._topics.pop(ieee, set()) | self._retained.pop(ieee, set())
        for topic in sorted(topics):
            await self._clear(topic)
        for table in (self._triggers, self._signatures, self._sw_build_ids):
            table.pop(ieee, None)
        self._with_state.discard(ieee)
        self._announced.discard(ieee)

    async def _on_retained_config(self, topic: str, node_id: str, component: str, payload: bytes) -> None:
        """A config found on the broker: update our triggers, clear configs of ours no longer made."""
        if not payload:
            return
        try:
            config = strict_json.loads(payload.decode("utf-8"))
        except ValueError as exc:  # not UTF-8, not JSON, or refused (too deep, NaN)
            _LOGGER.warning("Ignoring the retained discovery config on '%s': %s", topic, exc)
            return
        if not isinstance(config, dict) or not self._is_ours(config):
            return
        ieee = node_id
        self._retained.setdefault(ieee, set()).add(topic)
        if component == "device_automation":
            action = config.get("subtype")
            if isinstance(action, str) and action and action not in self._triggers.setdefault(ieee, set()):
                self._triggers[ieee].add(action)
        # Publishes what differs from the retained copy (a trigger of an old name) and clears the rest.
        self._published.setdefault(topic, to_json(config))
        await self._sync(ieee)

    def _is_ours(self, config: dict[str, Any]) -> bool:
        """Made by a bridge with our base topic (Zigbee2MQTT's or ours)."""
        prefix = f"{self._base}/"
        unique_id = config.get("unique_id")
        if isinstance(unique_id, str) and unique_id.endswith(f"_{self._base}"):
            return True
        topic = config.get("topic")
        return isinstance(topic, str) and topic.startswith(prefix)

    async def _publish_bridge(self) -> None:
        if not self._coordinator:
            return
        target = BridgeTarget(
            base_topic=self._base,
            discovery_prefix=self._prefix,
            coordinator_ieee=self._coordinator,
            coordinator_type=self.context.radio.coordinator_type,
            version=__version__,
            entities=self._bridge_entities(),
        )
        for topic, payload in bridge_configs(target).items():
            text = to_json(payload)
            if await self.context.mqtt.publish(topic, text, retain=True, qos=1):
                self._published[topic] = text

    def _served(self) -> set[str]:
        """The bridge requests the daemon's extensions serve."""
        served: set[str] = set()
        for extension in self.context.bridge.extensions:
            served.update(extension.request_handlers())
        return served

    def _bridge_entities(self) -> frozenset[str]:
        """The bridge entities whose requests the daemon serves (the others could never work).

        `bridge/state` is the core's; `bridge/info` (version, restart_required, the coordinator's
        revision, permit_join, log_level) comes with
        the bridge API, which also serves the requests behind the switch, button and select.
        """
        served = self._served()
        entities = {"connection_state"}
        if served & {"permit_join", "restart", "options"}:
            entities.update(("version", "restart_required", "coordinator_version"))
        entities.update(name for name in ("permit_join", "restart") if name in served)
        if "options" in served:
            entities.add("log_level")
        return frozenset(entities)

    # --- Home Assistant's birth message ----------------------------------------------------------

    async def _on_birth(self) -> None:
        """Discovery at once; bridge state, availability and states after the configured delay.

        In a task of its own: MQTT messages are handled one at a time and this is many publishes.
        """
        _LOGGER.info("Home Assistant is online: publishing discovery, states in %g s", self._birth_delay)
        await self._cancel_birth()
        self._birth_task = asyncio.get_running_loop().create_task(self._republish(), name="HA birth")

    async def _cancel_birth(self) -> None:
        task, self._birth_task = self._birth_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _republish(self) -> None:
        await self._publish_bridge()
        for device in self.context.radio.devices():
            await self._sync(device.ieee, force=True)
        await asyncio.sleep(self._birth_delay)
        mqtt = self.context.mqtt
        if not mqtt.can_publish:
            return  # the next connection republishes everything anyway
        await mqtt.publish(f"{self._base}/bridge/state", to_json({"state": "online"}), retain=True, qos=1)
        for extension in self.context.bridge.extensions:
            if isinstance(extension, Availability):
                await extension.republish()
        known = {device.ieee for device in self.context.radio.devices()}
        for ieee in sorted(self._with_state & known):
            await self.context.bridge.publish_state(ieee, {}, force=True)
