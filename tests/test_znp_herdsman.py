"""The Z-Stack emulator answers the MT frames zigbee-herdsman's zstack driver sends, as Z-Stack does.

Each test drives the emulated chip (`ZStackFirmware`, no socket) with the bytes herdsman puts on
the wire and checks the shapes of the answers herdsman parses: the ZDO-subsystem requests with
their direct callbacks, start-up from the application, the 24-byte network information, the
fixed-size group answer, AF_DATA_REQUEST, the join indications and the association look-up.
Where zigpy-znp knows a callback too, it must parse it (both clients share the emulator).
"""

# zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zigpy_znp.commands as c
import zigpy_znp.types as t
from zigpy_znp.frames import GeneralFrame, TransportFrame
from zigpy_znp.types.nvids import OsalNvIds

from z2m_qbkg40lm.sim.znp.firmware import ZStackFirmware
from z2m_qbkg40lm.sim.znp.firmware12 import ZStack12Firmware
from z2m_qbkg40lm.sim.znp.link import MtFramer

TIMEOUT = 5
SYS, AF, ZDO, UTIL = t.Subsystem.SYS, t.Subsystem.AF, t.Subsystem.ZDO, t.Subsystem.UTIL
NETWORK_KEY = bytes(range(1, 17))
PAN_ID = 0x1A62
EXT_PAN_ID = bytes.fromhex("DDDDDDDDDDDDDDDD")
CHANNEL = 15
ZNP_SUCCESS = 0x00
ZNP_FAILURE = 0x01
NV_ITEM_CREATED = 0x09


class RecordingLink:
    """The host end of the serial line: every MT frame the chip sends, in order."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[GeneralFrame] = asyncio.Queue()

    def send(self, frame: GeneralFrame) -> None:
        self.frames.put_nowait(frame)

    def close(self) -> None:
        pass


class Host:
    """Sends MT requests to the chip as herdsman does and waits for its answers."""

    def __init__(self, chip: ZStackFirmware) -> None:
        self.chip = chip
        self.link = RecordingLink()
        chip.attach(self.link)

    def send(self, kind: t.CommandType, subsystem: t.Subsystem, command_id: int, data: bytes = b"") -> None:
        header = t.CommandHeader(0, id=command_id, subsystem=subsystem, type=kind)
        self.chip.frame_received(GeneralFrame(header, t.Bytes(data)))

    async def expect(self, kind: t.CommandType, subsystem: t.Subsystem, command_id: int) -> bytes:
        """The payload of the next frame with this header; frames before it are skipped."""
        wanted = t.CommandHeader(0, id=command_id, subsystem=subsystem, type=kind)
        async with asyncio.timeout(TIMEOUT):
            while True:
                frame = await self.link.frames.get()
                if frame.header == wanted:
                    return bytes(frame.data)

    async def sreq(self, subsystem: t.Subsystem, command_id: int, data: bytes = b"") -> bytes:
        """Send a synchronous request; the SRSP's payload."""
        self.send(t.CommandType.SREQ, subsystem, command_id, data)
        return await self.expect(t.CommandType.SRSP, subsystem, command_id)

    async def areq_after(self, subsystem: t.Subsystem, command_id: int) -> bytes:
        return await self.expect(t.CommandType.AREQ, subsystem, command_id)

    async def nv_length(self, nv_id: int) -> int:
        return int.from_bytes(await self.sreq(SYS, 0x13, nv_id.to_bytes(2, "little")), "little")

    async def nv_write(self, nv_id: int, value: bytes) -> None:
        """Herdsman's `writeItem`: SYS_OSAL_NV_ITEM_INIT if the item is missing (which must answer
        "created"), then SYS_OSAL_NV_WRITE_EXT: id, offset u16, length u16, value."""
        if await self.nv_length(nv_id) == 0:
            create = (
                nv_id.to_bytes(2, "little") + len(value).to_bytes(2, "little") + bytes([len(value)]) + value
            )
            assert await self.sreq(SYS, 0x07, create) == bytes([NV_ITEM_CREATED])
        payload = nv_id.to_bytes(2, "little") + bytes(2) + len(value).to_bytes(2, "little") + value
        assert await self.sreq(SYS, 0x1D, payload) == bytes([ZNP_SUCCESS])

    async def commission(self) -> None:
        """Herdsman's commissioning: clear, write the network settings, BDB formation."""
        await self.nv_write(OsalNvIds.STARTUP_OPTION, b"\x03")
        self.send(t.CommandType.AREQ, SYS, 0x00, b"\x01")  # SYS_RESET_REQ, soft
        await self.areq_after(SYS, 0x80)  # SYS_RESET_IND
        await self.nv_write(OsalNvIds.STARTUP_OPTION, b"\x00")
        await self.nv_write(OsalNvIds.ZDO_DIRECT_CB, b"\x01")
        await self.nv_write(OsalNvIds.CHANLIST, (1 << CHANNEL).to_bytes(4, "little"))
        await self.nv_write(OsalNvIds.PANID, PAN_ID.to_bytes(2, "little"))
        await self.nv_write(OsalNvIds.EXTENDED_PAN_ID, EXT_PAN_ID)
        await self.nv_write(OsalNvIds.APS_USE_EXT_PANID, EXT_PAN_ID)
        await self.nv_write(OsalNvIds.PRECFGKEYS_ENABLE, b"\x00")
        await self.nv_write(OsalNvIds.PRECFGKEY, NETWORK_KEY)
        channel = (1 << CHANNEL).to_bytes(4, "little")
        assert await self.sreq(t.Subsystem.APPConfig, 0x08, b"\x01" + channel) == bytes([ZNP_SUCCESS])
        assert await self.sreq(t.Subsystem.APPConfig, 0x05, b"\x04") == bytes([ZNP_SUCCESS])
        while await self.areq_after(ZDO, 0xC0) != bytes([t.DeviceState.StartedAsCoordinator]):
            pass

    async def register_endpoint(self, endpoint: int, clusters: tuple[int, ...] = (0x0000,)) -> None:
        """AF_REGISTER: endpoint, profile, device id, version, latency, in and out clusters."""
        listed = bytes([len(clusters)]) + b"".join(cluster.to_bytes(2, "little") for cluster in clusters)
        payload = bytes([endpoint]) + (0x0104).to_bytes(2, "little") + (0x0005).to_bytes(2, "little")
        assert await self.sreq(AF, 0x00, payload + b"\x00\x00" + listed + b"\x00") == bytes([ZNP_SUCCESS])

    async def joined_switch(self) -> tuple[int, bytes]:
        """Open permit join (herdsman's broadcast form); the waiting switch joins: its NWK and IEEE."""
        assert await self.sreq(ZDO, 0x36, b"\x0f\xfc\xff\x3c\x00") == bytes([ZNP_SUCCESS])
        indication = await self.areq_after(ZDO, 0xCA)  # ZDO_TC_DEV_IND
        return int.from_bytes(indication[:2], "little"), indication[2:10]


def parsed_by_zigpy_znp(subsystem: t.Subsystem, command_id: int, data: bytes) -> object:
    """zigpy-znp's reading of a callback: it raises on a frame it cannot parse."""
    header = t.CommandHeader(0, id=command_id, subsystem=subsystem, type=t.CommandType.AREQ)
    return c.COMMANDS_BY_ID[header].from_frame(GeneralFrame(header, t.Bytes(data)), align=True)


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    chip = ZStackFirmware(switches=1, rng=random.Random(13))
    yield Host(chip)
    chip.close()


@pytest.fixture
async def network(host: Host) -> Host:
    await host.commission()
    return host


async def test_factory_chip_has_the_items_herdsman_reads_first(host: Host) -> None:
    assert await host.nv_length(OsalNvIds.NWKKEY) == 24  # aligned structs: a CC2652
    assert await host.nv_length(OsalNvIds.HAS_CONFIGURED_ZSTACK3) == 0
    create = OsalNvIds.HAS_CONFIGURED_ZSTACK3.to_bytes(2, "little") + b"\x01\x00\x01\x55"
    assert await host.sreq(SYS, 0x07, create) == bytes([NV_ITEM_CREATED])
    assert await host.sreq(SYS, 0x07, create) == bytes([ZNP_SUCCESS])  # it exists now
    assert await host.sreq(SYS, 0x04) == host.chip.ieee.serialize()  # SYS_GET_EXTADDR


async def test_commissioning_uses_the_configured_key_without_precfgkeys_enable(network: Host) -> None:
    active = network.chip.nvram.read(OsalNvIds.NWK_ACTIVE_KEY_INFO, t.NwkKeyDesc)
    assert bytes(active.Key) == NETWORK_KEY
    assert network.chip.nib.nwkPanId == PAN_ID
    assert network.chip.nib.extendedPANID.serialize() == EXT_PAN_ID


async def test_startup_from_app_resumes_the_network_with_a_state_change(tmp_path: Path) -> None:
    state = tmp_path / "znp.json"
    formed = Host(ZStackFirmware(state, rng=random.Random(1)))
    await formed.commission()
    formed.chip.close()
    host = Host(ZStackFirmware(state, rng=random.Random(2)))  # a power cycle: network not running
    info = await host.sreq(UTIL, 0x00)  # UTIL_GET_DEVICE_INFO: status, ieee, nwk, type, state
    assert info[12] != t.DeviceState.StartedAsCoordinator

    assert await host.sreq(ZDO, 0x40, (100).to_bytes(2, "little")) == b"\x00"  # restored
    while await host.areq_after(ZDO, 0xC0) != bytes([t.DeviceState.StartedAsCoordinator]):
        pass
    info = await host.sreq(UTIL, 0x00)
    assert info[9:11] == b"\x00\x00"
    assert info[12] == t.DeviceState.StartedAsCoordinator
    host.chip.close()


async def test_ext_nwk_info_is_24_bytes_in_z_stack_order(network: Host) -> None:
    info = await network.sreq(ZDO, 0x50)
    assert len(info) == 24
    assert info[0:2] == b"\x00\x00"  # short address
    assert info[2] == t.DeviceState.StartedAsCoordinator
    assert int.from_bytes(info[3:5], "little") == PAN_ID
    assert info[7:15] == EXT_PAN_ID
    assert info[23] == CHANNEL


async def test_green_power_group_is_found_after_being_added_and_after_a_reboot(tmp_path: Path) -> None:
    state = tmp_path / "znp.json"
    host = Host(ZStackFirmware(state, rng=random.Random(3)))
    find = bytes([242]) + (0x0B84).to_bytes(2, "little")
    missing = await host.sreq(ZDO, 0x4A, find)
    assert len(missing) == 19 and missing[0] == ZNP_FAILURE
    assert await host.sreq(ZDO, 0x4B, find + b"\x00") == bytes([ZNP_SUCCESS])
    found = await host.sreq(ZDO, 0x4A, find)
    assert len(found) == 19 and found[0] == ZNP_SUCCESS and found[1:3] == find[1:]
    host.chip.close()

    rebooted = Host(ZStackFirmware(state, rng=random.Random(4)))
    assert (await rebooted.sreq(ZDO, 0x4A, find))[0] == ZNP_SUCCESS
    assert await rebooted.sreq(ZDO, 0x4C) == b"\x01"  # ZDO_EXT_COUNT_ALL_GROUPS
    rebooted.chip.close()


async def test_zdo_requests_to_the_coordinator_get_direct_callbacks(network: Host) -> None:
    await network.register_endpoint(1, (0x0000, 0x0006))
    await network.register_endpoint(242)
    coordinator = b"\x00\x00"

    assert await network.sreq(ZDO, 0x05, coordinator + coordinator) == b"\x00"  # ZDO_ACTIVE_EP_REQ
    active = await network.areq_after(ZDO, 0x85)
    assert active == coordinator + b"\x00" + coordinator + bytes([2, 1, 242])
    parsed_by_zigpy_znp(ZDO, 0x85, active)

    assert await network.sreq(ZDO, 0x04, coordinator + coordinator + b"\x01") == b"\x00"
    simple = await network.areq_after(ZDO, 0x84)
    assert simple[:5] == coordinator + b"\x00" + coordinator and simple[6] == 1  # length, endpoint 1
    assert simple[-6:] == bytes([2, 0x00, 0x00, 0x06, 0x00, 0])  # in clusters, no out clusters
    parsed_by_zigpy_znp(ZDO, 0x84, simple)

    assert await network.sreq(ZDO, 0x02, coordinator + coordinator) == b"\x00"
    node = await network.areq_after(ZDO, 0x82)
    assert node[:5] == coordinator + b"\x00" + coordinator and len(node) == 5 + 13
    parsed_by_zigpy_znp(ZDO, 0x82, node)

    # Zigbee2MQTT's network map reads the coordinator's routing table: none, but not an error.
    assert await network.sreq(ZDO, 0x32, coordinator + b"\x00") == b"\x00"  # ZDO_MGMT_RTG_REQ
    assert await network.areq_after(ZDO, 0xB2) == coordinator + bytes([0, 0, 0, 0])


async def test_the_coordinator_answers_zdo_requests_before_a_network_runs(host: Host) -> None:
    assert await host.sreq(ZDO, 0x05, bytes(4)) == b"\x00"  # herdsman's first endpoint check
    assert await host.areq_after(ZDO, 0x85) == bytes(3) + bytes(2) + b"\x00"  # no endpoints yet


async def test_a_join_is_announced_as_tc_device_and_end_device_announce(network: Host) -> None:
    nwk, ieee = await network.joined_switch()
    announce = await network.areq_after(ZDO, 0xC1)  # no ZDO_MSG_CB_REGISTER needed
    assert announce[:2] == nwk.to_bytes(2, "little")  # the sender
    assert announce[2:4] == nwk.to_bytes(2, "little") and announce[4:12] == ieee
    parsed_by_zigpy_znp(ZDO, 0xC1, announce)


async def test_zdo_requests_to_a_switch_are_answered_by_the_switch(network: Host) -> None:
    nwk, ieee = await network.joined_switch()
    address = nwk.to_bytes(2, "little")

    assert await network.sreq(ZDO, 0x02, address + address) == b"\x00"  # ZDO_NODE_DESC_REQ
    node = await network.areq_after(ZDO, 0x82)
    assert node[:5] == address + b"\x00" + address

    assert await network.sreq(ZDO, 0x05, address + address) == b"\x00"
    assert (await network.areq_after(ZDO, 0x85))[:3] == address + b"\x00"

    # NWK_addr_req has no destination; Z-Stack's answer puts the start index before the count.
    assert await network.sreq(ZDO, 0x00, ieee + b"\x00\x00") == b"\x00"
    found = await network.areq_after(ZDO, 0x80)
    assert found[:11] == b"\x00" + ieee + address and len(found) >= 13
    parsed_by_zigpy_znp(ZDO, 0x80, found)

    bind = ieee + b"\x01" + (0x0006).to_bytes(2, "little") + b"\x03" + network.chip.ieee.serialize() + b"\x01"
    assert await network.sreq(ZDO, 0x21, address + bind) == b"\x00"  # ZDO_BIND_REQ
    assert await network.areq_after(ZDO, 0xA1) == address + b"\x00"


async def test_af_data_request_reaches_the_switch_and_its_answer_comes_back(network: Host) -> None:
    await network.register_endpoint(1)
    nwk, _ieee = await network.joined_switch()
    read_model = bytes([0x00, 0x21, 0x00]) + (0x0005).to_bytes(2, "little")  # ZCL read modelId
    request = (
        nwk.to_bytes(2, "little")
        + bytes([1, 1])  # destination and source endpoint
        + (0x0000).to_bytes(2, "little")
        + bytes([0x42, 0x00, 30, len(read_model)])  # transid, options, radius, length
        + read_model
    )
    assert await network.sreq(AF, 0x01, request) == bytes([ZNP_SUCCESS])  # AF_DATA_REQUEST
    assert await network.areq_after(AF, 0x80) == bytes([ZNP_SUCCESS, 1, 0x42])  # AF_DATA_CONFIRM
    incoming = await network.areq_after(AF, 0x81)  # AF_INCOMING_MSG
    assert incoming[4:6] == nwk.to_bytes(2, "little")
    assert b"lumi.switch.b1nc01" in incoming


async def test_association_look_up_finds_the_joined_switch(network: Host) -> None:
    nwk, ieee = await network.joined_switch()
    device = await network.sreq(UTIL, 0x4A, ieee + nwk.to_bytes(2, "little"))  # UTIL_ASSOC_GET_WITH_ADDRESS
    assert device[:2] == nwk.to_bytes(2, "little")


async def test_a_truncated_zdo_request_gets_an_rpc_error_at_once(network: Host) -> None:
    network.send(t.CommandType.SREQ, ZDO, 0x02, b"\x00")  # ZDO_NODE_DESC_REQ without its addresses
    error = await network.expect(t.CommandType.SRSP, t.Subsystem.RPCError, 0x00)
    assert error[0] == c.rpc_error.ErrorCode.InvalidLength
    assert error[1:] == t.CommandHeader(0, id=0x02, subsystem=ZDO, type=t.CommandType.SREQ).serialize()


def test_the_lone_byte_herdsman_writes_on_connect_is_skipped() -> None:
    """Over TCP herdsman first writes 0xEF (its bootloader-skip byte), then pings."""
    ping = TransportFrame(c.SYS.Ping.Req().to_frame()).serialize()
    [frame] = MtFramer().feed(b"\xef" + ping)
    assert frame.header == c.SYS.Ping.Req.header


async def test_home_1_2_serves_herdsman_its_key_by_sapi_and_the_backup_items() -> None:
    """Zigbee2MQTT on Z-Stack Home 1.2: PRECFGKEY through ZB_READ/WRITE_CONFIGURATION, and the
    security manager table herdsman's backup reads."""
    host = Host(ZStack12Firmware(rng=random.Random(12)))
    configured = await host.sreq(t.Subsystem.SAPI, 0x04, bytes([OsalNvIds.PRECFGKEY]))
    assert configured[:3] == bytes([ZNP_SUCCESS, OsalNvIds.PRECFGKEY, 16])
    write = bytes([OsalNvIds.PRECFGKEY, 16]) + NETWORK_KEY
    assert await host.sreq(t.Subsystem.SAPI, 0x05, write) == bytes([ZNP_SUCCESS])
    read_back = await host.sreq(t.Subsystem.SAPI, 0x04, bytes([OsalNvIds.PRECFGKEY]))
    assert read_back == bytes([ZNP_SUCCESS]) + write
    assert await host.nv_length(OsalNvIds.APS_LINK_KEY_TABLE) > 0
    assert await host.nv_length(OsalNvIds.NWKKEY) == 21  # packed structs: a CC2531
    host.chip.close()


async def test_touchlink_inter_pan_frames_are_accepted_and_go_nowhere(network: Host) -> None:
    """Zigbee2MQTT's touchlink scan: a channel for inter-PAN frames, endpoint 12 proxied, scan
    requests to PAN 0xFFFF; they do not reach the switch on the network (it has no touchlink)."""
    await network.register_endpoint(1)
    await network.register_endpoint(12)
    nwk, _ieee = await network.joined_switch()
    assert await network.sreq(AF, 0x10, bytes([1, 11])) == bytes([ZNP_SUCCESS])  # AF_INTER_PAN_CTL set
    assert await network.sreq(AF, 0x10, bytes([2, 12])) == bytes([ZNP_SUCCESS])  # proxy endpoint 12
    assert await network.sreq(AF, 0x10, bytes([2, 99])) == bytes([t.Status.INVALID_PARAMETER])
    scan = bytes([0x11, 0x01, 0x00]) + bytes(6)  # ZLL scan request (cluster 0x1000)
    request = (
        bytes([t.AddrMode.NWK]) + (0xFFFF).to_bytes(8, "little")  # broadcast, as herdsman sends it
        + bytes([0xFE]) + (0xFFFF).to_bytes(2, "little") + bytes([12])  # endpoint, PAN, source
        + (0x1000).to_bytes(2, "little") + bytes([0x77, 0, 30])  # cluster, transid, options, radius
        + len(scan).to_bytes(2, "little") + scan
    )  # fmt: skip
    assert await network.sreq(AF, 0x02, request) == bytes([ZNP_SUCCESS])  # AF_DATA_REQUEST_EXT
    assert await network.areq_after(AF, 0x80) == bytes([ZNP_SUCCESS, 12, 0x77])
    assert await network.sreq(AF, 0x10, bytes([0])) == bytes([ZNP_SUCCESS])  # back to the network's channel

    # A unicast sent after it is answered, so the scan request had its turn: the switch never got it.
    read = bytes([0x00, 0x22, 0x00]) + (0x0005).to_bytes(2, "little")
    unicast = nwk.to_bytes(2, "little") + bytes([1, 1, 0, 0, 0x78, 0, 30, len(read)]) + read
    assert await network.sreq(AF, 0x01, unicast) == bytes([ZNP_SUCCESS])
    await network.areq_after(AF, 0x81)
    switch = network.chip.world.online_node(nwk)
    assert switch is not None
    assert switch.switch.received.take(0x1000).frames == []
