"""End to end: renames and their topics, stale retained messages, commands sent while the daemon is away.

One daemon (virtual adapter, the shared Mosquitto) serves the first tests, which run in file order and
build on each other: the switch is renamed many times at once, the daemon is stopped and started
again with stale retained messages waiting, and stopped again while commands are sent to it. The
last test has a daemon and a Mosquitto of its own, which it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests import support
from tests.support import (
    DaemonProcess,
    PrivateBroker,
    Watcher,
    random_base_topic,
    watching,
    write_config,
)
from tests.test_homeassistant import clear_tree, retained_topics

RENAMES = 8
NAMES = [f"floor {i}/switch" for i in range(RENAMES + 1)]
COMMANDS_WHILE_AWAY = 9


@dataclass
class Running:
    daemon: DaemonProcess
    base: str
    config: Path
    data_dir: Path
    ieee: str = ""


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("mqtt_lifecycle")
    config = write_config(folder / "configuration.yaml", base, availability={"enabled": True})
    data_dir = folder / "data"
    state = Running(DaemonProcess(config, data_dir), base, config, data_dir)
    state.daemon.start()
    yield state
    code = state.daemon.stop() if state.daemon.running else 0
    asyncio.run(clear_tree(base))
    assert code == 0, state.daemon.log()


async def _online(watcher: Watcher, after: int = 0) -> None:
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, after=after)


async def _set(watcher: Watcher, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A /set with a transaction; its result."""
    transaction = uuid.uuid4().hex[:8]
    position = watcher.mark()
    await watcher.publish(f"{name}/set", json.dumps({**payload, "transaction": transaction}))
    message = await watcher.wait_for(
        f"{name}/response/set", lambda m: m.json().get("transaction") == transaction, after=position
    )
    result: dict[str, Any] = message.json()
    return result


def _retained_availability(topics: list[str]) -> list[str]:
    return sorted(t.removesuffix("/availability") for t in topics if t.endswith("/availability"))


async def test_back_to_back_renames_all_succeed_and_old_names_are_let_go(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _online(watcher)
        response = await watcher.request("simulation/switches", {})
        running.ieee = response["data"]["switches"][0]["ieee"]
        await watcher.wait_for(f"{running.ieee}/availability", lambda m: m.json() == {"state": "online"})
        renamed = await watcher.request("device/rename", {"from": running.ieee, "to": NAMES[0]})
        assert renamed["status"] == "ok", renamed
        assert (await _set(watcher, NAMES[0], {"state": "ON"}))["status"] == "ok"

        # Every rename in flight at once, each from the name the previous one gives.
        position = watcher.mark()
        transactions = []
        for old, new in itertools.pairwise(NAMES):
            transactions.append(uuid.uuid4().hex[:8])
            request = {"from": old, "to": new, "transaction": transactions[-1]}
            await watcher.publish("bridge/request/device/rename", json.dumps(request))
        for transaction, old, new in zip(transactions, NAMES, NAMES[1:], strict=False):
            message = await watcher.wait_for(
                "bridge/response/device/rename",
                lambda m, t=transaction: m.json().get("transaction") == t,
                after=position,
            )
            assert message.json()["status"] == "ok", message.json()
            assert message.json()["data"] == {"from": old, "homeassistant_rename": False, "to": new}

        # The old names' topics are no longer listened to: no answer, not even an error.
        position = watcher.mark()
        for old in NAMES[:-1]:
            await watcher.publish(f"{old}/set", json.dumps({"state": "OFF", "transaction": "old"}))
        assert (await _set(watcher, NAMES[-1], {"state": "TOGGLE"}))["data"] == {"state": "OFF"}
        assert not [
            m.topic
            for m in watcher.messages[position:]
            if "/response/" in m.topic and "old" in str(m.payload)
        ]
        # Commands are handled in arrival order: the log would already say so.
        assert "Entity 'floor" not in running.daemon.log()

    # One retained availability, on the last name.
    topics = await retained_topics(running.base)
    assert _retained_availability(topics) == [NAMES[-1]], topics
    log = running.daemon.log()
    assert "Traceback" not in log and "KeyError" not in log, log


async def test_stale_retained_availability_is_cleared_at_start(running: Running) -> None:
    assert running.daemon.stop() == 0, running.daemon.log()
    stale = {"gone": '{"state":"online"}', "old/hall": '{"state":"offline"}'}
    kept = {"foreign": "online", "other": '{"state":"online","by":"someone else"}'}
    async with watching(running.base) as watcher:
        for name, payload in {**stale, **kept}.items():
            await watcher.client.publish(f"{running.base}/{name}/availability", payload, retain=True, qos=1)
        await watcher.client.publish(f"{running.base}/old/hall", '{"state":"ON"}', retain=True, qos=1)
        position = watcher.mark()
        running.daemon.start()
        await _online(watcher, position)
        for name in stale:
            await watcher.wait_for(f"{name}/availability", lambda m: m.payload == b"", after=position)
        await watcher.wait_for("old/hall", lambda m: m.payload == b"", after=position)
    topics = await retained_topics(running.base)
    assert _retained_availability(topics) == sorted([*kept, NAMES[-1]]), topics
    assert "old/hall" not in topics


async def test_qos1_commands_sent_while_away_are_carried_out_once_on_return(running: Running) -> None:
    name = NAMES[-1]
    async with watching(running.base) as watcher:
        before = await _set(watcher, name, {"state": "OFF"})
        assert before["status"] == "ok", before
        assert running.daemon.stop() == 0, running.daemon.log()
        position = watcher.mark()
        transactions = [f"away-{i}" for i in range(COMMANDS_WHILE_AWAY)]
        for transaction in transactions:
            payload = json.dumps({"state": "TOGGLE", "transaction": transaction})
            await watcher.client.publish(f"{running.base}/{name}/set", payload, qos=1)
        running.daemon.start()
        for transaction in transactions:
            result = await watcher.wait_for(
                f"{name}/response/set",
                lambda m, t=transaction: m.json().get("transaction") == t,
                after=position,
            )
            assert result.json()["status"] == "ok", result.json()
        # A command sent now: answered after all of the queued ones.
        final = await _set(watcher, name, {"state": "TOGGLE"})
        answered = [m.json()["transaction"] for m in watcher.since(position, f"{name}/response/set")]
        assert answered[: len(transactions)] == transactions, "each once, in the order sent"
        assert answered.count(final["transaction"]) == 1 and len(answered) == len(transactions) + 1
        # Nine toggles from OFF, then one more: each carried out exactly once.
        assert final["data"] == {"state": "OFF"}


async def test_a_removed_name_is_let_go_too(running: Running) -> None:
    name = NAMES[-1]
    async with watching(running.base) as watcher:
        removed = await watcher.request("device/remove", {"id": name})
        assert removed["status"] == "ok", removed
        position = watcher.mark()
        await watcher.publish(f"{name}/set", json.dumps({"state": "ON", "transaction": "gone"}))
        assert (await watcher.request("health_check", {}))["status"] == "ok"
        assert not watcher.since(position, f"{name}/response/set")
        assert f"Entity '{name}' is unknown" not in running.daemon.log()


# --- a broker of our own: commands kept across its restart -------------------------------------------


@contextlib.asynccontextmanager
async def _watching_as(base: str, port: int, user: str, password: str) -> AsyncIterator[Watcher]:
    """`watching()` with credentials: the broker below refuses anonymous clients for a while."""
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password) as client:
        watcher = Watcher(client, base)
        await client.subscribe(f"{base}/#", qos=1)
        pump = asyncio.get_running_loop().create_task(watcher._pump())
        try:
            yield watcher
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


@pytest.fixture
def passwords(tmp_path: Path) -> Path:
    path = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), "tester", "test-pw"], check=True)
    return path


async def test_commands_sent_while_the_broker_keeps_the_daemon_out_are_carried_out_once(
    tmp_path: Path, passwords: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    open_to_all = "allow_anonymous true"
    tester_only = "allow_anonymous false"
    broker = PrivateBroker(
        tmp_path, f"{open_to_all}\npassword_file {passwords}\npersistence true\npersistence_location {store}/"
    )
    monkeypatch.setattr(support, "BROKER_PORT", broker.port)
    base = random_base_topic()
    config = write_config(tmp_path / "configuration.yaml", base)
    daemon = DaemonProcess(config, tmp_path / "data")
    await broker.start()
    daemon.start()
    try:
        async with watching(base) as watcher:
            await _online(watcher)
            ieee = (await watcher.request("simulation/switches", {}))["data"]["switches"][0]["ieee"]
            assert (await _set(watcher, ieee, {"state": "OFF"}))["status"] == "ok"
        # A clean stop writes the sessions to disk; back, the broker lets only the tester in.
        process = broker._process
        assert process is not None
        process.terminate()
        await process.wait()
        broker.conf.write_text(broker.conf.read_text().replace(open_to_all, tester_only))
        await broker.start()
        async with _watching_as(base, broker.port, "tester", "test-pw") as watcher:
            position = watcher.mark()
            transactions = [f"kept-{i}" for i in range(COMMANDS_WHILE_AWAY)]
            for transaction in transactions:
                payload = json.dumps({"state": "TOGGLE", "transaction": transaction})
                await watcher.client.publish(f"{base}/{ieee}/set", payload, qos=1)
            assert daemon.running
            # Open again (a reload, not a restart): the daemon gets in at its next attempt.
            broker.conf.write_text(broker.conf.read_text().replace(tester_only, open_to_all))
            assert broker._process is not None
            broker._process.send_signal(signal.SIGHUP)
            await _online(watcher, position)
            for transaction in transactions:
                await watcher.wait_for(
                    f"{ieee}/response/set",
                    lambda m, t=transaction: m.json().get("transaction") == t,
                    after=position,
                )
            final = await _set(watcher, ieee, {"state": "TOGGLE"})
            answered = [m.json()["transaction"] for m in watcher.since(position, f"{ieee}/response/set")]
            assert answered == [*transactions, final["transaction"]], "each once, in the order sent"
            assert final["data"] == {"state": "OFF"}  # nine toggles from OFF, then one more
    finally:
        assert daemon.stop() == 0, daemon.log()
        await broker.kill()
    assert "Traceback" not in daemon.log()
