"""One scenario, played once through Zigbee2MQTT and once through this daemon, each on a fresh
Z-Stack emulator, and the MQTT transcript it leaves.

The scenario is what a Zigbee2MQTT user does with a new switch: start, restart (the network is
resumed), permit join (the simulated QBKG40LM joins, is interviewed and configured), rename it,
drive every expose (`/set` state ON/OFF/TOGGLE and each setting, `/get`), press it, let it send a
heartbeat, and make the bridge requests both programs serve (health_check, options, device/options,
permit_join off). Every message on `<base>/#` and on
the Home Assistant discovery topic is recorded with its step, topic, retain flag and payload; the
transcript is normalised (base topic, discovery topic, IEEE addresses, versions, times, link
quality) so that two programs, or two runs, can be compared (`tests/transcript_facts.py`).

Used by tests/test_zigbee2mqtt_side_by_side.py and bench/bench_vs_zigbee2mqtt.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
import yaml
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.support import (
    BROKER_HOST,
    BROKER_PORT,
    DaemonProcess,
    Message,
    Watcher,
    clear_retained,
    random_base_topic,
)
from tests.test_end_to_end_zstack import EmulatorProcess
from tests.zigbee2mqtt_support import (
    ZIGBEE2MQTT_VERSION,
    Zigbee2MQTTProcess,
    ensure_zigbee2mqtt,
    shared_configuration,
)

NAME = "hall_switch"
"""The friendly name the scenario gives the switch (bridge/request/device/rename)."""
FIRST_START_S = 60.0
"""Zigbee2MQTT's first start backs up the coordinator's whole NV (4 s measured, more under load)."""
JOIN_S = 60.0
STEP_S = 20.0
GET_TRIES = 5
TRANSCRIPT_FORMAT = 1


class BridgeProcess(Protocol):
    """Zigbee2MQTT or this daemon as a child process."""

    def start(self) -> None:
        """Start it; it announces itself on bridge/state."""

    def stop(self, timeout: float = ...) -> int:
        """SIGTERM and wait; the exit code."""

    def log(self) -> str:
        """What it printed."""

    @property
    def pid(self) -> int:
        """The process id (for the benchmark's RSS and CPU)."""


class Daemon(DaemonProcess):
    """This daemon as a process, with its pid for the benchmark."""

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._process is not None
        return self._process.pid


@dataclass(frozen=True)
class Program:
    """How to run one of the two programs on a folder and a configuration."""

    name: str
    make: Callable[[Path, dict[str, Any]], BridgeProcess]
    started: str
    """The bridge/logging message that ends its start-up (extensions running): stopping it sooner
    makes Zigbee2MQTT abort its start with an error."""


def _daemon(folder: Path, configuration: dict[str, Any]) -> BridgeProcess:
    config = folder / "configuration.yaml"
    if not config.exists():
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(configuration), encoding="utf-8")
    return Daemon(config, folder / "data")


def _zigbee2mqtt(folder: Path, configuration: dict[str, Any]) -> BridgeProcess:
    return Zigbee2MQTTProcess(folder, configuration)


DAEMON = Program("z2m-qbkg40lm", _daemon, "Bridge started, base topic")
ZIGBEE2MQTT = Program("zigbee2mqtt", _zigbee2mqtt, "Zigbee2MQTT started!")


@dataclass
class Run:
    """One program on one emulator under one base topic, while the scenario plays."""

    program: Program
    folder: Path
    base: str = field(default_factory=random_base_topic)
    discovery: str = field(default_factory=lambda: f"ha_{uuid.uuid4().hex[:10]}")
    emulator: EmulatorProcess | None = None
    bridge: BridgeProcess | None = None
    configuration: dict[str, Any] = field(default_factory=dict)
    steps: list[tuple[str, int]] = field(default_factory=list)
    """Each step's name and the watcher position where it began."""
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The state message each command of the scenario waited for, by label."""
    ieee: str = ""
    coordinator_ieee: str = ""
    networks: list[dict[str, Any]] = field(default_factory=list)
    """bridge/info's network at each start: a restart must resume the same one."""
    online_s: list[float] = field(default_factory=list)
    """Seconds from process start to bridge/state online, for each start."""

    def start_emulator(self) -> None:
        """A factory-new emulated stick; the configuration names it and the topics."""
        self.folder.mkdir(parents=True, exist_ok=True)
        emulator_config = self.folder / "emulator.yaml"
        # The emulator takes the broker and base topic from a configuration; the port is its own.
        placeholder_port = "tcp://127.0.0.1:1"
        emulator_config.write_text(
            yaml.safe_dump(shared_configuration(self.base, self.discovery, placeholder_port)),
            encoding="utf-8",
        )
        self.emulator = EmulatorProcess(self.folder, emulator_config)
        self.emulator.start()
        self.configuration = shared_configuration(
            self.base, self.discovery, self.emulator.address, last_seen="ISO_8601"
        )

    def stop_all(self) -> None:
        """Stop whatever still runs and clear the retained messages left on the broker."""
        try:
            if self.bridge is not None:
                self.bridge.stop()
        finally:
            if self.emulator is not None:
                self.emulator.stop()
            clear_retained(self.base)
            clear_retained(self.discovery)


async def start_bridge(run: Run, watcher: Watcher, timeout: float) -> None:
    """Launch the program; returns once it is online and has published bridge/info and bridge/devices."""
    position = watcher.mark()
    run.bridge = run.program.make(run.folder / run.program.name, run.configuration)
    started = time.monotonic()
    run.bridge.start()
    await watcher.wait_for(
        "bridge/state", lambda m: m.json() == {"state": "online"}, after=position, timeout=timeout
    )
    run.online_s.append(time.monotonic() - started)
    await watcher.wait_for(
        "bridge/logging",
        lambda m: run.program.started in m.json().get("message", ""),
        after=position,
        timeout=STEP_S,
    )
    info = await watcher.wait_for("bridge/info", lambda m: bool(m.payload), after=position, timeout=STEP_S)
    run.coordinator_ieee = info.json()["coordinator"]["ieee_address"]
    run.networks.append(info.json()["network"])
    await watcher.wait_for("bridge/devices", lambda m: bool(m.payload), after=position, timeout=STEP_S)


async def _stop(run: Run, watcher: Watcher) -> None:
    assert run.bridge is not None
    position = watcher.mark()
    code = await asyncio.to_thread(run.bridge.stop)
    assert code == 0, run.bridge.log()
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "offline"}, after=position)


async def wait_for_topic(watcher: Watcher, topic: str, timeout: float = STEP_S) -> Message:
    """The first message on a topic outside the base topic (a discovery config)."""
    return await watcher.wait_for_topic(topic, timeout=timeout)


def _step(run: Run, watcher: Watcher, name: str) -> None:
    run.steps.append((name, watcher.mark()))


async def _request(watcher: Watcher, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = await watcher.request(path, payload, timeout=STEP_S)
    assert response["status"] == "ok", (path, response)
    return response


async def _command(
    run: Run,
    watcher: Watcher,
    label: str,
    payload: dict[str, Any],
    done: Callable[[Any], bool],
    *,
    verb: str = "set",
) -> None:
    """`<name>/<verb>` with a payload; waits for the state message for which `done` holds."""
    position = watcher.mark()
    await watcher.publish(f"{NAME}/{verb}", json.dumps(payload))
    message = await watcher.wait_for(
        NAME, lambda m: bool(m.payload) and done(m.json()), after=position, timeout=STEP_S
    )
    run.checkpoints[label] = message.json()


async def _set_then_get(run: Run, watcher: Watcher, label: str, key: str, value: Any) -> None:
    """A `/set` Zigbee2MQTT publishes no state for (its converter returns none: the value shows
    once the switch reports it or is read), then `/get` until the read shows the value."""
    await watcher.publish(f"{NAME}/set", json.dumps({key: value}))
    for _ in range(GET_TRIES):
        position = watcher.mark()
        await watcher.publish(f"{NAME}/get", json.dumps({key: ""}))
        message = await watcher.wait_for(
            NAME, lambda m: bool(m.payload) and m.json().get(key) is not None, after=position, timeout=STEP_S
        )
        # The read may overtake the write: then the old value comes back, and it is read again.
        if message.json()[key] == value:
            run.checkpoints[label] = message.json()
            return
    raise AssertionError(f"{key} never read back as {value!r}")


def _has(**wanted: Any) -> Callable[[Any], bool]:
    return lambda state: all(state.get(key) == value for key, value in wanted.items())


async def join_switch(run: Run, watcher: Watcher) -> None:
    """Permit join; returns once the emulator's switch has joined, been interviewed and is in
    bridge/devices with its definition."""
    position = watcher.mark()
    await _request(watcher, "permit_join", {"time": 60})
    joined = await watcher.wait_for(
        "bridge/event", lambda m: m.json()["type"] == "device_joined", after=position, timeout=JOIN_S
    )
    run.ieee = joined.json()["data"]["ieee_address"]
    await watcher.wait_for(
        "bridge/event",
        lambda m: m.json()["type"] == "device_interview" and m.json()["data"]["status"] == "successful",
        after=position,
        timeout=JOIN_S,
    )

    def configured(message: Message) -> bool:
        devices = message.json()
        return any(
            d["ieee_address"] == run.ieee and d.get("interview_state") == "SUCCESSFUL" and "definition" in d
            for d in devices
        )

    await watcher.wait_for("bridge/devices", configured, after=position, timeout=JOIN_S)


async def _scenario(run: Run, watcher: Watcher) -> None:
    await watcher.wait_for("bridge/emulator", lambda m: m.json() == {"state": "online"})
    _step(run, watcher, "start")
    await start_bridge(run, watcher, FIRST_START_S)
    _step(run, watcher, "restart")
    await _stop(run, watcher)
    await start_bridge(run, watcher, FIRST_START_S)
    assert run.networks[0] == run.networks[1], run.networks
    assert run.emulator is not None
    # Formed once, on the first start: the restart found it up (herdsman) or resumed it (zigpy-znp).
    assert run.emulator.log().count("Network formed") == 1, run.emulator.log()
    # Zigbee2MQTT publishes the bridge's discovery 5 s after its start (it first collects the
    # retained ones); the daemon at once. Both have a permit_join switch.
    codes = "".join(str(ord(c)) for c in run.base)
    await wait_for_topic(watcher, f"{run.discovery}/switch/{codes}_{run.coordinator_ieee}/permit_join/config")
    _step(run, watcher, "join")
    await join_switch(run, watcher)
    _step(run, watcher, "rename")
    await _request(watcher, "device/rename", {"from": run.ieee, "to": NAME})
    await watcher.wait_for(
        "bridge/devices", lambda m: any(d["friendly_name"] == NAME for d in m.json()), timeout=STEP_S
    )
    _step(run, watcher, "set_state")
    await _command(run, watcher, "state_on", {"state": "ON"}, _has(state="ON"))
    await _command(run, watcher, "state_off", {"state": "OFF"}, _has(state="OFF"))
    await _command(run, watcher, "state_toggle", {"state": "TOGGLE"}, _has(state="ON"))
    _step(run, watcher, "settings")
    await _command(
        run, watcher, "outage_memory_on", {"power_outage_memory": True}, _has(power_outage_memory=True)
    )
    await _command(
        run,
        watcher,
        "indicator_flipped",
        {"flip_indicator_light": "ON"},
        _has(flip_indicator_light="ON"),
    )
    await _set_then_get(run, watcher, "decoupled", "operation_mode", "decoupled")
    await _set_then_get(run, watcher, "control_relay", "operation_mode", "control_relay")
    _step(run, watcher, "get")
    await _command(run, watcher, "get_state", {"state": ""}, lambda s: "state" in s, verb="get")
    await _command(
        run,
        watcher,
        "get_operation_mode",
        {"operation_mode": ""},
        lambda s: "operation_mode" in s,
        verb="get",
    )
    _step(run, watcher, "press")
    for kind in ("single", "double"):
        position = watcher.mark()
        await _request(watcher, "simulation/press", {"id": run.ieee, "kind": kind})
        message = await watcher.wait_for(
            NAME, lambda m, kind=kind: m.json().get("action") == kind, after=position, timeout=STEP_S
        )
        # In control_relay mode a single press also toggles the relay, reported right after the
        # press: whether it lands in the action's message is timing, so the relay is its own fact.
        run.checkpoints[f"press_{kind}"] = {k: v for k, v in message.json().items() if k != "state"}
        if kind == "single":
            relay = await watcher.wait_for(
                NAME, lambda m: m.json().get("state") == "OFF", after=position, timeout=STEP_S
            )
            run.checkpoints["press_single_relay"] = {"state": relay.json()["state"]}
    _step(run, watcher, "heartbeat")
    position = watcher.mark()
    await _request(watcher, "simulation/heartbeat", {"id": run.ieee, "temperature": 31})
    message = await watcher.wait_for(
        NAME, lambda m: "device_temperature" in m.json(), after=position, timeout=STEP_S
    )
    run.checkpoints["heartbeat"] = message.json()
    _step(run, watcher, "requests")
    await _request(watcher, "health_check", {})
    await _request(watcher, "options", {"options": {"advanced": {"log_level": "info"}}})
    await _request(watcher, "device/options", {"id": NAME, "options": {"device_temperature_calibration": 1}})
    await _request(watcher, "permit_join", {"time": 0})
    _step(run, watcher, "stop")
    await _stop(run, watcher)


@contextlib.asynccontextmanager
async def recording(base: str, discovery: str) -> AsyncIterator[Watcher]:
    """A watcher of `<base>/#` and `<discovery>/#` that sees retain flags as published.

    Over MQTT 3.1.1 a broker clears the retain flag of every message it forwards to a subscriber
    already there; MQTT 5's retain-as-published keeps it, which a transcript needs.
    """
    identifier = f"transcript-{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client(
        BROKER_HOST, BROKER_PORT, identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        watcher = Watcher(client, base)
        options = SubscribeOptions(qos=1, retainAsPublished=True)
        for topic in (f"{base}/#", f"{discovery}/#"):
            await client.subscribe(topic, options=options)
        pump = asyncio.get_running_loop().create_task(watcher._pump())
        try:
            yield watcher
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


async def play(run: Run) -> list[Message]:
    """The whole scenario on a fresh emulator; every message seen until the program stopped."""
    async with recording(run.base, run.discovery) as watcher:
        run.start_emulator()
        try:
            await _scenario(run, watcher)
            return list(watcher.messages)
        except BaseException:
            if run.bridge is not None:
                print(f"--- {run.program.name} log ---\n{run.bridge.log()[-20000:]}")
            raise
        finally:
            await asyncio.to_thread(run.stop_all)


# --- the transcript ------------------------------------------------------------------------------

VOLATILE_KEYS = frozenset(
    {"last_seen", "elapsed", "linkquality", "permit_join_end", "commit", "transaction", "network_address"}
)
"""Values that differ from run to run: kept as the placeholder of their type."""
VERSION_KEYS = frozenset({"version", "sw_version", "sw"})
ENVIRONMENT_KEYS = frozenset({"os"})
"""Subtrees that describe the machine (bridge/info's os): every leaf a placeholder."""
PORT = re.compile(r"tcp://127\.0\.0\.1:\d+")
BROKER = re.compile(r"mqtt://[^\s\"']+:\d+")
VERSION = re.compile(r"\d+\.\d+\.\d+")
"""A program version (2.14.1, 0.1.0), not a device build id such as 0.0.0_0029."""


def placeholder(value: Any) -> Any:
    """The type of a value, standing in for it."""
    if value is None:
        return None
    return f"<{type(value).__name__}>"


@dataclass(frozen=True)
class Names:
    """What a transcript's strings are normalised from."""

    base: str
    discovery: str
    ieee: str
    coordinator_ieee: str
    folder: str = ""
    """The run's temporary folder (Zigbee2MQTT's bridge/info shows its log directory)."""

    def text(self, value: str) -> str:
        """A string with the run's own names replaced by fixed ones."""
        # Zigbee2MQTT's discovery node id of the bridge spells the base topic as character codes.
        base_codes = "".join(str(ord(c)) for c in self.base)
        for raw, fixed in (
            (self.folder, "FOLDER"),
            (base_codes, "BASE_CODES"),
            (self.ieee, "IEEE_DEVICE"),
            (self.coordinator_ieee, "IEEE_COORDINATOR"),
            (self.base, "BASE"),
            (self.discovery, "HA"),
        ):
            if raw:
                value = value.replace(raw, fixed)
                value = value.replace(raw.removeprefix("0x"), fixed)
        value = PORT.sub("tcp://EMULATOR", value)
        return BROKER.sub("mqtt://BROKER", value)

    def payload(self, value: Any, key: str = "") -> Any:
        """A payload with names replaced and volatile values turned into placeholders."""
        if key in ENVIRONMENT_KEYS:
            return _leaves(value, placeholder)
        if isinstance(value, dict):
            return {self.text(k): self.payload(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.payload(item, key) for item in value]
        if key in VOLATILE_KEYS:
            return placeholder(value)
        if key in VERSION_KEYS and isinstance(value, str) and VERSION.fullmatch(value):
            return "<version>"
        return self.text(value) if isinstance(value, str) else value


def _leaves(value: Any, change: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: _leaves(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_leaves(item, change) for item in value]
    return change(value)


ELIDED_TOPICS = frozenset({"bridge/definitions"})
"""Kept with their top-level keys only (Zigbee2MQTT's ZCL dictionary for its frontend, 250 kB a
message), which is all the comparison looks at (transcript_facts.SUMMARISED)."""


def _elided(topic: str, base: str, payload: Any) -> Any:
    relative = topic.removeprefix(base + "/")
    if relative in ELIDED_TOPICS and isinstance(payload, dict):
        return dict.fromkeys(payload, "<elided>")
    if (
        relative == "bridge/info"
        and isinstance(payload, dict)
        and isinstance(payload.get("config_schema"), dict)
    ):
        # The settings' JSON schema (30 kB): its top-level keys say enough, as for the definitions.
        return payload | {"config_schema": dict.fromkeys(payload["config_schema"], "<elided>")}
    return payload


def _parsed(payload: bytes) -> Any:
    if not payload:
        return ""
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", errors="replace")


def transcript(run: Run, messages: list[Message], program_version: str) -> dict[str, Any]:
    """The normalised transcript of a run: steps of messages, and the checkpoints."""
    names = Names(run.base, run.discovery, run.ieee, run.coordinator_ieee, str(run.folder))
    steps: list[dict[str, Any]] = []
    bounds = [*run.steps, ("end", len(messages))]
    for (step, begin), (_, end) in itertools.pairwise(bounds):
        steps.append(
            {
                "step": step,
                "messages": [
                    {
                        "topic": names.text(m.topic),
                        "retain": m.retain,
                        "payload": names.payload(_elided(m.topic, run.base, _parsed(m.payload))),
                    }
                    for m in messages[begin:end]
                ],
            }
        )
    return {
        "format": TRANSCRIPT_FORMAT,
        "program": run.program.name,
        "version": program_version,
        "steps": steps,
        "checkpoints": {label: names.payload(state) for label, state in run.checkpoints.items()},
    }


def save(path: Path, recorded: dict[str, Any]) -> None:
    """Write a transcript as stable, reviewable JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(recorded, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def load(path: Path) -> dict[str, Any]:
    """A transcript written by `save`."""
    recorded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if recorded.get("format") != TRANSCRIPT_FORMAT:
        raise ValueError(
            f"{path}: transcript format {recorded.get('format')!r}, expected {TRANSCRIPT_FORMAT}"
        )
    return recorded


RECORDING = Path(__file__).parent / "data" / f"zigbee2mqtt-{ZIGBEE2MQTT_VERSION}-transcript.json"
"""Zigbee2MQTT's transcript of the scenario, normalised, kept so the daemon's side of the
comparison runs without Node.js."""


def record(program: Program, folder: Path) -> dict[str, Any]:
    """Play the scenario through one program and return its normalised transcript."""
    run = Run(program, folder)
    messages = asyncio.run(play(run))
    version = ZIGBEE2MQTT_VERSION if program is ZIGBEE2MQTT else _daemon_version()
    return transcript(run, messages, version)


def _daemon_version() -> str:
    from z2m_qbkg40lm import __version__

    return __version__


def main(arguments: list[str] | None = None) -> int:
    """`python -m tests.side_by_side [--program zigbee2mqtt|z2m-qbkg40lm] [--out FILE]`: record
    the scenario's transcript (by default Zigbee2MQTT's, into the file the test compares with)."""
    parser = argparse.ArgumentParser(prog="python -m tests.side_by_side", description=main.__doc__)
    parser.add_argument("--program", choices=[ZIGBEE2MQTT.name, DAEMON.name], default=ZIGBEE2MQTT.name)
    parser.add_argument("--out", type=Path, default=None)
    options = parser.parse_args(arguments)
    program = ZIGBEE2MQTT if options.program == ZIGBEE2MQTT.name else DAEMON
    if program is ZIGBEE2MQTT:
        ensure_zigbee2mqtt()
    out = options.out or (RECORDING if program is ZIGBEE2MQTT else Path(f"{program.name}-transcript.json"))
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as folder:
        recorded = record(program, Path(folder))
    save(out, recorded)
    count = sum(len(step["messages"]) for step in recorded["steps"])
    print(f"{program.name}: {count} messages in {len(recorded['steps'])} steps -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
