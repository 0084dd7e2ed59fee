"""The real bellows ControllerApplication against the EmberZNet emulator, over a pty (and TCP in
the end-to-end suite).

Forming from factory-new tokens and resuming after a restart of both ends, joins and interviews,
ZCL both ways, a silent switch, delivery failures, the ASH line corrupting and losing frames
(bellows retransmits), an NCP that resets in the middle of a command, a leave, an energy scan,
and the state file. Every wait is on a zigpy or bellows event, bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bellows.types as bt
import pytest
import zigpy.exceptions
import zigpy.types as t
from bellows.ash import NcpFailure
from bellows.zigbee.application import ControllerApplication
from zigpy.zcl.clusters.general import OnOff

from tests.test_znp_emulator import MODEL, Listener, events, ieee_text, next_event
from z2m_qbkg40lm.devices.qbkg40lm import ENDPOINT_PATCHES
from z2m_qbkg40lm.sim.emulator import Emulator, EmulatorOptions
from z2m_qbkg40lm.sim.ezsp.chip import EzspChip
from z2m_qbkg40lm.zigbee.lumi_cluster import make_device_resolver

TIMEOUT = 10
CHANNEL = 20


class Running:
    """An EZSP emulator and a bellows application connected to it."""

    def __init__(self, emulator: Emulator, app: ControllerApplication, listener: Listener) -> None:
        self.emulator = emulator
        self.app = app
        self.listener = listener

    @property
    def chip(self) -> EzspChip:
        assert isinstance(self.emulator.chip, EzspChip)
        return self.emulator.chip

    async def join_switch(self) -> Any:
        """Open permit join through zigpy, let a new switch join, wait for its interview."""
        await self.app.permit(60)
        name = self.emulator.control.join()
        ieee = t.EUI64.convert(":".join(name[i : i + 2] for i in range(2, 18, 2)))
        return await asyncio.wait_for(self.listener.initialized(ieee), TIMEOUT)


def bellows_config(folder: Path, path: str) -> dict[str, Any]:
    return {
        "device": {"path": path},
        "database_path": str(folder / "zigbee.db"),
        "network": {"channel": CHANNEL, "channels": [CHANNEL]},
        "ota": {"enabled": False},
        "topology_scan_enabled": False,
        "use_thread": False,
    }


@contextlib.asynccontextmanager
async def running_stack(
    folder: Path, options: EmulatorOptions | None = None, *, ezsp_version: int = 13
) -> AsyncIterator[Running]:
    """The EZSP emulator (tokens in `folder`) and a started bellows application, both stopped after.

    Over a pseudo-terminal, as a USB stick: on socket:// bellows first waits 2 s for a reset a
    network coordinator may send by itself, at every one of the three resets of a first start.
    """
    if options is None:
        options = EmulatorOptions(
            listen=f"pty:{folder / 'ttyEZSP'}",
            nvram=folder / "ezsp.json",
            switches=0,
            chip="ezsp",
            ezsp_version=ezsp_version,
        )
    async with Emulator(options) as emulator:
        path = emulator.address.replace("tcp://", "socket://")
        app = await ControllerApplication.new(
            bellows_config(folder, path),
            auto_form=True,
            start_radio=False,
            device_resolver=make_device_resolver({MODEL: ENDPOINT_PATCHES}),
        )
        listener = Listener(app)
        app.add_listener(listener)
        try:
            await asyncio.wait_for(app.startup(auto_form=True), 4 * TIMEOUT)
            yield Running(emulator, app, listener)
        finally:
            await _shutdown(app)


async def _shutdown(app: ControllerApplication) -> None:
    """Shut bellows down, with the task it leaves behind after a Lumi join (a 180 s timer that puts
    the node descriptor's manufacturer code back) cancelled: shutdown() does not."""
    task = app._mfg_id_task
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await app.shutdown()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_stack(tmp_path) as stack:
        yield stack


async def _relay(device: Any) -> bool:
    (values, _failures) = await device.endpoints[1].on_off.read_attributes(["on_off"])
    return bool(values["on_off"])


async def test_forms_a_network_and_resumes_it_without_a_new_join(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as first:
        network = first.chip.tokens.network
        assert network is not None and network.channel == CHANNEL
        assert first.app.state.network_info.channel == CHANNEL
        device = await first.join_switch()
        assert device.model == MODEL and device.lqi == first.chip.world.linkquality
        pan_id = first.app.state.network_info.pan_id
    saved = json.loads((tmp_path / "ezsp.json").read_text(encoding="utf-8"))
    assert saved["chip"] == "ezsp" and saved["tokens"]["network"]["pan_id"] == pan_id
    assert saved["tokens"]["security"]["network_key"] != "00" * 16
    async with running_stack(tmp_path) as second:
        assert second.app.state.network_info.pan_id == pan_id
        assert second.listener.joined == [], "a resumed network does not make the switch join again"
        [node] = second.chip.world.nodes.values()
        assert second.chip.world.online(node)
        restored = second.app.get_device(ieee=node.switch.ieee)
        await second.app.permit(0)
        node.switch.relay = True
        assert await asyncio.wait_for(_relay(restored), TIMEOUT) is True


async def test_emberznet_8_speaks_ezsp_14_to_bellows_from_form_to_resume(tmp_path: Path) -> None:
    async with running_stack(tmp_path, ezsp_version=14) as first:
        assert first.app._ezsp.ezsp_version == 14
        device = await first.join_switch()
        await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
        assert first.chip.world.nodes[device.ieee].switch.relay is True
        with events(device.endpoints[1].on_off) as reports:
            first.emulator.control.press(ieee_text(device), "single")
            assert (await next_event(reports)).attribute_id == OnOff.AttributeDefs.on_off.id
        first.emulator.control.set_responsive(ieee_text(device), False)
        with pytest.raises(zigpy.exceptions.DeliveryError):
            await asyncio.wait_for(device.endpoints[1].on_off.off(), TIMEOUT)
        pan_id = first.app.state.network_info.pan_id
    async with running_stack(tmp_path, ezsp_version=14) as second:
        assert second.app.state.network_info.pan_id == pan_id and second.listener.joined == []


async def test_zcl_both_ways_and_a_press(running: Running) -> None:
    device = await running.join_switch()
    await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    assert running.chip.world.nodes[device.ieee].switch.relay is True
    with events(device.endpoints[1].on_off) as reports:
        running.emulator.control.press(ieee_text(device), "single")
        report = await next_event(reports)
    assert report.attribute_id == OnOff.AttributeDefs.on_off.id


async def test_a_silent_switch_and_a_failed_delivery_raise_delivery_errors(running: Running) -> None:
    device = await running.join_switch()
    running.emulator.control.set_responsive(ieee_text(device), False)
    with pytest.raises(zigpy.exceptions.DeliveryError):
        await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    running.emulator.control.set_responsive(ieee_text(device), True)
    assert running.emulator.control.fail_confirms("DELIVERY_FAILED") == "ZIGBEE_DELIVERY_FAILED"
    with pytest.raises(zigpy.exceptions.DeliveryError, match="DELIVERY_FAILED"):
        await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    assert running.chip.world.nodes[device.ieee].switch.relay is False, "a failed frame is lost"
    running.emulator.control.clear_faults()
    await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    assert running.chip.world.nodes[device.ieee].switch.relay is True


@pytest.mark.parametrize(
    ("corrupt", "lose", "direction"), [(2, 0, "to_host"), (0, 2, "to_host"), (0, 2, "from_host")]
)
async def test_spoiled_ash_frames_are_sent_again(
    running: Running, corrupt: int, lose: int, direction: str
) -> None:
    device = await running.join_switch()
    port = running.chip.serial_port()
    running.emulator.control.spoil_line(corrupt=corrupt, lose=lose, direction=direction)
    await asyncio.wait_for(device.endpoints[1].on_off.toggle(), 3 * TIMEOUT)
    assert (
        await asyncio.wait_for(_relay(device), 3 * TIMEOUT)
        is running.chip.world.nodes[device.ieee].switch.relay
    )
    faults = port.faults
    assert (faults.corrupt_to_host, faults.lose_to_host, faults.lose_from_host) == (0, 0, 0), "all spent"
    assert not running.listener.lost.done(), "retransmission, not a lost NCP"


async def test_an_ncp_reset_in_the_middle_of_a_command_fails_it_and_tells_the_host(running: Running) -> None:
    chip = running.chip
    answer = chip.ncp.handle

    def reset_instead_of_answering(data: bytes) -> bytes | None:
        chip.ncp.handle = answer  # type: ignore[method-assign]
        chip.spontaneous_reset()  # a watchdog reset while the command is being carried out
        return None

    chip.ncp.handle = reset_instead_of_answering  # type: ignore[method-assign]
    pending = asyncio.ensure_future(running.app._ezsp.getNodeId())
    lost = await asyncio.wait_for(running.listener.lost, TIMEOUT)
    assert isinstance(lost, NcpFailure) and lost.code == bt.NcpResetCode.RESET_WATCHDOG
    assert not chip.network_up, "the rebooted NCP waits for networkInit"
    # The command is never answered: bellows leaves it to its caller's timeout (the daemon
    # re-initialises the radio on the RSTACK and answers its own commands with that).
    assert not pending.done()
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)


async def test_a_backup_reads_the_keys_and_tables_the_network_has(running: Running) -> None:
    device = await running.join_switch()
    backup = await asyncio.wait_for(running.app.backups.create_backup(load_devices=True), TIMEOUT)
    info = backup.network_info
    tokens = running.chip.tokens
    assert tokens.security is not None
    assert bytes(info.network_key.key) == tokens.security.network_key
    assert info.nwk_addresses == {device.ieee: device.nwk}, "the address table lists the switch"
    assert info.children == [], "a router is no child: EmberZNet's child table holds end devices"
    assert info.network_key.tx_counter == running.chip.stack.nwk_frame_counter > 0
    assert info.metadata["ezsp"]["stack_version"] == 13


async def test_a_leave_and_an_energy_scan(running: Running) -> None:
    device = await running.join_switch()
    running.emulator.control.leave(ieee_text(device))
    assert await asyncio.wait_for(running.listener.left.get(), TIMEOUT) == device.ieee
    energies = await asyncio.wait_for(
        running.app.energy_scan(t.Channels.from_channel_list([11, 15, 25]), 1, 1), TIMEOUT
    )
    assert set(energies) == {11, 15, 25}


async def test_a_pseudo_terminal_serves_bellows_like_a_usb_stick(tmp_path: Path) -> None:
    symlink = tmp_path / "ttyEZSP"
    options = EmulatorOptions(listen=f"pty:{symlink}", nvram=None, switches=0, chip="ezsp")
    async with Emulator(options) as emulator:
        assert emulator.address == str(symlink) and symlink.resolve().as_posix().startswith("/dev/pts/")
        app = await ControllerApplication.new(
            bellows_config(tmp_path, str(symlink)), auto_form=True, start_radio=False
        )
        listener = Listener(app)
        app.add_listener(listener)
        try:
            await asyncio.wait_for(app.startup(auto_form=True), 4 * TIMEOUT)
            assert emulator.chip.network_up
            assert emulator.control.drop_link() is True
            await asyncio.wait_for(listener.lost, TIMEOUT)
            assert symlink.resolve().as_posix().startswith("/dev/pts/"), "the unplugged stick is back"
        finally:
            await _shutdown(app)
    assert not symlink.exists()


def test_a_state_file_of_another_chip_or_no_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "nvram": {}}', encoding="utf-8")
    with pytest.raises(ValueError, match="Z-Stack"):
        EzspChip(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="not JSON"):
        EzspChip(path)
    path.write_text("", encoding="utf-8")
    assert EzspChip(path, switches=2).tokens.formed is False, "an empty file is a factory-new chip"
