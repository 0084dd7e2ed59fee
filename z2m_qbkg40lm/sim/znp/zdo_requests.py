"""ZDO through Z-Stack's ZDO subsystem: the requests zigbee-herdsman sends and the callbacks it awaits.

Z-Stack offers two ways to talk ZDO. zigpy-znp sends ZDO frames with `AF.DataRequestExt` to
endpoint 0 and takes the answers as `ZDO.MsgCbIncoming` (after `ZDO.MsgCallbackRegister`).
zigbee-herdsman sends one SREQ per ZDO request (`ZDO_NODE_DESC_REQ`, `ZDO_ACTIVE_EP_REQ`, …: the
destination's NWK address, then the ZDO request's own fields) and waits for the matching AREQ,
`ZDO_NODE_DESC_RSP` and so on: the sender's NWK address, then the ZDO response's fields. Z-Stack
built with MT's ZDO callbacks sends these direct callbacks for every ZDO response it receives,
whether or not a host registered `MsgCbIncoming` too; both clients ignore the form they do not use.

What this module knows is the mapping between the MT bytes and the ZDO frames that go over the
air (`sim.frames.ApsFrame`), so that the simulated devices and the coordinator's own ZDO answers
serve both clients unchanged. The MT command ids are those of Z-Stack's MT_ZDO (TI's Z-Stack
Monitor and Test API); the layouts are the ZDO ones, with the exceptions named below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import zigpy.types as zigpy_t
import zigpy.zdo.types as zdo_t
import zigpy_znp.types as t

from z2m_qbkg40lm.sim.frames import ZDO_ENDPOINT, ZDO_PROFILE, ApsFrame
from z2m_qbkg40lm.sim.znp.raw_frames import RawCommand, areq

ZDO: Final = t.Subsystem.ZDO
Cmd = zdo_t.ZDOCmd

REQUESTS: Final[dict[int, int]] = {
    0x00: Cmd.NWK_addr_req,
    0x01: Cmd.IEEE_addr_req,
    0x02: Cmd.Node_Desc_req,
    0x03: Cmd.Power_Desc_req,
    0x04: Cmd.Simple_Desc_req,
    0x05: Cmd.Active_EP_req,
    0x06: Cmd.Match_Desc_req,
    0x21: Cmd.Bind_req,
    0x22: Cmd.Unbind_req,
    0x31: Cmd.Mgmt_Lqi_req,
    0x32: Cmd.Mgmt_Rtg_req,
    0x33: Cmd.Mgmt_Bind_req,
    0x34: Cmd.Mgmt_Leave_req,
}
"""MT_ZDO SREQ id -> the ZDO request it sends. Permit join (0x36) and the NWK update request
(0x37) have their own handlers: zigpy-znp uses them too, with zigpy-znp's layouts."""

CALLBACKS: Final[dict[int, int]] = {
    Cmd.NWK_addr_rsp: 0x80,
    Cmd.IEEE_addr_rsp: 0x81,
    Cmd.Node_Desc_rsp: 0x82,
    Cmd.Power_Desc_rsp: 0x83,
    Cmd.Simple_Desc_rsp: 0x84,
    Cmd.Active_EP_rsp: 0x85,
    Cmd.Match_Desc_rsp: 0x86,
    Cmd.Bind_rsp: 0xA1,
    Cmd.Unbind_rsp: 0xA2,
    Cmd.Mgmt_Lqi_rsp: 0xB1,
    Cmd.Mgmt_Rtg_rsp: 0xB2,
    Cmd.Mgmt_Bind_rsp: 0xB3,
    Cmd.Mgmt_Leave_rsp: 0xB4,
    Cmd.Mgmt_Permit_Joining_rsp: 0xB6,
    Cmd.Mgmt_NWK_Update_rsp: 0xB8,
    Cmd.Device_annce: 0xC1,
}
"""ZDO frame received -> the MT_ZDO AREQ Z-Stack passes it on with."""

ADDRESS_RESPONSES: Final = (Cmd.NWK_addr_rsp, Cmd.IEEE_addr_rsp)
BIND_REQUESTS: Final = (Cmd.Bind_req, Cmd.Unbind_req)
GROUP_ADDRESSING: Final = 0x01
BIND_GROUP_LENGTH: Final = 8 + 1 + 2 + 1 + 2
"""A bind request to a group ends after the group id; herdsman pads it to the IEEE form's 21 bytes."""


@dataclass(frozen=True)
class ZdoRequest:
    """A ZDO request a host asked the coordinator to send."""

    destination: int | zigpy_t.EUI64
    """The NWK address to send to, or for NWK_addr_req the IEEE address it looks for."""
    cluster: int
    body: bytes
    """The ZDO request's fields (no TSN)."""

    def frame(self, tsn: int) -> ApsFrame:
        """The ZDO frame on the air."""
        return ApsFrame(ZDO_ENDPOINT, ZDO_ENDPOINT, ZDO_PROFILE, self.cluster, bytes([tsn]) + self.body)


def parse_request(command_id: int, data: bytes) -> ZdoRequest:
    """The ZDO request an MT_ZDO SREQ asks for; ValueError when the bytes are too short."""
    cluster = REQUESTS[command_id]
    if cluster == Cmd.NWK_addr_req:
        # No destination field: the request is broadcast and the device with this IEEE answers.
        ieee, _rest = zigpy_t.EUI64.deserialize(data)
        return ZdoRequest(ieee, cluster, data)
    if cluster == Cmd.IEEE_addr_req:
        # No destination field either: it goes to the address of interest.
        nwk, _rest = zigpy_t.NWK.deserialize(data)
        return ZdoRequest(int(nwk), cluster, data)
    if len(data) < 2:
        raise ValueError(f"{len(data)} bytes: no destination address")
    destination = int.from_bytes(data[:2], "little")
    body = data[2:]
    if cluster in BIND_REQUESTS and len(body) > 11 and body[11] == GROUP_ADDRESSING:
        body = body[:BIND_GROUP_LENGTH]
    return ZdoRequest(destination, cluster, body)


def direct_callback(src: int, frame: ApsFrame) -> RawCommand | None:
    """The MT_ZDO AREQ a ZDO frame from `src` is passed on with; None when Z-Stack has none for it."""
    command_id = CALLBACKS.get(frame.cluster_id)
    if command_id is None or not frame.payload:
        return None
    body = frame.payload[1:]
    if frame.cluster_id in ADDRESS_RESPONSES:
        # No sender field, and Z-Stack puts the start index before the device count, always
        # present (ZDO leaves both out of a reply without the associated devices).
        head, count, index, tail = body[:11], body[11:12] or b"\x00", body[12:13] or b"\x00", body[13:]
        return areq(ZDO, command_id, head + index + count + tail)
    return areq(ZDO, command_id, src.to_bytes(2, "little") + body)
