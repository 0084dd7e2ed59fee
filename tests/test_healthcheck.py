"""`python -m z2m_qbkg40lm.healthcheck`, the container healthcheck: healthy only when the daemon of the
configuration answers, with the real daemon (virtual adapter) and the real broker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.support import (
    DaemonProcess,
    clear_retained,
    free_port,
    random_base_topic,
    watching,
    write_config,
)


def _healthcheck(config: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "z2m_qbkg40lm.healthcheck", str(config), "--timeout", str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 20,
        check=False,
    )


async def _online(base: str) -> None:
    async with watching(base) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})


def test_healthy_while_the_daemon_serves_and_not_once_it_stopped(tmp_path: Path) -> None:
    base = random_base_topic()
    config = write_config(tmp_path / "configuration.yaml", base)
    daemon = DaemonProcess(config, tmp_path / "data")
    daemon.start()
    try:
        asyncio.run(_online(base))
        served = _healthcheck(config, 10)
        assert (served.returncode, served.stdout.strip()) == (0, "healthy"), served.stderr
    finally:
        assert daemon.stop() == 0, daemon.log()
        clear_retained(base)
    gone = _healthcheck(config, 2)
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"unhealthy: no answer on {base}/bridge/response/health_check within 2 s")


def test_an_unreachable_broker_is_unhealthy_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "configuration.yaml"
    config.write_text(
        f"mqtt: {{base_topic: {random_base_topic()}, server: 'mqtt://127.0.0.1:{free_port()}'}}\n"
        "serial: {adapter: virtual}\n",
        encoding="utf-8",
    )
    result = _healthcheck(config, 5)
    assert result.returncode == 1
    assert result.stderr.startswith("unhealthy: cannot reach the broker 127.0.0.1:"), result.stderr


def test_a_broken_configuration_is_unhealthy_with_the_reason(tmp_path: Path) -> None:
    result = _healthcheck(tmp_path / "missing.yaml", 5)
    assert result.returncode == 1
    assert result.stderr.startswith("unhealthy: ") and "cannot read" in result.stderr, result.stderr
