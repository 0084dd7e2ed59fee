"""The coordinator's own ZDO answers: what Z-Stack replies when the host asks the coordinator.

zigpy interviews its coordinator like any device (node, active endpoints, simple descriptors,
built from what the host registered with `AF.Register`), may scan energy through it and read its
neighbour table. Anything else is answered NOT_SUPPORTED.
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import zigpy.types as t
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.neighbours import neighbours_body

if TYPE_CHECKING:
    from z2m_qbkg40lm.sim.znp.chip import ZStackChip

LOGGER = logging.getLogger(__name__)

QUIET_CHANNEL_ENERGY: Final = 20

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


def answer(firmware: ZStackChip, frame: ApsFrame) -> bytes:
    """The body (status first, TSN excluded) of the coordinator's answer to a ZDO request."""
    nwk = t.NWK(0x0000)
    success: bytes = zdo_t.Status.SUCCESS.serialize()
    ieee: bytes = firmware.ieee.serialize()
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
        return success + nwk.serialize() + COORDINATOR_NODE_DESCRIPTOR.serialize()
    if command == cmd.Active_EP_req:
        endpoints = t.LVList[t.uint8_t, t.uint8_t](firmware.registered_endpoints)
        return success + nwk.serialize() + endpoints.serialize()
    if command == cmd.Simple_Desc_req:
        registered = firmware.registered_endpoint(int(args[1]))
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
    if command == cmd.NWK_addr_req and args[0] == firmware.ieee:
        return success + ieee + nwk.serialize()
    if command == cmd.Mgmt_Lqi_req:
        return success + _neighbours(firmware, int(args[0]))
    if command == cmd.Mgmt_NWK_Update_req:
        update = args[0]
        channels = channel_list(update.ScanChannels)
        energies = t.LVList[t.uint8_t, t.uint8_t]([QUIET_CHANNEL_ENERGY] * len(channels))
        scanned: bytes = update.ScanChannels.serialize()
        return (
            success + scanned + t.uint16_t(0).serialize() + t.uint16_t(0).serialize() + energies.serialize()
        )
    return zdo_t.Status.NOT_SUPPORTED.serialize()


def _neighbours(firmware: ZStackChip, start: int) -> bytes:
    """Mgmt_Lqi_rsp body after the status: the switches on the network, as router neighbours."""
    online = [node.switch for node in firmware.nodes.values() if firmware.online(node)]
    extended_pan_id = t.ExtendedPanId(firmware.nib.extendedPANID)
    return neighbours_body(extended_pan_id, online, start, firmware.linkquality)
