"""The OTA Upgrade cluster (0x0019) client of the simulated QBKG40LM, as a JN5180 Lumi router runs it.

`SimulatedSwitch` hands every frame for its OTA client cluster to `OtaClient.handle_command()`;
the client answers only with Default Responses there. Everything it sends on its own (Query Next
Image, Image Block and Upgrade End Requests, the announcement after the "reboot") leaves later,
through the `SwitchLink` of the radio the switch is on: `send()` for frames, `call_later()` for
timers the radio owns and cancels when it shuts down. A switch without a link (frame-level use of
`SimulatedSwitch` alone) never pulls an image. Wire facts: ZCL OTA Upgrade cluster, and
../shared/reference/qbkg40lm-zigbee.md §10 (image type 0x1888, manufacturer 0x115F).

The exchange (all client frames from endpoint 1 to the server's endpoint, profile 0x0104,
cluster-specific, default response disabled, the switch's own TSNs):

1. Image Notify from the server (unicast: always answered; broadcast: answered when a random
   1-100 is at most the query jitter; payload types 1-3 are filtered on manufacturer code, image
   type and new file version, 0xFFFF/0xFFFFFFFF being wildcards; one it cannot decode is ignored)
   or `query()`: after `OtaSettings.query_delay` (1 s) the client sends Query Next Image Request:
   field control 0x01 with hardware version `OtaSettings.hardware_version` (1, Basic's HWVersion;
   None leaves it out), manufacturer 0x115F, image type 0x1888, current file version = firmware
   version. It is resent after `response_timeout` up to `retries` times, then the client gives up
   silently. An Image Notify during an upgrade is ignored.
2. Query Next Image Response: NO_IMAGE_AVAILABLE (or any other error) ends the query. SUCCESS
   offers an image: one for another manufacturer or image type, not newer than the running
   version, smaller than an OTA header or larger than `MAX_IMAGE_SIZE` is refused at once with
   Upgrade End Request INVALID_IMAGE (zigpy's server only ends a transfer on an Upgrade End
   Request, so a silent refusal would leave it waiting). Otherwise the download starts.
3. Image Block Requests from offset 0: field control 0, the offered manufacturer, type and
   version, `max_data_size` (64 bytes by default; zigpy answers at most 50 for Lumi's code) or
   less for the last block. A SUCCESS response for the expected offset and image appends its data
   (any length up to what is missing) and the next request follows after `block_delay` (0 by
   default: as fast as the server answers) or the server's minimum block period, whichever is
   longer. Responses for other offsets or images are stale and ignored. WAIT_FOR_DATA makes the
   client ask for the same offset again after request time - current time seconds (an offset from
   now when the server's current time is 0) and adopts its minimum block period (ms). ABORT, or
   any other error status, ends the download at once, without an Upgrade End Request (as the
   specification says for ABORT); the partial image is dropped. A request left unanswered is
   resent after `response_timeout` (5 s) with a new TSN, `retries` (3) times; then the client
   gives up with Upgrade End Request ABORT.
4. All bytes in: the image is checked: magic 0x0BEEF11E, header version 0x0100, header length
   (56 bytes or more, optional fields as the field control says, within the image), manufacturer
   0x115F, image type 0x1888, file version as offered and newer than the running one, total image
   size = the offered size = the bytes received, sub-elements (tag, 32-bit length) filling the
   rest exactly, with an Upgrade Image element (tag 0x0000); an Image Integrity Code element (tag
   0x0003, which must then be the last) must hold the AES-MMO hash of everything before it. A
   failed check sends Upgrade End Request INVALID_IMAGE and keeps the old firmware (the server's
   Upgrade End Response to it, which zigpy sends anyway, is ignored). A good image sends Upgrade
   End Request SUCCESS (image upgrade status Download complete), resent like a block request if
   unanswered; when it never gets an answer the image is applied anyway, as the default upgrade
   timeout policy (0x000C = 0, apply after timeout) says.
5. Upgrade End Response for the downloaded image (0xFFFF/0xFFFFFFFF wildcards accepted): upgrade
   time 0xFFFFFFFF waits for another Upgrade End Response (status Waiting to upgrade); otherwise
   the switch reboots after upgrade time - current time seconds (Count down meanwhile) plus
   `reboot_delay`: the firmware version becomes the file version (Basic application version, sw
   build id `0.0.0_00NN` and OTA 0x0002 follow), and the reboot is a power cycle of the model: the
   boot counter grows, the relay follows power-outage memory, the switch announces itself
   (Device_annce) and reports its relay and heartbeat.

Interruptions: a power cycle at any point before the reboot loses the downloaded data (the switch
keeps its firmware, requests nothing more); a silent switch keeps its timers but nothing it sends
leaves it, so its retries run out and it gives up (its ABORT is lost too); detaching the link (the
radio stops) abandons a transfer. Nothing of a transfer is persisted: only the firmware version
is, with the switch. `inject_fault()` makes the client fail at a chosen offset, for tests.

Choices where neither the specification nor the reference pins the real switch down: Image Page
Requests are never used (Lumi routers are seen pulling Image Blocks); the hardware version in the
query and the upgrade server id (0x0000 stays 0xFFFFFFFFFFFFFFFF: no server discovery is
modelled) are guesses; the Image Integrity Code is read as the hash of the file up to the element
(header and earlier elements), which is how the test images are built; no periodic query.
Speed: through zigpy 2.4 in process, one 50-byte block takes about 2 ms, so a 289 744-byte image
(5 795 blocks) takes 11-15 s on the virtual adapter; a real switch needs 10-20 minutes.
"""

# zigpy's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

import zigpy.types as t
from zigpy.util import aes_mmo_hash
from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Ota

from z2m_qbkg40lm.devices.qbkg40lm import HA_PROFILE, LUMI_MANUFACTURER_CODE, SWITCH_ENDPOINT
from z2m_qbkg40lm.sim.frames import ApsFrame

if TYPE_CHECKING:
    from z2m_qbkg40lm.sim.switch import SimulatedSwitch

LOGGER = logging.getLogger(__name__)

OTA_CLUSTER: Final = 0x0019
OTA_IMAGE_TYPE: Final = 0x1888
OTA_MAGIC: Final = 0x0BEEF11E
OTA_HEADER_VERSION: Final = 0x0100
MIN_HEADER_LENGTH: Final = 56
MAX_IMAGE_SIZE: Final = 0x80000
"""512 KiB: the JN5180 has 640 KiB of flash; the latest QBKG40LM image is 289 744 bytes."""
ZIGBEE_PRO_STACK: Final = 0x0002
TAG_UPGRADE_IMAGE: Final = 0x0000
TAG_INTEGRITY_CODE: Final = 0x0003
WILDCARD_16: Final = 0xFFFF
WILDCARD_32: Final = 0xFFFFFFFF
UPGRADE_LATER: Final = 0xFFFFFFFF
"""Upgrade time meaning "wait for another Upgrade End Response"."""
UNSET_EUI64: Final = t.EUI64.convert("ff:ff:ff:ff:ff:ff:ff:ff")
CLIENT_COMMAND_FRAME_CONTROL: Final = 0x11
"""Cluster-specific, client to server, no manufacturer code, default response disabled."""
IMAGE_BLOCK_RESPONSE: Final = 0x05

_SERVER: Final = Ota.ServerCommandDefs
_CLIENT: Final = Ota.ClientCommandDefs
_CLIENT_BY_ID: Final = {command.id: command for command in Ota.ClientCommandDefs}
Status = foundation.Status
UpgradeStatus = Ota.ImageUpgradeStatus


class Timer(Protocol):
    """A pending callback that can be cancelled."""

    def cancel(self) -> None:
        """Do not run the callback (a no-op when it ran or was cancelled already)."""


class SwitchLink(Protocol):
    """What carries a switch's own frames: the radio (or emulated chip) the switch is on."""

    def send(self, frames: list[ApsFrame]) -> None:
        """Deliver frames the switch sends on its own, now."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` after `delay` seconds; the link cancels its timers when it shuts down."""


class TimerSet:
    """asyncio timers owned by one radio: `call_later()` for its switches, `cancel_all()` on shutdown."""

    def __init__(self) -> None:
        self._timers: set[_LoopTimer] = set()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` after `delay` seconds on the running loop (0: on the next iteration)."""
        return _LoopTimer(self._timers, delay, callback)

    def cancel_all(self) -> None:
        """Cancel every pending timer."""
        for timer in list(self._timers):
            timer.cancel()

    def __len__(self) -> int:
        return len(self._timers)


class _LoopTimer:
    def __init__(self, owner: set[_LoopTimer], delay: float, callback: Callable[[], None]) -> None:
        self._owner = owner
        self._callback = callback
        self._handle = asyncio.get_running_loop().call_later(max(0.0, delay), self._run)
        owner.add(self)

    def _run(self) -> None:
        self._owner.discard(self)
        try:
            self._callback()
        except Exception:
            LOGGER.exception("A simulated switch's timer failed")

    def cancel(self) -> None:
        self._handle.cancel()
        self._owner.discard(self)


@dataclass
class OtaSettings:
    """How the client behaves; per switch, not persisted (defaults after every restart)."""

    max_data_size: int = 64
    """Maximum data size asked for in every Image Block Request (bytes, 1-255)."""
    block_delay: float = 0.0
    """Seconds between a block arriving and the next request (a real switch: about 0.1-0.2 s)."""
    response_timeout: float = 5.0
    """Seconds to wait for any answer before resending the request."""
    retries: int = 3
    """Resends of one request before the client gives up."""
    query_delay: float = 1.0
    """Seconds between an Image Notify (or `query()`) and the Query Next Image Request.

    zigpy notifies at the end of every interview; answering a moment later keeps the exchange
    apart from whatever the host does right after (a switch removed or a host stopped just as
    zigpy replies leaves zigpy's reply task retrying)."""
    reboot_delay: float = 0.0
    """Seconds the reboot takes after the upgrade time arrived."""
    hardware_version: int | None = 1
    """Hardware version sent in Query Next Image Request; None leaves the field out."""

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if not 1 <= self.max_data_size <= 255:
            raise ValueError(f"max_data_size must be 1 to 255 bytes, not {self.max_data_size}")
        for name in ("block_delay", "response_timeout", "query_delay", "reboot_delay"):
            value = getattr(self, name)
            if not 0 <= value <= 3600:
                raise ValueError(f"{name} must be 0 to 3600 seconds, not {value}")
        if self.response_timeout <= 0:
            raise ValueError("response_timeout must be more than 0 seconds")
        if not 0 <= self.retries <= 100:
            raise ValueError(f"retries must be 0 to 100, not {self.retries}")
        if self.hardware_version is not None and not 0 <= self.hardware_version <= 0xFFFF:
            raise ValueError(f"hardware_version must be 0 to 65535 or None, not {self.hardware_version}")


class Phase(enum.Enum):
    """Where the client is in an upgrade."""

    IDLE = "idle"
    QUERYING = "querying"
    DOWNLOADING = "downloading"
    ENDING = "ending"
    """Image complete and good; Upgrade End Request SUCCESS sent, waiting for the response."""
    WAITING = "waiting"
    """Told to wait for another Upgrade End Response (upgrade time 0xFFFFFFFF)."""
    COUNTING_DOWN = "counting_down"
    """The reboot is scheduled."""


class OtaFault(enum.Enum):
    """What `inject_fault()` makes happen once the download reaches an offset."""

    POWER_CYCLE = "power_cycle"
    """The switch loses power and comes back (the partial image is lost)."""
    SILENT = "silent"
    """The switch stops talking (`responsive` False), as if out of range."""
    ABORT = "abort"
    """The client gives up: Upgrade End Request ABORT."""
    INVALID_IMAGE = "invalid_image"
    """The image fails the check after the last block (as a flash write error would)."""


@dataclass(frozen=True)
class OtaResult:
    """How the last upgrade attempt ended."""

    outcome: str
    """`upgraded`, `invalid_image`, `aborted` (the switch gave up), `server_abort` (ABORT or an
    error status from the server), `no_image`, `no_response` (query unanswered), `power_cycle`,
    `stopped` (the radio went away)."""
    file_version: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class ImageOffer:
    """An image a Query Next Image Response offered."""

    manufacturer_code: int
    image_type: int
    file_version: int
    image_size: int


@dataclass
class _Fault:
    fault: OtaFault
    at_offset: int


@dataclass
class _Transfer:
    offer: ImageOffer
    data: bytearray = field(default_factory=bytearray)
    min_block_period: float = 0.0
    """Seconds between block requests the server asked for (WAIT_FOR_DATA)."""


class OtaClient:
    """The OTA client cluster of one switch: attributes, the download and the upgrade."""

    def __init__(self, switch: SimulatedSwitch, settings: OtaSettings | None = None) -> None:
        self._switch = switch
        self.settings = settings or OtaSettings()
        self.settings.validate()
        self._link: SwitchLink | None = None
        self.phase = Phase.IDLE
        self.last_result: OtaResult | None = None
        self._transfer: _Transfer | None = None
        self._timer: Timer | None = None
        self._pending_tsn: int | None = None
        self._attempts = 0
        self._server_endpoint = 1
        self._fault: _Fault | None = None
        self.block_requests = 0
        """Image Block Requests sent in the current or last transfer (resends included)."""

    # --- the link -----------------------------------------------------------------------------

    def attach(self, link: SwitchLink | None) -> None:
        """Put the client on a radio (None: taken off it; a transfer in progress is abandoned)."""
        if link is self._link:
            return
        if self.phase != Phase.IDLE:
            self._stop(OtaResult("stopped", self._file_version, "the radio went away"))
        self._link = link

    @property
    def attached(self) -> bool:
        """True while the switch is on a radio that can carry its own frames."""
        return self._link is not None

    # --- attributes ------------------------------------------------------------------------------

    @property
    def image_upgrade_status(self) -> int:
        """OTA attribute 0x0006."""
        return int(
            {
                Phase.IDLE: UpgradeStatus.Normal,
                Phase.QUERYING: UpgradeStatus.Normal,
                Phase.DOWNLOADING: UpgradeStatus.Download_in_progress,
                Phase.ENDING: UpgradeStatus.Download_complete,
                Phase.WAITING: UpgradeStatus.Waiting_to_upgrade,
                Phase.COUNTING_DOWN: UpgradeStatus.Count_down,
            }[self.phase]
        )

    @property
    def file_offset(self) -> int:
        """OTA attribute 0x0001: bytes received of the image being downloaded, else 0xFFFFFFFF."""
        if self._transfer is None:
            return WILDCARD_32
        return len(self._transfer.data)

    @property
    def downloaded_file_version(self) -> int:
        """OTA attribute 0x0004: the image being downloaded or downloaded, else 0xFFFFFFFF."""
        return WILDCARD_32 if self._transfer is None else self._transfer.offer.file_version

    @property
    def downloaded_stack_version(self) -> int:
        """OTA attribute 0x0005: 0x0002 (ZigBee PRO) with an image, else 0xFFFF."""
        return WILDCARD_16 if self._transfer is None else ZIGBEE_PRO_STACK

    @property
    def minimum_block_period_ms(self) -> int:
        """OTA attribute 0x0009: the pause between block requests, in ms."""
        period = self.settings.block_delay
        if self._transfer is not None:
            period = max(period, self._transfer.min_block_period)
        return min(0xFFFF, round(period * 1000))

    @property
    def image_size(self) -> int | None:
        """Size of the image being downloaded, None when there is none."""
        return None if self._transfer is None else self._transfer.offer.image_size

    def status(self) -> dict[str, Any]:
        """The client's state as JSON-friendly values."""
        result = self.last_result
        return {
            "phase": self.phase.value,
            "image_upgrade_status": UpgradeStatus(self.image_upgrade_status).name,
            "firmware_version": self._switch.firmware_version,
            "file_version": None if self._transfer is None else self._transfer.offer.file_version,
            "offset": None if self._transfer is None else len(self._transfer.data),
            "image_size": self.image_size,
            "block_requests": self.block_requests,
            "fault": None
            if self._fault is None
            else {**asdict(self._fault), "fault": self._fault.fault.value},
            "last_result": None if result is None else asdict(result),
            "settings": asdict(self.settings),
        }

    # --- control ---------------------------------------------------------------------------------

    def configure(self, **changes: Any) -> OtaSettings:
        """Change settings (names of `OtaSettings`); ValueError for an unknown name or bad value."""
        known = list(asdict(self.settings))
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown OTA setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        settings = replace(self.settings, **changes)
        settings.validate()
        self.settings = settings
        return settings

    def query(self) -> None:
        """Query the server now, as the periodic check of a real switch would.

        A query waiting for its `query_delay` or its answer is replaced by this one. ValueError
        when the switch is on no radio, silent, or busy with an upgrade.
        """
        if self._link is None:
            raise ValueError("the switch is on no radio: it cannot query an OTA server")
        if not self._switch.responsive:
            raise ValueError("the switch is silent: it cannot query an OTA server")
        if self.phase not in (Phase.IDLE, Phase.QUERYING):
            raise ValueError(f"an upgrade is in progress ({self.phase.value})")
        self.phase = Phase.QUERYING
        self._transfer = None
        self._attempts = 0
        self._schedule(0.0, self._send_query)

    def inject_fault(self, fault: OtaFault | None, at_offset: int = 0) -> None:
        """Fail the next (or current) download once `at_offset` bytes are in; None clears it.

        The fault happens when a block brings the received bytes to `at_offset` or more (0: at
        the first block). It is used once.
        """
        if fault is None:
            self._fault = None
            return
        if at_offset < 0:
            raise ValueError(f"at_offset must be 0 or more bytes, not {at_offset}")
        self._fault = _Fault(fault, at_offset)

    def power_lost(self) -> None:
        """Mains cut: whatever was downloaded is gone, the client starts idle."""
        if self.phase != Phase.IDLE:
            LOGGER.info(
                "Switch %s lost power during an OTA upgrade (%s): the downloaded data is lost",
                self._switch.ieee,
                self.phase.value,
            )
            self._stop(OtaResult("power_cycle", self._file_version, f"power cycle while {self.phase.value}"))

    # --- frames from the server -------------------------------------------------------------------

    def handle_command(
        self, command_id: int, tsn: int, body: bytes, src_endpoint: int, broadcast: bool
    ) -> Status | None:
        """One cluster command for the OTA client; returns the Default Response status (None: none)."""
        handlers: dict[int, Callable[[Any, int, bool], Status | None]] = {
            _CLIENT.image_notify.id: self._image_notify,
            _CLIENT.query_next_image_response.id: self._query_response,
            _CLIENT.image_block_response.id: self._block_response,
            _CLIENT.upgrade_end_response.id: self._upgrade_end_response,
        }
        if command_id == _CLIENT.query_specific_file_response.id:
            return None  # never asked for
        handler = handlers.get(command_id)
        if handler is None:
            return Status.UNSUP_CLUSTER_COMMAND
        schema = _CLIENT_BY_ID[command_id].schema
        args: Any
        try:
            args, _rest = schema.deserialize(body)
        except (ValueError, KeyError) as exc:
            LOGGER.debug("Switch %s: malformed OTA command 0x%02X: %s", self._switch.ieee, command_id, exc)
            if command_id == _CLIENT.image_notify.id:
                return None  # a notification the switch cannot read is simply not acted on
            return Status.MALFORMED_COMMAND
        if not broadcast:
            self._server_endpoint = src_endpoint
        return handler(args, tsn, broadcast)

    def _image_notify(self, args: Any, tsn: int, broadcast: bool) -> Status | None:
        payload_type = int(args.payload_type)
        if payload_type >= 1 and args.manufacturer_code not in (LUMI_MANUFACTURER_CODE, WILDCARD_16):
            return None if broadcast else Status.SUCCESS
        if payload_type >= 2 and args.image_type not in (OTA_IMAGE_TYPE, WILDCARD_16):
            return None if broadcast else Status.SUCCESS
        if (
            payload_type >= 3
            and args.new_file_version != WILDCARD_32
            and args.new_file_version <= self._switch.firmware_version
        ):
            return None if broadcast else Status.SUCCESS
        # The process-wide generator: a random.Random of its own cost 2.5 kB per switch.
        if broadcast and random.randint(1, 100) > int(args.query_jitter):
            LOGGER.debug("Switch %s: Image Notify jitter says not this time", self._switch.ieee)
            return None
        if self.phase != Phase.IDLE:
            LOGGER.debug("Switch %s: Image Notify ignored during an upgrade", self._switch.ieee)
        elif self._link is None:
            LOGGER.debug("Switch %s: Image Notify ignored, the switch is on no radio", self._switch.ieee)
        else:
            self._start_query()
        return Status.SUCCESS

    def _query_response(self, args: Any, tsn: int, broadcast: bool) -> Status | None:
        if self.phase != Phase.QUERYING or tsn != self._pending_tsn:
            return None
        self._cancel_timer()
        if args.status != Status.SUCCESS:
            outcome = "no_image" if args.status == Status.NO_IMAGE_AVAILABLE else "server_abort"
            LOGGER.debug("Switch %s: Query Next Image answered %s", self._switch.ieee, args.status)
            self._stop(OtaResult(outcome, None, f"Query Next Image Response {Status(args.status).name}"))
            return None
        if None in (args.manufacturer_code, args.image_type, args.file_version, args.image_size):
            self._stop(OtaResult("server_abort", None, "Query Next Image Response SUCCESS without an image"))
            return Status.MALFORMED_COMMAND
        offer = ImageOffer(
            int(args.manufacturer_code), int(args.image_type), int(args.file_version), int(args.image_size)
        )
        problem = self._offer_problem(offer)
        self._transfer = _Transfer(offer)
        if problem is not None:
            self._refuse(problem)
            return None
        LOGGER.info(
            "Switch %s: downloading OTA image version %d (%d bytes)",
            self._switch.ieee,
            offer.file_version,
            offer.image_size,
        )
        self.phase = Phase.DOWNLOADING
        self.block_requests = 0
        self._attempts = 0
        self._schedule(0.0, self._request_block)
        return None

    def _block_response(self, args: Any, tsn: int, broadcast: bool) -> Status | None:
        transfer = self._transfer
        if self.phase != Phase.DOWNLOADING or transfer is None:
            return None
        status = args.status
        if status == Status.SUCCESS:
            offer = transfer.offer
            if (
                (args.manufacturer_code, args.image_type, args.file_version)
                != (offer.manufacturer_code, offer.image_type, offer.file_version)
                or args.file_offset != len(transfer.data)
                or not args.image_data
            ):
                LOGGER.debug(
                    "Switch %s: stale or empty Image Block Response ignored (offset %s)",
                    self._switch.ieee,
                    args.file_offset,
                )
                return None
            self._cancel_timer()
            self._attempts = 0
            missing = offer.image_size - len(transfer.data)
            transfer.data += bytes(args.image_data[:missing])
            if self._fault_due(len(transfer.data)):
                return None
            if len(transfer.data) >= offer.image_size:
                self._schedule(0.0, self._image_complete)
            else:
                self._schedule(max(self.settings.block_delay, transfer.min_block_period), self._request_block)
            return None
        if tsn != self._pending_tsn:
            return None
        self._cancel_timer()
        if status == Status.WAIT_FOR_DATA:
            current, requested = int(args.current_time), int(args.request_time)
            delay = max(0, requested - current)
            if args.minimum_block_period is not None:
                transfer.min_block_period = int(args.minimum_block_period) / 1000
            LOGGER.debug("Switch %s: server says wait %d s for data", self._switch.ieee, delay)
            self._attempts = 0
            self._schedule(float(delay), self._request_block)
            return None
        name = str(getattr(status, "name", status))
        LOGGER.info(
            "Switch %s: the OTA server ended the download with %s at offset %d",
            self._switch.ieee,
            name,
            len(transfer.data),
        )
        self._stop(OtaResult("server_abort", transfer.offer.file_version, f"Image Block Response {name}"))
        return None

    def _upgrade_end_response(self, args: Any, tsn: int, broadcast: bool) -> Status | None:
        transfer = self._transfer
        if self.phase not in (Phase.ENDING, Phase.WAITING) or transfer is None:
            return None  # e.g. zigpy's answer to INVALID_IMAGE or ABORT: nothing to apply
        offer = transfer.offer
        if (
            args.manufacturer_code not in (offer.manufacturer_code, WILDCARD_16)
            or args.image_type not in (offer.image_type, WILDCARD_16)
            or args.file_version not in (offer.file_version, WILDCARD_32)
        ):
            return None
        self._cancel_timer()
        upgrade_time = int(args.upgrade_time)
        if upgrade_time == UPGRADE_LATER:
            self.phase = Phase.WAITING
            LOGGER.info(
                "Switch %s: OTA image %d waits for the server's go", self._switch.ieee, offer.file_version
            )
            return None
        delay = max(0, upgrade_time - int(args.current_time))
        self.phase = Phase.COUNTING_DOWN
        self._schedule(delay + self.settings.reboot_delay, self._reboot)
        return None

    # --- the client's own requests ----------------------------------------------------------------

    def _start_query(self) -> None:
        self.phase = Phase.QUERYING
        self._transfer = None
        self._attempts = 0
        self._schedule(self.settings.query_delay, self._send_query)

    def _send_query(self) -> None:
        hardware = self.settings.hardware_version
        command = _SERVER.query_next_image.schema(
            field_control=Ota.QueryNextImageCommand.FieldControl(0 if hardware is None else 1),
            manufacturer_code=LUMI_MANUFACTURER_CODE,
            image_type=OTA_IMAGE_TYPE,
            current_file_version=self._switch.firmware_version,
            hardware_version=hardware,
        )
        self._send_request(_SERVER.query_next_image.id, command, self._send_query)

    def _request_block(self) -> None:
        transfer = self._transfer
        assert transfer is not None
        offer = transfer.offer
        offset = len(transfer.data)
        command = _SERVER.image_block.schema(
            field_control=Ota.ImageBlockCommand.FieldControl(0),
            manufacturer_code=offer.manufacturer_code,
            image_type=offer.image_type,
            file_version=offer.file_version,
            file_offset=offset,
            maximum_data_size=min(self.settings.max_data_size, offer.image_size - offset),
        )
        self.block_requests += 1
        self._send_request(_SERVER.image_block.id, command, self._request_block)

    def _send_upgrade_end(self, status: Status) -> None:
        transfer = self._transfer
        assert transfer is not None
        offer = transfer.offer
        command = _SERVER.upgrade_end.schema(
            status=status,
            manufacturer_code=offer.manufacturer_code,
            image_type=offer.image_type,
            file_version=offer.file_version,
        )
        if status == Status.SUCCESS:
            self._send_request(_SERVER.upgrade_end.id, command, lambda: self._send_upgrade_end(status))
        else:
            self._emit(_SERVER.upgrade_end.id, command)

    def _send_request(self, command_id: int, command: t.Struct, resend: Callable[[], None]) -> None:
        """Send a request that expects an answer; resend it on timeout, then give up."""
        self._pending_tsn = self._emit(command_id, command)
        self._attempts += 1
        self._timer = self._link_call_later(self.settings.response_timeout, lambda: self._timed_out(resend))

    def _timed_out(self, resend: Callable[[], None]) -> None:
        self._timer = None
        if self._attempts <= self.settings.retries:
            LOGGER.debug(
                "Switch %s: OTA request unanswered (%s), sending it again",
                self._switch.ieee,
                self.phase.value,
            )
            resend()
            return
        if self.phase == Phase.QUERYING:
            self._stop(OtaResult("no_response", None, "Query Next Image Request unanswered"))
        elif self.phase == Phase.DOWNLOADING:
            LOGGER.info(
                "Switch %s: OTA server stopped answering at offset %d: giving up",
                self._switch.ieee,
                self.file_offset,
            )
            self._send_upgrade_end(Status.ABORT)
            self._stop(OtaResult("aborted", self._file_version, "Image Block Request unanswered"))
        elif self.phase == Phase.ENDING:
            LOGGER.info(
                "Switch %s: no Upgrade End Response: applying the image (upgrade timeout policy 0)",
                self._switch.ieee,
            )
            self.phase = Phase.COUNTING_DOWN
            self._schedule(self.settings.reboot_delay, self._reboot)

    def _emit(self, command_id: int, command: t.Struct) -> int:
        """Send one client→server OTA command now; returns its TSN."""
        tsn = self._switch.next_tsn()
        # ZCL header: cluster-specific, client to server, default response disabled, no
        # manufacturer code (written out: zigpy's header classes cost more than the rest of a block).
        header = bytes([CLIENT_COMMAND_FRAME_CONTROL, tsn, command_id])
        frame = ApsFrame(
            SWITCH_ENDPOINT, self._server_endpoint, HA_PROFILE, OTA_CLUSTER, header + command.serialize()
        )
        self._switch.send_own([frame])
        return tsn

    # --- the end of a download ------------------------------------------------------------------

    def _image_complete(self) -> None:
        transfer = self._transfer
        assert transfer is not None
        problem = image_problem(bytes(transfer.data), transfer.offer, self._switch.firmware_version)
        if problem is None and self._fault is not None and self._fault.fault == OtaFault.INVALID_IMAGE:
            self._fault = None
            problem = "simulated fault: the image failed the check"
        if problem is not None:
            self._refuse(problem)
            return
        LOGGER.info(
            "Switch %s: OTA image version %d received and checked",
            self._switch.ieee,
            transfer.offer.file_version,
        )
        self.phase = Phase.ENDING
        self._attempts = 0
        self._send_upgrade_end(Status.SUCCESS)

    def _refuse(self, problem: str) -> None:
        """Upgrade End Request INVALID_IMAGE; the old firmware stays."""
        LOGGER.warning("Switch %s rejects the OTA image: %s", self._switch.ieee, problem)
        self._send_upgrade_end(Status.INVALID_IMAGE)
        self._stop(OtaResult("invalid_image", self._file_version, problem))

    def _offer_problem(self, offer: ImageOffer) -> str | None:
        if offer.manufacturer_code != LUMI_MANUFACTURER_CODE:
            return f"manufacturer code 0x{offer.manufacturer_code:04X} offered, the switch is 0x115F"
        if offer.image_type != OTA_IMAGE_TYPE:
            return f"image type 0x{offer.image_type:04X} offered, the switch is 0x{OTA_IMAGE_TYPE:04X}"
        if offer.file_version <= self._switch.firmware_version:
            return (
                f"file version {offer.file_version} offered, not newer than {self._switch.firmware_version}"
            )
        if not MIN_HEADER_LENGTH <= offer.image_size <= MAX_IMAGE_SIZE:
            return (
                f"image size {offer.image_size} offered, it must be {MIN_HEADER_LENGTH} to {MAX_IMAGE_SIZE}"
            )
        return None

    def _reboot(self) -> None:
        transfer = self._transfer
        assert transfer is not None
        version = transfer.offer.file_version
        old = self._switch.firmware_version
        self._timer = None
        self._transfer = None
        self.phase = Phase.IDLE
        self.last_result = OtaResult("upgraded", version, f"from version {old}")
        LOGGER.info("Switch %s reboots into firmware version %d (was %d)", self._switch.ieee, version, old)
        self._switch.firmware_version = version
        self._switch.send_own(self._switch.power_cycle())

    # --- faults ------------------------------------------------------------------------------------

    def _fault_due(self, received: int) -> bool:
        """Act on an injected fault the download just reached; True when the download ended."""
        fault = self._fault
        if fault is None or fault.fault == OtaFault.INVALID_IMAGE or received < fault.at_offset:
            return False
        self._fault = None
        LOGGER.info(
            "Switch %s: simulated OTA fault %s at offset %d", self._switch.ieee, fault.fault.value, received
        )
        if fault.fault == OtaFault.SILENT:
            self._switch.responsive = False  # it goes on requesting, unheard, until it gives up
            return False
        if fault.fault == OtaFault.ABORT:
            self._send_upgrade_end(Status.ABORT)
            self._stop(OtaResult("aborted", self._file_version, f"simulated fault at offset {received}"))
            return True
        # POWER_CYCLE: the switch's frames after the reboot go out on the next loop iteration.
        version = self._file_version
        frames = self._switch.power_cycle()  # power_lost() drops the transfer
        self.last_result = OtaResult("power_cycle", version, f"simulated fault at offset {received}")
        self._link_call_later(0.0, lambda: self._switch.send_own(frames))
        return True

    # --- helpers -----------------------------------------------------------------------------------

    @property
    def _file_version(self) -> int | None:
        return None if self._transfer is None else self._transfer.offer.file_version

    def _stop(self, result: OtaResult) -> None:
        self._cancel_timer()
        self._transfer = None
        self._pending_tsn = None
        self.phase = Phase.IDLE
        self.last_result = result

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        self._timer = self._link_call_later(delay, callback)

    def _link_call_later(self, delay: float, callback: Callable[[], None]) -> Timer | None:
        if self._link is None:
            return None
        return self._link.call_later(delay, callback)


def image_problem(data: bytes, offer: ImageOffer | None, current_version: int) -> str | None:
    """Why the switch would refuse an OTA file, or None when it takes it.

    `offer` is what Query Next Image Response announced (None: check the file on its own).
    """
    size = len(data)
    if size < MIN_HEADER_LENGTH:
        return f"{size} bytes is shorter than an OTA header"
    magic, header_version, header_length, field_control = (
        int.from_bytes(data[0:4], "little"),
        int.from_bytes(data[4:6], "little"),
        int.from_bytes(data[6:8], "little"),
        int.from_bytes(data[8:10], "little"),
    )
    manufacturer = int.from_bytes(data[10:12], "little")
    image_type = int.from_bytes(data[12:14], "little")
    file_version = int.from_bytes(data[14:18], "little")
    total_size = int.from_bytes(data[52:56], "little")
    if magic != OTA_MAGIC:
        return f"bad magic 0x{magic:08X} (an OTA file starts with 0x{OTA_MAGIC:08X})"
    if header_version != OTA_HEADER_VERSION:
        return f"header version 0x{header_version:04X} is not 0x{OTA_HEADER_VERSION:04X}"
    optional = (1 if field_control & 0x01 else 0) + (8 if field_control & 0x02 else 0)
    optional += 4 if field_control & 0x04 else 0
    if not MIN_HEADER_LENGTH + optional <= header_length <= size:
        return (
            f"header length {header_length} does not fit the field control 0x{field_control:04X} and the file"
        )
    if manufacturer != LUMI_MANUFACTURER_CODE:
        return f"manufacturer code 0x{manufacturer:04X} is not the switch's 0x{LUMI_MANUFACTURER_CODE:04X}"
    if image_type != OTA_IMAGE_TYPE:
        return f"image type 0x{image_type:04X} is not the switch's 0x{OTA_IMAGE_TYPE:04X}"
    if offer is not None and file_version != offer.file_version:
        return f"file version {file_version} is not the offered {offer.file_version}"
    if file_version <= current_version:
        return f"file version {file_version} is not newer than the running {current_version}"
    if total_size != size or (offer is not None and total_size != offer.image_size):
        return f"total image size {total_size} in the header, {size} bytes received"
    return _sub_element_problem(data, header_length)


def _sub_element_problem(data: bytes, start: int) -> str | None:
    position = start
    tags: list[int] = []
    while position < len(data):
        if position + 6 > len(data):
            return f"a truncated sub-element header at offset {position}"
        tag = int.from_bytes(data[position : position + 2], "little")
        length = int.from_bytes(data[position + 2 : position + 6], "little")
        end = position + 6 + length
        if end > len(data):
            return f"sub-element 0x{tag:04X} at offset {position} runs {end - len(data)} bytes past the end"
        if tag == TAG_INTEGRITY_CODE:
            if end != len(data):
                return "the Image Integrity Code sub-element is not the last"
            if data[position + 6 : end] != bytes(aes_mmo_hash(data[:position])):
                return "the Image Integrity Code does not match the image (corrupt)"
        tags.append(tag)
        position = end
    if TAG_UPGRADE_IMAGE not in tags:
        return "no Upgrade Image sub-element (tag 0x0000)"
    return None
