"""Growth sweep: the daemon's figures at several switch counts, beside a broker echo pair.

    .venv/bin/python bench/bench_sweep.py --switches 1,16,64,200

For every switch count: a fresh daemon (`virtual` adapter, empty data directory) is started and
measured: time to `bridge/state` online and to every switch's state, VmRSS after start, idle CPU,
`/set` -> state p50/p99 as a consumer sees it, and inbound frames (heartbeats) converted and
published per CPU-second of the daemon. A plain MQTT client pair measures the broker's own echo in
the same run. Then the import cost of the daemon, with and without the radio libraries. The
method and the meaning of each figure are in bench/README.md. Nothing is asserted about speed.

Exit status: 0 after a clean run, 1 when a daemon misbehaved or the broker cannot be reached.
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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from bench_daemon import (
    SETTLE_S,
    START_WAIT_S,
    WAIT_S,
    BenchError,
    DaemonProcess,
    FrameBudget,
    Peer,
    Received,
    clear_retained,
    flip,
    has,
    import_memory,
    is_state,
    memory_of,
    percentile,
    write_config,
)

IDLE_QUIET_S = 2.0  # settled: every state published, then nothing published for this long
IDLE_CPU_S = 10.0  # how long idle CPU is sampled once settled (--idle)
try:
    # The daemon's one full collection, this long after it is ready (before `online`).
    from z2m_qbkg40lm.memory import SETTLE_S as DAEMON_SETTLE_S
except ImportError:  # a daemon without it
    DAEMON_SETTLE_S = 0.0
INBOUND_WAIT_S = 120.0  # the whole inbound phase
CLK_TCK = os.sysconf("SC_CLK_TCK")

_AS_RUN = "from z2m_qbkg40lm.deferred_imports import defer_unused_imports; defer_unused_imports()\n"
IMPORTS: dict[str, str] = {
    "python -c pass": "",
    "zigpy + aiomqtt (the floor)": "import zigpy.application, aiomqtt",
    "zigpy + aiomqtt, aiohttp and jsonschema deferred": _AS_RUN + "import zigpy.application, aiomqtt",
    "the daemon as run loads it (virtual adapter)": _AS_RUN
    + "import z2m_qbkg40lm.daemon, zigpy.application, z2m_qbkg40lm.sim.virtual_radio",
    "the same + all 3 radio libraries": _AS_RUN
    + "import z2m_qbkg40lm.daemon, zigpy.application, z2m_qbkg40lm.sim.virtual_radio, "
    "zigpy_znp.zigbee.application, bellows.zigbee.application, zigpy_deconz.zigbee.application",
}
RADIO_LIBS = ("zigpy_znp", "bellows", "zigpy_deconz")
CONSUMER_TOPICS = ("+", "bridge/state", "bridge/logging", "bridge/response/#")
"""What the bench's client subscribes to under a base topic: what it reads, not base/#."""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; utime is field 14
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def max_switches() -> int:
    """The upper bound of `virtual.switches` in the configuration model."""
    from z2m_qbkg40lm.config import VirtualConfig

    for meta in VirtualConfig.model_fields["switches"].metadata:
        bound = getattr(meta, "le", None)
        if bound is not None:
            return int(bound)
    return 10**6


@dataclass
class Row:
    """The figures of one switch count."""

    switches: int
    online_s: float = 0.0
    all_states_s: float = 0.0
    rss_kb: int = 0
    idle_cpu_pct: float = 0.0
    set_ms: list[float] = field(default_factory=list)
    echo_ms: list[float] = field(default_factory=list)
    inbound_frames: int = 0
    inbound_cpu_s: float = 0.0
    inbound_wall_s: float = 0.0
    inbound_states: int = 0
    rss_after_kb: int = 0
    skipped: str = ""


def p(values: list[float], fraction: float) -> float:
    return percentile(values, fraction) if values else float("nan")


def figures(r: Row) -> dict[str, float]:
    """The figures of one run, as the table shows them (times in s or ms, memory in MB)."""
    sp50, ep50 = statistics.median(r.set_ms), statistics.median(r.echo_ms)
    nan = float("nan")
    return {
        "online": r.online_s,
        "all_states": r.all_states_s,
        "rss": r.rss_kb / 1024,
        "idle": r.idle_cpu_pct,
        "set_p50": sp50,
        "set_p99": p(r.set_ms, 0.99),
        "echo_p50": ep50,
        "echo_p99": p(r.echo_ms, 0.99),
        "above_echo": sp50 - ep50,
        "rate": r.inbound_frames / r.inbound_cpu_s if r.inbound_cpu_s else nan,
        "wall_rate": r.inbound_frames / r.inbound_wall_s if r.inbound_wall_s else nan,
        "states": r.inbound_states,
        "frames": r.inbound_frames,
        "rss_after": r.rss_after_kb / 1024,
    }


def cell(values: list[float], spec: str) -> str:
    """One figure over the runs of a count: the value of a single run, else `min (median)`."""
    if len(values) == 1:
        return format(values[0], spec)
    return f"{format(min(values), spec)} ({format(statistics.median(values), spec)})"


async def echo_pair(host: str, port: int, count: int) -> list[float]:
    """Round trips through the broker between two plain clients, in ms (QoS 0, one at a time)."""
    topic = f"z2mbench_echo_{uuid.uuid4().hex[:12]}"
    times: list[float] = []
    async with (
        aiomqtt.Client(host, port, identifier=f"bench-echo-a-{uuid.uuid4().hex[:8]}", timeout=5) as sender,
        aiomqtt.Client(host, port, identifier=f"bench-echo-b-{uuid.uuid4().hex[:8]}", timeout=5) as receiver,
    ):
        await receiver.subscribe(topic)
        await asyncio.sleep(0.1)
        messages = receiver.messages
        for i in range(count + 5):  # the first 5 warm up
            payload = json.dumps({"state": "ON" if i % 2 else "OFF", "i": i})
            began = time.perf_counter()
            await sender.publish(topic, payload)
            async with asyncio.timeout(WAIT_S):
                async for message in messages:
                    if message.payload == payload.encode():
                        break
            if i >= 5:
                times.append((time.perf_counter() - began) * 1000)
    return times


async def every_switch_state(peer: Peer, position: int, switches: int) -> dict[str, Received]:
    """The first state message of each of `switches` switches after `position`, by topic."""
    seen: dict[str, Received] = {}

    def device_state(message: Received) -> bool:
        data = message.data
        if peer.is_device_topic(message.topic) and isinstance(data, dict) and "state" in data:
            seen.setdefault(message.topic, message)
        return len(seen) >= switches

    await peer.wait(device_state, after=position, what="every switch's state", within=START_WAIT_S * 4)
    return seen


class WrappedDaemon(DaemonProcess):
    """The daemon run by a wrapper script of this folder (`python SCRIPT OUT run ...`), which
    writes what it measured to OUT on SIGUSR1."""

    script = ""

    def __init__(self, config: Path, data_dir: Path, log_path: Path, out: Path) -> None:
        super().__init__(config, data_dir, log_path)
        self.out = out

    def start(self) -> float:
        """Start the process; returns its start time."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        script = Path(__file__).with_name(self.script)
        command = [sys.executable, str(script), str(self.out), "run"]
        command += ["--config", str(self.config), "--data-dir", str(self.data_dir)]
        with self.log_path.open("wb") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        return started


class TracedDaemon(WrappedDaemon):
    """The daemon under bench/traced_daemon.py: tracemalloc on, SIGUSR1 dumps the top sites."""

    script = "traced_daemon.py"


class Sweep:
    """One daemon per switch count, measured in turn."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.host: str = args.host
        self.port: int = args.port
        self.sets: int = args.sets
        self.inbound: int = args.inbound
        self.idle_s: float = args.idle
        self.work = work
        self.daemon: DaemonProcess | None = None
        self.bases: list[str] = []

    @contextlib.asynccontextmanager
    async def consumer(
        self, name: str, switches: int, topic_filters: tuple[str, ...] = CONSUMER_TOPICS
    ) -> AsyncIterator[tuple[Peer, Path, Path]]:
        """A fresh base topic, work folder and configuration for a daemon with `switches`
        switches, and a client subscribed under that base: yields the peer, the configuration
        file and the folder."""
        base = f"z2mbench_{uuid.uuid4().hex[:12]}"
        self.bases.append(base)
        work = self.work / name
        work.mkdir()
        config = work / "configuration.yaml"
        write_config(config, base=base, host=self.host, port=self.port, switches=switches, names={})
        async with aiomqtt.Client(
            self.host, self.port, identifier=f"bench-{uuid.uuid4().hex[:8]}", timeout=5
        ) as client:
            peer = Peer(client, base)
            for topic_filter in topic_filters:
                await client.subscribe(f"{base}/{topic_filter}", qos=1)
            pump = asyncio.get_running_loop().create_task(peer.pump())
            try:
                yield peer, config, work
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pump

    async def traced(self, switches: int) -> str:
        """tracemalloc's top allocation sites of a daemon with `switches` switches, after start-up."""
        topic_filters = ("+", "bridge/state")
        async with self.consumer(f"traced{switches}", switches, topic_filters) as (peer, config, work):
            out = work / "tracemalloc.txt"
            daemon = TracedDaemon(config, work / "data", work / "daemon.log", out)
            self.daemon = peer.daemon = daemon
            daemon.start()
            seen: set[str] = set()

            def device_state(message: Received) -> bool:
                if peer.is_device_topic(message.topic) and isinstance(message.data, dict):
                    seen.add(message.topic)
                return len(seen) >= switches

            await peer.wait(device_state, after=0, what="every switch's state (traced)", within=600)
            await peer.wait_quiet(1.0, after=peer.mark(), within=600, what="the traced start-up")
            os.kill(daemon.pid, signal.SIGUSR1)
            deadline = time.perf_counter() + 120
            while not out.exists():
                peer.check_daemon("the tracemalloc snapshot")
                if time.perf_counter() > deadline:
                    raise BenchError("no tracemalloc snapshot within 120 s")
                await asyncio.sleep(0.1)
            rss = memory_of(daemon.pid)["VmRSS"]
            self.daemon = peer.daemon = None
            await daemon.stop()
        text = out.read_text(encoding="utf-8")
        head = f"tracemalloc after start-up, {switches} switch(es), VmRSS {rss / 1024:.1f} MB while traced"
        return f"{head}:\n{text}"

    async def measure(self, switches: int, run: int = 1) -> Row:
        row = Row(switches)
        # A consumer subscribes to what it reads: device states, bridge state, logging and the
        # responses; not to base/# (its own commands' echo would delay the states).
        async with self.consumer(f"k{switches}r{run}", switches) as (peer, config, work):
            await self.phases(peer, row, config, work)
        return row

    async def phases(self, peer: Peer, row: Row, config: Path, work: Path) -> None:
        daemon = DaemonProcess(config, work / "data", work / "daemon.log")
        self.daemon = peer.daemon = daemon
        position = peer.mark()
        started = daemon.start()
        state_topic = peer.topic("bridge/state")
        online = await peer.wait(
            lambda m: m.topic == state_topic and m.data == {"state": "online"},
            after=position,
            what="bridge/state online",
            within=START_WAIT_S * 4,
        )
        seen = await every_switch_state(peer, position, row.switches)
        row.online_s = online.at - started
        row.all_states_s = max(m.at for m in seen.values()) - started
        row.rss_kb = memory_of(daemon.pid)["VmRSS"]
        # Idle CPU, once settled: the start-up's tail (the switches' OTA queries a second after
        # zigpy's Image Notify, their `update` states, the log) is over when nothing was published
        # for IDLE_QUIET_S, and the daemon's own clean-up after start-up (memory.py) has run;
        # then nothing is sent to the daemon for `idle_s`.
        await peer.wait_quiet(IDLE_QUIET_S, after=peer.mark(), within=START_WAIT_S, what="the start-up")
        if DAEMON_SETTLE_S:
            await asyncio.sleep(max(0.0, online.at + DAEMON_SETTLE_S + 0.5 - time.perf_counter()))
        cpu0, wall0 = cpu_seconds(daemon.pid), time.perf_counter()
        await asyncio.sleep(self.idle_s)
        row.idle_cpu_pct = 100 * (cpu_seconds(daemon.pid) - cpu0) / (time.perf_counter() - wall0)

        names = sorted({m.topic[len(peer.base) + 1 :] for m in seen.values()})
        current = {name: seen[peer.topic(name)].data["state"] for name in names}
        # Reports first: within 3 s of a /set the daemon leaves out a report that merely confirms
        # the command's state, which would make heartbeats go unpublished.
        await self.inbound_phase(peer, row, names)
        await peer.wait_quiet(SETTLE_S, after=peer.mark(), within=WAIT_S, what="the heartbeats")
        await set_flips(peer, names, current, self.sets, row.set_ms)
        row.echo_ms = await echo_pair(self.host, self.port, self.sets)
        await peer.wait_quiet(SETTLE_S, after=peer.mark(), within=WAIT_S, what="the /set round trips")
        row.rss_after_kb = memory_of(daemon.pid)["VmRSS"]
        errors = peer.log_records(position, "error")
        if errors:
            raise BenchError(f"errors on bridge/logging at {row.switches} switches: " + "; ".join(errors[:5]))
        self.daemon = peer.daemon = None
        pos = peer.mark()
        code, _ = await daemon.stop()
        if code != 0:
            raise BenchError(f"the daemon exited with code {code} after SIGTERM")
        await peer.wait(
            lambda m: m.topic == state_topic and m.data == {"state": "offline"}, after=pos, what="offline"
        )

    async def inbound_phase(self, peer: Peer, row: Row, names: list[str]) -> None:
        """Heartbeats from the radio, as fast as the daemon takes them: frames per CPU-second.

        One `simulation/heartbeats` request makes the simulated switches send `self.inbound` FCC0
        heartbeat reports, round robin, each as soon as the daemon has published the state of the
        one before (bridge/heartbeats_request.py: every frame has its switch's next transaction number
        and a chip temperature one degree up, so zigpy's duplicate filter drops none). The CPU
        is the daemon's from just before the request until the state message of the last frame
        arrived: the frames (zigpy's parse, the listeners, the converter, the state merge, the JSON
        and the publish), the simulated switches building them (in the daemon's process), and
        once the request and its response.
        """
        assert self.daemon is not None
        pid = self.daemon.pid
        topics = {peer.topic(name) for name in names}
        response = peer.topic("bridge/response/simulation/heartbeats")
        position = peer.mark()
        cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
        await peer.client.publish(
            peer.topic("bridge/request/simulation/heartbeats"),
            json.dumps({"count": self.inbound, "transaction": "bench"}),
        )
        answer = await peer.wait(
            lambda m: m.topic == response, after=position, what="the heartbeat stream", within=INBOUND_WAIT_S
        )
        data = answer.data if isinstance(answer.data, dict) else {}
        if data.get("status") != "ok" or data.get("data", {}).get("sent") != self.inbound:
            raise BenchError(f"simulation/heartbeats failed: {answer.payload[:300]!r}")
        # The response is published once the last frame is in zigpy; its state message follows.
        while self._count(peer, position, topics) < self.inbound:
            if time.perf_counter() - wall0 > INBOUND_WAIT_S:
                got = self._count(peer, position, topics)
                raise BenchError(
                    f"{got} state messages for {self.inbound} heartbeats within {INBOUND_WAIT_S:g} s"
                )
            peer.check_daemon("the heartbeats")
            await asyncio.sleep(0.001)
        cpu1 = cpu_seconds(pid)
        last = peer.last_message(position, device_only=True)
        row.inbound_wall_s = (last.at if last is not None else time.perf_counter()) - wall0
        row.inbound_cpu_s = cpu1 - cpu0
        row.inbound_frames = self.inbound
        row.inbound_states = self._count(peer, position, topics)

    @staticmethod
    def _count(peer: Peer, position: int, topics: set[str]) -> int:
        # Counted incrementally: the list only grows.
        cache = peer.__dict__.setdefault("_sweep_count", {})
        key = (position, frozenset(topics))
        start, count = cache.get(key, (position, 0))
        messages = peer.messages
        for m in messages[start:]:
            if m.topic in topics:
                count += 1
        cache[key] = (len(messages), count)
        return int(count)


# --- the daemon-side overhead (--overhead) ---------------------------------------------------------

OVERHEAD_WINDOW = 32  # heartbeat requests unanswered at a time, at most


class ProbedDaemon(WrappedDaemon):
    """The daemon under bench/probed_daemon.py: timestamps at its edges, SIGUSR1 writes them."""

    script = "probed_daemon.py"

    async def figures(self, peer: Peer) -> dict[str, Any]:
        """SIGUSR1, then the figures the daemon wrote since the previous SIGUSR1."""
        with contextlib.suppress(FileNotFoundError):
            self.out.unlink()
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.perf_counter() + WAIT_S
        while not self.out.exists():
            peer.check_daemon("the probes' figures")
            if time.perf_counter() > deadline:
                raise BenchError(f"no figures from the probed daemon within {WAIT_S:g} s")
            await asyncio.sleep(0.01)
        figures: dict[str, Any] = json.loads(self.out.read_text(encoding="utf-8"))
        return figures


@dataclass
class Overhead:
    """The daemon-side figures of one switch count, from the probes, and the consumer's view."""

    switches: int
    probes: dict[str, Any] = field(default_factory=dict)
    set_ms: list[float] = field(default_factory=list)
    heartbeats: int = 0
    seconds: float = 0.0


async def measure_overhead(sweep: Sweep, switches: int, rate: float) -> Overhead:
    """`/set` flips, one at a time as in the sweep, while heartbeats arrive at `rate` per second
    (round robin over the switches); the probes' figures of that window."""
    row = Overhead(switches)
    async with sweep.consumer(f"probed{switches}", switches) as (peer, config, work):
        daemon = ProbedDaemon(config, work / "data", work / "daemon.log", work / "overhead.json")
        sweep.daemon = peer.daemon = daemon
        position = peer.mark()
        started = daemon.start()
        await _probed_phase(peer, daemon, position, started=started, sets=sweep.sets, rate=rate, row=row)
        row.probes = await daemon.figures(peer)
        errors = peer.log_records(position, "error")
        if errors:
            raise BenchError(f"errors on bridge/logging (overhead, {switches}): " + "; ".join(errors[:5]))
        sweep.daemon = peer.daemon = None
        code, _ = await daemon.stop()
        if code != 0:
            raise BenchError(f"the probed daemon exited with code {code} after SIGTERM")
    return row


async def _probed_phase(
    peer: Peer, daemon: ProbedDaemon, position: int, *, started: float, sets: int, rate: float, row: Overhead
) -> None:
    """From the start of the probed daemon to the end of its `/set` flips under heartbeats."""
    seen = await every_switch_state(peer, position, row.switches)
    # Settled as for the idle CPU: the switches' OTA queries after their interviews and the
    # daemon's clean-up after start-up are over, so the window holds the steady state alone.
    await peer.wait_quiet(IDLE_QUIET_S, after=peer.mark(), within=START_WAIT_S, what="the start-up")
    await asyncio.sleep(max(0.0, started + DAEMON_SETTLE_S + 0.5 - time.perf_counter()))
    await daemon.figures(peer)  # the start-up's window, left out
    names = sorted({m.topic[len(peer.base) + 1 :] for m in seen.values()})
    current = {name: seen[peer.topic(name)].data["state"] for name in names}
    began = time.perf_counter()
    reporting = asyncio.get_running_loop().create_task(_heartbeats(peer, names, rate, row))
    try:
        await set_flips(peer, names, current, sets, row.set_ms)
    finally:
        reporting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporting
    row.seconds = time.perf_counter() - began
    await peer.wait_quiet(SETTLE_S, after=peer.mark(), within=WAIT_S, what="the overhead phase")


async def _heartbeats(peer: Peer, names: list[str], rate: float, row: Overhead) -> None:
    """Heartbeat requests at `rate` per second until cancelled (frames that never repeat: see
    `Sweep.inbound_phase`), at most OVERHEAD_WINDOW unanswered."""
    request = peer.topic("bridge/request/simulation/heartbeat")
    response = peer.topic("bridge/response/simulation/heartbeat")
    position = peer.mark()
    began = time.perf_counter()
    answered = 0
    seen = position
    i = 0
    while True:
        for m in peer.messages[seen:]:
            answered += m.topic == response
        seen = len(peer.messages)
        if i - answered < OVERHEAD_WINDOW:
            name = names[i % len(names)]
            temperature = 20 + (i // len(names)) % 41
            await peer.client.publish(request, json.dumps({"id": name, "temperature": temperature}))
            i += 1
            row.heartbeats = i
        await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))


async def set_flips(
    peer: Peer, names: list[str], current: dict[str, str], count: int, times_ms: list[float]
) -> None:
    """`/set` state flips, round robin, one at a time, each until its state message arrived; the
    round trips go into `times_ms`."""
    budget = FrameBudget()
    for i in range(count):
        name = names[i % len(names)]
        value = flip(current[name])
        await budget.take(name, 1, 1)  # the switch's report; the command
        pos = peer.mark()
        began = time.perf_counter()
        await peer.publish(f"{name}/set", json.dumps({"state": value}))
        message = await peer.wait(
            is_state(peer.topic(name), has("state", value)), after=pos, what=f"state {value} of {name}"
        )
        times_ms.append((message.at - began) * 1000)
        current[name] = value


async def run_overheads(sweep: Sweep, args: argparse.Namespace, rows: list[Overhead]) -> None:
    """`measure_overhead` at each count of --overhead, appending to `rows`."""
    for switches in overhead_counts(args):
        print(f"bench: daemon-side overhead with {switches} switch(es) ...", file=sys.stderr, flush=True)
        rows.append(await measure_overhead(sweep, switches, args.overhead_rate))


def print_overhead(rows: list[Overhead], rate: float) -> None:
    """The probes' table, in Markdown: one line per direction and switch count (nothing without rows)."""
    if not rows:
        return
    print()
    print(
        f"Daemon-side overhead (bench/probed_daemon.py), `/set` flips one at a time while heartbeats "
        f"arrive at {rate:g}/s; goal <= 1 ms p50, <= 2 ms p99"
    )
    print()
    print("| switches | direction | n | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    labels = (
        ("set_to_radio", "`/set` received -> frame handed to the radio"),
        ("set_queue", "  of which: paho -> bridge (aiomqtt's queue)"),
        ("frame_to_publish", "report frame (heartbeat, ...) -> state publish written"),
        ("frame_to_publish_call", "  of which: frame -> publish() called"),
        ("answer_to_publish", "`/set`'s answer frame -> state publish written"),
        ("other_to_publish", "other frame (OTA query, ...) -> state publish written"),
        ("radio_answer", "(simulator) frame to the radio -> its answer frame"),
    )
    for r in rows:
        for key, label in labels:
            f = r.probes.get(key, {})
            if not f.get("n"):
                continue  # e.g. no OTA query in a settled window
            print(
                f"| {r.switches} | {label} | {f.get('n', 0)} | {f.get('p50_ms', math.nan):.2f} ms "
                f"| {f.get('p99_ms', math.nan):.2f} ms | {f.get('max_ms', math.nan):.2f} ms |"
            )
        if r.set_ms:
            print(
                f"| {r.switches} | consumer: `/set` -> state (two broker hops; Mosquitto's Nagle) "
                f"| {len(r.set_ms)} "
                f"| {statistics.median(r.set_ms):.2f} ms | {p(r.set_ms, 0.99):.2f} ms "
                f"| {max(r.set_ms):.2f} ms |"
            )
    print(
        "\nThe consumer's figure under heartbeats is mostly Mosquitto's: with its default "
        "`set_tcp_nodelay false` a state message that follows another one waits for the consumer's "
        "delayed ACK (bench/README.md, \"The 40 ms\"); the probes' figures are the daemon's own."
    )
    for r in rows:
        print(
            f"\n{r.switches} switch(es): {r.heartbeats} heartbeats in {r.seconds:.1f} s, "
            f"{r.probes.get('frames_unpublished', 0)} frames without a state message within 1 s, "
            f"{r.probes.get('sets_not_sent', 0)} `/set` without a frame"
        )
    print(flush=True)


async def import_costs() -> dict[str, tuple[int, str]]:
    """VmRSS (kB) of bare interpreters after each import set, and which radio libraries were loaded."""
    result: dict[str, tuple[int, str]] = {}
    for label, code in IMPORTS.items():
        probe = f"{code}\nimport sys as _s; print('RADIO', *[m for m in {RADIO_LIBS!r} if m in _s.modules])"
        memory = await import_memory(probe)
        loaded = await _radio_libs(probe)
        result[label] = (memory["VmRSS"], loaded)
    return result


async def _radio_libs(code: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    for line in out.decode().splitlines():
        if line.startswith("RADIO"):
            return ", ".join(line.split()[1:]) or "none"
    return "?"


def print_table(rows: list[list[Row]], imports: dict[str, tuple[int, str]], args: argparse.Namespace) -> None:
    """The sweep's table, in Markdown: one line per switch count, its runs aggregated."""
    print()
    print(
        f"z2m-qbkg40lm sweep, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPU(s), "
        f"Python {sys.version.split()[0]}, /set n={args.sets}, inbound n={args.inbound}, "
        f"idle CPU over {args.idle:g} s once settled"
        + (f", {args.runs} runs per count: each figure is min (median)" if args.runs > 1 else "")
    )
    print()
    print(
        "| switches | online | all states | RSS after start | idle CPU | `/set`→state p50 / p99 "
        "| echo pair p50 / p99 | `/set` p50 above echo | inbound frames per CPU-s (wall/s) "
        "| states / frames | RSS after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for runs in rows:
        first = runs[0]
        if first.skipped:
            print(f"| {first.switches} | {first.skipped} |  |  |  |  |  |  |  |  |  |")
            continue
        each = [figures(r) for r in runs]

        def c(key: str, spec: str, each: list[dict[str, float]] = each) -> str:
            return cell([f[key] for f in each], spec)

        print(
            f"| {first.switches} | {c('online', '.2f')} s | {c('all_states', '.2f')} s "
            f"| {c('rss', '.1f')} MB "
            f"| {c('idle', '.2f')} % | {c('set_p50', '.1f')} / {c('set_p99', '.1f')} ms "
            f"| {c('echo_p50', '.2f')} / {c('echo_p99', '.2f')} ms | {c('above_echo', '.1f')} ms "
            f"| {c('rate', ',.0f')} ({c('wall_rate', ',.0f')}) "
            f"| {c('states', '.0f')} / {c('frames', '.0f')} | {c('rss_after', '.1f')} MB |"
        )
    print()
    print("| import (bare interpreter) | VmRSS | radio libraries loaded |")
    print("|---|---|---|")
    for label, (kb, loaded) in imports.items():
        print(f"| `{label}` | {kb / 1024:.1f} MB | {loaded} |")
    print(flush=True)


async def measure_runs(sweep: Sweep, switches: int, runs: int, cap: int) -> list[Row]:
    """One Row per run for a switch count, each with a fresh daemon; one skipped Row above `cap`."""
    if switches > cap:
        message = f"skipped: virtual.switches is capped at {cap}"
        print(f"bench: {switches} switches {message}", file=sys.stderr)
        return [Row(switches, skipped=message)]
    rows: list[Row] = []
    for run in range(1, runs + 1):
        print(f"bench: measuring {switches} switch(es), run {run} of {runs} ...", file=sys.stderr, flush=True)
        rows.append(await sweep.measure(switches, run))
    return rows


async def main_async(args: argparse.Namespace, counts: list[int]) -> int:
    cap = max_switches()
    work = Path(tempfile.mkdtemp(prefix="z2m-sweep-"))
    sweep = Sweep(args, work)
    rows: list[list[Row]] = []  # per count, one Row per run
    traced = ""
    overheads: list[Overhead] = []
    failure: str | None = None
    try:
        for switches in counts:
            rows.append(await measure_runs(sweep, switches, args.runs, cap))
        if args.tracemalloc:
            print(f"bench: tracemalloc with {args.tracemalloc} switch(es) ...", file=sys.stderr, flush=True)
            traced = await sweep.traced(args.tracemalloc)
        await run_overheads(sweep, args, overheads)
    except BenchError as exc:
        failure = str(exc)
    except aiomqtt.MqttError as exc:
        failure = f"MQTT broker at {args.host}:{args.port}: {exc}"
    finally:
        if sweep.daemon is not None:
            if failure is not None:
                print("\n".join(sweep.daemon.log_lines()[-40:]), file=sys.stderr)
            with contextlib.suppress(BenchError):
                await sweep.daemon.stop()
            sweep.daemon.kill()
        for base in sweep.bases:
            try:
                left = await clear_retained(args.host, args.port, base, ["bridge/state"])
                if left:
                    print(f"bench: retained messages could not be removed: {left}", file=sys.stderr)
            except aiomqtt.MqttError as exc:
                print(f"bench: cannot remove the retained messages under {base}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failure is not None:
        print(f"bench: FAILED: {failure}", file=sys.stderr)
        return 1
    if rows:
        imports = await import_costs()
        print_table(rows, imports, args)
    if traced:
        print(traced, flush=True)
    print_overhead(overheads, args.overhead_rate)
    return 0


def overhead_counts(args: argparse.Namespace) -> list[int]:
    """The switch counts of --overhead."""
    return [int(part) for part in args.overhead.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description="The daemon's figures at several switch counts.")
    parser.add_argument("--switches", default="1,16,64,200", help="switch counts, comma-separated")
    parser.add_argument("--sets", type=int, default=200, help="/set round trips per count (default 200)")
    parser.add_argument("--inbound", type=int, default=2000, help="heartbeats per count (default 2000)")
    parser.add_argument(
        "--runs", type=int, default=3, help="fresh daemons per count; cells show min (median) (default 3)"
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=IDLE_CPU_S,
        metavar="S",
        help=f"seconds of idle CPU sampled once the start-up settled (default {IDLE_CPU_S:g})",
    )
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="K",
        help="afterwards, tracemalloc's top-10 after the start-up of a daemon with K switches (slow)",
    )
    parser.add_argument(
        "--overhead",
        default="",
        metavar="LIST",
        help="afterwards, the daemon-side overhead (probes in the daemon) at these switch counts",
    )
    parser.add_argument(
        "--overhead-rate", type=float, default=50.0, help="heartbeats per second during --overhead (50)"
    )
    parser.add_argument("--host", default=os.environ.get("Z2M_TEST_BROKER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("Z2M_TEST_BROKER_PORT", "1883")))
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (daemon logs)")
    args = parser.parse_args()
    try:
        # "none": only what comes afterwards (--tracemalloc, --overhead).
        counts = [int(part) for part in args.switches.split(",") if part.strip() and part != "none"]
        extra = overhead_counts(args)
    except ValueError:
        parser.error(f"--switches and --overhead must be comma-separated integers, got {args.switches!r}")
    if (not counts and args.switches != "none") or min([*counts, *extra, 1]) < 1:
        parser.error("--switches and --overhead must be at least 1")
    if args.sets < 1 or args.inbound < 1 or args.runs < 1 or args.overhead_rate <= 0:
        parser.error("--sets, --inbound, --runs and --overhead-rate must be at least 1")
    if args.idle <= 0:
        parser.error("--idle must be more than 0 seconds")
    return asyncio.run(main_async(args, counts))


if __name__ == "__main__":
    raise SystemExit(main())
