"""The shape of a device definition: data plus pure converter functions.

A definition says which Zigbee attributes become which published properties (inbound), which
ZCL operations a `/set` or `/get` turns into (outbound), and what to send once after the
interview (configure). Nothing here talks to a radio or a broker: the radio layer executes the
operations, the bridge publishes the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from z2m_qbkg40lm.devices.exposes import Expose

State = dict[str, Any]
"""A (partial) published state: property name -> JSON value."""

Options = Mapping[str, Any]
"""The device's options from the configuration (`device_temperature_calibration`, ...)."""


class ConversionError(ValueError):
    """A `/set` or `/get` value the device cannot take; the message names the property and why."""


# --- ZCL operations: what an outbound converter asks the radio layer to do -----------------


@dataclass(frozen=True)
class ClusterCommand:
    """Send a cluster-specific command from the client side (e.g. On/Off `on`)."""

    endpoint: int
    cluster_id: int
    command_id: int
    args: tuple[Any, ...] = ()
    manufacturer: int | None = None
    disable_default_response: bool = False
    """A command asks for the device's Default Response (zigpy and Zigbee2MQTT do so)."""


@dataclass(frozen=True)
class WriteAttribute:
    """Write one attribute with an explicit ZCL data type id (0x10 bool, 0x20 uint8, ...)."""

    endpoint: int
    cluster_id: int
    attribute_id: int
    zcl_type: int
    value: Any
    manufacturer: int | None = None
    await_response: bool = True
    disable_default_response: bool = True
    """Zigbee2MQTT sends every write with the disable-default-response bit set (the Write
    Attributes Response still comes)."""


@dataclass(frozen=True)
class ReadAttributes:
    """Read attributes; the answer comes back through the inbound converters like a report."""

    endpoint: int
    cluster_id: int
    attribute_ids: tuple[int, ...]
    manufacturer: int | None = None


ZclOperation = ClusterCommand | WriteAttribute | ReadAttributes


# --- Inbound ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeMessage:
    """One attribute value received from a device, already decoded from ZCL.

    `kind` is "report" for Report Attributes, "read" for a Read Attributes response.
    `value` is a plain Python value: bool, int, float, str or bytes.
    """

    endpoint: int
    cluster_id: int
    attribute_id: int
    value: Any
    kind: Literal["report", "read"] = "report"


InboundConvert = Callable[[AttributeMessage, Options], State]


@dataclass(frozen=True)
class InboundConverter:
    """Turns attribute messages of one cluster (and some attribute ids) into partial state."""

    cluster_id: int
    attribute_ids: frozenset[int]
    convert: InboundConvert

    def matches(self, message: AttributeMessage) -> bool:
        """True when this converter handles the message."""
        return message.cluster_id == self.cluster_id and message.attribute_id in self.attribute_ids


# --- Outbound ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimedFallback:
    """What to do instead when the device refuses a plan's first command as unsupported
    (a Default Response UNSUP_CLUSTER_COMMAND): run `operations` now (with `optimistic_state`),
    then the daemon's own timer runs `later_operations` after `delay_s` seconds (publishing
    `later_state`). `notice` is said once per device on `bridge/logging`."""

    operations: tuple[ZclOperation, ...]
    optimistic_state: State
    delay_s: float
    later_operations: tuple[ZclOperation, ...]
    later_state: State
    notice: str


@dataclass(frozen=True)
class PlanOutcome:
    """What a plan that looks at its operations' results (the generic `read`) makes of them:
    state to publish and a line for the log (info)."""

    state: State
    log: str | None = None


@dataclass(frozen=True)
class SetPlan:
    """What a `/set` of one property does: ZCL operations, then the optimistic state to publish
    once every operation succeeded (empty when the device's report is awaited instead).

    `fallback`: see TimedFallback. `on_results`: called with one result per operation (a read
    gives {attribute id: value}, a write or a command None or its response) once all succeeded.
    """

    operations: tuple[ZclOperation, ...]
    optimistic_state: State = field(default_factory=dict)
    fallback: TimedFallback | None = None
    on_results: Callable[[tuple[Any, ...]], PlanOutcome] | None = None


OutboundConvert = Callable[[str, Any, State, Options], SetPlan]
MessageConvert = Callable[[Mapping[str, Any], State, Options], SetPlan]
"""`(claimed values, current_state, options)`: one converter for several keys of one `/set`."""


@dataclass(frozen=True)
class OutboundConverter:
    """Handles `/set` and `/get` of the properties named in `keys`.

    `convert(property, value, current_state, options)` validates the value and raises
    ConversionError with a message naming the property when it is not acceptable.
    `read(property)` gives the reads that refresh the property (empty when not readable).
    """

    keys: frozenset[str]
    convert: OutboundConvert | None
    read: Callable[[str], tuple[ZclOperation, ...]] | None
    convert_message: MessageConvert | None = None
    """For a converter whose keys go together (On/Off's `state` with `on_time`): a `/set` calls it
    once with every key of the message it claims, instead of `convert` per key."""


# --- Answers the device asks for --------------------------------------------------------------


@dataclass(frozen=True)
class Responder:
    """An inbound message the device expects the coordinator to answer (Lumi's "may I reset?").

    `respond(message)` is pure: the ZCL operations that answer the message, or () when this
    message needs no answer. `kinds` are the message kinds answered (reports only, by default:
    a read answer is the daemon's own question coming back). `name` says what the answer is for,
    in the log.
    """

    name: str
    cluster_id: int
    attribute_ids: frozenset[int]
    respond: Callable[[AttributeMessage], tuple[ZclOperation, ...]]
    kinds: frozenset[Literal["report", "read"]] = frozenset({"report"})

    def matches(self, message: AttributeMessage) -> bool:
        """True when this responder looks at the message."""
        return (
            message.cluster_id == self.cluster_id
            and message.attribute_id in self.attribute_ids
            and message.kind in self.kinds
        )


@dataclass(frozen=True)
class Response:
    """What to send a device in answer to one of its messages; `name` is the responder's."""

    name: str
    operations: tuple[ZclOperation, ...]


# --- The definition ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ManufacturerAttribute:
    """An attribute of a manufacturer-specific cluster, with its ZCL data type id."""

    attribute_id: int
    name: str
    zcl_type: int


@dataclass(frozen=True)
class ManufacturerCluster:
    """A manufacturer-specific cluster the radio layer must teach zigpy about."""

    cluster_id: int
    name: str
    manufacturer_code: int
    attributes: tuple[ManufacturerAttribute, ...]


@dataclass(frozen=True)
class EndpointPatch:
    """An endpoint (and input clusters) the device uses but may not advertise in its descriptor;
    zigpy drops frames for endpoints and clusters it does not know."""

    endpoint: int
    profile_id: int
    device_type: int
    input_clusters: tuple[int, ...]


@dataclass(frozen=True)
class DeviceDefinition:
    """Everything the daemon knows about one device model."""

    model_ids: tuple[str, ...]
    model: str
    vendor: str
    description: str
    exposes: tuple[Expose, ...]
    options: tuple[Expose, ...]
    inbound: tuple[InboundConverter, ...]
    outbound: tuple[OutboundConverter, ...]
    configure: tuple[ZclOperation, ...]
    manufacturer_clusters: tuple[ManufacturerCluster, ...] = ()
    endpoint_patches: tuple[EndpointPatch, ...] = ()
    supports_ota: bool = False
    responders: tuple[Responder, ...] = ()
