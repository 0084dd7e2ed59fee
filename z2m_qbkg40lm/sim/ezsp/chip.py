"""An emulated EFR32 running EmberZNet's NCP firmware: the EZSP front-end of the simulated world.

`EzspChip` answers what bellows (and so the daemon with `adapter: ember` or `ezsp`) sends to form
or resume a network, permit joining, take joins, exchange ZCL and ZDO frames with the switches,
configure the stack and read its keys, tables and counters. Facts from Silicon Labs' UG100 (EZSP
reference) and the EmberZNet API documentation; layouts from bellows's command tables.

- After a reset the stack is down: `networkState` is NO_NETWORK until `networkInit` resumes the
  network kept in the tokens (`stackStatusHandler` NETWORK_UP follows) or answers NOT_JOINED.
  `formNetwork` takes the security state `setInitialSecurityState` gave, forms on the given
  channel and reports NETWORK_UP. Registered endpoints, the multicast table, permit join and the
  stack's RAM settings are lost on every reset, as on the real NCP.
- Sending and receiving is `messaging`, the keys and the security state `security`; the stack's
  settings, values, tokens and counters `stack_config`.
- Frames from the switches reach the host whatever their endpoint (the host's endpoints only
  describe the coordinator). A join is told by `trustCenterJoinHandler` (standard security,
  unsecured join, preconfigured key), a leave by DEVICE_LEFT. The switches are routers, so no
  `childJoinHandler` is sent: the child table holds end devices only, as in EmberZNet, and stays
  empty.
- Energy scans answer quiet channels. The Green Power sink table exists and stays empty. What
  bellows does not send (Green Power devices, ZLL, mfglib, source routes beyond accepting them,
  multiple networks) is not emulated, and answers invalidCommand.
"""

# bellows's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import bellows.types as bt
import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.sim.chip_state import ChipStateFile
from z2m_qbkg40lm.sim.coordinator_zdo import COORDINATOR_NODE_DESCRIPTOR, RegisteredEndpoint
from z2m_qbkg40lm.sim.emulated_chip import Faults
from z2m_qbkg40lm.sim.ezsp.ash import ResetReason
from z2m_qbkg40lm.sim.ezsp.messaging import Messaging
from z2m_qbkg40lm.sim.ezsp.ncp import PROTOCOL_VERSION, EzspNcp, Handler
from z2m_qbkg40lm.sim.ezsp.network import NetworkSettings, NetworkTokens
from z2m_qbkg40lm.sim.ezsp.security import ZERO_EUI64, Security
from z2m_qbkg40lm.sim.ezsp.serial import AshPort
from z2m_qbkg40lm.sim.ezsp.stack_config import StackConfig
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.world import (
    COORDINATOR_NWK,
    DEFAULT_LINKQUALITY,
    Node,
    SimulatedWorld,
)

LOGGER = logging.getLogger(__name__)

STACK_PROFILE_PRO: Final = 2
QUIET_CHANNEL_RSSI: Final = -92
NULL_NODE_ID: Final = 0xFFFF
UNKNOWN_NODE_ID: Final = 0xFFFE


class EzspChip:
    """EmberZNet on an emulated EFR32, with the simulated switches it can reach."""

    def __init__(
        self,
        state_file: Path | None = None,
        *,
        switches: int = 0,
        linkquality: int = DEFAULT_LINKQUALITY,
        protocol_version: int = PROTOCOL_VERSION,
        rng: random.Random | None = None,
    ) -> None:
        self._state = ChipStateFile(state_file, self._snapshot)
        self._rng = rng or random.Random()
        self.world = SimulatedWorld(self, linkquality=linkquality, rng=self._rng)
        self.faults = Faults()
        self.ncp = EzspNcp(protocol_version)
        self.ncp.after_command = self._after_command
        self.tokens = NetworkTokens()
        self.port: AshPort | None = None
        """The serial port a line connects to (`serial_port()` makes it): drops, resets, line faults."""
        # RAM: lost on every reset.
        self._network_up = False
        self._extended_timeouts: set[str] = set()
        self._load(switches)
        self.security = Security(self)
        self.messaging = Messaging(self)
        self._saved_stack_changes = self.stack.changes
        self._provide_tokens()
        self.ncp.register(self.stack.handlers(protocol_version))
        self.ncp.register(self._handlers())

    # --- state file ----------------------------------------------------------------------------

    def _load(self, switches: int) -> None:
        data = self._state.read()
        if data is not None and "nvram" in data:
            raise ValueError(
                f"emulator state file {self._state.path} belongs to a Z-Stack chip, not an EmberZNet one"
            )
        if data is not None and data.get("chip", "ezsp") != "ezsp":
            raise ValueError(f"emulator state file {self._state.path} belongs to a {data.get('chip')} chip")
        if data is None:
            self.eui64 = zt.EUI64(bytes(self._rng.randrange(256) for _ in range(8)))
            self.stack = StackConfig(self.eui64)
            for _ in range(switches):
                self.world.add_switch(pairing=True)
            LOGGER.info("Factory-new EFR32 %s with %d switch(es) in pairing mode", self.eui64, switches)
            self.save()
            return
        try:
            self.eui64 = zt.EUI64.convert(data["eui64"])
            self.tokens = NetworkTokens.from_json(data["tokens"])
            self.stack = StackConfig(self.eui64, state=data.get("stack"))
            self.world.load(data.get("switches", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"emulator state file {self._state.path} cannot be used: {exc!r}") from exc
        LOGGER.info(
            "EFR32 %s loaded from %s: %s, %d switch(es)",
            self.eui64,
            self._state.path,
            "network formed" if self.tokens.formed else "no network",
            len(self.world.nodes),
        )

    def _snapshot(self) -> dict[str, Any]:
        self._saved_stack_changes = self.stack.changes
        return {
            "chip": "ezsp",
            "eui64": str(self.eui64),
            "tokens": self.tokens.to_json(),
            "stack": self.stack.to_json(),
            "switches": self.world.records(),
        }

    def save(self) -> None:
        """Write the state file now (atomically)."""
        self._state.save()

    def _changed(self) -> None:
        self._state.soon()

    def _after_command(self) -> None:
        """A command may have written tokens: save soon if it did."""
        if self.stack.changes != self._saved_stack_changes:
            self._changed()

    def state_changed(self, *, membership: bool = False) -> None:
        """The world changed: save soon, or now when switches joined or left."""
        self._state.changed(membership=membership)

    def close(self) -> None:
        """Stop timers (the switches' too) and save; the serial line is the caller's."""
        self.world.close()
        self.save()

    # --- what the emulator and its control API see ------------------------------------------------

    @property
    def ieee(self) -> zt.EUI64:
        """The coordinator's EUI64 (a custom or restored one from the tokens, else the chip's own)."""
        return zt.EUI64(self.stack.eui64)

    @property
    def network_up(self) -> bool:
        """True while the coordinator runs its network."""
        return self._network_up

    @property
    def node_descriptor(self) -> zdo_t.NodeDescriptor:
        """What the coordinator answers to Node_Desc_req."""
        fields = {**COORDINATOR_NODE_DESCRIPTOR.as_dict(), "manufacturer_code": self.stack.manufacturer_code}
        return zdo_t.NodeDescriptor(**fields)

    @property
    def registered_endpoints(self) -> list[int]:
        """The endpoints the host added since the last reset."""
        return sorted(self.stack.endpoints)

    def registered_endpoint(self, endpoint: int) -> RegisteredEndpoint | None:
        """What the host added on an endpoint."""
        added = self.stack.endpoints.get(endpoint)
        if added is None:
            return None
        return RegisteredEndpoint(
            added.profile_id,
            added.device_id,
            added.device_version,
            list(added.input_clusters),
            list(added.output_clusters),
        )

    def serial_port(self) -> AshPort:
        """The chip's end of a serial line (`sim.serial_line`)."""
        if self.port is None:
            self.port = AshPort(self.ncp, on_reset=self.reset, muted=lambda: self.faults.muted)
        return self.port

    def drop_link(self, *, fault: bool = True) -> bool:
        """Cut the serial line; False when no host is connected."""
        if self.port is None:
            return False
        if fault:
            LOGGER.warning("Fault: dropping the serial link to the host")
        return self.port.drop()

    def spontaneous_reset(self) -> None:
        """Fault: the NCP reboots on its own (a watchdog): RSTACK, the stack down, RAM lost."""
        LOGGER.warning("Fault: the NCP resets (watchdog)")
        if self.port is not None:
            self.port.reset_by_itself(ResetReason.WATCHDOG)
        else:
            self.reset()

    def failure_status(self, status: str | int) -> bt.sl_Status:
        """A delivery failure status by its EmberZNet name or number (an sl_Status or an EmberStatus)."""
        try:
            if isinstance(status, str):
                name = status.upper()
                value = (
                    bt.sl_Status[name]
                    if name in bt.sl_Status.__members__
                    else bt.sl_Status.from_ember_status(bt.EmberStatus[name])
                )
            else:
                value = bt.sl_Status(status)
        except (KeyError, ValueError):
            raise ValueError(
                f"unknown EmberZNet status {status!r}; e.g. DELIVERY_FAILED, MAC_NO_ACK_RECEIVED, "
                "ZIGBEE_DELIVERY_FAILED (3074), NO_APS_ACK"
            ) from None
        if value == bt.sl_Status.OK:
            raise ValueError("SUCCESS is not a failure; send null to stop failing deliveries")
        return value

    def spoil_frames(
        self, *, corrupt_to_host: int = 0, lose_to_host: int = 0, lose_from_host: int = 0
    ) -> None:
        """Fault: the next ASH DATA frames are corrupted or lost on the line (bellows retransmits)."""
        faults = self.serial_port().faults
        faults.corrupt_to_host += corrupt_to_host
        faults.lose_to_host += lose_to_host
        faults.lose_from_host += lose_from_host

    def reset(self) -> None:
        """The NCP rebooted (the host's RST or a fault): RAM state is lost, the tokens stay."""
        self.ncp.reset()
        self.stack.reset()
        self._network_up = False
        self.world.network_down()
        self.world.forget_permits()
        self.security.pending = None
        self._extended_timeouts.clear()
        self.save()

    # --- tokens the network keeps ---------------------------------------------------------------

    def _provide_tokens(self) -> None:
        """NODE_DATA and TRUST_CENTER, which bellows reads (and writes) to repair a network, come
        from the network's own record; the token factory reset erases that record."""
        keys = bt.NV3KeyId
        self.stack.provide_token(
            keys.NVM3KEY_STACK_NODE_DATA,
            len(self._node_data().serialize()),
            lambda: self._node_data().serialize(),
            self._write_node_data,
            factory_reset=self._factory_reset_network,
        )
        self.stack.provide_token(
            keys.NVM3KEY_STACK_TRUST_CENTER,
            len(self._trust_center().serialize()),
            lambda: self._trust_center().serialize(),
        )

    def _node_data(self) -> bt.NV3StackNodeData:
        network = self.tokens.network
        return bt.NV3StackNodeData(
            panId=network.pan_id if network is not None else 0xFFFF,
            radioTxPower=network.tx_power if network is not None else 0,
            radioFreqChannel=network.channel if network is not None else 0,
            stackProfile=STACK_PROFILE_PRO,
            nodeType=bt.EmberNodeType.COORDINATOR if network is not None else bt.EmberNodeType.UNKNOWN_DEVICE,
            zigbeeNodeId=COORDINATOR_NWK if network is not None else UNKNOWN_NODE_ID,
            extendedPanId=bt.ExtendedPanId.convert(
                network.extended_pan_id if network is not None else ZERO_EUI64
            ),
        )

    def _write_node_data(self, data: bytes) -> None:
        """A host persists a new TX power this way (the rest must match the network)."""
        node_data, _rest = bt.NV3StackNodeData.deserialize(data)
        if self.tokens.network is not None:
            self.tokens.network = replace(self.tokens.network, tx_power=int(node_data.radioTxPower))
            self._changed()

    def _trust_center(self) -> bt.NV3StackTrustCenterToken:
        security = self.tokens.security
        return bt.NV3StackTrustCenterToken(
            mode=security.bitmask & 0xFFFF if security is not None else 0,
            eui64=self.ieee,
            key=bt.KeyData(security.preconfigured_key if security is not None else bytes(16)),
        )

    def _factory_reset_network(self) -> None:
        LOGGER.info("Token factory reset: the network, its keys and the link key table are erased")
        self.tokens.factory_reset()
        self._changed()

    # --- the world's events ------------------------------------------------------------------------

    def device_joined(self, node: Node, parent: int) -> None:
        """A switch joined: the trust centre tells the host."""
        switch = node.switch
        self.ncp.callback(
            "trustCenterJoinHandler",
            {
                "newNodeId": switch.nwk,
                "newNodeEui64": switch.ieee,
                "status": bt.EmberDeviceUpdate.STANDARD_SECURITY_UNSECURED_JOIN,
                "policyDecision": bt.EmberJoinDecision.USE_PRECONFIGURED_KEY,
                "parentOfNewNodeId": parent,
            },
        )

    def device_left(self, node: Node) -> None:
        """A switch left the network."""
        switch = node.switch
        self.ncp.callback(
            "trustCenterJoinHandler",
            {
                "newNodeId": switch.nwk,
                "newNodeEui64": switch.ieee,
                "status": bt.EmberDeviceUpdate.DEVICE_LEFT,
                "policyDecision": bt.EmberJoinDecision.NO_ACTION,
                "parentOfNewNodeId": NULL_NODE_ID,
            },
        )

    def frame_from_air(self, src: int, frame: ApsFrame) -> None:
        """A frame from a switch: `incomingMessageHandler`, whatever its endpoint.

        EmberZNet hands every APS data frame to the host; the endpoints a host adds only describe
        the coordinator to ZDO discovery (and are lost on every reset, bellows's resets while
        forming included).
        """
        broadcast = frame.is_zdo and frame.cluster_id == zdo_t.ZDOCmd.Device_annce
        self.messaging.incoming(src, frame, broadcast=broadcast)

    # --- commands ----------------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {
            "getNodeId": lambda _p: (COORDINATOR_NWK if self._network_up else UNKNOWN_NODE_ID,),
            "networkState": self._network_state,
            "networkInit": self._network_init,
            "formNetwork": self._form_network,
            "leaveNetwork": self._leave_network,
            "getNetworkParameters": self._network_parameters,
            "getChildData": lambda _p: (bt.sl_Status.NOT_JOINED, _empty_child()),
            "setChildData": lambda _p: (bt.sl_Status.OK,),
            "lookupEui64ByNodeId": self._lookup_eui64,
            "lookupNodeIdByEui64": self._lookup_node_id,
            "permitJoining": self._permit_joining,
            "setConcentrator": lambda _p: (bt.sl_Status.OK,),
            "setSourceRouteDiscoveryMode": lambda _p: (0,),
            "setSourceRoute": lambda _p: (bt.sl_Status.OK,),
            "setExtendedTimeout": self._set_extended_timeout,
            "getExtendedTimeout": self._get_extended_timeout,
            "setRadioPower": lambda _p: (bt.sl_Status.OK,),
            "removeDevice": self._remove_device,
            "startScan": self._start_scan,
            # The Green Power sink table is there, and stays empty: no GPD is emulated.
            "gpSinkTableClearAll": lambda _p: (),
        }
        if self.ncp.version >= 14:
            handlers["getAddressTableInfo"] = self._address_table_info
        else:
            handlers["getAddressTableRemoteNodeId"] = self._address_table_node_id
            handlers["getAddressTableRemoteEui64"] = self._address_table_eui64
        handlers.update(self.security.handlers())
        handlers.update(self.messaging.handlers())
        return {name: handler for name, handler in handlers.items() if self.ncp.has_command(name)}

    def _ok_or(self, ok: bool, failure: bt.sl_Status) -> bt.sl_Status:
        return bt.sl_Status.OK if ok else failure

    # network

    def _network_state(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        status = (
            bt.EmberNetworkStatus.JOINED_NETWORK if self._network_up else bt.EmberNetworkStatus.NO_NETWORK
        )
        return (status,)

    def _network_init(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        if self._network_up:
            return (bt.sl_Status.INVALID_STATE,)
        if not self.tokens.formed:
            LOGGER.info("networkInit: no network in the tokens (NOT_JOINED)")
            return (bt.sl_Status.NOT_JOINED,)
        network = self.tokens.network
        assert network is not None
        LOGGER.info(
            "Network resumed: channel %d, PAN id 0x%04X, extended PAN id %s",
            network.channel,
            network.pan_id,
            network.extended_pan_id,
        )
        self._go_up()
        return (bt.sl_Status.OK,)

    def _go_up(self) -> None:
        network = self.tokens.network
        assert network is not None
        self._network_up = True
        self.stack.network_up = True
        security = self.tokens.security
        key = None if security is None else security.network_key
        self.world.network_up(zt.EUI64.convert(network.extended_pan_id), network.pan_id, key)
        self.world.later(0, lambda: self.ncp.callback("stackStatusHandler", (bt.sl_Status.NETWORK_UP,)))

    def _form_network(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if self._network_up:
            return (bt.sl_Status.INVALID_STATE,)
        security = self.security.pending
        if security is None:
            LOGGER.warning("formNetwork before setInitialSecurityState refused")
            return (bt.sl_Status.ZIGBEE_SECURITY_STATE_NOT_SET,)
        network = NetworkSettings.from_parameters(params["parameters"])
        if not 11 <= network.channel <= 26:
            return (bt.sl_Status.INVALID_PARAMETER,)
        self.tokens.network = network
        self.tokens.security = security
        management = bt.NV3StackNetworkManagementToken(
            active_channels=bt.Channels(network.channels),
            manager_node_id=network.nwk_manager_id,
            update_id=0,  # formNetwork ignores the parameters' update id; a host writes the token
            padding=0,
        )
        self.stack.set_token(bt.NV3KeyId.NVM3KEY_STACK_NETWORK_MANAGEMENT, management.serialize())
        LOGGER.info(
            "Network formed: channel %d, PAN id 0x%04X, extended PAN id %s",
            network.channel,
            network.pan_id,
            network.extended_pan_id,
        )
        self._go_up()
        self.save()
        return (bt.sl_Status.OK,)

    def _leave_network(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        if not self._network_up:
            return (bt.sl_Status.INVALID_STATE,)
        LOGGER.info("The coordinator leaves its network")
        self.tokens.leave()
        self._network_up = False
        self.stack.network_up = False
        self.world.network_down()
        self.save()
        self.world.later(0, lambda: self.ncp.callback("stackStatusHandler", (bt.sl_Status.NETWORK_DOWN,)))
        return (bt.sl_Status.OK,)

    def _network_parameters(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        network = self.tokens.network
        if not self._network_up or network is None:
            return (bt.sl_Status.NOT_JOINED, bt.EmberNodeType.UNKNOWN_DEVICE, _empty_parameters())
        parameters = network.parameters()
        management = self.stack.token(bt.NV3KeyId.NVM3KEY_STACK_NETWORK_MANAGEMENT)
        if management is not None:
            token, _rest = bt.NV3StackNetworkManagementToken.deserialize(management)
            parameters = parameters.replace(nwkUpdateId=token.update_id)
        return (bt.sl_Status.OK, bt.EmberNodeType.COORDINATOR, parameters)

    # addresses

    def _lookup_eui64(self, params: dict[str, Any]) -> tuple[Any, ...]:
        nwk = int(params["nodeId"])
        if nwk == COORDINATOR_NWK and self._network_up:
            return (bt.sl_Status.OK, self.ieee)
        node = self.world.online_node(nwk)
        if node is None:
            return (bt.sl_Status.NOT_FOUND, zt.EUI64.convert(ZERO_EUI64))
        return (bt.sl_Status.OK, node.switch.ieee)

    def _lookup_node_id(self, params: dict[str, Any]) -> dict[str, Any]:
        nwk = self.world.nwk_of(params["eui64"])
        node = self.world.nodes.get(params["eui64"])
        known = nwk == COORDINATOR_NWK or (node is not None and self.world.online(node))
        return {
            "status": bt.sl_Status.OK if known else bt.sl_Status.NOT_FOUND,
            "nodeId": nwk if known else NULL_NODE_ID,
        }

    def _address_table_info(self, params: dict[str, Any]) -> tuple[Any, ...]:
        online = self.world.online_nodes()
        index = int(params["index"])
        if index >= len(online):
            return (bt.sl_Status.NOT_FOUND, NULL_NODE_ID, zt.EUI64.convert(ZERO_EUI64))
        switch = online[index].switch
        return (bt.sl_Status.OK, switch.nwk, switch.ieee)

    def _address_table_entry(self, index: int) -> Node | None:
        """The address table lists the switches on the network (what a host's backup reads)."""
        online = self.world.online_nodes()
        return online[index] if index < len(online) else None

    def _address_table_node_id(self, params: dict[str, Any]) -> tuple[Any, ...]:
        node = self._address_table_entry(int(params["addressTableIndex"]))
        return (node.switch.nwk if node is not None else NULL_NODE_ID,)

    def _address_table_eui64(self, params: dict[str, Any]) -> tuple[Any, ...]:
        node = self._address_table_entry(int(params["addressTableIndex"]))
        return (node.switch.ieee if node is not None else zt.EUI64.convert(ZERO_EUI64),)

    def _set_extended_timeout(self, params: dict[str, Any]) -> tuple[Any, ...]:
        eui64 = str(params["remoteEui64"])
        if params["extendedTimeout"]:
            self._extended_timeouts.add(eui64)
        else:
            self._extended_timeouts.discard(eui64)
        return (bt.sl_Status.OK,) if self.ncp.version >= 14 else ()

    def _get_extended_timeout(self, params: dict[str, Any]) -> tuple[Any, ...]:
        extended = str(params["remoteEui64"]) in self._extended_timeouts
        if self.ncp.version >= 14:
            return (bt.sl_Status.OK if extended else bt.sl_Status.FAIL,)
        return (extended,)

    # joining and scanning

    def _permit_joining(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if not self._network_up:
            return (bt.sl_Status.NETWORK_DOWN,)
        duration = int(params["duration"])
        self.world.permit(COORDINATOR_NWK, duration if duration != 0xFF else 0xFFFF)
        LOGGER.info("Permit join %s", f"open for {duration} s" if duration else "closed")
        return (bt.sl_Status.OK,)

    def _remove_device(self, params: dict[str, Any]) -> tuple[Any, ...]:
        node = self.world.nodes.get(params["targetLong"])
        if node is None or not self.world.online(node):
            return (bt.sl_Status.NOT_FOUND,)
        self.world.leave(node)
        return (bt.sl_Status.OK,)

    def _start_scan(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if params["scanType"] != bt.EzspNetworkScanType.ENERGY_SCAN:
            return (bt.sl_Status.NOT_SUPPORTED,)
        channels = [channel for channel in range(11, 27) if int(params["channelMask"]) & (1 << channel)]

        def report() -> None:
            for channel in channels:
                self.ncp.callback("energyScanResultHandler", (channel, QUIET_CHANNEL_RSSI))
            self.ncp.callback("scanCompleteHandler", (0, bt.sl_Status.OK))

        self.world.later(0.01 * len(channels), report)
        return (bt.sl_Status.OK,)


def _empty_parameters() -> bt.EmberNetworkParameters:
    return bt.EmberNetworkParameters(
        extendedPanId=bt.ExtendedPanId.convert(ZERO_EUI64),
        panId=0,
        radioTxPower=0,
        radioChannel=0,
        joinMethod=bt.EmberJoinMethod.USE_MAC_ASSOCIATION,
        nwkManagerId=0,
        nwkUpdateId=0,
        channels=bt.Channels.NO_CHANNELS,
    )


def _empty_child() -> bt.EmberChildDataV10:
    return bt.EmberChildDataV10(
        eui64=zt.EUI64.convert(ZERO_EUI64),
        type=bt.EmberNodeType.UNKNOWN_DEVICE,
        id=NULL_NODE_ID,
        phy=0,
        power=0,
        timeout=0,
        timeout_remaining=0,
    )


def _multicast_entry(group: int, endpoint: int) -> bt.EmberMulticastTableEntry:
    return bt.EmberMulticastTableEntry(multicastId=group, endpoint=endpoint, networkIndex=0)
