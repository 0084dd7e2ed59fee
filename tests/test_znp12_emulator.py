"""The real zigpy-znp ControllerApplication against the emulated CC2531 running Z-Stack Home 1.2.

zigpy-znp takes its 1.2 path here (no BDB: `ZDO.StartupFromApp`, packed structs, the 1.2 NVRAM
items), and the switches, joins and the data path are the shared world's, as with Z-Stack 3.30.
Every wait is on a zigpy or zigpy-znp event, bounded by TIMEOUT.
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
import zigpy.types as t
import zigpy_znp.commands as c
import zigpy_znp.types as znp_t
from zigpy.zcl import foundation
from zigpy_znp import const
from zigpy_znp.exceptions import CommandNotRecognized
from zigpy_znp.types.nvids import OsalNvIds
from zigpy_znp.zigbee.application import ControllerApplication

from tests.test_znp_emulator import (
    CHANNEL,
    MODEL,
    TIMEOUT,
    Listener,
    Running,
    events,
    ieee_text,
    next_event,
    zigpy_config,
)
from z2m_qbkg40lm.devices.qbkg40lm import ENDPOINT_PATCHES
from z2m_qbkg40lm.sim.emulator import Emulator, EmulatorOptions, OptionsError, build_options
from z2m_qbkg40lm.sim.znp.firmware import ZStackFirmware
from z2m_qbkg40lm.sim.znp.firmware12 import ZStack12Firmware
from z2m_qbkg40lm.sim.znp.nvram import LEGACY, ZSTACK
from z2m_qbkg40lm.zigbee.lumi_cluster import make_device_resolver


def options(folder: Path) -> EmulatorOptions:
    return EmulatorOptions(listen="tcp://127.0.0.1:0", nvram=folder / "znp12.json", switches=0, chip="znp12")


@contextlib.asynccontextmanager
async def running_stack(folder: Path, **extra: Any) -> AsyncIterator[Running]:
    """The Z-Stack 1.2 emulator (NVRAM in `folder`) and a started zigpy-znp application."""
    async with Emulator(options(folder)) as emulator:
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


def firmware_of(running: Running) -> ZStack12Firmware:
    firmware = running.emulator.chip
    assert isinstance(firmware, ZStack12Firmware)
    return firmware


# --- what zigpy-znp detects, forming and resuming ----------------------------------------------------


async def test_zigpy_znp_detects_z_stack_home_1_2_on_a_cc2531(running: Running) -> None:
    znp = running.app._znp
    assert (znp.version, znp.nvram.align_structs) == (1.2, False)
    node = running.app.state.node_info
    assert (node.model, node.version) == ("CC2531", "Z-Stack Home 1.2 20211115")
    version = await znp.request(c.SYS.Version.Req())
    assert (version.ProductId, version.MajorRel, version.MinorRel, version.MaintRel) == (0, 2, 6, 3)
    assert (version.CodeRevision, version.BootloaderBuildType) == (20211115, None)


async def test_forms_a_network_from_an_empty_nvram_without_bdb(running: Running) -> None:
    firmware = firmware_of(running)
    info = running.app.state.network_info
    nib = firmware.nib
    assert firmware.formed and firmware.network_up
    assert info.channel == CHANNEL == nib.nwkLogicalChannel
    assert (info.pan_id, info.extended_pan_id) == (nib.nwkPanId, nib.extendedPANID)
    key = firmware.nvram.read(OsalNvIds.NWK_ACTIVE_KEY_INFO, znp_t.NwkKeyDesc)
    assert info.network_key.key == key.Key
    # Home 1.2 keeps the outgoing frame counter in NWKKEY (3.30: the security material table).
    firmware.nvram.store(
        OsalNvIds.NWKKEY,
        firmware.nvram.read(OsalNvIds.NWKKEY, znp_t.NwkActiveKeyItems).replace(FrameCounter=4242),
    )
    await running.app.load_network_info()
    assert running.app.state.network_info.network_key.tx_counter == 4242
    json_form = firmware.nvram.to_json()
    assert json_form["extended"] == {}, "Z-Stack Home 1.2 has no extended NV items"
    assert "BDBNODEISONANETWORK" not in json_form["legacy"]
    assert "HAS_CONFIGURED_ZSTACK1" in json_form["legacy"]
    # zigpy-znp wrote the global TC link key where Home 1.2 keeps it.
    global_key = firmware.nvram.read(OsalNvIds.TCLK_SEED, znp_t.TCLinkKey)
    assert global_key.Key == const.DEFAULT_TC_LINK_KEY
    assert running.app._device.is_initialized


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
        assert await resumed.endpoints[1].on_off.toggle() is not None
        assert second.listener.joined == []
    assert "Network resumed" in caplog.text
    assert "Network formed" not in caplog.text
    assert "Start-up options" not in caplog.text, "the NVRAM was not reset"


async def test_a_reset_holds_the_network_until_the_host_starts_it(running: Running) -> None:
    firmware = firmware_of(running)
    znp = running.app._znp
    await znp.reset()
    assert firmware.formed and not firmware.network_up
    started = znp.wait_for_response(
        c.ZDO.StateChangeInd.Callback(State=znp_t.DeviceState.StartedAsCoordinator)
    )
    answer = await znp.request(c.ZDO.StartupFromApp.Req(StartDelay=100))
    assert answer.State == c.zdo.StartupState.RestoredNetworkState
    await asyncio.wait_for(started, TIMEOUT)
    assert firmware.network_up


# --- joining and the data path ------------------------------------------------------------------------


async def test_a_switch_joins_and_is_interviewed(running: Running) -> None:
    device = await running.join_switch()
    assert (device.model, device.manufacturer) == (MODEL, "LUMI")
    assert 41 in device.endpoints and 0xFCC0 in device.endpoints[1].in_clusters
    # The address manager array holds it (as a child of the coordinator), where backups read it.
    backup = await running.app.backups.create_backup(load_devices=True)
    assert backup.network_info.nwk_addresses.get(device.ieee) == device.nwk
    assert device.ieee in backup.network_info.children
    assert backup.network_info.key_table == [], "Home 1.2 keeps no per-device link keys"


async def test_permit_join_on_the_coordinator_is_indicated(running: Running) -> None:
    znp = running.app._znp
    opened = znp.wait_for_response(c.ZDO.PermitJoinInd.Callback(Duration=60))
    await running.app.permit(60)
    await asyncio.wait_for(opened, TIMEOUT)
    closed = znp.wait_for_response(c.ZDO.PermitJoinInd.Callback(Duration=0))
    await running.app.permit(0)
    await asyncio.wait_for(closed, TIMEOUT)


async def test_zcl_goes_both_ways(running: Running) -> None:
    device = await running.join_switch()
    on_off = device.endpoints[1].on_off
    with events(on_off) as reports:
        response = await on_off.on()
        assert response[1] == foundation.Status.SUCCESS
        report = await next_event(reports)
    assert (report.attribute_id, report.value) == (0x0000, True)
    assert running.emulator.chip.world.nodes[device.ieee].switch.relay is True
    lumi = device.endpoints[1].in_clusters[0xFCC0]
    success, failure = await lumi.read_attributes([0x0200], manufacturer=0x115F)
    assert success == {0x0200: 1} and failure == {}


async def test_a_press_is_reported_on_endpoint_41(running: Running) -> None:
    device = await running.join_switch()
    with events(device.endpoints[41].in_clusters[0x0012]) as presses:
        running.emulator.control.press(ieee_text(device), "single")
        event = await next_event(presses)
    assert (event.attribute_id, event.value) == (0x0055, 1)


# --- what Z-Stack Home 1.2 does not know, and its own answers ------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        c.SYS.GetTime.Req(),
        c.AppConfig.BDBStartCommissioning.Req(Mode=c.app_config.BDBCommissioningMode.NwkFormation),
        c.SYS.NVLength.Req(SysId=ZSTACK, ItemId=LEGACY, SubId=int(OsalNvIds.NIB)),
        c.UTIL.AssocRemove.Req(IEEE=t.EUI64.convert("00:12:4b:00:00:00:00:02")),
    ],
    ids=["unknown", "bdb", "extended-nv", "assoc-remove"],
)
async def test_an_unknown_request_is_not_recognized(running: Running, request_: Any) -> None:
    with pytest.raises(CommandNotRecognized):
        await running.app._znp.request(request_)


async def test_tx_power_is_answered_with_the_power_set(running: Running) -> None:
    answer = await running.app._znp.request(c.SYS.SetTxPower.Req(TXPower=20))
    assert answer.StatusOrPower == 4, "the CC2531 gives 4 dBm at most"


def test_a_state_file_of_the_other_firmware_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "znp.json"
    ZStackFirmware(path).close()
    with pytest.raises(ValueError, match=r"Z-Stack 3\.30 chip, not of Z-Stack Home 1\.2"):
        ZStack12Firmware(path)
    # A file written before the firmware was named in it is Z-Stack 3.30's.
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["firmware"]
    path.write_text(json.dumps(data), encoding="utf-8")
    old = ZStackFirmware(path)
    old.close()
    assert old.chip_ieee == t.EUI64.convert(data["chip_ieee"])
    with pytest.raises(ValueError, match=r"Z-Stack 3\.30 chip, not of Z-Stack Home 1\.2"):
        ZStack12Firmware(path)
    ZStack12Firmware(tmp_path / "znp12.json").close()
    with pytest.raises(ValueError, match=r"Z-Stack Home 1\.2 chip, not of Z-Stack 3\.30"):
        ZStackFirmware(tmp_path / "znp12.json")


def test_the_chip_option_names_znp12() -> None:
    common: dict[str, Any] = {
        "listen": "tcp://127.0.0.1:0",
        "nvram": None,
        "switches": 0,
        "mqtt": None,
        "base_topic": None,
        "config": None,
        "linkquality": 100,
    }
    assert build_options(**common, chip="znp12").chip == "znp12"
    with pytest.raises(OptionsError, match="znp12"):
        build_options(**common, chip="cc2531")
