"""The open coordinator backup (zigpy/open-coordinator-backup, version 1), as Zigbee2MQTT and zigpy write it.

zigpy's own `NetworkBackup.from_open_coordinator_json` turns it into a network backup; this module
only checks what that code would trip over, so that a wrong file becomes one clear error naming
it. zigbee-herdsman writes `pan_id` (and `nwk_address`) without leading zeros (`abc` for 0x0abc),
which zigpy reads only for `nwk_address`: the PAN id is padded before zigpy sees it.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zigpy.backups

from z2m_qbkg40lm.migrate.errors import MigrationError, read_text_file

BACKUP_FILE = "coordinator_backup.json"
"""Zigbee2MQTT's name for it."""
NETWORK_BACKUP_FILE = "network_backup.json"
"""This daemon's name for it in its data directory: restored onto a blank adapter at start."""
FORMAT = "zigpy/open-coordinator-backup"
VERSION = 1

_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass(frozen=True)
class CoordinatorBackup:
    """A backup as written (normalised so zigpy reads it), and zigpy's reading of it."""

    document: dict[str, Any]
    network: zigpy.backups.NetworkBackup

    @property
    def network_key(self) -> bytes:
        """The 16 bytes of the network key, in the order configuration files list them."""
        return bytes(self.network.network_info.network_key.key)

    @property
    def pan_id(self) -> int:
        """The PAN id."""
        return int(self.network.network_info.pan_id)

    @property
    def ext_pan_id(self) -> bytes:
        """The extended PAN id, in the order configuration files list it (as the backup shows it)."""
        return bytes.fromhex(self.document["extended_pan_id"])

    @property
    def channel(self) -> int:
        """The channel."""
        return int(self.network.network_info.channel)

    @property
    def coordinator_ieee(self) -> str:
        """The coordinator's IEEE address, "0x…"."""
        return "0x" + str(self.document["coordinator_ieee"]).lower()


def read_backup(path: Path) -> CoordinatorBackup:
    """Read and check a backup file; MigrationError names the file and what is wrong."""
    text = read_text_file(path)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MigrationError(path, f"not JSON ({exc})") from None
    return parse_backup(document, path)


def parse_backup(document: Any, path: Path) -> CoordinatorBackup:
    """Check a parsed backup document and read it with zigpy."""
    if not isinstance(document, dict):
        raise MigrationError(path, "not a JSON object")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise MigrationError(
            path,
            f"unknown backup format {found!r}: expected {FORMAT!r} (Zigbee2MQTT 1.21 and later); "
            "start Zigbee2MQTT once to have it write one",
        )
    version = metadata.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MigrationError(path, f"metadata.version {version!r} is not a number")
    if version > VERSION:
        raise MigrationError(path, f"backup format version {version}: newer than this tool reads ({VERSION})")
    if version < VERSION:
        raise MigrationError(path, f"backup format version {version} is unknown (this tool reads {VERSION})")
    normalised = copy.deepcopy(document)
    _check_fields(normalised, path)
    try:
        network = zigpy.backups.NetworkBackup.from_open_coordinator_json(normalised)
    except (KeyError, TypeError, ValueError) as exc:
        raise MigrationError(path, f"cannot be read as a network backup ({exc!r})") from None
    if not network.is_complete():
        raise MigrationError(path, "incomplete: no coordinator address, PAN id, channel or network key")
    return CoordinatorBackup(document=normalised, network=network)


def _check_fields(document: dict[str, Any], path: Path) -> None:
    """What zigpy would otherwise fail on with a bare KeyError; pads the PAN id as zigpy needs."""
    for key, digits in (("coordinator_ieee", 16), ("extended_pan_id", 16), ("pan_id", 4)):
        value: Any = document.get(key)
        if not isinstance(value, str) or not _HEX.match(value) or len(value) > digits:
            raise MigrationError(path, f"{key} {value!r} is not {digits} hexadecimal digits")
        document[key] = value.zfill(digits)
    channel = document.get("channel")
    if not isinstance(channel, int) or not 11 <= channel <= 26:
        raise MigrationError(path, f"channel {channel!r} is not 11 to 26")
    network_key = document.get("network_key")
    key_text = network_key.get("key") if isinstance(network_key, dict) else None
    if not isinstance(key_text, str) or len(key_text) != 32 or not _HEX.match(key_text):
        raise MigrationError(path, "network_key.key is not 32 hexadecimal digits")
    assert isinstance(network_key, dict)
    for name in ("frame_counter", "sequence_number"):
        if not isinstance(network_key.get(name), int):
            raise MigrationError(path, f"network_key.{name} is not a number")
    for name in ("nwk_update_id", "security_level"):
        if not isinstance(document.get(name), int):
            raise MigrationError(path, f"{name} is not a number")
    if not isinstance(document.get("channel_mask"), list):
        raise MigrationError(path, "channel_mask is not a list of channels")
    devices = document.get("devices")
    if not isinstance(devices, list):
        raise MigrationError(path, "devices is not a list")
    for number, device in enumerate(devices, start=1):
        ieee = device.get("ieee_address") if isinstance(device, dict) else None
        if not isinstance(ieee, str) or not _HEX.match(ieee) or len(ieee) != 16:
            problem = f"devices[{number}].ieee_address {ieee!r} is not 16 hexadecimal digits"
            raise MigrationError(path, problem)


def backup_document(network: zigpy.backups.NetworkBackup) -> dict[str, Any]:
    """zigpy's network backup as an open coordinator backup, as zigpy writes it."""
    return network.as_open_coordinator_json()


def format_backup(document: dict[str, Any]) -> str:
    """The file's text, indented as Zigbee2MQTT writes it."""
    return json.dumps(document, indent=4) + "\n"
