"""Events from the radio layer to the bridge, as frozen dataclasses.

zigpy calls its listeners synchronously on the loop; the radio layer turns each call into one of
these events and puts it on a queue, so the bridge never runs inside zigpy's callbacks.
IEEE addresses are Zigbee2MQTT-style strings: "0x" + 16 lower-case hex digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from z2m_qbkg40lm.devices.definition import AttributeMessage


@dataclass(frozen=True)
class DeviceJoined:
    """A device joined the network (or rejoined with a new network address)."""

    ieee: str
    nwk: int


@dataclass(frozen=True)
class DeviceAnnounced:
    """A known device announced itself again (power cycle, rejoin)."""

    ieee: str
    nwk: int


@dataclass(frozen=True)
class DeviceInterviewStarted:
    """zigpy started interviewing a device."""

    ieee: str


@dataclass(frozen=True)
class DeviceInterviewed:
    """The interview finished; the device is ready for its definition's configure step."""

    ieee: str
    model_id: str | None
    manufacturer: str | None


@dataclass(frozen=True)
class DeviceInterviewFailed:
    """The interview did not finish (timeout or a Zigbee error)."""

    ieee: str
    reason: str


@dataclass(frozen=True)
class DeviceLeft:
    """A device left the network or was removed."""

    ieee: str


@dataclass(frozen=True)
class AttributeReceived:
    """An attribute value from a device: a report or a read answer, with the link quality of the
    frame that carried it when known."""

    ieee: str
    endpoint: int
    cluster_id: int
    attribute_id: int
    value: Any
    kind: Literal["report", "read"]
    linkquality: int | None

    def message(self) -> AttributeMessage:
        """The attribute as the converters take it."""
        return AttributeMessage(self.endpoint, self.cluster_id, self.attribute_id, self.value, self.kind)


@dataclass(frozen=True)
class FrameReceived:
    """Any frame from a known device: updates last_seen and linkquality."""

    ieee: str
    linkquality: int | None


@dataclass(frozen=True)
class RadioRestarting:
    """The coordinator reset itself; the radio layer is re-initialising it (commands wait or fail
    with "the adapter is restarting" meanwhile)."""

    reason: str


@dataclass(frozen=True)
class RadioRecovered:
    """The radio serves again after a re-initialisation; reports sent meanwhile may be lost."""

    seconds: float


@dataclass(frozen=True)
class RadioLost:
    """The adapter went away; the daemon stops so that its supervisor restarts it."""

    reason: str


RadioEvent = (
    DeviceJoined
    | DeviceAnnounced
    | DeviceInterviewStarted
    | DeviceInterviewed
    | DeviceInterviewFailed
    | DeviceLeft
    | AttributeReceived
    | FrameReceived
    | RadioRestarting
    | RadioRecovered
    | RadioLost
)
