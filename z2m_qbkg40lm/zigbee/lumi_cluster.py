"""Teaching zigpy what the device definitions know: manufacturer clusters and hidden endpoints.

zigpy 2.4.0 has no quirks of its own (they moved to zha-quirks, which cannot be installed next to
it), so two plain mechanisms do the job:

- `register_manufacturer_clusters()` builds one `zigpy.zcl.Cluster` subclass per
  `ManufacturerCluster`. `Cluster.__init_subclass__` registers it globally, ahead of zigpy's
  0xFC00-0xFFFF fallback (`ManufacturerSpecificCluster`), so every interview and every database
  load creates it: named reads and writes work and carry the manufacturer code. Call it before
  `ControllerApplication.new()`, which loads the database.
- `make_device_resolver()` returns the `device_resolver` for `ControllerApplication.new()`: zigpy
  runs it on every device restored from the database (before start-up) and on every freshly
  interviewed or re-interviewed device. It adds the endpoints and input clusters a model uses but
  may not advertise, because zigpy drops frames for endpoints and clusters it does not know.
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import zigpy.device
import zigpy.endpoint
import zigpy.profiles.zha
import zigpy.types as t
import zigpy.zcl
from zigpy.zcl import foundation

from z2m_qbkg40lm.devices.definition import EndpointPatch, ManufacturerCluster

LOGGER = logging.getLogger(__name__)

DeviceResolver = Callable[[zigpy.device.BaseDevice], zigpy.device.BaseDevice]
"""What `ControllerApplication.new(device_resolver=...)` takes in zigpy 2.4.0."""

_registered: dict[int, tuple[ManufacturerCluster, type[zigpy.zcl.Cluster]]] = {}


def ep_attribute(cluster: ManufacturerCluster) -> str:
    """The endpoint attribute name of a manufacturer cluster: its name without a leading
    `manuSpecific`, in snake case (`manuSpecificLumi` -> `lumi`, so `endpoint.lumi`)."""
    name = cluster.name.removeprefix("manuSpecific") or cluster.name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _attribute_def(cluster: ManufacturerCluster, attribute_id: int, name: str, zcl_type: int) -> Any:
    try:
        data_type = foundation.DataType.from_type_id(foundation.DataTypeId(zcl_type))
    except ValueError as exc:
        raise ValueError(
            f"{cluster.name} attribute {name} (0x{attribute_id:04X}): unknown ZCL type 0x{zcl_type:02X}"
        ) from exc
    return foundation.ZCLAttributeDef(
        id=t.uint16_t(attribute_id),
        name=name,
        type=data_type.python_type,
        zcl_type=data_type.type_id,
        access=foundation.ZCLAttributeAccess.from_str("rwp"),
        manufacturer_code=t.uint16_t(cluster.manufacturer_code),
    )


def _build(cluster: ManufacturerCluster) -> type[zigpy.zcl.Cluster]:
    """A zigpy Cluster class for one manufacturer cluster (registered globally on creation)."""
    attribute_defs = types.new_class("AttributeDefs", (foundation.BaseAttributeDefs,))
    for attribute in cluster.attributes:
        setattr(
            attribute_defs,
            attribute.name,
            _attribute_def(cluster, attribute.attribute_id, attribute.name, attribute.zcl_type),
        )
    class_name = cluster.name[:1].upper() + cluster.name[1:] + "Cluster"
    namespace = {
        "cluster_id": cluster.cluster_id,
        "ep_attribute": ep_attribute(cluster),
        "manufacturer_id_override": cluster.manufacturer_code,
        "AttributeDefs": attribute_defs,
        "__module__": __name__,
        "__doc__": f"{cluster.name} 0x{cluster.cluster_id:04X}, mfr 0x{cluster.manufacturer_code:04X}.",
    }
    built: type[zigpy.zcl.Cluster] = type(class_name, (zigpy.zcl.Cluster,), namespace)
    return built


def register_manufacturer_clusters(clusters: Iterable[ManufacturerCluster]) -> None:
    """Make zigpy create our class for each manufacturer cluster id, in interviews and DB loads.

    Idempotent: registering the same definition again does nothing. A different definition for
    an id already registered raises ValueError (two device definitions disagree).
    """
    for cluster in clusters:
        if not 0xFC00 <= cluster.cluster_id <= 0xFFFF:
            raise ValueError(
                f"{cluster.name}: 0x{cluster.cluster_id:04X} is not a manufacturer-specific cluster id"
            )
        known = _registered.get(cluster.cluster_id)
        if known is not None:
            if known[0] != cluster:
                raise ValueError(
                    f"cluster 0x{cluster.cluster_id:04X} is already registered as {known[0].name}"
                    f" with other attributes than {cluster.name}"
                )
            continue
        _registered[cluster.cluster_id] = (cluster, _build(cluster))
        LOGGER.debug("Registered %s as zigpy cluster 0x%04X", cluster.name, cluster.cluster_id)


def registered_cluster(cluster_id: int) -> type[zigpy.zcl.Cluster] | None:
    """The class `register_manufacturer_clusters()` built for a cluster id, if any."""
    known = _registered.get(cluster_id)
    return None if known is None else known[1]


def make_device_resolver(patches_by_model: Mapping[str, Sequence[EndpointPatch]]) -> DeviceResolver:
    """A `device_resolver` for `ControllerApplication.new()` that applies endpoint patches.

    For a Zigbee device whose Basic model id has patches, each patch's endpoint is added when
    missing (with its profile and device type, marked discovered) and each of its input clusters
    is added when the endpoint lacks it. The device object is changed in place and returned.
    """
    patches = {model: tuple(model_patches) for model, model_patches in patches_by_model.items()}

    def resolve(device: zigpy.device.BaseDevice) -> zigpy.device.BaseDevice:
        if not isinstance(device, zigpy.device.ZigbeeDevice):
            return device
        model_patches = patches.get(device.model or "", ())
        for patch in model_patches:
            _apply(device, patch)
        return device

    return resolve


def _apply(device: zigpy.device.ZigbeeDevice, patch: EndpointPatch) -> None:
    endpoint = device.endpoints.get(patch.endpoint)
    if endpoint is None:
        endpoint = device.add_endpoint(patch.endpoint)
        endpoint.profile_id = patch.profile_id
        # zigpy keeps HA device types as its enum, as when it loads them from the database
        device_type: Any = patch.device_type
        if patch.profile_id == zigpy.profiles.zha.PROFILE_ID:
            device_type = zigpy.profiles.zha.DeviceType(patch.device_type)
        endpoint.device_type = device_type
        endpoint.status = zigpy.endpoint.Status.ZDO_INIT
        LOGGER.debug("[%s] added endpoint %d", device.ieee, patch.endpoint)
    if not isinstance(endpoint, zigpy.endpoint.Endpoint):
        return  # endpoint 0 is the ZDO: never patched
    for cluster_id in patch.input_clusters:
        if cluster_id not in endpoint.in_clusters:
            endpoint.add_input_cluster(t.ClusterId(cluster_id))
            LOGGER.debug(
                "[%s] added input cluster 0x%04X to endpoint %d", device.ieee, cluster_id, patch.endpoint
            )
