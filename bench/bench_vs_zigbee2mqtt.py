"""Zigbee2MQTT and this daemon measured in one go, on the same emulated Z-Stack stick.

Each program runs on a fresh Z-Stack emulator (`python -m z2m_qbkg40lm emulate --chip znp`) with the
same `configuration.yaml` (tests/zigbee2mqtt_support.py's `shared_configuration`: fixed network,
Home Assistant discovery and availability on, log level info), one after the other, and gets:

- **first start online**: process launch -> `bridge/state` `online` (forming the network on the
  factory-new stick; Zigbee2MQTT also writes its coordinator backup);
- **paired**: `permit_join` -> the switch interviewed, in `bridge/devices` with its definition;
- **`/set` p50 / p95 / max**: `{"state": "ON"}` / `"OFF"` alternating on `<base>/<ieee>/set`, one
  at a time, until the state with that value arrives at a client subscribed to `<base>/<ieee>`
  only, as a consumer such as Home Assistant is (not `<base>/#`);
- **RSS at 10 s and 60 s** after the launch (VmRSS), and **peak** (VmHWM) at 60 s;
- **CPU s**: user + system seconds of the process over those first 60 s;
- **restart online**: SIGTERM, launch again on the same data -> `online` (the network resumed).

    .venv/bin/python bench/bench_vs_zigbee2mqtt.py [--programs zigbee2mqtt,z2m-qbkg40lm] [--sets N]

Zigbee2MQTT is installed with npm on first use (tests/zigbee2mqtt_support.py); without Node.js it is
left out and the reason printed. Exit status 1 when a program did not answer in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.side_by_side import DAEMON, ZIGBEE2MQTT, Program, Run, join_switch, start_bridge
from tests.support import BROKER_HOST, BROKER_PORT, watching
from tests.zigbee2mqtt_support import ZIGBEE2MQTT_VERSION, Unavailable, ensure_zigbee2mqtt, node_executable

START_S = 60.0
SET_WAIT_S = 10.0
PACE_S = 0.1
"""Between two `/set`s: both programs idle again (not a synchronisation: the answer was awaited)."""
SAMPLE_AT_S = (10.0, 60.0)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    """What one program measured."""

    program: str
    online_s: float = 0.0
    paired_s: float = 0.0
    restart_online_s: float = 0.0
    set_ms: list[float] = field(default_factory=list)
    rss_mb: dict[float, float] = field(default_factory=dict)
    peak_mb: float = 0.0
    cpu_s: float = 0.0


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _cpu_s(pid: int) -> float:
    # Fields after the command name (in parentheses): utime and stime are the 12th and 13th.
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def _sample(pid: int, launched: float, figures: Figures) -> None:
    for at in SAMPLE_AT_S:
        await asyncio.sleep(max(0.0, launched + at - time.monotonic()))
        figures.rss_mb[at] = _status_mb(pid, "VmRSS")
    figures.peak_mb = _status_mb(pid, "VmHWM")
    figures.cpu_s = _cpu_s(pid)


async def _sets(base: str, ieee: str, count: int) -> list[float]:
    """`count` `/set` round trips as a consumer subscribed to the device's topic only sees them."""
    topic = f"{base}/{ieee}"
    latencies: list[float] = []
    identifier = f"bench-{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client(BROKER_HOST, BROKER_PORT, identifier=identifier) as client:
        await client.subscribe(topic, qos=0)
        messages = client.messages
        for number in range(count):
            wanted = "ON" if number % 2 == 0 else "OFF"
            sent = time.monotonic()
            await client.publish(f"{topic}/set", json.dumps({"state": wanted}))
            async with asyncio.timeout(SET_WAIT_S):
                async for message in messages:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    if payload and json.loads(payload).get("state") == wanted:
                        break
            latencies.append((time.monotonic() - sent) * 1000)
            await asyncio.sleep(PACE_S)
    return latencies


async def measure(program: Program, folder: Path, sets: int) -> Figures:
    """One program on a fresh emulator, from launch to a restart."""
    figures = Figures(program.name)
    run = Run(program, folder)
    async with watching(run.base) as watcher:
        run.start_emulator()
        try:
            await watcher.wait_for("bridge/emulator", lambda m: m.json() == {"state": "online"})
            launched = time.monotonic()
            await start_bridge(run, watcher, START_S)
            figures.online_s = run.online_s[-1]
            assert run.bridge is not None
            sampler = asyncio.get_running_loop().create_task(_sample(run.bridge.pid, launched, figures))
            try:
                started = time.monotonic()
                await join_switch(run, watcher)
                figures.paired_s = time.monotonic() - started
                figures.set_ms = await _sets(run.base, run.ieee, sets)
                await sampler
            finally:
                sampler.cancel()
            position = watcher.mark()
            assert await asyncio.to_thread(run.bridge.stop) == 0, run.bridge.log()
            await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "offline"}, after=position)
            await start_bridge(run, watcher, START_S)
            figures.restart_online_s = run.online_s[-1]
        except BaseException:
            if run.bridge is not None:
                print(f"--- {program.name} log ---\n{run.bridge.log()[-5000:]}", file=sys.stderr)
            raise
        finally:
            await asyncio.to_thread(run.stop_all)
    return figures


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def table(results: list[Figures], versions: dict[str, str]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| program | first start online s | paired s | `/set` p50 / p95 / max ms | RSS 10 s / 60 s / peak MB "
        "| CPU s (first 60 s) | restart online s |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in results:
        sets = f"{statistics.median(f.set_ms):.1f} / {_percentile(f.set_ms, 0.95):.1f} / {max(f.set_ms):.1f}"
        rss = f"{f.rss_mb[10.0]:.0f} / {f.rss_mb[60.0]:.0f} / {f.peak_mb:.0f}"
        lines.append(
            f"| {f.program} {versions[f.program]} | {f.online_s:.2f} | {f.paired_s:.2f} | {sets} | {rss} "
            f"| {f.cpu_s:.1f} | {f.restart_online_s:.2f} |"
        )
    return "\n".join(lines)


def _node_version() -> str:
    try:
        found = subprocess.run([node_executable(), "--version"], capture_output=True, text=True, check=False)
    except Unavailable:
        return "absent"
    return found.stdout.strip()


def main() -> int:
    """Measure the chosen programs one after the other and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--programs", default=f"{ZIGBEE2MQTT.name},{DAEMON.name}")
    parser.add_argument("--sets", type=int, default=50, help="/set round trips per program (default 50)")
    options = parser.parse_args()
    chosen = {ZIGBEE2MQTT.name: ZIGBEE2MQTT, DAEMON.name: DAEMON}
    from z2m_qbkg40lm import __version__

    versions = {ZIGBEE2MQTT.name: ZIGBEE2MQTT_VERSION, DAEMON.name: __version__}
    programs = [chosen[name] for name in options.programs.split(",")]
    if ZIGBEE2MQTT in programs:
        try:
            ensure_zigbee2mqtt()
        except Unavailable as missing:
            print(f"Zigbee2MQTT left out: {missing}", file=sys.stderr)
            programs.remove(ZIGBEE2MQTT)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-vs-z2m-") as folder:
        for program in programs:
            results.append(asyncio.run(measure(program, Path(folder) / program.name, options.sets)))
    load = os.getloadavg()[0]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}, node {_node_version()}"
    print(f"{stamp}, {machine}, load average {load:.2f}")
    print(table(results, versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
