"""Restarts of the broker under a steady command load: every command the broker took is carried out
once, also those sent while the daemon was away.

The suite's own Mosquitto (a free port, persistence in a temporary folder) is stopped and started
again while a separate client sends QoS-1 `/set` commands with a transaction, about 16 a second,
from a persistent session of its own. While the broker is down nobody can publish; once it is back,
the load client reconnects within 50 ms and sends on while the daemon is still in its reconnect
back-off (about a second): those commands wait in the daemon's session on the broker. The daemon
runs in this process, traced, so "applied" is exact: a command is applied when the daemon answers
it (publishes, or tries to, its response).

Figures: sent (PUBACK received), uncertain (the broker went away before its PUBACK), applied,
answered (responses the load client received), carried out twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from tests import support
from tests.faults.harness import PersistentBroker, Running, record, scale, timed, traced_daemon

RESTARTS = scale(ci=3, full=20)
PACE_S = 0.06
"""One command every 60 ms: zigpy drops a frame identical to one of the last 10 s, and ZCL sequence
numbers have 8 bits, so a switch driven much faster loses acknowledgements (see README)."""
STEADY_S = 0.6
DOWN_S = 0.3


@dataclass
class Load:
    """A QoS-1 command publisher with a persistent session, and what became of its commands."""

    base: str
    name: str
    sent: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)
    answered: dict[str, int] = field(default_factory=dict)
    publishing: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0
    seconds: float = 0.0

    async def run(self) -> None:
        """Connect, subscribe to the responses, publish at a steady pace; reconnect when cut off."""
        identifier = f"fault-load-{uuid.uuid4().hex[:8]}"
        while True:
            try:
                async with aiomqtt.Client(
                    support.BROKER_HOST, support.BROKER_PORT, identifier=identifier, clean_session=False
                ) as client:
                    await client.subscribe(f"{self.base}/{self.name}/response/set", qos=1)
                    receiver = asyncio.get_running_loop().create_task(self._receive(client))
                    try:
                        await self._publish(client)
                    finally:
                        receiver.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await receiver
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)  # the broker is away: try again shortly

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            await self.publishing.wait()
            self.count += 1
            transaction = f"c{self.count}"
            payload = json.dumps({"state": "ON" if self.count % 2 else "OFF", "transaction": transaction})
            try:
                await client.publish(f"{self.base}/{self.name}/set", payload, qos=1, timeout=2)
            except aiomqtt.MqttError:
                self.uncertain.add(transaction)
                raise
            self.sent.add(transaction)
            await asyncio.sleep(PACE_S)  # the load's pace

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            transaction = str(json.loads(payload).get("transaction"))
            self.answered[transaction] = self.answered.get(transaction, 0) + 1


def _applied(run: Running) -> dict[str, int]:
    """Commands the daemon carried out, by transaction: how often it answered each."""
    topic = f"{run.base}/{run.name}/response/set"
    counts: dict[str, int] = {}
    for message in run.trace.published:
        if message.topic == topic:
            transaction = str(json.loads(message.payload).get("transaction"))
            counts[transaction] = counts.get(transaction, 0) + 1
    return counts


def _online(run: Running) -> int:
    topic = f"{run.base}/bridge/state"
    return sum(m.topic == topic and b"online" in m.payload for m in run.trace.published)


def _record(load: Load, restarts: int, applied: dict[str, int], lost: list[str], twice: list[str]) -> None:
    record(
        "broker restarts under load",
        runs=restarts,
        figure=f"{restarts} of {RESTARTS} restarts: {len(load.sent)} sent, {len(load.uncertain)} uncertain, "
        f"{len(applied)} applied, {len(load.answered)} answered, {len(lost)} lost, {len(twice)} twice, "
        f"{load.seconds} s",
        restarts=restarts,
        sent=len(load.sent),
        uncertain=len(load.uncertain),
        applied=len(applied),
        answered=len(load.answered),
        lost=len(lost),
        twice=len(twice),
        seconds=load.seconds,
    )


@pytest.fixture
def broker_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PersistentBroker]:
    broker = PersistentBroker(tmp_path / "broker")
    monkeypatch.setattr(support, "BROKER_PORT", broker.port)
    yield broker


async def test_commands_sent_across_broker_restarts_are_each_carried_out_once(
    broker_port: PersistentBroker, tmp_path: Path
) -> None:
    """Broker restarts under a steady QoS-1 `/set` load: every command the broker acknowledged
    (also those sent while the daemon was reconnecting) is carried out, none twice, none that was
    never sent; the daemon comes back online after every restart."""
    broker = broker_port
    await broker.start()
    try:
        client_id = f"fault-daemon-{uuid.uuid4().hex[:8]}"
        async with traced_daemon(
            tmp_path / "daemon", mqtt={"client_id": client_id}, with_client=False
        ) as run:
            load = Load(run.base, run.name)
            task = asyncio.get_running_loop().create_task(load.run())
            restarts = 0
            try:
                with timed() as elapsed:
                    load.publishing.set()
                    await run.trace.wait(lambda: len(_applied(run)) >= 3, 15, "the first commands applied")
                    for _ in range(RESTARTS):
                        await asyncio.sleep(STEADY_S)  # steady load between restarts
                        online = _online(run)
                        await broker.stop()
                        await asyncio.sleep(DOWN_S)  # the broker's downtime
                        await broker.start()

                        def back(online: int = online) -> bool:
                            return _online(run) > online or run.task.done()

                        await run.trace.wait(back, 30, "the daemon back")
                        if run.task.done():
                            raise AssertionError(
                                f"after restart {restarts + 1} the daemon ended with exit code "
                                f"{run.task.result()}; its last log lines:\n{run.trace.log_tail()}"
                            )
                        restarts += 1
                    await asyncio.sleep(STEADY_S)
                    load.publishing.clear()
                    with contextlib.suppress(AssertionError):  # what is missing is reported below
                        await run.trace.wait(
                            lambda: load.sent <= set(_applied(run)), 10, "every command applied"
                        )
                    load.seconds = elapsed()
            finally:
                # Bounded: a client cut off mid-disconnect can wait for ever on aiomqtt's acknowledgement;
                # a cancellation that lands in its disconnect is absorbed there, so cancel again.
                for _ in range(3):
                    task.cancel()
                    done, _ = await asyncio.wait({task}, timeout=5)
                    if done:
                        break
                applied = _applied(run)
                unhandled = run.trace.unhandled()
                lost = sorted(load.sent - set(applied), key=lambda t: int(t[1:]))
                twice = sorted(t for t, n in applied.items() if n > 1)
                _record(load, restarts, applied, lost, twice)
    finally:
        await broker.stop()
    phantom = sorted(set(applied) - load.sent - load.uncertain)
    assert not phantom, f"carried out but never sent: {phantom}"
    assert not twice, f"{len(twice)} command(s) carried out more than once: {twice[:20]}"
    assert not lost, f"{len(lost)} of {len(load.sent)} acknowledged command(s) never carried out: {lost[:20]}"
    assert not unhandled, "\n".join(unhandled[:3])
