"""The simulated switch's OnWithTimedOff and prevent-reset firmware on both radio paths, and the
`simulation/firmware` request on the broker.

- The virtual adapter in process under zigpy, and the Z-Stack emulator under zigpy-znp with its
  MQTT control on the real broker: zigpy sends OnWithTimedOff and sees the switch switch off by
  its own report; the firmware setting makes the switch refuse 0x42; the prevent-reset report
  reaches zigpy, zigpy's write of the answer clears the count, and left unanswered the switch
  leaves the network (and, on the emulator, joins again with the same address).
- The daemon as a process with the virtual adapter: `simulation/firmware` reads and changes the
  settings, with errors that name the bad key, and `on_time` on `/set` ends with the switch's own
  OFF report.

Every wait is on an event (a zigpy cluster event, a listener call, an MQTT message), bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import zigpy.types as t
from zigpy.zcl import foundation

from tests.support import (
    BROKER_HOST,
    BROKER_PORT,
    DaemonProcess,
    clear_retained,
    random_base_topic,
    seed_virtual_switch,
    watching,
    write_config,
)
from tests.test_virtual_radio import Running as VirtualRunning
from tests.test_virtual_radio import events, next_event, saved_state
from tests.test_virtual_radio import start as start_virtual
from tests.test_znp_emulator import Running as ZnpRunning
from tests.test_znp_emulator import ieee_text, running_stack
from z2m_qbkg40lm.config import MqttConfig
from z2m_qbkg40lm.sim.emulator import EmulatorOptions
from z2m_qbkg40lm.sim.prevent_reset import ANSWER, ATTR_PREVENT_RESET, TRIGGER
from z2m_qbkg40lm.sim.virtual_radio import SimulationError
from z2m_qbkg40lm.sim.znp.firmware import ZStackFirmware

TIMEOUT = 10
LUMI = 0x115F
MODEL = "lumi.switch.b1nc01"
# Quick timings: the first report at once after joining, two unanswered reports 0.2 s apart, then
# the leave.
QUICK = {"prevent_reset_delay_s": 3600, "prevent_reset_retry_s": 0.2, "prevent_reset_attempts": 2}


def answer_record() -> list[foundation.Attribute]:
    """The hub's answer: Basic 0xFFF0 = aa 10 05 41 47 01 01 10 01 as an octet string."""
    value = foundation.TypeValue(type=t.uint8_t(0x41), value=t.LVBytes(ANSWER))
    return [foundation.Attribute(attrid=t.uint16_t(ATTR_PREVENT_RESET), value=value)]


@contextlib.contextmanager
def prevent_reset_reports(basic: Any) -> Iterator[asyncio.Queue[Any]]:
    """zigpy's reported-attribute events of Basic 0xFFF0 (an attribute zigpy does not know)."""
    with events(basic) as queue:
        filtered: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            while True:
                event = await queue.get()
                if event.attribute_id == ATTR_PREVENT_RESET:
                    filtered.put_nowait(event)

        task = asyncio.get_running_loop().create_task(pump())
        try:
            yield filtered
        finally:
            task.cancel()


# --- the virtual adapter under zigpy -----------------------------------------------------------------


@pytest.fixture
async def virtual(tmp_path: Path) -> AsyncIterator[VirtualRunning]:
    config = {
        "device": {"path": "virtual"},
        "database_path": str(tmp_path / "zigbee.db"),
        "ota": {"enabled": False},
        "topology_scan_enabled": False,
        "network": {"channel": 15},
        "virtual": {"state_file": str(tmp_path / "virtual.json")},
    }
    started = await start_virtual(config)
    try:
        yield started
    finally:
        await started.app.shutdown()


async def test_virtual_on_with_timed_off_ends_with_the_switchs_own_report(virtual: VirtualRunning) -> None:
    device = await virtual.switch_device()
    on_off = device.endpoints[1].on_off
    with events(on_off) as reports:
        response = await on_off.on_with_timed_off(on_off_control=0, on_time=3, off_wait_time=0)
        assert (response.command_id, response.status) == (0x42, foundation.Status.SUCCESS)
        assert bool((await next_event(reports)).value) is True
        assert bool((await next_event(reports)).value) is False  # 0.3 s later, unasked
    assert virtual.app.simulated_switches[0].relay is False


async def test_virtual_firmware_without_0x42_answers_unsupported(virtual: VirtualRunning) -> None:
    device = await virtual.switch_device()
    result = await virtual.app.simulation.firmware(virtual.switch_text, {"on_with_timed_off": False})
    assert result["firmware"]["on_with_timed_off"] is False
    assert saved_state(virtual.app)["switches"][0]["firmware"]["on_with_timed_off"] is False
    response = await device.endpoints[1].on_off.on_with_timed_off(0, 30, 0)
    assert response.status == foundation.Status.UNSUP_CLUSTER_COMMAND
    assert virtual.app.simulated_switches[0].relay is False
    with pytest.raises(SimulationError, match="unknown firmware setting"):
        await virtual.app.simulation.firmware(virtual.switch_text, {"on_with_timed": False})


async def test_virtual_prevent_reset_is_answered_through_zigpy(virtual: VirtualRunning) -> None:
    device = await virtual.switch_device()
    basic = device.endpoints[1].basic
    with prevent_reset_reports(basic) as reports:
        sent = await virtual.app.simulation.firmware(virtual.switch_text, send_prevent_reset=True)
        assert sent["prevent_reset"]["unanswered"] == 1
        report = await asyncio.wait_for(reports.get(), TIMEOUT)
    assert (report.manufacturer_code, bytes(report.value)) == (LUMI, TRIGGER)
    [records] = await basic.write_attributes_raw(answer_record(), manufacturer_code=LUMI)
    assert records[0].status == foundation.Status.SUCCESS
    status = (await virtual.app.simulation.firmware(virtual.switch_text))["prevent_reset"]
    assert (status["unanswered"], status["answers"], status["waiting_for"]) == (0, 1, "periodic")


async def test_virtual_switch_leaves_when_prevent_reset_is_never_answered(virtual: VirtualRunning) -> None:
    device = await virtual.switch_device()
    await virtual.app.simulation.firmware(virtual.switch_text, QUICK, send_prevent_reset=True)
    await asyncio.wait_for(virtual.listener.left(device.ieee), TIMEOUT)
    assert virtual.app.simulated_switches == []
    assert saved_state(virtual.app)["switches"] == []


# --- the Z-Stack emulator under zigpy-znp, its requests on the broker -------------------------------


@contextlib.asynccontextmanager
async def emulator_stack(folder: Path, base: str) -> AsyncIterator[ZnpRunning]:
    """The emulator with its MQTT control on `base`, and a started zigpy-znp application."""
    mqtt = MqttConfig(server=f"mqtt://{BROKER_HOST}:{BROKER_PORT}", base_topic=base)
    options = EmulatorOptions(nvram=folder / "znp.json", switches=0, mqtt=mqtt, base_topic=base)
    async with running_stack(folder, options) as running:
        yield running


async def test_emulator_switch_firmware_over_mqtt(tmp_path: Path) -> None:
    base = random_base_topic()
    async with emulator_stack(tmp_path, base) as running, watching(base) as watcher:
        await watcher.wait_for("bridge/emulator", lambda m: m.json() == {"state": "online"})
        device = await running.join_switch()
        name = ieee_text(device)
        on_off = device.endpoints[1].on_off

        # OnWithTimedOff through zigpy-znp: on, then off by the switch's own report.
        with events(on_off) as reports:
            response = await on_off.on_with_timed_off(0, 2, 0)
            assert response[1] == foundation.Status.SUCCESS
            assert bool((await next_event(reports)).value) is True
            assert bool((await next_event(reports)).value) is False

        # The firmware setting, over MQTT: 0x42 is then refused.
        refused = await watcher.request("simulation/firmware", {"id": name, "on_with_timed_off": False})
        assert refused["status"] == "ok", refused
        assert refused["data"]["firmware"]["on_with_timed_off"] is False
        response = await on_off.on_with_timed_off(0, 2, 0)
        assert response[1] == foundation.Status.UNSUP_CLUSTER_COMMAND

        bad = await watcher.request("simulation/firmware", {"id": name, "prevent_reset_attempts": 0})
        assert bad["status"] == "error" and "prevent_reset_attempts" in bad["error"], bad

        # Prevent reset: the report reaches zigpy-znp; zigpy's answer clears the count.
        basic = device.endpoints[1].basic
        with prevent_reset_reports(basic) as queue:
            sent = await watcher.request("simulation/firmware", {"id": name, "send_prevent_reset": True})
            assert sent["data"]["prevent_reset"]["unanswered"] == 1, sent
            report = await asyncio.wait_for(queue.get(), TIMEOUT)
        assert bytes(report.value) == TRIGGER
        [records] = await basic.write_attributes_raw(answer_record(), manufacturer_code=LUMI)
        assert records[0].status == foundation.Status.SUCCESS
        status = await watcher.request("simulation/firmware", {"id": name})
        assert status["data"]["prevent_reset"]["unanswered"] == 0, status

        # Never answered: the switch leaves, forgets the network, and can be paired again.
        quick = await watcher.request(
            "simulation/firmware", {"id": name, **QUICK, "send_prevent_reset": True}
        )
        assert quick["status"] == "ok", quick
        assert await asyncio.wait_for(running.listener.left.get(), TIMEOUT) == device.ieee
        [listed] = running.emulator.control.switches()
        assert listed["joined"] is False
        saved = json.loads((tmp_path / "znp.json").read_text(encoding="utf-8"))
        assert saved["switches"][0]["network"] is None and saved["switches"][0]["joined"] is False
        again = await running.join_switch(name)
        assert again.ieee == device.ieee and again.is_initialized


# --- the daemon with the virtual adapter, through the broker ----------------------------------------

NAME = "timed_switch"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A daemon whose one virtual switch is `NAME`; yields the base topic."""
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("firmware-e2e")
    data_dir = folder / "data"
    ieee = seed_virtual_switch(data_dir)
    config = write_config(
        folder / "configuration.yaml",
        base,
        serial={"adapter": "virtual"},
        devices={ieee: {"friendly_name": NAME}},
        advanced={"log_level": "info"},
    )
    process = DaemonProcess(config, data_dir)
    process.start()
    try:
        yield base
    finally:
        code = process.stop()
        clear_retained(base, [NAME])
        assert code == 0, process.log()


async def test_simulation_firmware_request_on_the_virtual_adapter(daemon: str) -> None:
    async with watching(daemon) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
        read = await watcher.request("simulation/firmware", {"id": NAME})
        assert read["status"] == "ok", read
        assert read["data"]["firmware"] == {
            "on_with_timed_off": True,
            "prevent_reset": True,
            "prevent_reset_delay_s": 300.0,
            "prevent_reset_interval_s": 3600.0,
            "prevent_reset_retry_s": 600.0,
            "prevent_reset_attempts": 4,
        }
        assert read["data"]["prevent_reset"]["waiting_for"] == "first"
        changed = await watcher.request("simulation/firmware", {"id": NAME, "prevent_reset_interval_s": 60})
        assert changed["data"]["firmware"]["prevent_reset_interval_s"] == 60.0, changed
        for payload, words in [
            ({"id": NAME, "reset_now": True}, "unknown firmware setting(s) reset_now"),
            ({"id": NAME, "on_with_timed_off": "no"}, "on_with_timed_off must be true or false"),
            ({"id": NAME, "send_prevent_reset": 1}, "send_prevent_reset must be true or false"),
            ({"id": "nobody"}, "Device 'nobody' does not exist"),
        ]:
            answer = await watcher.request("simulation/firmware", payload)
            assert answer["status"] == "error" and words in answer["error"], (payload, answer)
        restored = await watcher.request(
            "simulation/firmware", {"id": NAME, "prevent_reset_interval_s": 3600}
        )
        assert restored["status"] == "ok", restored


def _state(payload: bytes) -> Any:
    return json.loads(payload).get("state") if payload else None


def on_position(watcher: Any, message: Any) -> int:
    """The position just after `message`: what follows it."""
    return int(watcher.messages.index(message)) + 1


async def test_on_time_on_set_ends_with_the_switchs_own_off_report(daemon: str) -> None:
    async with watching(daemon) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", json.dumps({"state": "OFF"}))
        await watcher.wait_state(NAME, lambda s: s.get("state") == "OFF", after=position)
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", json.dumps({"state": "ON", "on_time": 0.5}))
        on = await watcher.wait_for(NAME, lambda m: _state(m.payload) == "ON", after=position, timeout=5)
        await watcher.wait_for(NAME, lambda m: _state(m.payload) == "OFF", after=on_position(watcher, on))
        status = await watcher.request("simulation/switches", {})
        assert status["data"]["switches"][0]["relay"] is False


def test_an_emulated_switch_that_leaves_while_the_network_is_down_is_off_it() -> None:
    firmware = ZStackFirmware(None, switches=1)
    [node] = firmware.world.nodes.values()
    node.network = t.EUI64.convert("dd:dd:dd:dd:dd:dd:dd:dd")  # joined once; the host is away now
    node.switch.joined = True
    assert not firmware.world.online(node)
    node.switch.leave_network()
    assert node.network is None and not node.switch.joined
    assert node.switch.to_dict()["joined"] is False


class _NoHost:
    """A serial line that carries nothing: enough for the chip to know a host connected."""

    def send(self, frame: Any) -> None:
        """Dropped."""

    def close(self) -> None:
        """Nothing to close."""


def test_an_emulator_set_up_before_its_loop_runs_starts_the_switch_timers_with_a_host(tmp_path: Path) -> None:
    path = tmp_path / "znp.json"
    first = ZStackFirmware(path, switches=1)
    [node] = first.world.nodes.values()
    node.network = t.EUI64.convert("dd:dd:dd:dd:dd:dd:dd:dd")
    first.save()
    loaded = ZStackFirmware(path)  # no event loop: no timer can start yet, and none is tried
    [node] = loaded.world.nodes.values()
    assert node.switch.joined and not node.switch.ota.attached

    async def connect() -> int:
        loaded.attach(_NoHost())
        pending = len(loaded.world.switch_timers)  # the joined switch's prevent-reset cycle
        loaded.close()
        return pending

    assert asyncio.run(connect()) == 1
