"""The adapter table: Zigbee2MQTT's `serial.adapter` names -> a zigpy radio library and its config.

Only the radio library the configuration names is imported (measured: zigpy, zigpy-znp and aiomqtt
64 MB; with bellows and zigpy-deconz as well 68 MB; zigpy itself is the bulk).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from z2m_qbkg40lm.config import Config, NetworkSettings
from z2m_qbkg40lm.ota.provider import zigpy_ota_config

DATABASE_FILE = "zigbee.db"
ZSTACK_REQUEST_TIMEOUT_S = 6
ZSTACK_ANSWER_TIMEOUT_S = 10
VIRTUAL_STATE_FILE = "virtual_adapter.json"


@dataclass(frozen=True)
class RadioLibrary:
    """Where the zigpy ControllerApplication of one adapter family lives."""

    module: str
    display_name: str
    coordinator_type: str
    reset_detection: str | None = None
    """The module that tells when the coordinator rebooted on its own (see `ResetDetection`);
    None: the library gives no sign of it, and only a lost connection is noticed."""
    firmware_types: tuple[tuple[str, str], ...] = ()
    """Zigbee2MQTT's coordinator type by the start of the firmware version the library reports
    (zigpy's `node_info.version`); `coordinator_type` when none matches."""

    def type_of(self, firmware_version: str | None) -> str:
        """The coordinator type of a running coordinator whose firmware says `firmware_version`."""
        for prefix, kind in self.firmware_types:
            if firmware_version is not None and firmware_version.startswith(prefix):
                return kind
        return self.coordinator_type


class ResetDetection(Protocol):
    """What a radio library's reset detection module provides (one module per library)."""

    def watch_resets(self, app: Any, on_reset: Callable[[str], None]) -> Callable[[], None]:
        """Call `on_reset(reason)` whenever the running coordinator announces it rebooted;
        returns the function that stops watching."""
        ...

    def failure_means_reset(self, exc: BaseException) -> bool:
        """True when a failed send is explained only by a coordinator that rebooted (and so
        forgot what the host set up): the frame never went on air, and may be sent again."""
        ...

    def lost_means_reset(self, exc: BaseException | None) -> str | None:
        """The reason, when what the library reports as a lost connection is a coordinator that
        rebooted on its own (and can be started again in-process); None for a lost adapter."""
        ...


ADAPTERS: dict[str, RadioLibrary] = {
    "zstack": RadioLibrary(
        "zigpy_znp.zigbee.application",
        "zigpy-znp",
        "zStack3x0",
        "z2m_qbkg40lm.zigbee.znp_resets",
        # zigpy-znp names the firmware it detected: a CC2530/CC2531 runs Z-Stack Home 1.2, a
        # CC2538 Z-Stack 3.0.x; anything else is Z-Stack 3.x on a CC13xx/CC26xx.
        firmware_types=(("Z-Stack Home 1.2", "zStack12"), ("Z-Stack 3.0.x", "zStack30x")),
    ),
    "ezsp": RadioLibrary("bellows.zigbee.application", "bellows", "EZSP", "z2m_qbkg40lm.zigbee.ezsp_resets"),
    "ember": RadioLibrary(
        "bellows.zigbee.application", "bellows", "EmberZNet", "z2m_qbkg40lm.zigbee.ezsp_resets"
    ),
    "deconz": RadioLibrary("zigpy_deconz.zigbee.application", "zigpy-deconz", "ConBee/RaspBee"),
    "virtual": RadioLibrary("z2m_qbkg40lm.sim.virtual_radio", "virtual", "Virtual"),
}


def application_class(adapter: str) -> Any:
    """Import the ControllerApplication class of one adapter family (and nothing else)."""
    library = ADAPTERS[adapter]
    module = importlib.import_module(library.module)
    if adapter == "virtual":
        return module.VirtualControllerApplication
    return module.ControllerApplication


def reset_detection(adapter: str) -> ResetDetection | None:
    """The adapter family's reset detection, imported only when the configuration uses it."""
    module = ADAPTERS[adapter].reset_detection
    return None if module is None else cast(ResetDetection, importlib.import_module(module))


def serial_path(port: str) -> str:
    """Zigbee2MQTT writes network adapters as tcp://host:port; zigpy's serial layer wants socket://."""
    if port.startswith("tcp://"):
        return "socket://" + port.removeprefix("tcp://")
    return port


def zigpy_config(config: Config, data_dir: Path, network: NetworkSettings) -> dict[str, Any]:
    """The configuration dictionary for the adapter's ControllerApplication."""
    serial = config.serial
    device: dict[str, Any] = {"path": serial_path(serial.port or "virtual")}
    if serial.adapter != "virtual":
        device["baudrate"] = serial.baudrate
        device["flow_control"] = "hardware" if serial.rtscts else None
    result: dict[str, Any] = {
        "device": device,
        "database_path": str(data_dir / DATABASE_FILE),
        "network": {
            "channel": network.channel,
            "channels": [network.channel],
            "pan_id": network.pan_id,
            "extended_pan_id": ":".join(f"{b:02x}" for b in network.ext_pan_id),
            "key": list(network.network_key),
        },
        # Firmware from local files only: zigpy's default providers would download over HTTP.
        "ota": zigpy_ota_config(config.ota, data_dir),
        # Zigbee2MQTT scans the topology only on request; a periodic scan only adds radio traffic.
        "topology_scan_enabled": False,
    }
    if serial.adapter == "zstack":
        # Z-Stack answers a request at once; for one that a hung chip never answers zigpy-znp holds
        # the serial line, and so every other command, 15 s (30 s for a data request, which it also
        # keeps waiting for after its caller gave up). Zigbee2MQTT's Z-Stack driver gives 6 s to a
        # request and 10 s to an asynchronous answer; so does the daemon (measured with a muted
        # emulator: a command sent during the mute no longer blocks the next ones for 30 s).
        result["znp_config"] = {
            "sync_request_timeout": ZSTACK_REQUEST_TIMEOUT_S,
            "async_response_timeout": ZSTACK_ANSWER_TIMEOUT_S,
        }
    if serial.adapter in ("ember", "ezsp"):
        # bellows runs its serial line on an event loop in a thread of its own unless told not to:
        # one loop for the whole daemon keeps a failed frame task of bellows's under the daemon's
        # exception handler (and saves a thread hop on every frame).
        result["use_thread"] = False
    if serial.adapter == "virtual":
        result["virtual"] = {
            "switches": config.virtual.switches,
            "state_file": str(data_dir / VIRTUAL_STATE_FILE),
            "linkquality": config.virtual.linkquality,
        }
    return result
