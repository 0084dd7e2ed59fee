"""Names of ZCL clusters, attributes and commands, for what the simulated devices send and receive.

Standard clusters are named as zigpy defines them (`on_off`, attribute `on_off`, command
`on_with_timed_off`); manufacturer-specific clusters as the device definitions do (0xFCC0
`manuSpecificLumi`, attribute `power_outage_memory`). A manufacturer-specific attribute on a
standard cluster (Basic 0xFFF0 with Lumi's code, say) has no name: its id belongs to the
manufacturer, and zigpy knows none of Lumi's.
"""

from __future__ import annotations

import functools
from typing import Any

import zigpy.zcl
from zigpy.zcl import foundation

from z2m_qbkg40lm.devices.definition import ManufacturerCluster
from z2m_qbkg40lm.devices.registry import DEFINITIONS


@functools.cache
def _manufacturer_clusters() -> dict[int, ManufacturerCluster]:
    return {
        cluster.cluster_id: cluster
        for definition in DEFINITIONS
        for cluster in definition.manufacturer_clusters
    }


@functools.cache
def _ids_by_name() -> dict[str, int]:
    # zigpy's registry is its only index of cluster classes by id.
    registry: dict[int, Any] = zigpy.zcl.Cluster._registry
    names = {cls.ep_attribute: int(cluster_id) for cluster_id, cls in registry.items() if cls.ep_attribute}
    names.update({cluster.name: cluster_id for cluster_id, cluster in _manufacturer_clusters().items()})
    return names


def _zigpy_cluster(cluster_id: int) -> Any | None:
    registry: dict[int, Any] = zigpy.zcl.Cluster._registry
    return registry.get(cluster_id)


def cluster_name(cluster_id: int) -> str | None:
    """The cluster's name (`on_off`, `manuSpecificLumi`), None when neither zigpy nor a device knows it."""
    manufacturer_cluster = _manufacturer_clusters().get(cluster_id)
    if manufacturer_cluster is not None:
        return manufacturer_cluster.name
    cls = _zigpy_cluster(cluster_id)
    return None if cls is None else str(cls.ep_attribute)


def cluster_by_name(name: str) -> int | None:
    """The id of a cluster name, None when unknown."""
    return _ids_by_name().get(name)


def attribute_name(cluster_id: int, manufacturer: int | None, attribute_id: int) -> str | None:
    """The name of an attribute as a frame with this manufacturer code (or None) addresses it."""
    manufacturer_cluster = _manufacturer_clusters().get(cluster_id)
    if manufacturer_cluster is not None:
        if manufacturer not in (None, manufacturer_cluster.manufacturer_code):
            return None
        for attribute in manufacturer_cluster.attributes:
            if attribute.attribute_id == attribute_id:
                return attribute.name
        return None
    cls = _zigpy_cluster(cluster_id)
    if cls is None:
        return None
    try:
        found = cls.find_attributes(attribute_id, manufacturer_code=manufacturer)
    except KeyError:
        return None
    return str(found[0].name) if found else None


def attribute_by_name(cluster_id: int, manufacturer: int | None, name: str) -> int | None:
    """The id of an attribute name on a cluster (as `attribute_name` names it), None when unknown."""
    manufacturer_cluster = _manufacturer_clusters().get(cluster_id)
    if manufacturer_cluster is not None:
        if manufacturer not in (None, manufacturer_cluster.manufacturer_code):
            return None
        for attribute in manufacturer_cluster.attributes:
            if attribute.name == name:
                return attribute.attribute_id
        return None
    cls = _zigpy_cluster(cluster_id)
    if cls is None or manufacturer is not None:
        return None
    definition = cls.attributes_by_name.get(name)
    if definition is None or definition.is_manufacturer_specific:
        return None
    return int(definition.id)


def cluster_command(
    cluster_id: int, direction: foundation.Direction, command_id: int
) -> foundation.ZCLCommandDef | None:
    """zigpy's definition of a standard cluster-specific command in the frame's direction."""
    cls = _zigpy_cluster(cluster_id)
    if cls is None:
        return None
    # ServerCommandDefs are what a cluster's server receives: frames sent client to server.
    commands = (
        cls.server_commands if direction == foundation.Direction.Client_to_Server else cls.client_commands
    )
    definition: foundation.ZCLCommandDef | None = commands.get(command_id)
    return definition
