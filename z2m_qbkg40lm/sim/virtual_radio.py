"""The `virtual` adapter: a zigpy radio whose network is simulated QBKG40LM switches.

`VirtualControllerApplication` is a complete zigpy radio library in one class: zigpy's own
stack (interview, ZCL, database, backups) runs unchanged, and every frame it sends to a switch
is handed, as bytes, to that switch's `SimulatedSwitch` firmware model; the answers come back
through `packet_received()` like frames from a real coordinator. Users pick it with
`serial: {adapter: virtual}` to try the daemon, develop automations or test deployments.

Configuration (the zigpy configuration dictionary, next to `device`, `database_path`, ...)::

    virtual:
      switches: 1          # pre-paired switches created on the first start (>= 0)
      state_file: null     # JSON file keeping the network and the switches; null = in memory
      linkquality: 160     # LQI of every frame the switches send (0-255)
      variant: full        # descriptor of new switches: "full" or "fingerprint"

On the first start the switches are created and "already paired": once `initialize()` is done,
each switch zigpy does not know announces itself and zigpy interviews it; at most 32 interviews
are under way at a time (sim/join_window.py), the next switch announcing as zigpy finishes one.
With a state file, a restart with the same file and database resumes the same network (the file
plays the radio's NVRAM) and the same switches, which zigpy already knows: nothing joins again.
The state file is authoritative once it exists: `switches` only sizes the first start. Without a
state file the network still resumes from zigpy's database backup, but new switches are created at
every start.

The state file is written at once when the network is formed or reset and when a switch joins or
leaves; a switch's own state (relay, counters, settings written over Zigbee) at most once a
second (`SAVE_INTERVAL`), and always on `disconnect()`: a `kill -9` loses at most the last second
of relay changes and presses, a clean stop nothing.

`app.simulation` is the scripting API (`Simulation`): presses, heartbeats, power cycles,
silent switches, new joins and the switches' firmware settings (sim/firmware_settings.py), as the
daemon exposes them to users; and for the switches' OTA clients (sim/ota_client.py) a query, their
status, their timing and injected faults.

A switch that leaves the network, told to (Mgmt_Leave_req) or on its own (its prevent-reset
report left unanswered, sim/prevent_reset.py), is gone from the simulated network and the state
file, and zigpy sees it leave.

While connected, every switch has a link to the adapter (`SimulatedSwitch.attach`): frames it
sends on its own later (OTA requests, the reboot after an upgrade) reach zigpy like its answers,
and its timers belong to the adapter, which cancels them all on `disconnect()` (a transfer in
progress is abandoned; the switch keeps its old firmware).
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import voluptuous as vol
import zigpy.application
import zigpy.config
import zigpy.device
import zigpy.endpoint
import zigpy.exceptions
import zigpy.state
import zigpy.types as t
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.atomic_file import write_atomically
from z2m_qbkg40lm.devices.qbkg40lm import SWITCH_ENDPOINT
from z2m_qbkg40lm.sim import inspection
from z2m_qbkg40lm.sim.firmware_settings import FirmwareSettingError, firmware_request
from z2m_qbkg40lm.sim.frames import ZDO_ENDPOINT, ZDO_PROFILE, ApsFrame
from z2m_qbkg40lm.sim.heartbeat_stream import next_temperature
from z2m_qbkg40lm.sim.join_window import JoinWindow
from z2m_qbkg40lm.sim.neighbours import neighbours_body
from z2m_qbkg40lm.sim.ota_client import OtaFault, Timer, TimerSet
from z2m_qbkg40lm.sim.state_file import StateFileText
from z2m_qbkg40lm.sim.switch import MODEL_ID, VARIANTS, SimulatedSwitch, Variant

LOGGER = logging.getLogger(__name__)

CONF_VIRTUAL: Final = "virtual"
CONF_SWITCHES: Final = "switches"
CONF_STATE_FILE: Final = "state_file"
CONF_LINKQUALITY: Final = "linkquality"
CONF_VARIANT: Final = "variant"
DEFAULT_LINKQUALITY: Final = 160

VIRTUAL_SCHEMA: Final = vol.Schema(
    {
        vol.Optional(CONF_SWITCHES, default=1): vol.All(int, vol.Range(min=0)),
        vol.Optional(CONF_STATE_FILE, default=None): vol.Any(None, str),
        vol.Optional(CONF_LINKQUALITY, default=DEFAULT_LINKQUALITY): vol.All(int, vol.Range(min=0, max=255)),
        vol.Optional(CONF_VARIANT, default="full"): vol.In(VARIANTS),
    }
)

STATE_FILE_VERSION: Final = 1
COORDINATOR_MANUFACTURER: Final = "z2m-qbkg40lm"
COORDINATOR_MODEL: Final = "Virtual coordinator"
NETWORK_SOURCE: Final = "z2m_qbkg40lm virtual adapter"
SAVE_INTERVAL: Final = 1.0
"""Seconds a switch's own state (relay, counters, settings) may wait before the state file is
written: one write then carries every change of that second, and takes the records of only the
switches that had a frame (sim/state_file.py). Joins, leaves and the network are written at once."""
_UNKNOWN_IEEE: Final[t.EUI64] = t.EUI64.convert("ff:ff:ff:ff:ff:ff:ff:ff")

# Aqara devices enable their full behaviour only when the coordinator's node descriptor carries
# Lumi's manufacturer code (qbkg40lm-zigbee.md §9.4), so the virtual coordinator does.
COORDINATOR_NODE_DESCRIPTOR: Final = zdo_t.NodeDescriptor(
    logical_type=zdo_t.LogicalType.Coordinator,
    complex_descriptor_available=0,
    user_descriptor_available=0,
    reserved=0,
    aps_flags=0,
    frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
    mac_capability_flags=zdo_t.NodeDescriptor.MACCapabilityFlags(0x8F),
    manufacturer_code=0x115F,
    maximum_buffer_size=82,
    maximum_incoming_transfer_size=128,
    server_mask=0x2C41,  # trust centre, network manager, stack compliance revision 22
    maximum_outgoing_transfer_size=128,
    descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability.NONE,
)


class SimulationError(ValueError):
    """A simulation request that cannot be done; the message says why and what would work."""


class VirtualCoordinator(zigpy.device.ZigbeeDevice):
    """The coordinator as a zigpy device: fixed names, endpoints registered by zigpy."""

    @property
    def manufacturer(self) -> str:
        """Basic manufacturer name of the coordinator."""
        return COORDINATOR_MANUFACTURER

    @manufacturer.setter
    def manufacturer(self, value: Any) -> None:
        """The names are fixed; zigpy's setter calls are ignored."""

    @property
    def model(self) -> str:
        """Basic model identifier of the coordinator."""
        return COORDINATOR_MODEL

    @model.setter
    def model(self, value: Any) -> None:
        """The names are fixed; zigpy's setter calls are ignored."""


def _transaction_number(frame: ApsFrame) -> int:
    """The ZDO or ZCL transaction sequence number of a frame (0 when it has none)."""
    payload = frame.payload
    if frame.is_zdo:
        return payload[0] if payload else 0
    offset = 3 if payload and payload[0] & 0x04 else 1  # manufacturer-specific: 2 more bytes
    return payload[offset] if len(payload) > offset else 0


class _RadioLink:
    """A switch's link to the virtual adapter: its own frames go to zigpy, its timers are the adapter's."""

    def __init__(self, app: VirtualControllerApplication, switch: SimulatedSwitch) -> None:
        self._app = app
        self._switch = switch

    def send(self, frames: list[ApsFrame]) -> None:
        self._app._send_own(self._switch, frames)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self._app._timers.call_later(delay, callback)


class VirtualControllerApplication(zigpy.application.ControllerApplication):
    """A zigpy radio simulating a coordinator and QBKG40LM switches in process.

    Implements zigpy's radio contract: the network settings live in memory or in the state file
    ("NVRAM"), frames to switches go to their firmware models, answers arrive through
    `packet_received()` after `send_packet()` returned, as from real hardware.
    """

    SCHEMA = zigpy.config.CONFIG_SCHEMA.extend({vol.Optional(CONF_VIRTUAL, default={}): VIRTUAL_SCHEMA})
    DISPLAY_NAME = "Virtual"
    DESCRIPTION = "Simulated coordinator with simulated Aqara QBKG40LM switches, in process"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        virtual = self.config[CONF_VIRTUAL]
        state_file = virtual[CONF_STATE_FILE]
        self._state_file: Path | None = None if state_file is None else Path(state_file)
        self._initial_switches: int = virtual[CONF_SWITCHES]
        self._linkquality: int = virtual[CONF_LINKQUALITY]
        self._variant: Variant = "fingerprint" if virtual[CONF_VARIANT] == "fingerprint" else "full"
        self._rng = random.Random()
        self._loaded = False
        self._connected = False
        self._coordinator_ieee = _UNKNOWN_IEEE
        self._network: tuple[zigpy.state.NetworkInfo, zigpy.state.NodeInfo] | None = None
        self._switches: dict[t.EUI64, SimulatedSwitch] = {}
        self._saved: str | None = None
        self._records = StateFileText()
        self._touched: set[SimulatedSwitch] = set()  # with a frame or an action since the last save
        self._save_handle: asyncio.TimerHandle | None = None
        self._by_nwk: dict[int, SimulatedSwitch] = {}  # an index of `_switches`, mended when stale
        self._permit_until: dict[int, float] = {}
        self._outbox: deque[Callable[[], None]] = deque()
        self._flush_handle: asyncio.Handle | None = None
        self._timers = TimerSet()
        self._joining: JoinWindow[tuple[SimulatedSwitch, list[ApsFrame]]] = JoinWindow(
            self._announce, self._timers.call_later
        )
        self.simulation = Simulation(self)

    # --- properties the simulation and tests read --------------------------------------------

    @property
    def linkquality(self) -> int:
        """The LQI every frame from a simulated switch arrives with."""
        return self._linkquality

    @property
    def simulated_switches(self) -> list[SimulatedSwitch]:
        """The switches on the simulated network, in joining order."""
        return list(self._switches.values())

    @property
    def permit_join_open(self) -> bool:
        """True while the coordinator or any simulated router admits joining devices."""
        now = asyncio.get_running_loop().time()
        return any(deadline > now for deadline in self._permit_until.values())

    # --- zigpy's radio contract -------------------------------------------------------------------

    async def connect(self) -> None:
        """Load the state file (the radio's NVRAM), or create the first switches."""
        if not self._loaded:
            self._load_state()
            self._loaded = True
        self._connected = True
        for switch in self._switches.values():
            switch.attach(_RadioLink(self, switch))

    async def disconnect(self) -> None:
        """Stop the switches' timers, drop undelivered frames and save the state (changes waiting
        for `SAVE_INTERVAL` included: a clean stop loses nothing)."""
        for switch in self._switches.values():
            switch.attach(None)
        self._joining.clear()
        self._timers.cancel_all()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._outbox.clear()
        if self._connected or self._save_handle is not None:
            self._save_state()
        self._connected = False

    async def start_network(self) -> None:
        """Bring up the coordinator device with its node descriptor and endpoints."""
        await self.load_network_info(load_devices=False)
        node_info = self.state.node_info
        coordinator = VirtualCoordinator(self, node_info.ieee, node_info.nwk)
        coordinator.node_desc = COORDINATOR_NODE_DESCRIPTOR
        self.devices[node_info.ieee] = coordinator
        await self.register_endpoints()
        # Complete as a real radio's loopback interview would: zigpy saves the device now, before
        # it stores the coordinator's model strings (whose rows need the device row).
        self.device_initialized(coordinator)

    async def initialize(self, *, auto_form: bool = False) -> None:
        """zigpy's start-up, then the announcements of switches zigpy does not know yet."""
        await super().initialize(auto_form=auto_form)
        announced = False
        for switch in self.simulated_switches:
            device = self.devices.get(switch.ieee)
            known = isinstance(device, zigpy.device.ZigbeeDevice) and device.is_initialized
            if known and device is not None and device.nwk == switch.nwk:
                continue
            if not switch.responsive:
                LOGGER.warning("Simulated switch %s is silent: it cannot announce itself", switch.ieee)
                continue
            # Joined now (and written at once, below); the announcements go out a window at a time.
            self._joining.add(switch.ieee, (switch, switch.announce()))
            announced = True
        if announced:
            self._save_state()  # they joined (`joined` is set): a join is written at once

    def _announce(self, announcement: tuple[SimulatedSwitch, list[ApsFrame]]) -> bool:
        """A pre-paired switch's turn (JoinWindow): its announcement goes to zigpy (False: not sent)."""
        switch, frames = announcement
        if not self._connected or self._switches.get(switch.ieee) is not switch:
            return False  # stopped, or gone meanwhile
        if not switch.responsive:
            LOGGER.warning("Simulated switch %s is silent: it cannot announce itself", switch.ieee)
            return False
        LOGGER.info("Pre-paired simulated switch %s announces itself", self._ieee_text(switch))
        self._deliver_now(switch, frames)
        return True

    def listener_event(self, method_name: str, *args: Any) -> list[Any]:
        """zigpy's events to its listeners; an interview's end also frees a slot of the join window."""
        result: list[Any] = super().listener_event(method_name, *args)
        if method_name in ("device_initialized", "device_init_failure") and args:
            self._joining.settled(getattr(args[0], "ieee", None))
        return result

    async def force_remove(self, dev: zigpy.device.BaseDevice) -> None:
        """A forced leave: the simulated switch is gone from the network and the state file."""
        switch = self._switches.pop(dev.ieee, None)
        if switch is not None:
            switch.attach(None)
            LOGGER.info("Simulated switch %s removed", self._ieee_text(switch))
            self._save_state()

    async def add_endpoint(self, descriptor: zdo_t.SimpleDescriptor) -> None:
        """Give the coordinator device the endpoint zigpy registers."""
        endpoint = self._device.add_endpoint(descriptor.endpoint)
        endpoint.profile_id = descriptor.profile
        device_type: Any = descriptor.device_type
        endpoint.device_type = device_type
        endpoint.status = zigpy.endpoint.Status.ZDO_INIT
        for cluster_id in descriptor.input_clusters:
            endpoint.add_input_cluster(cluster_id)
        for cluster_id in descriptor.output_clusters:
            endpoint.add_output_cluster(cluster_id)

    async def permit_ncp(self, time_s: int = 60) -> None:
        """Open (or with 0, close) joining at the coordinator for `time_s` seconds."""
        self._permit_until[0x0000] = asyncio.get_running_loop().time() + time_s

    async def permit_with_link_key(self, node: t.EUI64, link_key: t.KeyData, time_s: int = 60) -> None:
        """Install codes mean nothing here: joining simply opens, as with `permit_ncp`."""
        await self.permit_ncp(time_s)

    async def write_network_info(
        self, *, network_info: zigpy.state.NetworkInfo, node_info: zigpy.state.NodeInfo
    ) -> None:
        """Store the network settings in the "NVRAM" (memory and the state file)."""
        if node_info.ieee == _UNKNOWN_IEEE:
            node_info = node_info.replace(ieee=self._coordinator_ieee)
        else:
            self._coordinator_ieee = node_info.ieee
        # zigpy's form_network() passes plain ints, which its backup JSON writes as "".
        node_info = node_info.replace(nwk=t.NWK(node_info.nwk))
        network_info = network_info.replace(pan_id=t.PanId(network_info.pan_id), source=NETWORK_SOURCE)
        if network_info.tc_link_key.partner_ieee == _UNKNOWN_IEEE:
            network_info = network_info.replace(
                tc_link_key=network_info.tc_link_key.replace(partner_ieee=node_info.ieee)
            )
        self._network = (network_info, node_info)
        self._save_state()

    async def load_network_info(self, *, load_devices: bool = False) -> None:
        """Load the stored network settings into `self.state`, or raise NetworkNotFormed."""
        if self._network is None:
            raise zigpy.exceptions.NetworkNotFormed("the virtual adapter has no network yet")
        network_info, node_info = self._network
        if load_devices:
            network_info = network_info.replace(
                nwk_addresses={switch.ieee: t.NWK(switch.nwk) for switch in self.simulated_switches}
            )
        self.state.network_info = network_info
        self.state.node_info = node_info

    async def reset_network_info(self) -> None:
        """Leave the network: the stored settings are erased (the switches stay in the file)."""
        self._network = None
        self._save_state()

    async def energy_scan(self, channels: t.Channels, duration_exp: int, count: int) -> dict[int, float]:
        """Every channel is equally quiet in a simulation."""
        return dict.fromkeys(channels, 0.0)

    async def send_packet(self, packet: t.ZigbeePacket) -> None:
        """Hand a frame to the simulated switch it is for; answers follow after this returns."""
        if not self._connected:
            raise zigpy.exceptions.DeliveryError("the virtual adapter is not connected")
        assert packet.dst is not None
        dst = packet.dst
        frame = ApsFrame(
            src_endpoint=int(packet.src_ep or 0),
            dst_endpoint=int(packet.dst_ep if packet.dst_ep is not None else SWITCH_ENDPOINT),
            profile_id=int(packet.profile_id),
            cluster_id=int(packet.cluster_id),
            payload=packet.data.serialize(),
        )
        if dst.addr_mode == t.AddrMode.Broadcast:
            self._broadcast(frame)
            return
        if dst.addr_mode == t.AddrMode.Group:
            for switch in self.simulated_switches:
                if dst.address in switch.groups and switch.responsive:
                    self._to_switch(switch, frame, broadcast=True)
            return
        if dst.address in (self.state.node_info.nwk, self.state.node_info.ieee):
            self._loopback(frame)
            return
        target = self._find_switch(dst)
        if target is None:
            raise zigpy.exceptions.DeliveryError(
                f"no simulated device has address {dst.address}", status=t.MACStatus.MAC_NO_ACK
            )
        if not target.responsive:
            raise zigpy.exceptions.DeliveryError(
                f"simulated switch {self._ieee_text(target)} does not answer (set silent)",
                status=t.MACStatus.MAC_NO_ACK,
            )
        self._to_switch(target, frame, broadcast=False)

    # --- frames to switches ----------------------------------------------------------------------

    def _find_switch(self, address: t.AddrModeAddress) -> SimulatedSwitch | None:
        wanted = address.address
        if address.addr_mode == t.AddrMode.IEEE and isinstance(wanted, t.EUI64):
            return self._switches.get(wanted)
        if address.addr_mode != t.AddrMode.NWK or not isinstance(wanted, int):
            return None
        nwk = int(wanted)
        switch = self._by_nwk.get(nwk)
        if switch is None or switch.nwk != nwk or self._switches.get(switch.ieee) is not switch:
            # Switches join and leave in several places: the index is rebuilt when it is found stale
            # (or the address unknown, which is rare: a frame for a device that is gone).
            self._by_nwk = {each.nwk: each for each in self._switches.values()}
            switch = self._by_nwk.get(nwk)
        return switch

    def _broadcast(self, frame: ApsFrame) -> None:
        if frame.is_zdo and frame.cluster_id == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req:
            # Every router (the coordinator included) opens or closes for the given time.
            duration = frame.payload[1] if len(frame.payload) > 1 else 0
            now = asyncio.get_running_loop().time()
            for nwk in (0x0000, *(switch.nwk for switch in self.simulated_switches)):
                self._permit_until[nwk] = now + duration
        for switch in self.simulated_switches:
            if switch.responsive:
                self._to_switch(switch, frame, broadcast=True)

    def _to_switch(self, switch: SimulatedSwitch, frame: ApsFrame, *, broadcast: bool) -> None:
        if frame.is_zdo and frame.cluster_id == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req and not broadcast:
            duration = frame.payload[1] if len(frame.payload) > 1 else 0
            self._permit_until[switch.nwk] = asyncio.get_running_loop().time() + duration
        replies = switch.handle(frame, broadcast=broadcast)
        self._queue(switch, replies)
        self._take_off_if_left(switch)
        self._save_switch(switch)

    def _take_off_if_left(self, switch: SimulatedSwitch) -> None:
        """A switch that left (told to, or on its own) is gone from the network and the state file."""
        if not switch.left:
            return
        self._switches.pop(switch.ieee, None)
        switch.attach(None)
        LOGGER.info("Simulated switch %s left the network", self._ieee_text(switch))
        nwk, ieee = t.NWK(switch.nwk), switch.ieee
        self._outbox.append(lambda: self.handle_leave(nwk, ieee))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    # --- frames from switches --------------------------------------------------------------------

    def _packet(self, switch: SimulatedSwitch, frame: ApsFrame) -> t.ZigbeePacket:
        if frame.is_zdo and frame.cluster_id == zdo_t.ZDOCmd.Device_annce:
            dst = t.AddrModeAddress(
                addr_mode=t.AddrMode.Broadcast, address=t.BroadcastAddress.RX_ON_WHEN_IDLE
            )
        else:
            dst = t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=self.state.node_info.nwk)
        return t.ZigbeePacket(
            src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=t.NWK(switch.nwk)),
            src_ep=t.uint8_t(frame.src_endpoint),
            dst=dst,
            dst_ep=t.uint8_t(frame.dst_endpoint),
            tsn=t.uint8_t(_transaction_number(frame)),
            profile_id=t.uint16_t(frame.profile_id),
            cluster_id=t.uint16_t(frame.cluster_id),
            data=t.SerializableBytes(frame.payload),
            lqi=t.uint8_t(self._linkquality),
        )

    def _queue(self, switch: SimulatedSwitch, frames: list[ApsFrame]) -> None:
        """Deliver frames on the next loop iteration: zigpy expects answers after send_packet."""
        for frame in frames:
            packet = self._packet(switch, frame)
            self._outbox.append(functools.partial(self.packet_received, packet))
        if self._outbox and self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _send_own(self, switch: SimulatedSwitch, frames: list[ApsFrame]) -> None:
        """Frames a switch sends on its own, later (its link's `send`): to zigpy, then save."""
        if not self._connected or self._switches.get(switch.ieee) is not switch:
            LOGGER.debug("Simulated switch %s is off the network: its frames are lost", switch.ieee)
            return
        self._queue(switch, frames)
        self._take_off_if_left(switch)
        self._save_switch(switch)

    def _flush(self) -> None:
        self._flush_handle = None
        while self._outbox:
            deliver = self._outbox.popleft()
            try:
                deliver()
            except Exception:
                LOGGER.exception("zigpy failed to take a frame from the virtual adapter")

    def _deliver_now(self, switch: SimulatedSwitch, frames: list[ApsFrame]) -> None:
        """Hand spontaneous frames to zigpy at once, after anything still queued."""
        self._queue(switch, frames)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()

    # --- the coordinator's own ZDO answers ----------------------------------------------------

    def _loopback(self, frame: ApsFrame) -> None:
        """zigpy asking its own coordinator (topology scans, descriptors): answer like firmware."""
        if not frame.is_zdo or frame.cluster_id & 0x8000 or not frame.payload:
            return
        tsn = frame.payload[0]
        command = frame.cluster_id
        status = zdo_t.Status.SUCCESS
        nwk = self.state.node_info.nwk
        body: bytes
        try:
            if command == zdo_t.ZDOCmd.Node_Desc_req:
                body = status.serialize() + nwk.serialize() + COORDINATOR_NODE_DESCRIPTOR.serialize()
            elif command == zdo_t.ZDOCmd.Active_EP_req:
                endpoints = [ep.endpoint_id for ep in self._device.non_zdo_endpoints]
                body = (
                    status.serialize()
                    + nwk.serialize()
                    + t.LVList[t.uint8_t, t.uint8_t](endpoints).serialize()
                )
            elif command == zdo_t.ZDOCmd.Mgmt_Lqi_req:
                body = status.serialize() + self._neighbours(
                    frame.payload[1] if len(frame.payload) > 1 else 0
                )
            elif command == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req:
                body = status.serialize()
            else:
                body = zdo_t.Status.NOT_SUPPORTED.serialize()
        except (KeyError, ValueError) as exc:
            LOGGER.warning("Virtual coordinator could not answer ZDO 0x%04X: %s", command, exc)
            body = zdo_t.Status.NOT_SUPPORTED.serialize()
        reply = ApsFrame(ZDO_ENDPOINT, ZDO_ENDPOINT, ZDO_PROFILE, command | 0x8000, bytes([tsn]) + body)
        packet = t.ZigbeePacket(
            src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=nwk),
            src_ep=t.uint8_t(ZDO_ENDPOINT),
            dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=nwk),
            dst_ep=t.uint8_t(ZDO_ENDPOINT),
            tsn=t.uint8_t(tsn),
            profile_id=t.uint16_t(ZDO_PROFILE),
            cluster_id=t.uint16_t(reply.cluster_id),
            data=t.SerializableBytes(reply.payload),
        )
        self._outbox.append(functools.partial(self.packet_received, packet))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _neighbours(self, start: int) -> bytes:
        """Mgmt_Lqi_rsp body: every simulated switch is a router child of the coordinator."""
        extended_pan_id = self.state.network_info.extended_pan_id
        return neighbours_body(extended_pan_id, self.simulated_switches, start, self._linkquality)

    # --- state file ------------------------------------------------------------------------------

    def _load_state(self) -> None:
        """Read the state file, or start fresh: a coordinator address and the first switches."""
        path = self._state_file
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("version") != STATE_FILE_VERSION:
                    raise ValueError(f"unknown version {data.get('version')!r}")
                self._coordinator_ieee = t.EUI64.convert(data["coordinator_ieee"])
                network = data.get("network")
                if network is not None:
                    self._network = (
                        zigpy.state.NetworkInfo.from_dict(network["network_info"]),
                        zigpy.state.NodeInfo.from_dict(network["node_info"]),
                    )
                switches = [SimulatedSwitch.from_dict(record) for record in data["switches"]]
            except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
                raise ValueError(f"virtual adapter state file {path} cannot be used: {exc}") from exc
            self._switches = {switch.ieee: switch for switch in switches}
            LOGGER.debug("Loaded %d simulated switch(es) from %s", len(switches), path)
            return
        octets = [0x02, *(self._rng.randrange(256) for _ in range(7))]  # locally administered
        self._coordinator_ieee = t.EUI64.convert(":".join(f"{octet:02x}" for octet in octets))
        for _ in range(self._initial_switches):
            self._add_switch()
        self._save_state()

    def _add_switch(self) -> SimulatedSwitch:
        taken = [0x0000, *(switch.nwk for switch in self._switches.values())]
        switch = SimulatedSwitch.create(self._rng, taken_nwks=taken, variant=self._variant)
        while switch.ieee in self._switches or switch.ieee == self._coordinator_ieee:
            switch = SimulatedSwitch.create(self._rng, taken_nwks=taken, variant=self._variant)
        self._switches[switch.ieee] = switch
        return switch

    def _save_switch(self, switch: SimulatedSwitch) -> None:
        """Save after a switch's frame or a simulated action: within `SAVE_INTERVAL`, at once if it left.

        A relay change, a press or a setting may wait: a `kill -9` loses at most the last second
        of them, and `disconnect()` writes them. A switch gone from the network, or one that
        rebooted into new firmware, is written at once, as a join is: losing it would bring back a
        switch the user removed, or an old firmware version. Nothing is compared per frame (an OTA
        transfer or a start-up passes hundreds of frames a second): the switch is marked, and the
        timed save takes the records of the marked switches and writes only if one changed.
        """
        if self._state_file is None:
            return
        saved = self._records.record(switch)
        if self._switches.get(switch.ieee) is not switch or (
            saved is not None and saved.get("firmware_version") != switch.firmware_version
        ):
            # Gone, or rebooted into new firmware: rare, and losing it would bring the switch back
            # (or the old version, offered the update again).
            self._save_state()
            return
        self._touched.add(switch)
        if self._save_handle is None:
            self._save_handle = asyncio.get_running_loop().call_later(SAVE_INTERVAL, self._save_due)

    def _save_due(self) -> None:
        """The timer `_save_switch()` set: write, and on failure say so (the next change tries again)."""
        self._save_handle = None
        try:
            self._save_state(only_touched=True)
        except OSError as exc:
            self._saved = None
            LOGGER.warning(
                "Cannot write the virtual adapter's state file %s (%s): the next change tries again",
                self._state_file,
                exc.strerror or exc,
            )

    def _save_state(self, *, only_touched: bool = False) -> None:
        """Write the state file now if something changed (atomically: a temporary file, then rename).

        The records of every switch are taken again, or with `only_touched` (the timed save) only
        those of switches marked by `_save_switch()`: a switch changes only by its frames, its own
        sends and simulated actions, which all mark it or save at once, and by the ticks of an
        On/Off countdown, so a switch counting down (or that was, at the last save) is read too.
        """
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        touched, self._touched = self._touched, set()
        if only_touched:
            touched.update(switch for switch in self._switches.values() if self._counting(switch))
        network = None
        if self._network is not None:
            network = {"network_info": self._network[0].as_dict(), "node_info": self._network[1].as_dict()}
        self._records.update(self._switches.values(), touched if only_touched else None)
        text = self._records.text(
            {
                "version": STATE_FILE_VERSION,
                "coordinator_ieee": str(self._coordinator_ieee),
                "network": network,
                "switches": [],
            }
        )
        if text == self._saved:
            return
        if self._state_file is not None:
            # The daemon's own temporary names: a start removes what a killed process left.
            write_atomically(self._state_file, text + "\n")
        self._saved = text

    def _counting(self, switch: SimulatedSwitch) -> bool:
        """Counting down OnTime/OffWaitTime now or at the last save: its record moves without frames."""
        if switch.timing.running:
            return True
        record = self._records.record(switch)
        return record is not None and bool(record.get("timed_off_running"))

    # --- helpers for Simulation ---------------------------------------------------------------------

    @staticmethod
    def _ieee_text(switch: SimulatedSwitch) -> str:
        return "0x" + str(switch.ieee).replace(":", "")

    def _switch_by_text(self, ieee: str) -> SimulatedSwitch:
        wanted = ieee.strip().lower().removeprefix("0x").replace(":", "")
        if len(wanted) != 16 or any(c not in "0123456789abcdef" for c in wanted):
            raise SimulationError(f"{ieee!r} is not an IEEE address (16 hex digits, e.g. 0x54ef441000000001)")
        found = self._switches.get(t.EUI64.convert(":".join(wanted[i : i + 2] for i in range(0, 16, 2))))
        if found is not None:
            return found
        known = ", ".join(self._ieee_text(switch) for switch in self._switches.values())
        raise SimulationError(
            f"no simulated switch {ieee}; "
            + (f"the simulated switches are {known}" if known else "there are none")
        )

    def _check_running(self) -> None:
        if not self._connected or self._network is None:
            raise SimulationError("the virtual adapter is not running")


class Simulation:
    """The scripting API of the virtual adapter: what a user does to a simulated switch.

    Every method returns once the switch's frames were handed to zigpy (zigpy then processes
    them like frames from a real radio) and raises SimulationError with a clear message when
    the request cannot be done. IEEE addresses are accepted as `0x54ef44…`, `54ef44…` or
    `54:ef:44:…`. A switch's settings changed here (silent, firmware, reverted) are saved to
    the state file at once; what a press, heartbeat or power cycle changes within a second.
    """

    def __init__(self, app: VirtualControllerApplication) -> None:
        self._app = app
        self._stream: tuple[int, int] | None = None
        """(heartbeats sent, count) of the heartbeat stream under way."""

    async def switches(self) -> list[dict[str, Any]]:
        """Every simulated switch: addresses and the state of its firmware."""
        return [
            {
                "ieee": self._app._ieee_text(switch),
                "nwk": switch.nwk,
                "model": MODEL_ID,
                "variant": switch.variant,
                "relay": switch.relay,
                "operation_mode": switch.operation_mode_name,
                "power_outage_memory": switch.power_outage_memory,
                "flip_indicator_light": switch.flip_indicator_light,
                "mode": switch.mode,
                "power_outages": switch.power_outages,
                "temperature": switch.temperature,
                "firmware_version": switch.firmware_version,
                "responsive": switch.responsive,
                "linkquality": self._app.linkquality,
            }
            for switch in self._app.simulated_switches
        ]

    async def press(self, ieee: str, kind: str = "single") -> None:
        """Press the rocker: `single`, `double`, `hold`, `triple` or `release`."""
        switch = self._running_switch(ieee)
        try:
            frames = switch.press(kind)
        except ValueError as exc:
            raise SimulationError(str(exc)) from exc
        self._sent(switch, frames)

    async def heartbeat(self, ieee: str, temperature: float | None = None) -> None:
        """Send the FCC0 heartbeat now, optionally with a new chip temperature (°C)."""
        switch = self._running_switch(ieee)
        try:
            frames = switch.heartbeat(temperature)
        except ValueError as exc:
            raise SimulationError(str(exc)) from exc
        self._sent(switch, frames)

    async def heartbeats(
        self,
        count: int,
        rate: float | None = None,
        ieees: list[str] | None = None,
        *,
        settled: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """The switches send `count` heartbeats, round robin (bridge/heartbeats_request.py); returns
        when the last was handed to zigpy: `count`, `sent`, `switches`, `rate`, `seconds`.

        `ieees` picks the switches (default: all, in joining order). `rate` paces them (per
        second); without it each goes once `settled` returns (the daemon's "everything received
        so far is handled"), or on the next loop iteration. Each carries the switch's next
        transaction number and a chip temperature one degree up (`next_temperature`). A silent
        switch sends nothing, a switch that left is skipped: `sent` counts what left. One stream
        at a time; it ends with SimulationError when the adapter stops.
        """
        self._app._check_running()
        if self._stream is not None:
            done, total = self._stream
            raise SimulationError(
                f"a heartbeat stream is under way ({done} of {total} sent): wait for its answer"
            )
        if ieees is None:
            switches = self._app.simulated_switches
        else:
            switches = [self._app._switch_by_text(ieee) for ieee in ieees]
            if len({switch.ieee for switch in switches}) != len(switches):
                raise SimulationError("the switches named include one switch twice")
        if not switches:
            raise SimulationError("there are no simulated switches")
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0
        self._stream = (0, count)
        try:
            for index in range(count):
                if rate is not None:
                    await asyncio.sleep(max(0.0, started + index / rate - loop.time()))
                elif index and settled is not None:
                    await settled()
                elif index:
                    await asyncio.sleep(0)
                self._app._check_running()
                switch = switches[index % len(switches)]
                if self._app._switches.get(switch.ieee) is not switch:
                    continue  # it left the network meanwhile
                frames = switch.heartbeat(next_temperature(switch.temperature))
                self._app._save_switch(switch)
                self._app._deliver_now(switch, frames)
                sent += len(frames)
                self._stream = (sent, count)
        finally:
            self._stream = None
        return {
            "count": count,
            "sent": sent,
            "switches": len(switches),
            "rate": rate,
            "seconds": round(loop.time() - started, 3),
        }

    async def power_cycle(self, ieee: str) -> None:
        """Cut mains power and restore it: the switch reboots, announces itself and reports."""
        switch = self._running_switch(ieee)
        self._sent(switch, switch.power_cycle())

    async def revert_settings(self, ieee: str) -> None:
        """The switch's firmware silently forgets its settings (factory defaults, no report)."""
        switch = self._running_switch(ieee)
        switch.forget_settings()
        LOGGER.info(
            "Simulated switch %s silently reverted its settings to the factory defaults",
            self._app._ieee_text(switch),
        )
        self._app._save_state()

    async def set_responsive(self, ieee: str, responsive: bool) -> None:
        """Make a switch silent (it answers and reports nothing) or bring it back."""
        switch = self._running_switch(ieee)
        switch.responsive = responsive
        LOGGER.info(
            "Simulated switch %s is now %s",
            self._app._ieee_text(switch),
            "responsive" if responsive else "silent",
        )
        self._app._save_state()

    async def join_new_switch(self) -> str:
        """A new switch joins (permit join must be open); returns its IEEE address `0x…`."""
        self._app._check_running()
        if not self._app.permit_join_open:
            raise SimulationError(
                "permit join is closed: open the network for joining first, then join again"
            )
        switch = self._app._add_switch()
        switch.attach(_RadioLink(self._app, switch))
        announcement = switch.announce()
        self._app._save_state()  # a join is written at once, `joined` set by the announcement
        LOGGER.info("New simulated switch %s joins", self._app._ieee_text(switch))
        self._app._deliver_now(switch, announcement)
        return self._app._ieee_text(switch)

    async def inject(self, ieee: str, message: Any) -> dict[str, Any]:
        """The switch sends the attribute report a `simulation/inject` payload describes
        (sim/inspection.py); returns the answer's data."""
        request = inspection.parse_inject(message)
        switch = self._running_switch(ieee)
        frames, answer = inspection.inject(switch, request.report)
        self._sent(switch, frames)
        return {"id": self._app._ieee_text(switch), **answer}

    async def received_frames(self, ieee: str, message: Any) -> dict[str, Any]:
        """The ZCL frames the switch received since the last call, decoded, as a
        `simulation/frames` payload asks (sim/inspection.py)."""
        request = inspection.parse_frames(message)
        switch = self._running_switch(ieee)
        return {"id": self._app._ieee_text(switch), **inspection.take_frames(switch, request.cluster_id)}

    async def firmware(
        self, ieee: str, changes: dict[str, Any] | None = None, *, send_prevent_reset: bool = False
    ) -> dict[str, Any]:
        """Read or change what the switch's firmware does (sim/firmware_settings.py), saved at once.

        `changes` maps setting names (`on_with_timed_off`, `prevent_reset`,
        `prevent_reset_delay_s`, `prevent_reset_interval_s`, `prevent_reset_retry_s`,
        `prevent_reset_attempts`) to new values; `send_prevent_reset` makes the switch send its
        Basic 0xFFF0 report now. Returns `id`, all `firmware` settings and the `prevent_reset`
        cycle (`waiting_for`, `unanswered`, `reports`, `answers`).
        """
        switch = self._running_switch(ieee)
        try:
            result = switch.set_firmware(changes or {}, send_prevent_reset=send_prevent_reset)
        except ValueError as exc:
            raise SimulationError(f"switch {self._app._ieee_text(switch)}: {exc}") from exc
        if changes:
            LOGGER.info(
                "Simulated switch %s firmware settings: %s", self._app._ieee_text(switch), result["firmware"]
            )
        self._app._save_state()
        return {"id": self._app._ieee_text(switch), **result}

    async def firmware_request(self, ieee: str, message: Any) -> dict[str, Any]:
        """`firmware()` from a `simulation/firmware` payload: settings by name, `send_prevent_reset`."""
        try:
            changes, send_now = firmware_request(message)
        except FirmwareSettingError as exc:
            raise SimulationError(str(exc)) from None
        return await self.firmware(ieee, changes, send_prevent_reset=send_now)

    # --- OTA ------------------------------------------------------------------------------------

    async def ota_query(self, ieee: str) -> None:
        """The switch asks the OTA server for a new image now (Query Next Image Request).

        A real switch does so when the server notifies it and periodically; zigpy's server answers
        NO_IMAGE_AVAILABLE unless it is updating this switch.
        """
        switch = self._running_switch(ieee)
        try:
            switch.ota.query()
        except ValueError as exc:
            raise SimulationError(f"switch {self._app._ieee_text(switch)} cannot query: {exc}") from exc

    async def ota_status(self, ieee: str) -> dict[str, Any]:
        """The switch's OTA client: `phase` (idle, querying, downloading, ending, waiting,
        counting_down), `image_upgrade_status`, `firmware_version`, `file_version`, `offset` and
        `image_size` of the transfer, `block_requests`, the pending `fault`, `last_result`
        (`outcome`, `file_version`, `detail`) and `settings`."""
        return self._running_switch(ieee).ota.status()

    async def configure_ota(
        self,
        ieee: str,
        *,
        block_delay: float | None = None,
        max_data_size: int | None = None,
        response_timeout: float | None = None,
        retries: int | None = None,
        query_delay: float | None = None,
        reboot_delay: float | None = None,
    ) -> dict[str, Any]:
        """Change how the switch's OTA client behaves (None: unchanged); returns all its settings.

        Seconds for the delays and the timeout, bytes for `max_data_size` (1-255). Not saved:
        a restarted adapter uses the defaults again (block_delay 0, max_data_size 64,
        response_timeout 5, retries 3, query_delay 1, reboot_delay 0).
        """
        switch = self._running_switch(ieee)
        given = {
            "block_delay": block_delay,
            "max_data_size": max_data_size,
            "response_timeout": response_timeout,
            "retries": retries,
            "query_delay": query_delay,
            "reboot_delay": reboot_delay,
        }
        try:
            settings = switch.ota.configure(
                **{name: value for name, value in given.items() if value is not None}
            )
        except (ValueError, TypeError) as exc:
            raise SimulationError(str(exc)) from exc
        return dict(vars(settings))

    async def inject_ota_fault(self, ieee: str, fault: str | None, at_offset: int = 0) -> None:
        """Make the switch's next (or current) OTA download fail once `at_offset` bytes are in.

        `power_cycle` (it loses power and comes back, the partial image lost), `silent` (it stops
        talking, as `set_responsive(False)`), `abort` (it gives up: Upgrade End Request ABORT),
        `invalid_image` (the finished image fails its check: Upgrade End Request INVALID_IMAGE);
        None clears a pending fault. Not saved.
        """
        switch = self._running_switch(ieee)
        try:
            kind = None if fault is None else OtaFault(fault)
            switch.ota.inject_fault(kind, at_offset)
        except ValueError as exc:
            known = ", ".join(each.value for each in OtaFault)
            raise SimulationError(f"bad OTA fault {fault!r} at {at_offset}: {exc} (faults: {known})") from exc

    def _running_switch(self, ieee: str) -> SimulatedSwitch:
        self._app._check_running()
        return self._app._switch_by_text(ieee)

    def _sent(self, switch: SimulatedSwitch, frames: list[ApsFrame]) -> None:
        self._app._save_switch(switch)
        if not frames and not switch.responsive:
            LOGGER.info("Simulated switch %s is silent: its frames are lost", self._app._ieee_text(switch))
        self._app._deliver_now(switch, frames)
