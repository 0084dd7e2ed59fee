"""The emulated CC2531's non-volatile memory: Z-Stack Home 1.2's OSAL NV items.

Z-Stack Home 1.2 has no extended NV items (no `SYS.NV*` commands, no ExNvIds tables): every item
is an OSAL item. Its structs are packed (the CC2531 is an 8051), and it keeps its network state in
items of its own, as zigpy-znp 1.1 reads and writes them for version 1.2:

- NWKKEY: the active network key with the outgoing NWK frame counter (`NwkActiveKeyItems`); Z-Stack
  3 moved the counter to the security material table.
- ADDRMGR: the address manager as one array (`AddressManagerTable`) of a compile-time size, empty
  entries of type Default (Z-Stack 3.30's are 0xFF).
- TCLK_SEED (0x0101): in Home 1.2 the first TC link key table entry, the global one (`TCLinkKey`
  for FF:FF:FF:FF:FF:FF:FF:FF with the default ZigBeeAlliance09 key); Z-Stack 3 reuses the id for
  the hashed link key seed. Home 1.2 keeps no per-device link keys.
- APS_LINK_KEY_TABLE: the security manager's table, empty (Home 1.2 keeps no per-device keys);
  zigbee-herdsman's backup reads it as on Z-Stack 3.
- No BDBNODEISONANETWORK: Home 1.2 has no Base Device Behaviour; a NIB with a channel and the
  network key loaded is a formed network.

The values come from zigpy-znp's types and constants, never from a dump.
"""

# zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import zigpy_znp.types as t
from zigpy_znp import const
from zigpy_znp.types.nvids import OsalNvIds

from z2m_qbkg40lm.sim.znp.nvram import (
    EMPTY_NWK_KEY,
    FACTORY_SETTINGS,
    UNSET_IEEE,
    NvKey,
    Nvram,
    empty_link_key_table,
    factory_nib,
    legacy,
)

ADDRMGR_ENTRIES: Final = 40
"""NWK_MAX_ADDRESSES of the emulated build (a compile-time constant in Z-Stack)."""

GLOBAL_TC_LINK_KEY: Final = t.TCLinkKey(
    ExtAddr=UNSET_IEEE, Key=const.DEFAULT_TC_LINK_KEY, TxFrameCounter=0, RxFrameCounter=0
)


DEFAULT_PRECONFIGURED_KEY: Final = t.KeyData(bytes([1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 13]))
"""Z-Stack's compiled-in PRECFGKEY (DEFAULT_KEY), present from the first boot. zigbee-herdsman reads
it through SAPI's ZB_READ_CONFIGURATION on Home 1.2 and fails to start without it."""


def empty_address_table() -> t.AddressManagerTable:
    """An address manager with no devices in it."""
    return t.AddressManagerTable([const.EMPTY_ADDR_MGR_ENTRY_ZSTACK1] * ADDRMGR_ENTRIES)


class Nvram12(Nvram):
    """Z-Stack Home 1.2's NV items on a CC2531: OSAL items only, structs packed."""

    aligned = False
    settings: Mapping[OsalNvIds, Any] = MappingProxyType(
        {**FACTORY_SETTINGS, OsalNvIds.PRECFGKEY: DEFAULT_PRECONFIGURED_KEY}
    )

    def _clear_network(self) -> None:
        self.store(OsalNvIds.NIB, factory_nib())
        for nv_id in (OsalNvIds.NWK_ACTIVE_KEY_INFO, OsalNvIds.NWK_ALTERN_KEY_INFO):
            self.store(nv_id, const.EMPTY_KEY)
        self.store(OsalNvIds.NWKKEY, EMPTY_NWK_KEY)
        self.store(OsalNvIds.ADDRMGR, empty_address_table())
        self.store(OsalNvIds.TCLK_SEED, GLOBAL_TC_LINK_KEY)
        self.store(OsalNvIds.APS_LINK_KEY_TABLE, t.Bytes(empty_link_key_table(aligned=False)))

    def _network_defaults(self, rng: random.Random) -> dict[NvKey, bytes]:
        return {
            legacy(OsalNvIds.NIB): self.pack(factory_nib()),
            legacy(OsalNvIds.NWK_ACTIVE_KEY_INFO): self.pack(const.EMPTY_KEY),
            legacy(OsalNvIds.NWK_ALTERN_KEY_INFO): self.pack(const.EMPTY_KEY),
            legacy(OsalNvIds.NWKKEY): self.pack(EMPTY_NWK_KEY),
            legacy(OsalNvIds.ADDRMGR): self.pack(empty_address_table()),
            legacy(OsalNvIds.TCLK_SEED): self.pack(GLOBAL_TC_LINK_KEY),
            legacy(OsalNvIds.APS_LINK_KEY_TABLE): empty_link_key_table(aligned=False),
        }

    def address_table(self) -> list[t.AddrMgrEntry]:
        """The address manager's entries (a host may have resized the array)."""
        try:
            return list(self.read(OsalNvIds.ADDRMGR, t.AddressManagerTable))
        except KeyError:
            return list(empty_address_table())

    def store_address_table(self, entries: list[t.AddrMgrEntry]) -> None:
        """Write the address manager's array back."""
        self.store(OsalNvIds.ADDRMGR, t.AddressManagerTable(entries))
