"""Aqara QBKG40LM, "Smart wall switch E1 (with neutral, single rocker)", model id lumi.switch.b1nc01.

The whole device in one declarative definition. Wire facts: ../shared/reference/qbkg40lm-zigbee.md.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from z2m_qbkg40lm.devices.definition import (
    AttributeMessage,
    ClusterCommand,
    ConversionError,
    DeviceDefinition,
    EndpointPatch,
    InboundConverter,
    ManufacturerAttribute,
    ManufacturerCluster,
    Options,
    OutboundConverter,
    ReadAttributes,
    Responder,
    SetPlan,
    State,
    TimedFallback,
    WriteAttribute,
    ZclOperation,
)
from z2m_qbkg40lm.devices.exposes import Access, binary, enum, linkquality, numeric, switch, switch_state
from z2m_qbkg40lm.devices.lumi_tlv import decode_tlv

logger = logging.getLogger(__name__)

LUMI_MANUFACTURER_CODE = 0x115F
LUMI_CLUSTER_ID = 0xFCC0
BASIC_CLUSTER_ID = 0x0000
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

# Basic 0xFFF0: Lumi's private exchange with its hub (§8 of the wire reference).
ATTR_BASIC_LUMI_EXCHANGE = 0xFFF0
PREVENT_RESET_ASK = bytes.fromhex("aa 10 05 41 87")
"""The first bytes of the switch's "may I reset?" report (e.g. `aa 10 05 41 87 01 01 10 00`)."""
PREVENT_RESET_ANSWER = bytes.fromhex("aa 10 05 41 47 01 01 10 01")
"""What the Aqara hub (and Zigbee2MQTT) writes back so that the switch does not reset itself."""

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

# --- Standard clusters ---------------------------------------------------------------------------

ATTR_ON_OFF = 0x0000
ATTR_PRESENT_VALUE = 0x0055  # Multistate Input presentValue: one press event per report

CMD_OFF = 0x00
CMD_ON = 0x01
CMD_TOGGLE = 0x02
CMD_ON_WITH_TIMED_OFF = 0x42  # on/off control (bitmap8), on time and off wait time (uint16, 1/10 s)
ON_TIME = "on_time"
OFF_WAIT_TIME = "off_wait_time"
MAX_TIMED_S = 6553.4  # 0xFFFE tenths: the largest time 0x42 carries (0xFFFF is not a duration)

# --- Heartbeat TLV indexes (§6.3 of the wire reference) ------------------------------------------

TLV_DEVICE_TEMPERATURE = 3  # int8, whole °C
TLV_POWER_OUTAGE_COUNT = 5  # uint16, boots; published as value - 1 like Zigbee2MQTT
TLV_STATE = 100  # bool, relay 1

# --- Value tables ------------------------------------------------------------------------------

STATE_COMMANDS: dict[str, int] = {"ON": CMD_ON, "OFF": CMD_OFF, "TOGGLE": CMD_TOGGLE}
OPERATION_MODES: dict[str, int] = {"control_relay": 1, "decoupled": 0}
# Only single and double are exposed, but the firmware family also reports these; publishing them
# by name (as Zigbee2MQTT does) beats dropping a real press.
ACTIONS: dict[int, str] = {0: "hold", 1: "single", 2: "double", 3: "triple", 255: "release"}
EXPOSED_ACTIONS = ("single", "double")

# What a `/set` of power_outage_memory takes. Zigbee2MQTT writes any JavaScript-truthy value as
# true, so `"false"`, `"OFF"` and `"0"` switch the memory ON there; here each means what it says,
# and anything else is refused instead of guessed.
POWER_OUTAGE_MEMORY_WORDS: dict[str, bool] = {
    "true": True,
    "false": False,
    "on": True,
    "off": False,
    "1": True,
    "0": False,
}
POWER_OUTAGE_MEMORY_NUMBERS: dict[float, bool] = {1: True, 0: False}
FLIP_INDICATOR_LIGHT_CODES: dict[str, int] = {"ON": 1, "OFF": 0}

# --- Option names --------------------------------------------------------------------------------

OPTION_TEMPERATURE_CALIBRATION = "device_temperature_calibration"
OPTION_TEMPERATURE_PRECISION = "device_temperature_precision"
OPTION_STATE_ACTION = "state_action"
DEFAULT_TEMPERATURE_PRECISION = 0
MAX_TEMPERATURE_PRECISION = 3

_LUMI_READABLE: dict[str, int] = {
    "operation_mode": ATTR_OPERATION_MODE,
    "power_outage_memory": ATTR_POWER_OUTAGE_MEMORY,
    "flip_indicator_light": ATTR_FLIP_INDICATOR_LIGHT,
}


# --- Small helpers -------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as the user wrote it: strings quoted, everything else as JSON."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _is_integer(value: object) -> TypeGuard[int]:
    # bool is an int in Python, but a bool where a number is expected is a type mix-up.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _round_half_up(value: float, digits: int) -> float:
    # Zigbee2MQTT rounds with JavaScript's Math.round(value * 10^digits) / 10^digits, which rounds
    # halves towards +infinity; Python's round() rounds halves to even. Do what Zigbee2MQTT does so
    # the same report publishes the same number.
    factor = 10.0**digits
    return math.floor(value * factor + 0.5) / factor


def _json_number(value: float) -> int | float:
    # JavaScript has one number type: 30.0 is published as 30. Mirror that.
    return int(value) if value.is_integer() else value


def _temperature_precision(options: Options) -> int:
    precision = options.get(OPTION_TEMPERATURE_PRECISION)
    if precision is None:
        return DEFAULT_TEMPERATURE_PRECISION
    if isinstance(precision, float) and precision.is_integer():
        precision = int(precision)
    if not _is_integer(precision) or not 0 <= precision <= MAX_TEMPERATURE_PRECISION:
        logger.warning(
            "Option %s must be an integer from 0 to %d, got %r; using %d",
            OPTION_TEMPERATURE_PRECISION,
            MAX_TEMPERATURE_PRECISION,
            precision,
            DEFAULT_TEMPERATURE_PRECISION,
        )
        return DEFAULT_TEMPERATURE_PRECISION
    return int(precision)


def _temperature_calibration(options: Options) -> float:
    calibration = options.get(OPTION_TEMPERATURE_CALIBRATION)
    if calibration is None:
        return 0
    if _is_number(calibration) and math.isfinite(calibration):
        return float(calibration)
    logger.warning(
        "Option %s must be a number, got %r; ignoring it", OPTION_TEMPERATURE_CALIBRATION, calibration
    )
    return 0


def device_temperature(raw: float, options: Options) -> int | float:
    """A raw chip temperature (°C) with the calibration offset added, rounded to the precision option."""
    precision = _temperature_precision(options)
    rounded = _round_half_up(raw + _temperature_calibration(options), precision)
    return int(rounded) if precision == 0 else _json_number(rounded)


def _ignored(message: AttributeMessage, why: str) -> State:
    logger.warning(
        "QBKG40LM: ignoring %s of 0x%04X/0x%04X from endpoint %d: %s (value %r)",
        message.kind,
        message.cluster_id,
        message.attribute_id,
        message.endpoint,
        why,
        message.value,
    )
    return {}


# --- Inbound converters --------------------------------------------------------------------------


def on_off_from_zigbee(message: AttributeMessage, options: Options) -> State:
    """OnOff 0x0006/0x0000 -> state ON/OFF (and action on/off with the state_action option)."""
    if not _is_integer(message.value) and not isinstance(message.value, bool):
        return _ignored(message, "expected a boolean")
    if message.value not in (0, 1):
        return _ignored(message, "expected 0 or 1")
    state = "ON" if message.value else "OFF"
    result: State = {"state": state}
    if options.get(OPTION_STATE_ACTION) is True:
        result["action"] = state.lower()
    return result


def action_from_zigbee(message: AttributeMessage, options: Options) -> State:
    """Multistate Input presentValue (any endpoint) -> action single/double/hold/triple/release."""
    value = message.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not _is_integer(value):
        return _ignored(message, "expected an integer press code")
    name = ACTIONS.get(value)
    if name is None:
        # No made-up names such as "unknown_4": Home Assistant would create a device trigger for
        # it that breaks once the code gets its real name. The warning carries the raw code.
        return _ignored(message, "unknown press code, no action published")
    return {"action": name}


def _heartbeat_body(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        # zigpy's CharacterString keeps the undecoded bytes in `.raw`; its text stops at the first
        # NUL, which a TLV body is full of. Without `.raw`, latin-1 is the one lossless way back
        # from a str that was made byte-for-byte.
        raw = getattr(value, "raw", None)
        if isinstance(raw, bytes | bytearray):
            return bytes(raw)
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            return value.encode("utf-8", errors="surrogateescape")
    return None


def heartbeat_from_zigbee(message: AttributeMessage, options: Options) -> State:
    """The 0xFCC0/0x00F7 TLV heartbeat -> device_temperature, power_outage_count, state."""
    body = _heartbeat_body(message.value)
    if body is None:
        return _ignored(message, "expected an octet string")
    decoded = decode_tlv(body)
    if decoded.problem is not None:
        logger.warning(
            "QBKG40LM: heartbeat from endpoint %d is malformed (%s); using the %d item(s) before it",
            message.endpoint,
            decoded.problem,
            len(decoded.items),
        )
    items = decoded.items
    result: State = {}
    temperature = items.get(TLV_DEVICE_TEMPERATURE)
    if temperature is not None:
        if _is_number(temperature):
            result["device_temperature"] = device_temperature(temperature, options)
        else:
            logger.warning("QBKG40LM: heartbeat temperature is not a number: %r", temperature)
    count = items.get(TLV_POWER_OUTAGE_COUNT)
    if count is not None:
        if _is_integer(count):
            result["power_outage_count"] = count - 1
        else:
            logger.warning("QBKG40LM: heartbeat power-outage count is not an integer: %r", count)
    state = items.get(TLV_STATE)
    if state is not None:
        if isinstance(state, bool | int):
            result["state"] = "ON" if state == 1 else "OFF"
        else:
            logger.warning("QBKG40LM: heartbeat relay state is not a boolean: %r", state)
    return result


def operation_mode_from_zigbee(message: AttributeMessage, options: Options) -> State:
    """0xFCC0/0x0200 -> operation_mode control_relay (1) / decoupled (0)."""
    if _is_integer(message.value) or isinstance(message.value, bool):
        for name, code in OPERATION_MODES.items():
            if message.value == code:
                return {"operation_mode": name}
    return _ignored(message, "expected 1 (control_relay) or 0 (decoupled)")


def power_outage_memory_from_zigbee(message: AttributeMessage, options: Options) -> State:
    """0xFCC0/0x0201 -> power_outage_memory true/false."""
    if (_is_integer(message.value) or isinstance(message.value, bool)) and message.value in (0, 1):
        return {"power_outage_memory": message.value == 1}
    return _ignored(message, "expected a boolean")


def flip_indicator_light_from_zigbee(message: AttributeMessage, options: Options) -> State:
    """0xFCC0/0x00F0 -> flip_indicator_light ON (1) / OFF (anything else)."""
    if not (_is_integer(message.value) or isinstance(message.value, bool)):
        return _ignored(message, "expected an integer")
    return {"flip_indicator_light": "ON" if message.value == 1 else "OFF"}


# ATTR_MODE (0x0009) has no converter on purpose: the generic Lumi decoder would publish it as
# operation_mode "event" and overwrite the real mode.
INBOUND = (
    InboundConverter(ON_OFF_CLUSTER_ID, frozenset({ATTR_ON_OFF}), on_off_from_zigbee),
    InboundConverter(MULTISTATE_INPUT_CLUSTER_ID, frozenset({ATTR_PRESENT_VALUE}), action_from_zigbee),
    InboundConverter(LUMI_CLUSTER_ID, frozenset({ATTR_HEARTBEAT}), heartbeat_from_zigbee),
    InboundConverter(LUMI_CLUSTER_ID, frozenset({ATTR_OPERATION_MODE}), operation_mode_from_zigbee),
    InboundConverter(LUMI_CLUSTER_ID, frozenset({ATTR_POWER_OUTAGE_MEMORY}), power_outage_memory_from_zigbee),
    InboundConverter(
        LUMI_CLUSTER_ID, frozenset({ATTR_FLIP_INDICATOR_LIGHT}), flip_indicator_light_from_zigbee
    ),
)


# --- Outbound converters -------------------------------------------------------------------------


def _lumi_write(attribute_id: int, zcl_type: int, value: int) -> WriteAttribute:
    return WriteAttribute(
        SWITCH_ENDPOINT, LUMI_CLUSTER_ID, attribute_id, zcl_type, value, manufacturer=LUMI_MANUFACTURER_CODE
    )


def _lumi_read(attribute_id: int) -> ReadAttributes:
    return ReadAttributes(
        SWITCH_ENDPOINT, LUMI_CLUSTER_ID, (attribute_id,), manufacturer=LUMI_MANUFACTURER_CODE
    )


def state_to_zigbee(prop: str, value: Any, state: State, options: Options) -> SetPlan:
    """state ON/OFF/TOGGLE (strings, any case) -> OnOff command; optimistic state."""
    # Strings only, like Zigbee2MQTT: a JSON true is not a switch command there either.
    command_id = STATE_COMMANDS.get(value.upper()) if isinstance(value, str) else None
    if command_id is None:
        raise ConversionError(f"{prop}: {_show(value)} is not one of {', '.join(STATE_COMMANDS)}")
    word = value.upper()
    command = ClusterCommand(SWITCH_ENDPOINT, ON_OFF_CLUSTER_ID, command_id)
    if word != "TOGGLE":
        return SetPlan((command,), {"state": word})
    current = state.get("state")
    # A toggle of an unknown state has no predictable result: wait for the device's report.
    if current == "ON":
        return SetPlan((command,), {"state": "OFF"})
    if current == "OFF":
        return SetPlan((command,), {"state": "ON"})
    return SetPlan((command,))


def _tenths(prop: str, value: Any) -> int:
    """A duration in seconds as the uint16 tenths OnWithTimedOff carries (JavaScript rounding)."""
    if not _is_number(value):
        # Zigbee2MQTT's words, so that log filters written for it match.
        raise ConversionError(f"The {prop} value must be a number! (got {_show(value)})")
    if not math.isfinite(value) or not 0 <= value <= MAX_TIMED_S:
        raise ConversionError(
            f"{prop}: {_show(value)} is out of range: 0 to {MAX_TIMED_S} seconds "
            "(it goes to the switch in tenths of a second, at most 65534)"
        )
    return math.floor(value * 10 + 0.5)


def on_off_to_zigbee(message: Mapping[str, Any], state: State, options: Options) -> SetPlan:
    """state with on_time / off_wait_time (seconds) -> On/Off OnWithTimedOff (0x42), as Zigbee2MQTT.

    With state ON and either time: one 0x42 command; the optimistic state is ON (the switch
    acknowledged it), its own report says when it went off. A switch that refuses 0x42 as
    unsupported gets the fallback: On now, Off from the daemon's timer after on_time. With OFF or
    TOGGLE the times are ignored, as in Zigbee2MQTT.
    """
    timed = [key for key in (ON_TIME, OFF_WAIT_TIME) if key in message]
    if "state" not in message:
        raise ConversionError(
            f'{timed[0] if timed else "state"}: needs "state": "ON" in the same /set '
            f'(e.g. {{"state": "ON", "on_time": 30}}); on its own it does nothing'
        )
    value = message["state"]
    if not timed or not isinstance(value, str) or value.upper() != "ON":
        if timed and isinstance(value, str) and value.upper() in STATE_COMMANDS:
            logger.info("QBKG40LM: %s ignored with state %s (it only goes with ON)", ", ".join(timed), value)
        return state_to_zigbee("state", value, state, options)
    on_tenths = _tenths(ON_TIME, message.get(ON_TIME, 0))
    off_wait_tenths = _tenths(OFF_WAIT_TIME, message.get(OFF_WAIT_TIME, 0))
    on = ClusterCommand(SWITCH_ENDPOINT, ON_OFF_CLUSTER_ID, CMD_ON)
    off = ClusterCommand(SWITCH_ENDPOINT, ON_OFF_CLUSTER_ID, CMD_OFF)
    # An on time of 0 starts no countdown (ZCL): the relay just stays on.
    later = (off,) if on_tenths else ()
    fallback = TimedFallback(
        operations=(on,),
        optimistic_state={"state": "ON"},
        delay_s=on_tenths / 10,
        later_operations=later,
        later_state={"state": "OFF"} if later else {},
        notice=(
            "does not support OnWithTimedOff (on_time/off_wait_time): the daemon switches it on and "
            "sends the off itself after on_time (off_wait_time is not applied)"
        ),
    )
    timed_on = ClusterCommand(
        SWITCH_ENDPOINT, ON_OFF_CLUSTER_ID, CMD_ON_WITH_TIMED_OFF, args=(0, on_tenths, off_wait_tenths)
    )
    return SetPlan((timed_on,), {"state": "ON"}, fallback=fallback)


def state_read(prop: str) -> tuple[ZclOperation, ...]:
    """/get state -> read OnOff 0x0000 (on_time and off_wait_time are not readable)."""
    if prop != "state":
        return ()
    return (ReadAttributes(SWITCH_ENDPOINT, ON_OFF_CLUSTER_ID, (ATTR_ON_OFF,)),)


def operation_mode_to_zigbee(prop: str, value: Any, state: State, options: Options) -> SetPlan:
    """operation_mode control_relay/decoupled (any case, or legacy {"state": ...}) -> write 0x0200,
    read back."""
    # Zigbee2MQTT takes a string in any case, and the older form {"state": "decoupled"}; not numbers.
    wanted = value.get("state") if isinstance(value, Mapping) else value
    code = OPERATION_MODES.get(wanted.lower()) if isinstance(wanted, str) else None
    if code is None:
        raise ConversionError(
            f"{prop}: {_show(value)} is not one of {', '.join(OPERATION_MODES)} "
            '(any case, or {"state": ...})'
        )
    # No optimistic state: the mode has been seen reverting on its own (z-h-c #12568), so publish
    # only what the device answers. The read-back right after the write is that answer.
    return SetPlan(
        (
            _lumi_write(ATTR_OPERATION_MODE, ZCL_UINT8, code),
            _lumi_read(ATTR_OPERATION_MODE),
        )
    )


def power_outage_memory_value(value: Any) -> bool | None:
    """A `/set` value of power_outage_memory as a boolean, None when it is not one of the accepted."""
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return POWER_OUTAGE_MEMORY_NUMBERS.get(value)
    if isinstance(value, str):
        return POWER_OUTAGE_MEMORY_WORDS.get(value.lower())
    return None


def power_outage_memory_to_zigbee(prop: str, value: Any, state: State, options: Options) -> SetPlan:
    """power_outage_memory true/false (or 1/0, "ON"/"OFF", "true"/"false") -> write 0x0201 (bool);
    the normalised boolean published optimistically."""
    enabled = power_outage_memory_value(value)
    if enabled is None:
        raise ConversionError(
            f"{prop}: {_show(value)} is not one of true, false "
            '(also 1, 0, "ON", "OFF", "true", "false", "1", "0"; strings in any case)'
        )
    return SetPlan(
        (_lumi_write(ATTR_POWER_OUTAGE_MEMORY, ZCL_BOOL, 1 if enabled else 0),),
        {"power_outage_memory": enabled},
    )


def flip_indicator_light_to_zigbee(prop: str, value: Any, state: State, options: Options) -> SetPlan:
    """flip_indicator_light ON/OFF (any case) -> write 0x00F0 (uint8 1/0); "ON"/"OFF" published."""
    # Strings only, as in Zigbee2MQTT (its lookup refuses true and 1 for this property).
    word = value.upper() if isinstance(value, str) else None
    if word not in FLIP_INDICATOR_LIGHT_CODES:
        raise ConversionError(f"{prop}: {_show(value)} is not one of ON, OFF (any case)")
    return SetPlan(
        (_lumi_write(ATTR_FLIP_INDICATOR_LIGHT, ZCL_UINT8, FLIP_INDICATOR_LIGHT_CODES[word]),),
        {"flip_indicator_light": word},
    )


def lumi_read(prop: str) -> tuple[ZclOperation, ...]:
    """/get of a Lumi setting -> manufacturer-specific read of its 0xFCC0 attribute."""
    attribute_id = _LUMI_READABLE.get(prop)
    return () if attribute_id is None else (_lumi_read(attribute_id),)


OUTBOUND = (
    OutboundConverter(frozenset({"state", ON_TIME, OFF_WAIT_TIME}), None, state_read, on_off_to_zigbee),
    OutboundConverter(frozenset({"operation_mode"}), operation_mode_to_zigbee, lumi_read),
    OutboundConverter(frozenset({"power_outage_memory"}), power_outage_memory_to_zigbee, lumi_read),
    OutboundConverter(frozenset({"flip_indicator_light"}), flip_indicator_light_to_zigbee, lumi_read),
)


# --- Answers the switch asks for ----------------------------------------------------------------


def prevent_reset(message: AttributeMessage) -> tuple[ZclOperation, ...]:
    """Basic 0xFFF0 report starting `aa 10 05 41 87` -> write the hub's answer to Basic 0xFFF0 on
    endpoint 1 (octet string, manufacturer code 0x115F); any other value needs no answer."""
    value = message.value
    if not isinstance(value, bytes | bytearray | memoryview):
        return ()
    if bytes(value[: len(PREVENT_RESET_ASK)]) != PREVENT_RESET_ASK:
        return ()
    # Lumi E1 devices left unanswered can reset themselves (z-h-c lumiPreventReset). Zigbee2MQTT
    # waits for the Write Attributes Response and logs a failure; so does the daemon.
    return (
        WriteAttribute(
            SWITCH_ENDPOINT,
            BASIC_CLUSTER_ID,
            ATTR_BASIC_LUMI_EXCHANGE,
            ZCL_OCTET_STRING,
            PREVENT_RESET_ANSWER,
            manufacturer=LUMI_MANUFACTURER_CODE,
        ),
    )


RESPONDERS = (
    Responder("prevent reset", BASIC_CLUSTER_ID, frozenset({ATTR_BASIC_LUMI_EXCHANGE}), prevent_reset),
)


# --- Exposes, options, configure -----------------------------------------------------------------

EXPOSES = (
    switch(switch_state()),
    binary(
        "power_outage_memory",
        Access.ALL,
        True,
        False,
        description="Enable/disable the power outage memory, "
        "this recovers the on/off mode after power failure",
        category="config",
    ),
    numeric(
        "device_temperature",
        Access.STATE,
        unit="°C",
        description="Temperature of the device",
        category="diagnostic",
    ),
    binary(
        "flip_indicator_light",
        Access.ALL,
        "ON",
        "OFF",
        description="After turn on, the indicator light turns on while switch is off, and vice versa",
        category="config",
    ),
    enum("operation_mode", Access.ALL, tuple(OPERATION_MODES), description="Decoupled mode"),
    # Zigbee2MQTT 2.14.1 lists the action after the settings, whatever the definition's order
    # (tests/data/zigbee2mqtt-2.14.1-transcript.json); clients and the frontend show this order.
    enum(
        "action",
        Access.STATE,
        EXPOSED_ACTIONS,
        description="Triggered action (e.g. a button click)",
        category="diagnostic",
    ),
    linkquality(),
)

OPTIONS = (
    numeric(
        OPTION_TEMPERATURE_CALIBRATION,
        Access.SET,
        value_step=0.1,
        description="Calibrates the device_temperature value (absolute offset), "
        "takes into effect on next report of device.",
    ),
    # Current Zigbee2MQTT no longer offers this (default precision 0); the project keeps it.
    numeric(
        OPTION_TEMPERATURE_PRECISION,
        Access.SET,
        value_min=0,
        value_max=MAX_TEMPERATURE_PRECISION,
        description="Number of digits after decimal point for device_temperature, "
        "takes into effect on next report of device.",
    ),
    binary(
        OPTION_STATE_ACTION,
        Access.SET,
        True,
        False,
        description="State actions will also be published as 'action' when true (default false).",
    ),
)

# Event mode (0x0009 = 1) makes the switch report presses; sent without waiting, as Zigbee2MQTT does.
CONFIGURE = (
    WriteAttribute(
        SWITCH_ENDPOINT,
        LUMI_CLUSTER_ID,
        ATTR_MODE,
        ZCL_UINT8,
        1,
        manufacturer=LUMI_MANUFACTURER_CODE,
        await_response=False,
    ),
)

QBKG40LM = DeviceDefinition(
    model_ids=("lumi.switch.b1nc01",),
    model="QBKG40LM",
    vendor="Aqara",
    description="Smart wall switch E1 (with neutral, single rocker)",
    exposes=EXPOSES,
    options=OPTIONS,
    inbound=INBOUND,
    outbound=OUTBOUND,
    configure=CONFIGURE,
    manufacturer_clusters=(LUMI_CLUSTER,),
    endpoint_patches=ENDPOINT_PATCHES,
    supports_ota=True,
    responders=RESPONDERS,
)
