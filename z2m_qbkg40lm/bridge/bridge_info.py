"""`<base>/bridge/info`: the bridge's version, coordinator, network, permit join and settings.

`config` is the running configuration as Zigbee2MQTT shows it, minus anything secret: keys named
like a password, token, secret or network key are dropped wherever they appear, and credentials in
the broker URL are cut. The network key the daemon generated lives in `secrets.yaml` and never
enters the configuration model, so it cannot appear here either.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from z2m_qbkg40lm.config import Config, DeviceConfig

_SECRET_KEY_PARTS = ("password", "secret", "token", "network_key", "passphrase")


def is_secret_key(key: str) -> bool:
    """True for setting names whose values must never be published."""
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def without_secrets(value: Any) -> Any:
    """A copy of a settings tree without secret keys, at any depth."""
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, list):
        return [without_secrets(item) for item in value]
    return value


def whole_numbers_as_integers(value: Any) -> Any:
    """A copy of a settings tree with `10.0` as `10`: Zigbee2MQTT's settings are JSON numbers, and
    the model's floats (timeouts that may be fractions) would otherwise show a type it never has."""
    if isinstance(value, dict):
        return {k: whole_numbers_as_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers_as_integers(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def server_without_credentials(url: str) -> str:
    """The broker URL with any `user:password@` taken out."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with `changes` merged in; a None value removes the key."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def device_settings(settings: DeviceConfig) -> dict[str, Any]:
    """A device's settings as they would be written in `devices:` (unset ones left out)."""
    return settings.model_dump(mode="json", exclude_unset=True)


def running_config(
    config: Config,
    *,
    log_level: str,
    devices: Mapping[str, DeviceConfig],
    changes: Mapping[str, Any],
) -> dict[str, Any]:
    """The effective settings: the configuration, changes made since start, no secrets."""
    dumped = config.model_dump(mode="json", exclude_none=True)
    dumped = merge(dumped, changes)
    dumped.setdefault("advanced", {})["log_level"] = log_level
    dumped["devices"] = {ieee: device_settings(device) for ieee, device in devices.items()}
    mqtt = dumped.get("mqtt", {})
    if isinstance(mqtt.get("server"), str):
        mqtt["server"] = server_without_credentials(mqtt["server"])
    cleaned: dict[str, Any] = whole_numbers_as_integers(without_secrets(dumped))
    return cleaned


def info_payload(
    *,
    version: str,
    coordinator: dict[str, Any],
    network: dict[str, Any],
    log_level: str,
    permit_join_end_ms: int | None,
    restart_required: bool,
    mqtt_server: str,
    mqtt_version: int,
    config: dict[str, Any],
) -> dict[str, Any]:
    """The `bridge/info` object (Zigbee2MQTT 2.x fields; `permit_join_end` only while open)."""
    payload: dict[str, Any] = {
        "config": config,
        "config_schema": {},
        "coordinator": coordinator,
        "log_level": log_level,
        "mqtt": {"server": server_without_credentials(mqtt_server), "version": mqtt_version},
        "network": network,
        "permit_join": permit_join_end_ms is not None,
        "restart_required": restart_required,
        "version": version,
    }
    if permit_join_end_ms is not None:
        payload["permit_join_end"] = permit_join_end_ms
    return payload
