"""Zigbee2MQTT's configuration.yaml, as Zigbee2MQTT 2.x reads it.

What Zigbee2MQTT resolves is resolved the same way: `!secret name` (or `!other_file name`) for
`mqtt.user`, `mqtt.password`, `mqtt.server` and `advanced.network_key`, read from `secret.yaml`
(`other_file.yaml`) beside it; `devices:` and `groups:` given as a file name or a list of file
names, merged in order. Nothing else is interpreted here: the importer decides what it keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.migrate.errors import MigrationError
from z2m_qbkg40lm.migrate.yaml_files import read_yaml_mapping

CONFIG_FILE = "configuration.yaml"

# The settings Zigbee2MQTT itself resolves references in (lib/util/settings.ts, read()).
_REFERENCE_KEYS = (("mqtt", "user"), ("mqtt", "password"), ("mqtt", "server"), ("advanced", "network_key"))
# Zigbee2MQTT's pattern, greedy as its own: `!secret my key` is file `secret my`, key `key`.
_REFERENCE = re.compile(r"^!(.*) (.*)$")
_DEFAULT_CHANNEL = 11


@dataclass(frozen=True)
class NetworkSettings:
    """`advanced:` network parameters; None where the file says GENERATE or nothing."""

    channel: int
    pan_id: int | None
    ext_pan_id: bytes | None
    network_key: bytes | None


@dataclass(frozen=True)
class Z2mConfig:
    """A Zigbee2MQTT configuration with its references resolved."""

    path: Path
    settings: dict[str, Any]
    network: NetworkSettings

    def section(self, name: str) -> dict[str, Any]:
        """One top-level mapping (`mqtt`, `serial`, ...), empty when absent."""
        value = self.settings.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def devices(self) -> dict[str, dict[str, Any]]:
        """`devices:` by IEEE address in lower case ("0x…")."""
        return {str(ieee).lower(): options for ieee, options in self.section("devices").items()}


def read_z2m_config(data_dir: Path) -> Z2mConfig:
    """Read `<data_dir>/configuration.yaml`; MigrationError names the file and the problem."""
    path = data_dir / CONFIG_FILE
    settings = read_yaml_mapping(path)
    for section, key in _REFERENCE_KEYS:
        holder = settings.get(section)
        if isinstance(holder, dict) and isinstance(holder.get(key), str):
            holder[key] = _resolve(holder[key], data_dir, f"{section}.{key}", path)
    for name in ("devices", "groups"):
        settings[name] = _included(settings.get(name), data_dir, name, path)
    _check_devices(settings["devices"], path)
    return Z2mConfig(path=path, settings=settings, network=_network(settings.get("advanced"), path))


def _resolve(value: str, data_dir: Path, key: str, config_path: Path) -> Any:
    match = _REFERENCE.match(value)
    if match is None:
        return value
    filename, name = match.groups()
    if not filename.endswith((".yaml", ".yml")):
        filename += ".yaml"
    referenced = data_dir / filename
    if not referenced.exists():
        raise MigrationError(config_path, f"{key} refers to {value!r}, but {referenced} is missing")
    values = read_yaml_mapping(referenced)
    if name not in values:
        raise MigrationError(referenced, f"has no {name!r}, which {key} of {config_path.name} refers to")
    return values[name]


def _included(value: Any, data_dir: Path, name: str, config_path: Path) -> dict[str, Any]:
    """`devices:`/`groups:` inline, or the files it names merged in order (a missing one is empty,
    as for Zigbee2MQTT)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    files = [value] if isinstance(value, str) else value
    if not isinstance(files, list) or not all(isinstance(item, str) for item in files):
        raise MigrationError(config_path, f"{name}: expected a mapping, a file name or a list of file names")
    merged: dict[str, Any] = {}
    for file in files:
        included = data_dir / file
        if included.exists():
            for key, entry in read_yaml_mapping(included).items():
                if isinstance(entry, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **entry}
                else:
                    merged[key] = entry
    return merged


def _check_devices(devices: dict[str, Any], path: Path) -> None:
    for ieee, options in devices.items():
        if not isinstance(options, dict):
            raise MigrationError(path, f"devices.{ieee}: expected a mapping (friendly_name: ...)")
        name = options.get("friendly_name")
        if name is not None and not isinstance(name, str):
            raise MigrationError(path, f"devices.{ieee}.friendly_name: expected text, found {name!r}")


def _network(advanced: Any, path: Path) -> NetworkSettings:
    if advanced is None:
        advanced = {}
    if not isinstance(advanced, dict):
        raise MigrationError(path, "advanced: expected a mapping")
    channel = advanced.get("channel", _DEFAULT_CHANNEL)
    if not _is_int(channel) or not 11 <= channel <= 26:
        raise MigrationError(path, f"advanced.channel: expected 11 to 26, found {channel!r}")
    pan_id = advanced.get("pan_id", "GENERATE")
    if pan_id != "GENERATE" and (not _is_int(pan_id) or not 0 < pan_id < 0xFFFF):
        raise MigrationError(path, f"advanced.pan_id: expected a number or GENERATE, found {pan_id!r}")
    return NetworkSettings(
        channel=channel,
        pan_id=None if pan_id == "GENERATE" else pan_id,
        ext_pan_id=_byte_list(advanced.get("ext_pan_id", "GENERATE"), 8, "advanced.ext_pan_id", path),
        network_key=_byte_list(advanced.get("network_key", "GENERATE"), 16, "advanced.network_key", path),
    )


def _byte_list(value: Any, length: int, key: str, path: Path) -> bytes | None:
    if value == "GENERATE":
        return None
    if (
        not isinstance(value, list)
        or len(value) != length
        or not all(_is_int(item) and 0 <= item <= 255 for item in value)
    ):
        raise MigrationError(path, f"{key}: expected {length} numbers 0-255 or GENERATE")
    return bytes(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
