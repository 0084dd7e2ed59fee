"""Taking over a network: what the daemon does with the adapter before zigpy starts it.

zigpy's own start-up (`ControllerApplication.initialize(auto_form=True)`, zigpy 2.4) does this:

- a blank adapter: restores the newest network backup in zigbee.db if there is one, else forms a
  new network from the configured channel, PAN ids and key;
- an adapter holding a network: runs that network, whatever the configuration says (its check,
  `validate_network_settings`, is off by default). A user whose configured key differs from the
  adapter's never learns of it.

The daemon keeps that and adds, as Zigbee2MQTT's Z-Stack driver does (zigbee-herdsman's
`determineStrategy`: restore `coordinator_backup.json` onto an uncommissioned adapter when it
matches the configuration):

- a blank adapter and a `network_backup.json` in the data directory (an open coordinator backup,
  as `import-z2m` writes it from Zigbee2MQTT's `coordinator_backup.json`) holding the configured
  network: the backup is restored with zigpy's backup restore (network key frame counter advanced
  by 10 000, trust-centre link keys, device table, coordinator IEEE address), onto any adapter
  family; the file is then renamed `network_backup.json.restored-<UTC time>` so it is restored
  once. A backup of another network than the configured one is refused, the adapter untouched.
  A backup the adapter does not need (it holds that network already: an import onto the same
  stick) is renamed `network_backup.json.not-needed-<UTC time>`: restored at some later start
  onto a blank adapter, its frame counter would be long outdated (zigpy's own newer backups in
  zigbee.db serve then).
- an adapter holding another network than the configured one (PAN id, extended PAN id or network
  key differ): the start fails with an error naming what differs (never the key), the adapter
  untouched. Zigbee2MQTT would form a new network over it (every device paired again) unless its
  own backup names the adapter's network; the daemon never erases a network on its own. One
  exception keeps existing installations starting as before: when zigpy's database records the
  adapter's network as the one the daemon ran (its newest backup), the daemon runs it and warns.
- the configured network on the adapter: a plain start (devices from zigbee.db, no join, no
  interview). A different channel alone is only a warning: the network moved (a channel change),
  it is still the same network.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zigpy.application
import zigpy.backups
import zigpy.exceptions
import zigpy.types as zt

from z2m_qbkg40lm.config import NetworkSettings
from z2m_qbkg40lm.zigbee.open_backup import BackupFormatError, read_network_backup

_LOGGER = logging.getLogger(__name__)

NETWORK_BACKUP_FILE = "network_backup.json"
"""The open coordinator backup `import-z2m` leaves in the data directory (the contract)."""
FRAME_COUNTER_STEP = 10_000
"""How far a restore advances the network key's frame counter (zigpy's default): the devices
drop frames whose counter is not above the last they saw from the coordinator."""


class NetworkTakeoverError(Exception):
    """The adapter cannot be started on the configured network; nothing was written to it."""


@dataclass(frozen=True)
class Network:
    """What identifies a Zigbee network to the devices on it (the channel aside)."""

    pan_id: int
    extended_pan_id: zt.EUI64
    network_key: bytes
    channel: int

    @classmethod
    def configured(cls, settings: NetworkSettings) -> Network:
        """The configured network, as the daemon hands it to zigpy (`adapters.zigpy_config`)."""
        extended = zt.EUI64.convert(":".join(f"{b:02x}" for b in settings.ext_pan_id))
        return cls(settings.pan_id, extended, bytes(settings.network_key), settings.channel)

    @classmethod
    def of(cls, info: Any) -> Network:
        """The network of zigpy's NetworkInfo (an adapter's or a backup's)."""
        return cls(
            int(info.pan_id),
            zt.EUI64(info.extended_pan_id),
            bytes(info.network_key.key),
            int(info.channel),
        )

    def same_as(self, other: Network) -> bool:
        """True when a device on one network is on the other (the channel aside)."""
        return not self.differences(other, "")

    def differences(self, configured: Network, name: str) -> list[str]:
        """What differs from the configured network, readable (`name`: whose this network is),
        the keys' values left out; the channel aside."""
        found = []
        if self.pan_id != configured.pan_id:
            found.append(f"PAN id: {name} 0x{self.pan_id:04x}, configured 0x{configured.pan_id:04x}")
        if self.extended_pan_id != configured.extended_pan_id:
            found.append(
                f"extended PAN id: {name} {self.extended_pan_id}, configured {configured.extended_pan_id}"
            )
        if self.network_key != configured.network_key:
            found.append("network key (the keys are not shown)")
        return found


class Action(enum.Enum):
    """What start-up does with the adapter."""

    START = "start"
    """Start what the adapter holds (or let zigpy form or restore as it always did)."""
    RESTORE = "restore"
    """Restore the backup file onto the blank adapter first."""
    REFUSE = "refuse"
    """Stop: the adapter or the backup holds another network than the configured one."""


@dataclass(frozen=True)
class Plan:
    """The decision and why (`reason`: the error, or a warning to log; empty when nothing to say)."""

    action: Action
    reason: str = ""
    set_aside_backup: bool = False
    """The backup file is not needed (the adapter holds its network already): rename it, so that it
    is never restored later with a frame counter long outdated."""


def plan(
    configured: Network,
    adapter: Network | None,
    backup_file: Network | None,
    recorded: Network | None,
) -> Plan:
    """Decide what to do with the adapter; pure.

    `adapter`: the network the adapter holds, None when blank; `backup_file`: the network in
    network_backup.json, None without one; `recorded`: the network of zigpy's newest backup in
    zigbee.db (the one the daemon last ran), None without one.
    """
    if adapter is None:
        if backup_file is None:
            return Plan(Action.START)
        differs = backup_file.differences(configured, "backup")
        if differs:
            return Plan(
                Action.REFUSE,
                f"{NETWORK_BACKUP_FILE} holds another network than the configured one ("
                + "; ".join(differs)
                + f"): nothing restored; make advanced: pan_id, ext_pan_id and network_key those of "
                f"the backup, or remove {NETWORK_BACKUP_FILE} to form the configured network",
            )
        return Plan(Action.RESTORE, _channel_note(configured, backup_file, "the backup"))
    differs = adapter.differences(configured, "adapter")
    if not differs:
        return Plan(
            Action.START,
            _channel_note(configured, adapter, "the adapter's network"),
            set_aside_backup=backup_file is not None and backup_file.same_as(configured),
        )
    described = "; ".join(differs)
    if recorded is not None and adapter.same_as(recorded):
        return Plan(
            Action.START,
            f"the adapter's network is not the configured one ({described}); starting it as before, "
            "since zigbee.db records it as the network this daemon ran. Put its PAN ids and key in "
            "advanced: to make the configuration say so",
        )
    if backup_file is not None and backup_file.same_as(configured):
        advice = (
            f"{NETWORK_BACKUP_FILE} holds the configured network, but the daemon restores it only onto "
            "a blank adapter: erase the adapter (its network is lost) or use another one"
        )
    else:
        advice = (
            "make advanced: pan_id, ext_pan_id and network_key those of the adapter's network, "
            "or use another adapter"
        )
    return Plan(
        Action.REFUSE,
        f"the adapter holds another Zigbee network than the configured one ({described}); nothing "
        f"was written to it. To take over the adapter's network, {advice}",
    )


def _channel_note(configured: Network, found: Network, what: str) -> str:
    if configured.channel == found.channel:
        return ""
    return (
        f"{what} is on channel {found.channel}, the configuration says {configured.channel}: the "
        f"network stays on channel {found.channel}"
    )


# --- the backup file ---------------------------------------------------------------------------


def read_backup_file(path: Path) -> zigpy.backups.NetworkBackup | None:
    """The open coordinator backup at `path`; None when there is none; NetworkTakeoverError when it
    cannot be used (not JSON, another format, a newer version, incomplete)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise NetworkTakeoverError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise NetworkTakeoverError(f"{path} is not JSON: {exc}") from None
    try:
        _normalised, backup = read_network_backup(data)
    except BackupFormatError as exc:
        raise NetworkTakeoverError(f"{path}: {exc}") from None
    return backup


def set_aside_name(path: Path, why: str, when: datetime) -> Path:
    """Where a backup file that served (`why`: restored) or was not needed is kept, so that it is
    not restored (again) at a later start."""
    return path.with_name(f"{path.name}.{why}-{when.strftime('%Y%m%dT%H%M%SZ')}")


def _set_aside(path: Path, why: str) -> Path:
    kept = set_aside_name(path, why, datetime.now(UTC))
    path.rename(kept)
    return kept


# --- start-up ----------------------------------------------------------------------------------


async def start_application(app: Any, settings: NetworkSettings, data_dir: Path) -> None:
    """zigpy's `startup(auto_form=True)` with `take_over` between connecting and initialising; a
    failure shuts the radio down and a lost link is a TransientConnectionError, as zigpy's."""
    try:
        await app.connect()
        await take_over(app, settings, data_dir)
        await app.initialize(auto_form=True)
    except Exception as exc:
        await app.shutdown(db=False)
        if isinstance(exc, ConnectionError) or (
            isinstance(exc, OSError) and exc.errno in zigpy.application.TRANSIENT_CONNECTION_ERRORS
        ):
            raise zigpy.exceptions.TransientConnectionError from exc
        raise


async def take_over(app: Any, settings: NetworkSettings, data_dir: Path) -> None:
    """Between zigpy's `connect()` and `initialize()`: check the adapter's network against the
    configured one and restore `network_backup.json` onto a blank adapter; NetworkTakeoverError
    (the adapter untouched) when they do not belong together."""
    configured = Network.configured(settings)
    try:
        await app.load_network_info(load_devices=False)
    except zigpy.exceptions.NetworkNotFormed:
        adapter = None
    else:
        adapter = Network.of(app.state.network_info)
    backup_path = data_dir / NETWORK_BACKUP_FILE
    backup = read_backup_file(backup_path)
    recorded = app.backups.most_recent_backup()
    decision = plan(
        configured,
        adapter,
        None if backup is None else Network.of(backup.network_info),
        None if recorded is None else Network.of(recorded.network_info),
    )
    if decision.action is Action.REFUSE:
        raise NetworkTakeoverError(decision.reason)
    if decision.reason:
        _LOGGER.warning("%s", decision.reason)
    if decision.action is Action.RESTORE:
        assert backup is not None
        await _restore(app, backup, backup_path)
    elif decision.set_aside_backup:
        kept = _set_aside(backup_path, "not-needed")
        _LOGGER.warning(
            "The adapter holds the configured network already: %s was not restored, kept as %s",
            backup_path,
            kept,
        )


async def _restore(app: Any, backup: zigpy.backups.NetworkBackup, path: Path) -> None:
    info = backup.network_info
    counter = int(info.network_key.tx_counter)
    _LOGGER.warning(
        "The adapter is blank: restoring the network from %s (made by %s): channel %d, PAN id 0x%04x, "
        "coordinator %s, %d device(s), %d link key(s); network key frame counter %d -> %d",
        path,
        info.source or "unknown",
        info.channel,
        int(info.pan_id),
        backup.node_info.ieee,
        len(set(info.nwk_addresses) | set(info.children)),
        len(info.key_table),
        counter,
        counter + FRAME_COUNTER_STEP,
    )
    await app.backups.restore_backup(backup, counter_increment=FRAME_COUNTER_STEP)
    kept = _set_aside(path, "restored")
    _LOGGER.warning("Network restored onto the adapter; the backup is kept as %s", kept)
