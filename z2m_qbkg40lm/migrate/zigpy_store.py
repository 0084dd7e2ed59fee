"""zigpy's database (zigbee.db), written and read by zigpy's own persistence code.

Devices are added to a ControllerApplication that is never connected to any radio (the virtual
adapter's, which needs no hardware) and handed to zigpy's `PersistingListener` as a finished
interview: zigpy writes its own schema, so a later zigpy loads them, and neither a join nor an
interview is needed for them. Nothing here writes SQL.

Zigbee2MQTT keeps no node descriptor; the one stored is built from what it does keep: the logical
type, the manufacturer code and the power source (the sizes are the Zigbee PRO defaults). Lumi
devices need their manufacturer code from it (zigpy sends it with the manufacturer-specific frames).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zigpy.appdb
import zigpy.backups
import zigpy.device
import zigpy.endpoint
import zigpy.types as t
import zigpy.zdo.types as zdo_t

from z2m_qbkg40lm.migrate.data_dir_writer import SQLITE_COMPANIONS
from z2m_qbkg40lm.migrate.z2m_database import Z2mDevice, Z2mEndpoint
from z2m_qbkg40lm.sim.virtual_radio import VirtualControllerApplication
from z2m_qbkg40lm.zigbee.radio import basic_cluster, ieee_string

DATABASE_MODE = 0o600  # it holds the network's layout; the daemon keeps its key there too

# Basic attribute ids (ZCL 3.2.2.2) of what herdsman keeps as device fields.
_BASIC_FIELDS = (
    (0x0000, "zcl_version"),
    (0x0001, "app_version"),
    (0x0002, "stack_version"),
    (0x0003, "hw_version"),
    (0x0004, "manufacturer"),
    (0x0005, "model_id"),
    (0x0006, "date_code"),
    (0x0007, "power_source"),
    (0x4000, "sw_build_id"),
)
_LOGICAL_TYPES = {
    "Coordinator": zdo_t.LogicalType.Coordinator,
    "Router": zdo_t.LogicalType.Router,
    "EndDevice": zdo_t.LogicalType.EndDevice,
}
_MAINS = (1, 2, 5, 6)  # Basic powerSource values of a device on the mains
_FLAGS = zdo_t.NodeDescriptor.MACCapabilityFlags
_DEFAULT_BUFFER_SIZE = 82  # the largest APS payload without fragmentation


@dataclass(frozen=True)
class StoredNetwork:
    """What a zigbee.db holds that Zigbee2MQTT needs: the devices and the network backups."""

    devices: tuple[Z2mDevice, ...]
    backups: tuple[zigpy.backups.NetworkBackup, ...]


def _application(database: Path) -> Any:
    return VirtualControllerApplication({"device": {"path": "virtual"}, "database_path": str(database)})


async def write_devices(database: Path, devices: Sequence[Z2mDevice]) -> None:
    """Create `database` (which must not exist) holding `devices`, stored as zigpy stores them."""
    # Made private before zigpy opens it: SQLite gives its -wal and -shm files the database's mode.
    os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_MODE))
    app = _application(database)
    listener = await zigpy.appdb.PersistingListener.new(str(database), app)
    try:
        for device in devices:
            listener.raw_device_initialized(_zigpy_device(app, device))
    finally:
        await listener.shutdown()  # waits for the queued writes, commits and closes


def _zigpy_device(app: Any, device: Z2mDevice) -> Any:
    zigpy_device = app.add_device(t.EUI64.convert(_colons(device.ieee)), t.NWK(device.nwk))  # type: ignore[no-untyped-call]
    zigpy_device.node_desc = node_descriptor(device)
    endpoint_status = zigpy.endpoint.Status.ZDO_INIT if device.interviewed else zigpy.endpoint.Status.NEW
    for endpoint in device.endpoints:
        if endpoint.id == 0:
            continue
        zigpy_endpoint = zigpy_device.add_endpoint(endpoint.id)
        zigpy_endpoint.status = endpoint_status
        zigpy_endpoint.profile_id = endpoint.profile_id
        zigpy_endpoint.device_type = endpoint.device_id
        for cluster_id in endpoint.input_clusters:
            zigpy_endpoint.add_input_cluster(cluster_id)
        for cluster_id in endpoint.output_clusters:
            zigpy_endpoint.add_output_cluster(cluster_id)
    basic = basic_cluster(zigpy_device)
    if basic is not None:
        for attribute_id, name in _BASIC_FIELDS:
            value = getattr(device, name)
            if value is not None:
                basic.update_attribute(attribute_id, value)
    zigpy_device.model = device.model_id
    zigpy_device.manufacturer = device.manufacturer
    if device.last_seen is not None:
        zigpy_device.last_seen = device.last_seen / 1000
    zigpy_device.status = (
        zigpy.device.Status.ENDPOINTS_INIT if device.interviewed else zigpy.device.Status.NEW
    )
    return zigpy_device


def node_descriptor(device: Z2mDevice) -> zdo_t.NodeDescriptor | None:
    """A node descriptor from herdsman's type, manufacturer code and power source; None when unknown."""
    logical_type = _LOGICAL_TYPES.get(device.type)
    if logical_type is None or not device.interviewed:
        return None
    flags = _FLAGS.AllocateAddress
    if logical_type != zdo_t.LogicalType.EndDevice:
        flags |= _FLAGS.FullFunctionDevice | _FLAGS.MainsPowered | _FLAGS.RxOnWhenIdle
    elif device.power_source in _MAINS:
        flags |= _FLAGS.MainsPowered | _FLAGS.RxOnWhenIdle
    return zdo_t.NodeDescriptor(  # type: ignore[no-untyped-call]
        logical_type=logical_type,
        complex_descriptor_available=0,
        user_descriptor_available=0,
        reserved=0,
        aps_flags=0,
        frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
        mac_capability_flags=flags,
        manufacturer_code=device.manufacturer_code or 0,
        maximum_buffer_size=_DEFAULT_BUFFER_SIZE,
        maximum_incoming_transfer_size=_DEFAULT_BUFFER_SIZE,
        server_mask=0,
        maximum_outgoing_transfer_size=_DEFAULT_BUFFER_SIZE,
        descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability.NONE,
    )


def _colons(ieee: str) -> str:
    digits = ieee.removeprefix("0x")
    return ":".join(digits[i : i + 2] for i in range(0, 16, 2))


# --- Reading, for export-z2m --------------------------------------------------------------------


async def read_network(database: Path) -> StoredNetwork:
    """The devices and network backups of a zigbee.db, read by zigpy from a copy (zigpy migrates
    and checkpoints what it opens; the daemon's own file is left as it is)."""
    with tempfile.TemporaryDirectory(prefix="z2m-export-") as folder:
        copy = Path(folder) / database.name
        shutil.copy2(database, copy)
        for suffix in SQLITE_COMPANIONS:
            companion = database.with_name(database.name + suffix)
            if companion.exists():
                shutil.copy2(companion, copy.with_name(copy.name + suffix))
        app = _application(copy)
        listener = await zigpy.appdb.PersistingListener.new(str(copy), app)
        try:
            await listener.load()
            devices = tuple(_z2m_device(device) for device in app.devices.values())
            backups = tuple(app.backups.backups)
        finally:
            for device in app.devices.values():
                device.on_remove()
            await listener.shutdown()
    return StoredNetwork(devices=devices, backups=backups)


def _z2m_device(device: Any) -> Z2mDevice:
    node = device.node_desc
    kind = "Unknown"
    if node is not None:
        kind = next((name for name, value in _LOGICAL_TYPES.items() if value == node.logical_type), "Unknown")
    basic = basic_cluster(device)
    fields: dict[str, Any] = {}
    if basic is not None:
        for attribute_id, name in _BASIC_FIELDS:
            value = basic.get(attribute_id)
            if value is not None:
                fields[name] = str(value) if isinstance(value, str) else int(value)
    fields["model_id"] = device.model or fields.get("model_id")
    fields["manufacturer"] = device.manufacturer or fields.get("manufacturer")
    endpoints = tuple(
        _z2m_endpoint(endpoint, fields if endpoint is getattr(basic, "endpoint", None) else {})
        for endpoint_id, endpoint in sorted(device.endpoints.items())
        if endpoint_id != 0
    )
    last_seen = device.last_seen
    return Z2mDevice(
        type=kind,
        ieee=ieee_string(device.ieee),
        nwk=int(device.nwk),
        endpoints=endpoints,
        interviewed=bool(device.is_initialized),
        manufacturer_code=None if node is None else int(node.manufacturer_code),
        last_seen=None if not last_seen else round(last_seen * 1000),
        **fields,
    )


# herdsman's names of the Basic attributes it reads at the interview.
_HERDSMAN_BASIC_NAMES = {
    "zcl_version": "zclVersion",
    "app_version": "appVersion",
    "stack_version": "stackVersion",
    "hw_version": "hwVersion",
    "manufacturer": "manufacturerName",
    "model_id": "modelId",
    "date_code": "dateCode",
    "power_source": "powerSource",
    "sw_build_id": "swBuildId",
}


def _z2m_endpoint(endpoint: Any, basic_fields: dict[str, Any]) -> Z2mEndpoint:
    clusters: dict[str, Any] = {}
    attributes = {
        _HERDSMAN_BASIC_NAMES[name]: value for name, value in basic_fields.items() if value is not None
    }
    if attributes:
        clusters["genBasic"] = {"attributes": attributes}
    return Z2mEndpoint(
        id=int(endpoint.endpoint_id),
        profile_id=None if endpoint.profile_id is None else int(endpoint.profile_id),
        device_id=None if endpoint.device_type is None else int(endpoint.device_type),
        input_clusters=tuple(int(cluster_id) for cluster_id in endpoint.in_clusters),
        output_clusters=tuple(int(cluster_id) for cluster_id in endpoint.out_clusters),
        clusters=clusters,
    )
