"""The shipped systemd unit's confinement does not break the daemon.

deploy/z2m-qbkg40lm.service allows a set of system calls (EPERM for the rest), four socket families
and no write+execute memory. Without systemd as PID 1 the unit cannot be started here, so the same
restrictions are loaded by `tests.unit_confinement` (read from the unit file itself, so this test
follows the unit) and the daemon runs under them on a serial line (the Z-Stack emulator on a
pty): it forms the network, pairs and drives a switch, saves a rename and options to its
configuration file, restarts itself in place and serves again. `scripts/check-deploy` checks the
unit file with systemd-analyze.
"""

from __future__ import annotations

import asyncio
import json
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import unit_confinement
from tests.support import (
    BROKER_HOST,
    BROKER_PORT,
    DaemonProcess,
    clear_retained,
    random_base_topic,
    terminate,
    watching,
    write_config,
)

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "z2m-qbkg40lm.service"
START_S = 30.0

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None
    or not unit_confinement.seccomp_available()
    or not unit_confinement.mdwe_supported(),
    reason="needs systemd-analyze (the unit's syscall groups), libseccomp and Linux 6.3+ (PR_SET_MDWE)",
)


def _confined(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.unit_confinement", str(UNIT), *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_confinement_refuses_what_the_unit_refuses() -> None:
    probe = """
import mmap, os, socket
def refused(call):
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0
print(refused(lambda: os.setuid(os.getuid())),
      refused(lambda: os.sched_setaffinity(0, os.sched_getaffinity(0))),
      refused(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
      refused(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)),
      refused(lambda: socket.socket(socket.AF_INET6).close()))
"""
    result = _confined(sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    # setuid (@privileged), sched_setaffinity (@resources), AF_PACKET: EPERM; W+X memory: EACCES.
    assert result.stdout.split() == ["1", "1", "1", "13", "0"]


class _Emulator:
    """The Z-Stack emulator on a pty, so that the daemon opens a real serial line."""

    def __init__(self, folder: Path, config: Path) -> None:
        self.tty = folder / "ttyZSTACK"
        log = (folder / "emulator.log").open("wb")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "z2m_qbkg40lm", "emulate", "--listen", f"pty:{self.tty}"),
                *("--nvram", str(folder / "znp.json"), "--switches", "1"),
                *("--mqtt", f"mqtt://{BROKER_HOST}:{BROKER_PORT}", "--config", str(config)),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], START_S)
        if not ready or not self.process.stdout.readline():
            self.stop()
            raise AssertionError("the emulator did not start")

    def stop(self) -> None:
        terminate(self.process, "emulator", 10, lambda: "")
        if self.process.stdout is not None:
            self.process.stdout.close()


class _ConfinedDaemon(DaemonProcess):
    """The daemon started through tests.unit_confinement."""

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "tests.unit_confinement", str(UNIT)),
                    *(sys.executable, "-m", "z2m_qbkg40lm", "run", "--config", str(self.config)),
                    *("--data-dir", str(self.data_dir)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )


@pytest.fixture
def base() -> Iterator[str]:
    topic = random_base_topic()
    yield topic
    clear_retained(topic)


def test_the_daemon_serves_saves_and_restarts_under_the_units_confinement(tmp_path: Path, base: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = write_config(data / "configuration.yaml", base)
    emulator = _Emulator(tmp_path, config)
    daemon = _ConfinedDaemon(config, data)
    try:
        write_config(
            config, base, serial={"adapter": "zstack", "port": str(emulator.tty)}, advanced={"channel": 15}
        )
        daemon.start()
        asyncio.run(_exercise(base))
    finally:
        code = daemon.stop() if daemon.running else None
        emulator.stop()
    log = daemon.log()
    assert code == 0, log
    assert log.startswith(f"confined like {UNIT.name}: "), log[:300]
    assert "Operation not permitted" not in log and "Permission denied" not in log, log
    saved = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert [device["friendly_name"] for device in saved["devices"].values()] == ["hall"]
    assert saved["advanced"]["last_seen"] == "ISO_8601"


async def _exercise(base: str) -> None:
    async with watching(base) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, timeout=START_S)
        await watcher.wait_for("bridge/emulator", lambda m: m.json() == {"state": "online"})
        position = watcher.mark()
        assert (await watcher.request("permit_join", {"time": 60}))["status"] == "ok"
        joined = await watcher.wait_for(
            "bridge/event", lambda m: m.json()["type"] == "device_joined", after=position, timeout=START_S
        )
        ieee = joined.json()["data"]["ieee_address"]
        await watcher.wait_state(ieee, lambda s: "operation_mode" in s, after=position)
        position = watcher.mark()
        await watcher.publish(f"{ieee}/set", json.dumps({"state": "ON"}))
        await watcher.wait_state(ieee, lambda s: s.get("state") == "ON", after=position)

        renamed = await watcher.request("device/rename", {"from": ieee, "to": "hall"})
        assert renamed["status"] == "ok", renamed
        options = await watcher.request("options", {"options": {"advanced": {"last_seen": "ISO_8601"}}})
        assert options["status"] == "ok", options

        position = watcher.mark()
        restart = await watcher.request("restart", {})
        assert restart["status"] == "ok", restart
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "offline"}, after=position)
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, after=position)
        position = watcher.mark()
        await watcher.publish("hall/set", json.dumps({"state": "OFF"}))
        await watcher.wait_state("hall", lambda s: s.get("state") == "OFF", after=position)
