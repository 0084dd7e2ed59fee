"""The emulated CC2652's Z-Stack 3.30 core: MT commands in, MT responses and callbacks out.

`ZStackChip.frame_received()` takes one MT frame from the host (zigpy-znp) and answers the way
Z-Stack does: an SRSP for every SREQ (`RPCError.CommandNotRecognized` for the ones it does not
know), then AREQ callbacks. zigpy-znp's own command classes decode the requests and encode the
answers, so both ends speak exactly the library's idea of the protocol. zigbee-herdsman
(Zigbee2MQTT's `zstack` adapter) is served too; the few requests it sends that zigpy-znp has no
fitting class for are answered from their bytes (`raw_frames`). This part is the chip:
SYS, UTIL and NV commands, resets, forming and resuming the network, permit join, endpoint and
callback registration, faults, and the state file. `firmware.ZStackFirmware` adds the radio side:
the switches and the AF/ZDO data path.

What the chip keeps over a power cycle is in `nvram` (and the state file); what it forgets on a
reset is volatile here: the registered endpoints, the ZDO callback registration, permit join, the
running network. Modelling choices:

- Start-up answers are those of a Z-Stack 3.30 build (CodeRevision 20230507, aligned structs),
  which zigpy-znp 1.1.1 detects as "CC2652, Z-Stack 3.30". The firmware's identity (version
  answer, capabilities, struct layout, NVRAM layout) is in class attributes, so that
  `firmware12.ZStack12Firmware` is the same chip with Z-Stack Home 1.2's facts.
- Forming picks the first channel of the BDB primary channel mask; no energy scan.
- A reset (requested or a fault) keeps the network (it is in NVRAM) and restarts it at once if
  one was running, but drops the volatile registrations: a host that does not register its
  endpoints again receives nothing, as with the real stack.
- The switches, permit join and the air are the shared `sim.world.SimulatedWorld`; this chip is
  its Z-Stack front-end (`world.Coordinator`). A chip set up before its event loop runs starts
  the switches' timers when a host connects.
"""

# zigpy's and zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

import zigpy.zdo.types as zdo_t
import zigpy_znp.commands as c
import zigpy_znp.types as t
from zigpy_znp.frames import GeneralFrame
from zigpy_znp.types.nvids import ExNvIds, OsalNvIds

from z2m_qbkg40lm.sim.chip_state import ChipStateFile
from z2m_qbkg40lm.sim.coordinator_zdo import COORDINATOR_NODE_DESCRIPTOR, RegisteredEndpoint, channel_list
from z2m_qbkg40lm.sim.emulated_chip import Faults
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.world import DEFAULT_LINKQUALITY, Node, SimulatedWorld
from z2m_qbkg40lm.sim.znp import nvcommands
from z2m_qbkg40lm.sim.znp import nvram as nv
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

__all__ = ["DEFAULT_LINKQUALITY", "Faults", "Link", "Node", "RegisteredEndpoint", "ZStackChip"]


class Link(Protocol):
    """The serial line to the host: a TCP connection or a pseudo-terminal."""

    def send(self, frame: GeneralFrame) -> None:
        """Frame and write one MT frame."""

    def close(self) -> None:
        """Cut the line (the host sees its connection lost)."""


class ZStackChip:
    """Z-Stack 3.30 on an emulated CC2652: everything but the radio (see `ZStackFirmware`)."""

    CHIP: str = "CC2652"
    FIRMWARE: str = "Z-Stack 3.30"
    """Named in the state file: a file of one firmware is refused by the other."""
    VERSION: dict[str, int] = VERSION
    BUILD_ID: int = BUILD_ID
    CAPABILITIES: t.MTCapabilities = CAPABILITIES
    NVRAM: type[Nvram] = Nvram
    ASSOC_DEVICE_SIZE: int = 36
    """`UTIL.AssocFindDevice` answers the in-memory struct: its size tells the struct alignment."""
    RESUMES_AFTER_RESET: bool = True
    """Whether a reset restarts a running network by itself (or waits for the host to start it)."""

    def __init__(
        self,
        state_file: Path | None = None,
        *,
        switches: int = 0,
        linkquality: int = DEFAULT_LINKQUALITY,
        rng: random.Random | None = None,
    ) -> None:
        self._state = ChipStateFile(state_file, self._snapshot)
        self._rng = rng or random.Random()
        self.world = SimulatedWorld(self, linkquality=linkquality, rng=self._rng)
        self.faults = Faults()
        self._link: Link | None = None
        self._saved_changes = -1
        # Volatile state: lost on every reset.
        self._endpoints: dict[int, RegisteredEndpoint] = {}
        self._zdo_callbacks = False
        self._zdo_tsn = 0
        self._network_up = False
        self._bdb_channels = {True: t.Channels.NO_CHANNELS, False: t.Channels.NO_CHANNELS}
        self._load(switches)
        self._handlers: dict[type, Callable[[Any], list[Any]]] = self._handler_table()
        self._raw_handlers: dict[int, Callable[[bytes], list[Any]]] = {
            int(header): handler for header, handler in self._raw_handler_table().items()
        }

    # --- state file ----------------------------------------------------------------------------

    def _load(self, switches: int) -> None:
        data = self._state.read()
        if data is not None and data.get("version") != nv.FILE_VERSION:
            raise ValueError(
                f"{self._state.path}: not a Z-Stack emulator state file of version {nv.FILE_VERSION}"
            )
        # Files from before Z-Stack 1.2 was emulated name no firmware: they are Z-Stack 3.30's.
        firmware = ZStackChip.FIRMWARE if data is None else data.get("firmware", ZStackChip.FIRMWARE)
        if data is not None and firmware != self.FIRMWARE:
            raise ValueError(
                f"{self._state.path}: the NVRAM of a {firmware} chip, not of {self.FIRMWARE}"
                " (the two lay out their NVRAM differently)"
            )
        if data is None:
            self.chip_ieee = nv.random_chip_ieee(self._rng)
            self.nvram = self.NVRAM.factory(self.chip_ieee, self._rng)
            for _ in range(switches):
                self.world.add_switch(pairing=True)
            LOGGER.info(
                "Factory-new %s (%s) %s with %d switch(es) in pairing mode",
                self.CHIP,
                self.FIRMWARE,
                self.chip_ieee,
                switches,
            )
            self.save()
            return
        try:
            self.chip_ieee = t.EUI64.convert(data["chip_ieee"])
            self.nvram = self.NVRAM.from_json(data["nvram"])
            # Items Z-Stack recreates when it boots (older state files lack NWKKEY, say).
            self.nvram.restore_factory(self.chip_ieee, self._rng, config=False, state=False)
            self.world.load(data.get("switches", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"emulator state file {self._state.path} cannot be used: {exc}") from exc
        self._saved_changes = self.nvram.changes
        LOGGER.info(
            "%s (%s) %s loaded from %s: %s, %d switch(es)",
            self.CHIP,
            self.FIRMWARE,
            self.chip_ieee,
            self._state.path,
            "network formed" if self.formed else "no network",
            len(self.world.nodes),
        )

    def _snapshot(self) -> dict[str, Any]:
        self._saved_changes = self.nvram.changes
        return {
            "version": nv.FILE_VERSION,
            "firmware": self.FIRMWARE,
            "chip_ieee": str(self.chip_ieee),
            "nvram": self.nvram.to_json(),
            "switches": self.world.records(),
        }

    def save(self) -> None:
        """Write the state file now (atomically)."""
        self._state.save()

    def _changed(self) -> None:
        """Save soon: zigpy-znp writes hundreds of NV items in a row at start-up."""
        self._state.soon()

    # The radio side (`ZStackFirmware`) tells the host of the world's events.

    def device_joined(self, node: Node, parent: int) -> None:
        """Hook: a switch joined through `parent`."""

    def device_left(self, node: Node) -> None:
        """Hook: a switch left the running network."""

    def frame_from_air(self, src: int, frame: ApsFrame) -> None:
        """Hook: a frame from a switch reached the coordinator."""

    def state_changed(self, *, membership: bool = False) -> None:
        """The world changed: save soon, or now when switches joined or left."""
        self._state.changed(membership=membership)

    def close(self) -> None:
        """Stop timers (the switches' too: OTA transfers are abandoned) and save; the link is the caller's."""
        self.world.close()
        self.save()

    # --- the link --------------------------------------------------------------------------------

    def attach(self, link: Link) -> None:
        """A host connected (a previous one is cut: the chip has one serial port)."""
        if self._link is not None and self._link is not link:
            LOGGER.warning("A new host connected: closing the previous connection")
            self._link.close()
        self._link = link
        self.world.attach_switches()

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
        self._link.send(command.to_frame(align=self.nvram.aligned))

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run `callback` after `delay` seconds (0: on the next loop iteration), cancelled by close()."""
        self.world.later(delay, callback)

    # --- MT frames in ----------------------------------------------------------------------------

    def frame_received(self, frame: GeneralFrame) -> None:
        """One MT frame from the host."""
        if self.faults.muted:
            LOGGER.debug("Muted, ignoring %s", frame)
            return
        raw_handler = self._raw_handlers.get(int(frame.header))
        if raw_handler is not None:
            replies = self._handle_raw(raw_handler, frame)
        else:
            decoded = self._handle_decoded(frame)
            if decoded is None:
                return
            replies = decoded
        for reply in replies:
            self._send(reply)
        if self.nvram.changes != self._saved_changes:
            self._changed()

    def _handle_decoded(self, frame: GeneralFrame) -> list[Any] | None:
        """A request decoded by zigpy-znp's command classes and answered by its handler; None when
        it was answered with an error (unknown, malformed or not implemented)."""
        command_type = c.COMMANDS_BY_ID.get(frame.header)
        if command_type is None or command_type.Req is not command_type:
            LOGGER.info("Unknown MT command %s: CommandNotRecognized", frame)
            self._not_recognized(frame)
            return None
        try:
            request = command_type.from_frame(frame, align=self.nvram.aligned)
        except ValueError as exc:
            LOGGER.warning("Malformed %s from the host: %s", command_type.__qualname__, exc)
            self._not_recognized(frame, c.rpc_error.ErrorCode.InvalidLength)
            return None
        LOGGER.debug("<- %s", request)
        handler = self._handlers.get(command_type)
        if handler is None:
            LOGGER.info("Z-Stack does not implement %s here: CommandNotRecognized", command_type.__qualname__)
            self._not_recognized(frame)
            return None
        try:
            return handler(request)
        except Exception:
            # A bug here must not take the serial line down: answer as Z-Stack does to the unknown.
            LOGGER.exception("Emulating %s failed", request)
            self._not_recognized(frame)
            return []

    def _handle_raw(self, handler: Callable[[bytes], list[Any]], frame: GeneralFrame) -> list[Any]:
        """A request zigpy-znp has no (fitting) class for, handled from its bytes."""
        LOGGER.debug("<- %s", frame)
        try:
            return handler(bytes(frame.data))
        except (IndexError, ValueError) as exc:
            LOGGER.warning("Malformed MT request %s from the host: %s", frame, exc)
            self._not_recognized(frame, c.rpc_error.ErrorCode.InvalidLength)
        except Exception:
            LOGGER.exception("Emulating %s failed", frame)
            self._not_recognized(frame)
        return []

    def _not_recognized(
        self, frame: GeneralFrame, code: Any = c.rpc_error.ErrorCode.InvalidCommandId
    ) -> None:
        if frame.header.type != t.CommandType.SREQ:
            return  # only synchronous requests get an error answer
        self._send(c.RPCError.CommandNotRecognized.Rsp(ErrorCode=code, RequestHeader=frame.header))

    def _raw_handler_table(self) -> dict[t.CommandHeader, Callable[[bytes], list[Any]]]:
        """Requests handled from their bytes (MT header -> handler): SAPI's configuration commands."""
        return {
            t.CommandHeader(0, id=command_id, subsystem=t.Subsystem.SAPI, type=t.CommandType.SREQ): handler
            for command_id, handler in nvcommands.sapi_handlers(self.nvram).items()
        }

    def _handler_table(self) -> dict[type, Callable[[Any], list[Any]]]:
        return {
            c.SYS.Ping.Req: lambda _req: [c.SYS.Ping.Rsp(Capabilities=self.CAPABILITIES)],
            c.SYS.Version.Req: lambda _req: [self._version()],
            c.SYS.ResetReq.Req: self._reset_request,
            c.SYS.GetExtAddr.Req: lambda _req: [c.SYS.GetExtAddr.Rsp(ExtAddr=self.ieee)],
            c.SYS.SetTxPower.Req: lambda _req: [c.SYS.SetTxPower.Rsp(StatusOrPower=t.Status.SUCCESS)],
            **nvcommands.handlers(self.nvram),
            c.UTIL.AssocFindDevice.Req: self._assoc_find_device,
            c.UTIL.AssocRemove.Req: lambda _req: [c.UTIL.AssocRemove.Rsp(Status=t.Status.SUCCESS)],
            c.UTIL.AssocAdd.Req: lambda _req: [c.UTIL.AssocAdd.Rsp(Status=t.Status.SUCCESS)],
            c.UTIL.LEDControl.Req: lambda _req: [c.UTIL.LEDControl.Rsp(Status=t.Status.SUCCESS)],
            c.AppConfig.BDBSetChannel.Req: self._bdb_set_channel,
            c.AppConfig.BDBStartCommissioning.Req: self._bdb_start_commissioning,
            c.ZDO.StartupFromApp.Req: self._startup_from_app,
            c.AF.Register.Req: self._af_register,
            c.ZDO.MsgCallbackRegister.Req: self._zdo_callback_register,
            c.ZDO.MgmtPermitJoinReq.Req: self._mgmt_permit_join,
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
            **self.VERSION,
            CodeRevision=self.BUILD_ID,
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
            cleared = [name for name, flag in (("settings", clear_config), ("network", clear_state)) if flag]
            LOGGER.info("Start-up options %s: clearing the %s", options, " and the ".join(cleared))
        self.nvram.restore_factory(self.chip_ieee, self._rng, config=clear_config, state=clear_state)
        self.nvram.store(OsalNvIds.STARTUP_OPTION, t.StartupOptions.NONE)
        was_up = self._network_up and not clear_state
        self._endpoints.clear()
        self._zdo_callbacks = False
        self.world.forget_permits()
        self._set_network_up(False)
        self.save()
        answers: list[Any] = [c.SYS.ResetInd.Callback(Reason=reason, **self.VERSION)]
        if was_up and self.formed and self.RESUMES_AFTER_RESET:
            self._set_network_up(True)
            answers.append(c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartedAsCoordinator))
        return answers

    def spontaneous_reset(self) -> None:
        """Fault: the chip reboots on its own (a watchdog reset)."""
        LOGGER.warning("Fault: the coordinator resets (watchdog)")
        for reply in self.reset(t.ResetReason.Watchdog):
            self._send(reply)

    def failure_status(self, status: str | int) -> t.Status:
        """A Z-Stack status a data confirm can fail with, by name or number."""
        try:
            value = t.Status[status] if isinstance(status, str) else t.Status(status)
        except (KeyError, ValueError):
            raise ValueError(
                f"unknown Z-Stack status {status!r};"
                " e.g. MAC_NO_ACK (233), NWK_NO_ROUTE (205), APS_NO_ACK (183)"
            ) from None
        if value == t.Status.SUCCESS:
            raise ValueError("SUCCESS is not a failure; send null to stop failing confirms")
        return value

    def spoil_frames(
        self, *, corrupt_to_host: int = 0, lose_to_host: int = 0, lose_from_host: int = 0
    ) -> None:
        """MT has no acknowledgements or retransmission: a spoiled frame is just lost, and the
        mute and delay faults show that already."""
        raise ValueError(
            "the Z-Stack emulator's serial line (MT) has no retransmission to show; line faults are "
            "the EmberZNet emulator's (ASH); use fault/mute or fault/delay_confirms here"
        )

    def _assoc_find_device(self, request: Any) -> list[Any]:
        # The answer is the in-memory struct: 36 bytes tell the host the structs are aligned, 28
        # (packed, and without the last member Z-Stack 3.30 added) that they are not.
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
        data = empty.serialize(align=self.nvram.aligned)[: self.ASSOC_DEVICE_SIZE]
        return [c.UTIL.AssocFindDevice.Rsp(Device=t.Bytes(data))]

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
        return nib_has_network(nib) and on_network == 1

    @property
    def network_up(self) -> bool:
        """True while the coordinator runs its network."""
        return self._network_up

    def _set_network_up(self, up: bool) -> None:
        self._network_up = up
        if not up:
            self.world.network_down()
            return
        try:
            key: bytes | None = bytes(self.nvram.read(OsalNvIds.NWK_ACTIVE_KEY_INFO, t.NwkKeyDesc).Key)
        except KeyError:
            key = None
        self.world.network_up(self.nib.extendedPANID, self.nib.nwkPanId, key)

    @property
    def node_descriptor(self) -> zdo_t.NodeDescriptor:
        """What the coordinator answers to Node_Desc_req."""
        return COORDINATOR_NODE_DESCRIPTOR

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
            self._resume()
            return [
                *answers,
                c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartingAsCoordinator),
                c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartedAsCoordinator),
                notification(
                    Status=status.FormationFailure, Mode=modes.NwkFormation, RemainingModes=modes.NONE
                ),
            ]
        self._form(self._bdb_channels[True] or self.nvram.read(OsalNvIds.CHANLIST, t.Channels))
        return [
            *answers,
            notification(
                Status=status.InProgress, Mode=modes.NwkFormation, RemainingModes=modes.NwkFormation
            ),
            c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartingAsCoordinator),
            c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartedAsCoordinator),
            notification(Status=status.Success, Mode=modes.NwkFormation, RemainingModes=modes.NONE),
        ]

    def _startup_from_app(self, request: Any) -> list[Any]:
        """Start as the NVRAM says: resume its network, or form one from the NV settings.

        zigbee-herdsman's way to start a commissioned coordinator (zigpy-znp uses BDB
        commissioning even to resume); it waits for the state change to "started as coordinator".
        """
        states = c.zdo.StartupState
        started = c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartedAsCoordinator)
        if self._network_up:
            return [c.ZDO.StartupFromApp.Rsp(State=states.RestoredNetworkState), started]
        if self.formed:
            self._resume()
            state = states.RestoredNetworkState
        else:
            self._form(self.nvram.read(OsalNvIds.CHANLIST, t.Channels))
            state = states.NewNetworkState
        return [
            c.ZDO.StartupFromApp.Rsp(State=state),
            c.ZDO.StateChangeInd.Callback(State=t.DeviceState.StartingAsCoordinator),
            started,
        ]

    def _resume(self) -> None:
        """Start the network the NVRAM holds."""
        nib = self.nib
        LOGGER.info(
            "Network resumed: channel %d, PAN id 0x%04X, extended PAN id %s",
            nib.nwkLogicalChannel,
            nib.nwkPanId,
            nib.extendedPANID,
        )
        self._set_network_up(True)

    def _form(self, mask: t.Channels) -> None:
        """Form a new network from the configured PAN ids and key, on the first channel of `mask`."""
        nvram = self.nvram
        channels = channel_list(mask)
        channel = channels[0] if channels else 11
        pan_id = int(nvram.read(OsalNvIds.PANID, t.uint16_t))
        if pan_id in (0xFFFF, 0xFFFE, 0x0000):
            pan_id = self._rng.randint(0x0001, 0xFFF7)
        ext_pan_id = nvram.read(OsalNvIds.APS_USE_EXT_PANID, t.EUI64)
        if ext_pan_id in (nv.ZERO_IEEE, nv.UNSET_IEEE):
            ext_pan_id = self.ieee
        # The preconfigured key becomes the network key whether or not PRECFGKEYS_ENABLE is set:
        # that flag only says whether joiners already have it (zigbee-herdsman leaves it off).
        try:
            key = nvram.read(OsalNvIds.PRECFGKEY, t.KeyData)
        except KeyError:
            key = None
        if key is None or key == t.KeyData(bytes(16)):
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
        nvram.store(OsalNvIds.NWKKEY, t.NwkActiveKeyItems(Active=key_desc, FrameCounter=0))
        self._store_formed(ext_pan_id, key_desc)
        self._set_network_up(True)
        LOGGER.info(
            "Network formed: channel %d, PAN id 0x%04X, extended PAN id %s", channel, pan_id, ext_pan_id
        )
        self.save()

    def _store_formed(self, ext_pan_id: t.EUI64, key: t.NwkKeyDesc) -> None:
        """What else Z-Stack 3.30 writes on forming: BDB's on-a-network flag, the frame counter."""
        self.nvram.store(OsalNvIds.BDBNODEISONANETWORK, t.uint8_t(1))
        self.nvram.store_entry(
            int(ExNvIds.NWK_SEC_MATERIAL_TABLE),
            0,
            t.NwkSecMaterialDesc(FrameCounter=0, ExtendedPanID=ext_pan_id),
        )

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

    def _mgmt_permit_join(self, request: Any) -> list[Any]:
        answers: list[Any] = [c.ZDO.MgmtPermitJoinReq.Rsp(Status=t.Status.SUCCESS)]
        duration = int(request.Duration)
        if request.AddrMode == t.AddrMode.Broadcast or request.Dst == COORDINATOR_NWK:
            if request.AddrMode == t.AddrMode.Broadcast:
                self.world.permit_everywhere(duration)
            else:
                self.world.permit(int(COORDINATOR_NWK), duration)
            LOGGER.info("Permit join %s", f"open for {duration} s" if duration else "closed")
            answers.append(c.ZDO.MgmtPermitJoinRsp.Callback(Src=COORDINATOR_NWK, Status=t.ZDOStatus.SUCCESS))
        else:
            router = self.world.online_node(int(request.Dst))
            if router is None or not router.switch.responsive:
                LOGGER.info(
                    "Permit join request for 0x%04X: no answer (no such switch or silent)", request.Dst
                )
                return answers
            self.world.permit(router.switch.nwk, duration)
            answers.append(c.ZDO.MgmtPermitJoinRsp.Callback(Src=request.Dst, Status=t.ZDOStatus.SUCCESS))
        return answers

    def _af_register(self, request: Any) -> list[Any]:
        if request.Endpoint in self._endpoints:
            return [c.AF.Register.Rsp(Status=t.Status.APS_DUPLICATE_ENTRY)]
        self._endpoints[int(request.Endpoint)] = RegisteredEndpoint(
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

    def registered_endpoint(self, endpoint: int) -> RegisteredEndpoint | None:
        """What the host registered on an endpoint."""
        return self._endpoints.get(endpoint)

    @property
    def registered_endpoints(self) -> list[int]:
        """The endpoints the host registered since the last reset."""
        return sorted(self._endpoints)


def nib_has_network(nib: t.NIB) -> bool:
    """A NIB with a channel and a network key: what any Z-Stack keeps of a formed network."""
    return nib.nwkLogicalChannel != 0 and bool(nib.nwkKeyLoaded)
