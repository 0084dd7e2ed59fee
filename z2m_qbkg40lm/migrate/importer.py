"""`import-z2m`: a Zigbee2MQTT data directory -> this daemon's configuration and data directory.

Everything is read and checked first; only then is anything written, all files at once (see
data_dir_writer). The daemon then starts on the same network with every device known and
interviewed: no join, no interview, friendly names and cached states kept.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.atomic_file import write_atomically
from z2m_qbkg40lm.bridge.state import STATE_FILE as DAEMON_STATE_FILE
from z2m_qbkg40lm.bridge.state import format_states
from z2m_qbkg40lm.devices.registry import find_definition
from z2m_qbkg40lm.migrate import daemon_config
from z2m_qbkg40lm.migrate.coordinator_backup import (
    BACKUP_FILE,
    CoordinatorBackup,
    format_backup,
    read_backup,
)
from z2m_qbkg40lm.migrate.data_dir_writer import Replaced, move_into_place, refuse_occupied, staging
from z2m_qbkg40lm.migrate.errors import MigrationError
from z2m_qbkg40lm.migrate.z2m_config import CONFIG_FILE, read_z2m_config
from z2m_qbkg40lm.migrate.z2m_database import DATABASE_FILE, Z2mDevice, read_z2m_database
from z2m_qbkg40lm.migrate.z2m_state import STATE_FILE, daemon_states, read_z2m_state
from z2m_qbkg40lm.migrate.zigpy_store import write_devices
from z2m_qbkg40lm.zigbee.adapters import DATABASE_FILE as ZIGPY_DATABASE_FILE
from z2m_qbkg40lm.zigbee.network_takeover import NETWORK_BACKUP_FILE

DAEMON_CONFIG_FILE = "configuration.yaml"
WRITTEN_FILES = (DAEMON_CONFIG_FILE, ZIGPY_DATABASE_FILE, DAEMON_STATE_FILE, NETWORK_BACKUP_FILE)


@dataclass(frozen=True)
class ImportedDevice:
    """One device carried over, as the summary lists it."""

    ieee: str
    friendly_name: str
    model_id: str | None
    supported: bool
    interviewed: bool


@dataclass(frozen=True)
class ImportPlan:
    """Everything an import writes, read and checked, not yet written."""

    config_text: str
    devices: tuple[Z2mDevice, ...]
    listed: tuple[ImportedDevice, ...]
    state_text: str
    states: int
    dropped_state_values: int
    backup_text: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    plan: ImportPlan
    written: tuple[Path, ...]
    replaced: tuple[Replaced, ...]


def plan_import(z2m_dir: Path, new_adapter: daemon_config.NewAdapter | None = None) -> ImportPlan:
    """Read and check every Zigbee2MQTT file; MigrationError at the first problem (nothing written)."""
    if not z2m_dir.is_dir():
        raise MigrationError(z2m_dir, "not a folder (give Zigbee2MQTT's data directory)")
    z2m = read_z2m_config(z2m_dir)
    database = read_z2m_database(z2m_dir / DATABASE_FILE)
    if not (z2m_dir / BACKUP_FILE).exists():
        raise MigrationError(
            z2m_dir / BACKUP_FILE,
            "missing: Zigbee2MQTT writes it at every start and stop; start and stop it once, then import",
        )
    backup = read_backup(z2m_dir / BACKUP_FILE)
    state = read_z2m_state(z2m_dir / STATE_FILE)
    _check_coordinator(database.coordinator, backup, z2m_dir)
    settings, warnings = daemon_config.daemon_settings(z2m, backup, new_adapter)
    loaded = daemon_config.validate(settings, z2m.path)
    devices = tuple(device for device in database.end_devices if device.type != "GreenPower")
    warnings.extend(
        f"{DATABASE_FILE}: Green Power device {device.ieee} left out (zigpy keeps those apart): pair it again"
        for device in database.end_devices
        if device.type == "GreenPower"
    )
    known = {device.ieee for device in devices}
    orphans = sorted(set(loaded.config.devices) - known)
    warnings.extend(
        f"devices.{ieee}: in {CONFIG_FILE} but not in {DATABASE_FILE}; kept in the configuration only"
        for ieee in orphans
    )
    if database.groups:
        warnings.append(f"{DATABASE_FILE}: {database.groups} group(s) left out (this daemon has no groups)")
    states, dropped = daemon_states({ieee: value for ieee, value in state.devices.items() if ieee in known})
    listed = tuple(
        ImportedDevice(
            ieee=device.ieee,
            friendly_name=_friendly_name(loaded.config.devices, device.ieee),
            model_id=device.model_id,
            supported=find_definition(device.model_id) is not None,
            interviewed=device.interviewed,
        )
        for device in devices
    )
    return ImportPlan(
        config_text=daemon_config.render(settings, z2m.path),
        devices=devices,
        listed=listed,
        state_text=format_states(states),
        states=len(states),
        dropped_state_values=dropped,
        backup_text=format_backup(backup.document),
        warnings=tuple(warnings),
    )


def _friendly_name(devices: dict[str, Any], ieee: str) -> str:
    configured = devices.get(ieee)
    return str(configured.friendly_name) if configured is not None else ieee


def _check_coordinator(coordinator: Z2mDevice | None, backup: CoordinatorBackup, z2m_dir: Path) -> None:
    """database.db and the backup must describe the same coordinator: two installations mixed up
    would put one network's devices on another's adapter."""
    if coordinator is not None and coordinator.ieee != backup.coordinator_ieee:
        raise MigrationError(
            z2m_dir,
            f"{DATABASE_FILE} belongs to coordinator {coordinator.ieee}, {BACKUP_FILE} to "
            f"{backup.coordinator_ieee}: not the same installation",
        )


def run_import(
    z2m_dir: Path,
    data_dir: Path,
    *,
    force: bool = False,
    new_adapter: daemon_config.NewAdapter | None = None,
) -> ImportResult:
    """Import `z2m_dir` into `data_dir`; MigrationError (and nothing written) on any problem.

    Runs zigpy on an event loop of its own: call it where no loop is running (the command line).
    """
    if data_dir.resolve() == z2m_dir.resolve():
        raise MigrationError(data_dir, "is Zigbee2MQTT's own data directory: import into another folder")
    plan = plan_import(z2m_dir, new_adapter)
    existing = refuse_occupied(data_dir, WRITTEN_FILES, force)
    with staging(data_dir) as staged:
        try:
            asyncio.run(write_devices(staged / ZIGPY_DATABASE_FILE, plan.devices))
        except Exception as exc:
            raise MigrationError(
                data_dir / ZIGPY_DATABASE_FILE, f"zigpy could not write it ({exc!r})"
            ) from exc
        # Every file is private: the configuration holds the broker password and the network key,
        # the backup the network key, the state the household's habits.
        write_atomically(staged / DAEMON_CONFIG_FILE, plan.config_text, mode=0o600)
        write_atomically(staged / DAEMON_STATE_FILE, plan.state_text, mode=0o600)
        write_atomically(staged / NETWORK_BACKUP_FILE, plan.backup_text, mode=0o600)
        written = tuple(data_dir / entry.name for entry in sorted(staged.iterdir()))
        replaced = move_into_place(staged, data_dir, existing, "import")
    return ImportResult(plan=plan, written=written, replaced=tuple(replaced))


def summary_lines(result: ImportResult) -> list[str]:
    """What the command prints: the devices, the unsupported ones, what was written and kept."""
    plan = result.plan
    lines = [f"warning: {warning}" for warning in plan.warnings]
    supported = [device for device in plan.listed if device.supported]
    unsupported = [device for device in plan.listed if not device.supported]
    lines.append(
        f"Imported {len(plan.listed)} device(s): {len(supported)} supported, {len(unsupported)} not supported"
    )
    lines.extend(f"  {device.friendly_name} ({device.ieee}, {device.model_id})" for device in supported)
    if unsupported:
        lines.append(
            "Kept but not supported by this daemon (listed in bridge/devices with supported: false):"
        )
        lines.extend(
            f"  {device.friendly_name} ({device.ieee}, {device.model_id or 'model unknown'})"
            for device in unsupported
        )
    not_interviewed = [device.friendly_name for device in plan.listed if not device.interviewed]
    if not_interviewed:
        lines.append(
            f"Not interviewed by Zigbee2MQTT (interviewed when they next talk): {', '.join(not_interviewed)}"
        )
    lines.append(
        f"State: {plan.states} device state(s) kept"
        + (
            f", {plan.dropped_state_values} value(s) this daemon does not know left out"
            if plan.dropped_state_values
            else ""
        )
    )
    lines.extend(f"Kept {item.original.name} as {item.kept_as.name}" for item in result.replaced)
    lines.append("Wrote " + ", ".join(str(path) for path in result.written))
    return lines
