"""MqttClient against real Mosquitto: the shared test broker and private ones started per test.

The shared broker is 127.0.0.1:1883 unless Z2M_TEST_BROKER_HOST / Z2M_TEST_BROKER_PORT say otherwise.

Every test works under its own random topic prefix, since other tests share the broker. Tests that
must kill or configure a broker (reconnect, password, TLS) start a private mosquitto on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from pydantic import SecretStr

from tests.support import PrivateBroker
from z2m_qbkg40lm.config import MqttConfig
from z2m_qbkg40lm.mqtt.client import (
    MqttClient,
    MqttSetupError,
    _FilterSet,
    _Redeliveries,
    default_client_id,
)

SHARED_HOST = os.environ.get("Z2M_TEST_BROKER_HOST", "127.0.0.1")
SHARED_PORT = int(os.environ.get("Z2M_TEST_BROKER_PORT", "1883"))
SHARED = f"mqtt://{SHARED_HOST}:{SHARED_PORT}"
ONLINE = '{"state":"online"}'
OFFLINE = '{"state":"offline"}'
TIMEOUT = 5.0
REPO = Path(__file__).resolve().parents[1]
LOGGER_NAME = "z2m_qbkg40lm.mqtt.client"


def config(server: str = SHARED, **fields: Any) -> MqttConfig:
    # The client id derives from the base topic: tests sharing the broker must not share sessions.
    fields.setdefault("base_topic", f"test-mqtt-{uuid.uuid4().hex}")
    return MqttConfig(server=server, **fields)


class Harness:
    """An MqttClient, its run() task, and queues of what its callbacks saw."""

    def __init__(self, cfg: MqttConfig, prefix: str, **options: Any) -> None:
        self.will_topic = f"{prefix}/bridge/state"
        self.messages: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue()
        self.connects: asyncio.Queue[int] = asyncio.Queue()
        self._count = 0
        self.fail_on: set[str] = set()
        options.setdefault("reconnect_delay", 0.05)
        options.setdefault("max_reconnect_delay", 0.2)
        self.client = MqttClient(
            cfg,
            will_topic=self.will_topic,
            will_payload=OFFLINE,
            on_connected=self._on_connected,
            on_message=self._on_message,
            **options,
        )
        self._task: asyncio.Task[None] | None = None

    async def _on_connected(self) -> None:
        self._count += 1
        assert await self.client.publish(self.will_topic, ONLINE, retain=True, qos=1)
        self.connects.put_nowait(self._count)

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic in self.fail_on:
            raise RuntimeError(f"handler bug on {topic}")
        self.messages.put_nowait((topic, payload, retained))

    def start(self) -> None:
        self._task = asyncio.create_task(self.client.run())

    async def next_message(self) -> tuple[str, bytes, bool]:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    async def next_connect(self) -> int:
        return await asyncio.wait_for(self.connects.get(), TIMEOUT)

    async def close(self, final: list[tuple[str, str | bytes, bool, int]] | None = None) -> None:
        await asyncio.wait_for(self.client.stop(final), TIMEOUT)
        if self._task is not None:
            await asyncio.wait_for(self._task, TIMEOUT)


@contextlib.asynccontextmanager
async def running(cfg: MqttConfig, prefix: str, **options: Any) -> AsyncIterator[Harness]:
    harness = Harness(cfg, prefix, **options)
    harness.start()
    try:
        yield harness
    finally:
        await harness.close()


@contextlib.asynccontextmanager
async def peer(port: int | None = None) -> AsyncIterator[aiomqtt.Client]:
    """A plain aiomqtt client: on the shared broker, or on a private one's port."""
    host = SHARED_HOST if port is None else "127.0.0.1"
    async with aiomqtt.Client(host, SHARED_PORT if port is None else port) as client:
        yield client


async def next_peer_message(client: aiomqtt.Client) -> aiomqtt.Message:
    return await asyncio.wait_for(anext(aiter(client.messages)), TIMEOUT)


class LogQueue(logging.Handler):
    """Hands log records to the test's loop (paho also logs from aiomqtt's connect thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.DEBUG)
        self.loop = loop
        self.records: asyncio.Queue[logging.LogRecord] = asyncio.Queue()
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record)
        self.loop.call_soon_threadsafe(self.records.put_nowait, record)

    async def wait_for(self, level: int, text: str) -> logging.LogRecord:
        """The next record at `level` from the client whose message contains `text`."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                record = await self.records.get()
                if record.name == LOGGER_NAME and record.levelno == level and text in record.getMessage():
                    return record


@pytest.fixture
async def logs() -> AsyncIterator[LogQueue]:
    handler = LogQueue(asyncio.get_running_loop())
    logger = logging.getLogger("z2m_qbkg40lm.mqtt")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture(autouse=True)
async def no_stray_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves a task running (the client's or aiomqtt's) after stop()."""
    yield
    await asyncio.sleep(0)  # let cancellations requested during teardown land
    stray = [task for task in asyncio.all_tasks() if task is not asyncio.current_task() and not task.done()]
    assert not stray, f"tasks left running: {stray}"


@pytest.fixture
def prefix() -> str:
    return f"test-mqtt-{uuid.uuid4().hex}"


@pytest.fixture
async def brokers(tmp_path: Path) -> AsyncIterator[Callable[[str], PrivateBroker]]:
    made: list[PrivateBroker] = []

    def make(settings: str = "allow_anonymous true") -> PrivateBroker:
        made.append(PrivateBroker(tmp_path, settings))
        return made[-1]

    yield make
    for broker in made:
        await broker.kill()


# --- the shared broker ------------------------------------------------------------------------------


async def test_connect_calls_on_connected_which_publishes_online(prefix: str, logs: LogQueue) -> None:
    async with running(config(), prefix) as harness:
        assert await harness.next_connect() == 1
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        assert harness.client.connected
        await logs.wait_for(logging.INFO, f"Connected to MQTT server {SHARED}")
        async with peer() as observer:
            await observer.subscribe(harness.will_topic)
            online = await next_peer_message(observer)
            assert (online.payload, online.retain) == (ONLINE.encode(), True)
            await observer.publish(harness.will_topic, b"", retain=True)


async def test_publish_and_subscription_round_trip(prefix: str) -> None:
    harness = Harness(config(), prefix)
    harness.client.subscribe(f"{prefix}/cmd/#")  # registered before run(): subscribed on connect
    harness.start()
    try:
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        async with peer() as other:
            await other.subscribe(f"{prefix}/out")
            assert await harness.client.publish(f"{prefix}/out", '{"state":"ON"}', qos=1)
            assert await harness.client.publish(f"{prefix}/out", b"\x00raw")
            first = await next_peer_message(other)
            second = await next_peer_message(other)
            assert (first.payload, first.retain, second.payload) == (b'{"state":"ON"}', False, b"\x00raw")

            await other.publish(f"{prefix}/cmd/light/set", b'{"state":"OFF"}')
            await other.publish(f"{prefix}/elsewhere", b"not for us")
            await other.publish(f"{prefix}/cmd/x", b"2")
            assert await harness.next_message() == (f"{prefix}/cmd/light/set", b'{"state":"OFF"}', False)
            assert await harness.next_message() == (f"{prefix}/cmd/x", b"2", False)
            await other.publish(harness.will_topic, b"", retain=True)
    finally:
        await harness.close()


async def test_subscribe_while_connected_reports_retained(prefix: str) -> None:
    async with peer() as other, running(config(), prefix) as harness:
        await other.publish(f"{prefix}/kept", b"old", retain=True, qos=1)
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        harness.client.subscribe(f"{prefix}/kept")
        assert await harness.next_message() == (f"{prefix}/kept", b"old", True)
        await other.publish(f"{prefix}/kept", b"new", qos=1)
        assert await harness.next_message() == (f"{prefix}/kept", b"new", False)
        await other.publish(f"{prefix}/kept", b"", retain=True)
        await other.publish(harness.will_topic, b"", retain=True)


async def test_a_burst_of_publishes_is_no_warning(prefix: str, logs: LogQueue) -> None:
    """aiomqtt warns when more than 10 publishes wait for their acknowledgement; a burst of a
    daemon's state messages is normal work, not a problem to report."""
    harness = Harness(config(), prefix)
    harness.start()
    try:
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        sent = await asyncio.gather(
            *(harness.client.publish(f"{prefix}/out/{i}", "x", qos=1) for i in range(200))
        )
        assert all(sent)
        assert [r.getMessage() for r in logs.seen if "pending publish" in r.getMessage()] == []
    finally:
        await harness.close()


async def test_publish_while_disconnected_drops_with_warning(prefix: str, logs: LogQueue) -> None:
    harness = Harness(config(), prefix)
    assert not harness.client.connected
    assert await harness.client.publish(f"{prefix}/state", "{}") is False
    record = await logs.wait_for(logging.WARNING, "dropping message")
    assert record.getMessage() == f"Not connected to MQTT server, dropping message on {prefix}/state"


async def test_publish_refuses_wildcards(prefix: str) -> None:
    harness = Harness(config(), prefix)
    for topic in (f"{prefix}/+/set", f"{prefix}/#", ""):
        with pytest.raises(ValueError, match="cannot publish"):
            await harness.client.publish(topic, "x")


async def test_failing_handler_is_logged_and_the_loop_goes_on(prefix: str, logs: LogQueue) -> None:
    async with peer() as other, running(config(), prefix) as harness:
        harness.fail_on.add(f"{prefix}/cmd/bad")
        # A retained probe, delivered once the subscription is live, however it races the connection.
        await other.publish(f"{prefix}/cmd/probe", b"?", retain=True, qos=1)
        harness.client.subscribe(f"{prefix}/cmd/#")
        assert await harness.next_message() == (f"{prefix}/cmd/probe", b"?", True)
        await other.publish(f"{prefix}/cmd/bad", b"boom")
        await other.publish(f"{prefix}/cmd/good", b"fine")
        record = await logs.wait_for(logging.ERROR, f"handler failed on {prefix}/cmd/bad")
        assert record.exc_info is not None
        assert await harness.next_message() == (f"{prefix}/cmd/good", b"fine", False)
        assert harness.client.connected
        await other.publish(f"{prefix}/cmd/probe", b"", retain=True)
        await other.publish(harness.will_topic, b"", retain=True)


async def test_oversize_inbound_message_is_dropped(prefix: str, logs: LogQueue) -> None:
    harness = Harness(config(), prefix, max_payload=16)
    harness.client.subscribe(f"{prefix}/in")
    harness.start()
    try:
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        async with peer() as other:
            await other.publish(f"{prefix}/in", b"x" * 17)
            await other.publish(f"{prefix}/in", b"x" * 16)
            record = await logs.wait_for(logging.WARNING, "Dropping")
            assert record.getMessage() == f"Dropping 17-byte message on {prefix}/in (limit 16 bytes)"
            assert await harness.next_message() == (f"{prefix}/in", b"x" * 16, False)
            await other.publish(harness.will_topic, b"", retain=True)
    finally:
        await harness.close()


async def test_mqtt5_round_trip(prefix: str) -> None:
    harness = Harness(config(version=5, client_id=f"z2m-{prefix}"), prefix)
    harness.client.subscribe(f"{prefix}/in")
    harness.start()
    try:
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        async with peer() as other:
            await other.publish(f"{prefix}/in", b"v5")
            assert await harness.next_message() == (f"{prefix}/in", b"v5", False)
            await other.publish(harness.will_topic, b"", retain=True)
    finally:
        await harness.close()


async def test_stop_publishes_final_messages_and_ends_run(prefix: str) -> None:
    harness = Harness(config(), prefix)
    harness.start()
    await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
    async with peer() as other:
        await other.subscribe(harness.will_topic)
        assert (await next_peer_message(other)).payload == ONLINE.encode()
        await harness.close([(harness.will_topic, OFFLINE, True, 1)])
        assert not harness.client.connected
        assert (await next_peer_message(other)).payload == OFFLINE.encode()
        assert await harness.client.publish(f"{prefix}/late", "x") is False
        await other.publish(harness.will_topic, b"", retain=True)


async def test_cancelling_run_disconnects_without_the_will(prefix: str) -> None:
    harness = Harness(config(), prefix)
    task = asyncio.create_task(harness.client.run())
    await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
    async with peer() as other:
        await other.subscribe(harness.will_topic)
        assert (await next_peer_message(other)).payload == ONLINE.encode()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, TIMEOUT)
        assert not harness.client.connected
        # A clean DISCONNECT: the broker drops the will, so "online" is still the retained state.
        await other.subscribe(f"{prefix}/marker")
        await other.publish(f"{prefix}/marker", b"end")
        assert (await next_peer_message(other)).payload == b"end"
        await other.publish(harness.will_topic, b"", retain=True)


async def test_stop_before_run_makes_run_return() -> None:
    harness = Harness(config(), "unused")
    await harness.client.stop()
    await asyncio.wait_for(harness.client.run(), TIMEOUT)


async def test_last_will_is_published_when_the_process_dies(prefix: str) -> None:
    script = (
        "import asyncio, sys\n"
        "from z2m_qbkg40lm.config import MqttConfig\n"
        "from z2m_qbkg40lm.mqtt.client import MqttClient\n"
        "async def nothing(*_): pass\n"
        "async def main():\n"
        f"    config = MqttConfig(server={SHARED!r}, base_topic=sys.argv[1])\n"
        "    client = MqttClient(config, will_topic=sys.argv[1],\n"
        f"        will_payload={OFFLINE!r}, on_connected=nothing, on_message=nothing)\n"
        "    task = asyncio.create_task(client.run())\n"
        "    await client.wait_connected()\n"
        "    assert await client.publish(sys.argv[1], 'alive', retain=True, qos=1)\n"
        "    print('ready', flush=True)\n"
        "    await task\n"
        "asyncio.run(main())\n"
    )
    will_topic = f"{prefix}/bridge/state"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    async with peer() as other:
        await other.subscribe(will_topic)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, will_topic, stdout=subprocess.PIPE, env=env
        )
        try:
            assert child.stdout is not None
            assert await asyncio.wait_for(child.stdout.readline(), TIMEOUT) == b"ready\n"
            assert (await next_peer_message(other)).payload == b"alive"
        finally:
            child.kill()
            await child.wait()
        will = await next_peer_message(other)
        assert will.payload == OFFLINE.encode()
        await other.publish(will_topic, b"", retain=True)


# --- private brokers --------------------------------------------------------------------------------


async def test_first_connection_is_retried_with_back_off_until_the_broker_starts(
    prefix: str, brokers: Callable[[str], PrivateBroker], logs: LogQueue
) -> None:
    broker = brokers("allow_anonymous true")
    server = f"mqtt://127.0.0.1:{broker.port}"
    async with running(config(server), prefix) as harness:
        for delay in ("0.05", "0.1", "0.2", "0.2"):  # doubling, capped by max_reconnect_delay
            record = await logs.wait_for(logging.WARNING, "Cannot connect to MQTT server")
            assert record.getMessage().startswith(f"Cannot connect to MQTT server {server} (")
            assert record.getMessage().endswith(f"retrying in {delay} s")
        await broker.start()
        assert await harness.next_connect() == 1
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        await broker.kill()
        record = await logs.wait_for(logging.WARNING, "Lost connection to MQTT server")
        assert record.getMessage().endswith("retrying in 0.05 s")  # reset by the successful connection


async def test_reconnects_and_resubscribes_after_the_broker_restarts(
    prefix: str, brokers: Callable[[str], PrivateBroker], logs: LogQueue
) -> None:
    broker = brokers("allow_anonymous true")
    await broker.start()
    harness = Harness(config(f"mqtt://127.0.0.1:{broker.port}"), prefix)
    harness.client.subscribe(f"{prefix}/cmd")
    harness.start()
    try:
        assert await harness.next_connect() == 1
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)

        await broker.kill()
        record = await logs.wait_for(logging.WARNING, "Lost connection to MQTT server")
        assert f"mqtt://127.0.0.1:{broker.port}" in record.getMessage()
        assert not harness.client.connected
        assert await harness.client.publish(f"{prefix}/state", "{}") is False

        await broker.start()
        assert await harness.next_connect() == 2
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        async with peer(broker.port) as other:
            await other.publish(f"{prefix}/cmd", b"again")
            assert await harness.next_message() == (f"{prefix}/cmd", b"again", False)
    finally:
        await harness.close()


async def test_a_broker_lost_mid_publish_drops_the_message_with_a_warning(
    prefix: str, brokers: Callable[[str], PrivateBroker], logs: LogQueue
) -> None:
    broker = brokers("allow_anonymous true")
    await broker.start()
    harness = Harness(config(f"mqtt://127.0.0.1:{broker.port}"), prefix)
    harness.start()
    try:
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        process = broker._process
        assert process is not None
        process.send_signal(signal.SIGSTOP)  # the PUBLISH goes out, its PUBACK never comes
        sending = asyncio.create_task(harness.client.publish(f"{prefix}/out", "x", qos=1))
        for _ in range(3):  # until it waits for the PUBACK
            await asyncio.sleep(0)
        assert not sending.done()
        await broker.kill()
        assert await asyncio.wait_for(sending, TIMEOUT) is False
        record = await logs.wait_for(logging.WARNING, "dropping message")
        assert record.getMessage() == (
            f"MQTT connection lost while publishing, dropping message on {prefix}/out"
        )
    finally:
        await harness.close()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), "daemon", "right-Secret-42"], check=True)
    path.chmod(0o600)
    return path


async def test_wrong_password_is_retried_without_logging_it(
    prefix: str, brokers: Callable[[str], PrivateBroker], password_file: Path, logs: LogQueue
) -> None:
    broker = brokers(f"allow_anonymous false\npassword_file {password_file}")
    await broker.start()
    server = f"mqtt://127.0.0.1:{broker.port}"
    wrong = config(server, user="daemon", password=SecretStr("wrong-Secret-17"))
    async with running(wrong, prefix):
        for _ in range(2):  # twice: the failure is retried, not fatal
            record = await logs.wait_for(logging.WARNING, "Cannot connect to MQTT server")
            assert server in record.getMessage()
    assert all("wrong-Secret-17" not in record.getMessage() for record in logs.seen)

    right = config(server, user="daemon", password=SecretStr("right-Secret-42"))
    async with running(right, prefix) as harness:
        assert await harness.next_connect() == 1
    assert all("right-Secret-42" not in record.getMessage() for record in logs.seen)


# --- TLS ----------------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CA, a server certificate for DNS:broker.test only, and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make test certificates")
    directory = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    for name, usage, san in (
        ("server", "serverAuth", "subjectAltName=DNS:broker.test\n"),
        ("client", "clientAuth", ""),
    ):
        (directory / f"{name}.ext").write_text(
            f"{san}basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"
            "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"
        )
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                 cwd=directory)  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=directory,
        )  # fmt: skip
    yield directory


def tls_settings(pki: Path, *, require_certificate: bool = False) -> str:
    lines = [
        "allow_anonymous true",
        f"cafile {pki / 'ca.crt'}",
        f"certfile {pki / 'server.crt'}",
        f"keyfile {pki / 'server.key'}",
    ]
    if require_certificate:
        lines.append("require_certificate true")
    return "\n".join(lines)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"server_name": "broker.test"}, id="ca-and-server-name"),
        pytest.param({"reject_unauthorized": False}, id="reject-unauthorized-false"),
    ],
)
async def test_tls_connects(
    prefix: str, brokers: Callable[[str], PrivateBroker], pki: Path, fields: dict[str, Any]
) -> None:
    broker = brokers(tls_settings(pki))
    await broker.start()
    if fields.get("reject_unauthorized", True):
        fields = {**fields, "ca": str(pki / "ca.crt")}
    async with running(config(f"mqtts://127.0.0.1:{broker.port}", **fields), prefix) as harness:
        assert await harness.next_connect() == 1
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        assert harness.client.broker == f"mqtts://127.0.0.1:{broker.port}"


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(("with ca", "IP address mismatch"), id="host-name-mismatch"),
        pytest.param(("without ca", "certificate verify failed"), id="unknown-ca"),
    ],
)
async def test_tls_verification_failures_are_retried_with_a_warning(
    prefix: str, brokers: Callable[[str], PrivateBroker], pki: Path, logs: LogQueue, failure: tuple[str, str]
) -> None:
    ca, reason = failure
    broker = brokers(tls_settings(pki))
    await broker.start()
    cfg = config(f"mqtts://127.0.0.1:{broker.port}", ca=str(pki / "ca.crt") if ca == "with ca" else None)
    async with running(cfg, prefix) as harness:
        record = await logs.wait_for(logging.WARNING, "Cannot connect to MQTT server")
        assert reason in record.getMessage()
        assert not harness.client.connected


async def test_tls_client_certificate(
    prefix: str, brokers: Callable[[str], PrivateBroker], pki: Path
) -> None:
    broker = brokers(tls_settings(pki, require_certificate=True))
    await broker.start()
    cfg = config(
        f"mqtts://127.0.0.1:{broker.port}",
        ca=str(pki / "ca.crt"),
        cert=str(pki / "client.crt"),
        key=str(pki / "client.key"),
        server_name="broker.test",
    )
    async with running(cfg, prefix) as harness:
        assert await harness.next_connect() == 1


def test_unreadable_ca_is_a_setup_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    with pytest.raises(MqttSetupError, match=r"mqtt\.ca: cannot load"):
        Harness(config("mqtts://127.0.0.1:8883", ca=str(missing)), "unused")


# --- the persistent session ---------------------------------------------------------------------------


def test_the_default_client_id_is_stable_and_differs_per_base_topic() -> None:
    first = MqttClient(
        MqttConfig(server=SHARED, base_topic="home/zigbee"),
        will_topic="x/bridge/state",
        will_payload=OFFLINE,
        on_connected=_nothing,
        on_message=_nothing,
    )
    assert first.client_id == default_client_id("home/zigbee")
    assert len(first.client_id) <= 23 and first.client_id.startswith("z2m_qbkg40lm_")
    assert default_client_id("home/zigbee") != default_client_id("zigbee2mqtt")
    named = MqttConfig(server=SHARED, client_id="my-bridge")
    assert MqttClient(
        named, will_topic="x/s", will_payload="", on_connected=_nothing, on_message=_nothing
    ).client_id == ("my-bridge")


async def _nothing(*_: Any) -> None:
    pass


@pytest.mark.parametrize("version", [4, 5])
async def test_qos1_commands_sent_while_away_are_delivered_on_return(prefix: str, version: int) -> None:
    cfg = config(version=version)
    first = Harness(cfg, prefix)
    first.client.subscribe(f"{prefix}/cmd/+")
    first.start()
    try:
        # Connected means subscribed: from now on the session holds the subscription.
        await asyncio.wait_for(first.client.wait_connected(), TIMEOUT)
    finally:
        await first.close()
    async with peer() as other:
        for number in range(5):
            await other.publish(f"{prefix}/cmd/away", str(number).encode(), qos=1)
        await other.publish(f"{prefix}/cmd/lost", b"qos 0 is not kept", qos=0)
    second = Harness(cfg, prefix)
    second.client.subscribe(f"{prefix}/cmd/+")
    second.start()
    try:
        got = [await second.next_message() for _ in range(5)]
        assert got == [(f"{prefix}/cmd/away", str(n).encode(), False) for n in range(5)]
        async with peer() as other:
            await other.publish(f"{prefix}/cmd/live", b"fence", qos=1)
            assert await second.next_message() == (f"{prefix}/cmd/live", b"fence", False)
        assert second.messages.empty(), "each queued command once, the QoS 0 one not at all"
        await _clear(harness_will=second.will_topic)
    finally:
        await second.close()


async def _clear(*, harness_will: str) -> None:
    async with peer() as other:
        await other.publish(harness_will, b"", retain=True, qos=1)


async def test_session_expiry_interval_0_keeps_nothing_while_away(prefix: str) -> None:
    cfg = config(session_expiry_interval=0)
    async with running(cfg, prefix) as first:
        first.client.subscribe(f"{prefix}/cmd")
        await asyncio.wait_for(first.client.wait_connected(), TIMEOUT)
        async with peer() as other:
            await other.publish(f"{prefix}/cmd", b"live", qos=1)
            assert await first.next_message() == (f"{prefix}/cmd", b"live", False)
    async with peer() as other:
        await other.publish(f"{prefix}/cmd", b"while away", qos=1)
    async with running(cfg, prefix) as second:
        second.client.subscribe(f"{prefix}/cmd")
        await asyncio.wait_for(second.client.wait_connected(), TIMEOUT)
        async with peer() as other:
            await other.publish(f"{prefix}/cmd", b"fence", qos=1)
            assert await second.next_message() == (f"{prefix}/cmd", b"fence", False)
        await _clear(harness_will=second.will_topic)


async def test_unsubscribe_stops_delivery_now_and_for_a_resumed_session(prefix: str, logs: LogQueue) -> None:
    cfg = config()
    async with running(cfg, prefix) as first, peer() as other:
        for name in ("a/b", "c/d", "fence"):
            first.client.subscribe(f"{prefix}/{name}/set")
        await asyncio.wait_for(first.client.wait_connected(), TIMEOUT)
        await other.publish(f"{prefix}/a/b/set", b"1", qos=1)
        assert await first.next_message() == (f"{prefix}/a/b/set", b"1", False)
        first.client.unsubscribe(f"{prefix}/a/b/set")
        async with asyncio.timeout(TIMEOUT):  # paho's own log line: the broker confirmed
            while "Received UNSUBACK" not in (await logs.records.get()).getMessage():
                pass
        await other.publish(f"{prefix}/a/b/set", b"2", qos=1)
        await other.publish(f"{prefix}/fence/set", b"f", qos=1)
        assert await first.next_message() == (f"{prefix}/fence/set", b"f", False)
        assert first.messages.empty()
    ignored = f"Ignoring a message on {prefix}/a/b/set"
    assert not [r for r in logs.seen if ignored in r.getMessage()], "the broker itself dropped it"

    # The next run no longer wants c/d but the resumed session still has it: not handed on.
    async with running(cfg, prefix) as second, peer() as other:
        second.client.subscribe(f"{prefix}/fence/set")
        await asyncio.wait_for(second.client.wait_connected(), TIMEOUT)
        await other.publish(f"{prefix}/c/d/set", b"old name", qos=1)
        await other.publish(f"{prefix}/fence/set", b"f", qos=1)
        assert await second.next_message() == (f"{prefix}/fence/set", b"f", False)
        assert second.messages.empty()
        await logs.wait_for(logging.DEBUG, f"Ignoring a message on {prefix}/c/d/set")
        await _clear(harness_will=second.will_topic)


async def test_a_filter_given_up_while_disconnected_is_unsubscribed_on_the_next_connection(
    prefix: str, logs: LogQueue
) -> None:
    harness = Harness(config(), prefix, reconnect_delay=0.5, max_reconnect_delay=0.5)
    for name in ("old", "fence"):
        harness.client.subscribe(f"{prefix}/{name}/set")
    harness.start()
    try:
        assert await harness.next_connect() == 1
        # Another connection under our client id takes the session over (and leaves it as it was).
        async with aiomqtt.Client(
            SHARED_HOST, SHARED_PORT, identifier=harness.client.client_id, clean_session=False
        ):
            pass
        await logs.wait_for(logging.WARNING, "Lost connection to MQTT server")
        assert not harness.client.connected
        harness.client.unsubscribe(f"{prefix}/old/set")
        assert await harness.next_connect() == 2
        async with peer() as other:
            await other.publish(f"{prefix}/old/set", b"1", qos=1)
            await other.publish(f"{prefix}/fence/set", b"f", qos=1)
            assert await harness.next_message() == (f"{prefix}/fence/set", b"f", False)
        assert harness.messages.empty()
        ignored = f"Ignoring a message on {prefix}/old/set"
        assert not [r for r in logs.seen if ignored in r.getMessage()], "the broker itself dropped it"
        await _clear(harness_will=harness.will_topic)
    finally:
        await harness.close()


async def test_read_retained_sees_every_retained_message_on_the_filters(prefix: str) -> None:
    topics = [f"{prefix}/n{i}/availability" for i in range(50)] + [f"{prefix}/a/b/availability"]
    async with peer() as other:
        for topic in topics:
            await other.publish(topic, b'{"state":"online"}', retain=True, qos=1)
        await other.publish(f"{prefix}/n1", b"state, not asked for", retain=True, qos=1)
    async with running(config(), prefix) as harness:
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        for _ in range(3):  # every time all of them, never half
            found = await harness.client.read_retained(
                [f"{prefix}/+/availability", f"{prefix}/+/+/availability"]
            )
            assert found is not None
            assert sorted(found) == sorted((topic, b'{"state":"online"}') for topic in topics)
        assert harness.messages.empty(), "the daemon's own session saw none of it"
        await _clear(harness_will=harness.will_topic)
    async with peer() as other:
        for topic in [*topics, f"{prefix}/n1"]:
            await other.publish(topic, b"", retain=True, qos=1)


async def test_a_read_of_retained_messages_cancelled_while_connecting_leaves_no_connection(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho connects in a thread a cancellation does not stop: what it opens must still be closed."""
    mqtt = MqttClient(
        config(),
        will_topic=f"{prefix}/bridge/state",
        will_payload=OFFLINE,
        on_connected=_nothing,
        on_message=_nothing,
    )
    made: list[aiomqtt.Client] = []
    connecting = asyncio.Event()
    new_client = mqtt._new_client

    def remember(**options: Any) -> aiomqtt.Client:
        made.append(new_client(**options))
        connecting.set()
        return made[-1]

    monkeypatch.setattr(mqtt, "_new_client", remember)
    reading = asyncio.create_task(mqtt.read_retained([f"{prefix}/+/availability"]))
    await connecting.wait()  # the reader exists: its connect is about to run in the executor
    [client] = made
    connack = client._connected  # resolved by the CONNACK of the connect under way
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await asyncio.wait_for(asyncio.shield(connack), TIMEOUT)  # the thread connected after all
    paho_client = client._client
    assert not paho_client.is_connected()
    assert paho_client.socket() is None
    assert client._misc_task is None or client._misc_task.done()


async def _nothing(*_args: Any) -> None:
    return None


async def _stop_cleanly(broker: PrivateBroker) -> None:
    """SIGTERM: Mosquitto writes its persistence file on a clean stop (on SIGKILL only at autosave)."""
    process = broker._process
    assert process is not None
    process.terminate()
    await process.wait()


async def test_commands_are_kept_across_a_broker_restart_with_persistence(
    prefix: str,
    brokers: Callable[[str], PrivateBroker],
    password_file: Path,
    tmp_path: Path,
    logs: LogQueue,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    open_broker = f"allow_anonymous true\npersistence true\npersistence_location {store}/"
    broker = brokers(open_broker)
    await broker.start()
    harness = Harness(config(f"mqtt://127.0.0.1:{broker.port}"), prefix)
    harness.client.subscribe(f"{prefix}/cmd")
    harness.start()
    try:
        await asyncio.wait_for(harness.client.wait_connected(), TIMEOUT)
        await _stop_cleanly(broker)
        # Back, but refusing the (anonymous) client: commands are sent while it is kept out.
        closed = open_broker.replace(
            "allow_anonymous true", f"allow_anonymous false\npassword_file {password_file}"
        )
        broker.conf.write_text(broker.conf.read_text().replace(open_broker, closed))
        await broker.start()
        await logs.wait_for(logging.WARNING, "Cannot connect to MQTT server")
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username="daemon", password="right-Secret-42"
        ) as other:
            for number in range(5):
                await other.publish(f"{prefix}/cmd", str(number).encode(), qos=1)
        await _stop_cleanly(broker)
        broker.conf.write_text(broker.conf.read_text().replace(closed, open_broker))
        await broker.start()
        got = [await harness.next_message() for _ in range(5)]
        assert got == [(f"{prefix}/cmd", str(n).encode(), False) for n in range(5)]
        async with peer(broker.port) as other:
            await other.publish(f"{prefix}/cmd", b"fence", qos=1)
            assert await harness.next_message() == (f"{prefix}/cmd", b"fence", False)
        assert harness.messages.empty()
    finally:
        await harness.close()


def test_registered_filters_match_like_mqtt_and_forget_one_at_a_time() -> None:
    filters = _FilterSet()
    for topic_filter in ("z/bridge/request/#", "z/+/set", "z/+/set/+", "z/a/b/set", "z/a/b/set/+", "z/a/b"):
        filters.add(topic_filter)
    for topic in (
        "z/bridge/request/x/y",
        "z/hall/set",
        "z/hall/set/state",
        "z/a/b/set",
        "z/a/b/set/state",
        "z/a/b",
    ):
        assert filters.matches(topic), topic
    for topic in ("z/a/b/get", "z/hall/get", "z/a/b/c/set", "z/hall/set/a/b", "y/hall/set", "z"):
        assert not filters.matches(topic), topic
    filters.discard("z/a/b")  # the exact filter only: the others stay
    assert not filters.matches("z/a/b")
    assert filters.matches("z/a/b/set") and filters.matches("z/a/b/set/x")
    filters.discard("z/a/b/set/+")
    filters.discard("z/+/set")
    assert not filters.matches("z/a/b/set/x") and not filters.matches("z/hall/set")
    assert filters.matches("z/a/b/set") and filters.matches("z/hall/set/state")
    assert list(filters) == ["z/bridge/request/#", "z/+/set/+", "z/a/b/set"]


async def test_messages_received_before_the_connection_is_lost_are_still_handed_on(
    prefix: str, brokers: Callable[[str], PrivateBroker], logs: LogQueue
) -> None:
    """paho acknowledged them on arrival, so the broker will not send them again: they must not be
    lost with the connection's aiomqtt client (whose message iterator empties its queue first)."""
    broker = brokers("allow_anonymous true")
    await broker.start()
    handled: list[bytes] = []
    release = asyncio.Event()

    async def slow(topic: str, payload: bytes, retained: bool) -> None:
        handled.append(payload)
        await release.wait()  # a handler busy with the first one while the others arrive

    client = MqttClient(
        config(f"mqtt://127.0.0.1:{broker.port}"),
        will_topic=f"{prefix}/bridge/state",
        will_payload=OFFLINE,
        on_connected=_nothing,
        on_message=slow,
        reconnect_delay=0.05,
    )
    client.subscribe(f"{prefix}/cmd")
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.wait_connected(), TIMEOUT)
        async with peer(broker.port) as other:
            for number in range(3):
                await other.publish(f"{prefix}/cmd", str(number).encode(), qos=1)

        async def logged(text: str) -> None:
            async with asyncio.timeout(TIMEOUT):
                while text not in (await logs.records.get()).getMessage():
                    pass

        for _ in range(3):  # acknowledged (PUBACK) as they arrive: the broker will not send them again
            await logged("Sending PUBACK")
        session = client._session
        assert session is not None
        await broker.kill()
        # paho logs nothing when the broker closes the socket: wait for aiomqtt's own signal.
        lost = session.client._disconnected
        await asyncio.wait([lost], timeout=TIMEOUT)
        assert lost.done()
        release.set()
        await logs.wait_for(logging.WARNING, "Lost connection to MQTT server")
        assert handled == [b"0", b"1", b"2"]
    finally:
        release.set()
        await asyncio.wait_for(client.stop(), TIMEOUT)
        await asyncio.wait_for(task, TIMEOUT)


def _message(mid: int, payload: bytes, *, dup: bool, qos: int = 1) -> paho.MQTTMessage:
    message = paho.MQTTMessage(mid, b"base/switch/set")
    message.payload = payload
    message.qos = qos
    message.dup = dup
    return message


def test_a_message_the_broker_sends_again_is_recognised() -> None:
    redeliveries = _Redeliveries()
    assert not redeliveries.is_repeat(_message(7, b'{"state":"TOGGLE"}', dup=False))
    # The same packet id and payload again, flagged DUP: the broker did not get our PUBACK.
    assert redeliveries.is_repeat(_message(7, b'{"state":"TOGGLE"}', dup=True))


def test_a_new_message_is_never_taken_for_a_repeat() -> None:
    redeliveries = _Redeliveries()
    assert not redeliveries.is_repeat(_message(7, b'{"state":"TOGGLE"}', dup=False))
    # Without DUP it is a new message, even with a packet id and payload seen before.
    assert not redeliveries.is_repeat(_message(7, b'{"state":"TOGGLE"}', dup=False))
    # DUP, but another packet id or another payload: a first delivery that was retried.
    assert not redeliveries.is_repeat(_message(8, b'{"state":"TOGGLE"}', dup=True))
    assert not redeliveries.is_repeat(_message(7, b'{"state":"ON"}', dup=True))
    # QoS 0 messages are never redelivered, so never remembered.
    assert not redeliveries.is_repeat(_message(0, b"x", dup=False, qos=0))
    assert not redeliveries.is_repeat(_message(0, b"x", dup=True, qos=0))
