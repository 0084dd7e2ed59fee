"""The radio layer: one zigpy ControllerApplication for the configured adapter.

It forms or resumes the network, teaches zigpy the devices' manufacturer clusters and hidden
endpoints, turns zigpy's listener calls into events on a queue, and runs converter plans.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.config import Config, NetworkSettings
from z2m_qbkg40lm.devices.definition import DeviceDefinition, ZclOperation
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.adapters import ADAPTERS, application_class, zigpy_config
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError, execute
from z2m_qbkg40lm.zigbee.lumi_cluster import make_device_resolver, register_manufacturer_clusters

_LOGGER = logging.getLogger(__name__)


class RadioError(Exception):
    """The adapter could not be started; the message says what to check."""


def ieee_string(ieee: Any) -> str:
    """zigpy's EUI64 ("54:ef:44:…") as Zigbee2MQTT writes it ("0x54ef44…")."""
    return "0x" + str(ieee).replace(":", "").lower()


@dataclass(frozen=True)
class DeviceInfo:
    """What the bridge needs to know about one device on the network."""

    ieee: str
    nwk: int
    model_id: str | None
    manufacturer: str | None
    interviewed: bool
    linkquality: int | None


class Radio:
    """The zigpy application, its listeners, and the events they produce."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        network: NetworkSettings,
        definitions: tuple[DeviceDefinition, ...],
    ) -> None:
        self.events: asyncio.Queue[ev.RadioEvent] = asyncio.Queue()
        self._config = config
        self._data_dir = data_dir
        self._network = network
        self._definitions = definitions
        self._app: Any = None
        self._unsubscribes: dict[str, list[Callable[[], None]]] = {}

    @property
    def adapter(self) -> str:
        """The configured adapter name."""
        return self._config.serial.adapter

    @property
    def coordinator_type(self) -> str:
        """A Zigbee2MQTT-style coordinator type name."""
        return ADAPTERS[self.adapter].coordinator_type

    @property
    def simulation(self) -> Any | None:
        """The virtual adapter's scripting API (presses, heartbeats, power cycles), else None."""
        return getattr(self._app, "simulation", None)

    async def start(self) -> None:
        """Start the adapter and form the network, or resume the one it has."""
        for definition in self._definitions:
            register_manufacturer_clusters(definition.manufacturer_clusters)
        patches = {
            model_id: definition.endpoint_patches
            for definition in self._definitions
            for model_id in definition.model_ids
        }
        app_class = application_class(self.adapter)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        zconfig = zigpy_config(self._config, self._data_dir, self._network)
        try:
            self._app = await app_class.new(
                zconfig,
                auto_form=True,
                start_radio=False,
                device_resolver=make_device_resolver(patches),
            )
            self._app.add_listener(_ZigpyListener(self))
            await self._app.startup(auto_form=True)
        except Exception as exc:
            await self._close_after_failed_start()
            where = self._config.serial.port or "the virtual adapter"
            raise RadioError(
                f"cannot start the {self.adapter} adapter on {where}: {exc or type(exc).__name__}"
            ) from exc
        for device in self._devices():
            self._subscribe(device)
        info = self._app.state.network_info
        _LOGGER.info(
            "Zigbee network up: channel %s, PAN id 0x%04x, coordinator %s, %d device(s)",
            info.channel,
            int(info.pan_id),
            ieee_string(self._app.state.node_info.ieee),
            len(self._devices()),
        )

    async def _close_after_failed_start(self) -> None:
        """zigpy closes the radio but not its database when start-up fails; an open database
        thread would keep the process from exiting."""
        if self._app is None:
            return
        app, self._app = self._app, None
        try:
            await app.shutdown(db=True)
        except Exception:
            _LOGGER.exception("Closing the zigpy application after a failed start failed")

    async def stop(self) -> None:
        """Shut the application down, saving zigpy's database."""
        for unsubscribes in self._unsubscribes.values():
            for unsubscribe in unsubscribes:
                unsubscribe()
        self._unsubscribes.clear()
        if self._app is not None:
            await self._app.shutdown()
            self._app = None

    def network_summary(self) -> dict[str, Any]:
        """Channel, PAN id, extended PAN id and coordinator IEEE of the running network."""
        info = self._app.state.network_info
        return {
            "channel": int(info.channel),
            "pan_id": int(info.pan_id),
            "extended_pan_id": ieee_string(info.extended_pan_id),
            "coordinator": ieee_string(self._app.state.node_info.ieee),
        }

    def _devices(self) -> list[Any]:
        coordinator = self._app.state.node_info.ieee
        return [device for ieee, device in self._app.devices.items() if ieee != coordinator]

    def devices(self) -> list[DeviceInfo]:
        """Every device on the network except the coordinator."""
        return [self._info(device) for device in self._devices()]

    def device(self, ieee: str) -> DeviceInfo | None:
        """One device by IEEE address ("0x…"), or None."""
        found = self._find(ieee)
        return None if found is None else self._info(found)

    def _find(self, ieee: str) -> Any | None:
        for device in self._devices():
            if ieee_string(device.ieee) == ieee:
                return device
        return None

    @staticmethod
    def _info(device: Any) -> DeviceInfo:
        return DeviceInfo(
            ieee=ieee_string(device.ieee),
            nwk=int(device.nwk),
            model_id=device.model,
            manufacturer=device.manufacturer,
            interviewed=bool(device.is_initialized),
            linkquality=device.lqi,
        )

    async def execute(self, ieee: str, operations: tuple[ZclOperation, ...]) -> None:
        """Run a converter plan on a device; DeviceCommandError says what failed."""
        device = self._find(ieee)
        if device is None:
            raise DeviceCommandError(f"device {ieee} is not on the network")
        await execute(device, operations)

    async def permit_join(self, seconds: int) -> None:
        """Open (or with 0, close) the network for joining."""
        await self._app.permit(time_s=seconds)

    # --- listeners -> events ------------------------------------------------------------------

    def _subscribe(self, device: Any) -> None:
        """Follow attribute reports and read answers of every input cluster of a device."""
        ieee = ieee_string(device.ieee)
        for unsubscribe in self._unsubscribes.pop(ieee, []):
            unsubscribe()
        unsubscribes = []
        for endpoint_id, endpoint in device.endpoints.items():
            if endpoint_id == 0:
                continue
            for cluster in endpoint.in_clusters.values():
                for name, kind in (("attribute_report", "report"), ("attribute_read", "read")):
                    unsubscribes.append(cluster.on_event(name, self._attribute_callback(device, kind)))
        announce_listener = _AnnounceListener(self)
        device.zdo.add_listener(announce_listener)
        unsubscribes.append(lambda: device.zdo.remove_listener(announce_listener))
        self._unsubscribes[ieee] = unsubscribes

    def _attribute_callback(self, device: Any, kind: str) -> Callable[[Any], None]:
        ieee = ieee_string(device.ieee)

        def callback(event: Any) -> None:
            self.events.put_nowait(
                ev.AttributeReceived(
                    ieee=ieee,
                    endpoint=int(event.endpoint_id),
                    cluster_id=int(event.cluster_id),
                    attribute_id=int(event.attribute_id),
                    value=event.value,
                    kind="read" if kind == "read" else "report",
                    linkquality=device.lqi,
                )
            )

        return callback


class _ZigpyListener:
    """zigpy's application listener; each call becomes one event. zigpy logs listener exceptions
    only at DEBUG, so every body is guarded and logged at ERROR."""

    def __init__(self, radio: Radio) -> None:
        self._radio = radio

    def _put(self, event: ev.RadioEvent) -> None:
        self._radio.events.put_nowait(event)

    def device_joined(self, device: Any) -> None:
        try:
            ieee = ieee_string(device.ieee)
            self._put(ev.DeviceJoined(ieee=ieee, nwk=int(device.nwk)))
            self._put(ev.DeviceInterviewStarted(ieee=ieee))
        except Exception:
            _LOGGER.exception("Handling a device join failed")

    def device_initialized(self, device: Any) -> None:
        try:
            if device.ieee == self._radio._app.state.node_info.ieee:
                return
            self._radio._subscribe(device)
            self._put(
                ev.DeviceInterviewed(
                    ieee=ieee_string(device.ieee), model_id=device.model, manufacturer=device.manufacturer
                )
            )
        except Exception:
            _LOGGER.exception("Handling a finished interview failed")

    def device_init_failure(self, device: Any) -> None:
        try:
            self._put(ev.DeviceInterviewFailed(ieee=ieee_string(device.ieee), reason="interview failed"))
        except Exception:
            _LOGGER.exception("Handling a failed interview failed")

    def device_left(self, device: Any) -> None:
        try:
            self._put(ev.DeviceLeft(ieee=ieee_string(device.ieee)))
        except Exception:
            _LOGGER.exception("Handling a device leave failed")

    device_removed = device_left

    def handle_message(  # noqa: PLR0917 - zigpy's listener signature
        self, device: Any, profile: int, cluster: int, src_ep: int, dst_ep: int, message: bytes
    ) -> None:
        try:
            self._put(ev.FrameReceived(ieee=ieee_string(device.ieee), linkquality=device.lqi))
        except Exception:
            _LOGGER.exception("Handling a received frame failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self._put(ev.RadioLost(reason=str(exc) if exc else "connection lost"))


class _AnnounceListener:
    """Device-level ZDO listener: a known device announcing itself again (e.g. after power loss)."""

    def __init__(self, radio: Radio) -> None:
        self._radio = radio

    def device_announce(self, device: Any) -> None:
        try:
            self._radio.events.put_nowait(
                ev.DeviceAnnounced(ieee=ieee_string(device.ieee), nwk=int(device.nwk))
            )
        except Exception:
            _LOGGER.exception("Handling a device announcement failed")
