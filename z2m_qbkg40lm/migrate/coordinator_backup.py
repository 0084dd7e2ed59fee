"""Zigbee2MQTT's `coordinator_backup.json`: the open coordinator backup (zigpy/open-coordinator-backup,
version 1), checked and read by zigbee/open_backup.py, the reader the daemon's restore uses too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zigpy.backups

from z2m_qbkg40lm.migrate.errors import MigrationError, read_json_file
from z2m_qbkg40lm.zigbee.open_backup import BackupFormatError, read_network_backup

BACKUP_FILE = "coordinator_backup.json"
"""Zigbee2MQTT's name for it."""


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
    return parse_backup(read_json_file(path), path)


def parse_backup(document: Any, path: Path) -> CoordinatorBackup:
    """Check a parsed backup document and read it with zigpy (zigbee/open_backup.py)."""
    try:
        normalised, network = read_network_backup(document)
    except BackupFormatError as exc:
        raise MigrationError(path, str(exc)) from None
    return CoordinatorBackup(document=normalised, network=network)


def backup_document(network: zigpy.backups.NetworkBackup) -> dict[str, Any]:
    """zigpy's network backup as an open coordinator backup, as zigpy writes it."""
    return network.as_open_coordinator_json()


def format_backup(document: dict[str, Any]) -> str:
    """The file's text, indented as Zigbee2MQTT writes it."""
    return json.dumps(document, indent=4) + "\n"
