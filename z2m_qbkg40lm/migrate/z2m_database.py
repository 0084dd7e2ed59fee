"""Zigbee2MQTT's database.db: zigbee-herdsman's device table, one JSON object per line.

Facts from zigbee-herdsman 10.x (controller/database.ts, model/device.ts, model/endpoint.ts): each
line is a `Device` (type Coordinator, Router, EndDevice, Unknown or GreenPower) or a `Group`; lines
are joined by a newline, with none after the last; `interviewState` SUCCESSFUL (or, before it
existed, `interviewCompleted: true`) means interviewed; `powerSource` is Basic's name for the value;
an endpoint keeps its simple descriptor (`profId`, `devId`, `inClusterList`, `outClusterList`) and the
attributes read from it by cluster name (`clusters.genBasic.attributes.modelId`).

Zigbee2MQTT skips a line that is not JSON; an import stops at it instead: a device silently left
out would have to be paired again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.bridge.devices_info import POWER_SOURCES
from z2m_qbkg40lm.migrate.errors import MigrationError, read_text_file

DATABASE_FILE = "database.db"
DEVICE_TYPES = ("Coordinator", "Router", "EndDevice", "Unknown", "GreenPower")
INTERVIEW_SUCCESSFUL = "SUCCESSFUL"

_IEEE = re.compile(r"^0x[0-9a-fA-F]{16}$")


@dataclass(frozen=True)
class Z2mEndpoint:
    """One endpoint's simple descriptor, and what herdsman keeps about it."""

    id: int
    profile_id: int | None
    device_id: int | None
    input_clusters: tuple[int, ...]
    output_clusters: tuple[int, ...]
    clusters: dict[str, Any] = field(default_factory=dict)
    """Attributes read, by cluster name: {"genBasic": {"attributes": {"modelId": …}}}."""
    binds: list[Any] = field(default_factory=list)
    configured_reportings: list[Any] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Z2mDevice:
    """One device of database.db (the coordinator included)."""

    type: str
    ieee: str
    """"0x…" in lower case."""
    nwk: int
    endpoints: tuple[Z2mEndpoint, ...]
    interviewed: bool
    manufacturer_code: int | None = None
    manufacturer: str | None = None
    model_id: str | None = None
    power_source: int | None = None
    """Basic's powerSource value (herdsman stores its name)."""
    zcl_version: int | None = None
    app_version: int | None = None
    stack_version: int | None = None
    hw_version: int | None = None
    date_code: str | None = None
    sw_build_id: str | None = None
    last_seen: int | None = None
    """Milliseconds since the epoch."""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Z2mDatabase:
    """The devices of database.db; groups are counted, not imported (the daemon has none)."""

    devices: tuple[Z2mDevice, ...]
    groups: int

    @property
    def coordinator(self) -> Z2mDevice | None:
        """The coordinator's entry, when herdsman wrote one."""
        return next((device for device in self.devices if device.type == "Coordinator"), None)

    @property
    def end_devices(self) -> tuple[Z2mDevice, ...]:
        """Every device but the coordinator."""
        return tuple(device for device in self.devices if device.type != "Coordinator")


def read_z2m_database(path: Path) -> Z2mDatabase:
    """Read database.db; MigrationError names the file, the line and the problem."""
    text = read_text_file(path)
    devices: list[Z2mDevice] = []
    groups = 0
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            raise MigrationError(path, f"line {number} is not JSON: {line[:60]!r}") from None
        if not isinstance(entry, dict):
            raise MigrationError(path, f"line {number} is not a JSON object")
        if entry.get("type") == "Group":
            groups += 1
            continue
        try:
            device = _device(entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise MigrationError(path, f"line {number}: {_problem(exc)}") from None
        if device.ieee in seen:
            raise MigrationError(path, f"line {number}: device {device.ieee} appears twice")
        seen.add(device.ieee)
        devices.append(device)
    return Z2mDatabase(devices=tuple(devices), groups=groups)


def _problem(exc: Exception) -> str:
    return f"{exc.args[0]} is missing" if isinstance(exc, KeyError) else str(exc)


def _device(entry: dict[str, Any]) -> Z2mDevice:
    kind = entry["type"]
    if kind not in DEVICE_TYPES:
        raise ValueError(f"unknown device type {kind!r}")
    ieee = entry["ieeeAddr"]
    if not isinstance(ieee, str) or not _IEEE.match(ieee):
        raise ValueError(f"ieeeAddr {ieee!r} is not an IEEE address like 0x54ef441000abcdef")
    nwk = _integer(entry["nwkAddr"], "nwkAddr", 0xFFFF)
    endpoints = entry.get("endpoints") or {}
    if not isinstance(endpoints, dict):
        raise TypeError("endpoints is not an object")
    state = entry.get("interviewState")
    interviewed = state == INTERVIEW_SUCCESSFUL if state else entry.get("interviewCompleted") is True
    power = entry.get("powerSource")
    return Z2mDevice(
        type=kind,
        ieee=ieee.lower(),
        nwk=nwk,
        endpoints=tuple(_endpoint(key, record) for key, record in endpoints.items()),
        interviewed=interviewed,
        manufacturer_code=_optional_integer(entry.get("manufId"), "manufId", 0xFFFF),
        manufacturer=_optional_text(entry.get("manufName"), "manufName"),
        model_id=_optional_text(entry.get("modelId"), "modelId"),
        power_source=next((value for value, name in POWER_SOURCES.items() if name == power), None),
        zcl_version=_optional_integer(entry.get("zclVersion"), "zclVersion", 0xFF),
        app_version=_optional_integer(entry.get("appVersion"), "appVersion", 0xFF),
        stack_version=_optional_integer(entry.get("stackVersion"), "stackVersion", 0xFF),
        hw_version=_optional_integer(entry.get("hwVersion"), "hwVersion", 0xFF),
        date_code=_optional_text(entry.get("dateCode"), "dateCode"),
        sw_build_id=_optional_text(entry.get("swBuildId"), "swBuildId"),
        last_seen=_optional_integer(entry.get("lastSeen"), "lastSeen", 2**53),
        meta=_mapping(entry.get("meta")),
    )


def _endpoint(key: str, record: Any) -> Z2mEndpoint:
    if not isinstance(record, dict):
        raise TypeError(f"endpoint {key} is not an object")
    endpoint_id = _integer(record.get("epId", key if key.isdigit() else None), f"endpoint {key} epId", 0xFF)
    clusters = record.get("clusters") or {}
    return Z2mEndpoint(
        id=endpoint_id,
        profile_id=_optional_integer(record.get("profId"), f"endpoint {key} profId", 0xFFFF),
        device_id=_optional_integer(record.get("devId"), f"endpoint {key} devId", 0xFFFF),
        input_clusters=_cluster_list(record.get("inClusterList"), f"endpoint {key} inClusterList"),
        output_clusters=_cluster_list(record.get("outClusterList"), f"endpoint {key} outClusterList"),
        clusters=clusters if isinstance(clusters, dict) else {},
        binds=list(record.get("binds") or []),
        configured_reportings=list(record.get("configuredReportings") or []),
        meta=_mapping(record.get("meta")),
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _cluster_list(value: Any, name: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError(f"{name} is not a list")
    return tuple(_integer(item, name, 0xFFFF) for item in value)


def _integer(value: Any, name: str, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ValueError(f"{name} {value!r} is not a number from 0 to {maximum}")
    return value


def _optional_integer(value: Any, name: str, maximum: int) -> int | None:
    return None if value is None else _integer(value, name, maximum)


def _optional_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} {value!r} is not text")
    return value


# --- Writing, for export-z2m --------------------------------------------------------------------


def device_entry(device: Z2mDevice, entry_id: int) -> dict[str, Any]:
    """The device as herdsman's `Device.toDatabaseEntry()` writes it (undefined keys left out)."""
    entry: dict[str, Any] = {
        "id": entry_id,
        "type": device.type,
        "ieeeAddr": device.ieee,
        "nwkAddr": device.nwk,
        "manufId": device.manufacturer_code,
        "manufName": device.manufacturer,
        "powerSource": None if device.power_source is None else POWER_SOURCES.get(device.power_source),
        "modelId": device.model_id,
        "epList": [endpoint.id for endpoint in device.endpoints],
        "endpoints": {str(endpoint.id): _endpoint_record(endpoint) for endpoint in device.endpoints},
        "appVersion": device.app_version,
        "stackVersion": device.stack_version,
        "hwVersion": device.hw_version,
        "dateCode": device.date_code,
        "swBuildId": device.sw_build_id,
        "zclVersion": device.zcl_version,
        "interviewCompleted": device.interviewed,
        "interviewState": INTERVIEW_SUCCESSFUL if device.interviewed else "FAILED",
        "meta": device.meta,
        "lastSeen": device.last_seen,
    }
    return {key: value for key, value in entry.items() if value is not None}


def _endpoint_record(endpoint: Z2mEndpoint) -> dict[str, Any]:
    record: dict[str, Any] = {
        "profId": endpoint.profile_id,
        "epId": endpoint.id,
        "devId": endpoint.device_id,
        "inClusterList": list(endpoint.input_clusters),
        "outClusterList": list(endpoint.output_clusters),
        "clusters": endpoint.clusters,
        "binds": endpoint.binds,
        "configuredReportings": endpoint.configured_reportings,
        "meta": endpoint.meta,
    }
    return {key: value for key, value in record.items() if value is not None}


def format_database(devices: Iterable[Z2mDevice]) -> str:
    """database.db's text: one compact JSON object per line, ids from 1, no newline after the last."""
    lines = [
        json.dumps(device_entry(device, number), ensure_ascii=False, separators=(",", ":"))
        for number, device in enumerate(devices, start=1)
    ]
    return "\n".join(lines)
