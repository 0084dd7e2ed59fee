"""The emulated Z-Stack's radio side: the simulated switches and the AF/ZDO data path.

`ZStackFirmware` is the whole emulated chip: `ZStackChip` (SYS, UTIL, NV, resets, forming,
permit join, registrations) plus what goes over the air. The switches around it (`Node`) run the
same `SimulatedSwitch` firmware model as the virtual adapter and exchange APS frames with it:

- `AF.DataRequestExt` (and `AF.DataRequestSrcRtg`) to a switch: SRSP, then `AF.DataConfirm`
  matched by TSN (not for ZDO, as in Z-Stack), then the switch's answers as `AF.IncomingMsg` with
  the link quality, or as `ZDO.MsgCbIncoming` for ZDO.
- A switch that does not answer gets MAC_NO_ACK after `NO_ACK_DELAY`; an address no switch on the
  network has, NWK_NO_ROUTE. A confirm a fault makes fail is not delivered to the switch.
- Joins: `ZDO.TCDevInd` then the switch's `Device_annce`; leaves: `ZDO.LeaveInd`. Z-Stack's
  address manager and link key tables in NVRAM follow, so zigpy-znp's backups list the switches.
"""

# zigpy's and zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, Final

import zigpy.zdo.types as zdo_t
import zigpy_znp.commands as c
import zigpy_znp.types as t
from zigpy_znp.types.nvids import ExNvIds

from z2m_qbkg40lm.sim.frames import ZDO_ENDPOINT, ZDO_PROFILE, ApsFrame
from z2m_qbkg40lm.sim.switch import random_nwk
from z2m_qbkg40lm.sim.znp import nvram as nv
from z2m_qbkg40lm.sim.znp.chip import COORDINATOR_NWK, DEFAULT_LINKQUALITY, Faults, Link, Node, ZStackChip
from z2m_qbkg40lm.sim.znp.coordinator_zdo import answer

__all__ = ["DEFAULT_LINKQUALITY", "Faults", "Link", "Node", "ZStackFirmware"]

LOGGER = logging.getLogger(__name__)

NO_ACK_DELAY: Final = 0.05
"""Seconds Z-Stack spends on MAC retries before confirming MAC_NO_ACK."""
JOIN_SPACING: Final = 0.1
"""Seconds between switches in pairing mode joining one after another."""
RADIUS_LEFT: Final = 29
"""The radius left on a frame from a switch one hop away."""


class ZStackFirmware(ZStackChip):
    """Z-Stack 3.30 on an emulated CC2652, with the simulated switches it can reach."""

    def _handler_table(self) -> dict[type, Callable[[Any], list[Any]]]:
        return {
            **super()._handler_table(),
            c.UTIL.AssocGetWithAddress.Req: self._assoc_get_with_address,
            c.UTIL.GetDeviceInfo.Req: self._device_info,
            c.AF.DataRequestExt.Req: self._af_data_request,
            c.AF.DataRequestSrcRtg.Req: self._af_data_request,
            c.ZDO.ExtRouteChk.Req: self._route_check,
        }

    # --- joining -------------------------------------------------------------------------------

    def _permit_opened(self) -> None:
        """Switches in pairing mode join one after another once joining opens."""
        self._join_pairing_switches()

    def _join_pairing_switches(self) -> None:
        pairing = [node for node in self.nodes.values() if node.pairing and not self.online(node)]
        for index, node in enumerate(pairing):
            self._later(JOIN_SPACING * (index + 1), functools.partial(self._try_join, node))

    def _try_join(self, node: Node) -> None:
        if node.pairing and not self.online(node) and self.permit_join_open:
            self.join(node)

    # --- the switches --------------------------------------------------------------------------

    def join(self, node: Node) -> None:
        """The switch joins through a node that permits joining: TC device indication, announce."""
        parent = self._permit_parent()
        if parent is None:
            raise RuntimeError("permit join is closed")
        switch = node.switch
        taken = {n.switch.nwk for n in self.nodes.values() if n is not node and n.network is not None}
        if switch.nwk in taken:
            switch.nwk = random_nwk(self._rng, taken)
        node.network = self.nib.extendedPANID
        node.pairing = False
        switch.left = False
        self._remember(switch.ieee, switch.nwk)
        LOGGER.info("Switch %s joins as 0x%04X through 0x%04X", node.ieee_text, switch.nwk, parent)
        self._send(
            c.ZDO.TCDevInd.Callback(SrcNwk=t.NWK(switch.nwk), SrcIEEE=switch.ieee, ParentNwk=t.NWK(parent))
        )
        self._later(0, lambda: self.emit(node, switch.announce()))
        self.save()

    def leave(self, node: Node) -> None:
        """The switch leaves the network (reset by its user, or told to by the host)."""
        switch = node.switch
        was_online = self.online(node)
        node.network = None
        node.pairing = False
        switch.forget_network()
        self._forget(switch.ieee)
        LOGGER.info("Switch %s left the network", node.ieee_text)
        if was_online:
            self._send(
                c.ZDO.LeaveInd.Callback(
                    NWK=t.NWK(switch.nwk),
                    IEEE=switch.ieee,
                    Request=t.Bool(False),
                    Remove=t.Bool(False),
                    Rejoin=t.Bool(False),
                )
            )
        self.save()

    def _remember(self, ieee: t.EUI64, nwk: int) -> None:
        """Address manager and trust-centre link key entries, as Z-Stack writes them on a join."""
        self._forget(ieee)
        addr_table = int(ExNvIds.ADDRMGR)
        for sub_id, entry in self.nvram.table(addr_table, t.AddrMgrEntry):
            if entry.extAddr == nv.UNSET_IEEE:
                self.nvram.store_entry(
                    addr_table,
                    sub_id,
                    t.AddrMgrEntry(type=t.AddrMgrUserType.Security, nwkAddr=t.NWK(nwk), extAddr=ieee),
                )
                break
        tclk_table = int(ExNvIds.TCLK_TABLE)
        for sub_id, key_entry in self.nvram.table(tclk_table, t.TCLKDevEntry):
            if key_entry.extAddr == nv.ZERO_IEEE:
                self.nvram.store_entry(
                    tclk_table,
                    sub_id,
                    key_entry.replace(
                        extAddr=ieee,
                        keyAttributes=t.KeyAttributes.VERIFIED_KEY,
                        SeedShift_IcIndex=self._rng.randrange(16),
                    ),
                )
                break

    def _forget(self, ieee: t.EUI64) -> None:
        for sub_id, entry in self.nvram.table(int(ExNvIds.ADDRMGR), t.AddrMgrEntry):
            if entry.extAddr == ieee:
                self.nvram.store_entry(int(ExNvIds.ADDRMGR), sub_id, nv.TABLES[ExNvIds.ADDRMGR][0])
        for sub_id, key_entry in self.nvram.table(int(ExNvIds.TCLK_TABLE), t.TCLKDevEntry):
            if key_entry.extAddr == ieee:
                self.nvram.store_entry(int(ExNvIds.TCLK_TABLE), sub_id, nv.EMPTY_TCLK_ENTRY)

    def emit(self, node: Node, frames: list[ApsFrame]) -> None:
        """Frames a switch sends on its own or in reply: to the host as MT callbacks."""
        switch = node.switch
        if switch.left and node.network is not None and not self.online(node):
            self.leave(node)  # it left while the coordinator's network was down
        if not self.online(node):
            if frames:
                LOGGER.info(
                    "Switch %s is not on the coordinator's network: its frames are lost", node.ieee_text
                )
            return
        for frame in frames:
            if frame.is_zdo:
                self._emit_zdo(switch.nwk, frame)
            elif frame.dst_endpoint not in self._endpoints:
                LOGGER.warning(
                    "Frame from 0x%04X for unregistered endpoint %d dropped (the host registered %s)",
                    switch.nwk,
                    frame.dst_endpoint,
                    sorted(self._endpoints) or "none",
                )
            else:
                LOGGER.debug("Switch 0x%04X -> host: %s", switch.nwk, frame)
                self._send(
                    c.AF.IncomingMsg.Callback(
                        GroupId=0x0000,
                        ClusterId=frame.cluster_id,
                        SrcAddr=t.NWK(switch.nwk),
                        SrcEndpoint=frame.src_endpoint,
                        DstEndpoint=frame.dst_endpoint,
                        WasBroadcast=t.Bool(False),
                        LQI=self.linkquality,
                        SecurityUse=t.Bool(False),
                        TimeStamp=int(asyncio.get_running_loop().time() * 1000) & 0xFFFFFFFF,
                        TSN=_zcl_tsn(frame.payload),
                        Data=t.ShortBytes(frame.payload),
                        MacSrcAddr=t.NWK(switch.nwk),
                        MsgResultRadius=RADIUS_LEFT,
                    )
                )
        if switch.left:
            self.leave(node)
        self._changed()

    def _emit_zdo(self, src: int, frame: ApsFrame) -> None:
        if not self._zdo_callbacks:
            LOGGER.warning("ZDO frame from 0x%04X dropped: the host registered no ZDO callbacks", src)
            return
        broadcast = frame.cluster_id == zdo_t.ZDOCmd.Device_annce
        LOGGER.debug("Node 0x%04X -> host: %s", src, frame)
        self._send(
            c.ZDO.MsgCbIncoming.Callback(
                Src=t.NWK(src),
                IsBroadcast=t.Bool(broadcast),
                ClusterId=frame.cluster_id,
                SecurityUse=0,
                TSN=frame.payload[0],
                MacDst=t.NWK(0xFFFF if broadcast else 0x0000),
                Data=t.Bytes(frame.payload[1:]),
            )
        )

    # --- AF and ZDO requests from the host ---------------------------------------------------------

    def _route_check(self, request: Any) -> list[Any]:
        node = self._online_node(int(request.Dst))
        status = c.zdo.RoutingStatus.SUCCESS if node is not None else c.zdo.RoutingStatus.NO_ENTRY
        return [c.ZDO.ExtRouteChk.Rsp(Status=status)]

    def _af_data_request(self, request: Any) -> list[Any]:
        rsp = type(request).Rsp
        if isinstance(request, c.AF.DataRequestSrcRtg.Req):
            dst = t.AddrModeAddress(mode=t.AddrMode.NWK, address=request.DstAddr)
        else:
            dst = request.DstAddrModeAddress
        zdo = request.DstEndpoint == ZDO_ENDPOINT
        if zdo:
            profile = ZDO_PROFILE
        elif request.SrcEndpoint in self._endpoints:
            profile = self._endpoints[request.SrcEndpoint].profile
        else:
            LOGGER.warning("Data request from unregistered endpoint %d refused", request.SrcEndpoint)
            return [rsp(Status=t.Status.INVALID_PARAMETER)]
        if not self._network_up:
            LOGGER.warning("Data request while the network is down refused")
            return [rsp(Status=t.Status.NWK_INVALID_REQUEST)]
        frame = ApsFrame(
            int(request.SrcEndpoint),
            int(request.DstEndpoint),
            profile,
            int(request.ClusterId),
            bytes(request.Data),
        )
        LOGGER.debug("Host -> %s %s: TSN %d, %s", dst.mode.name, dst.address, request.TSN, frame)
        if dst.mode in (t.AddrMode.Broadcast, t.AddrMode.Group):
            group = None if dst.mode == t.AddrMode.Broadcast else int(dst.address)
            self._later(0, lambda: self._fan_out(frame, group))
            if not zdo:
                self._confirm(request, t.Status.SUCCESS)
            return [rsp(Status=t.Status.SUCCESS)]
        if dst.mode == t.AddrMode.IEEE:
            node = self.nodes.get(dst.address)
            nwk = node.switch.nwk if node is not None else 0xFFFE
            if dst.address == self.ieee:
                nwk = int(COORDINATOR_NWK)
        else:
            nwk = int(dst.address)
        if nwk == COORDINATOR_NWK:
            if zdo:
                self._later(0, lambda: self._coordinator_zdo(frame))
            else:
                self._confirm(request, t.Status.SUCCESS)
            return [rsp(Status=t.Status.SUCCESS)]
        target = self._online_node(nwk)
        status = self.faults.confirm_status or t.Status.SUCCESS
        delay = self.faults.confirm_delay
        if target is None:
            LOGGER.info(
                "Data request TSN %d to 0x%04X: no such device on the network (NWK_NO_ROUTE)",
                request.TSN,
                nwk,
            )
            status, delay = t.Status.NWK_NO_ROUTE, max(delay, NO_ACK_DELAY)
        elif not target.switch.responsive:
            LOGGER.info("Data request TSN %d to 0x%04X: the switch is silent (MAC_NO_ACK)", request.TSN, nwk)
            status, delay = t.Status.MAC_NO_ACK, max(delay, NO_ACK_DELAY)
        elif status != t.Status.SUCCESS:
            LOGGER.info("Data request TSN %d to 0x%04X: failed by fault (%s)", request.TSN, nwk, status.name)
        if not zdo:
            self._confirm(request, status, delay)
        if target is not None and status == t.Status.SUCCESS:
            self._later(delay, lambda: self._unicast(target, frame))
        return [rsp(Status=t.Status.SUCCESS)]

    def _confirm(self, request: Any, status: t.Status, delay: float = 0.0) -> None:
        confirm = c.AF.DataConfirm.Callback(Status=status, Endpoint=request.SrcEndpoint, TSN=request.TSN)
        if self.faults.confirm_delay:
            LOGGER.info("Fault: data confirm for TSN %d held back %d ms", request.TSN, round(delay * 1000))
        self._later(delay, lambda: self._send(confirm))

    def _unicast(self, node: Node, frame: ApsFrame) -> None:
        if not self.online(node):
            return
        if (
            frame.is_zdo
            and frame.cluster_id == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req
            and len(frame.payload) > 1
        ):
            self._permit_until[node.switch.nwk] = asyncio.get_running_loop().time() + frame.payload[1]
        self.emit(node, node.switch.handle(frame))

    def _fan_out(self, frame: ApsFrame, group: int | None) -> None:
        for node in list(self.nodes.values()):
            if self.online(node) and (group is None or group in node.switch.groups):
                self.emit(node, node.switch.handle(frame, broadcast=True))

    def _coordinator_zdo(self, frame: ApsFrame) -> None:
        """ZDO requests for the coordinator itself (zigpy interviews its own coordinator)."""
        if frame.cluster_id & 0x8000 or not frame.payload:
            return  # responses zigpy sends to itself: nothing to answer
        body = answer(self, frame)
        reply = ApsFrame(
            ZDO_ENDPOINT, ZDO_ENDPOINT, ZDO_PROFILE, frame.cluster_id | 0x8000, frame.payload[:1] + body
        )
        if self._zdo_callbacks:
            self._emit_zdo(int(COORDINATOR_NWK), reply)

    def _assoc_get_with_address(self, request: Any) -> list[Any]:
        node = self.nodes.get(request.IEEE)
        online = node is not None and self.online(node)
        device = c.util.Device(
            shortAddr=t.NWK(node.switch.nwk if node is not None and online else 0xFFFE),
            addrIdx=0,
            nodeRelation=c.util.NodeRelation.NEIGHBOR if online else c.util.NodeRelation.NOTUSED,
            devStatus=0,
            assocCnt=0,
            age=0,
            linkInfo=c.util.LinkInfo(
                txCounter=0, txCost=1, rxLqi=self.linkquality, inKeySeqNum=0, inFrmCntr=0, txFailure=0
            ),
            endDev=c.util.AgingEndDevice(endDevCfg=0, deviceTimeout=0),
            timeoutCounter=0,
            keepaliveRcv=0,
            ctrl=0,
        )
        return [c.UTIL.AssocGetWithAddress.Rsp(Device=device)]

    def _device_info(self, request: Any) -> list[Any]:
        online = [t.NWK(node.switch.nwk) for node in self.nodes.values() if self.online(node)]
        return [
            c.UTIL.GetDeviceInfo.Rsp(
                Status=t.Status.SUCCESS,
                IEEE=self.ieee,
                NWK=COORDINATOR_NWK if self._network_up else t.NWK(0xFFFE),
                DeviceType=t.DeviceTypeCapabilities.Coordinator | t.DeviceTypeCapabilities.Router,
                DeviceState=t.DeviceState.StartedAsCoordinator
                if self._network_up
                else t.DeviceState.InitializedNotStarted,
                AssociatedDevices=online,
            )
        ]


def _zcl_tsn(payload: bytes) -> int:
    offset = 3 if payload and payload[0] & 0x04 else 1  # manufacturer-specific: 2 more bytes
    return payload[offset] if len(payload) > offset else 0
