"""The MQTT edge: one supervised broker connection with last will, re-subscription and back-off.

aiomqtt never reconnects by itself, so `MqttClient.run()` is the supervisor: every connection attempt gets
a fresh `aiomqtt.Client` (a reused one can keep a stale CONNACK future and stale QoS 1 messages in paho's
queue), and every successful connection calls `on_connected()` and re-subscribes what `subscribe()`
registered. While disconnected nothing outbound is queued: `publish()` drops the message with a warning
and returns False, as Zigbee2MQTT does; the daemon republishes its state from `on_connected()`.

Inbound, the session is persistent (`mqtt.session_expiry_interval` > 0, under a stable client id) and
subscribed at QoS 1, so the broker keeps the QoS 1 commands sent while the daemon is away and delivers
them on its return. Only messages on the registered filters are handed on: a resumed session may still
hold subscriptions an earlier run had (a friendly name renamed away since).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from z2m_qbkg40lm.config import MqttConfig

_LOGGER = logging.getLogger(__name__)

# Zigbee2MQTT's MQTT-5 `maximumPacketSize`: the broker must not send us larger packets.
MAX_PACKET_SIZE = 1024 * 1024
# Inbound payloads above this are dropped here too, so MQTT 3.1 / 3.1.1 (which cannot announce a limit)
# behave like MQTT 5. Commands are small; the bridge refuses anything over 64 KiB with a clear error,
# which it can only give for messages it receives.
DEFAULT_MAX_PAYLOAD = MAX_PACKET_SIZE
# Bounds memory if a handler stalls; aiomqtt drops (and logs) messages beyond it.
_MAX_QUEUED_INCOMING = 10_000
# aiomqtt warns once more than 10 publishes wait for paho (a QoS 0 one until written to the socket),
# at every publish: a burst of state messages (200 switches starting) does that as a matter of course.
_PENDING_PUBLISHES_WARNING = 10_000
# Per-operation timeout handed to aiomqtt: CONNACK, SUBACK, PUBACK and DISCONNECT waits.
_OPERATION_TIMEOUT = 10.0
# How long a cancelled connect waits for paho's connecting thread, to close what it opens.
_ABANDONED_CONNECT_WAIT_S = 2.0
# Commands are QoS 1 at most worth keeping: the broker delivers at min(publish QoS, subscription QoS).
# Not QoS 2: paho hands a QoS 2 message on only at PUBREL, and a fresh client per connection forgets
# a PUBREC-ed message, so a connection lost between the two would lose the command.
SUBSCRIPTION_QOS = 1

_PROTOCOLS = {
    3: aiomqtt.ProtocolVersion.V31,
    4: aiomqtt.ProtocolVersion.V311,
    5: aiomqtt.ProtocolVersion.V5,
}

OnConnected = Callable[[], Awaitable[None]]
OnMessage = Callable[[str, bytes, bool], Awaitable[None]]
FinalMessage = tuple[str, str | bytes, bool, int]


class MqttSetupError(Exception):
    """The MQTT configuration cannot work (e.g. an unreadable TLS file); retrying would not help."""


class _ClientTlsContext(ssl.SSLContext):
    """The client context handed to paho, fixing two things paho's own TLS set-up cannot do.

    `server_name` replaces the connect host as SNI and as the name the certificate is checked against,
    like Node's `servername` in Zigbee2MQTT. And the handshake happens here, so the socket is closed when
    it fails: paho leaves a failed handshake's socket to the garbage collector (a ResourceWarning per
    retry). paho's own `do_handshake()` afterwards finds it done.
    """

    server_name: str | None = None

    def wrap_socket(  # noqa: PLR0917 -- the signature is ssl.SSLContext's
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        wrapped = super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=False,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=self.server_name or server_hostname,
            session=session,
        )
        try:
            wrapped.do_handshake()
        except BaseException:
            wrapped.close()
            raise
        return wrapped


def build_tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context for `config`, or None for plain mqtt://; raises MqttSetupError naming the key."""
    if not config.tls:
        return None
    context = _ClientTlsContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = config.server_name
    if config.reject_unauthorized:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if config.ca is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            try:
                context.load_verify_locations(cafile=config.ca)
            except (OSError, ValueError) as exc:
                raise MqttSetupError(f"mqtt.ca: cannot load '{config.ca}': {exc}") from exc
    else:
        # reject_unauthorized: false -> no chain and no host name check (Zigbee2MQTT's meaning).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert is not None and config.key is not None:
        try:
            context.load_cert_chain(certfile=config.cert, keyfile=config.key)
        except (OSError, ValueError) as exc:
            raise MqttSetupError(f"mqtt.cert/mqtt.key: cannot load '{config.cert}': {exc}") from exc
    return context


def check_publish_topic(topic: str) -> None:
    """Raise ValueError for a topic MQTT does not allow in PUBLISH (empty, '+' or '#')."""
    if not topic or "+" in topic or "#" in topic:
        raise ValueError(f"cannot publish to '{topic}': topics must be non-empty without '+' or '#'")


class _Redeliveries:
    """The QoS 1 messages received lately, to recognise the broker sending one of them again.

    A persistent session is at least once: a message whose PUBACK the broker did not get (the
    connection or the broker went down just after it was sent) comes again, with the DUP flag and
    the same packet id, on the next connection. Carried out twice, a TOGGLE would undo itself.
    Packet ids are handed out in turn per session, so the last few hundred do not repeat.
    """

    _REMEMBERED = 512

    def __init__(self) -> None:
        self._seen: collections.OrderedDict[tuple[int, str, bytes], None] = collections.OrderedDict()

    def is_repeat(self, message: paho.MQTTMessage) -> bool:
        """Remember `message`; True when it is a redelivery of one received already."""
        if message.qos == 0:
            return False
        key = (message.mid, message.topic, bytes(message.payload))
        if message.dup and key in self._seen:
            return True
        self._seen[key] = None
        self._seen.move_to_end(key)
        if len(self._seen) > self._REMEMBERED:
            self._seen.popitem(last=False)
        return False


class _Client(aiomqtt.Client):
    """aiomqtt's client, failing a connection attempt at once when the broker closes it before CONNACK,
    and leaving out messages the broker delivers a second time.

    aiomqtt 2.5.1 ignores a disconnect before CONNACK and waits out the whole CONNACK timeout (10 s)
    instead; a broker that restarts while we connect would keep the daemon away that long.
    """

    redeliveries: _Redeliveries | None = None

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self.redeliveries is not None and self.redeliveries.is_repeat(message):
            _LOGGER.info(
                "Ignoring a message on %s the broker sent again: it was received already", message.topic
            )
            return
        super()._on_message(client, userdata, message)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        connecting: asyncio.Future[None] = self._connected
        if not connecting.done():
            connecting.set_exception(aiomqtt.MqttError(f"connection closed before CONNACK ({reason_code})"))
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)


def _abandon(client: aiomqtt.Client) -> None:
    """Close the socket of an attempt that never got a CONNACK.

    aiomqtt 2.5.1 leaves it open when the CONNACK times out (a server that accepts TCP and stays
    silent), one socket per retry; paho's disconnect() closes it and is a no-op without a socket.
    """
    paho_client = getattr(client, "_client", None)
    if isinstance(paho_client, paho.Client):
        paho_client.disconnect()


async def _end_housekeeping(client: aiomqtt.Client) -> None:
    """Stop aiomqtt's once-a-second housekeeping task of a client that is done with.

    aiomqtt 2.5.1 cancels it when the socket closes, by a callback scheduled for later, and never
    awaits it: a stop could leave it running for a turn or two of the loop (a task left behind
    when the daemon's loop ends). Cancelling twice is harmless.
    """
    task = getattr(client, "_misc_task", None)
    if isinstance(task, asyncio.Task) and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _connect(client: aiomqtt.Client) -> None:
    """Connect `client` (aiomqtt's `__aenter__`); if cancelled meanwhile, close what it opens.

    aiomqtt 2.5.1 runs paho's connect in an executor thread, which a cancellation does not stop:
    the socket it opens after the caller has gone, the CONNACK and aiomqtt's housekeeping task
    would outlive the caller as a connection nobody ends (seen: a read of retained messages
    cancelled at shutdown left a connected client behind). The attempt is left to finish, bounded
    by the connect timeout, and is then closed.
    """
    entering = asyncio.ensure_future(client.__aenter__())
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:
        closing = asyncio.ensure_future(_close_once_connected(client, entering))
        # Held until it ends: a task nobody references may be collected while it runs.
        _CLOSING.add(closing)
        closing.add_done_callback(_CLOSING.discard)
        await asyncio.wait((closing,), timeout=_ABANDONED_CONNECT_WAIT_S)
        raise


_CLOSING: set[asyncio.Future[None]] = set()
"""Closings of cancelled connects still waiting for paho's thread (past _ABANDONED_CONNECT_WAIT_S)."""


async def _close_once_connected(client: aiomqtt.Client, entering: asyncio.Future[Any]) -> None:
    """Wait for a connection attempt nobody waits for any more, then close what it opened."""
    try:
        await entering
    except aiomqtt.MqttError:
        _abandon(client)  # no CONNACK: the socket may still be open
    else:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
    await _end_housekeeping(client)


async def _disconnect(client: aiomqtt.Client) -> None:
    """Leave a connected `client` (aiomqtt's `__aexit__`)."""
    await client.__aexit__(None, None, None)


def _send_without_delay(client: aiomqtt.Client) -> None:
    """Turn off Nagle's algorithm on the broker connection.

    The daemon often sends small messages in a row (a state, then a command response or a log
    record); with Nagle the second waits for the broker's delayed ACK of the first, up to 40 ms.
    paho leaves it on.
    """
    paho_client = getattr(client, "_client", None)
    if not isinstance(paho_client, paho.Client):
        return
    sock = paho_client.socket()
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            _LOGGER.warning("Cannot set TCP_NODELAY on the MQTT connection: %s", exc)


def _publish_at_most_once(client: paho.Client, topic: str, payload: str | bytes, retain: bool) -> bool:
    """A QoS 0 publish straight into paho's outgoing queue, written on the loop's next turn.

    aiomqtt's publish waits for that write (a task, an event and a timeout per message: about a
    third of the daemon's own cost of a report at 200 switches). A QoS 0 message has no answer
    to wait for, paho writes its queue in order, and a connection lost before the write loses the
    message either way; only the warning for that case is gone.
    """
    info = client.publish(topic, payload, 0, retain)
    if info.rc != paho.MQTT_ERR_SUCCESS:
        _LOGGER.warning("Failed to publish on %s: %s", topic, paho.error_string(info.rc))
        return False
    return True


def default_client_id(seed: str, prefix: str = "z2m_qbkg40lm_") -> str:
    """A client id stable across restarts, derived from `seed` (the base topic: distinct per
    installation).

    With a 13-character prefix (the default's length), 23 characters of [0-9a-z_], the most every
    MQTT 3.1.1 server must accept.
    """
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:10]


class _FilterSet:
    """Topic filters in registration order, matched without walking the per-name ones.

    Per-name filters (`base/<a/b>/set`, `base/<a/b>/set/+`) are looked up by key; only the few
    filters with other wildcards (`base/+/set`, `base/bridge/request/#`) are matched one by one.
    """

    def __init__(self) -> None:
        self._order: dict[str, None] = {}
        self._exact: set[str] = set()
        self._parents: set[str] = set()
        self._wild: list[str] = []

    def __contains__(self, topic_filter: object) -> bool:
        return topic_filter in self._order

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def add(self, topic_filter: str) -> None:
        if topic_filter in self._order:
            return
        self._order[topic_filter] = None
        match self._kind(topic_filter):
            case "exact":
                self._exact.add(topic_filter)
            case "parent":
                self._parents.add(topic_filter.removesuffix("/+"))
            case _:
                self._wild.append(topic_filter)

    def discard(self, topic_filter: str) -> None:
        if topic_filter not in self._order:
            return
        del self._order[topic_filter]
        match self._kind(topic_filter):
            case "exact":
                self._exact.discard(topic_filter)
            case "parent":
                self._parents.discard(topic_filter.removesuffix("/+"))
            case _:
                self._wild.remove(topic_filter)

    @staticmethod
    def _kind(topic_filter: str) -> str:
        parent, _, last = topic_filter.rpartition("/")
        if "+" not in topic_filter and "#" not in topic_filter:
            return "exact"
        if last == "+" and parent and "+" not in parent and "#" not in parent:
            return "parent"
        return "wild"

    def matches(self, topic: str) -> bool:
        """Whether a message on `topic` is one a registered filter asked for."""
        if topic in self._exact or topic.rpartition("/")[0] in self._parents:
            return True
        value = aiomqtt.Topic(topic)
        return any(value.matches(topic_filter) for topic_filter in self._wild)


def _refused(codes: Iterable[int | ReasonCode]) -> bool:
    return any(code.is_failure if isinstance(code, ReasonCode) else code >= 0x80 for code in codes)


@dataclass(eq=False)
class _Session:
    """One live broker connection; `lost` resolves when it ends, so in-flight publishes stop waiting."""

    client: aiomqtt.Client
    lost: asyncio.Future[None]
    requested: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class MqttClient:
    """A supervised MQTT connection speaking for the daemon, configured like Zigbee2MQTT's `mqtt:`.

    Contract for the callbacks: `on_connected()` runs after every CONNACK, once the registered filters
    are subscribed, and before `connected` turns True, so it must not wait for `wait_connected()`.
    `on_message()` is awaited inline, one message at a time in arrival order: keep it quick and hand
    slow work to a task.
    An exception from either is logged at ERROR and the connection carries on.

    Only `stop()` sends final messages: cancelling `run()` disconnects cleanly, and a clean disconnect
    suppresses the last will, so a retained "online" would stay behind.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        will_topic: str,
        will_payload: str,
        on_connected: OnConnected,
        on_message: OnMessage,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 60.0,
    ) -> None:
        check_publish_topic(will_topic)
        self._config = config
        self._will = aiomqtt.Will(will_topic, will_payload, qos=1, retain=True)
        self._on_connected = on_connected
        self._on_message = on_message
        self._max_payload = max_payload
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        # Built once, at construction: a bad file is a configuration error reported before start-up.
        self._tls_context = build_tls_context(config)
        self._password = config.password.get_secret_value() if config.password is not None else None
        self._filters = _FilterSet()
        self._redeliveries = _Redeliveries()  # kept across connections: redeliveries come on the next
        # Filters given up but not yet confirmed gone by the broker: a persistent session would keep
        # them, so the next connection unsubscribes them.
        self._unsubscribe_on_connect: set[str] = set()
        self._client_id = config.client_id or default_client_id(config.base_topic)
        self._session: _Session | None = None
        self._ready = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()

    @property
    def broker(self) -> str:
        """The broker as logged: scheme, host and port, never credentials."""
        scheme = "mqtts" if self._config.tls else "mqtt"
        return f"{scheme}://{self._config.host}:{self._config.port}"

    @property
    def client_id(self) -> str:
        """The MQTT client id: `mqtt.client_id`, else one derived from the base topic."""
        return self._client_id

    @property
    def persistent(self) -> bool:
        """True when the broker keeps the session (and queued QoS 1 commands) while we are away."""
        return self._config.session_expiry_interval > 0

    @property
    def connected(self) -> bool:
        """True once connected, `on_connected()` has run and registered subscriptions are in place."""
        return self._ready.is_set()

    @property
    def can_publish(self) -> bool:
        """True while the broker has accepted a connection (also inside `on_connected()`)."""
        return self._session is not None

    async def wait_connected(self) -> None:
        """Wait until `connected` is True (bound it with asyncio.timeout; it waits through back-off)."""
        await self._ready.wait()

    def subscribe(self, topic_filter: str) -> None:
        """Register `topic_filter` for every connection; subscribe at once if a connection is up."""
        if not topic_filter:
            raise ValueError("cannot subscribe to an empty topic filter")
        self._filters.add(topic_filter)
        self._unsubscribe_on_connect.discard(topic_filter)
        session = self._session
        if session is not None and topic_filter not in session.requested:
            session.requested.add(topic_filter)
            task = asyncio.create_task(self._subscribe_now(session, [topic_filter]), name="mqtt-subscribe")
            session.tasks.add(task)
            task.add_done_callback(session.tasks.discard)

    def unsubscribe(self, topic_filter: str) -> None:
        """Forget `topic_filter`: messages only it matched are no longer handed on, and the broker
        is told now if connected, else on the next connection (a persistent session keeps it)."""
        if topic_filter not in self._filters:
            return
        self._filters.discard(topic_filter)
        self._unsubscribe_on_connect.add(topic_filter)
        session = self._session
        if session is None:
            return
        session.requested.discard(topic_filter)
        task = asyncio.create_task(self._unsubscribe_now(session, [topic_filter]), name="mqtt-unsubscribe")
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def read_retained(self, filters: Sequence[str]) -> list[tuple[str, bytes]] | None:
        """The retained messages on `filters` now (topic, payload), read over a short second connection.

        A connection of its own, so that the daemon's session never subscribes these filters and
        the daemon's handler never sees the messages. None (and a warning) when it failed.
        """
        # Its own id (two clients with one id throw each other off), derived from the daemon's and
        # within the 23 characters every MQTT 3.1.1 server must accept.
        reader = default_client_id(self._client_id, prefix="z2m_retained_")
        client = self._new_client(identifier=reader, persistent=False, will=False)
        found: list[tuple[str, bytes]] = []
        reached = False
        try:
            await _connect(client)
            reached = True
            try:
                await client.subscribe([(topic, 0) for topic in filters], timeout=_OPERATION_TIMEOUT)
                # The broker queues the retained messages while it handles the SUBSCRIBE, so they
                # all come before the UNSUBACK of an UNSUBSCRIBE sent after the SUBACK; paho hands
                # packets on in order, so once unsubscribed they are all in aiomqtt's queue.
                await client.unsubscribe(list(filters), timeout=_OPERATION_TIMEOUT)
                for _ in range(len(client.messages)):
                    message = await anext(client.messages)
                    payload = message.payload
                    if message.retain and isinstance(payload, bytes) and payload:
                        found.append((message.topic.value, payload))
            finally:
                await _disconnect(client)
        except aiomqtt.MqttError as exc:
            _LOGGER.warning("Cannot read retained messages from %s: %s", self.broker, self._describe(exc))
            return None
        finally:
            if not reached:
                _abandon(client)
            await _end_housekeeping(client)
        return found

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> bool:
        """Publish; True once handed to the broker (QoS 0: queued on the connection, in order; QoS 1:
        PUBACK), False if not connected or lost."""
        check_publish_topic(topic)
        session = self._session
        if session is None:
            _LOGGER.warning("Not connected to MQTT server, dropping message on %s", topic)
            return False
        if qos == 0:
            paho_client = getattr(session.client, "_client", None)
            if isinstance(paho_client, paho.Client):
                return _publish_at_most_once(paho_client, topic, payload, retain)
        sending = asyncio.ensure_future(
            session.client.publish(topic, payload, qos=qos, retain=retain, timeout=_OPERATION_TIMEOUT)
        )
        try:
            await asyncio.wait((sending, session.lost), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            sending.cancel()
            raise
        if not sending.done():
            # The connection ended first. cancel() only requests the cancellation, which lands on
            # the next loop iteration: wait for it, or the outcome cannot be read yet.
            sending.cancel()
            await asyncio.wait((sending,))
        if sending.cancelled():
            _LOGGER.warning("MQTT connection lost while publishing, dropping message on %s", topic)
            return False
        error = sending.exception()
        if isinstance(error, aiomqtt.MqttError):
            _LOGGER.warning("Failed to publish on %s: %s", topic, self._describe(error))
            return False
        if error is not None:
            raise error
        return True

    async def stop(self, final_messages: Sequence[FinalMessage] | None = None) -> None:
        """Publish `final_messages` (topic, payload, retain, qos) if connected, disconnect, end `run()`."""
        if self._session is not None:
            for topic, payload, retain, qos in final_messages or ():
                await self.publish(topic, payload, retain=retain, qos=qos)
        self._stop_requested.set()
        # Waiting from inside run() (a handler calling stop()) would wait for ourselves.
        if self._run_task is not None and self._run_task is not asyncio.current_task():
            await self._finished.wait()

    async def run(self) -> None:
        """Connect, serve and reconnect with back-off until `stop()` is called or the task is cancelled."""
        if self._run_task is not None:
            raise RuntimeError("MqttClient.run() is already running or has run")
        self._run_task = asyncio.current_task()
        delay = self._reconnect_delay
        try:
            while not self._stop_requested.is_set():
                reached = False
                client = self._new_client()
                try:
                    await _connect(client)
                    reached = True
                    try:
                        _send_without_delay(client)
                        delay = self._reconnect_delay
                        _LOGGER.info("Connected to MQTT server %s", self.broker)
                        await self._serve(client)
                    finally:
                        await _disconnect(client)
                    _LOGGER.info("Disconnected from MQTT server %s", self.broker)
                except aiomqtt.MqttError as exc:
                    if self._stop_requested.is_set():
                        if reached:
                            _LOGGER.warning(
                                "Unclean disconnect from MQTT server %s (%s)",
                                self.broker,
                                self._describe(exc),
                            )
                        break
                    what = "Lost connection to" if reached else "Cannot connect to"
                    _LOGGER.warning(
                        "%s MQTT server %s (%s), retrying in %g s",
                        what,
                        self.broker,
                        self._describe(exc),
                        delay,
                    )
                finally:
                    if not reached:
                        _abandon(client)
                    await _end_housekeeping(client)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), timeout=delay)
                delay = min(delay * 2, self._max_reconnect_delay)
        finally:
            self._finished.set()

    def _new_client(
        self, *, identifier: str | None = None, persistent: bool | None = None, will: bool = True
    ) -> aiomqtt.Client:
        config = self._config
        persistent = self.persistent if persistent is None else persistent
        properties: Properties | None = None
        session: dict[str, Any] = {}
        if config.version == 5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.MaximumPacketSize = MAX_PACKET_SIZE
            # The broker ends the session this long after a disconnect: bounds how old a command
            # delivered on our return can be.
            properties.SessionExpiryInterval = config.session_expiry_interval if persistent else 0
            session["clean_start"] = not persistent
        else:
            # MQTT 3.1.1 has no expiry: the broker keeps the session until its own limit
            # (Mosquitto: persistent_client_expiration).
            session["clean_session"] = not persistent
        client = _Client(
            config.host,
            config.port,
            username=config.user,
            password=self._password,
            identifier=identifier or self._client_id,
            protocol=_PROTOCOLS[config.version],
            will=self._will if will else None,
            **session,
            keepalive=config.keepalive,
            timeout=_OPERATION_TIMEOUT,
            properties=properties,
            tls_context=self._tls_context,
            max_queued_incoming_messages=_MAX_QUEUED_INCOMING,
            logger=logging.getLogger(f"{__name__}.paho"),
        )
        client.redeliveries = self._redeliveries
        client.pending_calls_threshold = _PENDING_PUBLISHES_WARNING
        return client

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Run one connection: set-up, then messages until the connection is lost or stop() is called."""
        session = _Session(client, asyncio.get_running_loop().create_future())
        self._session = session
        try:
            await self._set_up(session)
            self._ready.set()
            pump = asyncio.create_task(self._pump(client), name="mqtt-messages")
            stopping = asyncio.create_task(self._stop_requested.wait(), name="mqtt-stop")
            try:
                await asyncio.wait((pump, stopping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                pump.cancel()
                stopping.cancel()
                await asyncio.wait((pump, stopping))
            if not pump.cancelled() and (error := pump.exception()) is not None:
                raise error
        finally:
            self._ready.clear()
            self._session = None
            session.lost.set_result(None)
            for task in list(session.tasks):
                task.cancel()
            if session.tasks:
                await asyncio.wait(session.tasks)

    async def _set_up(self, session: _Session) -> None:
        # Subscribe first, then announce online: a client that sees "online" and sends a request at
        # once must find us listening (Zigbee2MQTT announces first and can miss such a request).
        stale = sorted(self._unsubscribe_on_connect)
        if stale:
            # A failure here (MqttError) ends the connection; the next one tries again.
            await session.client.unsubscribe(stale, timeout=_OPERATION_TIMEOUT)
            self._unsubscribe_on_connect.difference_update(stale)
        pending = [topic for topic in self._filters if topic not in session.requested]
        if pending:
            session.requested.update(pending)
            # A failure here (MqttError) ends the connection; the next one subscribes again.
            await self._subscribe(session.client, pending)
        try:
            await self._on_connected()
        except Exception:
            _LOGGER.exception("The MQTT on_connected handler failed")

    async def _subscribe_now(self, session: _Session, filters: list[str]) -> None:
        try:
            await self._subscribe(session.client, filters)
        except aiomqtt.MqttError as exc:
            # The filter stays registered: the next connection subscribes it.
            _LOGGER.warning("Cannot subscribe to %s: %s", ", ".join(filters), self._describe(exc))

    async def _unsubscribe_now(self, session: _Session, filters: list[str]) -> None:
        try:
            await session.client.unsubscribe(filters, timeout=_OPERATION_TIMEOUT)
        except aiomqtt.MqttError as exc:
            # Told again on the next connection; meanwhile its messages are not handed on.
            _LOGGER.warning("Cannot unsubscribe from %s: %s", ", ".join(filters), self._describe(exc))
            return
        self._unsubscribe_on_connect.difference_update(filters)

    async def _subscribe(self, client: aiomqtt.Client, filters: list[str]) -> None:
        codes = await client.subscribe(
            [(topic, SUBSCRIPTION_QOS) for topic in filters], timeout=_OPERATION_TIMEOUT
        )
        if _refused(codes):
            _LOGGER.warning("MQTT server %s refused a subscription among %s", self.broker, ", ".join(filters))

    async def _pump(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload
            if not self._filters.matches(topic):
                # A subscription a resumed session kept from an earlier run, or one being undone.
                _LOGGER.debug("Ignoring a message on %s: no longer subscribed", topic)
                continue
            if len(payload) > self._max_payload:
                _LOGGER.warning(
                    "Dropping %d-byte message on %s (limit %d bytes)", len(payload), topic, self._max_payload
                )
                continue
            try:
                await self._on_message(topic, payload, bool(message.retain))
            except Exception:
                _LOGGER.exception("The MQTT message handler failed on %s", topic)

    def _describe(self, error: BaseException) -> str:
        """A one-line reason along the cause chain, with the password blanked out should it appear."""
        parts: list[str] = []
        current: BaseException | None = error
        while current is not None and len(parts) < 3:
            text = str(current)
            # MqttCodeError's str() shows only the code; its message ("Unexpected disconnection") is in args.
            if isinstance(current, aiomqtt.MqttCodeError) and current.args:
                message = str(current.args[0])
                text = text if message in text else f"{message} {text}"
            if text and text not in parts:
                parts.append(text)
            current = current.__cause__
        reason = ": ".join(parts) or type(error).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        return reason
