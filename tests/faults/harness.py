"""What every fault scenario shares: the run's size, the figures it records, and a traced daemon.

Size: `Z2M_FAULTS=full` selects the long run; anything else is the CI subset (`scale(ci, full)`).

Figures: with `Z2M_FAULTS_REPORT=<path>`, `record(scenario, **figures)` appends one JSON object per
line to that file: `{"scenario": "...", "runs": N, "figure": "one line for a table", ...}`, plus any
numbers the scenario wants kept (counts, seconds). `scripts/faults` prints them as a table.

The traced daemon is the real `Daemon` (virtual adapter, real broker) in this test's event loop,
with two windows into it, so that every hostile input can be held to an answer of its own:
- every MQTT message the daemon receives gets a sequence number, kept in a context variable while
  the daemon handles it; tasks started meanwhile copy it, so every log record and every publish the
  input causes, at once or later, carries the input's number;
- every publish is checked for standard JSON (no NaN, Infinity or 1e400 on the wire).
A `restart` request is counted instead of ending the daemon (the fresh process it asks for is
tested elsewhere; here it is the request's parsing that is under attack).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import random
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import aiomqtt
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests import support
from tests.support import PrivateBroker, seed_virtual_switch, write_config

FULL = os.environ.get("Z2M_FAULTS", "").lower() == "full"
REPORT = os.environ.get("Z2M_FAULTS_REPORT", "")

T = TypeVar("T")


def scale(ci: int, full: int) -> int:
    """The CI size or, with Z2M_FAULTS=full, the long run's."""
    return full if FULL else ci


def record(scenario: str, **figures: Any) -> None:
    """Append a scenario's figures to the report file (one JSON object per line), if one is set.

    Give at least `runs` (how many cases, restarts or kills) and `figure` (one line for the README's
    table); anything else is kept as is.
    """
    if not REPORT:
        return
    entry = {"scenario": scenario, "mode": "full" if FULL else "ci", **figures}
    with open(REPORT, "a", encoding="utf-8") as report:
        report.write(json.dumps(entry, sort_keys=False) + "\n")


# --- generated cases --------------------------------------------------------------------------


def generate(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """`count` cases drawn by hypothesis: derandomized in CI, a fresh seed in the long run.

    For the MQTT surfaces the cases are replayed through the broker in batches (one round trip per
    hypothesis example would take hours), so hypothesis only generates here; a failure names the
    input itself rather than a shrunk one.
    """
    cases: list[T] = []

    @settings(
        max_examples=count,
        derandomize=not FULL,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: T) -> None:
        cases.append(case)

    collect()
    return cases


def hypothesis_settings(count: int) -> settings:
    """Settings for a property test run directly by hypothesis (the pure surfaces).

    No shrinking: a failing case from this suite is often large (deep nesting), shrinking it takes
    minutes, and the case as generated already shows the fault.
    """
    return settings(
        max_examples=count,
        phases=[Phase.explicit, Phase.generate],
        derandomize=not FULL,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


# --- the traced daemon --------------------------------------------------------------------------

INPUT: contextvars.ContextVar[int | None] = contextvars.ContextVar("fault_input", default=None)
"""The number of the MQTT message whose handling is running (None: not caused by an input)."""

_OUR_CODE = f"{os.sep}z2m_qbkg40lm{os.sep}"


def non_standard_json(payload: str | bytes) -> str | None:
    """Why a published payload is not standard JSON (NaN, Infinity, a number too large), or None."""
    if not payload:
        return None
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard constant {token}")

    def checked_float(token: str) -> float:
        value = float(token)
        if value in (float("inf"), float("-inf")):
            raise ValueError(f"number {token} is out of range")
        return value

    try:
        json.loads(text, parse_constant=refuse, parse_float=checked_float)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass
class Published:
    """One publish the daemon attempted (also while the broker was away)."""

    input: int | None
    topic: str
    payload: bytes


@dataclass
class Trace:
    """What the daemon received, published and logged, each tied to the input that caused it."""

    received: list[tuple[str, bytes]] = field(default_factory=list)
    received_at: list[int] = field(default_factory=list)
    """For each input, how many publishes had been attempted when it arrived."""
    published: list[Published] = field(default_factory=list)
    records: list[tuple[int | None, logging.LogRecord]] = field(default_factory=list)
    published_by_input: dict[int, list[Published]] = field(default_factory=dict)
    records_by_input: dict[int, list[logging.LogRecord]] = field(default_factory=dict)
    bad_json: list[str] = field(default_factory=list)
    restarts: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add_publish(self, message: Published) -> None:
        """Keep a publish, by the input that caused it."""
        self.published.append(message)
        if message.input is not None:
            self.published_by_input.setdefault(message.input, []).append(message)
        self.changed.set()

    def add_record(self, log_record: logging.LogRecord) -> None:
        """Keep a log record, by the input that caused it."""
        index = INPUT.get()
        self.records.append((index, log_record))
        if index is not None:
            self.records_by_input.setdefault(index, []).append(log_record)

    def unhandled(self) -> list[str]:
        """ERROR records with a traceback through our daemon's code, and asyncio's lost task exceptions.

        A traceback only through the simulation (the virtual adapter logging what zigpy raised on a
        malformed frame, as a radio library does) is zigpy's, not ours.
        """
        found = []
        for _, log_record in self.records:
            if log_record.levelno < logging.ERROR or log_record.exc_info is None:
                continue
            exc_info = log_record.exc_info
            tb = exc_info[2]
            files = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(tb)] if tb is not None else []
            lost = log_record.name == "asyncio" and "exception was never retrieved" in log_record.getMessage()
            ours = lost or any(_OUR_CODE in name and f"{_OUR_CODE}sim{os.sep}" not in name for name in files)
            if ours:
                text = "".join(traceback.format_exception(*exc_info)) if exc_info[0] else ""
                found.append(f"{log_record.name}: {log_record.getMessage()}\n{text[-1500:]}")
        return found

    def log_tail(self, count: int = 12) -> str:
        """The last WARNING+ log lines, for a failure message."""
        lines = [f"{r.levelname} {r.name}: {r.getMessage()[:300]}" for _, r in self.records[-count:]]
        return "\n".join(lines)

    async def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `condition()` holds, re-checked on every publish and log record."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{what}: not within {timeout} s; last log lines:\n{self.log_tail()}"
            ) from None

    def responses(self, topic: str, after: int = 0) -> list[dict[str, Any]]:
        """Parsed messages published on `topic` (from position `after` of `published`)."""
        return [json.loads(m.payload) for m in self.published[after:] if m.topic == topic and m.payload]


class _TraceHandler(logging.Handler):
    def __init__(self, trace: Trace, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(level=logging.WARNING)
        self._trace = trace
        self._loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        self._trace.add_record(record)
        self._loop.call_soon_threadsafe(self._trace.changed.set)


def _traced_classes(trace: Trace) -> tuple[type[Any], type[Any]]:
    """A Daemon and an MqttClient that feed `trace` (built here: zigpy is imported on first use)."""
    from z2m_qbkg40lm import daemon as daemon_module
    from z2m_qbkg40lm.mqtt.client import MqttClient

    class TracedMqttClient(MqttClient):
        async def publish(
            self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0
        ) -> bool:
            data = payload.encode() if isinstance(payload, str) else payload
            problem = non_standard_json(data)
            if problem is not None:
                trace.bad_json.append(f"{topic}: {problem}: {data[:200]!r}")
            trace.add_publish(Published(INPUT.get(), topic, data))
            return await super().publish(topic, payload, retain=retain, qos=qos)

    class TracedDaemon(daemon_module.Daemon):
        @property
        def radio(self) -> Any:
            """The running radio (zigpy and the virtual adapter behind it)."""
            return self._radio

        def stop(self, exit_code: int = daemon_module.EXIT_OK) -> None:
            if exit_code == daemon_module.EXIT_RESTART:
                trace.restarts += 1
                return
            super().stop(exit_code)

        async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
            token = INPUT.set(len(trace.received))
            trace.received.append((topic, payload))
            trace.received_at.append(len(trace.published))
            trace.changed.set()
            try:
                await super()._on_message(topic, payload, retained)
            finally:
                INPUT.reset(token)

    return TracedDaemon, TracedMqttClient


@dataclass
class Running:
    """A traced daemon serving one simulated switch, and a client to talk to it through the broker."""

    base: str
    ieee: str
    name: str
    folder: Path
    trace: Trace
    client_or_none: aiomqtt.Client | None
    daemon: Any
    task: asyncio.Task[int]
    """The daemon's `run()`: done only if the daemon ended by itself."""

    @property
    def client(self) -> aiomqtt.Client:
        """The test's MQTT client (not there with `with_client=False`)."""
        assert self.client_or_none is not None, "traced_daemon(..., with_client=False)"
        return self.client_or_none

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1) -> None:
        """Publish under the base topic."""
        await self.client.publish(f"{self.base}/{topic}", payload, qos=qos)

    async def command(self, topic: str, body: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """A `/set` or `/get` with a fresh transaction (added to `body`); returns its response."""
        transaction = uuid.uuid4().hex[:10]
        device, action = topic.rsplit("/", 1)
        response_topic = f"{self.base}/{device}/response/{action}"
        position = len(self.trace.published)
        await self.publish(topic, json.dumps({**body, "transaction": transaction}))

        def answer() -> dict[str, Any] | None:
            for response in self.trace.responses(response_topic, position):
                if response.get("transaction") == transaction:
                    return response
            return None

        await self.trace.wait(lambda: answer() is not None, timeout, f"a response on {response_topic}")
        found = answer()
        assert found is not None
        return found

    async def request(self, path: str, body: Any, timeout: float = 15.0) -> dict[str, Any]:
        """A bridge request with a fresh transaction; returns its response."""
        transaction = uuid.uuid4().hex[:10]
        topic = f"{self.base}/bridge/response/{path}"
        position = len(self.trace.published)
        payload = {**body, "transaction": transaction} if isinstance(body, dict) else body
        await self.publish(f"bridge/request/{path}", json.dumps(payload))

        def answer() -> dict[str, Any] | None:
            for response in self.trace.responses(topic, position):
                if not isinstance(payload, dict) or response.get("transaction") == transaction:
                    return response
            return None

        await self.trace.wait(lambda: answer() is not None, timeout, f"a response on {topic}")
        found = answer()
        assert found is not None
        return found

    async def serves(self) -> None:
        """The next valid command is carried out: a `/set` by IEEE address answered `ok`."""
        response = await self.command(f"{self.ieee}/set", {"state": random.choice(["ON", "OFF"])})
        assert response["status"] == "ok", response


@contextlib.asynccontextmanager
async def traced_daemon(
    folder: Path,
    *,
    name: str = "fault_switch",
    mqtt: dict[str, Any] | None = None,
    with_client: bool = True,
    **sections: Any,
) -> AsyncIterator[Running]:
    """A traced daemon in this event loop on the test broker, its switch interviewed and its state out.

    `mqtt` adds settings to the `mqtt:` section; `with_client=False` leaves out the test's own MQTT
    client (a test that restarts the broker brings its own). Stopped at the end (exit code 0
    required) and its retained messages cleared.
    """
    from z2m_qbkg40lm.config import load_config

    trace = Trace()
    base = support.random_base_topic()
    data_dir = folder / "data"
    ieee = seed_virtual_switch(data_dir)
    config = write_config(
        folder / "configuration.yaml", base, devices={ieee: {"friendly_name": name}}, **sections
    )
    if mqtt:
        document = yaml.safe_load(config.read_text(encoding="utf-8"))
        document["mqtt"].update(mqtt)
        config.write_text(yaml.safe_dump(document), encoding="utf-8")
    daemon_class, client_class = _traced_classes(trace)
    handler = _TraceHandler(trace, asyncio.get_running_loop())
    root = logging.getLogger()
    root.addHandler(handler)
    state_topic = f"{base}/{name}"
    try:
        with mock.patch("z2m_qbkg40lm.daemon.MqttClient", client_class):
            daemon = daemon_class(load_config(config), data_dir)
            task = asyncio.get_running_loop().create_task(daemon.run(), name="traced daemon")
            try:
                await trace.wait(
                    lambda: (
                        any(m.topic == state_topic and b'"state"' in m.payload for m in trace.published)
                        or task.done()
                    ),
                    30.0,
                    "the daemon up with the switch's state",
                )
                if task.done():
                    raise AssertionError(f"the daemon ended at start with {task.result()}")
                if not with_client:
                    yield Running(base, ieee, name, folder, trace, None, daemon, task)
                else:
                    identifier = f"fault-{uuid.uuid4().hex[:8]}"
                    async with aiomqtt.Client(
                        support.BROKER_HOST, support.BROKER_PORT, identifier=identifier
                    ) as client:
                        yield Running(base, ieee, name, folder, trace, client, daemon, task)
            finally:
                ended_by_itself = task.done()
                daemon.stop()
                code = await asyncio.wait_for(task, 30.0)
        assert not ended_by_itself, f"the daemon ended by itself with exit code {code}"
        assert code == 0, f"the daemon exited with {code}"
    finally:
        root.removeHandler(handler)
        support.clear_retained(base)


# --- a broker of the suite's own -----------------------------------------------------------------


class PersistentBroker(PrivateBroker):
    """A private Mosquitto with persistence in its own folder, stopped cleanly (it saves on SIGTERM)."""

    def __init__(self, directory: Path) -> None:
        store = directory / "mosquitto-store"
        store.mkdir(parents=True, exist_ok=True)
        super().__init__(
            directory,
            f"allow_anonymous true\npersistence true\npersistence_location {store}/\nautosave_interval 1",
        )
        self.restarts = 0

    async def stop(self) -> None:
        """SIGTERM and wait: Mosquitto writes its sessions and queued messages before it exits."""
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            await process.wait()


# --- files a crash may leave behind ------------------------------------------------------------


def temporary_files(*folders: Path) -> list[Path]:
    """The atomic writers' leftovers in the folders: `.configuration.yaml.*`, `.state.json.*`, … and
    the virtual adapter's `virtual_adapter.json*`."""
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found += [
                p
                for p in folder.iterdir()
                if p.is_file()
                and (
                    p.name.startswith(".")
                    or (p.name.startswith("virtual_adapter.json") and p.suffix != ".json")
                )
            ]
    return sorted(found)


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """Seconds since the block started (call the yielded function)."""
    start = time.monotonic()
    yield lambda: round(time.monotonic() - start, 1)
