"""The open coordinator backup (zigpy/open-coordinator-backup, version 1), checked before zigpy reads it.

Zigbee2MQTT writes it as `coordinator_backup.json`, zigpy reads and writes it
(`NetworkBackup.from_open_coordinator_json`); `import-z2m` reads it and the daemon restores it onto a
blank adapter (`network_backup.json`). zigpy's reader trips over a wrong field with a bare
KeyError, AttributeError or ValueError, so every field it reads is checked first and a wrong file
becomes one clear problem naming the field. zigbee-herdsman writes `pan_id` (and `nwk_address`)
without leading zeros (`abc` for 0x0abc), which zigpy reads only for `nwk_address`: the PAN id is
padded before zigpy sees it.
"""

from __future__ import annotations

import copy
import re
from typing import Any, TypeGuard

import zigpy.backups

FORMAT = "zigpy/open-coordinator-backup"
VERSION = 1
"""The format version this daemon reads (Zigbee2MQTT and zigpy write 1)."""

_HEX = re.compile(r"^[0-9a-fA-F]+$")


class BackupFormatError(Exception):
    """A document that is not a usable open coordinator backup; the message says what is wrong."""


def read_network_backup(document: Any) -> tuple[dict[str, Any], zigpy.backups.NetworkBackup]:
    """The document normalised (PAN id padded) and zigpy's reading of it; BackupFormatError when
    it is another format, a newer version, malformed or incomplete."""
    if not isinstance(document, dict):
        raise BackupFormatError("not a JSON object")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise BackupFormatError(
            f"unknown backup format {found!r}: expected {FORMAT!r} (Zigbee2MQTT 1.21 and later); "
            "start Zigbee2MQTT once to have it write one"
        )
    version = metadata.get("version")
    if not _is_int(version):
        raise BackupFormatError(f"metadata.version {version!r} is not a number")
    if version > VERSION:
        raise BackupFormatError(f"backup format version {version}: newer than this tool reads ({VERSION})")
    if version < VERSION:
        raise BackupFormatError(f"backup format version {version} is unknown (this tool reads {VERSION})")
    if not isinstance(metadata.get("internal", {}), dict):
        raise BackupFormatError("metadata.internal is not an object")
    normalised = copy.deepcopy(document)
    _check_fields(normalised)
    try:
        network = zigpy.backups.NetworkBackup.from_open_coordinator_json(normalised)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackupFormatError(f"cannot be read as a network backup ({exc!r})") from None
    if not network.is_complete():
        raise BackupFormatError("incomplete: no coordinator address, PAN id, channel or network key")
    return normalised, network


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hex(value: Any, digits: int, *, exact: bool) -> bool:
    if not isinstance(value, str) or not _HEX.match(value):
        return False
    return len(value) == digits if exact else len(value) <= digits


def _check_fields(document: dict[str, Any]) -> None:
    """Every field zigpy reads, of the type it needs; pads the PAN id as zigpy needs."""
    for key, digits in (("coordinator_ieee", 16), ("extended_pan_id", 16), ("pan_id", 4)):
        value: Any = document.get(key)
        if not _is_hex(value, digits, exact=False):
            raise BackupFormatError(f"{key} {value!r} is not {digits} hexadecimal digits")
        document[key] = value.zfill(digits)
    channel = document.get("channel")
    if not _is_int(channel) or not 11 <= channel <= 26:
        raise BackupFormatError(f"channel {channel!r} is not 11 to 26")
    _check_key(document.get("network_key"), "network_key")
    for name in ("nwk_update_id", "security_level"):
        if not _is_int(document.get(name)):
            raise BackupFormatError(f"{name} is not a number")
    mask = document.get("channel_mask")
    if not isinstance(mask, list) or not all(_is_int(each) for each in mask):
        raise BackupFormatError("channel_mask is not a list of channels")
    devices = document.get("devices")
    if not isinstance(devices, list):
        raise BackupFormatError("devices is not a list")
    for number, device in enumerate(devices, start=1):
        _check_device(device, f"devices[{number}]")


def _check_key(key: Any, where: str) -> None:
    """A key with its counters: `key` 32 hexadecimal digits, `frame_counter` and `sequence_number` numbers."""
    text = key.get("key") if isinstance(key, dict) else None
    if not _is_hex(text, 32, exact=True):
        raise BackupFormatError(f"{where}.key is not 32 hexadecimal digits")
    assert isinstance(key, dict)
    for name in ("frame_counter", "sequence_number"):
        if not _is_int(key.get(name)):
            raise BackupFormatError(f"{where}.{name} is not a number")


def _check_device(device: Any, where: str) -> None:
    ieee = device.get("ieee_address") if isinstance(device, dict) else None
    if not _is_hex(ieee, 16, exact=True):
        raise BackupFormatError(f"{where}.ieee_address {ieee!r} is not 16 hexadecimal digits")
    assert isinstance(device, dict)
    nwk = device.get("nwk_address")
    if nwk is not None and not _is_hex(nwk, 4, exact=False):
        raise BackupFormatError(f"{where}.nwk_address {nwk!r} is not 4 hexadecimal digits")
    link_key = device.get("link_key")
    if link_key is not None:
        text = link_key.get("key") if isinstance(link_key, dict) else None
        if not _is_hex(text, 32, exact=True):
            raise BackupFormatError(f"{where}.link_key.key is not 32 hexadecimal digits")
        assert isinstance(link_key, dict)
        for name in ("tx_counter", "rx_counter"):
            if not _is_int(link_key.get(name)):
                raise BackupFormatError(f"{where}.link_key.{name} is not a number")
