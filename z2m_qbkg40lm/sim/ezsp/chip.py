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
- `sendUnicast` answers with the APS sequence number it gave the frame, then `messageSentHandler`
  reports delivery: success once the switch has it, DELIVERY_FAILED after the MAC retries when
  it is silent or unknown (or when a fault says so). Broadcasts and multicasts are confirmed at
  once. Frames for the coordinator itself (zigpy interviews it) are answered by its ZDO.
- Frames from the switches come as `incomingMessageHandler` with the link's LQI and an RSSI
  derived from it, whatever their endpoint (the host's endpoints only describe the coordinator).
  A join is told by `trustCenterJoinHandler`
  (standard security, unsecured join, preconfigured key), a leave by DEVICE_LEFT. The switches
  are routers, so no `childJoinHandler` is sent: the child table holds end devices only, as in
  EmberZNet, and stays empty.
- Energy scans answer quiet channels. The Green Power sink table exists and stays empty. What
  bellows does not send (Green Power devices, ZLL, mfglib, source routes beyond accepting them,
  multiple networks) is not emulated, and answers invalidCommand.
"""

# bellows's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import bellows.types as bt
import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.sim import coordinator_zdo
from z2m_qbkg40lm.sim.chip_state import ChipStateFile
from z2m_qbkg40lm.sim.coordinator_zdo import COORDINATOR_NODE_DESCRIPTOR, RegisteredEndpoint
from z2m_qbkg40lm.sim.emulated_chip import Faults
from z2m_qbkg40lm.sim.ezsp.ash import ResetReason
from z2m_qbkg40lm.sim.ezsp.ncp import PROTOCOL_VERSION, EzspNcp, Handler
from z2m_qbkg40lm.sim.ezsp.network import LinkKey, NetworkSettings, NetworkTokens, SecuritySettings
from z2m_qbkg40lm.sim.ezsp.serial import AshPort
from z2m_qbkg40lm.sim.ezsp.stack_config import StackConfig
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

KEY_TABLE_SIZE: Final = 12
STACK_PROFILE_PRO: Final = 2
QUIET_CHANNEL_RSSI: Final = -92
NULL_NODE_ID: Final = 0xFFFF
UNKNOWN_NODE_ID: Final = 0xFFFE
NO_INDEX: Final = 0xFF
ZERO_EUI64: Final = "00:00:00:00:00:00:00:00"


def rssi_of(linkquality: int) -> int:
    """The RSSI (dBm) a link of this LQI has: -90 dBm at 0, -30 dBm at 255, linear between."""
    return -90 + round(linkquality * 60 / 255)


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
        """The serial port a line connects to (`port()` makes it): drops, resets, line faults."""
        # RAM: lost on every reset.
        self._network_up = False
        self._pending_security: SecuritySettings | None = None
        self._aps_sequence = 0
        self._extended_timeouts: set[str] = set()
        self._load(switches)
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
        if membership:
            self.save()
        else:
            self._changed()

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
        self.world.running = None
        self.world.forget_permits()
        self._pending_security = None
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
        self._incoming(src, frame, broadcast=broadcast)

    def _incoming(self, src: int, frame: ApsFrame, *, broadcast: bool = False) -> None:
        node = self.world.online_node(src)
        aps = bt.EmberApsFrame(
            profileId=frame.profile_id,
            clusterId=frame.cluster_id,
            sourceEndpoint=frame.src_endpoint,
            destinationEndpoint=frame.dst_endpoint,
            options=bt.EmberApsOption.APS_OPTION_NONE,
            groupId=0,
            sequence=self._rng.randrange(256),
        )
        kind = (
            bt.EmberIncomingMessageType.INCOMING_BROADCAST
            if broadcast
            else bt.EmberIncomingMessageType.INCOMING_UNICAST
        )
        linkquality = self.world.linkquality
        fields: dict[str, Any] = {
            "apsFrame": aps,
            "aps_frame": aps,
            "lastHopLqi": linkquality,
            "lqi": linkquality,
            "lastHopRssi": rssi_of(linkquality),
            "rssi": rssi_of(linkquality),
            "sender": src,
            "nwk": src,
            "eui64": node.switch.ieee if node is not None else self.ieee,
            "bindingIndex": NO_INDEX,
            "binding_index": NO_INDEX,
            "addressIndex": NO_INDEX,
            "address_index": NO_INDEX,
            "timestamp": int(asyncio.get_running_loop().time() * 1000) & 0xFFFFFFFF,
            "messageContents": frame.payload,
            "message": frame.payload,
            "type": kind,
            "message_type": kind,
        }
        self.ncp.callback("incomingMessageHandler", fields)

    # --- commands ----------------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {
            "getNodeId": lambda _p: (COORDINATOR_NWK if self._network_up else UNKNOWN_NODE_ID,),
            "networkState": self._network_state,
            "networkInit": self._network_init,
            "formNetwork": self._form_network,
            "leaveNetwork": self._leave_network,
            "getNetworkParameters": self._network_parameters,
            "setInitialSecurityState": self._set_initial_security,
            "getCurrentSecurityState": self._current_security,
            "exportKey": self._export_key,
            "getNetworkKeyInfo": self._network_key_info,
            "exportLinkKeyByIndex": self._export_link_key,
            "importLinkKey": self._import_link_key,
            "clearKeyTable": self._clear_key_table,
            "getChildData": lambda _p: (bt.sl_Status.NOT_JOINED, _empty_child()),
            "setChildData": lambda _p: (bt.sl_Status.OK,),
            "lookupEui64ByNodeId": self._lookup_eui64,
            "lookupNodeIdByEui64": self._lookup_node_id,
            "permitJoining": self._permit_joining,
            "sendUnicast": self._send_unicast,
            "sendBroadcast": self._send_broadcast,
            "sendMulticast": self._send_multicast,
            "setConcentrator": lambda _p: (bt.sl_Status.OK,),
            "setSourceRouteDiscoveryMode": lambda _p: (0,),
            "setSourceRoute": lambda _p: (bt.sl_Status.OK,),
            "setExtendedTimeout": self._set_extended_timeout,
            "getExtendedTimeout": self._get_extended_timeout,
            "setRadioPower": lambda _p: (bt.sl_Status.OK,),
            "importTransientKey": lambda _p: (bt.sl_Status.OK,),
            "removeDevice": self._remove_device,
            "startScan": self._start_scan,
            "findKeyTableEntry": self._find_key_table_entry,
            "eraseKeyTableEntry": lambda _p: (bt.sl_Status.OK,),
            # The Green Power sink table is there, and stays empty: no GPD is emulated.
            "gpSinkTableClearAll": lambda _p: (),
        }
        if self.ncp.version >= 14:
            handlers["getAddressTableInfo"] = self._address_table_info
        else:
            handlers["getAddressTableRemoteNodeId"] = self._address_table_node_id
            handlers["getAddressTableRemoteEui64"] = self._address_table_eui64
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
        self.world.running = zt.EUI64.convert(network.extended_pan_id)
        self.world.later(0, lambda: self.ncp.callback("stackStatusHandler", (bt.sl_Status.NETWORK_UP,)))

    def _form_network(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if self._network_up:
            return (bt.sl_Status.INVALID_STATE,)
        security = self._pending_security
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
        self.world.running = None
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

    # security

    def _set_initial_security(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if self._network_up:
            return (bt.sl_Status.INVALID_STATE,)
        self._pending_security = SecuritySettings.from_state(params["state"])
        return (bt.sl_Status.OK,)

    def _current_security(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        security = self.tokens.security
        if not self._network_up or security is None:
            return (
                bt.sl_Status.NOT_JOINED,
                bt.EmberCurrentSecurityState(bitmask=0, trustCenterLongAddress=ZERO_EUI64),
            )
        bitmask = (
            bt.EmberCurrentSecurityBitmask.STANDARD_SECURITY_MODE
            | bt.EmberCurrentSecurityBitmask.GLOBAL_LINK_KEY
            | bt.EmberCurrentSecurityBitmask.HAVE_TRUST_CENTER_LINK_KEY
        )
        if security.hashed_link_key:
            bitmask = (bitmask & ~bt.EmberCurrentSecurityBitmask.GLOBAL_LINK_KEY) | (
                bt.EmberCurrentSecurityBitmask.TRUST_CENTER_USES_HASHED_LINK_KEY
            )
        state = bt.EmberCurrentSecurityState(bitmask=bitmask, trustCenterLongAddress=self.ieee)
        return (bt.sl_Status.OK, state)

    def _export_key(self, params: dict[str, Any]) -> dict[str, Any]:
        context = params["context"]
        security = self.tokens.security
        key = bytes(16)
        status = bt.sl_Status.NOT_FOUND
        if security is not None:
            if context.core_key_type == bt.SecurityManagerKeyType.NETWORK:
                key, status = security.network_key, bt.sl_Status.OK
            elif context.core_key_type == bt.SecurityManagerKeyType.TC_LINK:
                key, status = security.preconfigured_key, bt.sl_Status.OK
        return {"status": status, "key": bt.KeyData(key), "context": context}

    def _network_key_info(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        security = self.tokens.security
        info = bt.SecurityManagerNetworkKeyInfo(
            network_key_set=security is not None,
            alternate_network_key_set=False,
            network_key_sequence_number=security.network_key_sequence if security is not None else 0,
            alt_network_key_sequence_number=0,
            network_key_frame_counter=self.stack.nwk_frame_counter,
        )
        return (bt.sl_Status.OK, info)

    def _export_link_key(self, params: dict[str, Any]) -> dict[str, Any]:
        index = int(params["index"])
        keys = self.tokens.link_keys
        found = keys[index] if index < len(keys) else None
        eui64 = zt.EUI64.convert(found.partner if found is not None else ZERO_EUI64)
        metadata = bt.SecurityManagerAPSKeyMetadata(
            bitmask=0,
            outgoing_frame_counter=found.outgoing_frame_counter if found is not None else 0,
            incoming_frame_counter=found.incoming_frame_counter if found is not None else 0,
            ttl_in_seconds=0,
        )
        context = bt.SecurityManagerContextV13(
            core_key_type=bt.SecurityManagerKeyType.APP_LINK,
            key_index=index,
            derived_type=bt.SecurityManagerDerivedKeyTypeV13.NONE,
            eui64=eui64,
            multi_network_index=0,
            flags=bt.SecurityManagerContextFlags.NONE,
            psa_key_alg_permission=0,
        )
        return {
            "eui64": eui64,
            "context": context,
            "plaintext_key": bt.KeyData(found.key if found is not None else bytes(16)),
            "key_data": metadata,
            "status": bt.sl_Status.OK if found is not None else bt.sl_Status.NOT_FOUND,
        }

    def _import_link_key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        index = int(params["index"])
        if index >= KEY_TABLE_SIZE:
            return (bt.sl_Status.INVALID_INDEX,)
        keys = self.tokens.link_keys
        entry = LinkKey(str(params["address"]), bytes(params["key"]))
        if index < len(keys):
            keys[index] = entry
        else:
            keys.append(entry)
        self._changed()
        return (bt.sl_Status.OK,)

    def _clear_key_table(self, _params: dict[str, Any]) -> tuple[Any, ...]:
        self.tokens.link_keys.clear()
        self._changed()
        return (bt.sl_Status.OK,)

    def _find_key_table_entry(self, params: dict[str, Any]) -> tuple[Any, ...]:
        wanted = str(params["address"])
        for index, key in enumerate(self.tokens.link_keys):
            if key.partner == wanted:
                return (index,)
        return (NO_INDEX,)

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

    # sending

    def _next_aps_sequence(self) -> int:
        self._aps_sequence = (self._aps_sequence + 1) % 256
        return self._aps_sequence

    def _send_unicast(self, params: dict[str, Any]) -> tuple[Any, ...]:
        v14 = self.ncp.version >= 14
        aps = params["aps_frame" if v14 else "apsFrame"]
        destination = int(params["nwk" if v14 else "indexOrDestination"])
        tag = int(params["message_tag" if v14 else "messageTag"])
        message = bytes(params["message" if v14 else "messageContents"])
        kind = params["message_type" if v14 else "type"]
        if not self._network_up:
            return (bt.sl_Status.NETWORK_DOWN, 0)
        if kind not in (
            bt.EmberOutgoingMessageType.OUTGOING_DIRECT,
            bt.EmberOutgoingMessageType.OUTGOING_VIA_ADDRESS_TABLE,
        ):
            return (bt.sl_Status.INVALID_PARAMETER, 0)
        sequence = self._next_aps_sequence()
        sent = aps.replace(sequence=sequence)
        frame = _frame_of(aps, message)
        self.stack.nwk_frame_counter += 1
        if destination == COORDINATOR_NWK:
            self._confirm(kind, destination, sent, tag, message, bt.sl_Status.OK, 0.0)
            if frame.is_zdo:
                self.world.later(0, lambda: self._coordinator_zdo(frame))
            return (bt.sl_Status.OK, sequence)
        route = self.world.route(destination)
        status = self.faults.confirm_status or bt.sl_Status.OK
        delay = self.faults.confirm_delay
        if route.reach is Reach.NO_ROUTE:
            LOGGER.info("Unicast to 0x%04X: no such device on the network (DELIVERY_FAILED)", destination)
            status, delay = bt.sl_Status.ZIGBEE_DELIVERY_FAILED, max(delay, NO_ACK_DELAY)
        elif route.reach is Reach.NO_ACK:
            LOGGER.info("Unicast to 0x%04X: the switch is silent (DELIVERY_FAILED)", destination)
            status, delay = bt.sl_Status.ZIGBEE_DELIVERY_FAILED, max(delay, NO_ACK_DELAY)
        elif status != bt.sl_Status.OK:
            LOGGER.info("Unicast to 0x%04X: failed by fault (%s)", destination, status.name)
        self._confirm(kind, destination, sent, tag, message, status, delay)
        if route.node is not None and status == bt.sl_Status.OK:
            self.world.deliver(route.node, frame, delay)
        return (bt.sl_Status.OK, sequence)

    def _confirm(  # noqa: PLR0917 - messageSentHandler's own fields
        self,
        kind: Any,
        destination: int,
        aps: Any,
        tag: int,
        message: bytes,
        status: bt.sl_Status,
        delay: float,
    ) -> None:
        fields = {
            "type": kind,
            "message_type": kind,
            "indexOrDestination": destination,
            "nwk": destination,
            "apsFrame": aps,
            "aps_frame": aps,
            "messageTag": tag,
            "message_tag": tag,
            "status": status,
            "messageContents": message,
            "message": message,
        }
        if self.faults.confirm_delay:
            LOGGER.info("Fault: messageSentHandler for tag %d held back %d ms", tag, round(delay * 1000))
        self.world.later(delay, lambda: self.ncp.callback("messageSentHandler", fields))

    def _coordinator_zdo(self, frame: ApsFrame) -> None:
        reply = coordinator_zdo.reply(self, frame)
        if reply is not None:
            self._incoming(COORDINATOR_NWK, reply)

    def _send_broadcast(self, params: dict[str, Any]) -> tuple[Any, ...]:
        v14 = self.ncp.version >= 14
        aps = params["aps_frame" if v14 else "apsFrame"]
        message = bytes(params["message" if v14 else "messageContents"])
        if not self._network_up:
            return (bt.sl_Status.NETWORK_DOWN, 0)
        frame = _frame_of(aps, message)
        if frame.is_zdo and frame.cluster_id == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req and len(message) > 1:
            self.world.permit(COORDINATOR_NWK, message[1])  # the coordinator hears its own broadcast
        self.world.broadcast(frame)
        return (bt.sl_Status.OK, self._next_aps_sequence())

    def _send_multicast(self, params: dict[str, Any]) -> tuple[Any, ...]:
        v14 = self.ncp.version >= 14
        aps = params["aps_frame" if v14 else "apsFrame"]
        message = bytes(params["message" if v14 else "messageContents"])
        if not self._network_up:
            return (bt.sl_Status.NETWORK_DOWN, 0)
        frame = _frame_of(aps, message)
        self.world.broadcast(frame, int(aps.groupId))
        return (bt.sl_Status.OK, self._next_aps_sequence())


def _frame_of(aps: bt.EmberApsFrame, message: bytes) -> ApsFrame:
    """The APS frame a send command describes."""
    return ApsFrame(
        int(aps.sourceEndpoint), int(aps.destinationEndpoint), int(aps.profileId), int(aps.clusterId), message
    )


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
