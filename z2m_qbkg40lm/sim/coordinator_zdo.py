"""The coordinator's own ZDO answers: what the stack replies when the host asks the coordinator.

zigpy interviews its coordinator like any device (node, active endpoints, simple descriptors,
built from what the host registered: Z-Stack's `AF.Register`, EmberZNet's `addEndpoint`), may scan
energy through it and read its neighbour and routing tables. Anything else is answered
NOT_SUPPORTED. The answers are the same whatever the chip; only the node descriptor differs (its
manufacturer code).
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import zigpy.types as t
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.sim.frames import ZDO_ENDPOINT, ZDO_PROFILE, ApsFrame
from z2m_qbkg40lm.sim.neighbours import neighbours_body

if TYPE_CHECKING:
    from z2m_qbkg40lm.sim.world import SimulatedWorld

LOGGER = logging.getLogger(__name__)

QUIET_CHANNEL_ENERGY: Final = 20


@dataclass
class RegisteredEndpoint:
    """An endpoint the host registered on the coordinator."""

    profile: int
    device_type: int
    version: int
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)


class CoordinatorView(Protocol):
    """What the ZDO answers need to know of the coordinator."""

    @property
    def ieee(self) -> t.EUI64:
        """The coordinator's IEEE address."""

    @property
    def world(self) -> SimulatedWorld:
        """The switches around it."""

    @property
    def node_descriptor(self) -> zdo_t.NodeDescriptor:
        """Its node descriptor."""

    @property
    def registered_endpoints(self) -> list[int]:
        """The endpoints the host registered since the last reset."""

    def registered_endpoint(self, endpoint: int) -> RegisteredEndpoint | None:
        """What the host registered on an endpoint."""


# Z-Stack's defaults: no manufacturer code of its own.
COORDINATOR_NODE_DESCRIPTOR: Final = zdo_t.NodeDescriptor(
    logical_type=zdo_t.LogicalType.Coordinator,
    complex_descriptor_available=0,
    user_descriptor_available=0,
    reserved=0,
    aps_flags=0,
    frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
    mac_capability_flags=zdo_t.NodeDescriptor.MACCapabilityFlags(0x8F),
    manufacturer_code=0x0000,
    maximum_buffer_size=80,
    maximum_incoming_transfer_size=160,
    server_mask=0x2C41,
    maximum_outgoing_transfer_size=160,
    descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability.NONE,
)


def channel_list(mask: int) -> list[int]:
    """The channels (11-26) of a channel mask."""
    return [channel for channel in range(11, 27) if int(mask) & (1 << channel)]


def reply(coordinator: CoordinatorView, frame: ApsFrame) -> ApsFrame | None:
    """The coordinator's answer to a ZDO request for itself; None for what needs none (responses)."""
    if frame.cluster_id & 0x8000 or not frame.payload:
        return None  # responses a host sends to itself: nothing to answer
    body = answer(coordinator, frame)
    return ApsFrame(
        ZDO_ENDPOINT, ZDO_ENDPOINT, ZDO_PROFILE, frame.cluster_id | 0x8000, frame.payload[:1] + body
    )


def answer(coordinator: CoordinatorView, frame: ApsFrame) -> bytes:
    """The body (status first, TSN excluded) of the coordinator's answer to a ZDO request."""
    nwk = t.NWK(0x0000)
    success: bytes = zdo_t.Status.SUCCESS.serialize()
    ieee: bytes = coordinator.ieee.serialize()
    try:
        command = zdo_t.ZDOCmd(frame.cluster_id)
        _names, schema = zdo_t.CLUSTERS[command]
        args: list[Any]
        args, _rest = t.deserialize(frame.payload[1:], schema)
    except (KeyError, ValueError) as exc:
        LOGGER.debug("Coordinator: unsupported ZDO request 0x%04X: %s", frame.cluster_id, exc)
        return zdo_t.Status.NOT_SUPPORTED.serialize()
    cmd = zdo_t.ZDOCmd
    if command == cmd.Node_Desc_req:
        return success + nwk.serialize() + coordinator.node_descriptor.serialize()
    if command == cmd.Active_EP_req:
        endpoints = t.LVList[t.uint8_t, t.uint8_t](coordinator.registered_endpoints)
        return success + nwk.serialize() + endpoints.serialize()
    if command == cmd.Simple_Desc_req:
        registered = coordinator.registered_endpoint(int(args[1]))
        if registered is None:
            return zdo_t.Status.NOT_ACTIVE.serialize() + nwk.serialize() + b"\x00"
        descriptor = zdo_t.SizePrefixedSimpleDescriptor(
            endpoint=int(args[1]),
            profile=registered.profile,
            device_type=registered.device_type,
            device_version=registered.version,
            input_clusters=registered.inputs,
            output_clusters=registered.outputs,
        )
        described: bytes = descriptor.serialize()
        return success + nwk.serialize() + described
    if command == cmd.IEEE_addr_req:
        return success + ieee + nwk.serialize()
    if command == cmd.NWK_addr_req and args[0] == coordinator.ieee:
        return success + ieee + nwk.serialize()
    if command == cmd.Mgmt_Lqi_req:
        return success + _neighbours(coordinator, int(args[0]))
    if command == cmd.Mgmt_Rtg_req:
        # The switches are all one hop away: no routes to list (Zigbee2MQTT's network map asks).
        return success + bytes([0, int(args[0]), 0])
    if command == cmd.Mgmt_NWK_Update_req:
        update = args[0]
        channels = channel_list(update.ScanChannels)
        energies = t.LVList[t.uint8_t, t.uint8_t]([QUIET_CHANNEL_ENERGY] * len(channels))
        scanned: bytes = update.ScanChannels.serialize()
        return (
            success + scanned + t.uint16_t(0).serialize() + t.uint16_t(0).serialize() + energies.serialize()
        )
    return zdo_t.Status.NOT_SUPPORTED.serialize()


def _neighbours(coordinator: CoordinatorView, start: int) -> bytes:
    """Mgmt_Lqi_rsp body after the status: the switches on the network, as router neighbours."""
    world = coordinator.world
    online = [node.switch for node in world.online_nodes()]
    extended_pan_id = t.ExtendedPanId(world.running or t.EUI64.convert("00:00:00:00:00:00:00:00"))
    return neighbours_body(extended_pan_id, online, start, world.linkquality)
