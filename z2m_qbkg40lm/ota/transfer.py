"""Firmware to one device through zigpy, with the guards a user-facing update needs.

zigpy does the protocol: its OTA cluster answers a device's Query Next Image Request (and asks
the providers, i.e. `provider.LocalFirmwareProvider`, for images), and `zigpy.ota.manager`
serves a chosen image: Image Notify, Query Next Image Response, Image Block Responses, Upgrade End
Response. `FirmwareTransfer` runs that and adds what zigpy leaves out: a deadline when the device
stops asking for blocks, an abort when it restarts in the middle, and the end in words.
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import zigpy.exceptions
import zigpy.ota.manager
from zigpy.zcl import ClusterType, foundation
from zigpy.zcl.clusters.general import Ota

from z2m_qbkg40lm.ota.matching import DeviceQuery

IMAGE_AVAILABLE_EVENT = "ota_image_available"
"""zigpy's event on the OTA cluster once it has looked for images for a device's query."""


class OtaError(Exception):
    """A check or an update that failed; the message says why, for users."""


class NoImageAvailable(OtaError):
    """Nothing newer for the device (Zigbee2MQTT: `No image currently available`)."""


def ieee_text(ieee: Any) -> str:
    """zigpy's EUI64 as Zigbee2MQTT writes it ("0x54ef44…")."""
    return "0x" + str(ieee).replace(":", "").lower()


def ota_cluster(device: Any) -> Any:
    """The device's OTA Upgrade client cluster (the side that pulls images)."""
    try:
        return device.find_cluster(cluster_id=Ota.cluster_id, cluster_type=ClusterType.Client)
    except (ValueError, KeyError):
        raise OtaError("the device has no OTA Upgrade client cluster") from None


def device_query(device: Any, command: Any) -> DeviceQuery:
    """What a Query Next Image Request says, with the device's identity."""
    hardware = getattr(command, "hardware_version", None)
    return DeviceQuery(
        ieee=ieee_text(device.ieee),
        manufacturer_code=int(command.manufacturer_code),
        image_type=int(command.image_type),
        file_version=int(command.current_file_version),
        hardware_version=None if hardware is None else int(hardware),
        model=device.model,
        manufacturer=device.manufacturer,
    )


def upgrades_for(device: Any, images: Any) -> list[Any]:
    """zigpy's upgrades for a query (best first), without device-specific files of other devices."""
    ieee = ieee_text(device.ieee)
    usable = []
    for image in images.upgrades:
        destination = getattr(getattr(image.firmware, "header", None), "upgrade_file_destination", None)
        if destination is None or ieee_text(destination) == ieee:
            usable.append(image)
    return usable


async def send_image_notify(device: Any) -> None:
    """Ask the device to send a Query Next Image Request now (unicast, query jitter 100)."""
    cluster = ota_cluster(device)
    try:
        await cluster.image_notify(
            payload_type=Ota.ImageNotifyCommand.PayloadType.QueryJitter, query_jitter=100
        )
    except (zigpy.exceptions.ZigbeeException, TimeoutError) as exc:
        raise OtaError(f"the device did not receive the image notify ({exc or type(exc).__name__})") from None


_STATUS_TEXT = {
    foundation.Status.TIMEOUT: "the device stopped requesting image blocks (zigpy waited 30 s)",
    foundation.Status.ABORT: "the device aborted the update",
    foundation.Status.INVALID_IMAGE: "the device refused the image as invalid (INVALID_IMAGE)",
    foundation.Status.REQUIRE_MORE_IMAGE: "the device wants more images (REQUIRE_MORE_IMAGE), not served",
    foundation.Status.MALFORMED_COMMAND: "the device asked for data beyond the end of the image",
    foundation.Status.FAILURE: "the image could not be offered to the device",
}


def describe_status(status: Any) -> str:
    """How a transfer that zigpy ended with `status` failed, in words."""
    text = _STATUS_TEXT.get(status)
    if text is not None:
        return text
    return f"the device ended the update with status {getattr(status, 'name', status)}"


class FirmwareTransfer:
    """One image to one device: `run()` returns when the device has the whole image and asked to
    apply it (Upgrade End SUCCESS), or raises OtaError.

    `on_progress(sent, total)` is called per block (from zigpy's handler: keep it cheap).
    """

    def __init__(
        self,
        device: Any,
        image: Any,
        *,
        stall_timeout_s: float,
        on_progress: Callable[[int, int], None],
    ) -> None:
        self.device = device
        self.image = image
        self.version = int(image.version)
        self._stall_timeout_s = stall_timeout_s
        self._on_progress = on_progress
        self._last_block = time.monotonic()
        self._abort_reason: str | None = None
        self._wake = asyncio.Event()
        self.sent = 0
        self.total = 0
        self.upgrade_end_received = False
        """True once the device asked to apply the image: a restart from then on is the upgrade."""

    def abort(self, reason: str) -> None:
        """End the transfer now (e.g. the device restarted); `run()` raises OtaError(reason)."""
        if self._abort_reason is None:
            self._abort_reason = reason
        self._wake.set()

    def _progress(self, sent: int, total: int, _percent: float) -> None:
        self.sent, self.total = sent, total
        self._last_block = time.monotonic()
        self._on_progress(sent, total)

    def _upgrade_end(self, hdr: Any, command: Any) -> None:
        if getattr(command, "status", None) == foundation.Status.SUCCESS:
            self.upgrade_end_received = True

    @property
    def percent(self) -> float:
        """How much of the image the device has asked for, 0-100."""
        return 100.0 * self.sent / self.total if self.total else 0.0

    async def run(self) -> None:
        """Serve the image; OtaError says how it failed (NoImageAvailable when the device declines)."""
        device = self.device
        if device.ota_in_progress:
            raise OtaError("zigpy is already updating this device")
        application = device.application
        # zigpy's own OTA cluster handler stands aside while this is set (it would otherwise answer
        # the device's queries with NO_IMAGE_AVAILABLE and its block requests with ABORT).
        device.ota_in_progress = True
        self._last_block = time.monotonic()
        task = asyncio.get_running_loop().create_task(
            zigpy.ota.manager.update_firmware(device, self.image, self._progress),
            name=f"OTA {ieee_text(device.ieee)}",
        )
        try:
            with application.callback_for_response(
                src=device, filters=[Ota.ServerCommandDefs.upgrade_end.schema()], callback=self._upgrade_end
            ):
                status = await self._supervise(task)
        finally:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            device.ota_in_progress = False
        if status == foundation.Status.NO_IMAGE_AVAILABLE:
            raise NoImageAvailable("No image currently available")
        if status != foundation.Status.SUCCESS:
            raise OtaError(describe_status(status))

    async def _supervise(self, task: asyncio.Task[Any]) -> Any:
        """Wait for zigpy's end of the transfer, a stall or an abort, whichever comes first."""
        while True:
            if self._abort_reason is not None:
                raise OtaError(self._abort_reason)
            silent = time.monotonic() - self._last_block
            if silent >= self._stall_timeout_s:
                where = f" at {self.percent:.2f} %" if self.sent else " before the first block"
                raise OtaError(
                    f"the device stopped requesting image blocks{where} "
                    f"(nothing for {self._stall_timeout_s:g} s)"
                )
            self._wake.clear()
            waker = asyncio.get_running_loop().create_task(self._wake.wait())
            try:
                done, _ = await asyncio.wait(
                    {task, waker}, timeout=self._stall_timeout_s - silent, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waker
            if task in done:
                try:
                    return task.result()
                except (zigpy.exceptions.ZigbeeException, TimeoutError) as exc:
                    raise OtaError(f"zigpy could not serve the image ({exc or type(exc).__name__})") from None
