"""The unit simulated devices exchange with a coordinator: one APS data frame.

A simulated device takes frames addressed to it and returns the frames it sends back. How the
frames travel (an in-process zigpy radio, a Z-Stack emulator's serial protocol) is not its
business, so both can share one firmware model.
"""

from __future__ import annotations

from dataclasses import dataclass

ZDO_PROFILE = 0x0000
ZDO_ENDPOINT = 0


@dataclass(frozen=True, slots=True)  # slots: a switch's frame log keeps up to 200 of them
class ApsFrame:
    """One APS data frame between the coordinator and a simulated device.

    `payload` is the APS payload: a ZDO frame (TSN byte first) when both endpoints are 0,
    otherwise a ZCL frame (frame control, optional manufacturer code, TSN, command, body).
    For a frame to the device, `src_endpoint` is the coordinator's endpoint; for a frame from
    the device, it is the device's endpoint.
    """

    src_endpoint: int
    dst_endpoint: int
    profile_id: int
    cluster_id: int
    payload: bytes

    @property
    def is_zdo(self) -> bool:
        """True for ZDO traffic (endpoint 0)."""
        return ZDO_ENDPOINT in (self.dst_endpoint, self.src_endpoint)

    def __str__(self) -> str:
        return (
            f"APS(ep {self.src_endpoint}->{self.dst_endpoint}, profile 0x{self.profile_id:04X},"
            f" cluster 0x{self.cluster_id:04X}, {self.payload.hex(' ')})"
        )
