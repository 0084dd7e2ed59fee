"""`export-z2m`: this daemon's configuration and data directory -> a Zigbee2MQTT data directory.

Zigbee2MQTT 2.x started on it (on the same adapter) finds its network, every device paired and
interviewed under its friendly name, and the last states. Read first, written all at once, never
over existing files unless told (see data_dir_writer).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import zigpy.backups

from z2m_qbkg40lm.atomic_file import write_atomically
from z2m_qbkg40lm.bridge.state import STATE_FILE as DAEMON_STATE_FILE
from z2m_qbkg40lm.config import SECRETS_FILE, LoadedConfig
from z2m_qbkg40lm.migrate import z2m_settings
from z2m_qbkg40lm.migrate.coordinator_backup import (
    BACKUP_FILE,
    CoordinatorBackup,
    backup_document,
    format_backup,
    parse_backup,
    read_backup,
)
from z2m_qbkg40lm.migrate.data_dir_writer import Replaced, move_into_place, refuse_occupied, staging
from z2m_qbkg40lm.migrate.errors import MigrationError, read_json_file
from z2m_qbkg40lm.migrate.yaml_files import read_yaml_mapping
from z2m_qbkg40lm.migrate.z2m_config import CONFIG_FILE
from z2m_qbkg40lm.migrate.z2m_database import DATABASE_FILE, Z2mDevice, format_database
from z2m_qbkg40lm.migrate.z2m_state import STATE_FILE, format_state
from z2m_qbkg40lm.migrate.zigpy_store import read_network
from z2m_qbkg40lm.zigbee.adapters import DATABASE_FILE as ZIGPY_DATABASE_FILE
from z2m_qbkg40lm.zigbee.network_takeover import NETWORK_BACKUP_FILE

WRITTEN_FILES = (CONFIG_FILE, DATABASE_FILE, BACKUP_FILE, STATE_FILE)


@dataclass(frozen=True)
class ExportResult:
    """What an export did."""

    devices: int
    written: tuple[Path, ...]
    replaced: tuple[Replaced, ...]
    warnings: tuple[str, ...]


def run_export(loaded: LoadedConfig, data_dir: Path, out_dir: Path, *, force: bool = False) -> ExportResult:
    """Export into `out_dir`; MigrationError (and nothing written) on any problem.

    Runs zigpy on an event loop of its own: call it where no loop is running (the command line).
    """
    config = loaded.config
    if config.serial.adapter == "virtual":
        raise MigrationError(
            loaded.path, "serial.adapter is virtual: Zigbee2MQTT has no virtual adapter (use an emulator)"
        )
    if out_dir.resolve() == data_dir.resolve():
        raise MigrationError(out_dir, "is the daemon's own data directory: export into another folder")
    database = data_dir / ZIGPY_DATABASE_FILE
    if not database.exists():
        raise MigrationError(database, "missing: start the daemon once, or give its --data-dir")
    try:
        stored = asyncio.run(read_network(database))
    except Exception as exc:
        raise MigrationError(database, f"zigpy could not read it ({exc!r})") from exc
    key = _configured_key(loaded, data_dir)
    backup = _backup(stored.backups, data_dir, key)
    _check_network(loaded, backup, key)
    settings, warnings = z2m_settings.z2m_settings(config, backup)
    devices = _z2m_devices(stored.devices, backup)
    states = _daemon_states(data_dir / DAEMON_STATE_FILE)
    texts = {
        CONFIG_FILE: z2m_settings.render(settings),
        DATABASE_FILE: format_database(devices),
        BACKUP_FILE: format_backup(backup.document),
        STATE_FILE: format_state(states),
    }
    existing = refuse_occupied(out_dir, WRITTEN_FILES, force)
    with staging(out_dir) as staged:
        for name, text in texts.items():
            write_atomically(staged / name, text, mode=0o600)
        written = tuple(out_dir / name for name in texts)
        replaced = move_into_place(staged, out_dir, existing, "export")
    count = sum(1 for device in devices if device.type != "Coordinator")
    return ExportResult(devices=count, written=written, replaced=tuple(replaced), warnings=tuple(warnings))


def _configured_key(loaded: LoadedConfig, data_dir: Path) -> bytes | None:
    """The configured network key, or the generated one in secrets.yaml; None when neither is known."""
    key: Any = loaded.config.advanced.network_key
    if not isinstance(key, list):
        secrets_path = data_dir / SECRETS_FILE
        key = read_yaml_mapping(secrets_path).get("network_key") if secrets_path.exists() else None
    return bytes(key) if isinstance(key, list) else None


def _backup(
    backups: tuple[zigpy.backups.NetworkBackup, ...], data_dir: Path, key: bytes | None
) -> CoordinatorBackup:
    """zigpy's newest network backup of the configured network, else the imported one.

    zigbee.db can hold backups of an earlier network too (zigpy replaces only those of the same
    network): only the configured key's are candidates, and of those the newest."""
    candidates = [
        backup for backup in backups if key is None or bytes(backup.network_info.network_key.key) == key
    ]
    if candidates:
        newest = max(candidates, key=lambda backup: backup.backup_time)
        return parse_backup(backup_document(newest), data_dir / ZIGPY_DATABASE_FILE)
    imported = data_dir / NETWORK_BACKUP_FILE
    if imported.exists():
        return read_backup(imported)
    if backups:
        raise MigrationError(
            data_dir / ZIGPY_DATABASE_FILE,
            "its network backups are all of another network than the configured one (another "
            "network key): the data directory belongs to another configuration",
        )
    raise MigrationError(
        data_dir,
        f"no network backup in {ZIGPY_DATABASE_FILE} nor {NETWORK_BACKUP_FILE}: start the daemon once "
        "(zigpy backs the network up at start), stop it, and export again",
    )


def _check_network(loaded: LoadedConfig, backup: CoordinatorBackup, key: bytes | None) -> None:
    """The configured network key (or the generated one in secrets.yaml) must be the backup's."""
    if key is not None and key != backup.network_key:
        raise MigrationError(
            loaded.path,
            "advanced.network_key does not match the network in the daemon's backup: the data "
            "directory belongs to another configuration",
        )


def _z2m_devices(devices: tuple[Z2mDevice, ...], backup: CoordinatorBackup) -> list[Z2mDevice]:
    """The coordinator first (herdsman's entry 1), then the devices, by IEEE address."""
    coordinator = [
        replace(device, type="Coordinator") for device in devices if device.ieee == backup.coordinator_ieee
    ]
    others = sorted(
        (device for device in devices if device.ieee != backup.coordinator_ieee), key=lambda d: d.ieee
    )
    return coordinator + others


def _daemon_states(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    loaded = read_json_file(path)
    if not isinstance(loaded, dict):
        raise MigrationError(path, "not a JSON object of states")
    return {key: value for key, value in loaded.items() if isinstance(value, dict)}


def summary_lines(result: ExportResult) -> list[str]:
    """What the command prints."""
    lines = [f"warning: {warning}" for warning in result.warnings]
    lines.append(f"Exported {result.devices} device(s)")
    lines.extend(f"Kept {item.original.name} as {item.kept_as.name}" for item in result.replaced)
    lines.append("Wrote " + ", ".join(str(path) for path in result.written))
    return lines
