"""The zigpy OTA provider of this daemon: the local firmware sources, checked, and nothing else.

zigpy asks its providers for images whenever a device sends a Query Next Image Request. This one
reads the configured folder and index (never the network), offers only files that passed every
check, and says once in the log about each file it refuses and why. `zigpy_ota_config()` is the
`ota` section of zigpy's configuration that registers it as the only provider (zigpy's default
providers would download indexes over HTTP).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import voluptuous as vol
import zigpy.ota.providers as zigpy_providers

from z2m_qbkg40lm.config import OtaConfig
from z2m_qbkg40lm.ota.sources import Catalogue, FirmwareFile, FirmwareSources

_LOGGER = logging.getLogger(__name__)

PROVIDER_TYPE = "z2m_qbkg40lm_local"


def sources_from_config(ota: OtaConfig, data_dir: Path) -> FirmwareSources:
    """The configured sources, relative paths taken from the data directory."""

    def resolve(value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else data_dir / path

    return FirmwareSources(
        image_folder=resolve(ota.image_folder), index_file=resolve(ota.zigbee_ota_override_index_location)
    )


def zigpy_ota_config(ota: OtaConfig, data_dir: Path) -> dict[str, Any]:
    """zigpy's `ota` configuration: OTA on, this provider only, no periodic broadcast."""
    sources = sources_from_config(ota, data_dir)
    return {
        "enabled": True,
        # Zigbee2MQTT does not broadcast Image Notify either; devices ask by themselves.
        "broadcast_enabled": False,
        # Giving `providers` replaces zigpy's default list (zigpy-ota, Ledvance, Sonoff over HTTP).
        "providers": [
            {
                "type": PROVIDER_TYPE,
                "image_folder": None if sources.image_folder is None else str(sources.image_folder),
                "index_file": None if sources.index_file is None else str(sources.index_file),
            }
        ],
        "extra_providers": [],
    }


def describe_file(file: FirmwareFile) -> str:
    """`name (manufacturer 0x115F, image type 0x1888, version 29, 289744 bytes)`."""
    return f"{file.name} ({file.header.describe()}, {file.size} bytes)"


def _metadata(file: FirmwareFile) -> zigpy_providers.LocalOtaImageMetadata:
    """What zigpy matches an image on. zigpy reads the file again when it serves it and checks its
    size and SHA-512 against these, so a file replaced after the check is refused."""
    return zigpy_providers.LocalOtaImageMetadata(
        path=file.path,
        file_version=file.header.file_version,
        manufacturer_id=file.header.manufacturer_code,
        image_type=file.header.image_type,
        checksum=f"sha512:{file.sha512}",
        file_size=file.size,
        model_names=file.model_ids,
        manufacturer_names=file.manufacturer_names,
        min_hardware_version=file.min_hardware_version,
        max_hardware_version=file.max_hardware_version,
        min_current_file_version=file.min_file_version,
        max_current_file_version=file.max_file_version,
        release_notes=file.release_notes,
        source=file.name,
    )


@zigpy_providers.register_provider
class LocalFirmwareProvider(zigpy_providers.BaseOtaProvider):
    """Checked files from the configured image folder and index."""

    NAME = PROVIDER_TYPE
    VOL_SCHEMA = vol.Schema(
        {
            vol.Required("type"): str,
            vol.Optional("image_folder", default=None): vol.Any(None, str),
            vol.Optional("index_file", default=None): vol.Any(None, str),
            vol.Optional("override_previous", default=False): bool,
            vol.Optional("manufacturer_ids", default=None): vol.Any(None, [int]),
        }
    )

    def __init__(self, image_folder: str | None = None, index_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(url=None, **kwargs)
        self.sources = FirmwareSources(
            image_folder=None if image_folder is None else Path(image_folder),
            index_file=None if index_file is None else Path(index_file),
        )
        self._reported: set[tuple[str, str]] = set()

    async def load_index(self) -> list[zigpy_providers.BaseOtaImageMetadata]:
        """The usable files, read again at every call (a local folder is cheap to look at)."""
        catalogue = await asyncio.to_thread(self.sources.scan)
        self._report(catalogue)
        return [_metadata(file) for file in catalogue.files]

    def _report(self, catalogue: Catalogue) -> None:
        """Each file once in the log: usable at info, refused at warning with the reason."""
        for file in catalogue.files:
            key = (str(file.path), f"ok {file.sha512}")
            if key not in self._reported:
                self._reported.add(key)
                _LOGGER.info("Firmware file %s", describe_file(file))
        for refused in catalogue.refused:
            key = (refused.where, refused.reason)
            if key not in self._reported:
                self._reported.add(key)
                _LOGGER.warning("Firmware file %s refused, never offered: %s", refused.where, refused.reason)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocalFirmwareProvider):
            return NotImplemented
        return (self.sources.image_folder, self.sources.index_file) == (
            other.sources.image_folder,
            other.sources.index_file,
        )

    def __hash__(self) -> int:
        return hash((type(self), self.sources.image_folder, self.sources.index_file))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_folder={self.sources.image_folder!s}, "
            f"index_file={self.sources.index_file!s})"
        )
