"""Firmware updates over the air: Zigbee2MQTT's `device/ota_update/check` and `.../update`.

A check sends the device an Image Notify; the device answers with a Query Next Image Request
(what it runs: manufacturer code, image type, file version, hardware version), zigpy asks the
daemon's provider (the local files that passed every check) for images, and the answer becomes
the `update` object of the device's state. An update does the same, then lets zigpy serve the
best image block by block, publishes the progress at most once a second (and only after at least
one more percent), waits for the device to restart and reads its new version back.

One check or update at a time per device. Every way it can end badly ends in one error response
and the `update` state it had before (`available` when an image was there): a silent device (no
block request for `ota.image_block_request_timeout` ms), a device that restarts in the middle, a
device that refuses the image. Files that fail their checks are never offered (the provider logs
each once, with the reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import zigpy.exceptions

from z2m_qbkg40lm.bridge.bridge_api import BridgeApi
from z2m_qbkg40lm.bridge.extension import Context, Extension, RequestError, RequestHandler
from z2m_qbkg40lm.ota.matching import DeviceQuery, why_not_offered
from z2m_qbkg40lm.ota.provider import describe_file, sources_from_config
from z2m_qbkg40lm.ota.transfer import (
    IMAGE_AVAILABLE_EVENT,
    FirmwareTransfer,
    NoImageAvailable,
    OtaError,
    device_query,
    ota_cluster,
    send_image_notify,
    upgrades_for,
)
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError

_LOGGER = logging.getLogger(__name__)

CHECK = "device/ota_update/check"
UPDATE = "device/ota_update/update"

PROGRESS_INTERVAL_S = 1.0
"""At most one progress message a second..."""
PROGRESS_STEP = 1.0
"""...and only after at least one more percent."""
RESTART_TIMEOUT_S = 60.0
"""How long a device may take to restart into the new firmware after the transfer."""
VERSION_POLL_S = 5.0
"""While waiting for the restart, the version is read this often (in case no announcement comes)."""
READ_TIMEOUT_S = 5.0
"""For the reads around an update (build id, date code, file version)."""

_ID_EXPECTED = 'expected {"id": "<friendly name or IEEE address>"} or the bare name'


def update_payload(
    state: str,
    installed: int | None,
    latest: int | None,
    source: str | None = None,
    release_notes: str | None = None,
    *,
    progress: float | None = None,
    remaining: float | None = None,
) -> dict[str, Any]:
    """The `update` object of a device's state (Zigbee2MQTT's shape)."""
    payload: dict[str, Any] = {
        "installed_version": installed,
        "latest_release_notes": release_notes,
        "latest_source": source,
        "latest_version": latest,
        "state": state,
    }
    if progress is not None:
        payload["progress"] = round(progress, 2)
    if remaining is not None:
        payload["remaining"] = round(remaining)
    return payload


class OtaUpdates(Extension):
    """The OTA requests, the `update` state, and the devices' own update checks."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._settings = context.config.ota
        self._silence_s = self._settings.image_block_request_timeout / 1000
        self._sources = sources_from_config(self._settings, context.data_dir)
        self._busy: set[str] = set()
        self._checks: dict[str, asyncio.Future[Any]] = {}
        self._transfers: dict[str, FirmwareTransfer] = {}
        self._restarted: dict[str, asyncio.Event] = {}
        self._last_automatic: dict[str, float] = {}
        self._watches: dict[str, Callable[[], None]] = {}

    def request_handlers(self) -> dict[str, RequestHandler]:
        """`device/ota_update/check` and `device/ota_update/update`."""
        return {CHECK: self._check_request, UPDATE: self._update_request}

    # --- hooks -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow every device's own update checks; an update cut by a restart is over."""
        for device in self.context.radio.devices():
            await self._forget_interrupted_update(device.ieee)
            self._watch(device.ieee)

    async def stop(self) -> None:
        """Abandon running transfers and stop listening to zigpy."""
        for transfer in self._transfers.values():
            transfer.abort("the daemon is stopping")
        for unsubscribe in self._watches.values():
            unsubscribe()
        self._watches.clear()

    async def on_radio_event(self, event: ev.RadioEvent) -> None:
        """New or re-interviewed devices are followed; a restart matters during an update."""
        match event:
            case ev.DeviceInterviewed():
                self._watch(event.ieee)
            case ev.DeviceAnnounced():
                self._on_restart(event.ieee)
            case ev.DeviceLeft():
                unsubscribe = self._watches.pop(event.ieee, None)
                if unsubscribe is not None:
                    unsubscribe()
                transfer = self._transfers.get(event.ieee)
                if transfer is not None:
                    transfer.abort("the device left the network")
            case _:
                pass

    async def _forget_interrupted_update(self, ieee: str) -> None:
        """A cached `updating` state is from a run that ended during an update: it is idle now."""
        update = self.context.bridge.cached_state(ieee).get("update")
        if isinstance(update, dict) and update.get("state") == "updating":
            fixed = {key: value for key, value in update.items() if key not in ("progress", "remaining")}
            fixed["state"] = "idle"
            await self.context.bridge.publish_state(ieee, {"update": fixed})

    def _supports_ota(self, ieee: str) -> bool:
        device = self.context.radio.device(ieee)
        definition = None if device is None else self.context.bridge.definition_of(device)
        return definition is not None and definition.supports_ota

    def _watch(self, ieee: str) -> None:
        """Hear zigpy's answer to each Query Next Image Request of the device."""
        device = self.context.radio.zigpy_device(ieee)
        if device is None or not self._supports_ota(ieee):
            return
        try:
            cluster = ota_cluster(device)
        except OtaError:
            return
        old = self._watches.pop(ieee, None)
        if old is not None:
            old()
        self._watches[ieee] = cluster.on_event(
            IMAGE_AVAILABLE_EVENT, functools.partial(self._images_found, ieee)
        )

    def _images_found(self, ieee: str, event: Any) -> None:
        """zigpy looked for images for a query of the device (called from zigpy: no awaiting here)."""
        waiting = self._checks.get(ieee)
        if waiting is not None and not waiting.done():
            waiting.set_result(event)
            return
        if ieee in self._busy or self._settings.disable_automatic_update_check:
            return
        # Devices ask again and again; Zigbee2MQTT refreshes the state at most once an interval.
        now = time.monotonic()
        last = self._last_automatic.get(ieee)
        if last is not None and now - last < self._settings.update_check_interval * 60:
            return
        self._last_automatic[ieee] = now
        self.context.bridge.spawn(self._automatic_check(ieee, event), f"OTA check of {ieee}")

    async def _automatic_check(self, ieee: str, event: Any) -> None:
        try:
            await self._publish_check(ieee, event)
        except OtaError as exc:
            _LOGGER.warning(
                "Automatic OTA check of '%s' failed: %s", self.context.bridge.friendly_name(ieee), exc
            )

    def _on_restart(self, ieee: str) -> None:
        """An announcement: the end of an update, or the end of the transfer that was running."""
        transfer = self._transfers.get(ieee)
        if transfer is not None and not transfer.upgrade_end_received:
            transfer.abort(
                f"the device restarted during the transfer (at {transfer.percent:.2f} %) and keeps "
                "its firmware"
            )
            return
        restarted = self._restarted.get(ieee)
        if restarted is not None:
            restarted.set()

    # --- requests --------------------------------------------------------------------------------

    def _target(self, message: Any) -> tuple[str, str, str]:
        """(given id, IEEE address, friendly name) of the device a request names."""
        if isinstance(message, str) and message:
            given = message
        elif isinstance(message, dict) and isinstance(message.get("id"), str) and message["id"]:
            given = str(message["id"])
            for key in ("url", "hex"):
                if message.get(key) is not None:
                    raise RequestError(
                        f"Invalid payload: '{key}' is not supported: this daemon never downloads "
                        "firmware; put the file in ota.image_folder or in the "
                        "ota.zigbee_ota_override_index_location index"
                    )
        else:
            raise RequestError(f"Invalid payload: {_ID_EXPECTED}")
        device = self.context.bridge.resolve(given)
        if device is None:
            raise RequestError(f"Device '{given}' does not exist")
        name = self.context.bridge.friendly_name(device.ieee)
        zigpy_device = self.context.radio.zigpy_device(device.ieee)
        if zigpy_device is None or not self._supports_ota(device.ieee):
            raise RequestError(f"Device '{name}' does not support OTA updates")
        try:
            ota_cluster(zigpy_device)
        except OtaError:
            raise RequestError(f"Device '{name}' does not support OTA updates") from None
        if device.ieee in self._busy:
            raise RequestError(f"OTA update or check for update already in progress for '{name}'")
        return given, device.ieee, name

    async def _check_request(self, message: Any) -> dict[str, Any]:
        given, ieee, name = self._target(message)
        self._busy.add(ieee)
        try:
            _LOGGER.info("Checking if OTA update available for '%s'", name)
            event = await self._query(ieee)
            upgrades = await self._publish_check(ieee, event, explain=True)
        except OtaError as exc:
            raise RequestError(f"Failed to check if OTA update available for '{name}' ({exc})") from None
        finally:
            self._busy.discard(ieee)
        data: dict[str, Any] = {"downgrade": False, "id": given, "update_available": bool(upgrades)}
        if upgrades:
            data["source"] = upgrades[0].metadata.source
            if upgrades[0].metadata.release_notes:
                data["release_notes"] = upgrades[0].metadata.release_notes
        return data

    async def _update_request(self, message: Any) -> dict[str, Any]:
        given, ieee, name = self._target(message)
        self._busy.add(ieee)
        try:
            _LOGGER.info("OTA updating '%s' to latest firmware", name)
            before = await self._firmware_details(ieee)
            try:
                event = await self._query(ieee)
            except OtaError as exc:
                raise RequestError(f"OTA update of '{name}' failed ({exc})") from None
            upgrades = await self._publish_check(ieee, event, explain=True)
            if not upgrades:
                raise RequestError(f"Update of '{name}' failed (No image currently available)")
            query = self._device_query(ieee, event)
            image = upgrades[0]
            try:
                version = await self._install(ieee, name, image, query)
            except NoImageAvailable:
                await self._publish_update(ieee, "idle", query.file_version, query.file_version)
                raise RequestError(f"Update of '{name}' failed (No image currently available)") from None
            except OtaError as exc:
                await self._publish_update(
                    ieee, "available", query.file_version, image.version, notes=self._image_notes(image)
                )
                raise RequestError(f"OTA update of '{name}' failed ({exc})") from None
        finally:
            self._busy.discard(ieee)
        after = await self._firmware_details(ieee)
        await self._publish_devices()
        _LOGGER.info("Device '%s' was OTA updated from '%d' to '%d'", name, query.file_version, version)
        return {
            "from": {"file_version": query.file_version, **before},
            "id": given,
            "to": {"file_version": version, **after},
        }

    # --- steps -----------------------------------------------------------------------------------

    def _zigpy_device(self, ieee: str) -> Any:
        device = self.context.radio.zigpy_device(ieee)
        if device is None:
            raise OtaError("the device is not on the network")
        return device

    def _device_query(self, ieee: str, event: Any) -> DeviceQuery:
        return device_query(self._zigpy_device(ieee), event.query_cmd)

    async def _query(self, ieee: str) -> Any:
        """Image Notify, then zigpy's images for the Query Next Image Request the device answers."""
        device = self._zigpy_device(ieee)
        waiting: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._checks[ieee] = waiting
        try:
            await send_image_notify(device)
            async with asyncio.timeout(self._silence_s):
                return await waiting
        except TimeoutError:
            raise OtaError(
                f"the device did not ask for an image within {self._silence_s:g} s of the image notify"
            ) from None
        finally:
            if self._checks.get(ieee) is waiting:
                del self._checks[ieee]

    @staticmethod
    def _image_notes(image: Any) -> tuple[str | None, str | None]:
        metadata = image.metadata
        return metadata.source, metadata.release_notes or None

    async def _publish_check(self, ieee: str, event: Any, *, explain: bool = False) -> list[Any]:
        """Publish what a query found as the `update` state; returns the upgrades, best first."""
        name = self.context.bridge.friendly_name(ieee)
        device = self._zigpy_device(ieee)
        query = device_query(device, event.query_cmd)
        upgrades = upgrades_for(device, event.images_result)
        if upgrades:
            best = upgrades[0]
            _LOGGER.info(
                "OTA update available for '%s' (version %d -> %d)", name, query.file_version, best.version
            )
            await self._publish_update(
                ieee, "available", query.file_version, best.version, notes=self._image_notes(best)
            )
        else:
            _LOGGER.info("No OTA update available for '%s' (it runs version %d)", name, query.file_version)
            await self._publish_update(ieee, "idle", query.file_version, query.file_version)
            if explain:
                await self._explain(name, query)
        return upgrades

    async def _explain(self, name: str, query: DeviceQuery) -> None:
        """Say why the files of the device's manufacturer are not offered to it."""
        catalogue = await asyncio.to_thread(self._sources.scan)
        for file in catalogue.files:
            if file.header.manufacturer_code != query.manufacturer_code:
                continue
            reason = why_not_offered(file, query)
            if reason is not None:
                _LOGGER.info("Firmware file %s is not for '%s': %s", describe_file(file), name, reason)
        for refused in catalogue.refused:
            _LOGGER.warning("Firmware file %s refused, never offered: %s", refused.where, refused.reason)

    async def _publish_update(
        self,
        ieee: str,
        state: str,
        installed: int | None,
        latest: int | None,
        *,
        notes: tuple[str | None, str | None] = (None, None),
        progress: float | None = None,
        remaining: float | None = None,
    ) -> None:
        source, release_notes = notes
        payload = update_payload(
            state, installed, latest, source, release_notes, progress=progress, remaining=remaining
        )
        await self.context.bridge.publish_state(ieee, {"update": payload})

    async def _install(self, ieee: str, name: str, image: Any, query: DeviceQuery) -> int:
        """Serve the image and wait for the device to run it; returns the version it then reports."""
        progressed = asyncio.Event()
        transfer = FirmwareTransfer(
            self._zigpy_device(ieee),
            image,
            stall_timeout_s=self._silence_s,
            on_progress=lambda sent, total: progressed.set(),
        )
        notes = self._image_notes(image)
        await self._publish_update(
            ieee, "updating", query.file_version, transfer.version, notes=notes, progress=0.0
        )
        self._transfers[ieee] = transfer
        self._restarted[ieee] = restarted = asyncio.Event()
        reporter = asyncio.get_running_loop().create_task(
            self._report_progress(
                ieee, name, transfer, progressed, installed=query.file_version, notes=notes
            ),
            name=f"OTA progress of {name}",
        )
        try:
            try:
                await transfer.run()
            finally:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
                del self._transfers[ieee]
            _LOGGER.info("Finished update of '%s', waiting for it to restart", name)
            version = await self._wait_for_version(ieee, transfer.version, restarted)
        finally:
            del self._restarted[ieee]
        await self._publish_update(ieee, "idle", version, version, notes=notes)
        return version

    async def _report_progress(
        self,
        ieee: str,
        name: str,
        transfer: FirmwareTransfer,
        progressed: asyncio.Event,
        *,
        installed: int,
        notes: tuple[str | None, str | None],
    ) -> None:
        """Progress messages: at most one a second, each at least one percent further."""
        started = last_time = time.monotonic()
        last_percent = 0.0
        while True:
            await progressed.wait()
            progressed.clear()
            if transfer.percent - last_percent < PROGRESS_STEP:
                continue
            # Rate limiting, not synchronisation: later blocks only move the figure on.
            delay = PROGRESS_INTERVAL_S - (time.monotonic() - last_time)
            if delay > 0:
                await asyncio.sleep(delay)
            percent = transfer.percent
            elapsed = time.monotonic() - started
            remaining = elapsed * (100.0 - percent) / percent if percent > 0 else None
            if remaining is not None and remaining >= 60:
                _LOGGER.info(
                    "Update of '%s' at %.2f%%, ≈ %d minutes remaining", name, percent, round(remaining / 60)
                )
            else:
                _LOGGER.info("Update of '%s' at %.2f%%", name, percent)
            await self._publish_update(
                ieee,
                "updating",
                installed,
                transfer.version,
                notes=notes,
                progress=percent,
                remaining=remaining,
            )
            last_time, last_percent = time.monotonic(), percent

    async def _wait_for_version(self, ieee: str, version: int, restarted: asyncio.Event) -> int:
        """The device restarts into the new firmware: its announcement (or, failing that, polling)
        tells when; the version it then reports must be the new one."""
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        installed: int | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(VERSION_POLL_S, deadline - time.monotonic()))):
                    await restarted.wait()
            installed = await self._read_file_version(ieee)
            if installed == version:
                return version
            if restarted.is_set() and installed is not None:
                raise OtaError(f"the device restarted but still runs version {installed}, not {version}")
            if time.monotonic() >= deadline:
                if installed is None:
                    raise OtaError(
                        f"the device did not answer within {RESTART_TIMEOUT_S:g} s after the transfer"
                    )
                raise OtaError(
                    f"the device still runs version {installed} {RESTART_TIMEOUT_S:g} s after the transfer"
                )

    async def _read_file_version(self, ieee: str) -> int | None:
        """The OTA cluster's current file version, read from the device (None when it does not answer)."""
        try:
            cluster = ota_cluster(self._zigpy_device(ieee))
            async with asyncio.timeout(READ_TIMEOUT_S):
                values, _failed = await cluster.read_attributes(["current_file_version"], allow_cache=False)
        except (zigpy.exceptions.ZigbeeException, TimeoutError, OtaError) as exc:
            # Expected while the device restarts; `_wait_for_version` says it if it lasts.
            _LOGGER.debug("Reading the firmware version of %s failed: %s", ieee, exc or "no answer")
            return None
        value = values.get("current_file_version")
        if value is None:
            value = values.get(0x0002)
        return None if value is None else int(value)

    async def _firmware_details(self, ieee: str) -> dict[str, Any]:
        """Basic's build id and date code, read from the device now (the cached ones if it is silent)."""
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                await self.context.radio.read_device_information(ieee)
        except (DeviceCommandError, TimeoutError) as exc:
            _LOGGER.debug("Reading the build id of %s failed: %s", ieee, exc or "no answer")
        details = self.context.radio.details(ieee)
        if details is None:
            return {}
        found = {"date_code": details.date_code, "software_build_id": details.software_build_id}
        return {key: value for key, value in found.items() if value is not None}

    async def _publish_devices(self) -> None:
        """`bridge/devices` shows the new build id."""
        for extension in self.context.bridge.extensions:
            if isinstance(extension, BridgeApi):
                await extension.publish_devices()
