"""A model of the Aqara QBKG40LM (`lumi.switch.b1nc01`) firmware that speaks APS frames.

`SimulatedSwitch.handle()` takes one frame from the coordinator and returns the frames the switch
answers with; `press()`, `heartbeat()` and `power_cycle()` return the frames the switch sends on
its own. Nothing here knows how frames travel, so the in-process zigpy radio and a Z-Stack
emulator can share it. Wire facts: ../shared/reference/qbkg40lm-zigbee.md (§3, §5, §6, §9).

What the model does, and where it had to choose (the reference marks these UNCERTAIN):

- Descriptors: Router, manufacturer code 0x115F. Variant "full" advertises endpoints [1, 41] with
  Multistate Input and 0xFCC0 on endpoint 1; variant "fingerprint" advertises only endpoint 1 with
  the Hubitat fingerprint clusters. The firmware behind both is the same: endpoint 41 sends presses
  and 0xFCC0 answers on endpoint 1 whatever the descriptor says, as on the real devices.
- 0xFCC0 attributes answer only requests carrying manufacturer code 0x115F; without it they are
  UNSUPPORTED_ATTRIBUTE (0x86). Real behaviour is unknown; this catches a missing code in tests.
- Every On/Off command is followed by an On/Off report, also when the relay did not change.
- Presses are reported only while FCC0 `mode` (0x0009) is 1 ("event mode", the default here, as
  sibling devices read back), in both operation modes. In control_relay mode a single press also
  toggles the relay and reports it; other press kinds never touch the relay.
- Multistate Input presentValue is not readable (UNSUPPORTED_ATTRIBUTE), so a read can never be
  mistaken for a fresh press.
- A power cycle keeps everything stored in flash (operation mode, power-outage memory, indicator
  light, FCC0 mode, groups, addresses) and loses the relay state unless power-outage memory is on.
  The TSN counter keeps counting (a real device probably restarts it; continuing keeps zigpy's
  10-second duplicate filter from dropping identical frames of quickly scripted sequences).
- Configure Reporting is acknowledged, but the model has no clock: it reports on change only.
- A switch that is not `responsive` keeps its physical behaviour (a press in control_relay mode
  still switches the relay) but none of its frames leave it: it answers nothing, reports nothing.
- The OTA Upgrade client (0x0019, endpoint 1) is `OtaClient` (sim/ota_client.py): it answers reads
  of its attributes (current file version = `firmware_version`, stack version 2, image upgrade
  status, manufacturer 0x115F, image type 0x1888, ...) always, and pulls an image only while the
  switch is on a radio that lent it a `SwitchLink` (`attach()`): the radio carries the frames it
  sends on its own and owns its timers. A successful upgrade changes `firmware_version` (hence
  Basic's application version and sw build id) and reboots the switch like `power_cycle()`.
- Frames for the broadcast endpoint 0xFF reach every firmware endpoint that has the cluster.
- On/Off OnWithTimedOff (0x42) and its attributes GlobalSceneControl (0x4000, always true),
  OnTime (0x4001) and OffWaitTime (0x4002, both uint16 in tenths of a second, readable and
  writable) follow the ZCL specification (sim/on_off_timing.py): the relay goes off by itself when
  the on time runs out, and reports it like any relay change. A discarded 0x42 (accept only when
  on, relay off) changes nothing and is not reported; an accepted one is followed by an On/Off
  report. A single press in control_relay mode counts as a Toggle for the timing. The countdown
  runs on the radio's timers (`SwitchLink.call_later`), one tick per tenth of a second while
  something counts; taken off the radio it pauses, and OnTime, OffWaitTime and the running update
  are saved with the switch, so a restarted simulation resumes the countdown where it stopped. A
  power cycle (or an OTA reboot) clears them: the relay comes back as power-outage memory says
  (on, with memory on and the relay on) and stays so: the timer is gone. StartUpOnOff (0x4003) is
  not implemented (the switch has power-outage memory on 0xFCC0 instead).
- Firmware settings (`FirmwareSettings`, sim/firmware_settings.py, saved with the switch):
  `on_with_timed_off` off makes 0x42 UNSUP_CLUSTER_COMMAND and its attributes unsupported, for a
  firmware without it (whether the real one has it is UNCERTAIN); the prevent-reset timings.
- Prevent reset (sim/prevent_reset.py): once joined, the switch reports Basic 0xFFF0 after a delay
  and periodically; the hub's write of the answer resets the count; left unanswered it leaves the
  network (`left`, and `joined` cleared and saved: it needs pairing again). Basic 0xFFF0 (with
  manufacturer code 0x115F) reads the trigger value.
- `joined` says whether the switch believes it is on a network: set when it announces itself
  after joining, cleared when it leaves; a switch created directly starts unjoined (no
  prevent-reset cycle), one restored from a record without the key is joined.
"""

# zigpy's wire types (uint8_t, NWK, ZDOCmd, ...) have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import zigpy.types as t
import zigpy.zdo.types as zdo_t
from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Groups, OnOff

from z2m_qbkg40lm.devices.qbkg40lm import (
    ATTR_FLIP_INDICATOR_LIGHT,
    ATTR_HEARTBEAT,
    ATTR_MODE,
    ATTR_OPERATION_MODE,
    ATTR_POWER_OUTAGE_MEMORY,
    BUTTON_ENDPOINT,
    HA_PROFILE,
    LUMI_CLUSTER_ID,
    LUMI_MANUFACTURER_CODE,
    MULTISTATE_INPUT_CLUSTER_ID,
    ON_OFF_CLUSTER_ID,
    SWITCH_ENDPOINT,
)
from z2m_qbkg40lm.sim.firmware_settings import FirmwareSettings
from z2m_qbkg40lm.sim.frame_log import FrameLog
from z2m_qbkg40lm.sim.frames import ZDO_ENDPOINT, ZDO_PROFILE, ApsFrame
from z2m_qbkg40lm.sim.on_off_timing import TICK_SECONDS, OnOffTiming
from z2m_qbkg40lm.sim.ota_client import (
    IMAGE_BLOCK_RESPONSE,
    OTA_IMAGE_TYPE,
    UNSET_EUI64,
    ZIGBEE_PRO_STACK,
    OtaClient,
    SwitchLink,
    Timer,
)
from z2m_qbkg40lm.sim.prevent_reset import ANSWER, ATTR_PREVENT_RESET, TRIGGER, PreventReset
from z2m_qbkg40lm.sim.zcl_header import ZclHeader, header_bytes

LOGGER = logging.getLogger(__name__)

MODEL_ID: Final = "lumi.switch.b1nc01"
MANUFACTURER_NAME: Final = "LUMI"
LUMI_OUI: Final = (0x54, 0xEF, 0x44)
DATE_CODE: Final = "06-15-2022"  # a 2-gang sibling's; no QBKG40LM value is known
DEFAULT_FIRMWARE_VERSION: Final = 29
DEFAULT_TEMPERATURE: Final = 31.0
COORDINATOR_ENDPOINT: Final = 1
MAX_GROUPS: Final = 8
BROADCAST_ENDPOINT: Final = 0xFF
_OTA_SERVER_FRAME_CONTROLS: Final = frozenset({0x09, 0x19})
"""Cluster-specific, server to client, no manufacturer code (default response enabled or not)."""

# Standard cluster ids the firmware model answers on.
BASIC: Final = 0x0000
DEVICE_TEMPERATURE: Final = 0x0002
IDENTIFY: Final = 0x0003
GROUPS: Final = 0x0004
SCENES: Final = 0x0005
ALARMS: Final = 0x0009
TIME: Final = 0x000A
OTA: Final = 0x0019
ON_WITH_TIMED_OFF: Final = OnOff.ServerCommandDefs.on_with_timed_off.id

PRESS_VALUES: Final[Mapping[str, int]] = {"hold": 0, "single": 1, "double": 2, "triple": 3, "release": 255}
OPERATION_MODES: Final[Mapping[str, int]] = {"control_relay": 1, "decoupled": 0}
VARIANTS: Final = ("full", "fingerprint")
Variant = Literal["full", "fingerprint"]

ON_OFF_DEVICE_TYPE: Final = 0x0100  # "On/Off Light", as in the fingerprint
BUTTON_DEVICE_TYPE: Final = 0x0000

# §9.1: a comparable Lumi mains router.
MAC_CAPABILITIES: Final = 0x8E
NODE_DESCRIPTOR: Final = zdo_t.NodeDescriptor(
    logical_type=zdo_t.LogicalType.Router,
    complex_descriptor_available=0,
    user_descriptor_available=0,
    reserved=0,
    aps_flags=0,
    frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
    mac_capability_flags=zdo_t.NodeDescriptor.MACCapabilityFlags(MAC_CAPABILITIES),
    manufacturer_code=LUMI_MANUFACTURER_CODE,
    maximum_buffer_size=127,
    maximum_incoming_transfer_size=100,
    server_mask=0x2C00,
    maximum_outgoing_transfer_size=100,
    descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability.NONE,
)

# §9.2: endpoint 1 by variant.
_FINGERPRINT_IN: Final = (BASIC, DEVICE_TEMPERATURE, IDENTIFY, GROUPS, SCENES, ON_OFF_CLUSTER_ID, ALARMS)
_FULL_IN: Final = (
    BASIC,
    DEVICE_TEMPERATURE,
    IDENTIFY,
    GROUPS,
    SCENES,
    ON_OFF_CLUSTER_ID,
    MULTISTATE_INPUT_CLUSTER_ID,
    LUMI_CLUSTER_ID,
)
_SWITCH_OUT: Final = (TIME, OTA)

_SERVER: Final = "server"
_CLIENT: Final = "client"
ClusterKey = tuple[int, str, int]
"""(endpoint, "server" | "client", cluster id): which side of which cluster a ZCL frame is for."""

# What the firmware runs, whatever the descriptor advertises.
_FIRMWARE_CLUSTERS: Final[frozenset[ClusterKey]] = frozenset(
    {(SWITCH_ENDPOINT, _SERVER, cluster) for cluster in (*_FINGERPRINT_IN, *_FULL_IN)}
    | {(SWITCH_ENDPOINT, _CLIENT, cluster) for cluster in _SWITCH_OUT}
    | {(BUTTON_ENDPOINT, _SERVER, MULTISTATE_INPUT_CLUSTER_ID)}
)
_FIRMWARE_ENDPOINTS: Final = frozenset({SWITCH_ENDPOINT, BUTTON_ENDPOINT})

# Foundation commands that are answers or reports: never answered.
_NOT_ANSWERED: Final = frozenset(
    {
        foundation.GeneralCommand.Read_Attributes_rsp,
        foundation.GeneralCommand.Write_Attributes_rsp,
        foundation.GeneralCommand.Configure_Reporting_rsp,
        foundation.GeneralCommand.Read_Reporting_Configuration_rsp,
        foundation.GeneralCommand.Report_Attributes,
        foundation.GeneralCommand.Default_Response,
        foundation.GeneralCommand.Discover_Attributes_rsp,
        foundation.GeneralCommand.Write_Attributes_Structured_rsp,
        foundation.GeneralCommand.Discover_Commands_Received_rsp,
        foundation.GeneralCommand.Discover_Commands_Generated_rsp,
        foundation.GeneralCommand.Discover_Attribute_Extended_rsp,
    }
)
_WRITES: Final = frozenset(
    {
        foundation.GeneralCommand.Write_Attributes,
        foundation.GeneralCommand.Write_Attributes_Undivided,
        foundation.GeneralCommand.Write_Attributes_No_Response,
    }
)


def _typed(zcl_type: int, value: Any) -> foundation.TypeValue:
    """A ZCL TypeValue of a plain Python value."""
    python_type = foundation.DataType.from_type_id(foundation.DataTypeId(zcl_type)).python_type
    return foundation.TypeValue(type=t.uint8_t(zcl_type), value=python_type(value))


# The heartbeat's fixed TLV items: 154 (uint8 0), 8 (uint16 276), 9 (uint16 256), 11 (uint8 0),
# 10 (uint16 0x0000, the parent: the coordinator), 12 (uint8 1).
_HEARTBEAT_CONSTANTS: Final = bytes.fromhex("9a2000 08211401 09210001 0b2000 0a210000 0c2001")


def _encoded(zcl_type: int, value: Any) -> bytes:
    """A plain Python value as the ZCL type's bytes (what follows the type id in a record)."""
    python_type = foundation.DataType.from_type_id(foundation.DataTypeId(zcl_type)).python_type
    return bytes(python_type(value).serialize())


def whole_degrees(temperature: float) -> int:
    """A temperature as the switch sends it: whole °C, halves rounded up."""
    return math.floor(temperature + 0.5)


def _any(_value: Any) -> bool:
    return True


def _is_bool(value: Any) -> bool:
    return int(value) in (0, 1)


def _is_operation_mode(value: Any) -> bool:
    return int(value) in OPERATION_MODES.values()


@dataclass(frozen=True)
class _Attribute:
    """One attribute the firmware model answers: its type, how to read it, how (if) to write it."""

    zcl_type: int
    read: Callable[[SimulatedSwitch], Any]
    write: Callable[[SimulatedSwitch, Any], None] | None = None
    valid: Callable[[Any], bool] = _any
    manufacturer: int | None = None
    """The manufacturer code requests must carry; None for standard attributes."""
    present: Callable[[SimulatedSwitch], bool] = lambda s: True
    """Whether the switch's firmware has the attribute (a firmware setting may take it away)."""


def _set_mode(switch: SimulatedSwitch, value: Any) -> None:
    switch.mode = int(value)


def _set_flip(switch: SimulatedSwitch, value: Any) -> None:
    switch.flip_indicator_light = int(value)


def _set_operation_mode(switch: SimulatedSwitch, value: Any) -> None:
    switch.operation_mode = int(value)


def _set_power_outage_memory(switch: SimulatedSwitch, value: Any) -> None:
    switch.power_outage_memory = bool(value)


def _set_on_time(switch: SimulatedSwitch, value: Any) -> None:
    switch.timing.on_time = int(value)
    switch.timing_changed()


def _set_off_wait_time(switch: SimulatedSwitch, value: Any) -> None:
    switch.timing.off_wait_time = int(value)
    switch.timing_changed()


def _timed_off_present(switch: SimulatedSwitch) -> bool:
    return switch.firmware.on_with_timed_off


def _is_prevent_reset_answer(value: Any) -> bool:
    return bytes(value) == ANSWER


def _prevent_reset_answered(switch: SimulatedSwitch, _value: Any) -> None:
    switch.prevent_reset.answered()


def _lumi(
    zcl_type: int,
    read: Callable[[SimulatedSwitch], Any],
    write: Callable[[SimulatedSwitch, Any], None] | None = None,
    valid: Callable[[Any], bool] = _any,
) -> _Attribute:
    return _Attribute(zcl_type, read, write, valid, manufacturer=LUMI_MANUFACTURER_CODE)


_ATTRIBUTES: Final[Mapping[ClusterKey, Mapping[int, _Attribute]]] = {
    (SWITCH_ENDPOINT, _SERVER, BASIC): {
        0x0000: _Attribute(0x20, lambda s: 3),  # ZCL version
        0x0001: _Attribute(0x20, lambda s: s.firmware_version & 0xFF),  # application version
        0x0002: _Attribute(0x20, lambda s: 2),  # stack version
        0x0003: _Attribute(0x20, lambda s: 1),  # hardware version
        0x0004: _Attribute(0x42, lambda s: MANUFACTURER_NAME),
        0x0005: _Attribute(0x42, lambda s: MODEL_ID),
        0x0006: _Attribute(0x42, lambda s: DATE_CODE),
        0x0007: _Attribute(0x30, lambda s: 1),  # power source: mains, single phase
        0x4000: _Attribute(0x42, lambda s: s.sw_build_id),
        ATTR_PREVENT_RESET: _lumi(0x41, lambda s: TRIGGER, _prevent_reset_answered, _is_prevent_reset_answer),
    },
    (SWITCH_ENDPOINT, _SERVER, DEVICE_TEMPERATURE): {
        0x0000: _Attribute(0x29, lambda s: whole_degrees(s.temperature)),  # current temperature, °C
    },
    (SWITCH_ENDPOINT, _SERVER, IDENTIFY): {
        0x0000: _Attribute(0x21, lambda s: 0),  # identify time
    },
    (SWITCH_ENDPOINT, _SERVER, GROUPS): {
        0x0000: _Attribute(0x18, lambda s: 0),  # name support: none
    },
    (SWITCH_ENDPOINT, _SERVER, ON_OFF_CLUSTER_ID): {
        0x0000: _Attribute(0x10, lambda s: s.relay),
        0x4000: _Attribute(0x10, lambda s: True, present=_timed_off_present),  # global scene control
        0x4001: _Attribute(0x21, lambda s: s.timing.on_time, _set_on_time, present=_timed_off_present),
        0x4002: _Attribute(
            0x21, lambda s: s.timing.off_wait_time, _set_off_wait_time, present=_timed_off_present
        ),
    },
    (SWITCH_ENDPOINT, _SERVER, LUMI_CLUSTER_ID): {
        ATTR_MODE: _lumi(0x20, lambda s: s.mode, _set_mode),
        ATTR_FLIP_INDICATOR_LIGHT: _lumi(0x20, lambda s: s.flip_indicator_light, _set_flip),
        ATTR_HEARTBEAT: _lumi(0x41, lambda s: s.heartbeat_body()),
        ATTR_OPERATION_MODE: _lumi(0x20, lambda s: s.operation_mode, _set_operation_mode, _is_operation_mode),
        ATTR_POWER_OUTAGE_MEMORY: _lumi(
            0x10, lambda s: s.power_outage_memory, _set_power_outage_memory, _is_bool
        ),
    },
    (SWITCH_ENDPOINT, _CLIENT, OTA): {
        0x0000: _Attribute(0xF0, lambda s: UNSET_EUI64),  # upgrade server id: none remembered
        0x0001: _Attribute(0x23, lambda s: s.ota.file_offset),
        0x0002: _Attribute(0x23, lambda s: s.firmware_version),  # current file version
        0x0003: _Attribute(0x21, lambda s: ZIGBEE_PRO_STACK),  # current zigbee stack version
        0x0004: _Attribute(0x23, lambda s: s.ota.downloaded_file_version),
        0x0005: _Attribute(0x21, lambda s: s.ota.downloaded_stack_version),
        0x0006: _Attribute(0x30, lambda s: s.ota.image_upgrade_status),
        0x0007: _Attribute(0x21, lambda s: LUMI_MANUFACTURER_CODE),  # manufacturer id
        0x0008: _Attribute(0x21, lambda s: OTA_IMAGE_TYPE),  # image type id
        0x0009: _Attribute(0x21, lambda s: s.ota.minimum_block_period_ms),
        0x000C: _Attribute(0x30, lambda s: 0),  # upgrade timeout policy: apply after timeout
    },
}


def _uint16(value: Any) -> int:
    number = int(value)
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"{number} is not a uint16")
    return number


def random_ieee(rng: random.Random) -> t.EUI64:
    """An IEEE address with Lumi's OUI 54:ef:44 and a random tail."""
    octets = [*LUMI_OUI, *(rng.randrange(256) for _ in range(5))]
    return t.EUI64.convert(":".join(f"{octet:02x}" for octet in octets))


def random_nwk(rng: random.Random, taken: Iterable[int] = ()) -> int:
    """A free unicast NWK address in 0x0001-0xFFF7."""
    used = set(taken)
    while True:
        nwk = rng.randint(0x0001, 0xFFF7)
        if nwk not in used:
            return nwk


class SimulatedSwitch:
    """The firmware of one QBKG40LM: state, ZDO and ZCL answers, spontaneous frames.

    All state a real switch keeps in flash is public and persisted by `to_dict()`. Values are
    the wire values: `operation_mode` 1 = control_relay, 0 = decoupled; `mode` is FCC0 0x0009.
    """

    nwk: int
    variant: Variant
    relay: bool
    operation_mode: int
    power_outage_memory: bool
    flip_indicator_light: int
    mode: int
    power_outages: int
    firmware_version: int
    responsive: bool
    groups: set[int]
    left: bool
    joined: bool
    firmware: FirmwareSettings

    def __init__(
        self,
        ieee: t.EUI64,
        nwk: int,
        *,
        variant: Variant = "full",
        relay: bool = False,
        operation_mode: int = OPERATION_MODES["control_relay"],
        power_outage_memory: bool = False,
        flip_indicator_light: int = 0,
        mode: int = 1,
        power_outages: int = 0,
        temperature: float = DEFAULT_TEMPERATURE,
        firmware_version: int = DEFAULT_FIRMWARE_VERSION,
        responsive: bool = True,
        groups: Iterable[int] = (),
        joined: bool = False,
        firmware: FirmwareSettings | None = None,
        timing: OnOffTiming | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
        if not 0x0001 <= nwk <= 0xFFF7:
            raise ValueError(f"NWK address 0x{nwk:04X} is not a unicast device address (0x0001-0xFFF7)")
        if not _is_operation_mode(operation_mode):
            raise ValueError(
                f"operation_mode must be 0 (decoupled) or 1 (control_relay), not {operation_mode}"
            )
        self._ieee = t.EUI64(ieee)
        self.nwk = nwk
        self.variant = variant
        self.relay = relay
        self.operation_mode = operation_mode
        self.power_outage_memory = power_outage_memory
        self.flip_indicator_light = flip_indicator_light
        self.mode = mode
        self.power_outages = power_outages
        self._temperature = DEFAULT_TEMPERATURE
        self.temperature = temperature
        self.firmware_version = firmware_version
        self.responsive = responsive
        self.groups = set(groups)
        self.left = False
        """True once the switch left the network: told to (Mgmt_Leave_req without rejoin) or on
        its own (prevent reset unanswered). The radio then takes it off the network."""
        self.joined = joined
        """The switch believes it is on a network (saved): set by `announce()`, cleared on leaving."""
        self.firmware = firmware or FirmwareSettings()
        """What this firmware does where the real one is unknown (`set_firmware()` changes it)."""
        self.timing: OnOffTiming = timing or OnOffTiming()
        """On/Off OnTime, OffWaitTime and their countdown (OnWithTimedOff)."""
        self._tsn = 0
        self._link: SwitchLink | None = None
        self._tick: Timer | None = None
        self.ota: OtaClient = OtaClient(self)
        """The OTA Upgrade client: attributes, downloads, the reboot into a new version."""
        self.received = FrameLog()
        """The last ZCL frames that reached the firmware, for `simulation/frames` (not persisted)."""
        self.prevent_reset: PreventReset = PreventReset(self)
        """The Basic 0xFFF0 prevent-reset cycle: reports, the unanswered count, the leave."""

    @classmethod
    def create(
        cls,
        rng: random.Random | None = None,
        *,
        taken_nwks: Iterable[int] = (),
        variant: Variant = "full",
        firmware_version: int = DEFAULT_FIRMWARE_VERSION,
    ) -> SimulatedSwitch:
        """A factory-fresh switch with a random Lumi IEEE address and a free random NWK address."""
        rng = rng or random.Random()
        return cls(
            random_ieee(rng), random_nwk(rng, taken_nwks), variant=variant, firmware_version=firmware_version
        )

    # --- state ----------------------------------------------------------------------------------

    @property
    def ieee(self) -> t.EUI64:
        """The switch's IEEE address (never changes)."""
        return self._ieee

    @property
    def temperature(self) -> float:
        """Chip temperature in °C; reported as a whole number (TLV int8)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not math.isfinite(value) or not -128 <= whole_degrees(value) <= 127:
            raise ValueError(f"temperature must be a number from -128 to 127 °C, not {value!r}")
        self._temperature = float(value)

    @property
    def operation_mode_name(self) -> str:
        """`control_relay` or `decoupled`."""
        return "control_relay" if self.operation_mode == OPERATION_MODES["control_relay"] else "decoupled"

    @property
    def sw_build_id(self) -> str:
        """Basic 0x4000 in Lumi's form, e.g. `0.0.0_0029`."""
        return f"0.0.0_{self.firmware_version:04d}"

    @property
    def active_endpoints(self) -> list[int]:
        """The endpoints Active_EP_rsp lists for this variant."""
        return [SWITCH_ENDPOINT, BUTTON_ENDPOINT] if self.variant == "full" else [SWITCH_ENDPOINT]

    def simple_descriptor(self, endpoint: int) -> zdo_t.SizePrefixedSimpleDescriptor | None:
        """The advertised simple descriptor of an endpoint, None when it is not advertised."""
        if endpoint not in self.active_endpoints:
            return None
        if endpoint == BUTTON_ENDPOINT:
            return zdo_t.SizePrefixedSimpleDescriptor(
                endpoint=BUTTON_ENDPOINT,
                profile=HA_PROFILE,
                device_type=BUTTON_DEVICE_TYPE,
                device_version=1,
                input_clusters=[MULTISTATE_INPUT_CLUSTER_ID],
                output_clusters=[],
            )
        return zdo_t.SizePrefixedSimpleDescriptor(
            endpoint=SWITCH_ENDPOINT,
            profile=HA_PROFILE,
            device_type=ON_OFF_DEVICE_TYPE,
            device_version=1,
            input_clusters=list(_FULL_IN if self.variant == "full" else _FINGERPRINT_IN),
            output_clusters=list(_SWITCH_OUT),
        )

    def heartbeat_body(self) -> bytes:
        """The FCC0 0x00F7 TLV body: §6.4's constructed QBKG40LM sample, with live values."""
        # Written out byte by byte: a heartbeat stream sends thousands a second (zigpy's types
        # took ~13 µs a body). Index, ZCL type, value (little-endian), as lumi_tlv.py reads them.
        return (
            bytes([100, 0x10, 1 if self.relay else 0, 3, 0x28])
            + whole_degrees(self.temperature).to_bytes(1, "little", signed=True)
            + b"\x05\x21"
            + (self.power_outages + 1).to_bytes(2, "little")  # a boot counter: published as value - 1
            + _HEARTBEAT_CONSTANTS
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything that survives a restart, as JSON-friendly values."""
        return {
            "ieee": str(self.ieee),
            "nwk": f"0x{self.nwk:04x}",
            "variant": self.variant,
            "relay": self.relay,
            "operation_mode": self.operation_mode_name,
            "power_outage_memory": self.power_outage_memory,
            "flip_indicator_light": self.flip_indicator_light,
            "mode": self.mode,
            "power_outages": self.power_outages,
            "temperature": self.temperature,
            "firmware_version": self.firmware_version,
            "responsive": self.responsive,
            "groups": sorted(self.groups),
            "joined": self.joined,
            "on_time": self.timing.on_time,
            "off_wait_time": self.timing.off_wait_time,
            "timed_off_running": self.timing.running,
            "firmware": self.firmware.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulatedSwitch:
        """The inverse of `to_dict()`; missing keys take their defaults. ValueError names a bad key."""
        key = "ieee"
        try:
            ieee = t.EUI64.convert(str(data["ieee"]))
            key = "nwk"
            raw_nwk = data["nwk"]
            nwk = raw_nwk if isinstance(raw_nwk, int) else int(str(raw_nwk), 16)
            key = "operation_mode"
            mode_name = str(data.get("operation_mode", "control_relay"))
            if mode_name not in OPERATION_MODES:
                raise ValueError(f"expected one of {', '.join(OPERATION_MODES)}")
            key = "variant"
            variant = str(data.get("variant", "full"))
            if variant not in VARIANTS:
                raise ValueError(f"expected one of {', '.join(VARIANTS)}")
            key = "firmware"
            firmware = FirmwareSettings.from_dict(data.get("firmware", {}))
            key = "(values)"
            timing = OnOffTiming(
                on_time=_uint16(data.get("on_time", 0)),
                off_wait_time=_uint16(data.get("off_wait_time", 0)),
                running=bool(data.get("timed_off_running", False)),
            )
            return cls(
                ieee,
                nwk,
                variant="full" if variant == "full" else "fingerprint",
                relay=bool(data.get("relay", False)),
                operation_mode=OPERATION_MODES[mode_name],
                power_outage_memory=bool(data.get("power_outage_memory", False)),
                flip_indicator_light=int(data.get("flip_indicator_light", 0)),
                mode=int(data.get("mode", 1)),
                power_outages=int(data.get("power_outages", 0)),
                temperature=float(data.get("temperature", DEFAULT_TEMPERATURE)),
                firmware_version=int(data.get("firmware_version", DEFAULT_FIRMWARE_VERSION)),
                responsive=bool(data.get("responsive", True)),
                groups=[int(group) for group in data.get("groups", [])],
                # Records written before the key existed are of switches on a network.
                joined=bool(data.get("joined", True)),
                firmware=firmware,
                timing=timing,
            )
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise ValueError(f"bad simulated switch record, key {key!r}: {exc}") from exc

    def __repr__(self) -> str:
        return (
            f"<SimulatedSwitch ieee={self.ieee} nwk=0x{self.nwk:04X} variant={self.variant}"
            f" relay={'ON' if self.relay else 'OFF'} mode={self.operation_mode_name}>"
        )

    # --- the radio's hooks ---------------------------------------------------------------------------

    def attach(self, link: SwitchLink | None) -> None:
        """Put the switch on a radio that carries the frames it sends on its own (None: off it).

        Only with a link does the switch act over time (the OTA client requests blocks, the
        On/Off countdown runs, a joined switch runs its prevent-reset cycle); taking it off
        abandons an OTA transfer in progress and cancels its timers (the countdown pauses). Call
        it where the radio's timers can run (an event loop is running) when the switch is joined
        or counting down.
        """
        self.ota.attach(link)
        self._cancel_tick()
        self._link = link
        self.prevent_reset.attach(link)
        self.timing_changed()

    def next_tsn(self) -> int:
        """The ZCL transaction number of the next frame the switch starts."""
        return self._next_tsn()

    def send_own(self, frames: list[ApsFrame]) -> None:
        """Send frames the switch starts on its own later (OTA requests, reboot) over its link.

        Lost while the switch is silent, gone, or on no radio. The link is called even when
        nothing leaves: the switch's state may have changed (a reboot into a new version while
        silent), and the radio saves it.
        """
        if self._link is None:
            if frames:
                LOGGER.debug("Switch %s is on no radio: %d frame(s) of its own lost", self.ieee, len(frames))
            return
        self._link.send(self._sent(frames))

    # --- physical events --------------------------------------------------------------------------

    def announce(self) -> list[ApsFrame]:
        """ZDO Device_annce, as after joining or booting: the switch is joined from now on."""
        self.joined = True
        self.left = False
        self.prevent_reset.start()
        return self._sent([self._device_annce()])

    def press(self, kind: str = "single") -> list[ApsFrame]:
        """Press the rocker: `single`, `double`, `hold`, `triple` or `release` (§5)."""
        if not isinstance(kind, str) or kind not in PRESS_VALUES:
            raise ValueError(f"unknown press kind {kind!r}: expected one of {', '.join(PRESS_VALUES)}")
        frames = []
        if self.mode == 1:
            frames.append(
                self._report(
                    BUTTON_ENDPOINT,
                    MULTISTATE_INPUT_CLUSTER_ID,
                    [(0x0055, 0x21, PRESS_VALUES[kind])],
                )
            )
        if kind == "single" and self.operation_mode == OPERATION_MODES["control_relay"]:
            self._switch_relay(not self.relay)
            frames.append(self._on_off_report())
        return self._sent(frames)

    def heartbeat(self, temperature: float | None = None) -> list[ApsFrame]:
        """The periodic FCC0 0x00F7 TLV report; `temperature` first sets the chip temperature."""
        if temperature is not None:
            self.temperature = temperature
        return self._sent([self._heartbeat_report()])

    def power_cycle(self) -> list[ApsFrame]:
        """Mains off and on: count the outage, restore or clear the relay, announce, report.

        An OTA download in progress is lost; the firmware version stays.
        """
        self.ota.power_lost()
        self._cancel_tick()
        self.timing.power_lost()
        self.power_outages += 1
        if not self.power_outage_memory:
            self.relay = False
        if self.joined:
            self.prevent_reset.start()
        return self._sent([self._device_annce(), self._on_off_report(), self._heartbeat_report()])

    def forget_settings(self) -> None:
        """Drop the settings back to factory defaults silently, as real switches are seen to do.

        `operation_mode` control_relay, `flip_indicator_light` off, `power_outage_memory` off; the
        relay and everything else stay. No frame is sent: users of the real QBKG40LM see these
        settings revert without any report (zigbee-herdsman-converters issue 12568).
        """
        self.operation_mode = OPERATION_MODES["control_relay"]
        self.flip_indicator_light = 0
        self.power_outage_memory = False

    def leave_network(self) -> None:
        """The switch leaves its network on its own and forgets it; the radio sees it leave."""
        self.forget_network()
        self.send_own([])  # nothing leaves a gone switch, but the radio learns of the leave

    def set_firmware(self, changes: Mapping[str, Any], *, send_prevent_reset: bool = False) -> dict[str, Any]:
        """Change firmware settings by name, then maybe send the prevent-reset report now.

        ValueError names a bad setting, or says why the report cannot be sent (and then nothing
        changed). Returns the settings (`firmware`) and the prevent-reset cycle's `status()`.
        """
        settings = self.firmware.changed(changes)
        if send_prevent_reset and not self.prevent_reset.can_send(settings):
            raise ValueError(self.prevent_reset.why_not(settings))
        self.firmware = settings
        self.prevent_reset.settings_changed()
        if send_prevent_reset:
            self.prevent_reset.send_now()
        return {"firmware": self.firmware.to_dict(), "prevent_reset": self.prevent_reset.status()}

    def timing_changed(self) -> None:
        """Keep the On/Off countdown's timer running exactly while something counts down."""
        if self._link is None or self.left or not self.timing.counting(self.relay):
            self._cancel_tick()
        elif self._tick is None:
            self._tick = self._link.call_later(TICK_SECONDS, self._on_off_tick)

    def _on_off_tick(self) -> None:
        self._tick = None
        if self.timing.tick(self.relay):
            self.relay = False
            LOGGER.debug("Switch %s: on time over, relay off", self.ieee)
            self.send_own([self._on_off_report()])
        self.timing_changed()

    def _cancel_tick(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _switch_relay(self, relay: bool) -> None:
        """An On, Off or Toggle (a press): the relay and the On/Off timing attributes follow."""
        if relay:
            self.timing.on_received()
        else:
            self.timing.off_received()
        self.relay = relay
        self.timing_changed()

    def forget_network(self) -> None:
        """Off the network (left, or reset by its user): not joined, no cycle, no countdown."""
        self.left = True
        self.joined = False
        self.prevent_reset.stop()
        self._cancel_tick()

    def _sent(self, frames: list[ApsFrame]) -> list[ApsFrame]:
        """What actually leaves the switch: nothing while it is silent or gone."""
        if not self.responsive or self.left:
            return []
        return frames

    # --- frames from the coordinator ----------------------------------------------------------------

    def handle(self, frame: ApsFrame, *, broadcast: bool = False) -> list[ApsFrame]:
        """Process one frame from the coordinator; return the frames the switch sends in reply.

        `broadcast` marks a broadcast or group frame: ZCL commands still act, but as the ZCL
        specification requires, no Default Response or command response is sent for them.
        """
        if not self.responsive or self.left:
            return []
        if frame.is_zdo:
            return self._handle_zdo(frame, broadcast)
        self.received.record(frame, broadcast=broadcast)
        if frame.profile_id != HA_PROFILE:
            return []  # the APS layer drops frames for other profiles
        if (
            frame.cluster_id == OTA
            and frame.dst_endpoint == SWITCH_ENDPOINT
            and len(frame.payload) >= 3
            and frame.payload[0] in _OTA_SERVER_FRAME_CONTROLS
            and frame.payload[2] == IMAGE_BLOCK_RESPONSE
        ):
            return self._image_block_response(frame, broadcast)
        if frame.dst_endpoint == BROADCAST_ENDPOINT:
            return self._handle_broadcast_endpoint(frame, broadcast)
        if frame.dst_endpoint not in _FIRMWARE_ENDPOINTS:
            return []  # the APS layer drops frames for absent endpoints
        return self._handle_zcl(frame, broadcast)

    def _image_block_response(self, frame: ApsFrame, broadcast: bool) -> list[ApsFrame]:
        """The frame of an OTA transfer, decoded without zigpy's header classes (hundreds a second)."""
        payload = frame.payload
        status = self.ota.handle_command(payload[2], payload[1], payload[3:], frame.src_endpoint, broadcast)
        if status is None:
            return []
        hdr, _body = ZclHeader.parse(payload)
        return _Request(frame, hdr, broadcast).default_response(status)

    def _handle_broadcast_endpoint(self, frame: ApsFrame, broadcast: bool) -> list[ApsFrame]:
        """Endpoint 0xFF: every endpoint with the cluster (either side) gets the frame."""
        answers = []
        for endpoint in sorted(_FIRMWARE_ENDPOINTS):
            if any((endpoint, side, frame.cluster_id) in _FIRMWARE_CLUSTERS for side in (_SERVER, _CLIENT)):
                copy = ApsFrame(
                    frame.src_endpoint, endpoint, frame.profile_id, frame.cluster_id, frame.payload
                )
                answers += self._handle_zcl(copy, broadcast)
        return answers

    # --- ZDO -----------------------------------------------------------------------------------------

    def _handle_zdo(self, frame: ApsFrame, broadcast: bool) -> list[ApsFrame]:
        if frame.cluster_id & 0x8000 or not frame.payload:
            return []  # responses and announcements from others need no answer
        tsn = frame.payload[0]
        try:
            command = zdo_t.ZDOCmd(frame.cluster_id)
            _names, schema = zdo_t.CLUSTERS[command]
            args, _rest = t.deserialize(frame.payload[1:], schema)
        except (KeyError, ValueError) as exc:
            LOGGER.debug("Switch %s: unsupported or malformed ZDO request %s: %s", self.ieee, frame, exc)
            return [] if broadcast else [self._zdo_status(frame.cluster_id, tsn, zdo_t.Status.NOT_SUPPORTED)]
        answers = self._zdo_answer(command, tsn, args, broadcast)
        return answers

    def _zdo_answer(
        self, command: zdo_t.ZDOCmd, tsn: int, args: list[Any], broadcast: bool
    ) -> list[ApsFrame]:
        cmd = zdo_t.ZDOCmd
        success = zdo_t.Status.SUCCESS
        nwk = t.NWK(self.nwk)
        if command in (cmd.Node_Desc_req, cmd.Active_EP_req, cmd.Simple_Desc_req) and args[0] != self.nwk:
            return [] if broadcast else [self._zdo(command, tsn, [zdo_t.Status.DEVICE_NOT_FOUND, args[0]])]
        if command == cmd.Node_Desc_req:
            return [self._zdo(command, tsn, [success, nwk, NODE_DESCRIPTOR])]
        if command == cmd.Active_EP_req:
            return [self._zdo(command, tsn, [success, nwk, self.active_endpoints])]
        if command == cmd.Simple_Desc_req:
            descriptor = self.simple_descriptor(args[1])
            if descriptor is None:
                status = zdo_t.Status.INVALID_EP if not 1 <= args[1] <= 240 else zdo_t.Status.NOT_ACTIVE
                return [self._zdo_raw(command, tsn, status.serialize() + nwk.serialize() + b"\x00")]
            return [self._zdo(command, tsn, [success, nwk, descriptor])]
        if command == cmd.IEEE_addr_req and args[0] == self.nwk:
            return [self._zdo(command, tsn, [success, self.ieee, nwk])]
        if command == cmd.NWK_addr_req and args[0] == self.ieee:
            return [self._zdo(command, tsn, [success, self.ieee, nwk])]
        if command in (cmd.IEEE_addr_req, cmd.NWK_addr_req):
            return []  # asked about another node: a router without children stays silent
        if command in (cmd.Bind_req, cmd.Unbind_req):
            return [self._zdo_status(command, tsn, success)]  # no binding table is modelled
        if command == cmd.Mgmt_Permit_Joining_req:
            return [] if broadcast else [self._zdo_status(command, tsn, success)]
        if command == cmd.Mgmt_Leave_req:
            return self._leave(tsn, args[0], int(args[1]))
        return [] if broadcast else [self._zdo_status(command, tsn, zdo_t.Status.NOT_SUPPORTED)]

    def _leave(self, tsn: int, address: t.EUI64, options: int) -> list[ApsFrame]:
        if address not in (self.ieee, t.EUI64.convert("00:00:00:00:00:00:00:00")):
            return [self._zdo_status(zdo_t.ZDOCmd.Mgmt_Leave_req, tsn, zdo_t.Status.DEVICE_NOT_FOUND)]
        answer = [self._zdo_status(zdo_t.ZDOCmd.Mgmt_Leave_req, tsn, zdo_t.Status.SUCCESS)]
        if options & 0x80:  # rejoin: back at once with the same addresses
            return [*answer, self._device_annce()]
        self.forget_network()
        return answer

    def _zdo(self, request: int, tsn: int, args: list[Any]) -> ApsFrame:
        response = zdo_t.ZDOCmd(request | 0x8000)
        _names, schema = zdo_t.CLUSTERS[response]
        return self._zdo_raw(request, tsn, t.serialize(args, schema))

    def _zdo_status(self, request: int, tsn: int, status: zdo_t.Status) -> ApsFrame:
        return self._zdo_raw(request, tsn, status.serialize())

    @staticmethod
    def _zdo_raw(request: int, tsn: int, body: bytes) -> ApsFrame:
        return ApsFrame(ZDO_ENDPOINT, ZDO_ENDPOINT, ZDO_PROFILE, request | 0x8000, bytes([tsn]) + body)

    def _device_annce(self) -> ApsFrame:
        body = t.NWK(self.nwk).serialize() + self.ieee.serialize() + bytes([MAC_CAPABILITIES])
        return ApsFrame(
            ZDO_ENDPOINT,
            ZDO_ENDPOINT,
            ZDO_PROFILE,
            zdo_t.ZDOCmd.Device_annce,
            bytes([self._next_tsn()]) + body,
        )

    # --- ZCL -----------------------------------------------------------------------------------------

    def _handle_zcl(self, frame: ApsFrame, broadcast: bool) -> list[ApsFrame]:
        try:
            hdr, body = ZclHeader.parse(frame.payload)
        except ValueError as exc:
            LOGGER.warning("Switch %s: dropping a malformed ZCL frame %s: %s", self.ieee, frame, exc)
            return []
        request = _Request(frame, hdr, broadcast)
        side = _SERVER if hdr.client_to_server else _CLIENT
        key: ClusterKey = (frame.dst_endpoint, side, frame.cluster_id)
        if key not in _FIRMWARE_CLUSTERS:
            return request.default_response(foundation.Status.UNSUPPORTED_CLUSTER)
        if hdr.is_general:
            return self._handle_general(request, key, body)
        return self._handle_cluster_command(request, key, body)

    def _handle_general(self, request: _Request, key: ClusterKey, body: bytes) -> list[ApsFrame]:
        command_id = request.hdr.command_id
        if command_id in _NOT_ANSWERED:
            return []
        if command_id not in (
            foundation.GeneralCommand.Read_Attributes,
            foundation.GeneralCommand.Configure_Reporting,
            *_WRITES,
        ):
            return request.default_response(foundation.Status.UNSUP_GENERAL_COMMAND)
        command = foundation.GENERAL_COMMANDS[foundation.GeneralCommand(command_id)]
        args: Any
        try:
            args, _rest = command.schema.deserialize(body)
        except (ValueError, KeyError) as exc:
            LOGGER.debug("Switch %s: malformed %s: %s", self.ieee, command.name, exc)
            return request.default_response(foundation.Status.MALFORMED_COMMAND)
        if command_id == foundation.GeneralCommand.Read_Attributes:
            return self._read_attributes(request, key, args.attribute_ids)
        if command_id == foundation.GeneralCommand.Configure_Reporting:
            return self._configure_reporting(request, key, args.config_records)
        return self._write_attributes(request, key, args.attributes)

    def _attribute(self, key: ClusterKey, attribute_id: int, manufacturer: int | None) -> _Attribute | None:
        """The attribute a request addresses, honouring the manufacturer code it carries."""
        spec = _ATTRIBUTES.get(key, {}).get(attribute_id)
        if spec is None or not spec.present(self):
            return None
        if spec.manufacturer is not None:
            return spec if manufacturer == spec.manufacturer else None
        # Standard attributes; Basic also answers Lumi's code (§9.3).
        if manufacturer is None or (key[2] == BASIC and manufacturer == LUMI_MANUFACTURER_CODE):
            return spec
        return None

    def _read_attributes(
        self, request: _Request, key: ClusterKey, attribute_ids: list[int]
    ) -> list[ApsFrame]:
        records = []
        for attribute_id in attribute_ids:
            spec = self._attribute(key, attribute_id, request.hdr.manufacturer)
            if spec is None:
                records.append(
                    foundation.ReadAttributeRecord(
                        t.uint16_t(attribute_id), foundation.Status.UNSUPPORTED_ATTRIBUTE
                    )
                )
            else:
                value = _typed(spec.zcl_type, spec.read(self))
                records.append(
                    foundation.ReadAttributeRecord(t.uint16_t(attribute_id), foundation.Status.SUCCESS, value)
                )
        schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp].schema
        return request.response(foundation.GeneralCommand.Read_Attributes_rsp, schema(status_records=records))

    def _write_attributes(
        self, request: _Request, key: ClusterKey, attributes: list[foundation.Attribute]
    ) -> list[ApsFrame]:
        accepted: list[tuple[_Attribute, Any]] = []
        failed: list[foundation.WriteAttributesStatusRecord] = []
        for attribute in attributes:
            spec = self._attribute(key, attribute.attrid, request.hdr.manufacturer)
            if spec is None:
                status = foundation.Status.UNSUPPORTED_ATTRIBUTE
            elif spec.write is None:
                status = foundation.Status.READ_ONLY
            elif attribute.value.type != spec.zcl_type:
                status = foundation.Status.INVALID_DATA_TYPE
            elif not spec.valid(attribute.value.value):
                status = foundation.Status.INVALID_VALUE
            else:
                accepted.append((spec, attribute.value.value))
                continue
            failed.append(foundation.WriteAttributesStatusRecord(status=status, attrid=attribute.attrid))
        command_id = request.hdr.command_id
        if not (failed and command_id == foundation.GeneralCommand.Write_Attributes_Undivided):
            for spec, value in accepted:
                assert spec.write is not None
                spec.write(self, value)
        if command_id == foundation.GeneralCommand.Write_Attributes_No_Response:
            return []
        records = failed or [foundation.WriteAttributesStatusRecord(status=foundation.Status.SUCCESS)]
        schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Write_Attributes_rsp].schema
        return request.response(
            foundation.GeneralCommand.Write_Attributes_rsp,
            schema(status_records=foundation.WriteAttributesResponse(records)),
        )

    def _configure_reporting(
        self, request: _Request, key: ClusterKey, configs: list[foundation.AttributeReportingConfig]
    ) -> list[ApsFrame]:
        records = [
            foundation.ConfigureReportingResponseRecord(
                status=foundation.Status.UNSUPPORTED_ATTRIBUTE,
                direction=config.direction,
                attrid=config.attrid,
            )
            for config in configs
            if self._attribute(key, config.attrid, request.hdr.manufacturer) is None
        ] or [foundation.ConfigureReportingResponseRecord(status=foundation.Status.SUCCESS)]
        schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Configure_Reporting_rsp].schema
        return request.response(
            foundation.GeneralCommand.Configure_Reporting_rsp,
            schema(status_records=foundation.ConfigureReportingResponse(records)),
        )

    def _handle_cluster_command(self, request: _Request, key: ClusterKey, body: bytes) -> list[ApsFrame]:
        if request.hdr.is_manufacturer_specific:
            return request.default_response(foundation.Status.UNSUP_MANUF_CLUSTER_COMMAND)
        _endpoint, side, cluster_id = key
        if side == _CLIENT:
            if cluster_id != OTA:
                return []  # Time client: the coordinator never commands it
            status = self.ota.handle_command(
                request.hdr.command_id, request.hdr.tsn, body, request.frame.src_endpoint, request.broadcast
            )
            return [] if status is None else request.default_response(status)
        if cluster_id == ON_OFF_CLUSTER_ID:
            return self._on_off_command(request, body)
        if cluster_id == GROUPS:
            return self._groups_command(request, body)
        if cluster_id == IDENTIFY:
            return request.default_response(foundation.Status.SUCCESS)  # nothing to blink
        return request.default_response(foundation.Status.UNSUP_CLUSTER_COMMAND)

    def _on_off_command(self, request: _Request, body: bytes) -> list[ApsFrame]:
        command_id = request.hdr.command_id
        if command_id == ON_WITH_TIMED_OFF:
            return self._on_with_timed_off(request, body)
        if command_id not in (0x00, 0x01, 0x02):
            return request.default_response(foundation.Status.UNSUP_CLUSTER_COMMAND)
        self._switch_relay({0x00: False, 0x01: True, 0x02: not self.relay}[command_id])
        return [*request.default_response(foundation.Status.SUCCESS), self._on_off_report()]

    def _on_with_timed_off(self, request: _Request, body: bytes) -> list[ApsFrame]:
        """OnWithTimedOff (0x42): the ZCL rules in sim/on_off_timing.py, or refused by setting."""
        if not self.firmware.on_with_timed_off:
            return request.default_response(foundation.Status.UNSUP_CLUSTER_COMMAND)
        args: Any
        try:
            args, _rest = OnOff.ServerCommandDefs.on_with_timed_off.schema.deserialize(body)
        except ValueError as exc:
            LOGGER.debug("Switch %s: malformed OnWithTimedOff: %s", self.ieee, exc)
            return request.default_response(foundation.Status.MALFORMED_COMMAND)
        only_when_on = bool(args.on_off_control & OnOff.OnOffControl.Accept_Only_When_On)
        relay = self.timing.timed_on(self.relay, only_when_on, int(args.on_time), int(args.off_wait_time))
        if relay is None:  # discarded: nothing changed, nothing to report
            return request.default_response(foundation.Status.SUCCESS)
        self.relay = relay
        self.timing_changed()
        return [*request.default_response(foundation.Status.SUCCESS), self._on_off_report()]

    def _groups_command(self, request: _Request, body: bytes) -> list[ApsFrame]:
        server, client = Groups.ServerCommandDefs, Groups.ClientCommandDefs
        command_id = request.hdr.command_id
        status = foundation.Status
        args: Any
        try:
            if command_id == server.add.id:
                args, _ = server.add.schema.deserialize(body)
                if args.group_id in self.groups:
                    result = status.DUPLICATE_EXISTS
                elif len(self.groups) >= MAX_GROUPS:
                    result = status.INSUFFICIENT_SPACE
                else:
                    self.groups.add(int(args.group_id))
                    result = status.SUCCESS
                return request.cluster_response(
                    client.add_response, client.add_response.schema(status=result, group_id=args.group_id)
                )
            if command_id == server.view.id:
                args, _ = server.view.schema.deserialize(body)
                result = status.SUCCESS if args.group_id in self.groups else status.NOT_FOUND
                answer = client.view_response.schema(status=result, group_id=args.group_id, group_name="")
                return request.cluster_response(client.view_response, answer)
            if command_id == server.get_membership.id:
                args, _ = server.get_membership.schema.deserialize(body)
                asked = {int(group) for group in args.groups}
                member = sorted(self.groups & asked if asked else self.groups)
                answer = client.get_membership_response.schema(
                    capacity=MAX_GROUPS - len(self.groups), groups=[t.Group(group) for group in member]
                )
                return request.cluster_response(client.get_membership_response, answer)
            if command_id == server.remove.id:
                args, _ = server.remove.schema.deserialize(body)
                result = status.SUCCESS if args.group_id in self.groups else status.NOT_FOUND
                self.groups.discard(int(args.group_id))
                return request.cluster_response(
                    client.remove_response,
                    client.remove_response.schema(status=result, group_id=args.group_id),
                )
        except ValueError as exc:
            LOGGER.debug("Switch %s: malformed Groups command: %s", self.ieee, exc)
            return request.default_response(status.MALFORMED_COMMAND)
        if command_id == server.remove_all.id:
            self.groups.clear()
            return request.default_response(status.SUCCESS)
        if command_id == server.add_if_identifying.id:
            return request.default_response(status.SUCCESS)  # never identifying: nothing to add
        return request.default_response(status.UNSUP_CLUSTER_COMMAND)

    # --- spontaneous ZCL -------------------------------------------------------------------------

    def _next_tsn(self) -> int:
        self._tsn = (self._tsn + 1) & 0xFF
        return self._tsn

    def _report(
        self,
        endpoint: int,
        cluster_id: int,
        attributes: list[tuple[int, int, Any]],
        manufacturer: int | None = None,
    ) -> ApsFrame:
        """A Report Attributes frame from the switch: `18 tt 0A …`, or `1C <mfr> tt 0A …`."""
        # The bytes directly: building zigpy's ZCLHeader and Report_Attributes structs cost ~150 µs
        # a frame, as much as the daemon's own work on a heartbeat stream.
        hdr = header_bytes(
            general=True,
            server_to_client=True,
            manufacturer=manufacturer,
            tsn=self._next_tsn(),
            command_id=foundation.GeneralCommand.Report_Attributes,
        )
        # The body is a list of attribute records without a count: id (uint16), type, value.
        records = b"".join(
            attribute_id.to_bytes(2, "little") + bytes([zcl_type]) + _encoded(zcl_type, value)
            for attribute_id, zcl_type, value in attributes
        )
        return ApsFrame(endpoint, COORDINATOR_ENDPOINT, HA_PROFILE, cluster_id, hdr + records)

    def _on_off_report(self) -> ApsFrame:
        return self._report(SWITCH_ENDPOINT, ON_OFF_CLUSTER_ID, [(0x0000, 0x10, self.relay)])

    def _heartbeat_report(self) -> ApsFrame:
        return self._report(
            SWITCH_ENDPOINT,
            LUMI_CLUSTER_ID,
            [(ATTR_HEARTBEAT, 0x41, self.heartbeat_body())],
            manufacturer=LUMI_MANUFACTURER_CODE,
        )


class _Request:
    """One ZCL request being answered: builds replies with its TSN, manufacturer code and the
    flipped direction, and applies the Default Response rules."""

    def __init__(self, frame: ApsFrame, hdr: ZclHeader, broadcast: bool) -> None:
        self.frame = frame
        self.hdr = hdr
        self.broadcast = broadcast

    def _frame(self, general: bool, command_id: int, body: bytes) -> ApsFrame:
        hdr = header_bytes(
            general=general,
            server_to_client=self.hdr.client_to_server,  # the answer goes the other way
            manufacturer=self.hdr.manufacturer,
            tsn=self.hdr.tsn,
            command_id=command_id,
        )
        return ApsFrame(
            self.frame.dst_endpoint,
            self.frame.src_endpoint,
            self.frame.profile_id,
            self.frame.cluster_id,
            hdr + body,
        )

    def response(self, command_id: int, body: t.Struct) -> list[ApsFrame]:
        """A foundation response (Read/Write/Configure Reporting), sent for unicast and broadcast."""
        return [self._frame(True, command_id, body.serialize())]

    def cluster_response(self, command: foundation.ZCLCommandDef, body: t.Struct) -> list[ApsFrame]:
        """A cluster-specific response; not sent for broadcast or group requests."""
        if self.broadcast:
            return []
        return [self._frame(False, command.id, body.serialize())]

    def default_response(self, status: foundation.Status) -> list[ApsFrame]:
        """A Default Response: on error, or on success unless disabled; never for broadcasts."""
        if self.broadcast:
            return []
        if status == foundation.Status.SUCCESS and self.hdr.disable_default_response:
            return []
        body = bytes((self.hdr.command_id, int(status)))  # DefaultResponse: command id, status
        return [self._frame(True, foundation.GeneralCommand.Default_Response, body)]
