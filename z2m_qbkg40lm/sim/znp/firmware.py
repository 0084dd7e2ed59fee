"""The emulated Z-Stack 3.30 on a CC2652: MT commands in, MT responses and callbacks out.

`ZStackFirmware.frame_received()` takes one MT frame from the host (zigpy-znp) and answers the
way Z-Stack does: an SRSP for every SREQ (`RPCError.CommandNotRecognized` for the ones it does
not know), then AREQ callbacks. zigpy-znp's own command classes decode the requests and encode
the answers, so both ends speak exactly the library's idea of the protocol.

What the chip keeps over a power cycle is in `nvram` (and the state file); what it forgets on a
reset is here: the registered endpoints, the ZDO callback registration, permit join, the running
network. The simulated switches around it (`Node`) exchange APS frames with it through the same
`SimulatedSwitch` firmware model the virtual adapter uses. Modelling choices:

- Start-up answers are those of a Z-Stack 3.30 build (CodeRevision 20230507, aligned structs),
  which zigpy-znp 1.1.1 detects as "CC2652, Z-Stack 3.30".
- Forming picks the first channel of the BDB primary channel mask; no energy scan.
- A data request to a switch that does not answer is confirmed with MAC_NO_ACK after
  `NO_ACK_DELAY`; to an address no switch on the network has, with NWK_NO_ROUTE. A confirm that
  a fault makes fail is not delivered to the switch.
- A reset (requested or a fault) keeps the network (it is in NVRAM) and restarts it at once if
  one was running, but drops the volatile registrations: a host that does not register its
  endpoints again receives nothing, as with the real stack.
"""

# zigpy's and zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import zigpy.zdo.types as zdo_t
import zigpy_znp.commands as c
import zigpy_znp.types as t
from zigpy_znp.frames import GeneralFrame
from zigpy_znp.types.nvids import ExNvIds, OsalNvIds

from z2m_qbkg40lm.sim.frames import ZDO_ENDPOINT, ZDO_PROFILE, ApsFrame
from z2m_qbkg40lm.sim.switch import SimulatedSwitch
from z2m_qbkg40lm.sim.znp import nvcommands
from z2m_qbkg40lm.sim.znp import nvram as nv
from z2m_qbkg40lm.sim.znp.coordinator_zdo import answer, channel_list
from z2m_qbkg40lm.sim.znp.nvram import Nvram

LOGGER = logging.getLogger(__name__)

BUILD_ID: Final = 20230507
VERSION: Final = {"TransportRev": 2, "ProductId": 1, "MajorRel": 2, "MinorRel": 7, "MaintRel": 1}
CAPABILITIES: Final = (
    t.MTCapabilities.SYS
    | t.MTCapabilities.MAC
    | t.MTCapabilities.AF
    | t.MTCapabilities.ZDO
    | t.MTCapabilities.SAPI
    | t.MTCapabilities.UTIL
    | t.MTCapabilities.APP
    | t.MTCapabilities.GP
    | t.MTCapabilities.APP_CNF
)
COORDINATOR_NWK: Final = t.NWK(0x0000)
NO_ACK_DELAY: Final = 0.05
"""Seconds Z-Stack spends on MAC retries before confirming MAC_NO_ACK."""
JOIN_SPACING: Final = 0.1
"""Seconds between switches in pairing mode joining one after another."""
SAVE_DELAY: Final = 0.5
MAX_NV_CHUNK: Final = 244
RADIUS_LEFT: Final = 29
DEFAULT_LINKQUALITY: Final = 160


class Link(Protocol):
    """The serial line to the host: a TCP connection or a pseudo-terminal."""

    def send(self, frame: GeneralFrame) -> None:
        """Frame and write one MT frame."""

    def close(self) -> None:
        """Cut the line (the host sees its connection lost)."""


@dataclass
class Node:
    """A simulated switch and its relation to the coordinator."""

    switch: SimulatedSwitch
    network: t.EUI64 | None = None
    """Extended PAN id of the network the switch joined; None while it is not on one."""
    pairing: bool = False
    """In pairing mode: joins as soon as the coordinator permits joining."""

    @property
    def ieee_text(self) -> str:
        """`0x54ef44…`, as Zigbee2MQTT writes IEEE addresses."""
        return "0x" + str(self.switch.ieee).replace(":", "")


@dataclass
class Faults:
    """Faults injected on demand."""

    muted: bool = False
    """The chip has hung: it answers nothing and sends nothing."""
    confirm_delay: float = 0.0
    """Seconds every AF.DataConfirm is held back."""
    confirm_status: t.Status | None = None
    """Every unicast AF.DataConfirm carries this status (and the frame is lost)."""


@dataclass
class _Endpoint:
    profile: int
    device_type: int
    version: int
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)


class ZStackFirmware:
    """Z-Stack 3.30 on an emulated CC2652, with the simulated switches it can reach."""

    def __init__(
        self,
        state_file: Path | None = None,
        *,
        switches: int = 0,
        linkquality: int = DEFAULT_LINKQUALITY,
        rng: random.Random | None = None,
    ) -> None:
        self._state_file = state_file
        self._rng = rng or random.Random()
        self.linkquality = linkquality
        self.faults = Faults()
        self.nodes: dict[t.EUI64, Node] = {}
        self._link: Link | None = None
        self._handles: set[asyncio.TimerHandle] = set()
        self._save_handle: asyncio.TimerHandle | None = None
        self._saved_changes = -1
        # Volatile state: lost on every reset.
        self._endpoints: dict[int, _Endpoint] = {}
        self._zdo_callbacks = False
        self._network_up = False
        self._permit_until: dict[int, float] = {}
        self._bdb_channels = {True: t.Channels.NO_CHANNELS, False: t.Channels.NO_CHANNELS}
        self._load(switches)
        self._handlers: dict[type, Callable[[Any], list[Any]]] = self._handler_table()

    # --- state file ----------------------------------------------------------------------------

    def _load(self, switches: int) -> None:
        data = None if self._state_file is None else nv.read_state_file(self._state_file)
        if data is None:
            self.chip_ieee = nv.random_chip_ieee(self._rng)
            self.nvram = Nvram.factory(self.chip_ieee, self._rng)
            for _ in range(switches):
                self.add_switch(pairing=True)
            LOGGER.info("Factory-new CC2652 %s with %d switch(es) in pairing mode", self.chip_ieee, switches)
            self.save()
            return
        try:
            self.chip_ieee = t.EUI64.convert(data["chip_ieee"])
            self.nvram = Nvram.from_json(data["nvram"])
            for record in data.get("switches", []):
                switch = SimulatedSwitch.from_dict(record)
                network = record.get("network")
                self.nodes[switch.ieee] = Node(
                    switch,
                    None if network is None else t.EUI64.convert(network),
                    bool(record.get("pairing", False)),
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"emulator state file {self._state_file} cannot be used: {exc}") from exc
        self._saved_changes = self.nvram.changes
        LOGGER.info(
            "CC2652 %s loaded from %s: %s, %d switch(es)",
            self.chip_ieee,
            self._state_file,
            "network formed" if self.formed else "no network",
            len(self.nodes),
        )

    def save(self) -> None:
        """Write the state file now (atomically)."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self._state_file is None:
            return
        nv.write_state_file(
            self._state_file,
            {
                "chip_ieee": str(self.chip_ieee),
                "nvram": self.nvram.to_json(),
                "switches": [
                    {
                        **node.switch.to_dict(),
                        "network": None if node.network is None else str(node.network),
                        "pairing": node.pairing,
                    }
                    for node in self.nodes.values()
                ],
            },
        )
        self._saved_changes = self.nvram.changes

    def _changed(self) -> None:
        """Save soon: zigpy-znp writes hundreds of NV items in a row at start-up."""
        if self._state_file is None or self._save_handle is not None:
            return
        self._save_handle = asyncio.get_running_loop().call_later(SAVE_DELAY, self.save)

    def close(self) -> None:
        """Stop timers and save; the link is the caller's."""
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        self.save()

    # --- the link --------------------------------------------------------------------------------

    def attach(self, link: Link) -> None:
        """A host connected (a previous one is cut: the chip has one serial port)."""
        if self._link is not None and self._link is not link:
            LOGGER.warning("A new host connected: closing the previous connection")
            self._link.close()
        self._link = link

    def detach(self, link: Link) -> None:
        """The host went away; the chip keeps running."""
        if self._link is link:
            self._link = None

    def drop_link(self, *, fault: bool = True) -> bool:
        """Cut the serial line (as a fault, or on shutdown). False when no host is connected."""
        link = self._link
        if link is None:
            return False
        if fault:
            LOGGER.warning("Fault: dropping the serial link to the host")
        self._link = None
        link.close()
        return True

    def _send(self, command: Any) -> None:
        if self.faults.muted:
            LOGGER.debug("Muted, not sending %s", command)
            return
        if self._link is None:
            LOGGER.debug("No host connected, dropping %s", command)
            return
        LOGGER.debug("-> %s", command)
        self._link.send(command.to_frame(align=nv.ALIGNED))

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run `callback` after `delay` seconds (0: on the next loop iteration), cancelled by close()."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def run() -> None:
            self._handles.discard(handle)
            callback()

        handle = loop.call_later(delay, run)
        self._handles.add(handle)

    # --- MT frames in ----------------------------------------------------------------------------

    def frame_received(self, frame: GeneralFrame) -> None:
        """One MT frame from the host."""
        if self.faults.muted:
            LOGGER.debug("Muted, ignoring %s", frame)
            return
        command_type = c.COMMANDS_BY_ID.get(frame.header)
        if command_type is None or command_type.Req is not command_type:
            self._not_recognized(frame)
            return
        try:
            request = command_type.from_frame(frame, align=nv.ALIGNED)
        except ValueError as exc:
            LOGGER.warning("Malformed %s from the host: %s", command_type.__qualname__, exc)
            self._not_recognized(frame, t.ErrorCode.INVALID_LENGTH)
            return
        LOGGER.debug("<- %s", request)
        handler = self._handlers.get(command_type)
        if handler is None:
            LOGGER.info("Z-Stack does not implement %s here: CommandNotRecognized", command_type.__qualname__)
            self._not_recognized(frame)
            return
        for reply in handler(request):
            self._send(reply)
        if self.nvram.changes != self._saved_changes:
            self._changed()

    def _not_recognized(
        self, frame: GeneralFrame, code: t.ErrorCode = t.ErrorCode.INVALID_COMMAND_ID
    ) -> None:
        if frame.header.type != t.CommandType.SREQ:
            return  # only synchronous requests get an error answer
        self._send(c.RPCError.CommandNotRecognized.Rsp(ErrorCode=code, RequestHeader=frame.header))

    def _handler_table(self) -> dict[type, Callable[[Any], list[Any]]]:
        return {
            c.SYS.Ping.Req: lambda _req: [c.SYS.Ping.Rsp(Capabilities=CAPABILITIES)],
            c.SYS.Version.Req: lambda _req: [self._version()],
            c.SYS.ResetReq.Req: self._reset_request,
            c.SYS.GetExtAddr.Req: lambda _req: [c.SYS.GetExtAddr.Rsp(ExtAddr=self.ieee)],
            c.SYS.SetTxPower.Req: lambda _req: [c.SYS.SetTxPower.Rsp(StatusOrPower=t.Status.SUCCESS)],
            **nvcommands.handlers(self.nvram),
            c.UTIL.AssocFindDevice.Req: self._assoc_find_device,
            c.UTIL.AssocGetWithAddress.Req: self._assoc_get_with_address,
            c.UTIL.AssocRemove.Req: lambda _req: [c.UTIL.AssocRemove.Rsp(Status=t.Status.SUCCESS)],
            c.UTIL.AssocAdd.Req: lambda _req: [c.UTIL.AssocAdd.Rsp(Status=t.Status.SUCCESS)],
            c.UTIL.LEDControl.Req: lambda _req: [c.UTIL.LEDControl.Rsp(Status=t.Status.SUCCESS)],
            c.UTIL.GetDeviceInfo.Req: self._device_info,
            c.AppConfig.BDBSetChannel.Req: self._bdb_set_channel,
            c.AppConfig.BDBStartCommissioning.Req: self._bdb_start_commissioning,
            c.AF.Register.Req: self._af_register,
            c.AF.DataRequestExt.Req: self._af_data_request,
            c.AF.DataRequestSrcRtg.Req: self._af_data_request,
            c.ZDO.MsgCallbackRegister.Req: self._zdo_callback_register,
            c.ZDO.MgmtPermitJoinReq.Req: self._mgmt_permit_join,
            c.ZDO.ExtRouteChk.Req: self._route_check,
            c.ZDO.ExtRouteDisc.Req: lambda _req: [c.ZDO.ExtRouteDisc.Rsp(Status=t.Status.SUCCESS)],
            c.ZDO.MgmtNWKUpdateReq.Req: self._nwk_update,
        }

    # --- SYS and UTIL ------------------------------------------------------------------------------

    @property
    def ieee(self) -> t.EUI64:
        """The coordinator's IEEE address: EXTADDR, which a host may change."""
        try:
            ieee: t.EUI64 = self.nvram.read(OsalNvIds.EXTADDR, t.EUI64)
        except KeyError:
            return self.chip_ieee
        return ieee

    def _version(self) -> Any:
        return c.SYS.Version.Rsp(
            **VERSION,
            CodeRevision=BUILD_ID,
            BootloaderBuildType=c.sys.BootloaderBuildType.NON_BOOTLOADER_BUILD,
            BootloaderRevision=0xFFFFFFFF,
        )

    def _reset_request(self, request: Any) -> list[Any]:
        LOGGER.info("Soft reset requested by the host")
        return self.reset(t.ResetReason.External)

    def reset(self, reason: t.ResetReason) -> list[Any]:
        """Reboot: apply the start-up options, forget volatile state, resume a running network."""
        options = t.StartupOptions(self.nvram.read(OsalNvIds.STARTUP_OPTION, t.uint8_t))
        clear_config = bool(options & t.StartupOptions.ClearConfig)
        clear_state = bool(options & t.StartupOptions.ClearState)
        if clear_config or clear_state:
            LOGGER.info(
                "Start-up options %s: clearing%s%s",
                options,
                " the configuration" if clear_config else "",
                " the network state" if clear_state else "",
            )
        self.nvram.restore_factory(self.chip_ieee, self._rng, config=clear_config, state=clear_state)
        self.nvram.store(OsalNvIds.STARTUP_OPTION, t.StartupOptions.NONE)
        was_up = self._network_up and not clear_state
        self._endpoints.clear()
        self._zdo_callbacks = False
        self._permit_until.clear()
        self._network_up = False
        self.save()
        answers: list[Any] = [c.SYS.ResetInd.Callback(Reason=reason, **VERSION)]
        if was_up and self.formed:
            self._network_up = True
            answers.append(c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartedAsCoordinator))
        return answers

    def spontaneous_reset(self) -> None:
        """Fault: the chip reboots on its own (a watchdog reset)."""
        LOGGER.warning("Fault: the coordinator resets (watchdog)")
        for reply in self.reset(t.ResetReason.Watchdog):
            self._send(reply)

    def _assoc_find_device(self, request: Any) -> list[Any]:
        # The answer is the in-memory struct: 36 bytes tell the host the structs are aligned.
        empty = c.util.Device(
            shortAddr=t.NWK(0xFFFE),
            addrIdx=0xFFFF,
            nodeRelation=c.util.NodeRelation.NOTUSED,
            devStatus=0,
            assocCnt=0,
            age=0,
            linkInfo=c.util.LinkInfo(txCounter=0, txCost=0, rxLqi=0, inKeySeqNum=0, inFrmCntr=0, txFailure=0),
            endDev=c.util.AgingEndDevice(endDevCfg=0, deviceTimeout=0),
            timeoutCounter=0,
            keepaliveRcv=0,
            ctrl=0,
        )
        return [c.UTIL.AssocFindDevice.Rsp(Device=t.Bytes(empty.serialize(align=nv.ALIGNED)))]

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

    # --- the network -------------------------------------------------------------------------------

    @property
    def nib(self) -> t.NIB:
        """The stored network information base."""
        nib: t.NIB = self.nvram.read(OsalNvIds.NIB, t.NIB)
        return nib

    @property
    def formed(self) -> bool:
        """True when the NVRAM holds a network (what zigpy-znp checks too)."""
        try:
            nib = self.nib
            on_network = self.nvram.read(OsalNvIds.BDBNODEISONANETWORK, t.uint8_t)
        except KeyError:
            return False
        return nib.nwkLogicalChannel != 0 and bool(nib.nwkKeyLoaded) and on_network == 1

    @property
    def network_up(self) -> bool:
        """True while the coordinator runs its network."""
        return self._network_up

    def online(self, node: Node) -> bool:
        """True when the switch is on the network the coordinator is running."""
        return self._network_up and node.network is not None and node.network == self.nib.extendedPANID

    def _bdb_set_channel(self, request: Any) -> list[Any]:
        self._bdb_channels[bool(request.IsPrimary)] = t.Channels(request.Channel)
        return [c.AppConfig.BDBSetChannel.Rsp(Status=t.Status.SUCCESS)]

    def _bdb_start_commissioning(self, request: Any) -> list[Any]:
        modes = c.app_config.BDBCommissioningMode
        notification = c.AppConfig.BDBCommissioningNotification.Callback
        answers: list[Any] = [c.AppConfig.BDBStartCommissioning.Rsp(Status=t.Status.SUCCESS)]
        if not request.Mode & modes.NwkFormation:
            LOGGER.info("Commissioning mode %s is not emulated; nothing to do", request.Mode)
            return [
                *answers,
                notification(
                    Status=c.app_config.BDBCommissioningStatus.Success,
                    Mode=request.Mode,
                    RemainingModes=modes.NONE,
                ),
            ]
        status = c.app_config.BDBCommissioningStatus
        if self.formed:
            # Z-Stack restores the network from NVRAM and reports formation as failed (not needed).
            nib = self.nib
            LOGGER.info(
                "Network resumed: channel %d, PAN id 0x%04X, extended PAN id %s",
                nib.nwkLogicalChannel,
                nib.nwkPanId,
                nib.extendedPANID,
            )
            self._network_up = True
            return [
                *answers,
                c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartingAsCoordinator),
                c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartedAsCoordinator),
                notification(
                    Status=status.FormationFailure, Mode=modes.NwkFormation, RemainingModes=modes.NONE
                ),
            ]
        self._form()
        return [
            *answers,
            notification(
                Status=status.InProgress, Mode=modes.NwkFormation, RemainingModes=modes.NwkFormation
            ),
            c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartingAsCoordinator),
            c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartedAsCoordinator),
            notification(Status=status.Success, Mode=modes.NwkFormation, RemainingModes=modes.NONE),
        ]

    def _form(self) -> None:
        """Form a new network from the configured PAN ids, key and channel mask."""
        nvram = self.nvram
        mask = self._bdb_channels[True] or nvram.read(OsalNvIds.CHANLIST, t.Channels)
        channels = channel_list(mask)
        channel = channels[0] if channels else 11
        pan_id = int(nvram.read(OsalNvIds.PANID, t.uint16_t))
        if pan_id in (0xFFFF, 0xFFFE, 0x0000):
            pan_id = self._rng.randint(0x0001, 0xFFF7)
        ext_pan_id = nvram.read(OsalNvIds.APS_USE_EXT_PANID, t.EUI64)
        if ext_pan_id in (nv.ZERO_IEEE, nv.UNSET_IEEE):
            ext_pan_id = self.ieee
        try:
            preconfigured = bool(nvram.read(OsalNvIds.PRECFGKEYS_ENABLE, t.Bool))
            key = nvram.read(OsalNvIds.PRECFGKEY, t.KeyData) if preconfigured else None
        except KeyError:
            key = None
        if key is None:
            key = t.KeyData(bytes(self._rng.randrange(256) for _ in range(16)))
        nib = self.nib.replace(
            nwkDevAddress=COORDINATOR_NWK,
            nwkCoordAddress=COORDINATOR_NWK,
            nwkLogicalChannel=channel,
            nwkPanId=pan_id,
            extendedPANID=ext_pan_id,
            nwkKeyLoaded=t.Bool(True),
            nwkState=t.NwkState.NWK_ROUTER,
            channelList=t.Channels.from_channel_list([channel]),
            nwkUpdateId=0,
        )
        key_desc = t.NwkKeyDesc(KeySeqNum=0, Key=key)
        nvram.store(OsalNvIds.NIB, nib)
        nvram.store(OsalNvIds.EXTENDED_PAN_ID, ext_pan_id)
        nvram.store(OsalNvIds.NWK_ACTIVE_KEY_INFO, key_desc)
        nvram.store(OsalNvIds.NWK_ALTERN_KEY_INFO, key_desc)
        nvram.store(OsalNvIds.BDBNODEISONANETWORK, t.uint8_t(1))
        nvram.store_entry(
            int(ExNvIds.NWK_SEC_MATERIAL_TABLE),
            0,
            t.NwkSecMaterialDesc(FrameCounter=0, ExtendedPanID=ext_pan_id),
        )
        self._network_up = True
        LOGGER.info(
            "Network formed: channel %d, PAN id 0x%04X, extended PAN id %s", channel, pan_id, ext_pan_id
        )
        self.save()

    def _nwk_update(self, request: Any) -> list[Any]:
        if request.ScanDuration == zdo_t.NwkUpdate.CHANNEL_CHANGE_REQ and self._network_up:
            channels = channel_list(request.Channels)
            if channels:
                nib = self.nib
                self.nvram.store(
                    OsalNvIds.NIB, nib.replace(nwkLogicalChannel=channels[0], nwkUpdateId=nib.nwkUpdateId + 1)
                )
                LOGGER.info("Network moved to channel %d (the switches follow)", channels[0])
        return [c.ZDO.MgmtNWKUpdateReq.Rsp(Status=t.Status.SUCCESS)]

    # --- permit join ---------------------------------------------------------------------------

    @property
    def permit_join_open(self) -> bool:
        """True while the coordinator or a switch admits joining devices."""
        now = asyncio.get_running_loop().time()
        return self._network_up and any(deadline > now for deadline in self._permit_until.values())

    def _permit_parent(self) -> int | None:
        """The NWK address of a node that currently permits joining (the coordinator first)."""
        now = asyncio.get_running_loop().time()
        open_nodes = sorted(nwk for nwk, deadline in self._permit_until.items() if deadline > now)
        return open_nodes[0] if open_nodes and self._network_up else None

    def _mgmt_permit_join(self, request: Any) -> list[Any]:
        answers: list[Any] = [c.ZDO.MgmtPermitJoinReq.Rsp(Status=t.Status.SUCCESS)]
        now = asyncio.get_running_loop().time()
        duration = int(request.Duration)
        if request.AddrMode == t.AddrMode.Broadcast or request.Dst == COORDINATOR_NWK:
            self._permit_until[int(COORDINATOR_NWK)] = now + duration
            if request.AddrMode == t.AddrMode.Broadcast:
                for node in self.nodes.values():
                    if self.online(node) and node.switch.responsive:
                        self._permit_until[node.switch.nwk] = now + duration
            LOGGER.info("Permit join %s", f"open for {duration} s" if duration else "closed")
            answers.append(c.ZDO.MgmtPermitJoinRsp.Callback(Src=COORDINATOR_NWK, Status=t.ZDOStatus.SUCCESS))
        else:
            router = self._online_node(int(request.Dst))
            if router is None or not router.switch.responsive:
                LOGGER.info(
                    "Permit join request for 0x%04X: no answer (no such switch or silent)", request.Dst
                )
                return answers
            self._permit_until[router.switch.nwk] = now + duration
            answers.append(c.ZDO.MgmtPermitJoinRsp.Callback(Src=request.Dst, Status=t.ZDOStatus.SUCCESS))
        if duration:
            self._join_pairing_switches()
        return answers

    def _join_pairing_switches(self) -> None:
        pairing = [node for node in self.nodes.values() if node.pairing and not self.online(node)]
        for index, node in enumerate(pairing):
            self._later(JOIN_SPACING * (index + 1), functools.partial(self._try_join, node))

    def _try_join(self, node: Node) -> None:
        if node.pairing and not self.online(node) and self.permit_join_open:
            self.join(node)

    # --- the switches --------------------------------------------------------------------------

    def add_switch(self, *, pairing: bool) -> Node:
        """A new factory-fresh switch in the emulator's world (not on the network)."""
        taken = [0x0000, *(node.switch.nwk for node in self.nodes.values())]
        switch = SimulatedSwitch.create(self._rng, taken_nwks=taken)
        while switch.ieee in self.nodes:
            switch = SimulatedSwitch.create(self._rng, taken_nwks=taken)
        node = Node(switch, pairing=pairing)
        self.nodes[switch.ieee] = node
        self._changed()
        return node

    def join(self, node: Node) -> None:
        """The switch joins through a node that permits joining: TC device indication, announce."""
        parent = self._permit_parent()
        if parent is None:
            raise RuntimeError("permit join is closed")
        switch = node.switch
        taken = {n.switch.nwk for n in self.nodes.values() if n is not node and n.network is not None}
        if switch.nwk in taken:
            switch.nwk = next(
                nwk for nwk in iter(lambda: self._rng.randint(1, 0xFFF7), None) if nwk not in taken
            )
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

    def _online_node(self, nwk: int) -> Node | None:
        for node in self.nodes.values():
            if node.switch.nwk == nwk and self.online(node):
                return node
        return None

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

    def emit(self, node: Node, frames: Iterable[ApsFrame]) -> None:
        """Frames a switch sends on its own or in reply: to the host as MT callbacks."""
        switch = node.switch
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

    def _af_register(self, request: Any) -> list[Any]:
        if request.Endpoint in self._endpoints:
            return [c.AF.Register.Rsp(Status=t.Status.APS_DUPLICATE_ENTRY)]
        self._endpoints[int(request.Endpoint)] = _Endpoint(
            int(request.ProfileId),
            int(request.DeviceId),
            int(request.DeviceVersion),
            [int(cluster) for cluster in request.InputClusters],
            [int(cluster) for cluster in request.OutputClusters],
        )
        LOGGER.debug("Endpoint %d registered (profile 0x%04X)", request.Endpoint, request.ProfileId)
        return [c.AF.Register.Rsp(Status=t.Status.SUCCESS)]

    def _zdo_callback_register(self, request: Any) -> list[Any]:
        self._zdo_callbacks = True
        return [c.ZDO.MsgCallbackRegister.Rsp(Status=t.Status.SUCCESS)]

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
        if delay:
            LOGGER.info("Data confirm for TSN %d delayed by %d ms", request.TSN, round(delay * 1000))
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

    def registered_endpoint(self, endpoint: int) -> _Endpoint | None:
        """What the host registered on an endpoint."""
        return self._endpoints.get(endpoint)

    @property
    def registered_endpoints(self) -> list[int]:
        """The endpoints the host registered since the last reset."""
        return sorted(self._endpoints)


def _zcl_tsn(payload: bytes) -> int:
    offset = 3 if payload and payload[0] & 0x04 else 1  # manufacturer-specific: 2 more bytes
    return payload[offset] if len(payload) > offset else 0
