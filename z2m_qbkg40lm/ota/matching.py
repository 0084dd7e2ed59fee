"""Which firmware file is for which device: the reason a file is not offered, in words. Pure.

zigpy decides what it offers from the same facts (manufacturer code, image type, version, hardware
version, the index's model and version limits); this module says *why* a file is left out, for
the log, and adds the one rule zigpy does not apply: a device-specific file (its header names an
IEEE address) is only for that device.
"""

from __future__ import annotations

from dataclasses import dataclass

from z2m_qbkg40lm.ota.sources import FirmwareFile


@dataclass(frozen=True)
class DeviceQuery:
    """What a device said in its Query Next Image Request, and what the daemon knows of it."""

    ieee: str
    manufacturer_code: int
    image_type: int
    file_version: int
    hardware_version: int | None = None
    model: str | None = None
    manufacturer: str | None = None


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{low} to {high}" if low != high else f"{low}"
    return f"{low} or later" if low is not None else f"{high} or earlier"


def why_not_offered(file: FirmwareFile, query: DeviceQuery) -> str | None:
    """Why `file` is not an upgrade for the device that sent `query`; None when it is one."""
    header = file.header
    if header.manufacturer_code != query.manufacturer_code:
        return (
            f"it is for manufacturer 0x{header.manufacturer_code:04X}, the device is "
            f"0x{query.manufacturer_code:04X}'s"
        )
    if header.image_type != query.image_type:
        return (
            f"it is for image type 0x{header.image_type:04X} (another device); this device runs "
            f"image type 0x{query.image_type:04X}"
        )
    if header.destination is not None and header.destination != query.ieee:
        return f"it is made for the device {header.destination} only"
    if file.model_ids and query.model not in file.model_ids:
        return f"the index gives it to {', '.join(file.model_ids)} only, this device is {query.model}"
    if file.manufacturer_names and query.manufacturer not in file.manufacturer_names:
        return f"the index gives it to {', '.join(file.manufacturer_names)} only"
    low, high = file.min_hardware_version, file.max_hardware_version
    if low is not None or high is not None:
        hardware = query.hardware_version
        if hardware is None:
            return f"it needs hardware version {_range(low, high)} and the device did not say its own"
        if (low is not None and hardware < low) or (high is not None and hardware > high):
            return f"it needs hardware version {_range(low, high)}, the device has {hardware}"
    if header.file_version <= query.file_version:
        return f"version {header.file_version} is not newer than the installed {query.file_version}"
    if (file.min_file_version is not None and query.file_version < file.min_file_version) or (
        file.max_file_version is not None and query.file_version > file.max_file_version
    ):
        span = _range(file.min_file_version, file.max_file_version)
        return f"the index allows it only from versions {span}, the device runs {query.file_version}"
    return None
