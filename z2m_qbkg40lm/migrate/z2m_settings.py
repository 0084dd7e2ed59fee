"""Zigbee2MQTT's configuration.yaml from this daemon's configuration: the reverse of daemon_config.

Only what the user set is written (Zigbee2MQTT fills in its own defaults, which are the daemon's);
settings only this daemon has are named in a warning. The network is the one of the backup
exported beside it, so both always agree.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from z2m_qbkg40lm.config import Config
from z2m_qbkg40lm.migrate.coordinator_backup import CoordinatorBackup
from z2m_qbkg40lm.migrate.yaml_files import dump_settings

Z2M_SETTINGS_VERSION = 5
"""The settings version Zigbee2MQTT 2.x (2.14) writes; it migrates older ones itself."""

# Keys of this daemon's own, with no Zigbee2MQTT counterpart.
_DAEMON_ONLY = {
    "mqtt": ("session_expiry_interval",),
    "serial": (),
    "advanced": ("network_key", "pan_id", "ext_pan_id", "channel"),  # from the backup instead
    "homeassistant": ("birth_republish_delay",),
    "availability": (),
    "ota": ("image_folder",),
}
_DAEMON_ONLY_SECTIONS = ("virtual", "settings_guard")


def z2m_settings(config: Config, backup: CoordinatorBackup) -> tuple[dict[str, Any], list[str]]:
    """Zigbee2MQTT's settings, and one warning per daemon setting Zigbee2MQTT has no place for."""
    warnings: list[str] = []
    serial = _explicit(config.serial)
    port = serial.get("port")
    if isinstance(port, str) and port.startswith("socket://"):
        serial["port"] = "tcp://" + port.removeprefix("socket://")  # Zigbee2MQTT's spelling
    settings: dict[str, Any] = {
        "version": Z2M_SETTINGS_VERSION,
        "mqtt": _section(config, "mqtt", warnings),
        "serial": serial,
        "advanced": {
            **_section(config, "advanced", warnings),
            "channel": backup.channel,
            "pan_id": backup.pan_id,
            "ext_pan_id": list(backup.ext_pan_id),
            "network_key": list(backup.network_key),
        },
    }
    for name in ("homeassistant", "availability", "ota"):
        section = _section(config, name, warnings)
        if section:
            settings[name] = section
    for name in _DAEMON_ONLY_SECTIONS:
        if getattr(config, name).model_fields_set:
            warnings.append(f"{name}: a setting of this daemon only, left out")
    if config.devices:
        settings["devices"] = {ieee: _explicit(device) for ieee, device in config.devices.items()}
    return settings, warnings


def _section(config: Config, name: str, warnings: list[str]) -> dict[str, Any]:
    values = _explicit(getattr(config, name))
    for key in _DAEMON_ONLY[name]:
        if key in values and name != "advanced":
            warnings.append(f"{name}.{key}: a setting of this daemon only, left out")
        values.pop(key, None)
    return values


def _explicit(model: BaseModel) -> dict[str, Any]:
    """The values set in the file (nested sections included), secrets revealed: the user's own."""
    values: dict[str, Any] = {}
    for key in model.model_fields_set:
        value = getattr(model, key)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, BaseModel):
            value = _explicit(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)  # `timeout: 10`, as the user wrote it (the model keeps minutes as floats)
        if value is not None:
            values[key] = value
    return {key: values[key] for key in type(model).model_fields if key in values}


def render(settings: dict[str, Any]) -> str:
    """configuration.yaml's text."""
    header = "# Exported by z2m-qbkg40lm export-z2m for Zigbee2MQTT 2.x.\n"
    return header + dump_settings(settings)
