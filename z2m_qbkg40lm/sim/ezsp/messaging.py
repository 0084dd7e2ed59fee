"""The EmberZNet NCP's messaging: unicasts, broadcasts and multicasts out, messages in.

Facts from Silicon Labs' UG100: `sendUnicast` answers with the APS sequence number the NCP gave
the frame, then `messageSentHandler` reports delivery (success once the switch acknowledged it,
DELIVERY_FAILED after the MAC retries when it is silent or has no route); broadcasts and
multicasts are not confirmed that way. Every APS data frame that arrives goes to the host as
`incomingMessageHandler`, with the last hop's LQI and RSSI. A unicast to the coordinator's own
address reaches its own ZDO (zigpy interviews its coordinator that way).
"""

# bellows's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Protocol

import bellows.types as bt
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.sim import coordinator_zdo
from z2m_qbkg40lm.sim.coordinator_zdo import CoordinatorView
from z2m_qbkg40lm.sim.emulated_chip import Faults
from z2m_qbkg40lm.sim.ezsp.ncp import EzspNcp, Handler
from z2m_qbkg40lm.sim.ezsp.stack_config import StackConfig
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.world import COORDINATOR_NWK, NO_ACK_DELAY, Reach

LOGGER = logging.getLogger(__name__)

NO_INDEX: Final = 0xFF


def rssi_of(linkquality: int) -> int:
    """The RSSI (dBm) a link of this LQI has: -90 dBm at 0, -30 dBm at 255, linear between."""
    return -90 + round(linkquality * 60 / 255)


class MessagingChip(CoordinatorView, Protocol):
    """What messaging needs of the chip."""

    ncp: EzspNcp
    faults: Faults
    stack: StackConfig

    @property
    def network_up(self) -> bool:
        """True while the coordinator runs its network."""


class Messaging:
    """The send commands and the incoming-message callback."""

    def __init__(self, chip: MessagingChip) -> None:
        self._chip = chip
        self._aps_sequence = 0

    def handlers(self) -> dict[str, Handler]:
        """The commands, by bellows's names."""
        return {
            "sendUnicast": self.send_unicast,
            "sendBroadcast": self.send_broadcast,
            "sendMulticast": self.send_multicast,
        }

    def incoming(self, src: int, frame: ApsFrame, *, broadcast: bool = False) -> None:
        node = self._chip.world.online_node(src)
        aps = bt.EmberApsFrame(
            profileId=frame.profile_id,
            clusterId=frame.cluster_id,
            sourceEndpoint=frame.src_endpoint,
            destinationEndpoint=frame.dst_endpoint,
            options=bt.EmberApsOption.APS_OPTION_NONE,
            groupId=0,
            sequence=self._chip.world.rng.randrange(256),
        )
        kind = (
            bt.EmberIncomingMessageType.INCOMING_BROADCAST
            if broadcast
            else bt.EmberIncomingMessageType.INCOMING_UNICAST
        )
        linkquality = self._chip.world.linkquality
        fields: dict[str, Any] = {
            "apsFrame": aps,
            "aps_frame": aps,
            "lastHopLqi": linkquality,
            "lqi": linkquality,
            "lastHopRssi": rssi_of(linkquality),
            "rssi": rssi_of(linkquality),
            "sender": src,
            "nwk": src,
            "eui64": node.switch.ieee if node is not None else self._chip.ieee,
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
        self._chip.ncp.callback("incomingMessageHandler", fields)

    def _next_aps_sequence(self) -> int:
        self._aps_sequence = (self._aps_sequence + 1) % 256
        return self._aps_sequence

    def send_unicast(self, params: dict[str, Any]) -> tuple[Any, ...]:
        v14 = self._chip.ncp.version >= 14
        aps, frame = self._outgoing(params)
        destination = int(params["nwk" if v14 else "indexOrDestination"])
        tag = int(params["message_tag" if v14 else "messageTag"])
        message = frame.payload
        kind = params["message_type" if v14 else "type"]
        if not self._chip.network_up:
            return (bt.sl_Status.NETWORK_DOWN, 0)
        if kind not in (
            bt.EmberOutgoingMessageType.OUTGOING_DIRECT,
            bt.EmberOutgoingMessageType.OUTGOING_VIA_ADDRESS_TABLE,
        ):
            return (bt.sl_Status.INVALID_PARAMETER, 0)
        sequence = self._next_aps_sequence()
        sent = aps.replace(sequence=sequence)
        self._chip.stack.nwk_frame_counter += 1
        if destination == COORDINATOR_NWK:
            self._confirm(kind, destination, sent, tag, message, bt.sl_Status.OK, 0.0)
            if frame.is_zdo:
                self._chip.world.later(0, lambda: self._coordinator_zdo(frame))
            return (bt.sl_Status.OK, sequence)
        route = self._chip.world.route(destination)
        status = self._chip.faults.confirm_status or bt.sl_Status.OK
        delay = self._chip.faults.confirm_delay
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
            self._chip.world.deliver(route.node, frame, delay)
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
        if self._chip.faults.confirm_delay:
            LOGGER.info("Fault: messageSentHandler for tag %d held back %d ms", tag, round(delay * 1000))
        self._chip.world.later(delay, lambda: self._chip.ncp.callback("messageSentHandler", fields))

    def _coordinator_zdo(self, frame: ApsFrame) -> None:
        reply = coordinator_zdo.reply(self._chip, frame)
        if reply is not None:
            self.incoming(COORDINATOR_NWK, reply)

    def send_broadcast(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if not self._chip.network_up:
            return (bt.sl_Status.NETWORK_DOWN, 0)
        _aps, frame = self._outgoing(params)
        if (
            frame.is_zdo
            and frame.cluster_id == zdo_t.ZDOCmd.Mgmt_Permit_Joining_req
            and len(frame.payload) > 1
        ):
            self._chip.world.permit(COORDINATOR_NWK, frame.payload[1])  # it hears its own broadcast
        self._chip.world.broadcast(frame)
        return (bt.sl_Status.OK, self._next_aps_sequence())

    def send_multicast(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if not self._chip.network_up:
            return (bt.sl_Status.NETWORK_DOWN, 0)
        aps, frame = self._outgoing(params)
        self._chip.world.broadcast(frame, int(aps.groupId))
        return (bt.sl_Status.OK, self._next_aps_sequence())

    def _outgoing(self, params: dict[str, Any]) -> tuple[Any, ApsFrame]:
        """A send command's APS header and frame (the parameters' names changed in EZSP 14)."""
        v14 = self._chip.ncp.version >= 14
        aps = params["aps_frame" if v14 else "apsFrame"]
        return aps, _frame_of(aps, bytes(params["message" if v14 else "messageContents"]))


def _frame_of(aps: Any, message: bytes) -> ApsFrame:
    """The APS frame a send command describes."""
    return ApsFrame(
        int(aps.sourceEndpoint), int(aps.destinationEndpoint), int(aps.profileId), int(aps.clusterId), message
    )
