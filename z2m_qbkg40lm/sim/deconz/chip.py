"""An emulated ConBee II running dresden elektronik's deCONZ firmware: the deCONZ front-end of the
simulated world.

`DeconzChip` answers what zigpy-deconz 1.1 (and so the daemon with `adapter: deconz`) sends to
form or resume a network, permit joining, exchange ZCL and ZDO frames with the switches and read
the network's parameters and keys. Facts from dresden elektronik's serial protocol document as
zigpy-deconz's `api` and `zigbee.application` mirror it:

- The network parameters (`read_parameter`/`write_parameter`) live in the firmware's
  non-volatile memory (here the state file); written ones take effect when the network is next
  brought up with `change_network_state` CONNECTED, as the document says. A parameter the firmware
  does not have, an endpoint slot past the last and a network key index other than 0 are
  UNSUPPORTED. The firmware has four endpoint slots, which the host overwrites.
- The device state (network state and the flags: a confirm waiting, an indication waiting, free
  slots in the APS request queue) comes with most answers and, when it changes, on its own as
  `device_state_changed`; the host then fetches the waiting confirm or indication.
- `aps_data_request` is queued (answer SUCCESS) while the queue has room, BUSY when it is full,
  NO_NETWORK while the network is down; every request gets its `aps_data_confirm`: SUCCESS once
  the switch acknowledged, MAC_NO_ACK (APS_NO_ACK when APS acknowledgements were asked for) when it
  is silent, NWK_ROUTE_DISCOVERY_FAILED for an address nobody has. A request stays in the queue
  until its confirm is fetched (the queue's size is the emulator's choice).
- Frames from the air (ZCL, ZDO, the Device_annce of a join) are `aps_data_indication`s. There is
  no join or leave callback: the host learns of a join from the Device_annce.
- After a reset the network is OFFLINE until the host asks for CONNECTED. A ConBee II is a USB
  device: its firmware resetting re-enumerates it, so the host's serial port goes away.
"""

# zigpy's and zigpy-deconz's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import zigpy.types as zt
import zigpy.zdo.types as zdo_t
import zigpy_deconz.types as dt
from zigpy_deconz.api import (
    NETWORK_PARAMETER_TYPES,
    CommandId,
    DeviceState,
    DeviceStateFlags,
    FirmwareVersion,
    IndexedEndpoint,
    IndexedKey,
    LinkKey,
    NetworkParameter,
    NetworkState,
    NetworkState2,
    Status,
    TXStatus,
)

from z2m_qbkg40lm.sim import coordinator_zdo
from z2m_qbkg40lm.sim.chip_state import ChipStateFile
from z2m_qbkg40lm.sim.coordinator_zdo import COORDINATOR_NODE_DESCRIPTOR, RegisteredEndpoint
from z2m_qbkg40lm.sim.deconz.protocol import DeconzProtocol, Reply, Request
from z2m_qbkg40lm.sim.deconz.serial import DeconzPort
from z2m_qbkg40lm.sim.emulated_chip import Faults
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.world import (
    COORDINATOR_NWK,
    DEFAULT_LINKQUALITY,
    NO_ACK_DELAY,
    Node,
    Reach,
    SimulatedWorld,
)

LOGGER = logging.getLogger(__name__)

FIRMWARE_VERSION: Final = 0x26780700
"""A ConBee II (platform 0x07) firmware 0x2678, above the 0x26720700 the README asks for."""
PROTOCOL_VERSION: Final = 0x010C
"""The serial protocol version of that firmware: watchdog, neighbours, manual source routes."""
APS_QUEUE_SIZE: Final = 10
"""APS data requests the firmware holds until their confirms are fetched: the emulator's choice, a
little above the 8 requests zigpy-deconz has in flight by default, so only a host that overruns its
own limit sees BUSY."""
DRESDEN_ELEKTRONIK: Final = 0x1135
BROADCAST_FIRST: Final = 0xFFF8
RX_ON_WHEN_IDLE: Final = 0xFFFD


def rssi_of(linkquality: int) -> int:
    """The RSSI (dBm) a link of this LQI has: -90 dBm at 0, -30 dBm at 255, linear between."""
    return -90 + round(linkquality * 60 / 255)


GLOBAL_TC_LINK_KEY: Final = b"ZigBeeAlliance09"
NO_PAN_ID: Final = 0xFFFF
NO_NWK: Final = 0xFFFF
ALL_CHANNELS: Final = 0x07FFF800
SECURITY_ONLY_TCLK: Final = 0x03
ZERO_EUI64: Final = "00:00:00:00:00:00:00:00"
# The emulator's factory endpoint slots (the firmware has four; the host overwrites them).
FACTORY_ENDPOINTS: Final[tuple[tuple[int, int, int, list[int], list[int]], ...]] = (
    (1, 0x0104, 0x0005, [0x0000, 0x0006, 0x000A, 0x0019, 0x0501], [0x0001, 0x0020, 0x0500, 0x0502]),
    (0xF2, 0xA1E0, 0x0064, [], [0x0021]),
    (2, 0x0104, 0x0005, [0x0000], []),
    (3, 0x0104, 0x0005, [0x0000], []),
)


def _descriptor(endpoint: int, profile: int, device_type: int, inputs: list[int], outputs: list[int]) -> Any:
    return zdo_t.SimpleDescriptor(
        endpoint=endpoint,
        profile=profile,
        device_type=device_type,
        device_version=0,
        input_clusters=inputs,
        output_clusters=outputs,
    )


@dataclass
class NetworkParameters:
    """The parameters the firmware keeps in non-volatile memory (the state file)."""

    mac_address: zt.EUI64
    nwk_address: int = NO_NWK
    nwk_panid: int = NO_PAN_ID
    aps_extended_panid: zt.EUI64 = field(default_factory=lambda: zt.EUI64.convert(ZERO_EUI64))
    nwk_extended_panid: zt.EUI64 = field(default_factory=lambda: zt.EUI64.convert(ZERO_EUI64))
    aps_designed_coordinator: int = 1
    channel_mask: int = ALL_CHANNELS
    current_channel: int = 0
    use_predefined_nwk_panid: bool = False
    security_mode: int = SECURITY_ONLY_TCLK
    network_key: bytes = bytes(16)
    trust_center_address: zt.EUI64 = field(default_factory=lambda: zt.EUI64.convert(ZERO_EUI64))
    link_keys: dict[str, bytes] = field(default_factory=dict)
    nwk_update_id: int = 0
    nwk_frame_counter: int = 0
    zdp_response_handling: int = 0
    endpoints: list[Any] = field(default_factory=lambda: [_descriptor(*slot) for slot in FACTORY_ENDPOINTS])
    formed: bool = False
    """A network was brought up at least once."""
    last_up: str = ""
    """Which network was last brought up (PAN ids, channel, key): the same one again is resumed."""

    @classmethod
    def factory_new(cls, rng: random.Random) -> NetworkParameters:
        """A new stick: dresden elektronik's OUI 00:21:2E and a random serial number."""
        serial = ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
        mac = zt.EUI64.convert(f"00:21:2e:ff:ff:{serial}")
        return cls(mac_address=mac, trust_center_address=mac)

    def read(self, parameter: NetworkParameter, argument: bytes) -> Any:
        """A parameter's value (by the write type of zigpy-deconz); ValueError when the firmware has none."""
        p = NetworkParameter
        if parameter == p.configure_endpoint:
            index = argument[0] if argument else 0
            if index >= len(self.endpoints):
                raise ValueError(f"no endpoint slot {index}")
            return IndexedEndpoint(index=index, descriptor=self.endpoints[index])
        if parameter == p.network_key:
            if argument[:1] not in (b"", b"\x00"):
                raise ValueError("only network key index 0")
            return IndexedKey(index=0, key=zt.KeyData(self.network_key))
        if parameter == p.link_key:
            ieee, _rest = zt.EUI64.deserialize(argument)
            return LinkKey(ieee=ieee, key=zt.KeyData(self.link_keys.get(str(ieee), GLOBAL_TC_LINK_KEY)))
        values: dict[NetworkParameter, Any] = {
            p.mac_address: self.mac_address,
            p.nwk_panid: self.nwk_panid,
            p.nwk_address: self.nwk_address,
            p.nwk_extended_panid: self.nwk_extended_panid,
            p.aps_designed_coordinator: self.aps_designed_coordinator,
            p.channel_mask: self.channel_mask,
            p.aps_extended_panid: self.aps_extended_panid,
            p.trust_center_address: self.trust_center_address,
            p.security_mode: self.security_mode,
            p.use_predefined_nwk_panid: self.use_predefined_nwk_panid,
            p.current_channel: self.current_channel,
            p.protocol_version: PROTOCOL_VERSION,
            p.nwk_update_id: self.nwk_update_id,
            p.nwk_frame_counter: self.nwk_frame_counter,
            p.app_zdp_response_handling: self.zdp_response_handling,
        }
        if parameter not in values:
            raise ValueError(f"{parameter.name} is not readable here")
        return values[parameter]

    def write(self, parameter: NetworkParameter, value: Any) -> None:
        """Store a written parameter; ValueError for one the firmware does not let a host write."""
        p = NetworkParameter
        if parameter == p.configure_endpoint:
            if value.index >= len(self.endpoints):
                raise ValueError(f"no endpoint slot {value.index}")
            self.endpoints[value.index] = value.descriptor
        elif parameter == p.network_key:
            if value.index != 0:
                raise ValueError("only network key index 0")
            self.network_key = bytes(value.key)
        elif parameter == p.link_key:
            self.link_keys[str(value.ieee)] = bytes(value.key)
        else:
            simple = {
                p.mac_address: "mac_address",
                p.nwk_panid: "nwk_panid",
                p.nwk_address: "nwk_address",
                p.aps_designed_coordinator: "aps_designed_coordinator",
                p.channel_mask: "channel_mask",
                p.aps_extended_panid: "aps_extended_panid",
                p.trust_center_address: "trust_center_address",
                p.security_mode: "security_mode",
                p.use_predefined_nwk_panid: "use_predefined_nwk_panid",
                p.nwk_update_id: "nwk_update_id",
                p.nwk_frame_counter: "nwk_frame_counter",
                p.app_zdp_response_handling: "zdp_response_handling",
            }
            if parameter not in simple:
                raise ValueError(f"{parameter.name} is read-only")
            name = simple[parameter]
            current = getattr(self, name)
            setattr(self, name, zt.EUI64(value) if isinstance(current, zt.EUI64) else type(current)(value))

    def bring_up(self) -> zt.EUI64 | None:
        """The network starts with the parameters: its extended PAN id; None when it cannot."""
        channels = [channel for channel in range(11, 27) if self.channel_mask & (1 << channel)]
        if self.nwk_panid == NO_PAN_ID or not channels:
            return None
        if self.current_channel not in channels:
            self.current_channel = channels[0]
        zero = zt.EUI64.convert(ZERO_EUI64)
        self.nwk_extended_panid = (
            self.aps_extended_panid if self.aps_extended_panid != zero else self.mac_address
        )
        self.formed = True
        return self.nwk_extended_panid

    def identity(self) -> str:
        """What tells one network from another: PAN ids, channel and network key."""
        return (
            f"{self.nwk_panid:04x}/{self.nwk_extended_panid}/{self.current_channel}/{self.network_key.hex()}"
        )

    def to_json(self) -> dict[str, Any]:
        """The state file's form."""
        return {
            "mac_address": str(self.mac_address),
            "nwk_address": self.nwk_address,
            "nwk_panid": self.nwk_panid,
            "aps_extended_panid": str(self.aps_extended_panid),
            "nwk_extended_panid": str(self.nwk_extended_panid),
            "aps_designed_coordinator": self.aps_designed_coordinator,
            "channel_mask": self.channel_mask,
            "current_channel": self.current_channel,
            "use_predefined_nwk_panid": self.use_predefined_nwk_panid,
            "security_mode": self.security_mode,
            "network_key": self.network_key.hex(),
            "trust_center_address": str(self.trust_center_address),
            "link_keys": {ieee: key.hex() for ieee, key in self.link_keys.items()},
            "nwk_update_id": self.nwk_update_id,
            "nwk_frame_counter": self.nwk_frame_counter,
            "zdp_response_handling": self.zdp_response_handling,
            "endpoints": [
                {
                    "endpoint": int(d.endpoint),
                    "profile": int(d.profile),
                    "device_type": int(d.device_type),
                    "device_version": int(d.device_version),
                    "inputs": [int(c) for c in d.input_clusters],
                    "outputs": [int(c) for c in d.output_clusters],
                }
                for d in self.endpoints
            ],
            "formed": self.formed,
            "last_up": self.last_up,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkParameters:
        """From the state file's form; KeyError, TypeError or ValueError when it is damaged."""
        eui = zt.EUI64.convert
        endpoints = [
            zdo_t.SimpleDescriptor(
                endpoint=e["endpoint"],
                profile=e["profile"],
                device_type=e["device_type"],
                device_version=e["device_version"],
                input_clusters=e["inputs"],
                output_clusters=e["outputs"],
            )
            for e in data["endpoints"]
        ]
        return cls(
            mac_address=eui(data["mac_address"]),
            nwk_address=int(data["nwk_address"]),
            nwk_panid=int(data["nwk_panid"]),
            aps_extended_panid=eui(data["aps_extended_panid"]),
            nwk_extended_panid=eui(data["nwk_extended_panid"]),
            aps_designed_coordinator=int(data["aps_designed_coordinator"]),
            channel_mask=int(data["channel_mask"]),
            current_channel=int(data["current_channel"]),
            use_predefined_nwk_panid=bool(data["use_predefined_nwk_panid"]),
            security_mode=int(data["security_mode"]),
            network_key=bytes.fromhex(data["network_key"]),
            trust_center_address=eui(data["trust_center_address"]),
            link_keys={ieee: bytes.fromhex(key) for ieee, key in data["link_keys"].items()},
            nwk_update_id=int(data["nwk_update_id"]),
            nwk_frame_counter=int(data["nwk_frame_counter"]),
            zdp_response_handling=int(data["zdp_response_handling"]),
            endpoints=endpoints,
            formed=bool(data["formed"]),
            last_up=str(data.get("last_up", "")),
        )


@dataclass
class _Confirm:
    request_id: int
    dst: Any  # DeconzAddressEndpoint
    src_ep: int
    status: TXStatus
    ready: bool = False


class DeconzChip:
    """deCONZ firmware on an emulated ConBee II, with the simulated switches it can reach."""

    def __init__(
        self,
        state_file: Path | None,
        *,
        switches: int = 0,
        linkquality: int = DEFAULT_LINKQUALITY,
        rng: random.Random | None = None,
    ) -> None:
        self._state = ChipStateFile(state_file, self._snapshot)
        self._rng = rng or random.Random()
        self.world = SimulatedWorld(self, linkquality=linkquality, rng=self._rng)
        self.faults = Faults()
        self.protocol = DeconzProtocol()
        self.port: DeconzPort | None = None
        """The serial port a line connects to (`serial_port()` makes it)."""
        self.parameters = NetworkParameters.factory_new(self._rng)
        self._load(switches)
        # RAM: lost on every reset.
        self._network_state = NetworkState.OFFLINE
        self._queue: deque[_Confirm] = deque()
        self._indications: deque[tuple[int, ApsFrame]] = deque()
        self._told: int | None = None
        self.watchdog_ttl = 0
        self.protocol.handlers = {
            CommandId.version: self._version,
            CommandId.device_state: self._device_state,
            CommandId.change_network_state: self._change_network_state,
            CommandId.read_parameter: self._read_parameter,
            CommandId.write_parameter: self._write_parameter,
            CommandId.aps_data_request: self._aps_data_request,
            CommandId.aps_data_confirm: self._aps_data_confirm,
            CommandId.aps_data_indication: self._aps_data_indication,
            CommandId.update_neighbor: self._update_neighbor,
        }

    # --- state file ----------------------------------------------------------------------------

    def _load(self, switches: int) -> None:
        data = self._state.read()
        if data is not None and data.get("chip") != "deconz":
            raise ValueError(
                f"emulator state file {self._state.path} belongs to a {data.get('chip', 'Z-Stack')} chip"
            )
        if data is None:
            for _ in range(switches):
                self.world.add_switch(pairing=True)
            LOGGER.info("Factory-new ConBee II %s with %d switch(es) in pairing mode", self.ieee, switches)
            self.save()
            return
        try:
            self.parameters = NetworkParameters.from_json(data["parameters"])
            self.world.load(data.get("switches", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"emulator state file {self._state.path} cannot be used: {exc!r}") from exc
        LOGGER.info(
            "ConBee II %s loaded from %s: %s, %d switch(es)",
            self.ieee,
            self._state.path,
            "network formed" if self.parameters.formed else "no network",
            len(self.world.nodes),
        )

    def _snapshot(self) -> dict[str, Any]:
        return {"chip": "deconz", "parameters": self.parameters.to_json(), "switches": self.world.records()}

    def save(self) -> None:
        """Write the state file now (atomically)."""
        self._state.save()

    def state_changed(self, *, membership: bool = False) -> None:
        """The world changed: save soon, or now when switches joined or left."""
        self._state.changed(membership=membership)

    def close(self) -> None:
        """Stop timers (the switches' too) and save; the serial line is the caller's."""
        self.world.close()
        self.save()

    # --- what the emulator, its control API and the coordinator's ZDO see -----------------------

    @property
    def ieee(self) -> zt.EUI64:
        """The coordinator's IEEE address (the MAC address parameter)."""
        return self.parameters.mac_address

    @property
    def network_up(self) -> bool:
        """True while the coordinator runs its network."""
        return bool(self._network_state == NetworkState.CONNECTED)

    @property
    def node_descriptor(self) -> zdo_t.NodeDescriptor:
        """What the coordinator answers to Node_Desc_req: dresden elektronik's manufacturer code."""
        fields = {**COORDINATOR_NODE_DESCRIPTOR.as_dict(), "manufacturer_code": DRESDEN_ELEKTRONIK}
        return zdo_t.NodeDescriptor(**fields)

    @property
    def registered_endpoints(self) -> list[int]:
        """The endpoints in the firmware's slots."""
        return sorted({int(slot.endpoint) for slot in self.parameters.endpoints})

    def registered_endpoint(self, endpoint: int) -> RegisteredEndpoint | None:
        """The slot holding an endpoint."""
        for slot in self.parameters.endpoints:
            if slot.endpoint == endpoint:
                return RegisteredEndpoint(
                    int(slot.profile),
                    int(slot.device_type),
                    int(slot.device_version),
                    [int(c) for c in slot.input_clusters],
                    [int(c) for c in slot.output_clusters],
                )
        return None

    def serial_port(self) -> DeconzPort:
        """The chip's end of a serial line (`sim.serial_line`)."""
        if self.port is None:
            # Switches loaded before the event loop ran get their timers once a host connects.
            self.port = DeconzPort(
                self.protocol, muted=lambda: self.faults.muted, on_connect=self.world.attach_switches
            )
        return self.port

    def drop_link(self, *, fault: bool = True) -> bool:
        """Cut the serial line; False when no host is connected."""
        if self.port is None:
            return False
        if fault:
            LOGGER.warning("Fault: dropping the serial link to the host")
        return self.port.drop()

    def spontaneous_reset(self) -> None:
        """Fault: the firmware reboots on its own; the USB device re-enumerates (the line drops)."""
        LOGGER.warning("Fault: the firmware resets; the host loses its serial port")
        self.reset()
        if self.port is not None:
            self.port.drop()

    def failure_status(self, status: str | int) -> TXStatus:
        """A confirm failure status by its zigpy APS/NWK/MAC name or number."""
        try:
            if isinstance(status, str):
                name = status.upper()
                kinds = (zt.APSStatus, zt.NWKStatus, zt.MACStatus)
                known = next(kind for kind in kinds if name in kind.__members__)
                value = TXStatus(known[name].value)
            else:
                value = TXStatus(status)
        except (KeyError, ValueError, StopIteration):
            raise ValueError(
                f"unknown deCONZ confirm status {status!r}; e.g. MAC_NO_ACK (233), APS_NO_ACK (167), "
                "NWK_ROUTE_DISCOVERY_FAILED (208), MAC_CHANNEL_ACCESS_FAILURE"
            ) from None
        if value == TXStatus.SUCCESS:
            raise ValueError("SUCCESS is not a failure; send null to stop failing deliveries")
        return value

    def spoil_frames(
        self, *, corrupt_to_host: int = 0, lose_to_host: int = 0, lose_from_host: int = 0
    ) -> None:
        """Not meaningful: the deCONZ framing has no retransmission to show (ValueError)."""
        raise ValueError(
            "the deCONZ emulator's serial line (SLIP) has no acknowledgement or retransmission to show "
            "(a spoiled frame is simply lost); line faults are the EmberZNet emulator's (ASH); use "
            "fault/mute, fault/drop_link or fault/delay_confirms here"
        )

    def reset(self) -> None:
        """The firmware rebooted: RAM (network state, queues, permit join) is lost, parameters stay."""
        self._network_state = NetworkState.OFFLINE
        self._queue.clear()
        self._indications.clear()
        self._told = None
        self.watchdog_ttl = 0
        self.world.network_down()
        self.world.forget_permits()
        self.save()

    # --- the device state ------------------------------------------------------------------------

    def device_state(self) -> DeviceState:
        """The network state and the flags, as the firmware reports them."""
        flags = DeviceStateFlags(0)
        if any(confirm.ready for confirm in self._queue):
            flags |= DeviceStateFlags.APSDE_DATA_CONFIRM
        if self._indications:
            flags |= DeviceStateFlags.APSDE_DATA_INDICATION
        if len(self._queue) < APS_QUEUE_SIZE:
            flags |= DeviceStateFlags.APSDE_DATA_REQUEST_FREE_SLOTS_AVAILABLE
        return DeviceState(network_state=NetworkState2(int(self._network_state)), device_state=flags)

    def _told_state(self) -> DeviceState:
        """The device state for an answer (the host knows it from then on)."""
        state = self.device_state()
        self._told = int(state.serialize()[0])
        return state

    def _notify(self) -> None:
        """`device_state_changed` when the state differs from what the host was last told."""
        state = self.device_state()
        if int(state.serialize()[0]) == self._told:
            return
        self._told = int(state.serialize()[0])
        if self.port is not None:
            frame = self.protocol.notification(
                CommandId.device_state_changed, Reply(Status.SUCCESS, {"device_state": state, "reserved": 0})
            )
            self.port.send(frame)

    # --- the world's events ------------------------------------------------------------------------

    def device_joined(self, node: Node, parent: int) -> None:
        """A switch joined: the host hears of it from the Device_annce that follows."""
        LOGGER.info("Switch %s joined through 0x%04X", node.ieee_text, parent)

    def device_left(self, node: Node) -> None:
        """A switch left: the firmware has no notification for it."""
        LOGGER.info("Switch %s left the network", node.ieee_text)

    def frame_from_air(self, src: int, frame: ApsFrame) -> None:
        """A frame from a switch: an indication for the host to fetch."""
        self._indications.append((src, frame))
        self._notify()

    # --- commands ----------------------------------------------------------------------------------

    def _version(self, _request: Request) -> Reply:
        return Reply(Status.SUCCESS, {"version": FirmwareVersion(FIRMWARE_VERSION)})

    def _device_state(self, _request: Request) -> Reply:
        return Reply(Status.SUCCESS, {"device_state": self._told_state(), "reserved1": 0, "reserved2": 0})

    def _change_network_state(self, request: Request) -> Reply:
        target = NetworkState(request.params["network_state"])
        if target not in (NetworkState.OFFLINE, NetworkState.CONNECTED):
            return Reply(Status.INVALID_VALUE, {"network_state": target})
        self.world.later(0, lambda: self._go(target))
        return Reply(Status.SUCCESS, {"network_state": target})

    def _go(self, target: NetworkState) -> None:
        if target == NetworkState.OFFLINE:
            if self.network_up:
                LOGGER.info("The coordinator leaves its network")
            self._network_state = NetworkState.OFFLINE
            self.world.network_down()
            self.world.forget_permits()
        elif not self.network_up:
            network = self.parameters.bring_up()
            if network is None:
                LOGGER.warning("CONNECTED refused: no PAN id or no channel in the channel mask")
                return
            self._network_state = NetworkState.CONNECTED
            self.world.network_up(network, self.parameters.nwk_panid, self.parameters.network_key)
            identity = self.parameters.identity()
            resumed = identity == self.parameters.last_up
            self.parameters.last_up = identity
            LOGGER.info(
                "Network %s: channel %d, PAN id 0x%04X, extended PAN id %s",
                "resumed" if resumed else "formed",
                self.parameters.current_channel,
                self.parameters.nwk_panid,
                network,
            )
            self.save()
        self._notify()

    def _read_parameter(self, request: Request) -> Reply:
        number = int(request.params["parameter_id"])
        argument = bytes(request.params.get("parameter") or b"")
        if number not in NetworkParameter._value2member_map_:
            return Reply(Status.UNSUPPORTED, {"parameter_id": number})
        parameter = NetworkParameter(number)
        try:
            if parameter == NetworkParameter.watchdog_ttl:
                value = self.watchdog_ttl
            elif parameter == NetworkParameter.permit_join:
                value = 1 if self.world.permit_join_open else 0
            else:
                value = self.parameters.read(parameter, argument)
        except ValueError as exc:
            LOGGER.debug("read_parameter %s(%s): %s", parameter.name, argument.hex(), exc)
            return Reply(Status.UNSUPPORTED, {"parameter_id": parameter})
        _index, kind = NETWORK_PARAMETER_TYPES[parameter]
        return Reply(
            Status.SUCCESS, {"parameter_id": parameter, "parameter": dt.Bytes(kind(value).serialize())}
        )

    def _write_parameter(self, request: Request) -> Reply:
        number = int(request.params["parameter_id"])
        if number not in NetworkParameter._value2member_map_:
            return Reply(Status.UNSUPPORTED, {"parameter_id": number})
        parameter = NetworkParameter(number)
        _index, kind = NETWORK_PARAMETER_TYPES[parameter]
        try:
            value, _rest = kind.deserialize(bytes(request.params.get("parameter") or b""))
        except ValueError:
            return Reply(Status.INVALID_VALUE, {"parameter_id": parameter})
        if parameter == NetworkParameter.permit_join:
            if not self.network_up:
                return Reply(Status.NO_NETWORK, {"parameter_id": parameter})
            self.world.permit(COORDINATOR_NWK, int(value))
            LOGGER.info("Permit join %s", f"open for {int(value)} s" if value else "closed")
        elif parameter == NetworkParameter.watchdog_ttl:
            self.watchdog_ttl = int(value)
        else:
            try:
                self.parameters.write(parameter, value)
            except ValueError as exc:
                LOGGER.info("write_parameter %s refused: %s", parameter.name, exc)
                return Reply(Status.UNSUPPORTED, {"parameter_id": parameter})
            self._state.soon()
        return Reply(Status.SUCCESS, {"parameter_id": parameter})

    def _update_neighbor(self, request: Request) -> Reply:
        return Reply(Status.SUCCESS, dict(request.params))

    # --- APS data ----------------------------------------------------------------------------------

    def _aps_data_request(self, request: Request) -> Reply:
        params = request.params
        request_id = int(params["request_id"])
        if not self.network_up:
            return Reply(Status.NO_NETWORK, {"device_state": self._told_state(), "request_id": request_id})
        if len(self._queue) >= APS_QUEUE_SIZE:
            LOGGER.info("APS data request %d refused: the queue is full (BUSY)", request_id)
            return Reply(Status.BUSY, {"device_state": self._told_state(), "request_id": request_id})
        dst = params["dst"]
        frame = ApsFrame(
            int(params["src_ep"]),
            int(dst.endpoint or 0),
            int(params["profile_id"]),
            int(params["cluster_id"]),
            bytes(params["asdu"]),
        )
        confirm = _Confirm(request_id, dst, int(params["src_ep"]), TXStatus.SUCCESS)
        self._queue.append(confirm)
        self.parameters.nwk_frame_counter += 1
        self._state.soon()
        acked = dt.DeconzTransmitOptions.USE_APS_ACKS in dt.DeconzTransmitOptions(params["tx_options"])
        self._transmit(confirm, frame, acked=acked)
        return Reply(Status.SUCCESS, {"device_state": self._told_state(), "request_id": request_id})

    def _transmit(self, confirm: _Confirm, frame: ApsFrame, *, acked: bool) -> None:
        """The frame goes on air; its confirm becomes ready when the outcome is known."""
        dst = confirm.dst
        mode = dst.address_mode
        if mode == dt.AddressMode.GROUP:
            self.world.broadcast(frame, int(dst.address))
            self._confirm_later(confirm, TXStatus.SUCCESS, 0.0)
            return
        nwk = int(dst.address) if mode == dt.AddressMode.NWK else self.world.nwk_of(zt.EUI64(dst.address))
        if nwk == COORDINATOR_NWK:
            self._confirm_later(confirm, TXStatus.SUCCESS, 0.0)
            if frame.is_zdo:
                self.world.later(0, lambda: self._coordinator_zdo(frame))
            return
        if nwk >= BROADCAST_FIRST:
            if (
                frame.is_zdo
                and frame.cluster_id == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req
                and len(frame.payload) > 1
            ):
                self.world.permit(COORDINATOR_NWK, frame.payload[1])  # it hears its own broadcast
            self.world.broadcast(frame)
            self._confirm_later(confirm, TXStatus.SUCCESS, 0.0)
            return
        route = self.world.route(nwk)
        status = self.faults.confirm_status or TXStatus.SUCCESS
        delay = self.faults.confirm_delay
        if route.reach is Reach.NO_ROUTE:
            LOGGER.info("Unicast to 0x%04X: no such device on the network", nwk)
            status, delay = TXStatus(zt.NWKStatus.NWK_ROUTE_DISCOVERY_FAILED), max(delay, NO_ACK_DELAY)
        elif route.reach is Reach.NO_ACK:
            LOGGER.info("Unicast to 0x%04X: the switch is silent", nwk)
            no_ack = zt.APSStatus.APS_NO_ACK if acked else zt.MACStatus.MAC_NO_ACK
            status, delay = TXStatus(no_ack), max(delay, NO_ACK_DELAY)
        elif status != TXStatus.SUCCESS:
            LOGGER.info("Unicast to 0x%04X: failed by fault (%s)", nwk, status.name)
        self._confirm_later(confirm, status, delay)  # the confirm is ready before any answer comes back
        if route.node is not None and status == TXStatus.SUCCESS:
            self.world.deliver(route.node, frame, delay)

    def _confirm_later(self, confirm: _Confirm, status: TXStatus, delay: float) -> None:
        confirm.status = status

        def ready() -> None:
            confirm.ready = True
            self._notify()

        self.world.later(delay, ready)

    def _coordinator_zdo(self, frame: ApsFrame) -> None:
        reply = coordinator_zdo.reply(self, frame)
        if reply is not None:
            self.frame_from_air(COORDINATOR_NWK, reply)

    def _aps_data_confirm(self, _request: Request) -> Reply:
        confirm = next((each for each in self._queue if each.ready), None)
        if confirm is None:
            return Reply(Status.FAILURE)
        self._queue.remove(confirm)
        return Reply(
            Status.SUCCESS,
            {
                "device_state": self._told_state(),
                "request_id": confirm.request_id,
                "dst_addr": confirm.dst,
                "src_ep": confirm.src_ep,
                "confirm_status": confirm.status,
                "reserved1": 0,
                "reserved2": 0,
                "reserved3": 0,
                "reserved4": 0,
            },
        )

    def _aps_data_indication(self, request: Request) -> Reply:
        if not self._indications:
            return Reply(Status.FAILURE)
        src, frame = self._indications.popleft()
        flags = dt.DataIndicationFlags(request.params.get("flags") or 0)
        broadcast = frame.is_zdo and frame.cluster_id == zdo_t.ZDOCmd.Device_annce
        linkquality = self.world.linkquality
        return Reply(
            Status.SUCCESS,
            {
                "device_state": self._told_state(),
                "dst_addr": _nwk_address(RX_ON_WHEN_IDLE if broadcast else COORDINATOR_NWK),
                "dst_ep": frame.dst_endpoint,
                "src_addr": self._source_address(src, flags),
                "src_ep": frame.src_endpoint,
                "profile_id": frame.profile_id,
                "cluster_id": frame.cluster_id,
                "asdu": dt.LongOctetString(frame.payload),
                "reserved1": 0,
                "reserved2": 0,
                "lqi": linkquality,
                "reserved3": 0,
                "reserved4": 0,
                "reserved5": 0,
                "reserved6": 0,
                "rssi": rssi_of(linkquality),
            },
        )

    def _source_address(self, src: int, flags: Any) -> Any:
        if dt.DataIndicationFlags.Include_Both_NWK_And_IEEE not in flags:
            return _nwk_address(src)
        node = self.world.online_node(src)
        address = dt.DeconzAddress()
        address.address_mode = dt.AddressMode.NWK_AND_IEEE
        address.address = dt.NWK(src)
        address.ieee = node.switch.ieee if node is not None else self.ieee
        return address


def _nwk_address(nwk: int) -> Any:
    return dt.DeconzAddress.from_zigpy_type(
        zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=zt.NWK(nwk))
    )
