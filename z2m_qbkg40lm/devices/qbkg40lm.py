"""Aqara QBKG40LM, "Smart wall switch E1 (with neutral, single rocker)", model id lumi.switch.b1nc01.

The whole device in one declarative definition. Wire facts: ../shared/reference/qbkg40lm-zigbee.md.
"""

from __future__ import annotations

from z2m_qbkg40lm.devices.definition import (
    EndpointPatch,
    ManufacturerAttribute,
    ManufacturerCluster,
)

LUMI_MANUFACTURER_CODE = 0x115F
LUMI_CLUSTER_ID = 0xFCC0
ON_OFF_CLUSTER_ID = 0x0006
MULTISTATE_INPUT_CLUSTER_ID = 0x0012
SWITCH_ENDPOINT = 1
BUTTON_ENDPOINT = 41
HA_PROFILE = 0x0104

# Lumi attribute ids on 0xFCC0 (all manufacturer-specific, code 0x115F).
ATTR_MODE = 0x0009  # reporting mode; 1 = event mode, needed for actions. NOT operation_mode.
ATTR_FLIP_INDICATOR_LIGHT = 0x00F0
ATTR_HEARTBEAT = 0x00F7
ATTR_PREVENT_LEAVE = 0x00FC
ATTR_OPERATION_MODE = 0x0200
ATTR_POWER_OUTAGE_MEMORY = 0x0201

# ZCL data type ids used on the wire.
ZCL_BOOL = 0x10
ZCL_UINT8 = 0x20
ZCL_UINT16 = 0x21
ZCL_OCTET_STRING = 0x41

LUMI_CLUSTER = ManufacturerCluster(
    cluster_id=LUMI_CLUSTER_ID,
    name="manuSpecificLumi",
    manufacturer_code=LUMI_MANUFACTURER_CODE,
    attributes=(
        ManufacturerAttribute(ATTR_MODE, "mode", ZCL_UINT8),
        ManufacturerAttribute(ATTR_FLIP_INDICATOR_LIGHT, "flip_indicator_light", ZCL_UINT8),
        ManufacturerAttribute(ATTR_HEARTBEAT, "heartbeat", ZCL_OCTET_STRING),
        ManufacturerAttribute(ATTR_PREVENT_LEAVE, "prevent_leave", ZCL_BOOL),
        ManufacturerAttribute(ATTR_OPERATION_MODE, "operation_mode", ZCL_UINT8),
        ManufacturerAttribute(ATTR_POWER_OUTAGE_MEMORY, "power_outage_memory", ZCL_BOOL),
    ),
)

# The device may not advertise the Lumi cluster on endpoint 1 nor endpoint 41 at all.
ENDPOINT_PATCHES = (
    EndpointPatch(SWITCH_ENDPOINT, HA_PROFILE, 0x0100, (LUMI_CLUSTER_ID,)),
    EndpointPatch(BUTTON_ENDPOINT, HA_PROFILE, 0x0000, (MULTISTATE_INPUT_CLUSTER_ID,)),
)

# TODO(converter): exposes, options, inbound, outbound, configure and the QBKG40LM definition.
