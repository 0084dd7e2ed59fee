"""Benchmark of the daemon over the coordinator emulators: Z-Stack (zigpy-znp) beside EmberZNet (bellows).

Per chip and run, two processes with fresh directories: `python -m z2m_qbkg40lm emulate --chip …`
(the emulated stick, with one simulated switch in pairing mode) and `python -m z2m_qbkg40lm run`
(the daemon, `serial: {adapter: zstack|ember, port: …}`), against a real MQTT broker. Measured:

1. first start: daemon launch -> `bridge/state` online (the network formed); then a permit join
   request -> the switch's first state with `operation_mode` (join, interview, configure, read);
2. restart: the daemon stopped, then the emulator; the emulator started again on its NVRAM file
   and the same address, then the daemon: launch -> online, and -> the switch's state (the
   network and the switch resumed; a `device_joined` event here is a failure). That state is the
   daemon's cache, published at start, so then a `/get` of the state is sent and launch -> its
   answer (read from the switch through the resumed network) is measured too;
3. `/set` {"state": ON/OFF alternating}, one at a time, -> the state message showing it, as a
   client subscribed only to `<base>/<ieee>` sees it;
4. the daemon's VmRSS (/proc/PID/status) once the switch's state is published, after either start.

    .venv/bin/python bench/bench_emulators.py [--chips znp,znp12,ezsp13,ezsp14,deconz] [--sets N] [--runs R]
                                              [--line pty|tcp] [--keep]

The emulators' versions: `znp` is a CC2652 with Z-Stack 3.30, `znp12` a CC2531 with Z-Stack Home
1.2; `ezsp13` EmberZNet 7.4.4.0 (EZSP 13), `ezsp14` EmberZNet 8.0.2.0 (EZSP 14); `deconz` a ConBee
II with firmware 0x26780700 (z2m_qbkg40lm/sim/emulator.py). The default line is a pty,
as a USB stick is: over `socket://` bellows waits 2 s at each of its start-up resets for the reset
a network coordinator may send first, which inflates EmberZNet's start-up (`--line tcp` shows it).

Nothing is asserted about speed. Exit status 1, with the reason and the end of the logs on stderr,
when the daemon or the emulator misbehaves (no answer in time, an unexpected exit or exit code, an
error on `bridge/logging`, a new join after the restart) or the broker cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import yaml
from bench_daemon import (
    BenchError,
    DaemonProcess,
    FrameBudget,
    Peer,
    Received,
    clear_retained,
    memory_of,
    percentile,
)

EMULATOR_START_S = 20.0  # the emulator prints its address, and is online on MQTT
START_WAIT_S = 60.0  # daemon launch -> online, and permit join -> the switch's state
WAIT_S = 10.0  # one /set -> its state
STOP_WAIT_S = 20.0
SETTLE_S = 0.5  # before the /set phase: nothing published for this long


@dataclass(frozen=True)
class Chip:
    """One emulated coordinator and the daemon's adapter for it."""

    name: str
    chip: str
    adapter: str
    options: tuple[str, ...] = ()


CHIPS = {
    "znp": Chip("znp", "znp", "zstack"),
    "znp12": Chip("znp12", "znp12", "zstack"),
    "ezsp13": Chip("ezsp13", "ezsp", "ember", ("--ezsp-version", "13")),
    "ezsp14": Chip("ezsp14", "ezsp", "ember", ("--ezsp-version", "14")),
    "deconz": Chip("deconz", "deconz", "deconz"),
}


class BenchPeer(Peer):
    """The benchmark's MQTT peer, which also notices an emulator that exited."""

    emulator: EmulatorProcess | None = None

    def check_daemon(self, what: str) -> None:
        """BenchError if the daemon or the emulator has exited."""
        super().check_daemon(what)
        if self.emulator is not None:
            code = self.emulator.exit_code()
            if code is not None:
                raise BenchError(f"the emulator exited with code {code} while waiting for {what}")


class EmulatorProcess:
    """`python -m z2m_qbkg40lm emulate` as a child process; stderr (its log) kept in a file."""

    def __init__(self, chip: Chip, work: Path, listen: str, broker: str, base: str) -> None:
        self.chip = chip
        self.nvram = work / f"{chip.chip}.json"
        self.log_path = work / "emulator.log"
        self.listen = listen
        self.broker = broker
        self.base = base
        self.address = ""
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        """Start it and read the address it prints first; returns that address."""
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "z2m_qbkg40lm",
                "emulate",
                "--chip",
                self.chip.chip,
                *self.chip.options,
                "--listen",
                self.listen,
                "--nvram",
                str(self.nvram),
                "--switches",
                "1",
                "--mqtt",
                self.broker,
                "--base-topic",
                self.base,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), EMULATOR_START_S)
        except TimeoutError:
            line = b""
        address = line.decode().strip()
        if not address:
            raise BenchError(f"the emulator printed no address within {EMULATOR_START_S:g} s")
        if self.listen.startswith("tcp://"):
            # The same port after a restart, as a stick keeps its address: the daemon's config names it.
            self.listen = address
        self.address = address
        return address

    def exit_code(self) -> int | None:
        """None while running, else the exit code."""
        return None if self.process is None else self.process.returncode

    async def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_WAIT_S)
        except TimeoutError:
            self.kill()
            raise BenchError(f"the emulator did not stop within {STOP_WAIT_S:g} s of SIGTERM") from None

    def kill(self) -> None:
        """Last resort: SIGKILL."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    def port(self) -> str:
        """What the daemon's `serial.port` names: the pty's path, or socket://HOST:PORT."""
        return (
            "socket://" + self.address.removeprefix("tcp://")
            if self.address.startswith("tcp://")
            else self.address
        )

    def log_lines(self) -> list[str]:
        """What the emulator logged."""
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()


@dataclass
class Run:
    """The figures of one run of one chip."""

    version: str = ""
    first_online_s: float = 0.0
    paired_s: float = 0.0
    resume_online_s: float = 0.0
    resumed_state_s: float = 0.0
    resumed_get_s: float = 0.0
    set_ms: list[float] = field(default_factory=list)
    rss_first_kb: int = 0
    rss_resumed_kb: int = 0


def is_json(topic: str, predicate: Callable[[dict[str, Any]], bool]) -> Callable[[Received], bool]:
    """Matches a JSON object message on one topic for which the predicate holds."""
    return lambda m: m.topic == topic and isinstance(m.data, dict) and predicate(m.data)


def state_is(value: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a state object whose `state` is the value."""
    return lambda data: data.get("state") == value


def version_of(info: dict[str, Any]) -> str:
    """The coordinator's type and firmware revision from `bridge/info`."""
    coordinator = info.get("coordinator") or {}
    meta = coordinator.get("meta") or {}
    return " ".join(str(part) for part in (coordinator.get("type"), meta.get("revision")) if part)


class Rig:
    """One run: an emulator and a daemon in a fresh directory, under a fresh base topic."""

    def __init__(self, args: argparse.Namespace, chip: Chip, work: Path) -> None:
        self.args = args
        self.chip = chip
        self.work = work
        self.base = f"z2mbench_{uuid.uuid4().hex[:12]}"
        self.broker = f"mqtt://{args.host}:{args.port}"
        listen = f"pty:{work / 'ttyEMU'}" if args.line == "pty" else "tcp://127.0.0.1:0"
        self.emulator = EmulatorProcess(chip, work, listen, self.broker, self.base)
        self.daemon: DaemonProcess | None = None
        self.daemons = 0
        self.ieee = ""
        self.result = Run()

    def write_config(self) -> Path:
        """The daemon's configuration for the emulator's address."""
        path = self.work / "configuration.yaml"
        config: dict[str, Any] = {
            "mqtt": {"base_topic": self.base, "server": self.broker},
            "serial": {"adapter": self.chip.adapter, "port": self.emulator.port()},
            "advanced": {"log_level": "info", "channel": 15},
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    async def start_emulator(self, peer: BenchPeer) -> None:
        """Start the emulator and wait until its control API is online (not part of any figure)."""
        position = peer.mark()
        peer.emulator = self.emulator
        await self.emulator.start()
        await peer.wait(
            is_json(peer.topic("bridge/emulator"), lambda d: d.get("state") == "online"),
            after=position,
            what="the emulator online on MQTT",
            within=EMULATOR_START_S,
        )

    def launch(self, peer: BenchPeer, config: Path) -> tuple[int, float]:
        """Start a daemon; returns the message position and the launch time."""
        self.daemons += 1
        self.daemon = DaemonProcess(config, self.work / "data", self.work / f"daemon-{self.daemons}.log")
        peer.daemon = self.daemon
        position = peer.mark()
        return position, self.daemon.start()

    async def online(self, peer: BenchPeer, position: int, what: str) -> Received:
        """Wait for `bridge/state` online."""
        return await peer.wait(
            is_json(peer.topic("bridge/state"), lambda d: d.get("state") == "online"),
            after=position,
            what=what,
            within=START_WAIT_S,
        )

    async def stop_both(self, peer: BenchPeer) -> None:
        """Stop the daemon, then the emulator; both must exit with 0."""
        assert self.daemon is not None
        peer.daemon = None
        code, _ = await self.daemon.stop()
        if code != 0:
            raise BenchError(f"the daemon exited with code {code} after SIGTERM")
        peer.emulator = None
        code = await self.emulator.stop()
        if code != 0:
            raise BenchError(f"the emulator exited with code {code} after SIGTERM")

    async def first_start(self, peer: BenchPeer) -> None:
        """Form the network, then pair the switch."""
        await self.start_emulator(peer)
        position, launched = self.launch(peer, self.write_config())
        online = await self.online(peer, position, "bridge/state online (first start)")
        self.result.first_online_s = online.at - launched
        position = peer.mark()
        asked = time.perf_counter()
        await peer.request("permit_join", {"time": 60}, what="permit join")
        joined = await peer.wait(
            is_json(peer.topic("bridge/event"), lambda d: d.get("type") == "device_joined"),
            after=position,
            what="the switch joining",
            within=START_WAIT_S,
        )
        self.ieee = str(joined.data["data"]["ieee_address"])
        state = await peer.wait(
            is_json(peer.topic(self.ieee), lambda d: "operation_mode" in d),
            after=position,
            what="the paired switch's state",
            within=START_WAIT_S,
        )
        self.result.paired_s = state.at - asked
        assert self.daemon is not None
        self.result.rss_first_kb = memory_of(self.daemon.pid)["VmRSS"]
        await peer.request("permit_join", {"time": 0}, what="closing permit join")
        infos = peer.since(0, is_json(peer.topic("bridge/info"), lambda d: "coordinator" in d))
        if infos and isinstance(infos[-1].data, dict):
            self.result.version = version_of(infos[-1].data)

    async def restart(self, peer: BenchPeer) -> None:
        """Stop both, start both again; the network and the switch are resumed."""
        await self.stop_both(peer)
        await self.start_emulator(peer)
        position, launched = self.launch(peer, self.write_config())
        online = await self.online(peer, position, "bridge/state online (restart)")
        self.result.resume_online_s = online.at - launched
        state = await peer.wait(
            is_json(peer.topic(self.ieee), lambda d: "state" in d),
            after=position,
            what="the resumed switch's state",
            within=START_WAIT_S,
        )
        self.result.resumed_state_s = state.at - launched
        # That state is the daemon's cache, published at start; a /get answered shows the switch
        # reachable through the resumed network.
        position = peer.mark()
        await peer.publish(f"{self.ieee}/get", json.dumps({"state": ""}))
        answer = await peer.wait(
            is_json(peer.topic(self.ieee), lambda d: "state" in d),
            after=position,
            what="the resumed switch's answer to /get",
            within=START_WAIT_S,
        )
        self.result.resumed_get_s = answer.at - launched
        assert self.daemon is not None
        self.result.rss_resumed_kb = memory_of(self.daemon.pid)["VmRSS"]
        await peer.wait_idle(SETTLE_S, within=START_WAIT_S, what="the resumed start-up to settle")
        joins = peer.since(
            position, is_json(peer.topic("bridge/event"), lambda d: d.get("type") == "device_joined")
        )
        if joins:
            raise BenchError(f"the switch joined again after the restart: {joins[0].payload!r}")

    async def set_round_trips(self, peer: BenchPeer) -> None:
        """`/set` state flips, one at a time, timed by a client subscribed only to `<base>/<ieee>`."""
        last = peer.last_message(0, device_only=True)
        current = last.data.get("state") if last is not None and isinstance(last.data, dict) else None
        value = "OFF" if current == "ON" else "ON"
        identifier = f"bench-set-{uuid.uuid4().hex[:8]}"
        async with aiomqtt.Client(self.args.host, self.args.port, identifier=identifier, timeout=5) as client:
            reader = BenchPeer(client, self.base)
            reader.daemon, reader.emulator = self.daemon, self.emulator
            await client.subscribe(reader.topic(self.ieee), qos=1)
            pump = asyncio.get_running_loop().create_task(reader.pump())
            try:
                budget = FrameBudget()
                for _ in range(self.args.sets):
                    # Above ~230 in 10 s zigpy's duplicate filter would drop answers (bench/README.md).
                    await budget.take(self.ieee, 1, 1)  # the switch's report; the command
                    position = reader.mark()
                    sent = time.perf_counter()
                    await reader.publish(f"{self.ieee}/set", json.dumps({"state": value}))
                    seen = await reader.wait(
                        is_json(reader.topic(self.ieee), state_is(value)),
                        after=position,
                        what=f"the state {value} after /set",
                        within=WAIT_S,
                    )
                    self.result.set_ms.append((seen.at - sent) * 1000)
                    value = "OFF" if value == "ON" else "ON"
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pump

    def check_log(self, peer: BenchPeer) -> None:
        """BenchError on any error the daemon reported on `bridge/logging`."""
        errors = peer.log_records(0, "error")
        if errors:
            raise BenchError(f"the daemon logged errors on bridge/logging: {errors[:3]}")

    async def run(self, peer: BenchPeer) -> Run:
        """All phases of one run; both processes are stopped at the end."""
        await self.first_start(peer)
        await self.restart(peer)
        await self.set_round_trips(peer)
        self.check_log(peer)
        await self.stop_both(peer)
        return self.result

    async def clean_up(self, *, failed: bool) -> None:
        """Stop what still runs, print the logs' ends on failure, remove retained messages."""
        if failed:
            for name, lines in (
                ("daemon", self.daemon.log_lines() if self.daemon else []),
                ("emulator", self.emulator.log_lines()),
            ):
                print(f"--- the end of the {name}'s log ({self.work}) ---", file=sys.stderr)
                print("\n".join(lines[-30:]), file=sys.stderr)
        if self.daemon is not None and self.daemon.exit_code() is None:
            with contextlib.suppress(BenchError):
                await self.daemon.stop()
            self.daemon.kill()
        if self.emulator.exit_code() is None and self.emulator.process is not None:
            with contextlib.suppress(BenchError):
                await self.emulator.stop()
            self.emulator.kill()
        extra = ["bridge/state", "bridge/emulator", "bridge/info", "bridge/devices"]
        extra += [self.ieee] if self.ieee else []
        try:
            left = await clear_retained(self.args.host, self.args.port, self.base, extra)
            if left:
                print(f"bench: retained messages could not be removed: {left}", file=sys.stderr)
        except aiomqtt.MqttError as exc:
            print(f"bench: cannot remove the retained messages under {self.base}: {exc}", file=sys.stderr)


async def one_run(args: argparse.Namespace, chip: Chip, root: Path, index: int) -> Run:
    """A fresh emulator and daemon for one run; BenchError when they misbehave."""
    work = root / f"{chip.name}-{index}"
    work.mkdir()
    rig = Rig(args, chip, work)
    failed = True
    try:
        async with aiomqtt.Client(
            args.host, args.port, identifier=f"bench-{uuid.uuid4().hex[:8]}", timeout=5
        ) as client:
            peer = BenchPeer(client, rig.base)
            for topic_filter in (
                "+",
                "bridge/state",
                "bridge/event",
                "bridge/info",
                "bridge/emulator",
                "bridge/logging",
                "bridge/response/#",
            ):
                await client.subscribe(peer.topic(topic_filter), qos=1)
            pump = asyncio.get_running_loop().create_task(peer.pump())
            try:
                result = await rig.run(peer)
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pump
        failed = False
        return result
    except aiomqtt.MqttError as exc:
        raise BenchError(f"MQTT broker at {args.host}:{args.port}: {exc}") from exc
    finally:
        await rig.clean_up(failed=failed)


def min_median(values: list[float], digits: int) -> str:
    """`min (median)` of the runs, or the one value."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{min(values):.{digits}f} ({statistics.median(values):.{digits}f})"


def table(args: argparse.Namespace, results: dict[str, list[Run]]) -> str:
    """The Markdown table of all chips."""
    head = (
        "| chip | firmware | first start online s | paired s | resume online s | resumed state s "
        "| resumed `/get` s | `/set` p50 / p95 / max ms | RSS first / resumed MB |"
    )
    lines = [head, "|" + "---|" * 9]
    for name, runs in results.items():
        p50 = [statistics.median(r.set_ms) for r in runs]
        p95 = [percentile(r.set_ms, 0.95) for r in runs]
        top = [max(r.set_ms) for r in runs]
        rss_first = [r.rss_first_kb / 1024 for r in runs]
        rss_resumed = [r.rss_resumed_kb / 1024 for r in runs]
        cells = [
            name,
            runs[0].version or "?",
            min_median([r.first_online_s for r in runs], 2),
            min_median([r.paired_s for r in runs], 2),
            min_median([r.resume_online_s for r in runs], 2),
            min_median([r.resumed_state_s for r in runs], 2),
            min_median([r.resumed_get_s for r in runs], 2),
            f"{min_median(p50, 1)} / {min_median(p95, 1)} / {min_median(top, 1)}",
            f"{min_median(rss_first, 1)} / {min_median(rss_resumed, 1)}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"line: {args.line}; runs per chip: {args.runs} (cells: min (median) over the runs); "
        f"/set round trips per run: {args.sets}"
    )
    return "\n".join([note, "", *lines])


async def main_async(args: argparse.Namespace) -> int:
    """Every chip, every run; the table at the end."""
    chips = [CHIPS[name] for name in args.chips]
    root = Path(tempfile.mkdtemp(prefix="z2m-bench-emu-"))
    results: dict[str, list[Run]] = {}
    try:
        for chip in chips:
            for index in range(args.runs):
                began = time.perf_counter()
                run = await one_run(args, chip, root, index)
                results.setdefault(chip.name, []).append(run)
                print(
                    f"bench: {chip.name} run {index + 1}/{args.runs}: online {run.first_online_s:.2f} s, "
                    f"paired {run.paired_s:.2f} s, resumed {run.resume_online_s:.2f} / "
                    f"{run.resumed_state_s:.2f} / {run.resumed_get_s:.2f} s, "
                    f"/set p50 {statistics.median(run.set_ms):.1f} ms "
                    f"({time.perf_counter() - began:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        print(f"bench: kept {root}", file=sys.stderr)
        return 1
    if args.keep:
        print(f"bench: kept {root}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)
    print(table(args, results), flush=True)
    return 0


def chip_list(text: str) -> list[str]:
    """`--chips`: comma-separated names of CHIPS."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CHIPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown chips {unknown}; choose from {', '.join(CHIPS)}")
    return names


def main() -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(
        description="Benchmark the daemon over the coordinator emulators (Z-Stack, EmberZNet, deCONZ)."
    )
    parser.add_argument(
        "--chips", type=chip_list, default=list(CHIPS), help="default: znp,znp12,ezsp13,ezsp14,deconz"
    )
    parser.add_argument("--sets", type=int, default=50, help="/set round trips per run (default 50)")
    parser.add_argument("--runs", type=int, default=3, help="fresh runs per chip (default 3)")
    parser.add_argument("--line", choices=("pty", "tcp"), default="pty", help="serial line (default pty)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory with the logs")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port (default 1883)")
    args = parser.parse_args()
    if args.sets < 1 or args.runs < 1:
        parser.error("--sets and --runs must be at least 1")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
