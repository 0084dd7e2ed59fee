"""The simulated switch's OTA Upgrade client (0x0019).

Frame level: a scripted server in this file answers the switch's requests with images the tests
build, on a fake clock (no event loop timers, no waiting). Then once through the real zigpy stack
on the virtual adapter: zigpy's own OTA server (`device.update_firmware`) upgrades a switch from
24 to 29 with an image of the real file's size.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zigpy.device
import zigpy.types as t
import zigpy.zdo.types as zdo_t
from zigpy.ota import OtaImageWithMetadata
from zigpy.ota.image import parse_ota_image
from zigpy.ota.providers import BaseOtaImageMetadata
from zigpy.util import aes_mmo_hash
from zigpy.zcl import ClusterType, foundation
from zigpy.zcl.clusters.general import Basic, Ota

from tests.support import seed_virtual_switch
from z2m_qbkg40lm.devices.qbkg40lm import ENDPOINT_PATCHES, LUMI_CLUSTER
from z2m_qbkg40lm.sim.frames import ApsFrame
from z2m_qbkg40lm.sim.ota_client import OtaFault, Phase, image_problem
from z2m_qbkg40lm.sim.switch import SimulatedSwitch
from z2m_qbkg40lm.sim.virtual_radio import SimulationError, VirtualControllerApplication
from z2m_qbkg40lm.zigbee.lumi_cluster import make_device_resolver, register_manufacturer_clusters

IEEE = t.EUI64.convert("54:ef:44:10:00:00:00:01")
NWK = 0x1234
HA = 0x0104
OTA = 0x0019
LUMI = 0x115F
IMAGE_TYPE = 0x1888
HEADER_STRING = b"ROUTERX-----JN5180--ENCRYPTED000"
REAL_SIZE = 289_744
Status = foundation.Status
SERVER_COMMANDS = {command.id: command for command in Ota.ServerCommandDefs}

register_manufacturer_clusters([LUMI_CLUSTER])


# --- images ------------------------------------------------------------------------------------------


def build_image(
    version: int = 29,
    size: int = 4096,
    *,
    manufacturer: int = LUMI,
    image_type: int = IMAGE_TYPE,
    integrity: bool = True,
    seed: int = 1,
) -> bytes:
    """A ZCL OTA file: 56-byte header, an Upgrade Image element, optionally an integrity code."""
    tail = 6 + 16 if integrity else 0
    payload = random.Random(seed).randbytes(size - 56 - 6 - tail)
    header = b"".join(
        [
            (0x0BEEF11E).to_bytes(4, "little"),
            (0x0100).to_bytes(2, "little"),
            (56).to_bytes(2, "little"),
            (0).to_bytes(2, "little"),  # field control: no optional fields
            manufacturer.to_bytes(2, "little"),
            image_type.to_bytes(2, "little"),
            version.to_bytes(4, "little"),
            (2).to_bytes(2, "little"),  # ZigBee PRO
            HEADER_STRING,
            size.to_bytes(4, "little"),
        ]
    )
    image = header + (0).to_bytes(2, "little") + len(payload).to_bytes(4, "little") + payload
    if integrity:
        image += (3).to_bytes(2, "little") + (16).to_bytes(4, "little") + bytes(aes_mmo_hash(image))
    assert len(image) == size
    return image


def test_built_images_pass_the_switch_checks_and_zigpy_parses_them() -> None:
    for integrity in (True, False):
        image = build_image(integrity=integrity)
        assert image_problem(image, None, 24) is None
        parsed, rest = parse_ota_image(image)
        assert rest == b""
        assert (parsed.header.manufacturer_id, parsed.header.image_type) == (LUMI, IMAGE_TYPE)
        assert parsed.serialize() == image


def flipped(image: bytes, offset: int) -> bytes:
    return image[:offset] + bytes([image[offset] ^ 0xFF]) + image[offset + 1 :]


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (flipped(build_image(), 1000), "Integrity Code does not match"),
        (flipped(build_image(), 0), "bad magic"),
        (build_image()[:-1], "total image size 4096"),
        (build_image(image_type=0x1908), "image type 0x1908"),
        (build_image(manufacturer=0x1037), "manufacturer code 0x1037"),
        (build_image(version=24), "not newer than the running 24"),
        (build_image()[:56] + b"\x00\x00\xff\xff\xff\x00" + build_image()[62:], "runs"),
    ],
    ids=["payload", "magic", "size", "image-type", "manufacturer", "version", "sub-element"],
)
def test_image_checks_name_the_problem(image: bytes, reason: str) -> None:
    problem = image_problem(image, None, 24)
    assert problem is not None and reason in problem


# --- a scripted server on a fake clock ---------------------------------------------------------------


class _FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLink:
    """The switch's link on a fake clock: frames it sends are collected, timers run on `advance()`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sent: list[ApsFrame] = []
        self._queue: list[tuple[float, int, _FakeTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def send(self, frames: list[ApsFrame]) -> None:
        self.sent.extend(frames)

    def call_later(self, delay: float, callback: Callable[[], None]) -> _FakeTimer:
        timer = _FakeTimer()
        heapq.heappush(self._queue, (self.now + delay, next(self._order), timer, callback))
        return timer

    def next_due(self) -> float | None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0][0] if self._queue else None

    def run_next(self) -> bool:
        """Move the clock to the next timer and run it; False when none is pending."""
        due = self.next_due()
        if due is None:
            return False
        when, _order, _timer, callback = heapq.heappop(self._queue)
        self.now = max(self.now, when)
        callback()
        return True

    def advance(self, seconds: float) -> None:
        """Run every timer due in the next `seconds`."""
        end = self.now + seconds
        while (due := self.next_due()) is not None and due <= end:
            self.run_next()
        self.now = end

    def take(self) -> list[ApsFrame]:
        frames, self.sent = self.sent, []
        return frames


@dataclass
class Request:
    """One OTA frame from the switch, decoded."""

    frame: ApsFrame
    hdr: foundation.ZCLHeader
    args: Any
    at: float

    @property
    def name(self) -> str:
        return SERVER_COMMANDS[self.hdr.command_id].name if self.is_ota else "other"

    @property
    def is_ota(self) -> bool:
        return self.frame.cluster_id == OTA and not self.hdr.frame_control.is_general


def decode(frame: ApsFrame, now: float) -> Request:
    hdr, body = foundation.ZCLHeader.deserialize(frame.payload)
    args = None
    if frame.cluster_id == OTA and not hdr.frame_control.is_general:
        schema = SERVER_COMMANDS[hdr.command_id].schema
        args, _ = schema.deserialize(body)
    return Request(frame, hdr, args, now)


def server_frame(command: Any, tsn: int, **fields: Any) -> ApsFrame:
    """A cluster command from the OTA server (coordinator endpoint 1) to the switch's client."""
    hdr = foundation.ZCLHeader(
        frame_control=foundation.FrameControl(
            frame_type=foundation.FrameType.CLUSTER_COMMAND,
            is_manufacturer_specific=False,
            direction=foundation.Direction.Server_to_Client,
            disable_default_response=1,
            reserved=0,
        ),
        manufacturer=None,
        tsn=tsn,
        command_id=command.id,
    )
    return ApsFrame(1, 1, HA, OTA, hdr.serialize() + command.schema(**fields).serialize())


CLIENT = Ota.ClientCommandDefs


@dataclass
class Server:
    """A scripted OTA server: offers `image`, serves blocks of at most `block` bytes, ends like zigpy."""

    switch: SimulatedSwitch
    link: FakeLink
    image: bytes
    block: int = 50
    offered_type: int | None = None
    """Image type to put in Query Next Image Response (None: the image's own)."""
    silent_for: set[int] = field(default_factory=set)
    """Block request numbers (1-based) left unanswered."""
    wait_at: dict[int, tuple[int, int]] = field(default_factory=dict)
    """offset -> (seconds to wait, minimum block period ms): answered WAIT_FOR_DATA once."""
    abort_at: int | None = None
    upgrade_in: int = 0
    requests: list[Request] = field(default_factory=list)
    answers: list[ApsFrame] = field(default_factory=list)
    """What the switch answered the server's frames with (Default Responses)."""

    def header_field(self, start: int, length: int) -> int:
        return int.from_bytes(self.image[start : start + length], "little")

    def notify(self, *, broadcast: bool = False, jitter: int = 100) -> None:
        frame = server_frame(CLIENT.image_notify, 0x40, payload_type=0, query_jitter=jitter)
        self.answers += self.switch.handle(frame, broadcast=broadcast)

    def run(self, limit: float = 10_000.0) -> None:
        """Answer every request until the switch stops acting or `limit` fake seconds passed."""
        while self.link.now <= limit:
            for frame in self.link.take():
                request = decode(frame, self.link.now)
                self.requests.append(request)
                reply = self.answer(request)
                if reply is not None:
                    self.answers += self.switch.handle(reply)
            if self.link.sent:
                continue
            due = self.link.next_due()
            if due is None or due > limit:
                return
            self.link.run_next()

    def answer(self, request: Request) -> ApsFrame | None:
        if not request.is_ota:
            return None
        args, tsn = request.args, request.hdr.tsn
        version = self.header_field(14, 4)
        image_type = self.header_field(12, 2)
        if request.name == "query_next_image":
            return server_frame(
                CLIENT.query_next_image_response,
                tsn,
                status=Status.SUCCESS,
                manufacturer_code=self.header_field(10, 2),
                image_type=self.offered_type if self.offered_type is not None else image_type,
                file_version=version,
                image_size=len(self.image),
            )
        if request.name == "image_block":
            number = sum(1 for each in self.requests if each.name == "image_block")
            if number in self.silent_for:
                return None
            offset = int(args.file_offset)
            if offset in self.wait_at:
                seconds, period = self.wait_at.pop(offset)
                return server_frame(
                    CLIENT.image_block_response,
                    tsn,
                    status=Status.WAIT_FOR_DATA,
                    current_time=1000,
                    request_time=1000 + seconds,
                    minimum_block_period=period,
                )
            if self.abort_at is not None and offset >= self.abort_at:
                return server_frame(CLIENT.image_block_response, tsn, status=Status.ABORT)
            return server_frame(
                CLIENT.image_block_response,
                tsn,
                status=Status.SUCCESS,
                manufacturer_code=args.manufacturer_code,
                image_type=args.image_type,
                file_version=args.file_version,
                file_offset=offset,
                image_data=self.image[offset : offset + min(self.block, int(args.maximum_data_size))],
            )
        if request.name == "upgrade_end":
            # zigpy answers every Upgrade End Request, whatever its status.
            return server_frame(
                CLIENT.upgrade_end_response,
                tsn,
                manufacturer_code=args.manufacturer_code,
                image_type=args.image_type,
                file_version=args.file_version,
                current_time=0,
                upgrade_time=self.upgrade_in,
            )
        return None

    def named(self, name: str) -> list[Request]:
        return [request for request in self.requests if request.name == name]

    def upgrade_end_statuses(self) -> list[Status]:
        return [request.args.status for request in self.named("upgrade_end")]


def make(version: int = 24, **kwargs: Any) -> tuple[SimulatedSwitch, FakeLink]:
    switch = SimulatedSwitch(IEEE, NWK, firmware_version=version, **kwargs)
    link = FakeLink()
    switch.attach(link)
    return switch, link


def read(switch: SimulatedSwitch, cluster: int, *attributes: int) -> dict[int, Any]:
    """Read attributes as zigpy does (OTA: the client side, direction server->client)."""
    frame_control = "18" if cluster == OTA else "00"
    body = "".join(attribute.to_bytes(2, "little").hex() for attribute in attributes)
    [answer] = switch.handle(ApsFrame(1, 1, HA, cluster, bytes.fromhex(f"{frame_control}7700{body}")))
    _hdr, rest = foundation.ZCLHeader.deserialize(answer.payload)
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp].schema
    response, _ = schema.deserialize(rest)
    return {
        int(record.attrid): record.value.value if record.status == Status.SUCCESS else record.status
        for record in response.status_records
    }


# --- attributes ----------------------------------------------------------------------------------------


def test_ota_client_attributes_of_a_switch_on_version_24() -> None:
    switch, _link = make(24)
    values = read(switch, OTA, 0x0000, 0x0001, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0007, 0x0008, 0x0009)
    assert values == {
        0x0000: t.EUI64.convert("ff:ff:ff:ff:ff:ff:ff:ff"),
        0x0001: 0xFFFFFFFF,
        0x0002: 24,
        0x0003: 2,
        0x0004: 0xFFFFFFFF,
        0x0005: 0xFFFF,
        0x0006: 0,
        0x0007: LUMI,
        0x0008: IMAGE_TYPE,
        0x0009: 0,
    }
    assert read(switch, 0x0000, 0x0001, 0x4000) == {0x0001: 24, 0x4000: "0.0.0_0024"}


def test_a_switch_on_no_radio_ignores_image_notify() -> None:
    switch = SimulatedSwitch(IEEE, NWK, firmware_version=24)
    frame = server_frame(CLIENT.image_notify, 0x41, payload_type=0, query_jitter=100)
    assert switch.handle(frame) == []
    assert switch.ota.phase == Phase.IDLE
    with pytest.raises(ValueError, match="on no radio"):
        switch.ota.query()


# --- the whole upgrade ---------------------------------------------------------------------------------


def test_image_notify_to_reboot_into_the_new_version() -> None:
    switch, link = make(24, relay=True, power_outage_memory=True)
    image = build_image(29, 4096)
    server = Server(switch, link, image)
    server.notify()
    assert link.sent == []  # the query follows after query_delay
    server.run()

    [query] = server.named("query_next_image")
    assert query.at == pytest.approx(1.0)
    assert query.frame.src_endpoint == 1 and query.frame.dst_endpoint == 1
    assert query.hdr.frame_control.direction == foundation.Direction.Client_to_Server
    assert (query.args.field_control, query.args.hardware_version) == (1, 1)
    assert (query.args.manufacturer_code, query.args.image_type, query.args.current_file_version) == (
        LUMI,
        IMAGE_TYPE,
        24,
    )
    blocks = server.named("image_block")
    assert [request.args.file_offset for request in blocks] == list(range(0, 4096, 50))
    assert {request.args.maximum_data_size for request in blocks[:-1]} == {64}
    assert blocks[-1].args.maximum_data_size == 4096 % 50
    assert len({request.hdr.tsn for request in blocks}) > 1
    assert server.upgrade_end_statuses() == [Status.SUCCESS]
    assert server.answers == []  # nothing the server sent needed a Default Response

    # The reboot: new version everywhere, announced, the relay as power-outage memory says.
    announce = [request for request in server.requests if request.frame.is_zdo]
    assert [request.frame.cluster_id for request in announce] == [zdo_t.ZDOCmd.Device_annce]
    assert switch.firmware_version == 29
    assert switch.relay is True and switch.power_outages == 1
    assert read(switch, OTA, 0x0002, 0x0006, 0x0001) == {0x0002: 29, 0x0006: 0, 0x0001: 0xFFFFFFFF}
    assert read(switch, 0x0000, 0x0001, 0x4000) == {0x0001: 29, 0x4000: "0.0.0_0029"}
    assert switch.ota.last_result is not None and switch.ota.last_result.outcome == "upgraded"
    restored = SimulatedSwitch.from_dict(switch.to_dict())
    assert restored.firmware_version == 29 and restored.sw_build_id == "0.0.0_0029"


def test_attributes_during_the_download() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 4096), silent_for={3})
    server.notify()
    server.run(limit=2.0)  # two blocks in, the third unanswered
    assert switch.ota.phase == Phase.DOWNLOADING
    assert read(switch, OTA, 0x0001, 0x0004, 0x0005, 0x0006) == {
        0x0001: 100,
        0x0004: 29,
        0x0005: 2,
        0x0006: 1,  # download in progress
    }
    assert switch.ota.status()["offset"] == 100


def test_a_later_upgrade_time_counts_down() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 1000), upgrade_in=30)
    server.notify()
    server.run(limit=5.0)
    assert switch.ota.phase == Phase.COUNTING_DOWN
    assert read(switch, OTA, 0x0006) == {0x0006: 4}  # count down
    assert switch.firmware_version == 24
    server.run()
    assert switch.firmware_version == 29
    [annce] = [request for request in server.requests if request.frame.is_zdo]
    assert annce.at == pytest.approx(server.named("upgrade_end")[0].at + 30)


def test_upgrade_time_ffffffff_waits_for_the_server() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 1000), upgrade_in=0xFFFFFFFF)
    server.notify()
    server.run()
    assert switch.ota.phase == Phase.WAITING
    assert read(switch, OTA, 0x0006) == {0x0006: 3}  # waiting to upgrade
    go = server_frame(
        CLIENT.upgrade_end_response,
        0x50,
        manufacturer_code=0xFFFF,
        image_type=0xFFFF,
        file_version=0xFFFFFFFF,
        current_time=0,
        upgrade_time=0,
    )
    assert switch.handle(go) == []
    server.run()
    assert switch.firmware_version == 29


def test_unanswered_upgrade_end_applies_the_image_after_the_retries() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 200))
    server.answer = _no_upgrade_end_response(server.answer)  # type: ignore[method-assign]
    server.notify()
    server.run()
    ends = server.named("upgrade_end")
    assert [request.args.status for request in ends] == [Status.SUCCESS] * 4
    assert [request.at - ends[0].at for request in ends] == [0, 5, 10, 15]
    assert switch.firmware_version == 29


def _no_upgrade_end_response(answer: Callable[[Request], ApsFrame | None]) -> Callable[[Request], Any]:
    def wrapped(request: Request) -> ApsFrame | None:
        return None if request.name == "upgrade_end" else answer(request)

    return wrapped


# --- images the switch refuses -------------------------------------------------------------------------


def test_a_corrupt_image_is_refused_and_the_old_firmware_stays() -> None:
    switch, link = make(24)
    server = Server(switch, link, flipped(build_image(29, 4096), 2000))
    server.notify()
    server.run()
    assert len(server.named("image_block")) == 82  # the whole image came in
    assert server.upgrade_end_statuses() == [Status.INVALID_IMAGE]
    # zigpy's Upgrade End Response to that (upgrade now) is ignored: no reboot.
    assert not [request for request in server.requests if request.frame.is_zdo]
    assert switch.firmware_version == 24
    assert switch.ota.phase == Phase.IDLE
    result = switch.ota.last_result
    assert result is not None and result.outcome == "invalid_image" and "Integrity" in result.detail
    assert read(switch, OTA, 0x0002, 0x0006) == {0x0002: 24, 0x0006: 0}


def test_an_image_for_another_device_is_refused_after_the_download() -> None:
    switch, link = make(24)
    # The server claims the switch's image type, the file is the 2-gang's (0x1908).
    server = Server(switch, link, build_image(29, 1000, image_type=0x1908), offered_type=IMAGE_TYPE)
    server.notify()
    server.run()
    assert server.upgrade_end_statuses() == [Status.INVALID_IMAGE]
    assert switch.firmware_version == 24
    assert switch.ota.last_result is not None and "image type 0x1908" in switch.ota.last_result.detail


def test_an_offer_for_another_image_type_is_refused_at_once() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 1000, image_type=0x1908))
    server.notify()
    server.run()
    assert server.named("image_block") == []
    [end] = server.named("upgrade_end")
    assert (end.args.status, end.args.image_type, end.args.file_version) == (Status.INVALID_IMAGE, 0x1908, 29)
    assert switch.firmware_version == 24


def test_an_older_image_is_refused_at_once() -> None:
    switch, link = make(29)
    server = Server(switch, link, build_image(24, 1000))
    server.notify()
    server.run()
    assert server.named("image_block") == []
    assert server.upgrade_end_statuses() == [Status.INVALID_IMAGE]
    assert switch.firmware_version == 29


def test_no_image_available_ends_the_query() -> None:
    switch, link = make(24)
    server = Server(switch, link, b"")
    server.answer = lambda request: server_frame(  # type: ignore[method-assign]
        CLIENT.query_next_image_response, request.hdr.tsn, status=Status.NO_IMAGE_AVAILABLE
    )
    server.notify()
    server.run()
    assert len(server.named("query_next_image")) == 1
    assert switch.ota.phase == Phase.IDLE
    assert switch.ota.last_result is not None and switch.ota.last_result.outcome == "no_image"


# --- the server's statuses and silences ------------------------------------------------------------------


def test_wait_for_data_is_honoured() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 1000), wait_at={500: (7, 250)})
    server.notify()
    server.run()
    blocks = server.named("image_block")
    at_500 = [request for request in blocks if request.args.file_offset == 500]
    assert len(at_500) == 2
    assert at_500[1].at - at_500[0].at == pytest.approx(7)
    later = [request.at for request in blocks if request.args.file_offset > 500]
    # After WAIT_FOR_DATA the server's minimum block period (250 ms) spaces the requests.
    assert [b - a for a, b in itertools.pairwise([at_500[1].at, *later])] == pytest.approx(
        [0.25] * len(later)
    )
    assert switch.firmware_version == 29


def test_abort_from_the_server_stops_the_download() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 4096), abort_at=1000)
    server.notify()
    server.run()
    assert max(request.args.file_offset for request in server.named("image_block")) == 1000
    assert server.upgrade_end_statuses() == []  # ABORT needs no Upgrade End Request
    assert switch.ota.phase == Phase.IDLE
    assert switch.ota.last_result is not None and switch.ota.last_result.outcome == "server_abort"
    assert switch.firmware_version == 24


def test_an_unanswered_block_request_is_resent_then_the_switch_gives_up() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 1000), silent_for={3})
    server.notify()
    server.run()
    assert switch.firmware_version == 29  # one resend and it went on
    resent = [request for request in server.named("image_block") if request.args.file_offset == 100]
    assert len(resent) == 2 and resent[1].at - resent[0].at == pytest.approx(5)
    assert resent[0].hdr.tsn != resent[1].hdr.tsn

    switch, link = make(24)
    server = Server(switch, link, build_image(29, 1000), silent_for=set(range(3, 100)))
    server.notify()
    server.run()
    stuck = [request for request in server.named("image_block") if request.args.file_offset == 100]
    assert [request.at - stuck[0].at for request in stuck] == [0, 5, 10, 15]
    [end] = server.named("upgrade_end")
    assert (end.args.status, end.at - stuck[-1].at) == (Status.ABORT, 5)
    assert switch.firmware_version == 24
    assert switch.ota.last_result is not None and switch.ota.last_result.outcome == "aborted"


def test_the_block_delay_spaces_requests() -> None:
    switch, link = make(24)
    switch.ota.configure(block_delay=0.15, max_data_size=40)
    server = Server(switch, link, build_image(29, 400))
    server.notify()
    server.run()
    blocks = server.named("image_block")
    assert [request.args.file_offset for request in blocks] == list(range(0, 400, 40))
    assert blocks[-1].at - blocks[0].at == pytest.approx(0.15 * 9)
    assert read(switch, OTA, 0x0009) == {0x0009: 150}


# --- the switch's own interruptions ------------------------------------------------------------------------


def test_a_power_cycle_mid_transfer_loses_the_image() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 4096), silent_for={11})
    server.notify()
    server.run(limit=2.0)  # ten blocks in, the eleventh pending
    assert switch.ota.file_offset == 500
    frames = switch.power_cycle()
    assert zdo_t.ZDOCmd.Device_annce in [frame.cluster_id for frame in frames]
    server.run()
    assert max(request.args.file_offset for request in server.named("image_block")) == 500
    assert server.upgrade_end_statuses() == []
    assert switch.ota.phase == Phase.IDLE and switch.ota.file_offset == 0xFFFFFFFF
    assert switch.firmware_version == 24
    assert switch.ota.last_result is not None and switch.ota.last_result.outcome == "power_cycle"


def test_a_silent_switch_stops_talking_and_gives_up() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 4096), silent_for={11})
    server.notify()
    server.run(limit=2.0)
    switch.responsive = False
    server.run()
    assert max(request.args.file_offset for request in server.named("image_block")) == 500
    assert server.upgrade_end_statuses() == []  # its ABORT never left it either
    assert switch.ota.phase == Phase.IDLE
    assert switch.ota.last_result is not None and switch.ota.last_result.outcome == "aborted"
    switch.responsive = True
    assert read(switch, OTA, 0x0002, 0x0006) == {0x0002: 24, 0x0006: 0}


@pytest.mark.parametrize(
    ("fault", "outcome", "ends"),
    [
        (OtaFault.POWER_CYCLE, "power_cycle", []),
        (OtaFault.ABORT, "aborted", [Status.ABORT]),
        (OtaFault.INVALID_IMAGE, "invalid_image", [Status.INVALID_IMAGE]),
        (OtaFault.SILENT, "aborted", []),
    ],
)
def test_injected_faults(fault: OtaFault, outcome: str, ends: list[Status]) -> None:
    switch, link = make(24)
    switch.ota.inject_fault(fault, at_offset=1000)
    server = Server(switch, link, build_image(29, 2000))
    server.notify()
    server.run()
    assert server.upgrade_end_statuses() == ends
    assert switch.firmware_version == 24
    assert switch.ota.last_result is not None and switch.ota.last_result.outcome == outcome
    last = max(request.args.file_offset for request in server.named("image_block"))
    assert last == (1950 if fault == OtaFault.INVALID_IMAGE else 950)
    if fault == OtaFault.POWER_CYCLE:
        assert switch.power_outages == 1
        assert [request.frame.cluster_id for request in server.requests if request.frame.is_zdo] == [
            zdo_t.ZDOCmd.Device_annce
        ]
    assert switch.ota.status()["fault"] is None


def test_image_notify_filters_and_jitter() -> None:
    switch, link = make(24)
    server = Server(switch, link, build_image(29, 200))
    server.notify(broadcast=True, jitter=0)  # never this time
    foreign = server_frame(
        CLIENT.image_notify,
        0x42,
        payload_type=2,
        query_jitter=100,
        manufacturer_code=0x117C,
        image_type=0x1888,
    )
    assert switch.handle(foreign) == []
    link.advance(5)
    assert link.sent == []
    own = server_frame(
        CLIENT.image_notify,
        0x43,
        payload_type=3,
        query_jitter=100,
        manufacturer_code=LUMI,
        image_type=IMAGE_TYPE,
        new_file_version=29,
    )
    switch.handle(own)
    server.run()
    assert switch.firmware_version == 29


def test_a_broadcast_image_notify_on_endpoint_ff_reaches_the_client() -> None:
    switch, link = make(24)
    frame = server_frame(CLIENT.image_notify, 0x44, payload_type=0, query_jitter=100)
    broadcast = ApsFrame(1, 0xFF, HA, OTA, frame.payload)
    assert switch.handle(broadcast, broadcast=True) == []
    link.advance(1.0)
    [query] = [decode(frame, 0) for frame in link.take()]
    assert query.name == "query_next_image" and query.frame.dst_endpoint == 1


def test_settings_are_checked() -> None:
    switch, _link = make(24)
    with pytest.raises(ValueError, match="max_data_size"):
        switch.ota.configure(max_data_size=0)
    with pytest.raises(ValueError, match="unknown OTA setting"):
        switch.ota.configure(speed=3)
    assert switch.ota.configure(retries=1).retries == 1


# --- through zigpy, on the virtual adapter -------------------------------------------------------------


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[VirtualControllerApplication]:
    seed_virtual_switch(tmp_path, firmware_version=24)
    config = {
        "device": {"path": "virtual"},
        "database_path": str(tmp_path / "zigbee.db"),
        "ota": {"enabled": False},
        "topology_scan_enabled": False,
        "network": {"channel": 15},
        "virtual": {"state_file": str(tmp_path / "virtual_adapter.json")},
    }
    application: VirtualControllerApplication = await VirtualControllerApplication.new(
        config,
        auto_form=True,
        start_radio=False,
        device_resolver=make_device_resolver({"lumi.switch.b1nc01": ENDPOINT_PATCHES}),
    )
    initialized: asyncio.Future[zigpy.device.Device] = asyncio.get_running_loop().create_future()

    class Listener:
        def device_initialized(self, device: zigpy.device.Device) -> None:
            if device.ieee != application.state.node_info.ieee and not initialized.done():
                initialized.set_result(device)

    application.add_listener(Listener())
    await application.startup(auto_form=True)
    try:
        await asyncio.wait_for(initialized, 5)
        yield application
    finally:
        await application.shutdown()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def switch_text(app: VirtualControllerApplication) -> str:
    return "0x" + str(app.simulated_switches[0].ieee).replace(":", "")


async def idle_client(app: VirtualControllerApplication) -> dict[str, Any]:
    """The switch's OTA status once its client is idle (zigpy's interview made it query)."""
    for _ in range(300):
        state = await app.simulation.ota_status(switch_text(app))
        if state["phase"] == "idle" and state["last_result"] is not None:
            return state
        await asyncio.sleep(0.01)
    raise AssertionError(f"the OTA client stays busy: {state}")


async def test_zigpy_serves_a_corrupt_image_then_updates_the_switch_from_24_to_29(
    app: VirtualControllerApplication, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # zigpy waits 10 s after a successful update before reading the new version: not here.
    monkeypatch.setattr(zigpy.device, "AFTER_OTA_ATTR_READ_DELAY", 0)
    switch = app.simulated_switches[0]
    device = app.get_device(switch.ieee)
    ota = device.find_cluster(Ota.cluster_id, ClusterType.Client)
    assert ota.get("current_file_version") == 24  # zigpy's interview read it
    name = switch_text(app)
    # zigpy's interview ended with an Image Notify: the switch queried, nothing was offered.
    assert (await idle_client(app))["last_result"]["outcome"] == "no_image"
    await app.simulation.configure_ota(name, query_delay=0)

    # A corrupt file: zigpy serves it whole, the switch answers INVALID_IMAGE and stays on 24.
    corrupt, _rest = parse_ota_image(flipped(build_image(29, 3000), 1500))
    bad = OtaImageWithMetadata(metadata=BaseOtaImageMetadata(file_version=29), firmware=corrupt)
    assert await asyncio.wait_for(device.update_firmware(bad), 10) == Status.INVALID_IMAGE
    await asyncio.sleep(0.05)  # zigpy's Upgrade End Response arrives, and changes nothing
    assert switch.firmware_version == 24
    assert (await app.simulation.ota_status(name))["last_result"]["outcome"] == "invalid_image"

    data = build_image(29, REAL_SIZE)
    firmware, _rest = parse_ota_image(data)
    image = OtaImageWithMetadata(
        metadata=BaseOtaImageMetadata(file_version=29, manufacturer_id=LUMI, image_type=IMAGE_TYPE),
        firmware=firmware,
    )
    progress: list[int] = []
    started = time.monotonic()
    status = await asyncio.wait_for(
        device.update_firmware(
            image, progress_callback=lambda current, total, _pct: progress.append(current)
        ),
        20,
    )
    elapsed = time.monotonic() - started
    assert status == Status.SUCCESS
    assert progress[-1] == REAL_SIZE and len(progress) == -(-REAL_SIZE // 50)  # zigpy's 50-byte blocks
    assert switch.firmware_version == 29
    state = await app.simulation.ota_status(name)
    assert state["last_result"]["outcome"] == "upgraded"
    assert state["block_requests"] == len(progress)

    device = app.get_device(switch.ieee)  # zigpy re-interviewed it: maybe a new object
    basic = device.endpoints[1].in_clusters[Basic.cluster_id]
    ota = device.find_cluster(Ota.cluster_id, ClusterType.Client)
    assert (await basic.read_attributes(["sw_build_id", "app_version"], allow_cache=False))[0] == {
        "sw_build_id": "0.0.0_0029",
        "app_version": 29,
    }
    assert (await ota.read_attributes(["current_file_version", "image_upgrade_status"], allow_cache=False))[
        0
    ] == {"current_file_version": 29, "image_upgrade_status": Ota.ImageUpgradeStatus.Normal}
    # The adapter's state file keeps it for the next start.
    assert read_json(Path(app.config["virtual"]["state_file"]))["switches"][0]["firmware_version"] == 29
    with capsys.disabled():
        print(f"\nzigpy OTA of {REAL_SIZE} bytes in {len(progress)} blocks: {elapsed:.1f} s")


async def test_simulation_ota_requests(app: VirtualControllerApplication) -> None:
    name = switch_text(app)
    with pytest.raises(SimulationError, match="bad OTA fault 'melt'"):
        await app.simulation.inject_ota_fault(name, "melt")
    await app.simulation.inject_ota_fault(name, "power_cycle", at_offset=100)
    state = await app.simulation.ota_status(name)
    assert state["fault"] == {"fault": "power_cycle", "at_offset": 100}
    with pytest.raises(SimulationError, match="max_data_size"):
        await app.simulation.configure_ota(name, max_data_size=300)
    assert (await app.simulation.configure_ota(name, block_delay=0.1))["block_delay"] == 0.1
    # Asked to query, the switch gets zigpy's answer: nothing for it (no update running).
    await idle_client(app)
    packets: list[t.ZigbeePacket] = []
    deliver = app.packet_received

    def recording(packet: t.ZigbeePacket) -> None:
        packets.append(packet)
        deliver(packet)

    app.packet_received = recording  # type: ignore[method-assign]
    await app.simulation.ota_query(name)
    assert (await idle_client(app))["last_result"]["outcome"] == "no_image"
    [query] = [packet for packet in packets if packet.cluster_id == OTA]
    assert query.data.serialize()[:3] == bytes([0x11, query.tsn, 0x01])  # Query Next Image Request
    await app.simulation.set_responsive(name, False)
    with pytest.raises(SimulationError, match="silent"):
        await app.simulation.ota_query(name)


# --- through zigpy-znp, on the Z-Stack emulator ----------------------------------------------------------


async def test_zigpy_znp_updates_an_emulated_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_znp_emulator import running_stack

    monkeypatch.setattr(zigpy.device, "AFTER_OTA_ATTR_READ_DELAY", 0)
    size = 8_192
    async with running_stack(tmp_path) as stack:
        node = stack.emulator.chip.world.add_switch(pairing=False)
        node.switch.firmware_version = 24
        device = await stack.join_switch(node.ieee_text)
        assert device.find_cluster(Ota.cluster_id, ClusterType.Client).get("current_file_version") == 24
        node.switch.ota.configure(query_delay=0)
        firmware, _rest = parse_ota_image(build_image(29, size))
        image = OtaImageWithMetadata(metadata=BaseOtaImageMetadata(file_version=29), firmware=firmware)
        started = time.monotonic()
        assert await asyncio.wait_for(device.update_firmware(image), 30) == Status.SUCCESS
        elapsed = time.monotonic() - started
        assert node.switch.firmware_version == 29
        device = stack.app.get_device(node.switch.ieee)
        basic = device.endpoints[1].in_clusters[Basic.cluster_id]
        assert (await basic.read_attributes(["sw_build_id"], allow_cache=False))[0] == {
            "sw_build_id": "0.0.0_0029"
        }
    # The emulator's NVRAM file keeps the new version for its next start.
    [record] = read_json(tmp_path / "znp.json")["switches"]
    assert record["firmware_version"] == 29
    with capsys.disabled():
        print(f"\nzigpy-znp OTA of {size} bytes through the emulator: {elapsed:.1f} s")
