"""The emulated Z-Stack's radio side: the simulated switches and the AF/ZDO data path.

`ZStackFirmware` is the whole emulated chip: `ZStackChip` (SYS, UTIL, NV, resets, forming,
permit join, registrations) plus what goes over the air, as the Z-Stack front-end of the shared
`sim.world.SimulatedWorld` (the switches, joins, routes). What the host sees is Z-Stack's:

- `AF.DataRequestExt` (and `AF.DataRequest`, `AF.DataRequestSrcRtg`) to a switch: SRSP, then
  `AF.DataConfirm` matched by TSN (not for ZDO, as in Z-Stack), then the switch's answers as
  `AF.IncomingMsg` with the link quality, or for ZDO as MT_ZDO's direct callback and, when the
  host registered for it, `ZDO.MsgCbIncoming`.
- ZDO requests also come as MT_ZDO requests, one per ZDO command (zigbee-herdsman's way, see
  `zdo_requests`), with the coordinator's group table (`groups`) and `ZDO_EXT_NWK_INFO`.
- A switch that does not answer gets MAC_NO_ACK after `NO_ACK_DELAY`; an address no switch on the
  network has, NWK_NO_ROUTE. A confirm a fault makes fail is not delivered to the switch.
- Joins: `ZDO.TCDevInd` then the switch's `Device_annce` (so also `ZDO_END_DEVICE_ANNCE_IND`);
  leaves: `ZDO.LeaveInd`. Z-Stack's
  address manager and link key tables in NVRAM follow, so zigpy-znp's backups list the switches.
"""

# zigpy's and zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import zigpy.zdo.types as zdo_t
import zigpy_znp.commands as c
import zigpy_znp.types as t
from zigpy_znp.types.nvids import ExNvIds

from z2m_qbkg40lm.sim import coordinator_zdo
from z2m_qbkg40lm.sim.frames import ZDO_ENDPOINT, ZDO_PROFILE, ApsFrame
from z2m_qbkg40lm.sim.world import NO_ACK_DELAY, Reach
from z2m_qbkg40lm.sim.znp import groups, zdo_requests
from z2m_qbkg40lm.sim.znp import nvram as nv
from z2m_qbkg40lm.sim.znp.chip import COORDINATOR_NWK, DEFAULT_LINKQUALITY, Faults, Link, Node, ZStackChip
from z2m_qbkg40lm.sim.znp.raw_frames import RawCommand, srsp, status_srsp

__all__ = ["DEFAULT_LINKQUALITY", "Faults", "Link", "Node", "ZStackFirmware"]

LOGGER = logging.getLogger(__name__)

RADIUS_LEFT: Final = 29
"""The radius left on a frame from a switch one hop away."""
EXT_NWK_INFO: Final = 0x50
BROADCAST_ADDRESSES: Final = 0xFFF8
"""NWK addresses from here up are broadcasts (all, rx-on-when-idle, routers, low-power routers)."""


class ZStackFirmware(ZStackChip):
    """Z-Stack 3.30 on an emulated CC2652, with the simulated switches it can reach."""

    def _handler_table(self) -> dict[type, Callable[[Any], list[Any]]]:
        return {
            **super()._handler_table(),
            c.UTIL.AssocGetWithAddress.Req: self._assoc_get_with_address,
            c.UTIL.GetDeviceInfo.Req: self._device_info,
            c.AF.DataRequest.Req: self._af_data_request,
            c.AF.DataRequestExt.Req: self._af_data_request,
            c.AF.DataRequestSrcRtg.Req: self._af_data_request,
            c.AF.InterPanCtl.Req: self._inter_pan_control,
            c.ZDO.ExtRouteChk.Req: self._route_check,
        }

    def _raw_handler_table(self) -> dict[t.CommandHeader, Callable[[bytes], list[Any]]]:
        """zigbee-herdsman's ZDO-subsystem requests, group commands and network information."""
        zdo = t.Subsystem.ZDO
        table = {
            **{command_id: self._zdo_subsystem_request(command_id) for command_id in zdo_requests.REQUESTS},
            **groups.handlers(groups.GroupTable(lambda: self.nvram)),
            EXT_NWK_INFO: self._ext_nwk_info,
        }
        return {
            **super()._raw_handler_table(),
            **{
                t.CommandHeader(0, id=command_id, subsystem=zdo, type=t.CommandType.SREQ): handler
                for command_id, handler in table.items()
            },
        }

    # --- the world's events, as Z-Stack tells its host ---------------------------------------------

    def device_joined(self, node: Node, parent: int) -> None:
        """TC device indication; Z-Stack's address manager and link key tables follow."""
        switch = node.switch
        self._remember(switch.ieee, switch.nwk, parent)
        self._send(
            c.ZDO.TCDevInd.Callback(SrcNwk=t.NWK(switch.nwk), SrcIEEE=switch.ieee, ParentNwk=t.NWK(parent))
        )

    def device_left(self, node: Node) -> None:
        """Leave indication; the switch's table entries are cleared."""
        switch = node.switch
        self._forget(switch.ieee)
        self._send(
            c.ZDO.LeaveInd.Callback(
                NWK=t.NWK(switch.nwk),
                IEEE=switch.ieee,
                Request=t.Bool(False),
                Remove=t.Bool(False),
                Rejoin=t.Bool(False),
            )
        )

    def _remember(self, ieee: t.EUI64, nwk: int, parent: int) -> None:
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

    def frame_from_air(self, src: int, frame: ApsFrame) -> None:
        """A frame from a switch: `AF.IncomingMsg` to a registered endpoint, or ZDO's callback."""
        if frame.is_zdo:
            self._emit_zdo(src, frame)
        elif frame.dst_endpoint not in self._endpoints:
            LOGGER.warning(
                "Frame from 0x%04X for unregistered endpoint %d dropped (the host registered %s)",
                src,
                frame.dst_endpoint,
                sorted(self._endpoints) or "none",
            )
        else:
            LOGGER.debug("Switch 0x%04X -> host: %s", src, frame)
            self._send(
                c.AF.IncomingMsg.Callback(
                    GroupId=0x0000,
                    ClusterId=frame.cluster_id,
                    SrcAddr=t.NWK(src),
                    SrcEndpoint=frame.src_endpoint,
                    DstEndpoint=frame.dst_endpoint,
                    WasBroadcast=t.Bool(False),
                    LQI=self.world.linkquality,
                    SecurityUse=t.Bool(False),
                    TimeStamp=int(asyncio.get_running_loop().time() * 1000) & 0xFFFFFFFF,
                    TSN=_zcl_tsn(frame.payload),
                    Data=t.ShortBytes(frame.payload),
                    MacSrcAddr=t.NWK(src),
                    MsgResultRadius=RADIUS_LEFT,
                )
            )

    def _emit_zdo(self, src: int, frame: ApsFrame) -> None:
        """A ZDO frame for the host: as MT_ZDO's direct callback, and as `ZDO.MsgCbIncoming` when
        the host registered ZDO callbacks (zigpy-znp does, herdsman does not)."""
        direct = zdo_requests.direct_callback(src, frame)
        if direct is not None:
            self._send(direct)
        if not self._zdo_callbacks:
            if direct is None:
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
        node = self.world.online_node(int(request.Dst))
        status = c.zdo.RoutingStatus.SUCCESS if node is not None else c.zdo.RoutingStatus.NO_ENTRY
        return [c.ZDO.ExtRouteChk.Rsp(Status=status)]

    def _af_data_request(self, request: Any) -> list[Any]:
        rsp = type(request).Rsp
        if isinstance(request, c.AF.DataRequestSrcRtg.Req | c.AF.DataRequest.Req):
            dst = t.AddrModeAddress(mode=t.AddrMode.NWK, address=request.DstAddr)
        else:
            dst = request.DstAddrModeAddress
        if self._inter_pan(request):
            # Touchlink (Zigbee2MQTT's touchlink scan): no emulated device listens outside the network.
            LOGGER.debug("Inter-PAN frame to PAN 0x%04X: nobody answers", request.DstPanId)
            self._confirm(request, t.Status.SUCCESS)
            return [rsp(Status=t.Status.SUCCESS)]
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
            self.world.broadcast(frame, None if dst.mode == t.AddrMode.Broadcast else int(dst.address))
            if not zdo:
                self._confirm(request, t.Status.SUCCESS)
            return [rsp(Status=t.Status.SUCCESS)]
        nwk = self.world.nwk_of(dst.address) if dst.mode == t.AddrMode.IEEE else int(dst.address)
        if nwk == COORDINATOR_NWK:
            if zdo:
                self._later(0, lambda: self._coordinator_zdo(frame))
            else:
                self._confirm(request, t.Status.SUCCESS)
            return [rsp(Status=t.Status.SUCCESS)]
        route = self.world.route(nwk)
        target = route.node
        status = self.faults.confirm_status or t.Status.SUCCESS
        delay = self.faults.confirm_delay
        if route.reach == Reach.NO_ROUTE:
            LOGGER.info(
                "Data request TSN %d to 0x%04X: no such device on the network (NWK_NO_ROUTE)",
                request.TSN,
                nwk,
            )
            status, delay = t.Status.NWK_NO_ROUTE, max(delay, NO_ACK_DELAY)
        elif route.reach == Reach.NO_ACK:
            LOGGER.info("Data request TSN %d to 0x%04X: the switch is silent (MAC_NO_ACK)", request.TSN, nwk)
            status, delay = t.Status.MAC_NO_ACK, max(delay, NO_ACK_DELAY)
        elif status != t.Status.SUCCESS:
            LOGGER.info("Data request TSN %d to 0x%04X: failed by fault (%s)", request.TSN, nwk, status.name)
        if not zdo:
            self._confirm(request, status, delay)
        if target is not None and status == t.Status.SUCCESS:
            self.world.deliver(target, frame, delay)
        return [rsp(Status=t.Status.SUCCESS)]

    def _inter_pan(self, request: Any) -> bool:
        """True for a frame to another PAN (AF_DATA_REQUEST_EXT's PAN id: 0 means this one)."""
        if not isinstance(request, c.AF.DataRequestExt.Req) or request.DstPanId == 0x0000:
            return False
        try:
            return bool(request.DstPanId != self.nib.nwkPanId)
        except KeyError:
            return True

    def _inter_pan_control(self, request: Any) -> list[Any]:
        """AF_INTER_PAN_CTL: a channel for inter-PAN frames, back to the network's, or an endpoint
        to proxy them; accepted (the air has no other PAN), an unregistered endpoint refused."""
        proxied = request.Data[0] if request.Data else None
        if request.Command == t.InterPanCommand.Reg and proxied not in self._endpoints:
            return [c.AF.InterPanCtl.Rsp(Status=t.Status.INVALID_PARAMETER)]
        LOGGER.debug("Inter-PAN control %s %s", request.Command.name, bytes(request.Data).hex())
        return [c.AF.InterPanCtl.Rsp(Status=t.Status.SUCCESS)]

    def _zdo_subsystem_request(self, command_id: int) -> Callable[[bytes], list[Any]]:
        """The handler of one MT_ZDO request: the ZDO frame goes out, the answer comes back as a
        direct callback (`zdo_requests`)."""

        def handle(data: bytes) -> list[Any]:
            request = zdo_requests.parse_request(command_id, data)
            answer = status_srsp(t.Subsystem.ZDO, command_id, int(t.Status.SUCCESS))
            self._zdo_tsn = (self._zdo_tsn + 1) & 0xFF
            frame = request.frame(self._zdo_tsn)
            destination = request.destination
            nwk = destination if isinstance(destination, int) else self.world.nwk_of(destination)
            LOGGER.debug("Host -> 0x%04X (MT_ZDO): %s", nwk, frame)
            if nwk == COORDINATOR_NWK:  # answered by the stack itself, network or not
                self._later(0, lambda: self._coordinator_zdo(frame))
                return [answer]
            if not self._network_up:
                return [status_srsp(t.Subsystem.ZDO, command_id, int(t.Status.NWK_INVALID_REQUEST))]
            if nwk >= BROADCAST_ADDRESSES:
                self.world.broadcast(frame)
                return [answer]
            route = self.world.route(nwk)
            if route.reach == Reach.DELIVERED and route.node is not None:
                self.world.deliver(route.node, frame, self.faults.confirm_delay)
            else:
                LOGGER.info("ZDO request to 0x%04X: %s, no answer will come", nwk, route.reach.value)
            return [answer]

        return handle

    def _ext_nwk_info(self, _data: bytes) -> list[RawCommand]:
        """ZDO_EXT_NWK_INFO: 24 bytes (zigpy-znp's class for it has another, unused layout)."""
        nib = self.nib
        up = self._network_up
        state = t.DeviceState.StartedAsCoordinator if up else t.DeviceState.InitializedNotStarted
        payload = (
            t.NWK(COORDINATOR_NWK if up else 0xFFFE).serialize()
            + bytes([int(state)])
            + t.uint16_t(nib.nwkPanId).serialize()
            + t.NWK(nib.nwkCoordAddress).serialize()
            + nib.extendedPANID.serialize()
            + nib.nwkCoordExtAddress.serialize()
            + bytes([int(nib.nwkLogicalChannel)])
        )
        return [srsp(t.Subsystem.ZDO, EXT_NWK_INFO, payload)]

    def _confirm(self, request: Any, status: t.Status, delay: float = 0.0) -> None:
        confirm = c.AF.DataConfirm.Callback(Status=status, Endpoint=request.SrcEndpoint, TSN=request.TSN)
        if self.faults.confirm_delay:
            LOGGER.info("Fault: data confirm for TSN %d held back %d ms", request.TSN, round(delay * 1000))
        self._later(delay, lambda: self._send(confirm))

    def _coordinator_zdo(self, frame: ApsFrame) -> None:
        """ZDO requests for the coordinator itself (zigpy interviews its own coordinator)."""
        reply = coordinator_zdo.reply(self, frame)
        if reply is not None:
            self._emit_zdo(int(COORDINATOR_NWK), reply)

    def _assoc_get_with_address(self, request: Any) -> list[Any]:
        node = self.world.nodes.get(request.IEEE)
        online = node is not None and self.world.online(node)
        device = c.util.Device(
            shortAddr=t.NWK(node.switch.nwk if node is not None and online else 0xFFFE),
            addrIdx=0,
            nodeRelation=c.util.NodeRelation.NEIGHBOR if online else c.util.NodeRelation.NOTUSED,
            devStatus=0,
            assocCnt=0,
            age=0,
            linkInfo=c.util.LinkInfo(
                txCounter=0, txCost=1, rxLqi=self.world.linkquality, inKeySeqNum=0, inFrmCntr=0, txFailure=0
            ),
            endDev=c.util.AgingEndDevice(endDevCfg=0, deviceTimeout=0),
            timeoutCounter=0,
            keepaliveRcv=0,
            ctrl=0,
        )
        return [c.UTIL.AssocGetWithAddress.Rsp(Device=device)]

    def _device_info(self, request: Any) -> list[Any]:
        online = [t.NWK(node.switch.nwk) for node in self.world.online_nodes()]
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
