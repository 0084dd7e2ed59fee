"""Z-Stack Home 1.2 on an emulated CC2531: the same chip and radio side, the older firmware's facts.

What differs from Z-Stack 3.30, as zigpy-znp 1.1 detects and drives it (zigpy_znp/api.py and
zigbee/application.py, the `version == 1.2` paths; the firmware is Koenkk's Z-Stack Home 1.2
coordinator build for the CC2531, 20211115, the minimum the README names):

- `SYS.Ping` lists no APP_CNF capability: no AppConfig subsystem, no Base Device Behaviour. That is
  how zigpy-znp tells version 1.2; the `AppConfig.*` and extended `SYS.NV*` commands are not
  recognized.
- `SYS.Version`: transport 2, product 0, release 2.6.3, the build date as CodeRevision, and no
  bootloader fields after it (the CC26xx SDKs of Z-Stack 3 added those).
- Structs are packed: `UTIL.AssocFindDevice` answers 28 bytes, MT frames carry packed structs.
- NVRAM: OSAL items only (`nvram12.Nvram12`).
- Forming and resuming: `ZDO.StartupFromApp`. The answer says whether a network was restored from
  NVRAM or a new one formed (on the first channel of CHANLIST: no BDB channel masks), then
  `ZDO.StateChangeInd` StartingAsCoordinator and StartedAsCoordinator.
- A reset does not restart the network: the ZNP holds until the host sends `ZDO.StartupFromApp`
  again, as zigpy-znp does after each of its resets.
- `SYS.SetTxPower` answers the power set (the closest the radio has), not a status.
- Permit join on the coordinator is also told as `ZDO.PermitJoinInd` (zigpy-znp: "only sent with
  Z-Stack 1.2 and 3.0").
- No `UTIL.AssocRemove`/`AssocAdd` (Z-Stack 3 builds after 20201017 only).
- Joins: the switch goes into the address manager array, as an associated device when it joined
  through the coordinator; no link keys are kept (the TC uses the global key).
"""

# zigpy's and zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import zigpy_znp.commands as c
import zigpy_znp.types as t
from zigpy_znp import const
from zigpy_znp.types.nvids import OsalNvIds

from z2m_qbkg40lm.sim.znp.chip import COORDINATOR_NWK, nib_has_network
from z2m_qbkg40lm.sim.znp.firmware import ZStackFirmware
from z2m_qbkg40lm.sim.znp.nvram import UNSET_IEEE
from z2m_qbkg40lm.sim.znp.nvram12 import Nvram12

LOGGER = logging.getLogger(__name__)

VERSION: Final = {"TransportRev": 2, "ProductId": 0, "MajorRel": 2, "MinorRel": 6, "MaintRel": 3}
CAPABILITIES: Final = (
    t.MTCapabilities.SYS
    | t.MTCapabilities.MAC
    | t.MTCapabilities.AF
    | t.MTCapabilities.ZDO
    | t.MTCapabilities.SAPI
    | t.MTCapabilities.UTIL
    | t.MTCapabilities.DEBUG
    | t.MTCapabilities.APP
)
MAX_TX_POWER: Final = 4
MIN_TX_POWER: Final = -22
"""The CC2531's output power range in dBm (its PA table)."""

NOT_IN_ZSTACK12: Final = (
    c.SYS.NVLength.Req,
    c.SYS.NVRead.Req,
    c.SYS.NVWrite.Req,
    c.SYS.NVCreate.Req,
    c.SYS.NVDelete.Req,
    c.AppConfig.BDBSetChannel.Req,
    c.AppConfig.BDBStartCommissioning.Req,
    c.UTIL.AssocRemove.Req,
    c.UTIL.AssocAdd.Req,
)
"""Requests the 3.30 chip answers that Z-Stack Home 1.2 does not know."""


class ZStack12Firmware(ZStackFirmware):
    """Z-Stack Home 1.2 on an emulated CC2531, with the simulated switches it can reach."""

    CHIP = "CC2531"
    FIRMWARE = "Z-Stack Home 1.2"
    VERSION = VERSION
    BUILD_ID = 20211115
    CAPABILITIES = CAPABILITIES
    NVRAM = Nvram12
    ASSOC_DEVICE_SIZE = 28
    RESUMES_AFTER_RESET = False

    def _handler_table(self) -> dict[type, Callable[[Any], list[Any]]]:
        table = super()._handler_table()
        for request in NOT_IN_ZSTACK12:
            del table[request]
        table[c.SYS.SetTxPower.Req] = self._set_tx_power
        return table

    @property
    def formed(self) -> bool:
        """True when the NIB holds a network: Home 1.2 has no BDB flag besides."""
        try:
            return nib_has_network(self.nib)
        except KeyError:
            return False

    def _version(self) -> Any:
        return c.SYS.Version.Rsp(**self.VERSION, CodeRevision=self.BUILD_ID)

    def _store_formed(self, ext_pan_id: t.EUI64, key: t.NwkKeyDesc) -> None:
        """Home 1.2 keeps the outgoing frame counter beside the active key."""
        self.nvram.store(OsalNvIds.NWKKEY, t.NwkActiveKeyItems(Active=key, FrameCounter=0))

    def _mgmt_permit_join(self, request: Any) -> list[Any]:
        answers = super()._mgmt_permit_join(request)
        if request.AddrMode == t.AddrMode.Broadcast or request.Dst == COORDINATOR_NWK:
            answers.append(c.ZDO.PermitJoinInd.Callback(Duration=int(request.Duration)))
        return answers

    def _set_tx_power(self, request: Any) -> list[Any]:
        power = max(MIN_TX_POWER, min(MAX_TX_POWER, int(request.TXPower)))
        return [c.SYS.SetTxPower.Rsp(StatusOrPower=power)]

    # --- the address manager: one OSAL array ----------------------------------------------------

    def _remember(self, ieee: t.EUI64, nwk: int, parent: int) -> None:
        self._forget(ieee)
        nvram = self._nvram12
        entries = nvram.address_table()
        user = t.AddrMgrUserType.Assoc if parent == COORDINATOR_NWK else t.AddrMgrUserType.Default
        for index, entry in enumerate(entries):
            if entry.extAddr == UNSET_IEEE:
                entries[index] = t.AddrMgrEntry(type=user, nwkAddr=t.NWK(nwk), extAddr=ieee)
                break
        else:
            LOGGER.warning("Address manager full: %s (0x%04X) is not recorded", ieee, nwk)
        nvram.store_address_table(entries)

    def _forget(self, ieee: t.EUI64) -> None:
        nvram = self._nvram12
        entries = nvram.address_table()
        if any(entry.extAddr == ieee for entry in entries):
            nvram.store_address_table(
                [const.EMPTY_ADDR_MGR_ENTRY_ZSTACK1 if entry.extAddr == ieee else entry for entry in entries]
            )

    @property
    def _nvram12(self) -> Nvram12:
        assert isinstance(self.nvram, Nvram12)
        return self.nvram
