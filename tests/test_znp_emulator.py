"""The real zigpy-znp ControllerApplication against the Z-Stack emulator over a real TCP socket.

Forming from an empty NVRAM, resuming after a restart of both ends, joins and interviews, ZCL both
ways, silent switches and the faults the emulator injects on demand. Every wait is on a zigpy or
zigpy-znp event (listener call, cluster event, response future), bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import zigpy.device
import zigpy.exceptions
import zigpy.types as t
import zigpy_znp.commands as c
import zigpy_znp.types as znp_t
from zigpy.zcl import Cluster, foundation
from zigpy_znp.exceptions import CommandNotRecognized
from zigpy_znp.frames import TransportFrame
from zigpy_znp.types.nvids import OsalNvIds
from zigpy_znp.zigbee.application import ControllerApplication

from z2m_qbkg40lm.devices.qbkg40lm import ENDPOINT_PATCHES, LUMI_CLUSTER
from z2m_qbkg40lm.sim.emulator import Emulator, EmulatorOptions
from z2m_qbkg40lm.sim.virtual_radio import SimulationError
from z2m_qbkg40lm.sim.znp.firmware import ZStackFirmware
from z2m_qbkg40lm.sim.znp.link import MtFramer
from z2m_qbkg40lm.sim.znp.nvram import Nvram
from z2m_qbkg40lm.zigbee.lumi_cluster import make_device_resolver, register_manufacturer_clusters

TIMEOUT = 10
MODEL = "lumi.switch.b1nc01"
LUMI = 0x115F
CHANNEL = 15

register_manufacturer_clusters([LUMI_CLUSTER])


class Listener:
    """zigpy application listener: a future per interviewed device, and the lost connections."""

    def __init__(self, app: ControllerApplication) -> None:
        self._app = app
        self._initialized: dict[t.EUI64, asyncio.Future[zigpy.device.Device]] = {}
        self.left: asyncio.Queue[t.EUI64] = asyncio.Queue()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.joined: list[t.EUI64] = []

    def initialized(self, ieee: t.EUI64) -> asyncio.Future[zigpy.device.Device]:
        return self._initialized.setdefault(ieee, asyncio.get_running_loop().create_future())

    def device_joined(self, device: zigpy.device.Device) -> None:
        self.joined.append(device.ieee)

    def device_initialized(self, device: zigpy.device.Device) -> None:
        if device.ieee != self._app.state.node_info.ieee and not self.initialized(device.ieee).done():
            self.initialized(device.ieee).set_result(device)

    def device_left(self, device: zigpy.device.Device) -> None:
        self.left.put_nowait(device.ieee)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class Running:
    """An emulator and a zigpy-znp application connected to it."""

    def __init__(self, emulator: Emulator, app: ControllerApplication, listener: Listener) -> None:
        self.emulator = emulator
        self.app = app
        self.listener = listener

    async def join_switch(self, name: str | None = None) -> zigpy.device.Device:
        """Open permit join through zigpy, let a (new) switch join, wait for its interview."""
        await self.app.permit(60)
        ieee_text = self.emulator.control.join(name)
        ieee = t.EUI64.convert(":".join(ieee_text[i : i + 2] for i in range(2, 18, 2)))
        return await asyncio.wait_for(self.listener.initialized(ieee), TIMEOUT)


def zigpy_config(folder: Path, port: str, **extra: Any) -> dict[str, Any]:
    return {
        "device": {"path": f"socket://127.0.0.1:{port}"},
        "database_path": str(folder / "zigbee.db"),
        "network": {"channel": CHANNEL, "channels": [CHANNEL]},
        "ota": {"enabled": False},
        "topology_scan_enabled": False,
        **extra,
    }


@contextlib.asynccontextmanager
async def running_stack(
    folder: Path, options: EmulatorOptions | None = None, **extra: Any
) -> AsyncIterator[Running]:
    """The emulator (NVRAM in `folder`, or as `options` say) and a started zigpy-znp application,
    both stopped after."""
    if options is None:
        options = EmulatorOptions(listen="tcp://127.0.0.1:0", nvram=folder / "znp.json", switches=0)
    async with Emulator(options) as emulator:
        port = emulator.address.rsplit(":", 1)[1]
        app = await ControllerApplication.new(
            zigpy_config(folder, port, **extra),
            auto_form=True,
            start_radio=False,
            device_resolver=make_device_resolver({MODEL: ENDPOINT_PATCHES}),
        )
        listener = Listener(app)
        app.add_listener(listener)
        try:
            await app.startup(auto_form=True)
            yield Running(emulator, app, listener)
        finally:
            await app.shutdown()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_stack(tmp_path) as stack:
        yield stack


@contextlib.contextmanager
def events(cluster: Cluster, name: str = "attribute_report") -> Iterator[asyncio.Queue[Any]]:
    """The cluster's events of one kind, in a queue, while the block runs."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    unsubscribe = cluster.on_event(name, queue.put_nowait)
    try:
        yield queue
    finally:
        unsubscribe()


async def next_event(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), TIMEOUT)


def ieee_text(device: zigpy.device.Device) -> str:
    return "0x" + str(device.ieee).replace(":", "")


# --- forming and resuming -----------------------------------------------------------------------


async def test_forms_a_network_from_an_empty_nvram(running: Running) -> None:
    firmware = running.emulator.chip
    info = running.app.state.network_info
    nib = firmware.nib
    assert firmware.formed and firmware.network_up
    assert (running.app._znp.version, running.app._znp.nvram.align_structs) == (3.30, True)
    assert running.app.state.node_info.model == "CC2652"
    assert info.channel == CHANNEL == nib.nwkLogicalChannel
    assert info.pan_id == nib.nwkPanId
    assert info.extended_pan_id == nib.extendedPANID
    key = firmware.nvram.read(OsalNvIds.NWK_ACTIVE_KEY_INFO, znp_t.NwkKeyDesc)
    assert info.network_key.key == key.Key
    # zigpy interviewed its coordinator through the emulator's loopback ZDO answers.
    coordinator = running.app._device
    assert coordinator.is_initialized
    assert sorted(coordinator.endpoints) == [0, 1, 2, 242]


async def test_a_restart_of_both_ends_resumes_the_network(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="z2m_qbkg40lm.sim.znp")
    async with running_stack(tmp_path) as first:
        before = first.app.state.network_info
        device = await first.join_switch()
    assert "Network formed" in caplog.text
    caplog.clear()
    async with running_stack(tmp_path) as second:
        after = second.app.state.network_info
        assert (after.pan_id, after.extended_pan_id, after.channel, after.network_key.key) == (
            before.pan_id,
            before.extended_pan_id,
            before.channel,
            before.network_key.key,
        )
        resumed = second.app.get_device(ieee=device.ieee)
        assert resumed.is_initialized and resumed.model == MODEL
        # The switch is still on the network: it answers at once, without joining again.
        assert await resumed.endpoints[1].on_off.toggle() is not None
        assert second.listener.joined == []
    assert "Network resumed" in caplog.text
    assert "Network formed" not in caplog.text
    assert "Start-up options" not in caplog.text, "the NVRAM was not reset"


# --- joining and the data path -----------------------------------------------------------------------


async def test_a_switch_joins_only_while_permit_join_is_open(running: Running) -> None:
    with pytest.raises(SimulationError, match="permit join is closed"):
        running.emulator.control.join()
    device = await running.join_switch()
    assert (device.model, device.manufacturer) == (MODEL, "LUMI")
    assert device.node_desc is not None and device.node_desc.manufacturer_code == LUMI
    assert device.lqi == running.emulator.chip.world.linkquality
    assert 41 in device.endpoints and 0xFCC0 in device.endpoints[1].in_clusters
    # Z-Stack recorded the switch in its address manager table, where zigpy-znp's backups read it.
    backup = await running.app.backups.create_backup(load_devices=True)
    assert backup.network_info.nwk_addresses.get(device.ieee) == device.nwk


async def test_a_removed_switch_leaves_and_can_join_again(running: Running) -> None:
    device = await running.join_switch()
    node = running.emulator.chip.world.nodes[device.ieee]
    leave = running.app._znp.wait_for_response(c.ZDO.LeaveInd.Callback(partial=True, IEEE=device.ieee))
    await running.app.remove(device.ieee)  # zigpy sends Mgmt_Leave_req; the switch leaves
    await asyncio.wait_for(leave, TIMEOUT)
    assert not running.emulator.chip.world.online(node)
    assert running.emulator.control.switches()[0]["joined"] is False
    with pytest.raises(zigpy.exceptions.DeliveryError, match="NWK_NO_ROUTE"):
        await device.endpoints[1].on_off.on()
    again = await running.join_switch(ieee_text(device))
    assert again.ieee == device.ieee and again.is_initialized
    # Leaving on its own (a factory reset on the device) is a ZDO leave indication for zigpy.
    running.emulator.control.leave(ieee_text(again))
    assert await asyncio.wait_for(running.listener.left.get(), TIMEOUT) == device.ieee


async def test_on_off_is_confirmed_and_reported(running: Running) -> None:
    device = await running.join_switch()
    on_off = device.endpoints[1].on_off
    with events(on_off) as reports:
        response = await on_off.on()
        assert response[1] == foundation.Status.SUCCESS
        report = await next_event(reports)
    assert (report.attribute_id, report.value) == (0x0000, True)
    assert running.emulator.chip.world.nodes[device.ieee].switch.relay is True


async def test_lumi_attributes_are_read_with_the_manufacturer_code(running: Running) -> None:
    device = await running.join_switch()
    lumi = device.endpoints[1].in_clusters[0xFCC0]
    success, failure = await lumi.read_attributes([0x0200, 0x00F0], manufacturer=LUMI)
    assert success == {0x0200: 1, 0x00F0: 0} and failure == {}
    # Without the code the switch model does not answer for its Lumi attributes.
    records = await lumi.read_attributes_raw([0x0200], manufacturer=None)
    assert records[0][0].status == foundation.Status.UNSUPPORTED_ATTRIBUTE


async def test_a_press_is_reported_on_endpoint_41(running: Running) -> None:
    device = await running.join_switch()
    with events(device.endpoints[41].in_clusters[0x0012]) as presses:
        running.emulator.control.press(ieee_text(device), "double")
        event = await next_event(presses)
    assert (event.attribute_id, event.value) == (0x0055, 2)


async def test_a_silent_switch_gives_a_delivery_error(running: Running) -> None:
    device = await running.join_switch()
    running.emulator.control.set_responsive(ieee_text(device), False)
    with pytest.raises(zigpy.exceptions.DeliveryError, match="MAC_NO_ACK"):
        await device.endpoints[1].on_off.on()
    running.emulator.control.set_responsive(ieee_text(device), True)
    assert (await device.endpoints[1].on_off.on())[1] == foundation.Status.SUCCESS


# --- faults --------------------------------------------------------------------------------------------


async def test_delayed_confirms_still_succeed(running: Running) -> None:
    device = await running.join_switch()
    running.emulator.control.delay_confirms(1500)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await device.endpoints[1].on_off.off()
    assert response[1] == foundation.Status.SUCCESS
    assert loop.time() - started >= 1.5


async def test_failed_confirms_give_a_delivery_error(running: Running) -> None:
    device = await running.join_switch()
    assert running.emulator.control.fail_confirms("APS_NO_ACK") == "APS_NO_ACK"
    with pytest.raises(zigpy.exceptions.DeliveryError, match="APS_NO_ACK"):
        await device.endpoints[1].on_off.on()
    assert running.emulator.chip.world.nodes[device.ieee].switch.relay is False, "a failed frame is lost"
    running.emulator.control.clear_faults()
    assert (await device.endpoints[1].on_off.on())[1] == foundation.Status.SUCCESS


async def test_a_dropped_link_is_a_lost_connection(running: Running) -> None:
    assert running.emulator.control.drop_link() is True
    await asyncio.wait_for(running.listener.lost, TIMEOUT)


async def test_a_mute_coordinator_stops_answering(tmp_path: Path) -> None:
    async with running_stack(tmp_path, znp_config={"sync_request_timeout": 0.5}) as stack:
        stack.emulator.control.mute(True)
        with pytest.raises(TimeoutError):
            await stack.app._znp.request(c.SYS.Ping.Req())
        stack.emulator.control.mute(False)
        await stack.app._znp.request(c.SYS.Ping.Req())


async def test_a_coordinator_reset_is_announced_and_forgets_the_registrations(running: Running) -> None:
    device = await running.join_switch()
    reset = running.app._znp.wait_for_response(c.SYS.ResetInd.Callback(partial=True))
    running.emulator.control.reset()
    indication = await asyncio.wait_for(reset, TIMEOUT)
    assert indication.Reason == znp_t.ResetReason.Watchdog
    firmware = running.emulator.chip
    assert firmware.network_up and firmware.registered_endpoints == []
    # Still reachable for commands (the network restarted), but nothing comes back to the host
    # until it registers its endpoints again: the host's problem to notice.
    with events(device.endpoints[1].on_off) as reports:
        await running.app._znp.request(
            c.AF.Register.Req(
                Endpoint=1,
                ProfileId=0x0104,
                DeviceId=0x0400,
                DeviceVersion=0,
                LatencyReq=c.af.LatencyReq.NoLatencyReqs,
                InputClusters=[],
                OutputClusters=[],
            )
        )
        running.emulator.control.press(ieee_text(device), "single")
        assert (await next_event(reports)).attribute_id == 0x0000


# --- the emulator's own parts ---------------------------------------------------------------------------


async def test_a_pseudo_terminal_serves_zigpy_znp_like_a_usb_stick(tmp_path: Path) -> None:
    symlink = tmp_path / "ttyZNP"
    options = EmulatorOptions(listen=f"pty:{symlink}", nvram=None, switches=0)
    async with Emulator(options) as emulator:
        assert emulator.address == str(symlink) and symlink.resolve().as_posix().startswith("/dev/pts/")
        config = zigpy_config(tmp_path, "0")
        config["device"]["path"] = str(symlink)
        app = await ControllerApplication.new(config, auto_form=True, start_radio=False)
        listener = Listener(app)
        app.add_listener(listener)
        try:
            await app.startup(auto_form=True)
            assert emulator.chip.network_up
            assert emulator.control.drop_link() is True
            await asyncio.wait_for(listener.lost, TIMEOUT)
            assert symlink.resolve().as_posix().startswith("/dev/pts/"), "the unplugged stick is back"
        finally:
            await app.shutdown()
    assert not symlink.exists()


async def test_an_unknown_request_is_not_recognized(running: Running) -> None:
    with pytest.raises(CommandNotRecognized):
        await running.app._znp.request(c.SYS.GetTime.Req())


def test_the_nvram_survives_its_json_form(tmp_path: Path) -> None:
    rng = random.Random(4)
    nvram = Nvram.factory(t.EUI64.convert("00:12:4b:00:00:00:00:01"), rng)
    nvram.store(OsalNvIds.NIB, nvram.read(OsalNvIds.NIB, znp_t.NIB).replace(nwkLogicalChannel=20))
    assert nvram.create((7, 0x0100, 3), 4, b"\x01") is True
    copy = Nvram.from_json(json.loads(json.dumps(nvram.to_json())))
    assert copy.to_json() == nvram.to_json()
    assert copy.read(OsalNvIds.NIB, znp_t.NIB).nwkLogicalChannel == 20
    assert copy.get((7, 0x0100, 3)) == b"\x01\x00\x00\x00"
    path = tmp_path / "znp.json"
    path.write_text('{"version": 99}', encoding="utf-8")
    with pytest.raises(ValueError, match="version 1"):
        ZStackFirmware(path)
    path.write_text("", encoding="utf-8")
    assert ZStackFirmware(path, switches=2).formed is False, "an empty file is a factory-new chip"


def test_the_framer_finds_frames_in_noise_and_pieces() -> None:
    ping = TransportFrame(c.SYS.Ping.Req().to_frame()).serialize()
    version = TransportFrame(c.SYS.Version.Req().to_frame()).serialize()
    corrupt = ping[:-1] + bytes([ping[-1] ^ 0xFF])
    framer = MtFramer()
    # Bootloader-skip bytes and a corrupt frame before the good ones, the second split in two.
    assert framer.feed(b"\xef" * 8 + corrupt + ping + version[:3]) == [c.SYS.Ping.Req().to_frame()]
    assert framer.feed(version[3:]) == [c.SYS.Version.Req().to_frame()]
