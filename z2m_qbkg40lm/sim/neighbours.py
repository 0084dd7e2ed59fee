"""The coordinator's neighbour table as simulated coordinators report it (ZDO Mgmt_Lqi_rsp)."""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import zigpy.types as t
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.sim.switch import SimulatedSwitch

NEIGHBOURS_PER_ANSWER: Final = 3
"""Table entries per Mgmt_Lqi_rsp, as small coordinators send them; the requester pages on."""


def neighbours_body(
    extended_pan_id: t.ExtendedPanId, switches: Sequence[SimulatedSwitch], start: int, linkquality: int
) -> bytes:
    """Mgmt_Lqi_rsp body after the status: every switch is a router child of the coordinator."""
    entries = [
        zdo_t.Neighbor(
            extended_pan_id=extended_pan_id,
            ieee=switch.ieee,
            nwk=t.NWK(switch.nwk),
            device_type=zdo_t.DeviceType.Router,
            rx_on_when_idle=zdo_t.RxOnWhenIdle.On,
            relationship=zdo_t.Relationship.Child,
            reserved1=0,
            permit_joining=zdo_t.PermitJoins.Unknown,
            reserved2=0,
            depth=1,
            lqi=linkquality,
        )
        for switch in switches[start : start + NEIGHBOURS_PER_ANSWER]
    ]
    return zdo_t.Neighbors(Entries=len(switches), StartIndex=start, NeighborTableList=entries).serialize()
