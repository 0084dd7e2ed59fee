"""This daemon's configuration.yaml from Zigbee2MQTT's: what both know is carried over, the network
is the one in the coordinator backup, the rest is named in a warning.

The result is checked by the daemon's own configuration model before anything is written, so an
import never leaves a configuration the daemon would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.config import (
    RADIO_ADAPTERS,
    WELL_KNOWN_NETWORK_KEY,
    ConfigError,
    LoadedConfig,
    parse_config,
)
from z2m_qbkg40lm.migrate.coordinator_backup import CoordinatorBackup
from z2m_qbkg40lm.migrate.errors import MigrationError
from z2m_qbkg40lm.migrate.yaml_files import dump_settings
from z2m_qbkg40lm.migrate.z2m_config import Z2mConfig

_MQTT_KEYS = (
    "base_topic", "server", "user", "password", "client_id", "keepalive", "version",
    "ca", "cert", "key", "reject_unauthorized",
)  # fmt: skip
_SERIAL_KEYS = ("adapter", "port", "baudrate", "rtscts", "disable_led")
_ADVANCED_KEYS = ("log_level", "last_seen", "cache_state")
_NETWORK_KEYS = ("channel", "pan_id", "ext_pan_id", "network_key")
_HOMEASSISTANT_KEYS = (
    "enabled", "discovery_topic", "status_topic", "experimental_event_entities", "legacy_action_sensor",
)  # fmt: skip
_OTA_KEYS = (
    "zigbee_ota_override_index_location", "update_check_interval", "disable_automatic_update_check",
    "image_block_request_timeout", "image_block_response_delay", "default_maximum_data_size",
)  # fmt: skip
_DEVICE_KEYS = (
    "friendly_name", "retain", "qos", "optimistic", "description", "device_temperature_calibration",
    "device_temperature_precision", "state_action", "availability", "homeassistant",
)  # fmt: skip
_ACTIVE_AVAILABILITY_KEYS = ("timeout", "max_jitter", "backoff", "pause_on_backoff_gt")
# Sections read above, or with nothing to carry over.
_HANDLED_SECTIONS = (
    "version",
    "mqtt",
    "serial",
    "advanced",
    "homeassistant",
    "availability",
    "ota",
    "devices",
)


@dataclass(frozen=True)
class NewAdapter:
    """`--adapter`/`--port`: the daemon is to run on another stick than Zigbee2MQTT did."""

    adapter: str | None = None
    port: str | None = None


def daemon_settings(
    z2m: Z2mConfig, backup: CoordinatorBackup, new_adapter: NewAdapter | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The daemon's settings, and one warning per Zigbee2MQTT setting left behind."""
    _check_network(z2m, backup)
    warnings: list[str] = []
    settings: dict[str, Any] = {
        "mqtt": _pick(z2m.section("mqtt"), _MQTT_KEYS, "mqtt", warnings),
        "serial": _serial(z2m, warnings, new_adapter or NewAdapter()),
        "advanced": {
            "channel": backup.channel,
            "pan_id": backup.pan_id,
            "ext_pan_id": list(backup.ext_pan_id),
            "network_key": list(backup.network_key),
            **_pick(
                z2m.section("advanced"), _ADVANCED_KEYS + _NETWORK_KEYS, "advanced", warnings, _NETWORK_KEYS
            ),
        },
    }
    homeassistant = z2m.settings.get("homeassistant")
    if isinstance(homeassistant, bool):
        settings["homeassistant"] = {"enabled": homeassistant}
    elif isinstance(homeassistant, dict):
        settings["homeassistant"] = _pick(homeassistant, _HOMEASSISTANT_KEYS, "homeassistant", warnings)
    availability = _availability(z2m.settings.get("availability"), warnings)
    if availability is not None:
        settings["availability"] = availability
    ota = _ota(z2m.section("ota"), warnings)
    if ota:
        settings["ota"] = ota
    devices = {ieee: _device(ieee, options, warnings) for ieee, options in z2m.devices.items()}
    if devices:
        settings["devices"] = devices
    for section, value in z2m.settings.items():
        if section not in _HANDLED_SECTIONS and value not in (None, {}, [], False):
            warnings.append(f"{section}: not supported by this daemon, left out")
    return settings, warnings


def validate(settings: dict[str, Any], z2m_path: Path) -> LoadedConfig:
    """The settings as the daemon will load them; MigrationError lists what the daemon would refuse."""
    try:
        return parse_config(settings, z2m_path)
    except ConfigError as exc:
        raise MigrationError(
            z2m_path, "this daemon cannot use these settings: " + "; ".join(exc.problems)
        ) from None


def render(settings: dict[str, Any], source: Path) -> str:
    """configuration.yaml's text, with a line saying where it came from."""
    header = (
        f"# Imported from Zigbee2MQTT ({source}) by z2m-qbkg40lm import-z2m.\n"
        "# The network (advanced:) is the one in coordinator_backup.json:\n"
        "# keep it, or pair every device again.\n"
    )
    return header + dump_settings(settings)


def _check_network(z2m: Z2mConfig, backup: CoordinatorBackup) -> None:
    """The configuration's network must be the backup's: which one the adapter holds is not ours to guess."""
    configured = z2m.network
    where = f"the network in {z2m.path.name} does not match coordinator_backup.json"
    if configured.network_key is not None and configured.network_key != backup.network_key:
        raise MigrationError(z2m.path, f"{where}: advanced.network_key differs")
    if configured.pan_id is not None and configured.pan_id != backup.pan_id:
        raise MigrationError(
            z2m.path,
            f"{where}: advanced.pan_id is {configured.pan_id:#06x}, the backup's {backup.pan_id:#06x}",
        )
    # zigbee-herdsman accepts the extended PAN id in either byte order (it once wrote it reversed).
    if configured.ext_pan_id is not None and backup.ext_pan_id not in (
        configured.ext_pan_id,
        configured.ext_pan_id[::-1],
    ):
        raise MigrationError(
            z2m.path,
            f"{where}: advanced.ext_pan_id is {configured.ext_pan_id.hex()}, "
            f"the backup's {backup.ext_pan_id.hex()}",
        )
    if configured.channel != backup.channel:
        raise MigrationError(
            z2m.path, f"{where}: advanced.channel is {configured.channel}, the backup's {backup.channel}"
        )
    if tuple(backup.network_key) == WELL_KNOWN_NETWORK_KEY:
        raise MigrationError(
            z2m.path,
            "the network uses Zigbee2MQTT's publicly known default network key, which this daemon refuses "
            "(anyone nearby could read and control the network): form a new network and pair the "
            "devices again",
        )


def _pick(
    section: dict[str, Any],
    known: tuple[str, ...],
    name: str,
    warnings: list[str],
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    kept = {
        key: section[key] for key in known if key in section and key not in skip and section[key] is not None
    }
    warnings.extend(
        f"{name}.{key}: not supported by this daemon, left out" for key in section if key not in known
    )
    return kept


def _serial(z2m: Z2mConfig, warnings: list[str], new: NewAdapter) -> dict[str, Any]:
    serial = _pick(z2m.section("serial"), _SERIAL_KEYS, "serial", warnings)
    if new.adapter is not None and new.adapter != serial.get("adapter"):
        # Another family of stick: the old one's line settings do not carry over.
        serial = {"adapter": new.adapter, "port": serial.get("port")}
    if new.port is not None:
        serial["port"] = new.port
    adapter = serial.get("adapter")
    if adapter is None:
        raise MigrationError(
            z2m.path,
            f"serial.adapter is not set (Zigbee2MQTT detects it; this daemon needs it): add one of "
            f"{', '.join(RADIO_ADAPTERS)} and import again",
        )
    if adapter not in RADIO_ADAPTERS:
        raise MigrationError(
            z2m.path,
            f"serial.adapter {adapter!r} is not supported by this daemon ({', '.join(RADIO_ADAPTERS)})",
        )
    if not serial.get("port"):
        raise MigrationError(
            z2m.path,
            "serial.port is not set (Zigbee2MQTT detects it; this daemon needs it): add it and import again",
        )
    return serial


def _availability(value: Any, warnings: list[str]) -> dict[str, Any] | None:
    if isinstance(value, bool):
        return {"enabled": value}
    if not isinstance(value, dict):
        return None
    kept: dict[str, Any] = {"enabled": value.get("enabled", True) is not False}
    active = value.get("active")
    if isinstance(active, dict):
        kept["active"] = _pick(active, _ACTIVE_AVAILABILITY_KEYS, "availability.active", warnings)
    passive = value.get("passive")
    if isinstance(passive, dict):
        kept["passive"] = _pick(passive, ("timeout",), "availability.passive", warnings)
    warnings.extend(
        f"availability.{key}: not supported by this daemon, left out"
        for key in value
        if key not in ("enabled", "active", "passive")
    )
    return kept


def _ota(section: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    kept = _pick(section, _OTA_KEYS, "ota", warnings)
    index = kept.get("zigbee_ota_override_index_location")
    if isinstance(index, str) and index.startswith(("http://", "https://")):
        del kept["zigbee_ota_override_index_location"]
        warnings.append(
            "ota.zigbee_ota_override_index_location: a URL, left out (this daemon never downloads firmware)"
        )
    return kept


def _device(ieee: str, options: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    kept = _pick(options, _DEVICE_KEYS, f"devices.{ieee}", warnings)
    kept.setdefault("friendly_name", ieee)
    availability = kept.get("availability")
    if isinstance(availability, dict):  # Zigbee2MQTT's per-device timeout: enabled, with the global timeout
        kept["availability"] = True
        warnings.append(
            f"devices.{ieee}.availability: its own timeout is not supported, the global one applies"
        )
    return kept
