"""Benchmark of the daemon as a process: start-up, latencies, memory and throughput.

Runs `python -m z2m_qbkg40lm run` with the `virtual` adapter (simulated switches in the daemon's own
process) against a real MQTT broker, drives it over MQTT as a user would, and prints a table.
Nothing is asserted about speed: these are figures to read and compare, not tests.

    .venv/bin/python bench/bench_daemon.py [--count N] [--switches K] [--samples M]

Exit status: 0 after a clean run; 1 when the daemon misbehaved (no answer in time, an unexpected
exit, errors on `<base>/bridge/logging`, a wrong state after the burst) or the broker cannot be
reached. The reason is printed on stderr, with the end of the daemon's log.

Two things shape the procedure; bench/README.md explains them:
- zigpy drops a frame identical to one it received from the same device in the last 10 s. The
  simulated switches answer as fast as the CPU allows, and their 8-bit ZCL transaction numbers
  wrap every 256 frames, so more than ~256 frames per switch within 10 s make zigpy drop real
  answers (a request then times out after 5 s and is retried, out of order) and presses. The
  sequential phases therefore keep each switch under 230 frames and zigpy under 230 requests per
  10 s, and the burst runs in a fresh daemon process with values that never repeat at a distance
  of 256 commands.
- With Mosquitto's default `set_tcp_nodelay false` (Nagle's algorithm on), a client that receives
  two messages in a row gets the second only after its delayed TCP ACK of the first, up to 40 ms
  later. The daemon sends one state message per `/set` and subscribes to command topics only; this
  benchmark's client likewise does not subscribe to its own commands. Back-to-back commands and
  commands to an idle daemon are both measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

WAIT_S = 10.0  # one answer (a state, a response) from a running daemon
START_WAIT_S = 45.0  # start-up, including forming the network and interviewing the switches
STOP_WAIT_S = 20.0
QUIET_S = 0.5  # the burst is over when no device message came for this long
IDLE_S = 0.05  # "isolated": the daemon published nothing for this long (> the 40 ms delayed ACK)
SETTLE_S = 0.2  # between phases: nothing published for this long
BURST_WAIT_S = 60.0  # the whole burst
DEDUP_WINDOW_S = 10.5  # zigpy's PACKET_DEBOUNCE_WINDOW (10 s), with a margin
DEDUP_BUDGET = 230  # frames per switch / zigpy requests per window; 256 would wrap the TSN

IMPORT_SETS: dict[str, str] = {
    "python -c pass": "",
    "import zigpy, zigpy_znp, aiomqtt": "import zigpy, zigpy_znp.zigbee.application, aiomqtt",
    "import zigpy, all 3 radio libs, aiomqtt": (
        "import zigpy, zigpy_znp.zigbee.application, bellows.zigbee.application, "
        "zigpy_deconz.zigbee.application, aiomqtt"
    ),
    "import the daemon (virtual adapter)": (
        "import z2m_qbkg40lm.cli, z2m_qbkg40lm.daemon, z2m_qbkg40lm.sim.virtual_radio"
    ),
}


class BenchError(Exception):
    """The daemon (or the broker) did not behave; the message says how."""


# --- the daemon as a process ------------------------------------------------------------------------


class DaemonProcess:
    """`python -m z2m_qbkg40lm run` as a child process, its output kept in a log file."""

    def __init__(self, config: Path, data_dir: Path, log_path: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the process; returns its start time (time.perf_counter())."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
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
        return started

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process is not None
        return self.process.pid

    def exit_code(self) -> int | None:
        """None while running, else the exit code."""
        return None if self.process is None else self.process.poll()

    async def stop(self) -> tuple[int, float]:
        """SIGTERM and wait (without blocking the event loop); returns exit code and seconds taken."""
        assert self.process is not None
        began = time.perf_counter()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        while self.process.poll() is None:
            if time.perf_counter() - began > STOP_WAIT_S:
                self.kill()
                raise BenchError(f"the daemon did not stop within {STOP_WAIT_S:g} s of SIGTERM")
            await asyncio.sleep(0.01)
        return self.process.returncode, time.perf_counter() - began

    def kill(self) -> None:
        """Last resort: SIGKILL and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_WAIT_S)

    def log_lines(self) -> list[str]:
        """What the daemon printed."""
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB, from /proc/<pid>/status."""
    return _parse_status(Path(f"/proc/{pid}/status").read_text(encoding="ascii"))


def _parse_status(text: str) -> dict[str, int]:
    result: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            result[key] = int(value.split()[0])
    return result


async def import_memory(code: str) -> dict[str, int]:
    """RSS of a bare interpreter after running `code` (read from its own /proc/self/status)."""
    script = (code + "\n" if code else "") + "print(open('/proc/self/status').read())"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise BenchError(f"python -c {code!r} did not finish within 60 s") from None
    if process.returncode != 0:
        raise BenchError(f"python -c {code!r} failed: {err.decode(errors='replace').strip()[-500:]}")
    return _parse_status(out.decode())


# --- the MQTT peer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message as the benchmark received it."""

    topic: str
    payload: bytes
    retain: bool
    at: float  # time.perf_counter() on arrival
    data: Any  # the payload parsed as JSON, or None


class Peer:
    """Subscribed to `<base>/#`; records every message with its arrival time."""

    def __init__(self, client: aiomqtt.Client, base: str) -> None:
        self.client = client
        self.base = base
        self.messages: list[Received] = []
        self.daemon: DaemonProcess | None = None
        self._arrived = asyncio.Event()

    async def pump(self) -> None:
        """Receive until cancelled."""
        async for message in self.client.messages:
            at = time.perf_counter()
            raw = message.payload
            payload = bytes(raw) if isinstance(raw, bytes | bytearray) else b""
            data: Any = None
            if payload[:1] in (b"{", b"["):
                with contextlib.suppress(ValueError):
                    data = json.loads(payload)
            self.messages.append(Received(str(message.topic), payload, bool(message.retain), at, data))
            self._arrived.set()
            self._arrived = asyncio.Event()

    def mark(self) -> int:
        """A position: waits can look only at messages received after it."""
        return len(self.messages)

    def topic(self, name: str) -> str:
        """The full topic of `<base>/<name>`."""
        return f"{self.base}/{name}"

    def is_device_topic(self, topic: str) -> bool:
        """`<base>/<friendly name>` (device names of this benchmark contain no '/')."""
        prefix = self.base + "/"
        rest = topic[len(prefix) :] if topic.startswith(prefix) else ""
        return bool(rest) and "/" not in rest and rest != "bridge"

    async def wait(
        self, predicate: Callable[[Received], bool], *, after: int, what: str, within: float = WAIT_S
    ) -> Received:
        """The first message from position `after` on that matches; BenchError after `within` s."""
        deadline = time.perf_counter() + within
        index = after
        while True:
            arrived = self._arrived
            while index < len(self.messages):
                message = self.messages[index]
                index += 1
                if predicate(message):
                    return message
            self.check_daemon(what)
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                seen = [f"  {m.topic} {m.payload[:160]!r}" for m in self.messages[after:]][-15:]
                raise BenchError(
                    f"no answer within {within:g} s while waiting for {what}; last messages seen:\n"
                    + ("\n".join(seen) or "  (none)")
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), min(remaining, 0.25))

    async def wait_quiet(
        self,
        quiet: float,
        *,
        after: int,
        within: float,
        what: str,
        device_only: bool = False,
    ) -> Received | None:
        """Wait until nothing (or no device message) arrived for `quiet` seconds, counted from the
        call at the earliest; returns the last such message since `after`."""
        began = time.perf_counter()
        deadline = began + within
        while True:
            last = self.last_message(after, device_only)
            now = time.perf_counter()
            idle_since = max(began, last.at if last is not None else 0.0)
            if now - idle_since >= quiet:
                return last
            if now > deadline:
                raise BenchError(f"the daemon kept publishing for {within:g} s during {what}")
            self.check_daemon(what)
            await asyncio.sleep(max(0.001, min(quiet - (now - idle_since), 0.02)))

    async def wait_idle(self, idle: float, *, within: float, what: str) -> None:
        """Wait until no message at all arrived for `idle` seconds."""
        deadline = time.perf_counter() + within
        while True:
            last_at = self.messages[-1].at if self.messages else 0.0
            now = time.perf_counter()
            if now - last_at >= idle:
                return
            if now > deadline:
                raise BenchError(f"the daemon kept publishing for {within:g} s while waiting for {what}")
            self.check_daemon(what)
            await asyncio.sleep(idle - (now - last_at) + 0.0005)

    def last_message(self, after: int, device_only: bool = False) -> Received | None:
        """The newest message (or device message) received at or after a position."""
        for message in reversed(self.messages[after:]):
            if not device_only or self.is_device_topic(message.topic):
                return message
        return None

    def since(self, position: int, predicate: Callable[[Received], bool]) -> list[Received]:
        """Messages received after a position that match."""
        return [m for m in self.messages[position:] if predicate(m)]

    def log_records(self, position: int, level: str | None = None) -> list[str]:
        """bridge/logging records since a position (of one level, or all), as "level: message"."""
        topic = self.topic("bridge/logging")
        return [
            f"{m.data.get('level')}: {m.data.get('message')}"
            for m in self.messages[position:]
            if m.topic == topic
            and isinstance(m.data, dict)
            and (level is None or m.data.get("level") == level)
        ]

    async def publish(self, name: str, payload: str) -> None:
        """Publish under the base topic (QoS 0, not retained)."""
        await self.client.publish(self.topic(name), payload)

    async def request(self, path: str, body: dict[str, Any], *, what: str) -> dict[str, Any]:
        """Send a bridge request; return its response (matched by transaction), which must be ok."""
        transaction = uuid.uuid4().hex[:10]
        position = self.mark()
        await self.publish(f"bridge/request/{path}", json.dumps({**body, "transaction": transaction}))
        response = self.topic(f"bridge/response/{path}")
        message = await self.wait(
            lambda m: (
                m.topic == response and isinstance(m.data, dict) and m.data.get("transaction") == transaction
            ),
            after=position,
            what=what,
        )
        if message.data.get("status") != "ok":
            raise BenchError(f"{what} failed: {message.data}")
        result: dict[str, Any] = message.data
        return result

    def check_daemon(self, what: str) -> None:
        """BenchError if the daemon process has exited."""
        if self.daemon is not None:
            code = self.daemon.exit_code()
            if code is not None:
                raise BenchError(f"the daemon exited with code {code} while waiting for {what}")


class FrameBudget:
    """Keeps every simulated switch under DEDUP_BUDGET frames and zigpy under DEDUP_BUDGET requests
    per DEDUP_WINDOW_S, so no 8-bit transaction number repeats inside zigpy's duplicate window."""

    def __init__(self) -> None:
        self._frames: dict[str, deque[float]] = {}
        self._requests: deque[float] = deque()

    async def take(self, switch: str, frames: int, requests: int) -> None:
        """Wait until the switch may send `frames` more frames and zigpy send `requests` more."""
        queue = self._frames.setdefault(switch, deque())
        while True:
            now = time.monotonic()
            for times in (queue, self._requests):
                while times and now - times[0] > DEDUP_WINDOW_S:
                    times.popleft()
            if len(queue) + frames <= DEDUP_BUDGET and len(self._requests) + requests <= DEDUP_BUDGET:
                queue.extend([now] * frames)
                self._requests.extend([now] * requests)
                return
            await asyncio.sleep(0.005)


# --- figures ----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass
class Latencies:
    """Latencies of one kind of exchange, in seconds, and how long the series took."""

    values: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def row(self) -> str:
        if not self.values:
            return "(not measured)"
        ms = [v * 1000 for v in self.values]
        return (
            f"{statistics.median(ms):7.1f} {percentile(ms, 0.95):7.1f} {max(ms):7.1f} {min(ms):7.1f}"
            f" {len(ms):6d} {self.wall_s:6.1f}"
        )


@dataclass
class Startup:
    """One start of the daemon."""

    online_s: float
    first_state_s: float
    all_states_s: float
    memory: dict[str, int]


@dataclass
class Results:
    """Everything measured."""

    count: int
    switches: int
    samples: int
    pattern: str
    cold: Startup | None = None
    warm: Startup | None = None
    stop_s: list[float] = field(default_factory=list)
    set_b2b: Latencies = field(default_factory=Latencies)
    set_idle: Latencies = field(default_factory=Latencies)
    press: Latencies = field(default_factory=Latencies)
    get: Latencies = field(default_factory=Latencies)
    messages_per_set: float = 0.0
    memory_after_load: dict[str, int] = field(default_factory=dict)
    memory_burst_start: dict[str, int] = field(default_factory=dict)
    memory_after_burst: dict[str, int] = field(default_factory=dict)
    imports: dict[str, dict[str, int]] = field(default_factory=dict)
    burst_publish_s: float = 0.0
    burst_s: float = 0.0
    burst_states: int = 0
    log_counts: dict[str, int] = field(default_factory=dict)
    log_notes: list[str] = field(default_factory=list)
    daemon_warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    total_s: float = 0.0


def mb(kb: int) -> str:
    return f"{kb / 1024:6.1f}"


def print_results(results: Results) -> None:
    """The table."""
    out: list[str] = []
    add = out.append
    add("")
    add(
        f"z2m-qbkg40lm daemon benchmark, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: "
        f"{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, N={results.count}, "
        f"switches={results.switches}, samples={results.samples}"
    )
    add("Adapter: virtual (simulated switches inside the daemon process: the radio adds ~nothing), so")
    add("the latencies are the daemon's own added latency for a command: MQTT in -> converter -> zigpy")
    add("-> simulated switch -> zigpy -> converter -> MQTT out, plus two hops through the local broker.")
    add("")
    add("1. Start-up, s from process start   bridge/state online  first device state  all device states")
    for label, start in (
        ("cold (new network + interview)", results.cold),
        ("warm (same data dir)", results.warm),
    ):
        if start is not None:
            add(
                f"   {label:32s} {start.online_s:20.2f} {start.first_state_s:19.2f}"
                f" {start.all_states_s:18.2f}"
            )
    add("   SIGTERM -> exit, s: " + ", ".join(f"{s:.2f}" for s in results.stop_s))
    add("")
    add("                                            median     p95     max     min      n  wall s")
    add(f"2. /set -> state, back-to-back (ms)       {results.set_b2b.row()}")
    add(f"   /set -> state, daemon idle first (ms)  {results.set_idle.row()}")
    add(f"   state messages per /set: {results.messages_per_set:.2f}")
    add(f"3. press -> action, daemon idle (ms)      {results.press.row()}")
    add(f"4. /get -> state, daemon idle (ms)        {results.get.row()}")
    add("   back-to-back: the next command as soon as the state arrived; daemon idle: nothing published")
    add(f"   for {IDLE_S * 1000:.0f} ms before each command (see bench/README.md, 'the 40 ms').")
    add("")
    add("5. Memory, MB                                          VmRSS  VmHWM")
    rows = [
        ("daemon after cold start-up", results.cold.memory if results.cold else {}),
        ("daemon after warm start-up", results.warm.memory if results.warm else {}),
        ("same process after the load of 2-4", results.memory_after_load),
        ("burst process after start-up", results.memory_burst_start),
        ("burst process after the burst", results.memory_after_burst),
    ]
    rows += [(f"bare {label}", memory) for label, memory in results.imports.items()]
    for label, memory in rows:
        if memory:
            add(f"   {label:50s} {mb(memory['VmRSS'])} {mb(memory['VmHWM'])}")
    add("   (Zigbee2MQTT, for reference: about 130-150 MB at start)")
    add("")
    rate = results.count / results.burst_s if results.burst_s else 0.0
    add(
        f"6. Throughput ({results.pattern} values, fresh daemon process): {results.count} /set published "
        f"in {results.burst_publish_s * 1000:.0f} ms,"
    )
    add(
        f"   last state after {results.burst_s * 1000:.0f} ms -> {rate:.0f} commands/s "
        f"({results.burst_states} state messages)"
    )
    add("")
    counts = ", ".join(f"{k} {v}" for k, v in results.log_counts.items())
    add(f"bridge/logging while measuring 2-6: {counts}")
    for note in results.log_notes[:10]:
        add(f"   {note}")
    if results.daemon_warnings:
        add("Warnings in the daemon's own log (all processes):")
        for line in results.daemon_warnings[:10]:
            add(f"   {line}")
    add(f"Total run time: {results.total_s:.1f} s")
    print("\n".join(out), flush=True)


# --- the benchmark ----------------------------------------------------------------------------------


def write_config(
    path: Path, *, base: str, host: str, port: int, switches: int, names: dict[str, str]
) -> None:
    """A configuration for the virtual adapter; `names` maps IEEE -> friendly name."""
    config: dict[str, Any] = {
        "mqtt": {"base_topic": base, "server": f"mqtt://{host}:{port}"},
        "serial": {"adapter": "virtual"},
        "virtual": {"switches": switches},
        "advanced": {"log_level": "info", "channel": 15},
    }
    if names:
        config["devices"] = {ieee: {"friendly_name": name} for ieee, name in names.items()}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def flip(value: str) -> str:
    return "OFF" if value == "ON" else "ON"


def is_state(topic: str, predicate: Callable[[dict[str, Any]], bool]) -> Callable[[Received], bool]:
    """Matches a JSON object message on one topic for which the predicate holds."""
    return lambda m: m.topic == topic and isinstance(m.data, dict) and predicate(m.data)


_ANY = object()


def has(key: str, value: Any = _ANY) -> Callable[[dict[str, Any]], bool]:
    """The object has the key (with that value, if given)."""
    return lambda data: key in data and (value is _ANY or data[key] == value)


class Bench:
    """One run: cold start, warm start with the sequential phases, a fresh start for the burst."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.count: int = args.count
        self.switches: int = args.switches
        self.samples: int = args.samples
        self.pattern: str = args.burst_pattern
        self.host: str = args.host
        self.port: int = args.port
        self.base = f"z2mbench_{uuid.uuid4().hex[:12]}"
        self.work = work
        self.config = work / "configuration.yaml"
        self.data_dir = work / "data"
        self.results = Results(args.count, args.switches, args.samples, args.burst_pattern)
        self.daemon: DaemonProcess | None = None
        self.logs: list[DaemonProcess] = []
        self.names: dict[str, str] = {}  # ieee -> friendly name
        self.current: dict[str, str] = {}  # friendly name -> last known relay state
        self.budget = FrameBudget()

    async def run(self, peer: Peer) -> None:
        results = self.results
        self.write_config({})
        results.cold = await self.start(peer, "cold")
        await self.discover(peer)
        results.stop_s.append(await self.stop(peer))

        # Warm: same data dir; the switches now have friendly names, as a user would give them.
        self.names = {ieee: f"bench_{i + 1}" for i, ieee in enumerate(sorted(self.names))}
        self.write_config(self.names)
        names = sorted(self.names.values())
        results.warm = await self.start(peer, "warm")
        measuring = peer.mark()
        await self.read_states(peer, names)
        await self.set_round_trips(peer, names)
        await self.presses(peer, names)
        await self.get_round_trips(peer, names)
        assert self.daemon is not None
        results.memory_after_load = memory_of(self.daemon.pid)
        self.check_log(peer, measuring, "the /set, press and /get phases")
        results.stop_s.append(await self.stop(peer))

        # The burst in a fresh process: zigpy's duplicate filter remembers the last 10 s.
        burst = await self.start(peer, "burst")
        results.memory_burst_start = burst.memory
        await self.burst(peer, names)
        assert self.daemon is not None
        results.memory_after_burst = memory_of(self.daemon.pid)
        records = peer.log_records(measuring)
        for level in ("error", "warning", "info"):
            results.log_counts[level] = sum(r.startswith(level + ":") for r in records)
        results.log_notes = [r for r in records if not r.startswith("info:")]
        results.stop_s.append(await self.stop(peer))
        measured = await asyncio.gather(*(import_memory(code) for code in IMPORT_SETS.values()))
        results.imports = dict(zip(IMPORT_SETS, measured, strict=True))
        results.daemon_warnings = [
            line
            for daemon in self.logs
            for line in daemon.log_lines()
            if " WARNING " in line or " ERROR " in line
        ]

    def write_config(self, names: dict[str, str]) -> None:
        write_config(
            self.config, base=self.base, host=self.host, port=self.port, switches=self.switches, names=names
        )

    def check_log(self, peer: Peer, position: int, what: str) -> None:
        errors = peer.log_records(position, "error")
        if errors:
            self.results.problems.append(f"errors on bridge/logging during {what}: " + "; ".join(errors[:5]))

    async def start(self, peer: Peer, label: str) -> Startup:
        """Start the daemon; time bridge/state online and the device states."""
        position = peer.mark()
        daemon = DaemonProcess(self.config, self.data_dir, self.work / f"daemon-{label}.log")
        self.daemon = peer.daemon = daemon
        self.logs.append(daemon)
        started = daemon.start()
        state_topic = peer.topic("bridge/state")
        online = await peer.wait(
            lambda m: m.topic == state_topic and m.data == {"state": "online"},
            after=position,
            what=f"bridge/state online ({label} start)",
            within=START_WAIT_S,
        )
        seen: dict[str, Received] = {}

        def device_state(message: Received) -> bool:
            if (
                peer.is_device_topic(message.topic)
                and isinstance(message.data, dict)
                and "state" in message.data
            ):
                seen.setdefault(message.topic, message)
            return len(seen) >= self.switches

        await peer.wait(
            device_state,
            after=position,
            what=f"the state of {self.switches} switch(es) ({label} start)",
            within=START_WAIT_S,
        )
        times = sorted(m.at for m in seen.values())
        startup = Startup(
            online_s=online.at - started,
            first_state_s=times[0] - started,
            all_states_s=times[-1] - started,
            memory=memory_of(daemon.pid),
        )
        await self.settle(peer, f"the {label} start")
        return startup

    async def stop(self, peer: Peer) -> float:
        """SIGTERM; check bridge/state offline and the exit code; returns the seconds it took."""
        assert self.daemon is not None
        daemon, self.daemon = self.daemon, None
        peer.daemon = None
        position = peer.mark()
        code, seconds = await daemon.stop()
        if code != 0:
            tail = "\n".join(daemon.log_lines()[-40:])
            raise BenchError(f"the daemon exited with code {code} after SIGTERM:\n{tail}")
        state_topic = peer.topic("bridge/state")
        await peer.wait(
            lambda m: m.topic == state_topic and m.data == {"state": "offline"},
            after=position,
            what="bridge/state offline after SIGTERM",
        )
        return seconds

    async def discover(self, peer: Peer) -> None:
        response = await peer.request("simulation/switches", {}, what="simulation/switches")
        switches = response["data"]["switches"]
        if len(switches) != self.switches:
            raise BenchError(f"expected {self.switches} simulated switch(es), the daemon has {len(switches)}")
        self.names = {switch["ieee"]: switch["ieee"] for switch in switches}

    async def settle(self, peer: Peer, what: str) -> None:
        await peer.wait_quiet(SETTLE_S, after=peer.mark(), within=WAIT_S, what=f"the end of {what}")

    async def idle(self, peer: Peer) -> None:
        await peer.wait_idle(IDLE_S, within=WAIT_S, what="an idle daemon")

    async def read_states(self, peer: Peer, names: list[str]) -> None:
        """Learn each relay's state with a /get."""
        for name in names:
            await self.budget.take(name, 0, 1)
            position = peer.mark()
            await peer.publish(f"{name}/get", json.dumps({"state": ""}))
            message = await peer.wait(
                is_state(peer.topic(name), has("state")),
                after=position,
                what=f"the state of {name} after /get",
            )
            self.current[name] = message.data["state"]
        await self.settle(peer, "the first /get")

    async def timed(
        self,
        peer: Peer,
        topic: str,
        payload: str,
        match: Callable[[Received], bool],
        what: str,
    ) -> tuple[float, Received]:
        """Publish, then wait for the matching message; returns the latency and the message."""
        position = peer.mark()
        began = time.perf_counter()
        await peer.publish(topic, payload)
        message = await peer.wait(match, after=position, what=what)
        return message.at - began, message

    async def set_round_trips(self, peer: Peer, names: list[str]) -> None:
        position = peer.mark()
        for series, count, idle in (
            (self.results.set_b2b, self.count, False),
            (self.results.set_idle, self.samples, True),
        ):
            began = time.perf_counter()
            for i in range(count):
                name = names[i % len(names)]
                value = flip(self.current[name])
                await self.budget.take(name, 1, 1)  # the switch's report; the command
                if idle:
                    await self.idle(peer)
                latency, _ = await self.timed(
                    peer,
                    f"{name}/set",
                    json.dumps({"state": value}),
                    is_state(peer.topic(name), has("state", value)),
                    f"state {value} of {name} after /set",
                )
                series.values.append(latency)
                self.current[name] = value
            series.wall_s = time.perf_counter() - began
            await self.settle(peer, "the /set round trips")
        topics = {peer.topic(n) for n in names}
        self.results.messages_per_set = len(peer.since(position, lambda m: m.topic in topics)) / (
            self.count + self.samples
        )

    async def presses(self, peer: Peer, names: list[str]) -> None:
        began = time.perf_counter()
        for i in range(self.samples):
            name = names[i % len(names)]
            transaction = uuid.uuid4().hex[:10]
            body = json.dumps({"id": name, "kind": "single", "transaction": transaction})
            await self.budget.take(name, 2, 0)  # the action report, the relay report (control_relay)
            await self.idle(peer)
            position = peer.mark()
            latency, message = await self.timed(
                peer,
                "bridge/request/simulation/press",
                body,
                is_state(peer.topic(name), has("action", "single")),
                f"action single of {name} after simulation/press",
            )
            response = await peer.wait(
                is_state(peer.topic("bridge/response/simulation/press"), has("transaction", transaction)),
                after=position,
                what="the simulation/press response",
            )
            if response.data.get("status") != "ok":
                raise BenchError(f"simulation/press failed: {response.data}")
            self.results.press.values.append(latency)
            if "state" in message.data:
                self.current[name] = message.data["state"]
        self.results.press.wall_s = time.perf_counter() - began
        await self.settle(peer, "the presses")

    async def get_round_trips(self, peer: Peer, names: list[str]) -> None:
        began = time.perf_counter()
        for i in range(self.samples):
            name = names[i % len(names)]
            await self.budget.take(name, 0, 1)  # the read (answered with the request's TSN)
            await self.idle(peer)
            latency, message = await self.timed(
                peer,
                f"{name}/get",
                json.dumps({"state": ""}),
                is_state(peer.topic(name), has("state")),
                f"the state of {name} after /get",
            )
            self.results.get.values.append(latency)
            self.current[name] = message.data["state"]
        self.results.get.wall_s = time.perf_counter() - began
        await self.settle(peer, "the /get round trips")

    def burst_commands(self, names: list[str]) -> list[tuple[str, str]]:
        """N (switch, value) pairs, round robin over the switches.

        `blocks`: 256 commands of one value, then 256 of the other, so commands 256 apart (the
        same 8-bit transaction number) always differ. `alternate`: ON, OFF, ON, ... (trips zigpy's
        duplicate filter beyond 256 commands within 10 s; kept to show it).
        """
        first = {name: flip(self.current[name]) for name in names}
        commands = []
        for i in range(self.count):
            name = names[i % len(names)]
            flipped = (i // 256) % 2 if self.pattern == "blocks" else (i // len(names)) % 2
            commands.append((name, flip(first[name]) if flipped else first[name]))
        return commands

    async def burst(self, peer: Peer, names: list[str]) -> None:
        """N /set without waiting; time until the last state message of the burst arrived."""
        commands = self.burst_commands(names)
        final = dict(commands)
        payloads = [(f"{name}/set", json.dumps({"state": value})) for name, value in commands]
        topics = {peer.topic(name): name for name in names}
        position = peer.mark()
        began = time.perf_counter()
        for topic, payload in payloads:
            await peer.publish(topic, payload)
        self.results.burst_publish_s = time.perf_counter() - began

        # Every /set publishes its optimistic state once done, so the burst is over when at least N
        # state messages came and then nothing for QUIET_S.
        states = 0
        last: Received | None = None
        while states < self.count:
            remaining = began + BURST_WAIT_S - time.perf_counter()
            if remaining <= 0:
                raise BenchError(
                    f"after {BURST_WAIT_S:g} s only {states} state messages for {self.count} /set commands"
                )
            last = await peer.wait_quiet(
                QUIET_S, after=position, within=remaining, what="the /set burst", device_only=True
            )
            states = len(peer.since(position, lambda m: m.topic in topics))
        assert last is not None
        self.results.burst_s = last.at - began
        self.results.burst_states = states
        published: dict[str, Any] = {}
        for m in peer.since(position, lambda m: m.topic in topics and isinstance(m.data, dict)):
            published[topics[m.topic]] = m.data.get("state")
        self.check_log(peer, position, "the /set burst")
        # Where the relays really are (the simulated firmware), and what a /get reads.
        response = await peer.request("simulation/switches", {}, what="simulation/switches")
        relays = {
            self.names[switch["ieee"]]: "ON" if switch["relay"] else "OFF"
            for switch in response["data"]["switches"]
        }
        for name in names:
            position = peer.mark()
            await peer.publish(f"{name}/get", json.dumps({"state": ""}))
            message = await peer.wait(
                is_state(peer.topic(name), has("state")),
                after=position,
                what=f"the state of {name} after the burst",
            )
            read = message.data["state"]
            if relays[name] != final[name]:
                self.results.problems.append(
                    f"burst: the relay of {name} is {relays[name]} but the last /set was {final[name]}: "
                    "the commands reached the switch out of order"
                )
            if published.get(name) != read:
                self.results.problems.append(
                    f"burst: the last state published for {name} said {published.get(name)} while the "
                    f"relay reads {read}"
                )
            self.current[name] = read


async def clear_retained(host: str, port: int, base: str, extra: list[str]) -> list[str]:
    """Remove every retained message under the base topic; returns the topics still retained."""

    async def retained_topics() -> set[str]:
        found: set[str] = set()
        async with aiomqtt.Client(
            host, port, identifier=f"bench-clean-{uuid.uuid4().hex[:8]}", timeout=5
        ) as c:
            await c.subscribe(f"{base}/#")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.3):
                    async for message in c.messages:
                        if message.retain and message.payload:
                            found.add(str(message.topic))
        return found

    topics = await retained_topics() | {f"{base}/{name}" for name in extra}
    async with aiomqtt.Client(host, port, identifier=f"bench-clean-{uuid.uuid4().hex[:8]}", timeout=5) as c:
        for topic in sorted(topics):
            await c.publish(topic, b"", retain=True, qos=1)
    return sorted(await retained_topics())


async def measure(bench: Bench, host: str, port: int) -> str | None:
    """Run the benchmark; returns why it failed, or None."""
    try:
        async with aiomqtt.Client(
            host, port, identifier=f"bench-{uuid.uuid4().hex[:8]}", timeout=5
        ) as client:
            peer = Peer(client, bench.base)
            # What a consumer listens to: states, bridge state, logging and responses, but not the
            # commands it sends itself (their echo would delay the next state, see the docstring).
            for topic_filter in ("+", "bridge/state", "bridge/logging", "bridge/response/#"):
                await client.subscribe(f"{bench.base}/{topic_filter}", qos=1)
            pump = asyncio.get_running_loop().create_task(peer.pump())
            try:
                await bench.run(peer)
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pump
    except BenchError as exc:
        return str(exc)
    except aiomqtt.MqttError as exc:
        return f"MQTT broker at {host}:{port}: {exc}"
    return None


async def clean_up(bench: Bench, host: str, port: int, *, failed: bool, keep: bool) -> None:
    """Stop the daemon if it still runs, remove retained messages and the temporary directory."""
    daemon = bench.daemon
    if daemon is not None:
        if failed:
            print(f"--- the end of {daemon.log_path.name} ---", file=sys.stderr)
            print("\n".join(daemon.log_lines()[-40:]), file=sys.stderr)
        with contextlib.suppress(BenchError):
            await daemon.stop()
        daemon.kill()
    extra = ["bridge/state", *bench.names, *bench.names.values()]
    try:
        left = await clear_retained(host, port, bench.base, extra)
        if left:
            print(f"bench: retained messages could not be removed: {left}", file=sys.stderr)
    except aiomqtt.MqttError as exc:
        print(f"bench: cannot remove the retained messages under {bench.base}: {exc}", file=sys.stderr)
    if keep:
        print(f"bench: kept {bench.work}", file=sys.stderr)
    else:
        shutil.rmtree(bench.work, ignore_errors=True)


async def main_async(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    bench = Bench(args, Path(tempfile.mkdtemp(prefix="z2m-bench-")))
    failure: str | None = "interrupted"
    try:
        failure = await measure(bench, args.host, args.port)
    finally:
        await clean_up(bench, args.host, args.port, failed=failure is not None, keep=args.keep)
    if failure is not None:
        print(f"bench: FAILED: {failure}", file=sys.stderr)
        return 1
    bench.results.total_s = time.perf_counter() - began
    print_results(bench.results)
    for problem in bench.results.problems:
        print(f"bench: PROBLEM: {problem}", file=sys.stderr)
    return 1 if bench.results.problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the daemon with the virtual adapter against a local MQTT broker."
    )
    parser.add_argument(
        "--count", type=int, default=500, help="back-to-back /set round trips, and burst size (default 500)"
    )
    parser.add_argument("--switches", type=int, default=1, help="simulated switches, 1..64 (default 1)")
    parser.add_argument(
        "--samples", type=int, default=50, help="idle-daemon /set, press and /get exchanges (default 50)"
    )
    parser.add_argument(
        "--burst-pattern",
        choices=("blocks", "alternate"),
        default="blocks",
        help="burst values: blocks of 256 (default) or alternating ON/OFF (shows zigpy's duplicate filter)",
    )
    parser.add_argument("--host", default=os.environ.get("Z2M_TEST_BROKER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("Z2M_TEST_BROKER_PORT", "1883")))
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (daemon logs)")
    args = parser.parse_args()
    if args.count < 1 or args.samples < 1:
        parser.error("--count and --samples must be at least 1")
    if not 1 <= args.switches <= 64:
        parser.error("--switches must be 1..64")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
