"""The emulated CC2652's non-volatile memory: Z-Stack 3.30-style NV items, a factory image, a file.

Z-Stack 3.30 keeps "extended" NV items addressed by (system id, item id, sub id); the old OSAL
items are the sub ids of item LEGACY (0) in the Z-Stack system (1), so `SYS.OSALNV*` and
`SYS.NV*` reach the same store. zigpy-znp writes most items only when they already exist with
exactly the stored length, so a factory-new chip must hold a realistic set of items: the factory
image below is generated from zigpy-znp's own types (aligned structs, as on a CC2652), never
copied from a dump.

The state file holds the NVRAM and the simulated switches (the world around the chip) as JSON,
written atomically (temporary file, fsync, rename).
"""

# zigpy's and zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any, Final

import zigpy_znp.types as t
from zigpy_znp import const
from zigpy_znp.types.nvids import ExNvIds, NvSysIds, OsalNvIds

ZSTACK: Final = int(NvSysIds.ZSTACK)
LEGACY: Final = int(ExNvIds.LEGACY)
NvKey = tuple[int, int, int]
"""(system id, item id, sub id)."""

ALIGNED: Final = True
"""CC2652 (32-bit ARM) structs are aligned: `UTIL.AssocFindDevice` answers 36 bytes."""

# Table sizes of the emulated build (compile-time constants in Z-Stack).
ADDRMGR_ENTRIES: Final = 64
TCLK_ENTRIES: Final = 32
APS_KEY_DATA_ENTRIES: Final = 3
NWK_SEC_MATERIAL_ENTRIES: Final = 5

TI_OUI: Final = (0x00, 0x12, 0x4B)
DEFAULT_CHANNEL_MASK: Final = t.Channels.from_channel_list([11])
ZERO_IEEE: Final = t.EUI64.convert("00:00:00:00:00:00:00:00")
UNSET_IEEE: Final = t.EUI64.convert("FF:FF:FF:FF:FF:FF:FF:FF")
FILE_VERSION: Final = 1


def legacy(nv_id: int) -> NvKey:
    """The key of an OSAL (legacy) NV item."""
    return (ZSTACK, LEGACY, int(nv_id))


def pack(value: Any, *, aligned: bool = ALIGNED) -> bytes:
    """A zigpy-znp value as the chip stores it (structs aligned on a CC2652, packed on a CC2531)."""
    if isinstance(value, t.CStruct | t.BaseListType):
        data: bytes = value.serialize(align=aligned)
        return data
    data = value.serialize()
    return data


def unpack(data: bytes, item_type: Any, *, aligned: bool = ALIGNED) -> Any:
    """The inverse of `pack()`; trailing bytes are ignored (fixed-size tables have padding)."""
    if issubclass(item_type, t.CStruct | t.BaseListType):
        value, _rest = item_type.deserialize(data, align=aligned)
    else:
        value, _rest = item_type.deserialize(data)
    return value


def factory_nib() -> t.NIB:
    """The network information base of a chip that has never been on a network."""
    empty_key = t.NwkKeyDesc(KeySeqNum=0, Key=t.KeyData(bytes(16)))
    return t.NIB(
        SequenceNum=0,
        PassiveAckTimeout=5,
        MaxBroadcastRetries=2,
        MaxChildren=40,
        MaxDepth=15,
        MaxRouters=40,
        dummyNeighborTable=0,
        BroadcastDeliveryTime=30,
        ReportConstantCost=0,
        RouteDiscRetries=0,
        dummyRoutingTable=0,
        SecureAllFrames=1,
        SecurityLevel=5,
        SymLink=1,
        CapabilityFlags=0x8F,
        TransactionPersistenceTime=7,
        nwkProtocolVersion=2,
        RouteDiscoveryTime=13,
        RouteExpiryTime=30,
        nwkDevAddress=t.NWK(0xFFFE),
        nwkLogicalChannel=0,
        nwkCoordAddress=t.NWK(0xFFFE),
        nwkCoordExtAddress=ZERO_IEEE,
        nwkPanId=0xFFFF,
        nwkState=t.NwkState.NWK_INIT,
        channelList=DEFAULT_CHANNEL_MASK,
        beaconOrder=15,
        superFrameOrder=15,
        scanDuration=0,
        battLifeExt=0,
        allocatedRouterAddresses=0,
        allocatedEndDeviceAddresses=0,
        nodeDepth=0,
        extendedPANID=ZERO_IEEE,
        nwkKeyLoaded=t.Bool(False),
        spare1=empty_key,
        spare2=empty_key,
        spare3=0,
        spare4=0,
        nwkLinkStatusPeriod=15,
        nwkRouterAgeLimit=3,
        nwkUseMultiCast=t.Bool(False),
        nwkIsConcentrator=t.Bool(True),
        nwkConcentratorDiscoveryTime=120,
        nwkConcentratorRadius=10,
        nwkAllFresh=1,
        nwkManagerAddr=t.NWK(0x0000),
        nwkTotalTransmissions=0,
        nwkUpdateId=0,
    )


EMPTY_TCLK_ENTRY: Final = t.TCLKDevEntry(
    txFrmCntr=0,
    rxFrmCntr=0,
    extAddr=ZERO_IEEE,
    keyAttributes=t.KeyAttributes.DEFAULT_KEY,
    keyType=t.KeyType.NONE,
    SeedShift_IcIndex=0,
)
EMPTY_APS_KEY_DATA: Final = t.APSKeyDataTableEntry(
    Key=t.KeyData(bytes(16)), TxFrameCounter=0, RxFrameCounter=0
)
EMPTY_SEC_MATERIAL: Final = t.NwkSecMaterialDesc(FrameCounter=0, ExtendedPanID=ZERO_IEEE)
EMPTY_NWK_KEY: Final = t.NwkActiveKeyItems(Active=const.EMPTY_KEY, FrameCounter=0)
"""NWKKEY: every Z-Stack has it. zigbee-herdsman reads its length first thing (24 bytes: aligned
structs, 21: packed) and cannot start without it; Z-Stack 3 keeps the counter elsewhere."""


def empty_link_key_table(*, aligned: bool = ALIGNED) -> bytes:
    """APS_LINK_KEY_TABLE: an entry count (0) followed by room for the maximum number of entries."""
    entry = t.APSLinkKeyTableEntry(
        AddressManagerIndex=0, LinkKeyNvId=0, AuthenticationState=t.AuthenticationOption.NotAuthenticated
    )
    entry_size = len(pack(entry, aligned=aligned))
    return pack(t.APSLinkKeyTable([]), aligned=aligned).ljust(2 + APS_KEY_DATA_ENTRIES * entry_size, b"\x00")


# Network-independent settings zigpy-znp reads and rewrites (Z-Stack's compile-time defaults).
FACTORY_SETTINGS: Final[Mapping[OsalNvIds, Any]] = {
    OsalNvIds.STARTUP_OPTION: t.StartupOptions.NONE,
    OsalNvIds.LOGICAL_TYPE: t.DeviceLogicalType.Coordinator,
    OsalNvIds.PANID: t.uint16_t(0xFFFF),
    OsalNvIds.CHANLIST: DEFAULT_CHANNEL_MASK,
    OsalNvIds.APS_USE_EXT_PANID: ZERO_IEEE,
    OsalNvIds.PRECFGKEYS_ENABLE: t.Bool(False),
    OsalNvIds.CONCENTRATOR_ENABLE: t.Bool(False),
    OsalNvIds.CONCENTRATOR_DISCOVERY: t.uint8_t(120),
    OsalNvIds.CONCENTRATOR_RADIUS: t.uint8_t(10),
    OsalNvIds.CONCENTRATOR_RC: t.Bool(False),
    OsalNvIds.SRC_RTG_EXPIRY_TIME: t.uint8_t(10),
    OsalNvIds.NWK_CHILD_AGE_ENABLE: t.Bool(True),
    OsalNvIds.BCAST_DELIVERY_TIME: t.uint8_t(30),
    OsalNvIds.ZDO_DIRECT_CB: t.Bool(False),
    OsalNvIds.SECURITY_LEVEL: t.uint8_t(5),
    OsalNvIds.SECURITY_MODE: t.Bool(True),
    OsalNvIds.USE_DEFAULT_TCLK: t.Bool(True),
    OsalNvIds.APS_ACK_WAIT_DURATION: t.uint16_t(3000),
    OsalNvIds.BINDING_TIME: t.uint16_t(8000),
}

TABLES: Final[Mapping[ExNvIds, tuple[Any, int]]] = {
    ExNvIds.ADDRMGR: (const.EMPTY_ADDR_MGR_ENTRY_ZSTACK3, ADDRMGR_ENTRIES),
    ExNvIds.TCLK_TABLE: (EMPTY_TCLK_ENTRY, TCLK_ENTRIES),
    ExNvIds.APS_KEY_DATA_TABLE: (EMPTY_APS_KEY_DATA, APS_KEY_DATA_ENTRIES),
    ExNvIds.NWK_SEC_MATERIAL_TABLE: (EMPTY_SEC_MATERIAL, NWK_SEC_MATERIAL_ENTRIES),
}
"""The extended tables a factory-new chip holds, with their empty entry and size."""


def random_chip_ieee(rng: random.Random) -> t.EUI64:
    """A Texas Instruments IEEE address (00:12:4b:…), as burnt into a CC2652."""
    octets = [*TI_OUI, *(rng.randrange(256) for _ in range(5))]
    return t.EUI64.convert(":".join(f"{octet:02x}" for octet in octets))


class Nvram:
    """NV items as bytes, addressed by (system id, item id, sub id): Z-Stack 3.30 on a CC2652."""

    aligned: bool = ALIGNED
    """How the chip lays out structs in memory (and so in NVRAM and some MT answers)."""
    settings: Mapping[OsalNvIds, Any] = FACTORY_SETTINGS
    """The network-independent items and their factory values (ClearConfig restores them)."""

    def __init__(self, items: Mapping[NvKey, bytes] | None = None) -> None:
        self._items: dict[NvKey, bytes] = dict(items or {})
        self.changes = 0
        """Counts writes, creates and deletes: the owner saves the file when it moved."""

    # --- factory image -------------------------------------------------------------------------

    @classmethod
    def factory(cls, ieee: t.EUI64, rng: random.Random) -> Nvram:
        """A factory-new CC2652 running Z-Stack 3.30: no network, empty tables."""
        nvram = cls()
        nvram.restore_factory(ieee, rng, config=True, state=True)
        return nvram

    def restore_factory(self, ieee: t.EUI64, rng: random.Random, *, config: bool, state: bool) -> None:
        """Z-Stack's start-up options: ClearConfig restores the settings, ClearState the network.

        Items a host deleted that Z-Stack needs (the chip's IEEE address, say) come back with
        their defaults in any case, as Z-Stack recreates them when it boots.
        """
        if config:
            for nv_id, value in self.settings.items():
                self.store(nv_id, value)
        if state:
            self._clear_network()
        defaults: dict[NvKey, bytes] = {
            legacy(OsalNvIds.EXTADDR): self.pack(ieee),
            **self._network_defaults(rng),
            **{legacy(nv_id): self.pack(value) for nv_id, value in self.settings.items()},
        }
        for key, value in defaults.items():
            if key not in self._items:
                self._put(key, value)

    def _clear_network(self) -> None:
        """ClearState: no network, empty device and key tables."""
        self.store(OsalNvIds.NIB, factory_nib())
        self.store(OsalNvIds.BDBNODEISONANETWORK, t.uint8_t(0))
        self._put(legacy(OsalNvIds.APS_LINK_KEY_TABLE), empty_link_key_table())
        for nv_id in (OsalNvIds.NWK_ACTIVE_KEY_INFO, OsalNvIds.NWK_ALTERN_KEY_INFO):
            self.store(nv_id, const.EMPTY_KEY)
        self.store(OsalNvIds.NWKKEY, EMPTY_NWK_KEY)
        for item_id, (empty, count) in TABLES.items():
            self.delete_table(int(item_id))
            for sub_id in range(count):
                self._put((ZSTACK, int(item_id), sub_id), self.pack(empty))

    def _network_defaults(self, rng: random.Random) -> dict[NvKey, bytes]:
        """The network items Z-Stack recreates at boot when a host deleted them."""
        return {
            legacy(OsalNvIds.TCLK_SEED): self.pack(t.KeyData(bytes(rng.randrange(256) for _ in range(16)))),
            legacy(OsalNvIds.NIB): self.pack(factory_nib()),
            legacy(OsalNvIds.BDBNODEISONANETWORK): self.pack(t.uint8_t(0)),
            legacy(OsalNvIds.APS_LINK_KEY_TABLE): empty_link_key_table(),
            legacy(OsalNvIds.NWKKEY): self.pack(EMPTY_NWK_KEY),
        }

    def pack(self, value: Any) -> bytes:
        """A value as this chip stores it."""
        return pack(value, aligned=self.aligned)

    # --- raw access ------------------------------------------------------------------------------

    def length(self, key: NvKey) -> int:
        """The item's length; 0 when it does not exist (as Z-Stack answers)."""
        return len(self._items.get(key, b""))

    def get(self, key: NvKey) -> bytes | None:
        """The item's bytes, or None."""
        return self._items.get(key)

    def create(self, key: NvKey, length: int, initial: bytes = b"") -> bool:
        """Create an item of `length` bytes; False (and no change) when it already exists."""
        if key in self._items:
            return False
        self._put(key, initial[:length].ljust(length, b"\x00"))
        return True

    def write(self, key: NvKey, offset: int, data: bytes) -> bool:
        """Write into an existing item; False when it does not exist or the data does not fit."""
        current = self._items.get(key)
        if current is None or offset + len(data) > len(current):
            return False
        self._put(key, current[:offset] + data + current[offset + len(data) :])
        return True

    def delete(self, key: NvKey) -> bool:
        """Delete an item; False when there was none."""
        if self._items.pop(key, None) is None:
            return False
        self.changes += 1
        return True

    def delete_table(self, item_id: int) -> None:
        """Delete every sub item of an extended item."""
        for key in [key for key in self._items if key[:2] == (ZSTACK, item_id)]:
            self.delete(key)

    def _put(self, key: NvKey, value: bytes) -> None:
        if self._items.get(key) != value:
            self._items[key] = value
            self.changes += 1

    # --- typed access ----------------------------------------------------------------------------

    def read(self, nv_id: int, item_type: Any) -> Any:
        """A legacy item as a zigpy-znp value; KeyError when it does not exist."""
        data = self._items.get(legacy(nv_id))
        if data is None:
            raise KeyError(f"NV item 0x{int(nv_id):04X} does not exist")
        return unpack(data, item_type, aligned=self.aligned)

    def store(self, nv_id: int, value: Any) -> None:
        """Write a legacy item (created or resized as needed): what the firmware itself writes."""
        self._put(legacy(nv_id), self.pack(value))

    def table(self, item_id: int, item_type: Any) -> Iterator[tuple[int, Any]]:
        """(sub id, value) of each entry of an extended table, in order."""
        subs = sorted(key[2] for key in self._items if key[:2] == (ZSTACK, item_id))
        for sub_id in subs:
            yield sub_id, unpack(self._items[(ZSTACK, item_id, sub_id)], item_type, aligned=self.aligned)

    def store_entry(self, item_id: int, sub_id: int, value: Any) -> None:
        """Write one entry of an extended table."""
        self._put((ZSTACK, item_id, sub_id), self.pack(value))

    # --- JSON ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Items by name: legacy items under "legacy", extended tables (by sub id) under "extended"."""
        legacy_items: dict[str, str] = {}
        extended: dict[str, dict[str, str]] = {}
        for (sys_id, item_id, sub_id), value in sorted(self._items.items()):
            if (sys_id, item_id) == (ZSTACK, LEGACY):
                legacy_items[_name(OsalNvIds, sub_id)] = value.hex()
            else:
                table = _name(ExNvIds, item_id) if sys_id == ZSTACK else f"sys{sys_id}:0x{item_id:04X}"
                extended.setdefault(table, {})[str(sub_id)] = value.hex()
        return {"legacy": legacy_items, "extended": extended}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Nvram:
        """The inverse of `to_json()`; ValueError names what is wrong."""
        items: dict[NvKey, bytes] = {}
        for name, value in dict(data.get("legacy", {})).items():
            items[legacy(_parse_name(OsalNvIds, name))] = bytes.fromhex(value)
        for table, entries in dict(data.get("extended", {})).items():
            if table.startswith("sys"):
                sys_text, item_text = table.removeprefix("sys").split(":")
                sys_id, item_id = int(sys_text), int(item_text, 16)
            else:
                sys_id, item_id = ZSTACK, _parse_name(ExNvIds, table)
            for sub_id, value in dict(entries).items():
                items[(sys_id, item_id, int(sub_id))] = bytes.fromhex(value)
        return cls(items)


def _name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return f"0x{value:04X}"


def _parse_name(enum: Any, name: str) -> int:
    if name.startswith("0x"):
        return int(name, 16)
    try:
        return int(enum[name])
    except KeyError:
        raise ValueError(f"unknown NV item name {name!r}") from None
