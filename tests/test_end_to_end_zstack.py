"""End to end over the real radio libraries: an emulated coordinator as a process, `z2m-qbkg40lm run`
over `socket://`, and the real Mosquitto broker. Four paths: the Z-Stack emulator with `adapter:
zstack` (zigpy-znp) as a CC2652 with Z-Stack 3.30 and as a CC2531 with Z-Stack Home 1.2, the
EmberZNet emulator with `adapter: ember` (bellows), and the deCONZ emulator with `adapter: deconz`
(zigpy-deconz).

The network is formed from an empty NVRAM, permit join is opened through the daemon, the switch
waiting in pairing mode joins and is interviewed; then every expose is driven through `/set`,
`/get`, presses and heartbeats by the very tests of `test_end_to_end.py` (imported below, so both
paths are held to one behaviour); the emulator serves the `simulation/…` requests itself. The last
test restarts the emulator and the daemon and shows the network and the switch resumed, not formed
and joined again.

The adapter is one fixture (`adapter`): a path is a way to start the radio and to get the first
switch paired. `VirtualAdapter` is here so this file can also run against the in-process virtual
adapter; `zstack`, `zstack12`, `ember` (EZSP 13) and `deconz` run unless `Z2M_E2E_ADAPTERS` names
others (e.g. adding `ember-8`: EmberZNet 8 speaking EZSP 14, which test_ezsp_emulator.py drives
from form to resume in-process; test_end_to_end.py covers the virtual path already).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests import test_end_to_end as shared
from tests.support import (
    BROKER_HOST,
    BROKER_PORT,
    DaemonProcess,
    Watcher,
    clear_retained,
    random_base_topic,
    terminate,
    wait_until,
    watching,
    write_config,
)
from tests.test_end_to_end import CALIBRATION, NAME, PRECISION, Running, _ready, _set

# The shared tests, collected here too and run against this module's `running` fixture, in the
# shared module's order: they share one daemon and its retained state (which keeps the last action).
test_startup_publishes_online_and_the_full_state = shared.test_startup_publishes_online_and_the_full_state
test_device_topics_answer_to_the_ieee_address_too = shared.test_device_topics_answer_to_the_ieee_address_too
test_set_state_on_off_toggle = shared.test_set_state_on_off_toggle
test_get_state_reads_the_relay = shared.test_get_state_reads_the_relay
test_set_and_get_each_setting = shared.test_set_and_get_each_setting
test_presses_publish_action_once_and_do_not_cache_it = (
    shared.test_presses_publish_action_once_and_do_not_cache_it
)
test_press_in_control_relay_mode_toggles_the_relay = shared.test_press_in_control_relay_mode_toggles_the_relay
test_heartbeat_gives_calibrated_device_temperature = shared.test_heartbeat_gives_calibrated_device_temperature
test_power_cycle_restores_the_relay_with_outage_memory = (
    shared.test_power_cycle_restores_the_relay_with_outage_memory
)
test_bad_input_is_logged_and_changes_nothing = shared.test_bad_input_is_logged_and_changes_nothing
test_unknown_request_gets_an_error_response = shared.test_unknown_request_gets_an_error_response
test_a_switch_that_does_not_answer_gives_an_error_and_keeps_the_state = (
    shared.test_a_switch_that_does_not_answer_gives_an_error_and_keeps_the_state
)
test_a_new_switch_joins_only_while_permit_join_is_open = (
    shared.test_a_new_switch_joins_only_while_permit_join_is_open
)
test_restart_resumes_network_device_and_state = shared.test_restart_resumes_network_device_and_state

START_S = 20.0
PAN_ID = re.compile(r"Zigbee network up: channel (\d+), PAN id (0x[0-9a-f]{4})")


class EmulatorProcess:
    """`python -m z2m_qbkg40lm emulate` as a child process; its address is its first stdout line."""

    def __init__(self, folder: Path, config: Path, chip: str = "znp", *options: str) -> None:
        self.chip = chip
        self.options = options
        self.nvram = folder / f"{chip}.json"
        self.config = config
        self.log_path = folder / f"emulator-{uuid.uuid4().hex[:6]}.log"
        self.address = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start it and wait until it listens; returns `tcp://127.0.0.1:PORT`."""
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "z2m_qbkg40lm",
                    "emulate",
                    "--chip",
                    self.chip,
                    *self.options,
                    "--listen",
                    f"tcp://127.0.0.1:{self._port()}",
                    "--nvram",
                    str(self.nvram),
                    "--switches",
                    "1",
                    "--mqtt",
                    f"mqtt://{BROKER_HOST}:{BROKER_PORT}",
                    "--config",
                    str(self.config),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], START_S)
        line = self._process.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("tcp://"):
            self.stop()
            raise AssertionError(f"the emulator did not start; log:\n{self.log()}")
        self.address = line
        return line

    def _port(self) -> int:
        # The same port across restarts, as a real stick keeps its address: the daemon's config names it.
        return int(self.address.rsplit(":", 1)[1]) if self.address else 0

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self._process is not None
        try:
            return terminate(self._process, "emulator", timeout, self.log)
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()

    def log(self) -> str:
        """Everything the emulator logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


class Adapter(Protocol):
    """One way to run the radio under the daemon."""

    name: str

    def serial(self) -> dict[str, Any]:
        """The configuration's `serial:` section."""

    def start(self, folder: Path, config: Path) -> None:
        """Start whatever the daemon connects to (before the daemon)."""

    def stop(self) -> None:
        """Stop it (after the daemon)."""

    async def pair_first_switch(self, watcher: Watcher) -> str:
        """With the daemon online: get the first switch on the network; returns its IEEE address."""


class ZStackAdapter:
    """The Z-Stack emulator as a process; the switch joins when permit join opens."""

    name = "zstack"
    chip = "znp"
    coordinator_type = "zStack3x0"
    """What `bridge/info` says the coordinator is."""
    options: tuple[str, ...] = ()
    """More `emulate` options."""
    failure_status = "MAC_NO_ACK"
    """A delivery failure in the chip's own terms (Z-Stack's AF.DataConfirm status)."""

    def __init__(self) -> None:
        self.emulator: EmulatorProcess | None = None

    def serial(self) -> dict[str, Any]:
        assert self.emulator is not None
        # socket:// is what zigpy's serial layer opens; tcp:// (Zigbee2MQTT's spelling) maps to it.
        return {"adapter": self.name, "port": "socket://" + self.emulator.address.removeprefix("tcp://")}

    def start(self, folder: Path, config: Path) -> None:
        if self.emulator is None:
            self.emulator = EmulatorProcess(folder, config, self.chip, *self.options)
        self.emulator.start()

    def stop(self) -> None:
        assert self.emulator is not None
        assert self.emulator.stop() == 0, self.emulator.log()

    async def pair_first_switch(self, watcher: Watcher) -> str:
        await watcher.wait_for("bridge/emulator", lambda m: m.json() == {"state": "online"})
        position = watcher.mark()
        opened = await watcher.request("permit_join", {"time": 60})
        assert opened["status"] == "ok", opened
        joined = await watcher.wait_for(
            "bridge/event", lambda m: m.json()["type"] == "device_joined", after=position
        )
        ieee: str = joined.json()["data"]["ieee_address"]
        await watcher.wait_state(ieee, lambda s: "operation_mode" in s, after=position)
        closed = await watcher.request("permit_join", {"time": 0})
        assert closed["status"] == "ok", closed
        return ieee


class EmberAdapter(ZStackAdapter):
    """The EmberZNet emulator as a process, driven by bellows; the switch joins when permit join opens."""

    name = "ember"
    chip = "ezsp"
    coordinator_type = "EmberZNet"
    failure_status = "ZIGBEE_DELIVERY_FAILED"
    """messageSentHandler's status (sl_Status; EZSP 13 sends it as EmberStatus DELIVERY_FAILED)."""


class Ember8Adapter(EmberAdapter):
    """The EmberZNet emulator speaking EZSP 14 (EmberZNet 8.0.2.0), driven by bellows."""

    options = ("--ezsp-version", "14")


class ZStack12Adapter(ZStackAdapter):
    """The Z-Stack emulator running Z-Stack Home 1.2 on a CC2531, driven by zigpy-znp's 1.2 path."""

    chip = "znp12"
    coordinator_type = "zStack12"


class DeconzAdapter(ZStackAdapter):
    """The deCONZ emulator (a ConBee II), driven by zigpy-deconz; the switch joins when permit join opens."""

    name = "deconz"
    chip = "deconz"
    coordinator_type = "ConBee/RaspBee"
    failure_status = "MAC_NO_ACK"
    """The APS data confirm's status."""


class VirtualAdapter:
    """The in-process virtual adapter: its switch is pre-paired."""

    name = "virtual"

    def serial(self) -> dict[str, Any]:
        return {"adapter": "virtual"}

    def start(self, folder: Path, config: Path) -> None:
        """Nothing to start: the radio lives in the daemon."""

    def stop(self) -> None:
        """Nothing to stop."""

    async def pair_first_switch(self, watcher: Watcher) -> str:
        response = await watcher.request("simulation/switches", {})
        assert response["status"] == "ok", response
        ieee: str = response["data"]["switches"][0]["ieee"]
        await watcher.wait_for(ieee, lambda m: "state" in m.json())
        return ieee


ADAPTERS = {
    "zstack": ZStackAdapter,
    "zstack12": ZStack12Adapter,
    "ember": EmberAdapter,
    "ember-8": Ember8Adapter,
    "deconz": DeconzAdapter,
    "virtual": VirtualAdapter,
}


# Z2M_E2E_ADAPTERS=zstack,ember,ember-8,virtual holds EZSP 14 and the virtual adapter to them too.
SELECTED = os.environ.get("Z2M_E2E_ADAPTERS", "zstack,zstack12,ember,deconz").split(",")


@pytest.fixture(scope="module", params=SELECTED)
def adapter(request: pytest.FixtureRequest) -> Adapter:
    """The radio path under test."""
    chosen: Adapter = ADAPTERS[request.param]()
    return chosen


async def _first_start(base: str, adapter: Adapter) -> str:
    async with watching(base) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, timeout=START_S)
        return await adapter.pair_first_switch(watcher)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, adapter: Adapter) -> Iterator[Running]:
    """The daemon on the chosen adapter, its switch named `NAME` with temperature options set.

    As in test_end_to_end.py: the first run pairs the switch, then the configuration gets the
    device settings and the daemon restarts, which also exercises resuming.
    """
    base = random_base_topic()
    folder = tmp_path_factory.mktemp(f"e2e-{adapter.name}")
    config = folder / "configuration.yaml"
    data_dir = folder / "data"
    write_config(config, base)
    adapter.start(folder, config)
    advanced = {"log_level": "info", "channel": 15}
    write_config(config, base, serial=adapter.serial(), advanced=advanced)
    first = DaemonProcess(config, data_dir)
    first.start()
    try:
        ieee = asyncio.run(_first_start(base, adapter))
    except BaseException:
        first.stop()
        adapter.stop()
        raise
    assert first.stop() == 0, first.log()
    devices = {
        ieee: {
            "friendly_name": NAME,
            "device_temperature_calibration": CALIBRATION,
            "device_temperature_precision": PRECISION,
            "retain": True,
        }
    }
    advanced = {**advanced, "last_seen": "ISO_8601"}
    write_config(config, base, serial=adapter.serial(), devices=devices, advanced=advanced)
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    state = Running(daemon, base, ieee, config, data_dir)
    try:
        yield state
    finally:
        code = state.daemon.stop()
        adapter.stop()
        clear_retained(base, ["bridge/state", "bridge/emulator", "bridge/info", "bridge/devices", NAME, ieee])
    assert code == 0, state.daemon.log()


def _pan_id(log: str) -> str:
    found = PAN_ID.findall(log)
    assert found, log
    return str(found[-1][1])


async def test_bridge_info_names_the_coordinator_the_library_found(
    running: Running, adapter: Adapter
) -> None:
    if not isinstance(adapter, ZStackAdapter):
        pytest.skip("the virtual adapter's coordinator is the daemon's own")
    async with watching(running.base) as watcher:
        info = await watcher.wait_for("bridge/info", lambda m: "coordinator" in m.json())
    assert info.json()["coordinator"]["type"] == adapter.coordinator_type, info.json()["coordinator"]


async def test_restarting_emulator_and_daemon_resumes_network_and_switch(
    running: Running, adapter: Adapter
) -> None:
    if not isinstance(adapter, ZStackAdapter) or adapter.emulator is None:
        pytest.skip("only the emulator can be restarted apart from the daemon")
    emulator = adapter.emulator
    pan_before = _pan_id(running.daemon.log())
    async with watching(running.base) as watcher:
        await _ready(running, watcher)
        position = await _set(watcher, {"state": "ON", "operation_mode": "control_relay"})
        await watcher.wait_state(
            NAME, lambda s: s["state"] == "ON" and s["operation_mode"] == "control_relay", after=position
        )
        assert running.daemon.stop() == 0
        first_log = emulator.log()
        adapter.stop()
        assert "Network formed" in first_log  # the very first start formed it
        position = watcher.mark()
        adapter.start(running.data_dir.parent, running.config)
        running.daemon = DaemonProcess(running.config, running.data_dir)
        running.daemon.start()
        await watcher.wait_for(
            "bridge/state", lambda m: m.json() == {"state": "online"}, after=position, timeout=START_S
        )
        await watcher.wait_for("bridge/emulator", lambda m: m.json() == {"state": "online"}, after=position)
        state = await watcher.wait_state(NAME, lambda s: "state" in s, after=position)
        assert state["state"] == "ON"
        # The switch answers through the resumed network, and still reports on its own.
        position = await _set(watcher, {"state": "OFF"})
        await watcher.wait_state(NAME, lambda s: s["state"] == "OFF", after=position)
        position = watcher.mark()
        response = await watcher.request("simulation/press", {"id": NAME, "kind": "single"})
        assert response["status"] == "ok", response
        await watcher.wait_state(NAME, lambda s: s.get("action") == "single", after=position)
        await watcher.wait_state(NAME, lambda s: s["state"] == "ON", after=position)
    daemon_log = running.daemon.log()
    emulator_log = emulator.log()
    assert _pan_id(daemon_log) == pan_before
    assert "joined" not in daemon_log, "a resumed device must not join again"
    assert "interview" not in daemon_log.lower()
    assert "Network resumed" in emulator_log
    assert "Network formed" not in emulator_log and "Start-up options" not in emulator_log
    assert "factory reset" not in emulator_log.lower()
    nvram = json.loads(emulator.nvram.read_text(encoding="utf-8"))
    assert [switch["network"] is not None for switch in nvram["switches"]].count(True) >= 1


def test_emulator_cli_rejects_bad_options(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "z2m_qbkg40lm", "emulate", "--listen", "udp://1.2.3.4:5"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "--listen" in result.stderr and "tcp://HOST:PORT" in result.stderr
    assert time.monotonic() - started < START_S


async def _line_faults(watcher: Watcher, adapter: Adapter, state: str) -> None:
    """EmberZNet's ASH line loses and corrupts frames and the `/set` still goes through (resent);
    Z-Stack's MT line has no retransmission, and the request says so."""
    spoiled = await watcher.request("simulation/fault/line", {"corrupt": 1, "lose": 1})
    if not isinstance(adapter, EmberAdapter):
        assert spoiled["status"] == "error" and "EmberZNet" in spoiled["error"], spoiled
        return
    assert spoiled["data"] == {"corrupt": 1, "lose": 1, "direction": "to_host"}, spoiled
    flipped = "OFF" if state == "ON" else "ON"
    for wanted in (flipped, state):
        position = await _set(watcher, {"state": wanted})
        await watcher.wait_state(NAME, lambda s, wanted=wanted: s["state"] == wanted, after=position)
    lost = await watcher.request("simulation/fault/line", {"lose": 1, "direction": "from_host"})
    assert lost["status"] == "ok", lost
    position = await _set(watcher, {"state": flipped})
    await watcher.wait_state(NAME, lambda s: s["state"] == flipped, after=position)
    position = await _set(watcher, {"state": state})
    await watcher.wait_state(NAME, lambda s: s["state"] == state, after=position)
    refused = await watcher.request("simulation/fault/line", {"corrupt": 1, "direction": "from_host"})
    assert refused["status"] == "error" and "not corrupted" in refused["error"], refused


async def test_faults_on_mqtt_reach_the_daemon(running: Running, adapter: Adapter) -> None:
    if not isinstance(adapter, ZStackAdapter):
        pytest.skip("faults are the emulator's")
    async with watching(running.base) as watcher:
        before = await _ready(running, watcher)
        target = "OFF" if before["state"] == "ON" else "ON"
        status = adapter.failure_status
        failing = await watcher.request("simulation/fault/fail_confirms", {"status": status})
        assert failing["data"] == {"status": status}, failing
        position = await _set(watcher, {"state": target})
        record = await watcher.wait_log(lambda r: r["level"] == "error", after=position)
        assert NAME in record["message"] and "'state'" in record["message"], record
        assert (await watcher.request("simulation/fault/clear", {}))["status"] == "ok"
        delayed = await watcher.request("simulation/fault/delay_confirms", {"ms": 1000})
        assert delayed["data"] == {"ms": 1000}, delayed
        position = await _set(watcher, {"state": target})
        await watcher.wait_state(NAME, lambda s: s["state"] == target, after=position)
        await watcher.request("simulation/fault/clear", {})
        unknown = await watcher.request("simulation/fault/fail_confirms", {"status": "LOST_IN_SPACE"})
        assert unknown["status"] == "error" and "LOST_IN_SPACE" in unknown["error"], unknown
        await _line_faults(watcher, adapter, target)
        # A cut serial line is a lost adapter: the daemon stops with exit code 2 (systemd restarts it).
        dropped = await watcher.request("simulation/fault/drop_link", {})
        assert dropped["data"] == {"dropped": True}, dropped
        await asyncio.to_thread(wait_until, lambda: not running.daemon.running)
        assert running.daemon.stop() == 2, running.daemon.log()
        position = watcher.mark()
        running.daemon = DaemonProcess(running.config, running.data_dir)
        running.daemon.start()
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, after=position)
        position = await _set(watcher, {"state": before["state"]})
        await watcher.wait_state(NAME, lambda s: s["state"] == before["state"], after=position)
