"""The virtual adapter under the real zigpy stack, in process: interview, commands, reports, restart.

Every wait is on a zigpy event (listener call, cluster event, response), bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
import zigpy.device
import zigpy.exceptions
import zigpy.types as t
import zigpy.zdo.types as zdo_t
from zigpy.zcl import Cluster, foundation

from z2m_qbkg40lm.devices.qbkg40lm import ENDPOINT_PATCHES, LUMI_CLUSTER
from z2m_qbkg40lm.sim import virtual_radio
from z2m_qbkg40lm.sim.virtual_radio import SimulationError, VirtualControllerApplication
from z2m_qbkg40lm.zigbee.lumi_cluster import (
    make_device_resolver,
    register_manufacturer_clusters,
    registered_cluster,
)

TIMEOUT = 5
MODEL = "lumi.switch.b1nc01"
LUMI = 0x115F

register_manufacturer_clusters([LUMI_CLUSTER])


class Listener:
    """zigpy application listener: a future per interviewed device, and a record of the rest."""

    def __init__(self, app: VirtualControllerApplication) -> None:
        self._app = app
        self._initialized: dict[t.EUI64, asyncio.Future[zigpy.device.ZigbeeDevice]] = {}
        self._left: dict[t.EUI64, asyncio.Future[None]] = {}
        self.joined: list[t.EUI64] = []
        self.failed: list[t.EUI64] = []

    def initialized(self, ieee: t.EUI64) -> asyncio.Future[zigpy.device.ZigbeeDevice]:
        return self._initialized.setdefault(ieee, asyncio.get_running_loop().create_future())

    def left(self, ieee: t.EUI64) -> asyncio.Future[None]:
        return self._left.setdefault(ieee, asyncio.get_running_loop().create_future())

    def device_joined(self, device: zigpy.device.ZigbeeDevice) -> None:
        self.joined.append(device.ieee)

    def device_initialized(self, device: zigpy.device.ZigbeeDevice) -> None:
        if device.ieee != self._app.state.node_info.ieee and not self.initialized(device.ieee).done():
            self.initialized(device.ieee).set_result(device)

    def device_init_failure(self, device: zigpy.device.ZigbeeDevice) -> None:
        self.failed.append(device.ieee)

    def device_left(self, device: zigpy.device.ZigbeeDevice) -> None:
        if not self.left(device.ieee).done():
            self.left(device.ieee).set_result(None)


class Running:
    """A started virtual adapter, its listener, and every packet it handed to zigpy."""

    def __init__(self, app: VirtualControllerApplication, listener: Listener, packets: list[t.ZigbeePacket]):
        self.app = app
        self.listener = listener
        self.packets = packets

    @property
    def switch_text(self) -> str:
        return "0x" + str(self.app.simulated_switches[0].ieee).replace(":", "")

    async def switch_device(self, index: int = 0) -> zigpy.device.ZigbeeDevice:
        """The zigpy device of a simulated switch, once interviewed."""
        ieee = self.app.simulated_switches[index].ieee
        device = self.app.devices.get(ieee)
        if isinstance(device, zigpy.device.ZigbeeDevice) and device.is_initialized:
            return device
        return await asyncio.wait_for(self.listener.initialized(ieee), TIMEOUT)


async def start(config: dict[str, Any]) -> Running:
    app: VirtualControllerApplication = await VirtualControllerApplication.new(
        config,
        auto_form=True,
        start_radio=False,
        device_resolver=make_device_resolver({MODEL: ENDPOINT_PATCHES}),
    )
    listener = Listener(app)
    app.add_listener(listener)
    packets: list[t.ZigbeePacket] = []
    deliver = app.packet_received

    def recording(packet: t.ZigbeePacket) -> None:
        packets.append(packet)
        deliver(packet)

    app.packet_received = recording  # type: ignore[method-assign]
    await app.startup(auto_form=True)
    return Running(app, listener, packets)


def app_config(tmp_path: Path, switches: int | None = None) -> dict[str, Any]:
    """zigpy's configuration of a virtual adapter with its files under `tmp_path`."""
    virtual: dict[str, Any] = {"state_file": str(tmp_path / "virtual.json")}
    if switches is not None:
        virtual["switches"] = switches
    return {
        "device": {"path": "virtual"},
        "database_path": str(tmp_path / "zigbee.db"),
        "ota": {"enabled": False},
        "topology_scan_enabled": False,
        "network": {"channel": 15},
        "virtual": virtual,
    }


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return app_config(tmp_path)


@pytest.fixture
async def running(config: dict[str, Any]) -> AsyncIterator[Running]:
    started = await start(config)
    try:
        yield started
    finally:
        await started.app.shutdown()


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


def saved_state(app: VirtualControllerApplication) -> Any:
    return json.loads(Path(app.config["virtual"]["state_file"]).read_text(encoding="utf-8"))


class StateWrites:
    """Every write of a virtual adapter's state file (the writer wrapped), in order, awaitable."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.texts: list[str] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        write = virtual_radio.write_atomically

        def recording(path: Path, text: str, *, mode: int | None = None) -> None:
            write(path, text, mode=mode)
            self.texts.append(text)
            self._queue.put_nowait(json.loads(text))

        monkeypatch.setattr(virtual_radio, "write_atomically", recording)

    async def next(self) -> Any:
        """The content of the next write (bounded by TIMEOUT: a coalesced write comes within a second)."""
        return await asyncio.wait_for(self._queue.get(), TIMEOUT)


@pytest.fixture
def state_writes(monkeypatch: pytest.MonkeyPatch) -> StateWrites:
    return StateWrites(monkeypatch)


def files_named(folder: Path, prefix: str) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith(prefix))


def eui64(text: str) -> t.EUI64:
    digits = text.removeprefix("0x")
    return t.EUI64.convert(":".join(digits[i : i + 2] for i in range(0, 16, 2)))


# --- start-up and interview --------------------------------------------------------------------------


async def test_pre_paired_switch_is_interviewed(running: Running) -> None:
    device = await running.switch_device()
    assert (device.model, device.manufacturer) == (MODEL, "LUMI")
    assert device.node_desc is not None and device.node_desc.manufacturer_code == LUMI
    assert device.lqi == 160
    assert running.listener.failed == []
    assert device.ieee in running.listener.joined
    assert 41 in device.endpoints and 0x0012 in device.endpoints[41].in_clusters
    lumi_class = registered_cluster(0xFCC0)
    assert lumi_class is not None
    assert isinstance(device.endpoints[1].in_clusters[0xFCC0], lumi_class)
    assert device.endpoints[1].lumi is device.endpoints[1].in_clusters[0xFCC0]


async def test_fingerprint_variant_gets_its_hidden_parts_from_the_resolver(config: dict[str, Any]) -> None:
    config["virtual"]["variant"] = "fingerprint"
    running = await start(config)
    try:
        device = await running.switch_device()
        assert device.original_signature is not None
        assert list(device.original_signature["endpoints"]) == [1]
        assert 0xFCC0 not in device.original_signature["endpoints"][1]["input_clusters"]
        assert 0xFCC0 in device.endpoints[1].in_clusters
        with events(device.endpoints[41].in_clusters[0x0012]) as presses:
            await running.app.simulation.press(running.switch_text, "double")
            assert (await next_event(presses)).value == 2
    finally:
        await running.app.shutdown()


async def test_coordinator_answers_like_a_lumi_friendly_radio(running: Running) -> None:
    coordinator = running.app._device
    assert coordinator.node_desc is not None
    assert coordinator.node_desc.manufacturer_code == LUMI
    assert coordinator.node_desc.logical_type == zdo_t.LogicalType.Coordinator
    assert 1 in coordinator.endpoints
    status, neighbours = await coordinator.zdo.Mgmt_Lqi_req(0)
    assert status == zdo_t.Status.SUCCESS
    [neighbour] = neighbours.NeighborTableList
    assert (neighbour.ieee, neighbour.lqi) == (running.app.simulated_switches[0].ieee, 160)


# --- commands, reads, writes, reports --------------------------------------------------------------------


async def test_on_gives_a_default_response_and_a_report(running: Running) -> None:
    device = await running.switch_device()
    on_off = device.endpoints[1].on_off
    with events(on_off) as reports:
        response = await on_off.on()
        assert response.status == foundation.Status.SUCCESS
        report = await next_event(reports)
    assert (report.attribute_name, report.value, report.endpoint_id) == ("on_off", True, 1)
    assert running.app.simulated_switches[0].relay is True
    with events(on_off) as reports:
        await on_off.toggle()
        assert bool((await next_event(reports)).value) is False


async def test_named_lumi_reads_carry_the_manufacturer_code(running: Running) -> None:
    device = await running.switch_device()
    lumi = device.endpoints[1].lumi
    names = ["operation_mode", "power_outage_memory", "flip_indicator_light", "mode"]
    success, failure = await lumi.read_attributes(names, manufacturer=LUMI)
    assert failure == {}
    assert success == {
        "operation_mode": 1,
        "power_outage_memory": False,
        "flip_indicator_light": 0,
        "mode": 1,
    }
    # The cluster class supplies the code by itself...
    success, _ = await lumi.read_attributes(["heartbeat"])
    assert success["heartbeat"] == running.app.simulated_switches[0].heartbeat_body()
    # ...and the switch refuses a read without it.
    response = await lumi.read_attributes_raw([0x0200], manufacturer=None)
    assert response.status_records[0].status == foundation.Status.UNSUPPORTED_ATTRIBUTE


async def test_lumi_write_then_read(running: Running, state_writes: StateWrites) -> None:
    device = await running.switch_device()
    lumi = device.endpoints[1].lumi
    [records] = await lumi.write_attributes({"operation_mode": 0, "power_outage_memory": True})
    assert records and all(record.status == foundation.Status.SUCCESS for record in records)
    success, _ = await lumi.read_attributes(["operation_mode", "power_outage_memory"], allow_cache=False)
    assert success == {"operation_mode": 0, "power_outage_memory": True}
    switch = running.app.simulated_switches[0]
    assert (switch.operation_mode, switch.power_outage_memory) == (0, True)
    saved = await state_writes.next()  # settings may wait up to a second (SAVE_INTERVAL)
    assert saved["switches"][0]["operation_mode"] == "decoupled"
    assert saved == saved_state(running.app)


async def test_press_reports_present_value_on_endpoint_41(running: Running) -> None:
    device = await running.switch_device()
    with events(device.endpoints[41].multistate_input) as presses:
        await running.app.simulation.press(running.switch_text, "single")
        event = await next_event(presses)
    assert (event.endpoint_id, event.cluster_id, event.attribute_name, event.value) == (
        41,
        0x0012,
        "present_value",
        1,
    )
    assert running.packets[-1].lqi == 160


async def test_heartbeat_reports_the_tlv(running: Running) -> None:
    device = await running.switch_device()
    with events(device.endpoints[1].lumi) as reports:
        await running.app.simulation.heartbeat(running.switch_text, temperature=25)
        event = await next_event(reports)
    assert (event.attribute_id, event.attribute_name, event.manufacturer_code) == (0x00F7, "heartbeat", LUMI)
    assert event.value == running.app.simulated_switches[0].heartbeat_body()
    assert b"\x03\x28\x19" in event.value  # 25 °C


async def test_power_cycle_announces_and_restores_with_outage_memory(running: Running) -> None:
    device = await running.switch_device()
    on_off = device.endpoints[1].on_off
    await device.endpoints[1].lumi.write_attributes({"power_outage_memory": True})
    await on_off.on()
    announced: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    class Announce:
        def device_announce(self, _device: zigpy.device.ZigbeeDevice) -> None:
            if not announced.done():
                announced.set_result(None)

    device.zdo.add_listener(Announce())
    with events(on_off) as reports, events(device.endpoints[1].lumi) as heartbeats:
        await running.app.simulation.power_cycle(running.switch_text)
        await asyncio.wait_for(announced, TIMEOUT)
        assert bool((await next_event(reports)).value) is True
        assert b"\x05\x21\x02\x00" in (await next_event(heartbeats)).value  # one outage: counter 2
    await device.endpoints[1].lumi.write_attributes({"power_outage_memory": False})
    with events(on_off) as reports:
        await running.app.simulation.power_cycle(running.switch_text)
        assert bool((await next_event(reports)).value) is False
    assert running.app.simulated_switches[0].power_outages == 2
    # zigpy's group rescan after the announcement was answered too.
    assert running.listener.failed == []


async def test_groups_reach_the_switch(running: Running) -> None:
    device = await running.switch_device()
    assert await device.endpoints[1].add_to_group(0x0042, "hall") == foundation.Status.SUCCESS
    assert running.app.simulated_switches[0].groups == {0x0042}
    with events(device.endpoints[1].on_off) as reports:
        await running.app.groups[0x0042].endpoint.on_off.on()
        assert bool((await next_event(reports)).value) is True


# --- silent switches, unknown switches ------------------------------------------------------------


async def test_silent_switch_gives_delivery_errors(running: Running) -> None:
    device = await running.switch_device()
    await running.app.simulation.set_responsive(running.switch_text, False)
    with pytest.raises(zigpy.exceptions.DeliveryError, match="does not answer"):
        await device.endpoints[1].on_off.on()
    before = len(running.packets)
    await running.app.simulation.press(running.switch_text)
    assert len(running.packets) == before
    await running.app.simulation.set_responsive(running.switch_text.upper().replace("0X", ""), True)
    response = await device.endpoints[1].on_off.on()
    assert response.status == foundation.Status.SUCCESS


async def test_simulation_errors_are_clear(running: Running) -> None:
    simulation = running.app.simulation
    with pytest.raises(
        SimulationError, match=r"no simulated switch 0x0000000000000001; the simulated switches are 0x54ef44"
    ):
        await simulation.press("0x0000000000000001")
    with pytest.raises(SimulationError, match="not an IEEE address"):
        await simulation.press("hall_switch")
    with pytest.raises(SimulationError, match="quadruple"):
        await simulation.press(running.switch_text, "quadruple")
    with pytest.raises(SimulationError, match="temperature"):
        await simulation.heartbeat(running.switch_text, 1000.0)
    colons = str(running.app.simulated_switches[0].ieee)
    await simulation.heartbeat(colons)  # 54:ef:44:… works too
    [listed] = await simulation.switches()
    assert listed["ieee"] == running.switch_text
    assert (listed["model"], listed["linkquality"], listed["responsive"]) == (MODEL, 160, True)


# --- joining and leaving ----------------------------------------------------------------------------------


async def test_new_switch_joins_only_while_permit_join_is_open(running: Running) -> None:
    await running.switch_device()
    with pytest.raises(SimulationError, match="permit join is closed"):
        await running.app.simulation.join_new_switch()
    await running.app.permit(60)
    text = await running.app.simulation.join_new_switch()
    device = await asyncio.wait_for(running.listener.initialized(eui64(text)), TIMEOUT)
    assert device.model == MODEL
    assert device.ieee in running.listener.joined
    assert len(await running.app.simulation.switches()) == 2
    await running.app.permit(0)
    with pytest.raises(SimulationError, match="permit join is closed"):
        await running.app.simulation.join_new_switch()


async def test_removed_switch_leaves_the_simulation(running: Running) -> None:
    device = await running.switch_device()
    await running.app.remove(device.ieee)
    await asyncio.wait_for(running.listener.left(device.ieee), TIMEOUT)
    assert running.app.simulated_switches == []
    saved = saved_state(running.app)
    assert saved["switches"] == []


# --- persistence ----------------------------------------------------------------------------------


async def test_restart_resumes_network_and_devices(config: dict[str, Any]) -> None:
    first = await start(config)
    try:
        device = await first.switch_device()
        await device.endpoints[1].on_off.on()
        network = first.app.state.network_info
        coordinator = first.app.state.node_info.ieee
    finally:
        await first.app.shutdown()

    second = await start(config)
    try:
        resumed = second.app.state.network_info
        assert (resumed.extended_pan_id, resumed.pan_id, resumed.channel) == (
            network.extended_pan_id,
            network.pan_id,
            network.channel,
        )
        assert resumed.network_key.key == network.network_key.key
        assert second.app.state.node_info.ieee == coordinator
        restored = second.app.devices[device.ieee]
        assert isinstance(restored, zigpy.device.ZigbeeDevice) and restored.is_initialized
        assert second.listener.joined == []
        assert all(packet.cluster_id != zdo_t.ZDOCmd.Device_annce for packet in second.packets)
        assert 41 in restored.endpoints
        lumi_class = registered_cluster(0xFCC0)
        assert lumi_class is not None and isinstance(restored.endpoints[1].in_clusters[0xFCC0], lumi_class)
        assert restored.endpoints[1].on_off.get("on_off") == t.Bool.true  # zigpy's cache, from the database
        assert second.app.simulated_switches[0].relay is True  # the switch's state, from the state file
        response = await restored.endpoints[1].on_off.off()
        assert response.status == foundation.Status.SUCCESS
    finally:
        await second.app.shutdown()


async def test_without_state_file_the_network_still_resumes_from_the_database(config: dict[str, Any]) -> None:
    config["virtual"] = {"switches": 2, "linkquality": 99}
    first = await start(config)
    try:
        await first.switch_device(0)
        device = await first.switch_device(1)
        assert device.lqi == 99
        extended_pan_id = first.app.state.network_info.extended_pan_id
    finally:
        await first.app.shutdown()
    second = await start(config)
    try:
        assert second.app.state.network_info.extended_pan_id == extended_pan_id
    finally:
        await second.app.shutdown()


async def test_state_file_is_written_whole(running: Running, tmp_path: Path) -> None:
    await running.switch_device()
    saved = saved_state(running.app)
    assert saved["version"] == 1
    assert saved["network"]["network_info"]["channel"] == 15
    assert [record["ieee"] for record in saved["switches"]] == [str(running.app.simulated_switches[0].ieee)]
    assert files_named(tmp_path, "virtual") == ["virtual.json"]  # no temporary file left behind


def test_configuration_defaults_and_validation() -> None:
    app = VirtualControllerApplication({"device": {"path": "virtual"}})
    assert app.config["virtual"] == {"switches": 1, "state_file": None, "linkquality": 160, "variant": "full"}
    with pytest.raises(vol.Invalid, match="linkquality"):
        VirtualControllerApplication({"device": {"path": "virtual"}, "virtual": {"linkquality": 300}})
    with pytest.raises(vol.Invalid, match="switches"):
        VirtualControllerApplication({"device": {"path": "virtual"}, "virtual": {"switches": -1}})


async def test_frames_find_a_switch_by_address_after_another_left_and_one_joined(running: Running) -> None:
    gone = await running.switch_device()
    old_nwk = gone.nwk
    await running.app.remove(gone.ieee)
    await asyncio.wait_for(running.listener.left(gone.ieee), TIMEOUT)
    await running.app.permit(60)
    text = await running.app.simulation.join_new_switch()
    device = await asyncio.wait_for(running.listener.initialized(eui64(text)), TIMEOUT)
    [switch] = running.app.simulated_switches
    assert device.nwk == switch.nwk
    response = await device.endpoints[1].on_off.on()  # by network address
    assert response.status == foundation.Status.SUCCESS and switch.relay is True
    await running.app.simulation.heartbeat(text.upper().replace("0X", "0x"))  # by IEEE text
    if old_nwk != switch.nwk:
        stale = t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=old_nwk)
        assert running.app._find_switch(stale) is None
