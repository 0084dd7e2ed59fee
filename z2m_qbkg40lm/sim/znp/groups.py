"""The coordinator's own APS group table: the MT_ZDO group commands zigbee-herdsman sends.

Herdsman puts the coordinator's Green Power endpoint (242) in group 0x0B84 at every start: it
asks `ZDO_EXT_FIND_GROUP` and, on FAILURE, `ZDO_EXT_ADD_GROUP`. Z-Stack keeps the table in the
GROUP_TABLE NV item, so a group added once is found after a reboot; so does the emulator, in the
same item (a count, then per entry the endpoint, a pad byte, the group id and the 16-byte name
whose first byte is its length, the layout of Z-Stack's `apsGroupNVItem_t` on a 32-bit chip).

Z-Stack answers `ZDO_EXT_FIND_GROUP` with a fixed 19 bytes, found or not: status, group id,
name. Herdsman parses those 19 bytes even for a FAILURE and fails its start on a shorter answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import zigpy_znp.types as t
from zigpy_znp.types.nvids import OsalNvIds

from z2m_qbkg40lm.sim.znp.nvram import Nvram, legacy
from z2m_qbkg40lm.sim.znp.raw_frames import RawCommand, srsp, status_srsp

LOGGER = logging.getLogger(__name__)

ZDO: Final = t.Subsystem.ZDO
EXT_REMOVE_GROUP: Final = 0x47
EXT_REMOVE_ALL_GROUP: Final = 0x48
EXT_FIND_ALL_GROUPS_ENDPOINT: Final = 0x49
EXT_FIND_GROUP: Final = 0x4A
EXT_ADD_GROUP: Final = 0x4B
EXT_COUNT_ALL_GROUPS: Final = 0x4C

NAME_SIZE: Final = 16
ENTRY_SIZE: Final = 1 + 1 + 2 + NAME_SIZE
MAX_GROUPS: Final = 16
"""APS_MAX_GROUPS of the emulated build."""
SUCCESS: Final = 0x00
FAILURE: Final = 0x01
DUPLICATE: Final = int(t.Status.APS_DUPLICATE_ENTRY)
TABLE_FULL: Final = int(t.Status.APS_TABLE_FULL)


@dataclass(frozen=True)
class GroupEntry:
    """One group an endpoint of the coordinator is in."""

    endpoint: int
    group: int
    name: bytes = b""

    def encode(self) -> bytes:
        """The entry as stored: endpoint, pad, group id, name with its length first."""
        name = bytes([len(self.name)]) + self.name
        return bytes([self.endpoint, 0]) + self.group.to_bytes(2, "little") + name.ljust(NAME_SIZE, b"\x00")


class GroupTable:
    """The groups in the GROUP_TABLE NV item."""

    def __init__(self, nvram: Callable[[], Nvram]) -> None:
        self._nvram = nvram

    def entries(self) -> list[GroupEntry]:
        """The stored groups (none when the item does not exist)."""
        data = self._nvram().get(legacy(OsalNvIds.GROUP_TABLE)) or b""
        count = int.from_bytes(data[:2], "little") if len(data) >= 2 else 0
        entries = []
        for index in range(count):
            raw = data[2 + index * ENTRY_SIZE : 2 + (index + 1) * ENTRY_SIZE]
            if len(raw) < ENTRY_SIZE:
                break
            name_length = min(raw[4], NAME_SIZE - 1)
            entries.append(GroupEntry(raw[0], int.from_bytes(raw[2:4], "little"), raw[5 : 5 + name_length]))
        return entries

    def _store(self, entries: list[GroupEntry]) -> None:
        data = len(entries).to_bytes(2, "little") + b"".join(entry.encode() for entry in entries)
        self._nvram().store(OsalNvIds.GROUP_TABLE, t.Bytes(data))

    def find(self, endpoint: int, group: int) -> GroupEntry | None:
        """The entry for this endpoint and group."""
        return next((e for e in self.entries() if (e.endpoint, e.group) == (endpoint, group)), None)

    def add(self, entry: GroupEntry) -> int:
        """Add a group to an endpoint; a Z-Stack status."""
        entries = self.entries()
        if any((e.endpoint, e.group) == (entry.endpoint, entry.group) for e in entries):
            return DUPLICATE
        if len(entries) >= MAX_GROUPS:
            return TABLE_FULL
        self._store([*entries, entry])
        LOGGER.info("Coordinator endpoint %d added to group 0x%04X", entry.endpoint, entry.group)
        return SUCCESS

    def remove(self, endpoint: int, group: int | None = None) -> list[int]:
        """Take an endpoint out of a group (None: of all); the groups removed."""
        entries = self.entries()
        removed = [e.group for e in entries if e.endpoint == endpoint and group in (None, e.group)]
        if removed:
            self._store([e for e in entries if not (e.endpoint == endpoint and group in (None, e.group))])
        return removed


def handlers(table: GroupTable) -> dict[int, Callable[[bytes], list[RawCommand]]]:
    """MT_ZDO command id -> handler of the raw request bytes."""

    def find(data: bytes) -> list[RawCommand]:
        endpoint, group = data[0], int.from_bytes(data[1:3], "little")
        entry = table.find(endpoint, group)
        if entry is None:
            return [srsp(ZDO, EXT_FIND_GROUP, bytes([FAILURE]) + bytes(2 + NAME_SIZE))]
        return [srsp(ZDO, EXT_FIND_GROUP, bytes([SUCCESS]) + entry.encode()[2:])]

    def add(data: bytes) -> list[RawCommand]:
        endpoint, group, name_length = data[0], int.from_bytes(data[1:3], "little"), data[3]
        name = data[4 : 4 + min(name_length, NAME_SIZE - 1)]
        return [status_srsp(ZDO, EXT_ADD_GROUP, table.add(GroupEntry(endpoint, group, name)))]

    def remove(data: bytes) -> list[RawCommand]:
        removed = table.remove(data[0], int.from_bytes(data[1:3], "little"))
        return [status_srsp(ZDO, EXT_REMOVE_GROUP, SUCCESS if removed else FAILURE)]

    def remove_all(data: bytes) -> list[RawCommand]:
        table.remove(data[0])
        return [status_srsp(ZDO, EXT_REMOVE_ALL_GROUP)]

    def find_all(data: bytes) -> list[RawCommand]:
        groups = [e.group for e in table.entries() if e.endpoint == data[0]]
        listed = b"".join(group.to_bytes(2, "little") for group in groups)
        return [srsp(ZDO, EXT_FIND_ALL_GROUPS_ENDPOINT, bytes([len(groups)]) + listed)]

    def count(_data: bytes) -> list[RawCommand]:
        return [srsp(ZDO, EXT_COUNT_ALL_GROUPS, bytes([len(table.entries())]))]

    return {
        EXT_FIND_GROUP: find,
        EXT_ADD_GROUP: add,
        EXT_REMOVE_GROUP: remove,
        EXT_REMOVE_ALL_GROUP: remove_all,
        EXT_FIND_ALL_GROUPS_ENDPOINT: find_all,
        EXT_COUNT_ALL_GROUPS: count,
    }
