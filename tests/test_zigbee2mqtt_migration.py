"""From Zigbee2MQTT to this daemon and back, with Zigbee2MQTT itself: the journey of issue 13's
"What it must show", on the emulators, one step after the other.

1. Zigbee2MQTT 2.14.1 forms a network on a fresh Z-Stack emulator, the simulated QBKG40LM joins
   and is interviewed, it is renamed `hall_switch` and switched ON; Zigbee2MQTT's Home Assistant
   discovery configs are read off the broker; Zigbee2MQTT is stopped.
2. `import-z2m` (the real command, as a process) reads its data directory; the daemon starts on the
   same emulator: `hall_switch/set` works, a press arrives, nothing joins and nothing is
   interviewed, the first state is Zigbee2MQTT's last, and every discovery unique_id and device
   identifier Zigbee2MQTT published for the switch is among the daemon's.
3. `export-z2m` from that daemon's data; Zigbee2MQTT starts on the exported folder against the same
   emulator and still controls the switch, without a join or an interview.
4. The switch moves to a factory-new EmberZNet emulator (`emulate --switches-from`); `import-z2m
   --adapter ember --port …` from Zigbee2MQTT's folder of step 1; the daemon restores the network
   onto the blank chip and the switch obeys and reports, again without a join or an interview.

The export runs before the move to EmberZNet (the issue lists it last): Zigbee2MQTT goes back onto
the very Z-Stack emulator the switch was paired on, which the move leaves as it was.

Only with `Z2M_ZIGBEE2MQTT=1` (Node.js >= 20 and npm at hand; skipped with the reason otherwise):

    Z2M_ZIGBEE2MQTT=1 .venv/bin/python -m pytest tests/test_zigbee2mqtt_migration.py
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
import pytest
import yaml

from tests.side_by_side import (
    FIRST_START_S,
    NAME,
    STEP_S,
    ZIGBEE2MQTT,
    Run,
    join_switch,
    recording,
    start_bridge,
    wait_for_topic,
)
from tests.support import BROKER_HOST, BROKER_PORT, WAIT_S, DaemonProcess, Message, Watcher, clear_retained
from tests.test_end_to_end_zstack import EmulatorProcess
from tests.zigbee2mqtt_support import Zigbee2MQTTProcess, live_requested, zigbee2mqtt_or_skip
from z2m_qbkg40lm.zigbee.network_takeover import NETWORK_BACKUP_FILE

pytestmark = pytest.mark.skipif(
    not live_requested(), reason="Zigbee2MQTT itself runs only with Z2M_ZIGBEE2MQTT=1"
)

RESTORE_S = 60.0
"""A restore onto the EmberZNet emulator takes about 8 s (bellows resets the NCP three times)."""
NOT_AFTER_A_TAKEOVER = ("device_joined", "device_interview", "device_announce", "device_leave")
"""bridge/event types that would mean the switch was paired or interviewed again."""
VOLATILE = frozenset({"last_seen", "linkquality"})


@dataclass
class Discovery:
    """One Home Assistant discovery config: what Home Assistant keys the entity and device by."""

    unique_id: str | None
    """None for a device trigger (Home Assistant keys those by topic)."""
    identifiers: tuple[str, ...]
    via_device: str | None
    """The bridge's device (`zigbee2mqtt_bridge_<coordinator IEEE>`): the coordinator kept too."""


@dataclass
class Journey:
    """What each step left for the next, and what it saw."""

    run: Run
    z2m_dir: Path
    ieee: str = ""
    z2m_discovery: dict[str, Discovery] = field(default_factory=dict)
    """Zigbee2MQTT's discovery configs for the switch, by topic."""
    z2m_last_state: dict[str, Any] = field(default_factory=dict)
    daemon_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def emulator(self) -> EmulatorProcess:
        assert self.run.emulator is not None
        return self.run.emulator

    @property
    def discovery_topic(self) -> str:
        return self.run.discovery


def _online(message: Message) -> bool:
    return bool(message.json() == {"state": "online"})


def _running(emulator: EmulatorProcess) -> bool:
    process = emulator._process
    return process is not None and process.poll() is None


def _cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`z2m-qbkg40lm ARGUMENTS` as a process: the commands a user types."""
    return subprocess.run(
        [sys.executable, "-m", "z2m_qbkg40lm", *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


async def _retained(root: str) -> dict[str, Any]:
    """Every retained message under `root` now, by topic (parsed JSON)."""
    found: dict[str, Any] = {}
    identifier = f"test-retained-{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client(BROKER_HOST, BROKER_PORT, identifier=identifier) as client:
        fence = f"{root}/__fence_{uuid.uuid4().hex[:8]}"
        await client.subscribe(f"{root}/#")
        # Retained messages come on subscription, before anything published afterwards.
        await client.publish(fence, b"x")
        async with asyncio.timeout(WAIT_S):
            async for message in client.messages:
                if str(message.topic) == fence:
                    break
                payload = message.payload
                if message.retain and isinstance(payload, bytes | bytearray) and payload:
                    found[str(message.topic)] = json.loads(payload)
    return found


def _switch_discovery(configs: dict[str, Any], ieee: str) -> dict[str, Discovery]:
    """The discovery configs of the switch's entities (`HA/<component>/<ieee>/<object>/config`)."""
    return {
        topic: Discovery(
            config.get("unique_id"),
            tuple(config["device"]["identifiers"]),
            config["device"].get("via_device"),
        )
        for topic, config in configs.items()
        if topic.split("/")[2] == ieee
    }


async def _published(watcher: Watcher, topic: str, *, after: int) -> None:
    """Wait for a message on a full topic (outside the base topic) received after a position."""

    def found() -> bool:
        return any(message.topic == topic and message.payload for message in watcher.messages[after:])

    async def waiter() -> None:
        async with watcher._changed:
            await watcher._changed.wait_for(found)

    try:
        await asyncio.wait_for(waiter(), STEP_S)
    except TimeoutError:
        raise AssertionError(f"nothing on {topic} within {STEP_S} s") from None


async def _coordinator(watcher: Watcher, position: int) -> str:
    """The coordinator's IEEE address in bridge/info published after `position`."""
    info = await watcher.wait_for(
        "bridge/info", lambda m: bool(m.payload) and "coordinator" in m.json(), after=position, timeout=STEP_S
    )
    address: str = info.json()["coordinator"]["ieee_address"]
    return address


def _takeover_events(watcher: Watcher, position: int) -> list[Any]:
    events = [message.json() for message in watcher.since(position, "bridge/event")]
    return [event for event in events if event.get("type") in NOT_AFTER_A_TAKEOVER]


async def _obeys_and_reports(watcher: Watcher, ieee: str) -> None:
    """`hall_switch/set` ON and OFF reach the switch, and its press comes back as `action`."""
    for state in ("ON", "OFF"):
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", json.dumps({"state": state}))
        await watcher.wait_for(
            NAME,
            lambda m, want=state: bool(m.payload) and m.json().get("state") == want,
            after=position,
            timeout=STEP_S,
        )
    position = watcher.mark()
    response = await watcher.request("simulation/press", {"id": ieee, "kind": "single"}, timeout=STEP_S)
    assert response["status"] == "ok", response
    await watcher.wait_for(
        NAME, lambda m: bool(m.payload) and m.json().get("action") == "single", after=position, timeout=STEP_S
    )


class Stoppable(Protocol):
    """Zigbee2MQTT or the daemon as a process."""

    def stop(self, timeout: float = ...) -> int:
        """SIGTERM and wait; the exit code."""

    def log(self) -> str:
        """What it printed."""


async def _stop(bridge: Stoppable, watcher: Watcher) -> None:
    position = watcher.mark()
    code = await asyncio.to_thread(bridge.stop)
    assert code == 0, bridge.log()
    await watcher.wait_for(
        "bridge/state", lambda m: m.json() == {"state": "offline"}, after=position, timeout=STEP_S
    )


# --- step 1: Zigbee2MQTT pairs the switch ---------------------------------------------------------


async def _zigbee2mqtt_pairs(journey: Journey) -> None:
    run = journey.run
    async with recording(run.base, run.discovery) as watcher:
        run.start_emulator()
        await watcher.wait_for("bridge/emulator", lambda m: m.json() == {"state": "online"}, timeout=STEP_S)
        started = time.monotonic()
        await start_bridge(run, watcher, FIRST_START_S)
        await join_switch(run, watcher)
        journey.ieee = run.ieee
        await watcher.request("device/rename", {"from": run.ieee, "to": NAME}, timeout=STEP_S)
        await watcher.wait_for(
            "bridge/devices", lambda m: any(d["friendly_name"] == NAME for d in m.json()), timeout=STEP_S
        )
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", json.dumps({"state": "ON"}))
        on = await watcher.wait_for(
            NAME, lambda m: bool(m.payload) and m.json().get("state") == "ON", after=position, timeout=STEP_S
        )
        journey.z2m_last_state = on.json()
        # The switch's last discovery config (its firmware update entity): all of them are out.
        await wait_for_topic(watcher, f"{run.discovery}/update/{run.ieee}/update/config")
        journey.timings["zigbee2mqtt pairs"] = time.monotonic() - started
        assert run.bridge is not None
        await _stop(run.bridge, watcher)
    journey.z2m_discovery = _switch_discovery(await _retained(run.discovery), run.ieee)
    # The daemon's configs must be its own, not Zigbee2MQTT's left on the broker.
    clear_retained(run.discovery)


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    zigbee2mqtt_or_skip()
    run = Run(ZIGBEE2MQTT, tmp_path_factory.mktemp("migration"))
    journey = Journey(run, run.folder / ZIGBEE2MQTT.name)
    try:
        asyncio.run(_zigbee2mqtt_pairs(journey))
        yield journey
    finally:
        if run.bridge is not None and getattr(run.bridge, "running", False):
            run.bridge.stop()
        if run.emulator is not None and _running(run.emulator):
            run.emulator.stop()
        clear_retained(run.base)
        clear_retained(run.discovery)
        # The figures of the run (shown with `-s`; the README quotes them).
        print("\n" + "\n".join(f"{step}: {seconds:.1f} s" for step, seconds in journey.timings.items()))


def test_zigbee2mqtt_paired_and_renamed_the_switch_and_kept_its_files(journey: Journey) -> None:
    for name in ("configuration.yaml", "database.db", "coordinator_backup.json", "state.json"):
        assert (journey.z2m_dir / name).is_file(), name
    config = yaml.safe_load((journey.z2m_dir / "configuration.yaml").read_text(encoding="utf-8"))
    assert config["devices"][journey.ieee]["friendly_name"] == NAME
    assert journey.z2m_last_state["state"] == "ON"
    # Zigbee2MQTT's own entities for the switch: state, settings, sensors, update ...
    assert len(journey.z2m_discovery) >= 5, journey.z2m_discovery


# --- step 2: import-z2m, and the daemon on the same stick -----------------------------------------


@dataclass
class Takeover:
    """The daemon on the stick Zigbee2MQTT used."""

    data_dir: Path
    imported: str
    imported_states: dict[str, Any]
    """The state cache import-z2m wrote (state.json), before the daemon ran."""
    coordinator: str = ""
    """The coordinator's IEEE address in the daemon's bridge/info."""
    log: str = ""
    emulator_log: str = ""
    first_state: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    discovery: dict[str, Discovery] = field(default_factory=dict)


async def _daemon_takes_over(journey: Journey, takeover: Takeover) -> None:
    run = journey.run
    emulator_log_before = len(journey.emulator.log())
    daemon = DaemonProcess(takeover.data_dir / "configuration.yaml", takeover.data_dir)
    async with recording(run.base, run.discovery) as watcher:
        position = watcher.mark()
        started = time.monotonic()
        daemon.start()
        try:
            await watcher.wait_for(
                "bridge/state",
                lambda m: m.json() == {"state": "online"},
                after=position,
                timeout=FIRST_START_S,
            )
            first = await watcher.wait_for(NAME, lambda m: bool(m.payload), after=position, timeout=STEP_S)
            takeover.first_state = first.json()
            takeover.coordinator = await _coordinator(watcher, position)
            await _obeys_and_reports(watcher, journey.ieee)
            journey.timings["daemon takes over"] = time.monotonic() - started
            takeover.events = _takeover_events(watcher, position)
        finally:
            await _stop(daemon, watcher)
    takeover.log = daemon.log()
    takeover.emulator_log = journey.emulator.log()[emulator_log_before:]
    takeover.discovery = _switch_discovery(await _retained(run.discovery), journey.ieee)


@pytest.fixture(scope="module")
def same_stick(journey: Journey) -> Takeover:
    data_dir = journey.run.folder / "daemon"
    imported = _cli("import-z2m", str(journey.z2m_dir), "--data-dir", str(data_dir))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    states = json.loads((data_dir / "state.json").read_text(encoding="utf-8"))
    takeover = Takeover(data_dir, imported.stdout, states)
    journey.daemon_dir = data_dir
    asyncio.run(_daemon_takes_over(journey, takeover))
    return takeover


def test_import_z2m_keeps_the_switch_and_its_name(same_stick: Takeover, journey: Journey) -> None:
    assert f"{NAME} ({journey.ieee}, lumi.switch.b1nc01)" in same_stick.imported, same_stick.imported
    for name in ("configuration.yaml", "zigbee.db", "state.json"):
        assert (same_stick.data_dir / name).is_file(), name


def test_the_daemon_drives_the_switch_without_a_join_or_an_interview(
    same_stick: Takeover, journey: Journey
) -> None:
    assert same_stick.events == []
    assert "holds the configured network already" in same_stick.log, same_stick.log
    for word in ("restoring", "joined", "nterview"):
        assert word not in same_stick.log, same_stick.log
    assert "joins as" not in same_stick.emulator_log and "Network formed" not in same_stick.emulator_log
    assert not (same_stick.data_dir / NETWORK_BACKUP_FILE).exists(), "the stick needed no restore"


def test_the_first_state_is_zigbee2mqtts_last(same_stick: Takeover, journey: Journey) -> None:
    zigbee2mqtts = json.loads((journey.z2m_dir / "state.json").read_text(encoding="utf-8"))
    assert zigbee2mqtts[journey.ieee]["state"] == "ON"
    assert same_stick.imported_states[journey.ieee]["state"] == "ON"
    # Published from the cache at the start, before anything was read off the switch.
    first = {key: value for key, value in same_stick.first_state.items() if key not in VOLATILE}
    assert first["state"] == "ON"
    last = journey.z2m_last_state
    assert {key: last.get(key) for key in first} == first, (first, last)


def _keeps_zigbee2mqtts_entities(journey: Journey, daemon: dict[str, Discovery]) -> None:
    """Every discovery config Zigbee2MQTT published for the switch is among the daemon's, with the
    same unique_id, device identifiers and bridge device; the daemon's more are the two below."""
    zigbee2mqtt = journey.z2m_discovery
    assert {topic: daemon.get(topic) for topic in zigbee2mqtt} == zigbee2mqtt
    assert all(entry.unique_id for entry in zigbee2mqtt.values())
    assert {entry.via_device for entry in zigbee2mqtt.values()} == {
        f"zigbee2mqtt_bridge_{journey.run.coordinator_ieee}"
    }
    # The daemon's more: the press event entity (README "Differences from Zigbee2MQTT": "the press
    # `event` entity is always published"), and the device trigger of the press it saw, which
    # Zigbee2MQTT too publishes once it sees a press; same device identifiers as the others.
    extra = sorted(topic.split("/", 1)[1] for topic in daemon.keys() - zigbee2mqtt.keys())
    assert extra == [
        f"device_automation/{journey.ieee}/action_single/config",
        f"event/{journey.ieee}/action/config",
    ], extra
    assert {entry.identifiers for entry in daemon.values()} == {(f"zigbee2mqtt_{journey.ieee}",)}


def test_home_assistant_keeps_zigbee2mqtts_entities(same_stick: Takeover, journey: Journey) -> None:
    assert same_stick.coordinator == journey.run.coordinator_ieee
    _keeps_zigbee2mqtts_entities(journey, same_stick.discovery)
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    differences = readme.split("## Differences from Zigbee2MQTT", 1)[1].split("\n## ", 1)[0]
    assert "the press `event` entity is always published" in differences


# --- step 3: export-z2m, and Zigbee2MQTT again ------------------------------------------------------


@dataclass
class Return:
    """Zigbee2MQTT on the folder export-z2m wrote."""

    out: Path
    exported: str
    events: list[Any] = field(default_factory=list)
    discovery: dict[str, Discovery] = field(default_factory=dict)
    emulator_log: str = ""
    log: str = ""


async def _zigbee2mqtt_returns(journey: Journey, back: Return) -> None:
    run = journey.run
    emulator_log_before = len(journey.emulator.log())
    zigbee2mqtt = Zigbee2MQTTProcess(back.out, {})
    async with recording(run.base, run.discovery) as watcher:
        position = watcher.mark()
        started = time.monotonic()
        zigbee2mqtt.start()
        try:
            await watcher.wait_for(
                "bridge/state",
                lambda m: m.json() == {"state": "online"},
                after=position,
                timeout=FIRST_START_S,
            )
            await watcher.wait_for(
                "bridge/logging",
                lambda m: ZIGBEE2MQTT.started in m.json().get("message", ""),
                after=position,
                timeout=STEP_S,
            )
            await _obeys_and_reports(watcher, journey.ieee)
            journey.timings["zigbee2mqtt returns"] = time.monotonic() - started
            back.events = _takeover_events(watcher, position)
            # Its discovery configs for the switch, published again (the update entity's last).
            update = f"{run.discovery}/update/{journey.ieee}/update/config"
            await _published(watcher, update, after=position)
        finally:
            await _stop(zigbee2mqtt, watcher)
    back.log = zigbee2mqtt.log()
    back.emulator_log = journey.emulator.log()[emulator_log_before:]
    back.discovery = _switch_discovery(await _retained(run.discovery), journey.ieee)


@pytest.fixture(scope="module")
def back_to_zigbee2mqtt(journey: Journey, same_stick: Takeover) -> Return:
    out = journey.run.folder / "zigbee2mqtt-again"
    config = same_stick.data_dir / "configuration.yaml"
    exported = _cli("export-z2m", str(out), "--config", str(config), "--data-dir", str(same_stick.data_dir))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    # The test harness's one change: Zigbee2MQTT logs to its stdout only (its log file transport
    # can crash a Zigbee2MQTT 2.14.1 stopped soon after its start, see Zigbee2MQTTProcess.start).
    settings = yaml.safe_load((out / "configuration.yaml").read_text(encoding="utf-8"))
    settings.setdefault("advanced", {})["log_output"] = ["console"]
    (out / "configuration.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    back = Return(out, exported.stdout)
    asyncio.run(_zigbee2mqtt_returns(journey, back))
    return back


def test_zigbee2mqtt_controls_the_switch_again_from_the_export(back_to_zigbee2mqtt: Return) -> None:
    back = back_to_zigbee2mqtt
    for name in ("configuration.yaml", "database.db", "coordinator_backup.json", "state.json"):
        assert (back.out / name).is_file(), name
    assert back.events == [], back.events
    assert "joins as" not in back.emulator_log and "Network formed" not in back.emulator_log
    # Zigbee2MQTT logs "Device '<ieee>' joined" and "Starting interview of '<name>'" for a new one.
    assert re.search(r"Device '[^']*' joined|[Ii]nterview", back.log) is None, back.log


def test_home_assistant_keeps_its_entities_back_on_zigbee2mqtt(
    back_to_zigbee2mqtt: Return, journey: Journey
) -> None:
    again = back_to_zigbee2mqtt.discovery
    assert {topic: again.get(topic) for topic in journey.z2m_discovery} == journey.z2m_discovery
    # Zigbee2MQTT clears the daemon's press event entity (it has none without
    # experimental_event_entities).
    assert f"{journey.discovery_topic}/event/{journey.ieee}/action/config" not in again


# --- step 4: onto a new EmberZNet stick ----------------------------------------------------------


@dataclass
class Moved:
    """The daemon on a factory-new EmberZNet emulator the switch moved to."""

    data_dir: Path
    coordinator: str = ""
    events: list[Any] = field(default_factory=list)
    discovery: dict[str, Discovery] = field(default_factory=dict)
    log: str = ""
    emulator_log: str = ""


async def _daemon_on_the_new_stick(journey: Journey, moved: Moved, emulator: EmulatorProcess) -> None:
    run = journey.run
    daemon = DaemonProcess(moved.data_dir / "configuration.yaml", moved.data_dir)
    async with recording(run.base, run.discovery) as watcher:
        position = watcher.mark()
        started = time.monotonic()
        daemon.start()
        try:
            await watcher.wait_for("bridge/state", _online, after=position, timeout=RESTORE_S)
            moved.coordinator = await _coordinator(watcher, position)
            await _obeys_and_reports(watcher, journey.ieee)
            journey.timings["daemon restores onto EmberZNet"] = time.monotonic() - started
            moved.events = _takeover_events(watcher, position)
        finally:
            await _stop(daemon, watcher)
    moved.log = daemon.log()
    moved.emulator_log = emulator.log()
    moved.discovery = _switch_discovery(await _retained(run.discovery), journey.ieee)


@pytest.fixture(scope="module")
def onto_ember(journey: Journey, back_to_zigbee2mqtt: Return) -> Iterator[Moved]:
    if _running(journey.emulator):
        journey.emulator.stop()
    emulator = EmulatorProcess(
        journey.run.folder,
        journey.run.folder / "emulator.yaml",
        "ezsp",
        "--switches-from",
        str(journey.emulator.nvram),
    )
    emulator.start()
    # What Zigbee2MQTT published on its return is cleared: the discovery seen is the daemon's own.
    clear_retained(journey.run.discovery)
    try:
        moved = Moved(journey.run.folder / "daemon-ember")
        imported = _cli(
            "import-z2m",
            str(journey.z2m_dir),
            "--data-dir",
            str(moved.data_dir),
            "--adapter",
            "ember",
            "--port",
            emulator.address,
        )
        assert imported.returncode == 0, imported.stdout + imported.stderr
        asyncio.run(_daemon_on_the_new_stick(journey, moved, emulator))
        yield moved
    finally:
        if _running(emulator):
            emulator.stop()


def test_the_daemon_restores_the_network_onto_a_new_ember_stick(onto_ember: Moved) -> None:
    assert "restoring the network from" in onto_ember.log, onto_ember.log
    assert len(list(onto_ember.data_dir.glob(f"{NETWORK_BACKUP_FILE}.restored-*"))) == 1
    assert onto_ember.events == []
    assert "joined" not in onto_ember.log and "nterview" not in onto_ember.log, onto_ember.log
    assert "moved in from" in onto_ember.emulator_log and "joins as" not in onto_ember.emulator_log


def test_home_assistant_keeps_zigbee2mqtts_entities_on_the_new_stick(
    onto_ember: Moved, journey: Journey
) -> None:
    # The restore keeps the coordinator's IEEE address, so the bridge device stays the same too.
    assert onto_ember.coordinator == journey.run.coordinator_ieee
    _keeps_zigbee2mqtts_entities(journey, onto_ember.discovery)
