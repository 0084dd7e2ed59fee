"""A broker that is not there yet, or goes away: the daemon waits, reconnects and serves again.

These tests need a broker they can kill, so each starts a private Mosquitto on a free port.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import support
from tests.support import DaemonProcess, PrivateBroker, random_base_topic, write_config


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[PrivateBroker]:
    made = PrivateBroker(tmp_path, "allow_anonymous true")
    yield made
    await made.kill()


@pytest.fixture
def use_broker(broker: PrivateBroker, monkeypatch: pytest.MonkeyPatch) -> PrivateBroker:
    """Point the helpers (config writer, watcher) at the private broker."""
    monkeypatch.setattr(support, "BROKER_PORT", broker.port)
    return broker


async def test_daemon_started_before_the_broker_connects_when_it_comes(
    use_broker: PrivateBroker, tmp_path: Path
) -> None:
    base = random_base_topic()
    config = write_config(tmp_path / "configuration.yaml", base)
    daemon = DaemonProcess(config, tmp_path / "data")
    daemon.start()
    try:
        # docker compose starts both at once: the broker may come up after the daemon.
        await use_broker.start()
        async with support.watching(base) as watcher:
            await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
            switches = await watcher.request("simulation/switches", {})
            ieee = switches["data"]["switches"][0]["ieee"]
            position = watcher.mark()
            await watcher.publish(f"{ieee}/set", json.dumps({"state": "ON"}))
            await watcher.wait_state(ieee, lambda s: s.get("state") == "ON", after=position)
        assert daemon.running
    finally:
        assert daemon.stop() == 0, daemon.log()


async def test_broker_restart_is_survived_and_state_republished(
    use_broker: PrivateBroker, tmp_path: Path
) -> None:
    base = random_base_topic()
    config = write_config(tmp_path / "configuration.yaml", base)
    await use_broker.start()
    daemon = DaemonProcess(config, tmp_path / "data")
    daemon.start()
    try:
        async with support.watching(base) as watcher:
            await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
            ieee = (await watcher.request("simulation/switches", {}))["data"]["switches"][0]["ieee"]
            position = watcher.mark()
            await watcher.publish(f"{ieee}/set", json.dumps({"state": "ON", "flip_indicator_light": "ON"}))
            await watcher.wait_state(
                ieee,
                lambda s: s.get("state") == "ON" and s.get("flip_indicator_light") == "ON",
                after=position,
            )
            await use_broker.kill()
        # The broker is gone (without persistence: its retained messages are lost too).
        await use_broker.start()
        async with support.watching(base) as watcher:
            # The daemon reconnects by itself, says it is online and republishes the cached state.
            await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
            state = await watcher.wait_state(ieee, lambda s: True)
            assert state["state"] == "ON"
            assert state["flip_indicator_light"] == "ON"
            # And it listens again: its subscription was renewed.
            position = watcher.mark()
            await watcher.publish(f"{ieee}/set", json.dumps({"state": "OFF"}))
            await watcher.wait_state(ieee, lambda s: s.get("state") == "OFF", after=position)
        assert daemon.running
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert "Traceback" not in daemon.log()
