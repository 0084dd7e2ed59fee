"""Test helpers: a daemon started as a real process, and an MQTT peer that records what it sees."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import aiomqtt
import yaml

BROKER_HOST = os.environ.get("Z2M_TEST_BROKER_HOST", "127.0.0.1")
BROKER_PORT = int(os.environ.get("Z2M_TEST_BROKER_PORT", "1883"))
WAIT_S = 15.0
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def random_base_topic() -> str:
    """A base topic no other test uses: tests share one broker."""
    return f"z2mtest_{uuid.uuid4().hex[:12]}"


def write_config(path: Path, base_topic: str, **sections: Any) -> Path:
    """A configuration file for the virtual adapter against the test broker."""
    config: dict[str, Any] = {
        "mqtt": {"base_topic": base_topic, "server": f"mqtt://{BROKER_HOST}:{BROKER_PORT}"},
        "serial": {"adapter": "virtual"},
        "advanced": {"log_level": "info", "channel": 15},
    }
    for name, value in sections.items():
        config[name] = value
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def terminate(process: subprocess.Popen[bytes], what: str, timeout: float, log: Callable[[], str]) -> int:
    """SIGTERM a child process and wait for it; killed, and the test failed with its log, if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{what} did not stop within {timeout} s; log:\n{log()}") from None


class DaemonProcess:
    """`python -m z2m_qbkg40lm run` as a child process, its log kept in a file."""

    def __init__(self, config: Path, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.log_path = data_dir / f"daemon-{uuid.uuid4().hex[:6]}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon (returns at once; wait for its MQTT messages to know it is up)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "z2m_qbkg40lm",
                "run",
                "--config",
                str(self.config),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self._process is not None
        return terminate(self._process, "daemon", timeout, self.log)

    def log(self) -> str:
        """Everything the daemon printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class Message:
    """One received MQTT message."""

    topic: str
    payload: bytes
    retain: bool
    seq: int

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class Watcher:
    """Subscribes to a base topic's whole tree and lets tests await particular messages."""

    def __init__(self, client: aiomqtt.Client, base_topic: str) -> None:
        self.client = client
        self.base = base_topic
        self.messages: list[Message] = []
        self._changed = asyncio.Condition()

    async def _pump(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            async with self._changed:
                self.messages.append(
                    Message(str(message.topic), payload, bool(message.retain), len(self.messages))
                )
                self._changed.notify_all()

    def mark(self) -> int:
        """A position: later waits can look only at messages received after it."""
        return len(self.messages)

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[Message], bool] = lambda m: True,
        *,
        after: int = 0,
        timeout: float = WAIT_S,
    ) -> Message:
        """The first message on `<base>/<topic>` at or after position `after` matching the predicate."""
        return await self.wait_for_topic(f"{self.base}/{topic}", predicate, after=after, timeout=timeout)

    async def wait_for_topic(
        self,
        full: str,
        predicate: Callable[[Message], bool] = lambda m: True,
        *,
        after: int = 0,
        timeout: float = WAIT_S,
    ) -> Message:
        """The first message on the topic `full` (outside the base topic too: a discovery config) at or
        after position `after` matching the predicate."""

        def found() -> Message | None:
            for message in self.messages[after:]:
                if message.topic == full and predicate(message):
                    return message
            return None

        async def waiter() -> Message:
            async with self._changed:
                await self._changed.wait_for(lambda: found() is not None)
                result = found()
                assert result is not None
                return result

        try:
            return await asyncio.wait_for(waiter(), timeout)
        except TimeoutError:
            seen = [f"{m.topic} {m.payload[:200]!r}" for m in self.messages[after:]][-30:]
            raise AssertionError(
                f"no message on {full} within {timeout} s; saw:\n" + "\n".join(seen)
            ) from None

    async def wait_state(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], *, after: int = 0
    ) -> dict[str, Any]:
        """The first state of a device, at or after `after`, for which the predicate holds."""
        message = await self.wait_for(name, lambda m: bool(m.payload) and predicate(m.json()), after=after)
        state: dict[str, Any] = message.json()
        return state

    async def wait_log(
        self, predicate: Callable[[dict[str, Any]], bool], *, after: int = 0
    ) -> dict[str, Any]:
        """The first bridge/logging record after `after` for which the predicate holds."""
        message = await self.wait_for("bridge/logging", lambda m: predicate(m.json()), after=after)
        record: dict[str, Any] = message.json()
        return record

    def since(self, position: int, topic: str) -> list[Message]:
        """Messages on `<base>/<topic>` received after a position."""
        full = f"{self.base}/{topic}"
        return [m for m in self.messages[position:] if m.topic == full]

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Publish under the base topic."""
        await self.client.publish(f"{self.base}/{topic}", payload, retain=retain)

    async def request(self, path: str, payload: Any, *, timeout: float = WAIT_S) -> dict[str, Any]:
        """A bridge request with a unique transaction id; returns its response."""
        transaction = uuid.uuid4().hex[:8]
        body = dict(payload) if isinstance(payload, dict) else {}
        body["transaction"] = transaction
        position = self.mark()
        await self.publish(f"bridge/request/{path}", json.dumps(body))
        message = await self.wait_for(
            f"bridge/response/{path}",
            lambda m: m.json().get("transaction") == transaction,
            after=position,
            timeout=timeout,
        )
        response: dict[str, Any] = message.json()
        return response


@contextlib.asynccontextmanager
async def watching(
    base_topic: str, *, username: str | None = None, password: str | None = None
) -> AsyncIterator[Watcher]:
    """An MQTT peer subscribed to `<base>/#` (with credentials, for a broker that asks for them)."""
    identifier = f"test-{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client(
        BROKER_HOST, BROKER_PORT, identifier=identifier, username=username, password=password
    ) as client:
        watcher = Watcher(client, base_topic)
        await client.subscribe(f"{base_topic}/#", qos=1)
        pump = asyncio.get_running_loop().create_task(watcher._pump())
        try:
            yield watcher
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


async def discover_switch(base_topic: str) -> str:
    """The IEEE address of the virtual adapter's one switch, once the daemon is online and the
    switch has published its first state."""
    async with watching(base_topic) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
        response = await watcher.request("simulation/switches", {})
        assert response["status"] == "ok", response
        switches = response["data"]["switches"]
        assert len(switches) == 1, switches
        ieee: str = switches[0]["ieee"]
        await watcher.wait_for(ieee, lambda m: "state" in m.json())
        return ieee


def clear_retained(base_topic: str, topics: list[str] | None = None) -> None:
    """Remove retained messages a test left on the shared broker: the named ones (relative to the
    base topic), or with no names every retained message under the base topic (for a teardown,
    once the daemon has stopped)."""

    async def clear() -> None:
        identifier = f"test-clean-{uuid.uuid4().hex[:8]}"
        async with aiomqtt.Client(BROKER_HOST, BROKER_PORT, identifier=identifier) as client:
            found = {f"{base_topic}/{topic}" for topic in topics or ()}
            if topics is not None:
                for topic in sorted(found):
                    await client.publish(topic, b"", retain=True, qos=1)
                return
            fence = f"{base_topic}/__fence_{uuid.uuid4().hex[:8]}"
            await client.subscribe(f"{base_topic}/#")
            # Retained messages are delivered on subscription, before anything published later.
            await client.publish(fence, b"x")
            async with asyncio.timeout(WAIT_S):
                async for message in client.messages:
                    if str(message.topic) == fence:
                        break
                    if message.retain and message.payload:
                        found.add(str(message.topic))
            for topic in sorted(found):
                await client.publish(topic, b"", retain=True, qos=1)

    # Callable from sync fixtures and from inside running event loops alike.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, clear()).result()


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Poll a condition of another process (no event to await across processes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateBroker:
    """A mosquitto of our own on a free port, which a test may kill and start again."""

    def __init__(self, directory: Path, settings: str) -> None:
        self.port = free_port()
        self.conf = directory / f"mosquitto-{self.port}.conf"
        # Mosquitto started as root drops to user "mosquitto", which could not read tmp_path.
        user = pwd.getpwuid(os.getuid()).pw_name
        self.conf.write_text(f"user {user}\nlistener {self.port} 127.0.0.1\n{settings}\n")
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            MOSQUITTO, "-c", str(self.conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Readiness probe: mosquitto gives no other signal that its listener is open.
        async with asyncio.timeout(WAIT_S):
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(f"mosquitto exited with {self._process.returncode}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)
            await self._process.wait()


def seed_virtual_switch(data_dir: Path, **firmware: Any) -> str:
    """A virtual adapter state file with one switch of a random Lumi address and no network yet.

    The daemon forms the network on its first start and the switch announces itself, exactly as
    with the adapter's own random switches; knowing the address up front lets the configuration
    name the switch. `firmware` sets fields of the switch record (e.g. power_outage_memory=True).
    """
    octets = [0x54, 0xEF, 0x44, *(random.randrange(256) for _ in range(5))]
    record = {"ieee": ":".join(f"{o:02x}" for o in octets), "nwk": f"0x{random.randint(1, 0xFFF7):04x}"}
    record.update(firmware)
    coordinator = ":".join(f"{o:02x}" for o in [0x02, *(random.randrange(256) for _ in range(7))])
    data_dir.mkdir(parents=True, exist_ok=True)
    state = {"version": 1, "coordinator_ieee": coordinator, "network": None, "switches": [record]}
    (data_dir / "virtual_adapter.json").write_text(json.dumps(state), encoding="utf-8")
    return "0x" + "".join(f"{o:02x}" for o in octets)


@dataclass
class SeededDaemon:
    """A daemon process on a base topic of its own, with one simulated switch under a friendly name."""

    daemon: DaemonProcess
    base: str
    ieee: str
    config: Path
    data_dir: Path


@contextlib.contextmanager
def seeded_daemon(
    folder: Path, name: str, *, firmware: dict[str, Any] | None = None, **sections: Any
) -> Iterator[SeededDaemon]:
    """Start the daemon with one seeded switch named `name` (`firmware`: fields of its record;
    `sections`: more of the configuration); on exit stop it, clear its retained topics and check
    it stopped cleanly."""
    base = random_base_topic()
    data_dir = folder / "data"
    ieee = seed_virtual_switch(data_dir, **(firmware or {}))
    devices = {ieee: {"friendly_name": name}}
    config = write_config(folder / "configuration.yaml", base, devices=devices, **sections)
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    try:
        yield SeededDaemon(daemon, base, ieee, config, data_dir)
    finally:
        code = daemon.stop()
        clear_retained(base)
    assert code == 0, daemon.log()


class Published(NamedTuple):
    """One message a `PublishRecorder` kept: its topic, JSON payload, retain flag and monotonic time."""

    topic: str
    payload: dict[str, Any]
    retain: bool
    at: float


@dataclass
class PublishRecorder:
    """Stands in for the MQTT client of an in-process bridge: what is published, in order."""

    base: str
    wait_s: float = 30.0
    can_publish = True
    messages: list[Published] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> bool:
        self.messages.append(
            Published(topic, json.loads(payload) if payload else {}, retain, time.monotonic())
        )
        self.changed.set()
        return True

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The payloads published on `<base>/<topic>`, in order."""
        return [m.payload for m in self.messages if m.topic == f"{self.base}/{topic}"]

    async def wait_for(self, done: Callable[[], bool], timeout: float | None = None) -> None:
        """Until `done()` holds after a publish (at most `timeout`, default `wait_s`)."""
        async with asyncio.timeout(self.wait_s if timeout is None else timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class InProcessBridge:
    """The data path of one process without a broker: the virtual radio, the bridge, extensions."""

    bridge: Any
    radio: Any
    extensions: list[Any]


@contextlib.asynccontextmanager
async def bridge_in_process(
    data_dir: Path, raw_config: dict[str, Any], publisher: Any, make_extensions: Callable[[Any], list[Any]]
) -> AsyncIterator[InProcessBridge]:
    """The radio (from `raw_config`), the bridge publishing through `publisher` (a stand-in for the
    MQTT client) and the extensions `make_extensions(context)` returns, started, with radio events
    handled until the block ends; everything stopped after it."""
    # Imported here: zigpy is slow to import, and most test files never need it.
    from z2m_qbkg40lm.bridge.bridge import Bridge
    from z2m_qbkg40lm.bridge.extension import Context
    from z2m_qbkg40lm.bridge.state import StateStore
    from z2m_qbkg40lm.config import parse_config, resolve_network
    from z2m_qbkg40lm.devices.registry import DEFINITIONS
    from z2m_qbkg40lm.zigbee.radio import Radio

    config_path = data_dir / "configuration.yaml"
    config = parse_config(raw_config, config_path).config
    store = StateStore(data_dir / "state.json")
    store.load()
    radio = Radio(config, data_dir, resolve_network(config.advanced, data_dir), DEFINITIONS)
    await radio.start()
    bridge = Bridge(config, radio, store, publisher)
    context = Context(config, config_path, data_dir, bridge, radio, publisher, lambda: None)
    extensions = make_extensions(context)
    bridge.extensions = extensions
    for extension in extensions:
        await extension.start()
    events = asyncio.get_running_loop().create_task(bridge.run_radio_events())
    try:
        yield InProcessBridge(bridge, radio, extensions)
    finally:
        events.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await events
        for extension in extensions:
            await extension.stop()
        await bridge.close()
        await radio.stop()
        await store.close()
