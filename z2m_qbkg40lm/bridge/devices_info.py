"""The elements of `<base>/bridge/devices` and the `definition` object, as Zigbee2MQTT shapes them.

Pure functions of what the radio layer knows (`DeviceDetails`), the device's definition and its
settings: no I/O, so every field can be checked in a unit test.
"""

from __future__ import annotations

from typing import Any, Literal

from z2m_qbkg40lm.devices.definition import DeviceDefinition
from z2m_qbkg40lm.devices.exposes import exposes_json
from z2m_qbkg40lm.zigbee.radio import DeviceDetails

InterviewState = Literal["PENDING", "IN_PROGRESS", "SUCCESSFUL", "FAILED"]

COORDINATOR_NAME = "Coordinator"

# zigbee-herdsman's cluster names, which Zigbee2MQTT tools match on; other ids appear as numbers.
CLUSTER_NAMES: dict[int, str] = {
    0x0000: "genBasic",
    0x0001: "genPowerCfg",
    0x0002: "genDeviceTempCfg",
    0x0003: "genIdentify",
    0x0004: "genGroups",
    0x0005: "genScenes",
    0x0006: "genOnOff",
    0x0007: "genOnOffSwitchCfg",
    0x0008: "genLevelCtrl",
    0x0009: "genAlarms",
    0x000A: "genTime",
    0x000B: "genRssiLocation",
    0x000C: "genAnalogInput",
    0x000D: "genAnalogOutput",
    0x000E: "genAnalogValue",
    0x000F: "genBinaryInput",
    0x0010: "genBinaryOutput",
    0x0011: "genBinaryValue",
    0x0012: "genMultistateInput",
    0x0013: "genMultistateOutput",
    0x0014: "genMultistateValue",
    0x0015: "genCommissioning",
    0x0019: "genOta",
    0x0020: "genPollCtrl",
    0x0021: "greenPower",
    0x0100: "closuresShadeCfg",
    0x0101: "closuresDoorLock",
    0x0102: "closuresWindowCovering",
    0x0201: "hvacThermostat",
    0x0202: "hvacFanCtrl",
    0x0300: "lightingColorCtrl",
    0x0301: "lightingBallastCfg",
    0x0400: "msIlluminanceMeasurement",
    0x0402: "msTemperatureMeasurement",
    0x0403: "msPressureMeasurement",
    0x0405: "msRelativeHumidity",
    0x0406: "msOccupancySensing",
    0x0500: "ssIasZone",
    0x0501: "ssIasAce",
    0x0502: "ssIasWd",
    0x0702: "seMetering",
    0x0B04: "haElectricalMeasurement",
    0x0B05: "haDiagnostic",
    0x1000: "touchlink",
    0xFCC0: "manuSpecificLumi",
}

# The Basic cluster's powerSource values as zigbee-herdsman names them.
POWER_SOURCES: dict[int, str] = {
    0: "Unknown",
    1: "Mains (single phase)",
    2: "Mains (3 phase)",
    3: "Battery",
    4: "DC Source",
    5: "Emergency mains constantly powered",
    6: "Emergency mains and transfer switch",
}

DEFINITION_VERSION = "0.0.0"
"""Zigbee2MQTT's `definition.version` for definitions without one of their own."""


def cluster_name(cluster_id: int) -> str:
    """The herdsman name of a cluster, or its id in decimal as Zigbee2MQTT writes unknown ones."""
    return CLUSTER_NAMES.get(cluster_id, str(cluster_id))


_DEFINITION_JSON: dict[int, tuple[DeviceDefinition, dict[str, Any]]] = {}
"""definition_json by definition: the same for every device of a model, so built once (kept with
its definition, whose id is the key). Callers only serialise it, never change it."""


def definition_json(definition: DeviceDefinition) -> dict[str, Any]:
    """`definition` of a supported device: model, vendor, exposes (with linkquality), options."""
    cached = _DEFINITION_JSON.get(id(definition))
    if cached is not None and cached[0] is definition:
        return cached[1]
    built = _build_definition_json(definition)
    _DEFINITION_JSON[id(definition)] = (definition, built)
    return built


def _build_definition_json(definition: DeviceDefinition) -> dict[str, Any]:
    return {
        "description": definition.description,
        "exposes": exposes_json(definition.exposes),
        "model": definition.model,
        "options": exposes_json(definition.options),
        "source": "native",
        "supports_ota": definition.supports_ota,
        "vendor": definition.vendor,
        "version": DEFINITION_VERSION,
    }


def interview_state(details: DeviceDetails) -> InterviewState:
    """Where the device's interview stands, as far as zigpy's device object tells."""
    if details.interviewing:
        return "IN_PROGRESS"
    return "SUCCESSFUL" if details.interviewed else "PENDING"


def _endpoints(details: DeviceDetails) -> dict[str, Any]:
    return {
        str(endpoint.endpoint_id): {
            "bindings": [],
            "clusters": {
                "input": [cluster_name(c) for c in endpoint.input_clusters],
                "output": [cluster_name(c) for c in endpoint.output_clusters],
            },
            "configured_reportings": [],
            "scenes": [],
        }
        for endpoint in details.endpoints
    }


def _basic_fields(details: DeviceDetails) -> dict[str, Any]:
    fields = {
        "date_code": details.date_code,
        "manufacturer": details.manufacturer,
        "model_id": details.model_id,
        "power_source": None if details.power_source is None else POWER_SOURCES.get(details.power_source),
        "software_build_id": details.software_build_id,
    }
    return {key: value for key, value in fields.items() if value is not None}


def device_json(
    details: DeviceDetails,
    *,
    friendly_name: str,
    definition: DeviceDefinition | None,
    state: InterviewState,
    description: str | None = None,
) -> dict[str, Any]:
    """One device's element of `bridge/devices`."""
    element: dict[str, Any] = {
        "disabled": False,
        "endpoints": _endpoints(details),
        "friendly_name": friendly_name,
        "ieee_address": details.ieee,
        "interview_completed": state == "SUCCESSFUL",
        "interview_state": state,
        "interviewing": state == "IN_PROGRESS",
        "network_address": details.nwk,
        "supported": definition is not None,
        "type": details.logical_type or "Unknown",
        **_basic_fields(details),
    }
    if definition is not None:
        element["definition"] = definition_json(definition)
    if description is not None:
        element["description"] = description
    return element


def coordinator_json(details: DeviceDetails) -> dict[str, Any]:
    """The coordinator's element of `bridge/devices` (first in the list, as in Zigbee2MQTT)."""
    element = device_json(details, friendly_name=COORDINATOR_NAME, definition=None, state="SUCCESSFUL")
    element["supported"] = True
    element["type"] = "Coordinator"
    return element
