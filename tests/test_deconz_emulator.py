"""The real zigpy-deconz ControllerApplication against the deCONZ emulator, over a pseudo-terminal
(and TCP), then the emulator's protocol frame by frame.

Forming from a factory-new stick and resuming after a restart of both ends without a new join,
a join and interview, ZCL both ways, a press, a silent switch and failed confirms (DeliveryError),
a firmware reset (the USB device goes away: zigpy-deconz reports the connection lost and reconnects
no further; a new start resumes the network), a dropped link, a hung firmware, the coordinator
leaving its network and coming back, a backup and an energy scan. Frame by frame: unknown commands
and parameters answered UNSUPPORTED, damaged frames dropped, the APS queue filling up to BUSY.
Every wait is on a zigpy event, a frame from the chip or a library timeout, bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zigpy.exceptions
import zigpy.types as t
import zigpy_deconz.types as dt
import zigpy_deconz.zigbee.application as deconz_application
from zigpy.zcl.clusters.general import OnOff
from zigpy_deconz.api import (
    COMMAND_SCHEMAS,
    NETWORK_PARAMETER_TYPES,
    CommandId,
    DeviceStateFlags,
    NetworkParameter,
    NetworkState,
    NetworkState2,
    Status,
)
from zigpy_deconz.zigbee.application import ControllerApplication

from tests.test_znp_emulator import MODEL, Listener, events, ieee_text, next_event
from z2m_qbkg40lm.devices.qbkg40lm import ENDPOINT_PATCHES
from z2m_qbkg40lm.sim.control import EmulatorControl
from z2m_qbkg40lm.sim.deconz import slip
from z2m_qbkg40lm.sim.deconz.chip import APS_QUEUE_SIZE, FIRMWARE_VERSION, DeconzChip
from z2m_qbkg40lm.sim.serial_line import PtyLine, TcpLine
from z2m_qbkg40lm.zigbee.lumi_cluster import make_device_resolver

TIMEOUT = 10
CHANNEL = 15


class Running:
    """A deCONZ emulator and a zigpy-deconz application connected to it."""

    def __init__(self, chip: DeconzChip, app: ControllerApplication, listener: Listener, path: str) -> None:
        self.chip = chip
        self.path = path
        self.app = app
        self.listener = listener
        self.control = EmulatorControl(chip)

    async def join_switch(self) -> Any:
        """Open permit join through zigpy, let a new switch join, wait for its interview."""
        await self.app.permit(60)
        name = self.control.join()
        ieee = t.EUI64.convert(":".join(name[i : i + 2] for i in range(2, 18, 2)))
        return await asyncio.wait_for(self.listener.initialized(ieee), TIMEOUT)


def deconz_config(folder: Path, path: str) -> dict[str, Any]:
    return {
        "device": {"path": path},
        "database_path": str(folder / "zigbee.db"),
        "network": {"channel": CHANNEL, "channels": [CHANNEL]},
        "ota": {"enabled": False},
        "topology_scan_enabled": False,
    }


@pytest.fixture(autouse=True)
def _no_settling_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """zigpy-deconz pauses 2 s between taking the network down and up when it forms; the pause
    waits for nothing the emulator does."""
    monkeypatch.setattr(deconz_application, "CHANGE_NETWORK_STATE_DELAY", 0)


@contextlib.asynccontextmanager
async def running_stack(folder: Path) -> AsyncIterator[Running]:
    """The emulator (state in `folder`) behind a pty and a started zigpy-deconz application."""
    chip = DeconzChip(folder / "deconz.json", switches=0)
    line = PtyLine(chip.serial_port(), folder / "ttyACM0")
    path = await line.start()
    app = await ControllerApplication.new(
        deconz_config(folder, path),
        auto_form=True,
        start_radio=False,
        device_resolver=make_device_resolver({MODEL: ENDPOINT_PATCHES}),
    )
    listener = Listener(app)
    app.add_listener(listener)
    try:
        await asyncio.wait_for(app.startup(auto_form=True), 4 * TIMEOUT)
        yield Running(chip, app, listener, path)
    finally:
        await app.shutdown()
        chip.close()
        await line.stop()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_stack(tmp_path) as stack:
        yield stack


async def _relay(device: Any) -> bool:
    (values, _failures) = await device.endpoints[1].on_off.read_attributes(["on_off"])
    return bool(values["on_off"])


async def test_forms_a_network_and_resumes_it_without_a_new_join(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="z2m_qbkg40lm.sim.deconz")
    async with running_stack(tmp_path) as first:
        assert "Network formed" in caplog.text
        assert first.chip.network_up
        assert first.app.state.network_info.channel == CHANNEL == first.chip.parameters.current_channel
        assert first.app.state.node_info.ieee == first.chip.ieee
        assert int(first.app._api.firmware_version) == FIRMWARE_VERSION >= 0x26720700
        device = await first.join_switch()
        assert device.model == MODEL and device.lqi == first.chip.world.linkquality
        pan_id = first.app.state.network_info.pan_id
        key = first.app.state.network_info.network_key.key
    saved = json.loads((tmp_path / "deconz.json").read_text(encoding="utf-8"))
    assert saved["chip"] == "deconz" and saved["parameters"]["nwk_panid"] == pan_id
    assert saved["parameters"]["network_key"] == bytes(key).hex() != "00" * 16
    assert saved["parameters"]["nwk_frame_counter"] > 0
    caplog.clear()
    async with running_stack(tmp_path) as second:
        assert "Network resumed" in caplog.text and "Network formed" not in caplog.text
        assert second.app.state.network_info.pan_id == pan_id
        assert second.listener.joined == [], "a resumed network does not make the switch join again"
        [node] = second.chip.world.nodes.values()
        assert second.chip.world.online(node)
        restored = second.app.get_device(ieee=node.switch.ieee)
        node.switch.relay = True
        assert await asyncio.wait_for(_relay(restored), TIMEOUT) is True


async def test_zcl_both_ways_and_a_press(running: Running) -> None:
    device = await running.join_switch()
    await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    assert running.chip.world.nodes[device.ieee].switch.relay is True
    await asyncio.wait_for(device.endpoints[1].on_off.off(), TIMEOUT)
    assert await asyncio.wait_for(_relay(device), TIMEOUT) is False
    with events(device.endpoints[1].on_off) as reports:
        running.control.press(ieee_text(device), "single")
        report = await next_event(reports)
    assert report.attribute_id == OnOff.AttributeDefs.on_off.id


async def test_a_silent_switch_and_failed_confirms_raise_delivery_errors(running: Running) -> None:
    device = await running.join_switch()
    running.control.set_responsive(ieee_text(device), False)
    with pytest.raises(zigpy.exceptions.DeliveryError, match="NO_ACK"):
        await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    running.control.set_responsive(ieee_text(device), True)
    assert running.control.fail_confirms("MAC_CHANNEL_ACCESS_FAILURE") == "MAC_CHANNEL_ACCESS_FAILURE"
    with pytest.raises(zigpy.exceptions.DeliveryError, match="MAC_CHANNEL_ACCESS_FAILURE"):
        await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    assert running.chip.world.nodes[device.ieee].switch.relay is False, "a failed frame is lost"
    running.control.clear_faults()
    await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    assert running.chip.world.nodes[device.ieee].switch.relay is True


def test_confirm_failure_statuses_by_name_and_number(tmp_path: Path) -> None:
    chip = DeconzChip(None)
    assert chip.failure_status("mac_no_ack") == chip.failure_status(0xE9)
    assert chip.failure_status("APS_NO_ACK").name == "APS_NO_ACK"
    with pytest.raises(ValueError, match="MAC_NO_ACK"):
        chip.failure_status("NO_SUCH_STATUS")
    with pytest.raises(ValueError, match="not a failure"):
        chip.failure_status(0)
    with pytest.raises(ValueError, match="no acknowledgement or retransmission"):
        chip.spoil_frames(corrupt_to_host=1)


async def test_a_firmware_reset_loses_the_port_and_a_new_start_resumes_without_a_join(
    running: Running, tmp_path: Path
) -> None:
    device = await running.join_switch()
    running.control.reset()
    assert not running.chip.network_up, "the rebooted firmware is offline until the host asks"
    # The ConBee II re-enumerates on USB: zigpy-deconz tells its listeners the port is gone (and
    # reconnects no further by itself: the daemon starts the radio again).
    await asyncio.wait_for(running.listener.lost, TIMEOUT)
    await running.app.shutdown()
    app = await ControllerApplication.new(
        deconz_config(tmp_path, running.path),
        auto_form=False,
        start_radio=False,
        device_resolver=make_device_resolver({MODEL: ENDPOINT_PATCHES}),
    )
    listener = Listener(app)
    app.add_listener(listener)
    try:
        await asyncio.wait_for(app.startup(auto_form=False), 4 * TIMEOUT)
        assert running.chip.network_up and listener.joined == []
        restored = app.get_device(ieee=device.ieee)
        await asyncio.wait_for(restored.endpoints[1].on_off.on(), TIMEOUT)
        assert running.chip.world.nodes[device.ieee].switch.relay is True
    finally:
        await app.shutdown()


# --- the protocol, frame by frame ---------------------------------------------------------------


class _Line:
    """The host's end of the line as the chip sees it: the frames written to it, SLIP-decoded."""

    def __init__(self) -> None:
        self.decoder = slip.SlipDecoder()
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()

    def write(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.frames.put_nowait(frame)

    def close(self) -> None:
        pass

    async def notification(self) -> bytes:
        """The next frame the chip sends on its own."""
        return await asyncio.wait_for(self.frames.get(), TIMEOUT)


def _frame(command: int, seq: int, body: bytes = b"", *, payload_length: bool = True) -> bytes:
    if payload_length:
        body = dt.uint16_t(len(body)).serialize() + body
    length: bytes = dt.uint16_t(5 + len(body)).serialize()
    return bytes([command, seq, 0]) + length + body


def _answer(frame: bytes | None) -> dict[str, Any]:
    """An answer read with zigpy-deconz's schema for it (command and seq added)."""
    assert frame is not None
    command = CommandId(frame[0])
    _sent, schema = COMMAND_SCHEMAS[command]
    params, _rest = dt.deserialize_dict(frame[2:], schema)
    assert params["frame_length"] == len(frame)
    return {"command": command, "seq": frame[1], **params}


def _write(chip: DeconzChip, parameter: NetworkParameter, value: Any) -> dict[str, Any]:
    _index, kind = NETWORK_PARAMETER_TYPES[parameter]
    body = bytes([parameter]) + kind(value).serialize()
    return _answer(chip.protocol.handle(_frame(CommandId.write_parameter, 1, body)))


def _broadcast_request(request_id: int) -> bytes:
    dst = dt.DeconzAddressEndpoint.from_zigpy_type(
        t.AddrModeAddress(addr_mode=t.AddrMode.Broadcast, address=t.BroadcastAddress.RX_ON_WHEN_IDLE), 1
    )
    body = (
        bytes([request_id, 0])
        + dst.serialize()
        + dt.uint16_t(0x0104).serialize()
        + dt.uint16_t(0x0006).serialize()
        + bytes([1])
        + dt.LongOctetString(b"\x01\x01\x02").serialize()
        + bytes([dt.DeconzTransmitOptions.USE_NWK_KEY_SECURITY, 0])
    )
    return _frame(CommandId.aps_data_request, request_id, body)


def _network_up(chip: DeconzChip) -> None:
    """The parameters a network needs, then CONNECTED (the change follows the answer)."""
    assert _write(chip, NetworkParameter.nwk_panid, 0x1A62)["status"] == Status.SUCCESS
    assert _write(chip, NetworkParameter.channel_mask, 1 << CHANNEL)["status"] == Status.SUCCESS
    change = _frame(CommandId.change_network_state, 2, bytes([NetworkState.CONNECTED]), payload_length=False)
    assert _answer(chip.protocol.handle(change))["status"] == Status.SUCCESS


def test_a_command_the_firmware_does_not_know_is_answered_unsupported() -> None:
    chip = DeconzChip(None)
    assert chip.protocol.handle(bytes([0x55, 7, 0, 5, 0])) == bytes([0x55, 7, Status.UNSUPPORTED, 5, 0])
    # mac_poll is a notification the firmware sends; a host sending it gets UNSUPPORTED, with the
    # (empty) payload length its schema has.
    answer = _answer(chip.protocol.handle(_frame(CommandId.mac_poll, 8)))
    assert (answer["seq"], answer["status"], answer["payload_length"]) == (8, Status.UNSUPPORTED, 0)


def test_unknown_parameters_and_endpoint_slots_are_unsupported() -> None:
    chip = DeconzChip(None)
    unknown = _answer(chip.protocol.handle(_frame(CommandId.read_parameter, 3, b"\x99")))
    assert unknown["status"] == Status.UNSUPPORTED and unknown["parameter_id"] == 0x99
    for index in range(4):
        slot = _answer(chip.protocol.handle(_frame(CommandId.read_parameter, 4, bytes([0x13, index]))))
        assert slot["status"] == Status.SUCCESS
    past = _answer(chip.protocol.handle(_frame(CommandId.read_parameter, 5, bytes([0x13, 4]))))
    assert past["status"] == Status.UNSUPPORTED
    version = _answer(chip.protocol.handle(_frame(CommandId.version, 6, bytes(4), payload_length=False)))
    assert version["version"] == FIRMWARE_VERSION and version["version"].platform.name == "Conbee_II"


def test_a_frame_whose_length_field_disagrees_is_dropped() -> None:
    chip = DeconzChip(None)
    assert chip.protocol.handle(bytes([CommandId.device_state, 1, 0, 9, 0, 0, 0, 0])) is None
    assert chip.protocol.dropped == 1


async def test_aps_requests_fill_the_queue_then_busy_until_a_confirm_is_fetched() -> None:
    chip = DeconzChip(None)
    line = _Line()
    chip.serial_port().connected(line)
    offline = _answer(chip.protocol.handle(_broadcast_request(1)))
    assert offline["status"] == Status.NO_NETWORK
    _network_up(chip)
    changed = await line.notification()
    assert chip.network_up and changed[0] == CommandId.device_state_changed
    assert changed[1] == 0, "notifications carry sequence number 0, which zigpy-deconz never uses"
    assert _answer(changed)["device_state"].network_state == NetworkState2.CONNECTED
    free = DeviceStateFlags.APSDE_DATA_REQUEST_FREE_SLOTS_AVAILABLE
    answers = [_answer(chip.protocol.handle(_broadcast_request(10 + n))) for n in range(APS_QUEUE_SIZE)]
    assert all(answer["status"] == Status.SUCCESS for answer in answers)
    assert free in answers[-2]["device_state"].device_state
    assert free not in answers[-1]["device_state"].device_state, "the last slot is taken"
    busy = _answer(chip.protocol.handle(_broadcast_request(20)))
    assert busy["status"] == Status.BUSY
    ready = _answer(await line.notification())
    assert DeviceStateFlags.APSDE_DATA_CONFIRM in ready["device_state"].device_state
    confirm = _answer(chip.protocol.handle(_frame(CommandId.aps_data_confirm, 21)))
    assert confirm["status"] == Status.SUCCESS and confirm["request_id"] == 10
    assert confirm["confirm_status"] == 0 and free in confirm["device_state"].device_state
    assert _answer(chip.protocol.handle(_broadcast_request(22)))["status"] == Status.SUCCESS
    chip.close()


async def test_zigpy_deconz_ignores_an_answer_it_does_not_know_and_goes_on(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    api = running.app._api
    api._uart.send(bytes([0x55, 0xF0, 0, 5, 0]))  # a command id the firmware does not have
    await asyncio.wait_for(api.get_device_state(), TIMEOUT)  # answered after the unknown one
    assert "Unknown command received" in caplog.text


async def test_a_dropped_link_is_a_lost_connection_for_zigpy_deconz(running: Running) -> None:
    assert running.control.drop_link() is True
    await asyncio.wait_for(running.listener.lost, TIMEOUT)
    assert running.chip.network_up, "the firmware keeps its network when only the line drops"


async def test_a_hung_firmware_leaves_zigpy_deconz_commands_unanswered(running: Running) -> None:
    running.chip.faults.muted = True
    with pytest.raises(TimeoutError):
        await running.app._api.get_device_state()  # zigpy-deconz's own 1.8 s command timeout
    running.control.clear_faults()
    state = await asyncio.wait_for(running.app._api.get_device_state(), TIMEOUT)
    assert state.network_state == NetworkState2.CONNECTED


async def test_zigpy_deconz_forms_over_tcp_as_with_a_network_attached_stick(tmp_path: Path) -> None:
    chip = DeconzChip(tmp_path / "deconz.json", switches=1)
    line = TcpLine(chip.serial_port(), "127.0.0.1", 0)
    address = await line.start()
    app = await ControllerApplication.new(
        deconz_config(tmp_path, address.replace("tcp://", "socket://")), auto_form=True, start_radio=False
    )
    listener = Listener(app)
    app.add_listener(listener)
    try:
        await asyncio.wait_for(app.startup(auto_form=True), 4 * TIMEOUT)
        assert chip.network_up and app.state.node_info.model == "Conbee II"
        [node] = chip.world.nodes.values()
        await app.permit(60)  # the switch waits in pairing mode and joins at once
        await asyncio.wait_for(listener.initialized(node.switch.ieee), TIMEOUT)
    finally:
        await app.shutdown()
        chip.close()
        await line.stop()


async def test_a_backup_and_an_energy_scan(running: Running) -> None:
    device = await running.join_switch()
    backup = await asyncio.wait_for(running.app.backups.create_backup(load_devices=True), TIMEOUT)
    info = backup.network_info
    parameters = running.chip.parameters
    assert bytes(info.network_key.key) == parameters.network_key
    assert info.network_key.tx_counter == parameters.nwk_frame_counter > 0
    assert info.extended_pan_id == running.chip.world.running
    assert backup.node_info.ieee == running.chip.ieee != device.ieee
    energies = await asyncio.wait_for(
        running.app.energy_scan(t.Channels.from_channel_list([11, 15, 25]), 1, 1), TIMEOUT
    )
    assert set(energies) == {11, 15, 25}


async def test_the_coordinator_leaves_its_network_and_comes_back_to_the_same_one(running: Running) -> None:
    device = await running.join_switch()
    network = running.chip.world.running
    await asyncio.wait_for(running.app._change_network_state(NetworkState.OFFLINE), TIMEOUT)
    assert not running.chip.network_up and running.chip.world.running is None
    with pytest.raises(zigpy.exceptions.DeliveryError, match="NO_NETWORK"):
        await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    await asyncio.wait_for(running.app._change_network_state(NetworkState.CONNECTED), TIMEOUT)
    assert running.chip.world.running == network
    await asyncio.wait_for(device.endpoints[1].on_off.on(), TIMEOUT)
    assert running.chip.world.nodes[device.ieee].switch.relay is True
