"""The radio layer: one zigpy ControllerApplication for the configured adapter.

It forms, resumes or restores the network (what it does with an adapter holding another network,
or with a blank one and an imported backup: `network_takeover`), teaches zigpy the devices'
manufacturer clusters and hidden endpoints, turns zigpy's listener calls into events on a queue,
and runs converter plans.

It also keeps the radio serving: a coordinator that reboots on its own (noticed by the adapter
family's reset detection, see `adapters.ResetDetection`) is re-initialised in-process, by shutting
the zigpy application down (its database saved) and starting a new one; if that fails the radio is
lost and the daemon exits with the adapter-lost code for its supervisor.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import zigpy.exceptions
from zigpy.types import EUI64

from z2m_qbkg40lm.config import Config, NetworkSettings
from z2m_qbkg40lm.devices.definition import DeviceDefinition, ZclOperation
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.adapters import ADAPTERS, application_class, reset_detection, zigpy_config
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError, NoAnswerError, execute
from z2m_qbkg40lm.zigbee.failures import describe_failure
from z2m_qbkg40lm.zigbee.lumi_cluster import make_device_resolver, register_manufacturer_clusters
from z2m_qbkg40lm.zigbee.network_takeover import start_application

_LOGGER = logging.getLogger(__name__)


class RadioError(Exception):
    """The adapter could not be started; the message says what to check."""


def ieee_string(ieee: Any) -> str:
    """zigpy's EUI64 ("54:ef:44:…") as Zigbee2MQTT writes it ("0x54ef44…")."""
    if isinstance(ieee, EUI64):
        # EUI64 is a list of its bytes, least significant first; zigpy's own text of it takes
        # about 2 µs (byte by byte), this a tenth of that, and every frame needs it.
        return "0x" + bytes(ieee)[::-1].hex()
    return "0x" + str(ieee).replace(":", "").lower()


@functools.lru_cache(maxsize=1024)
def parse_ieee(text: str) -> EUI64 | None:
    """zigpy's EUI64 of an address written as Zigbee2MQTT does ("0x" and 16 hex digits), else None;
    cached, as the same few hundred addresses are looked up on every command and frame (zigpy
    hashes an EUI64 through its text, so its device table costs about 2 µs a look-up still). The
    result is shared between callers: compare or look up with it, never change it."""
    digits = text[2:] if text.startswith("0x") else ""
    if len(digits) != 16 or digits != digits.lower():
        return None  # as before: only the lower-case spelling the bridge uses names a device
    try:
        # EUI64 holds the bytes least significant first (the order on the air).
        return EUI64(bytes.fromhex(digits)[::-1])
    except ValueError:
        return None


@dataclass(frozen=True)
class DeviceInfo:
    """What the bridge needs to know about one device on the network."""

    ieee: str
    nwk: int
    model_id: str | None
    manufacturer: str | None
    interviewed: bool
    linkquality: int | None


@dataclass(frozen=True)
class EndpointDetails:
    """One endpoint of a device's simple descriptor (with the clusters zigpy knows on it)."""

    endpoint_id: int
    profile_id: int | None
    device_type: int | None
    input_clusters: tuple[int, ...]
    output_clusters: tuple[int, ...]


LogicalType = Literal["Coordinator", "Router", "EndDevice"]
RadioState = Literal["starting", "running", "restarting", "lost", "stopped"]

RESTART_TIMEOUT_S = 30.0
"""How long a re-initialisation may take before the adapter counts as lost (zigpy-znp alone gives
the network 15 s to come up; against the emulator it takes about 1 s)."""
COMMAND_WAIT_S = 8.0
"""How long a command waits for a re-initialisation under way before it fails."""
COORDINATOR_CHECK_AFTER_S = 4.0
"""A command still running after this long (a healthy exchange takes well under a second) has the
coordinator pinged, and again every as long."""
PROBE_TIMEOUT_S = 3.0
"""How long the coordinator has to answer a ping (health check, a command nothing answered)."""

ZDO_TIMEOUT_S = 7.0
"""How long a device has to answer a leave or permit-join request (zigpy's figure for routers)."""

BASIC_CLUSTER_ID = 0x0000
_BASIC_DETAILS = ("date_code", "power_source", "sw_build_id")


@dataclass(frozen=True)
class DeviceDetails:
    """What `bridge/devices` shows about a device or the coordinator; read from zigpy, no I/O."""

    ieee: str
    nwk: int
    logical_type: LogicalType | None
    manufacturer: str | None
    model_id: str | None
    power_source: int | None
    """Basic powerSource (0x0007) as last read, without the battery-backup bit; None if unknown."""
    date_code: str | None
    software_build_id: str | None
    interviewed: bool
    interviewing: bool
    endpoints: tuple[EndpointDetails, ...]


class Radio:
    """The zigpy application, its listeners, and the events they produce."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        network: NetworkSettings,
        definitions: tuple[DeviceDefinition, ...],
    ) -> None:
        self.events: asyncio.Queue[ev.RadioEvent] = asyncio.Queue()
        self._config = config
        self._data_dir = data_dir
        self._network = network
        self._definitions = definitions
        self._app: Any = None
        self._app_open = False
        self._listener: _ZigpyListener | None = None
        self._unsubscribes: dict[str, list[Callable[[], None]]] = {}
        self._detection = reset_detection(config.serial.adapter)
        self._stop_watching: Callable[[], None] | None = None
        self._state: RadioState = "starting"
        self._problem: str | None = None
        # Set unless a re-initialisation is under way: it ended, serving again or lost.
        self._settled = asyncio.Event()
        self._lost = asyncio.Event()
        # The same as a future, made at the first command: every running command's watch listens to
        # it with a done callback (a task waiting on the event, one per command, cost more loop
        # iterations and a cancellation per command).
        self._lost_signal: asyncio.Future[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        # False once a send was refused again right after a re-initialisation: the refusal has
        # another cause, and re-initialising over and over would not help (until a send works).
        self._refusal_means_reset = True

    @property
    def state(self) -> RadioState:
        """starting, running, restarting (re-initialising after a reset), lost, or stopped."""
        return self._state

    @property
    def adapter(self) -> str:
        """The configured adapter name."""
        return self._config.serial.adapter

    @property
    def coordinator_type(self) -> str:
        """A Zigbee2MQTT-style coordinator type name (zStack12 for a CC2531, say), from the firmware
        the radio library found once it runs, else the adapter family's."""
        node_info = None if self._app is None else self._app.state.node_info
        return ADAPTERS[self.adapter].type_of(None if node_info is None else node_info.version)

    @property
    def simulation(self) -> Any | None:
        """The virtual adapter's scripting API (presses, heartbeats, power cycles), else None."""
        return getattr(self._app, "simulation", None)

    async def start(self) -> None:
        """Start the adapter and form the network, or resume the one it has."""
        for definition in self._definitions:
            register_manufacturer_clusters(definition.manufacturer_clusters)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        try:
            await self._open_app()
        except Exception as exc:
            where = self._config.serial.port or "the virtual adapter"
            raise RadioError(
                f"cannot start the {self.adapter} adapter on {where}: {describe_failure(exc)}"
            ) from exc
        self._set_state("running")
        info = self._app.state.network_info
        _LOGGER.info(
            "Zigbee network up: channel %s, PAN id 0x%04x, coordinator %s, %d device(s)",
            info.channel,
            int(info.pan_id),
            ieee_string(self._app.state.node_info.ieee),
            len(self._devices()),
        )

    async def _open_app(self) -> None:
        """Create and start a zigpy application, follow its devices, watch for resets; it becomes
        `_app` only once it runs (until then lookups keep using the previous one)."""
        patches = {
            model_id: definition.endpoint_patches
            for definition in self._definitions
            for model_id in definition.model_ids
        }
        app = await application_class(self.adapter).new(
            zigpy_config(self._config, self._data_dir, self._network),
            auto_form=True,
            start_radio=False,
            device_resolver=make_device_resolver(patches),
        )
        listener = _ZigpyListener(self, app)
        app.add_listener(listener)
        try:
            await start_application(app, self._network, self._data_dir)
        except BaseException:
            # zigpy closes the radio but not its database when start-up fails (and nothing when it
            # is cancelled); an open database thread would keep the process from exiting.
            app.remove_listener(listener)
            try:
                await app.shutdown(db=True)
            except Exception:
                _LOGGER.exception("Closing the zigpy application after a failed start failed")
            raise
        self._app, self._listener, self._app_open = app, listener, True
        for device in self._devices():
            self._subscribe(device)
        if self._detection is not None:
            self._stop_watching = self._detection.watch_resets(app, self._on_reset)

    async def _close_app(self) -> None:
        """Stop following the running application and shut it down, saving zigpy's database."""
        if self._stop_watching is not None:
            self._stop_watching()
            self._stop_watching = None
        for unsubscribes in self._unsubscribes.values():
            for unsubscribe in unsubscribes:
                unsubscribe()
        self._unsubscribes.clear()
        if not self._app_open:
            return
        self._app_open = False
        if self._listener is not None:
            # Closing the link on purpose must not look like a lost adapter.
            self._app.remove_listener(self._listener)
            self._listener = None
        await self._app.shutdown()

    async def stop(self) -> None:
        """Shut the application down, saving zigpy's database."""
        self._set_state("stopped")
        if self._restart_task is not None:
            self._restart_task.cancel()
            await asyncio.gather(self._restart_task, return_exceptions=True)
            self._restart_task = None
        await self._close_app()

    # --- staying up: resets, re-initialisation, health ----------------------------------------

    def _set_state(self, state: RadioState, problem: str | None = None) -> None:
        self._state, self._problem = state, problem
        if state == "restarting":
            self._settled.clear()
        else:
            self._settled.set()
        if state == "lost":
            self._lost.set()
            if self._lost_signal is not None and not self._lost_signal.done():
                self._lost_signal.set_result(None)

    def _on_reset(self, reason: str) -> None:
        """The reset detection's callback (called inside the radio library's frame handling)."""
        self.restart(reason)

    def restart(self, reason: str) -> None:
        """Re-initialise the radio in the background (at most one at a time); commands wait for it,
        a failure is a lost radio (RadioLost)."""
        if self._state != "running":
            return
        _LOGGER.error("Adapter problem: %s; re-initialising the radio", reason)
        self._set_state("restarting", f"the adapter is restarting ({reason})")
        self.events.put_nowait(ev.RadioRestarting(reason=reason))
        self._restart_task = asyncio.get_running_loop().create_task(
            self._restart(), name="radio re-initialisation"
        )

    async def _restart(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(RESTART_TIMEOUT_S):
                await self._close_app()
                await self._open_app()
        except Exception as exc:
            reason = describe_failure(exc)
            if isinstance(exc, TimeoutError):
                reason = f"no network within {RESTART_TIMEOUT_S:g} s"
            _LOGGER.error("Re-initialising the adapter failed: %s", reason, exc_info=exc)
            self._set_state("lost", f"the adapter is lost: re-initialising it failed: {reason}")
            self.events.put_nowait(ev.RadioLost(reason=f"re-initialising the adapter failed: {reason}"))
            return
        seconds = loop.time() - started
        self._set_state("running")
        _LOGGER.warning("The adapter is serving again, re-initialised in %.1f s", seconds)
        self.events.put_nowait(ev.RadioRecovered(seconds=seconds))

    async def _until_serving(self) -> None:
        """Return at once while running; wait a bounded time for a re-initialisation under way
        (ended at once when it fails: the caller is answered before the daemon stops)."""
        if self._state == "restarting":
            try:
                async with asyncio.timeout(COMMAND_WAIT_S):
                    await self._settled.wait()
            except TimeoutError:
                raise DeviceCommandError(
                    "the adapter is restarting (the coordinator reset itself); try again shortly"
                ) from None
        if self._state != "running":
            raise DeviceCommandError(self._problem or f"the adapter is {self._state}")

    async def coordinator_problem(self) -> str | None:
        """None when the coordinator answers a ping within PROBE_TIMEOUT_S, else what is wrong (at
        once when the adapter is lost meanwhile)."""
        if self._state != "running":
            return self._problem or f"the adapter is {self._state}"
        loop = asyncio.get_running_loop()
        ping = loop.create_task(self._app.watchdog_feed())
        lost = loop.create_task(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {ping, lost}, timeout=PROBE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for each in (ping, lost):
                each.cancel()
            await asyncio.gather(ping, lost, return_exceptions=True)
        if ping in done:
            failure = None if ping.cancelled() else ping.exception()
            if ping.cancelled() or failure is not None:
                reason = "cancelled" if failure is None else describe_failure(failure)
                return f"the coordinator did not answer a ping: {reason}"
            return None
        if lost in done:
            return self._problem or "the adapter is lost"
        return f"the coordinator did not answer a ping within {PROBE_TIMEOUT_S:g} s"

    def _reset_explains(self, exc: DeviceCommandError) -> bool:
        return (
            self._detection is not None
            and exc.cause is not None
            and self._detection.failure_means_reset(exc.cause)
        )

    def network_summary(self) -> dict[str, Any]:
        """Channel, PAN id, extended PAN id and coordinator IEEE of the running network."""
        info = self._app.state.network_info
        return {
            "channel": int(info.channel),
            "pan_id": int(info.pan_id),
            "extended_pan_id": ieee_string(info.extended_pan_id),
            "coordinator": ieee_string(self._app.state.node_info.ieee),
        }

    def _devices(self) -> list[Any]:
        coordinator = self._app.state.node_info.ieee
        return [device for ieee, device in self._app.devices.items() if ieee != coordinator]

    def devices(self) -> list[DeviceInfo]:
        """Every device on the network except the coordinator."""
        return [self._info(device) for device in self._devices()]

    def device(self, ieee: str) -> DeviceInfo | None:
        """One device by IEEE address ("0x…"), or None."""
        found = self._find(ieee)
        return None if found is None else self._info(found)

    def zigpy_device(self, ieee: str) -> Any | None:
        """zigpy's own device object, for features that drive zigpy directly (firmware updates)."""
        return self._find(ieee)

    def _find(self, ieee: str) -> Any | None:
        """zigpy's device object for an address ("0x…", lower case), not the coordinator; a direct
        look-up in zigpy's own table, so it follows joins, removals and re-initialisations."""
        address = parse_ieee(ieee)
        if address is None or address == self._app.state.node_info.ieee:
            return None
        return self._app.devices.get(address)

    @staticmethod
    def _info(device: Any) -> DeviceInfo:
        return DeviceInfo(
            ieee=ieee_string(device.ieee),
            nwk=int(device.nwk),
            model_id=device.model,
            manufacturer=device.manufacturer,
            interviewed=bool(device.is_initialized),
            linkquality=device.lqi,
        )

    async def execute(self, ieee: str, operations: tuple[ZclOperation, ...]) -> tuple[Any, ...]:
        """Run a converter plan on a device, returning one result per operation (see the
        executor's `execute`); DeviceCommandError says what failed (the device, or the coordinator
        itself)."""
        await self._until_serving()
        try:
            return await self._execute_watched(ieee, operations)
        except NoAnswerError as exc:
            problem = await self.coordinator_problem()
            if problem is None:
                raise
            raise DeviceCommandError(f"{exc.operation} failed: {problem}") from None
        except DeviceCommandError as exc:
            if not (self._refusal_means_reset and self._reset_explains(exc)):
                raise
            # The frame was refused before it went on air: sending it again after the re-init
            # cannot carry the command out twice.
            self.restart(f"a send failed with {exc}, which only a coordinator that rebooted explains")
            await self._until_serving()
            try:
                return await self._execute_watched(ieee, operations)
            except DeviceCommandError as again:
                if self._reset_explains(again):
                    self._refusal_means_reset = False
                    _LOGGER.warning(
                        "The coordinator refuses sends even after a re-initialisation; not"
                        " re-initialising it again for this until a send succeeds"
                    )
                raise

    async def _execute_watched(self, ieee: str, operations: tuple[ZclOperation, ...]) -> tuple[Any, ...]:
        """`_execute_once`, with the coordinator pinged while it takes long: a coordinator that does
        not answer fails the command with that reason, instead of zigpy's retries (3 x 8 s with
        Z-Stack) ending in "the device did not answer".

        It runs in the caller's task, watched from outside (as `asyncio.timeout` does): a task of
        its own cost every command two more turns of the event loop before and after zigpy's
        exchange. A lost adapter ends the command at once, so that it is answered before the daemon
        stops.
        """
        task = asyncio.current_task()
        assert task is not None
        watch = _CommandWatch(self, task)
        try:
            return await self._execute_once(ieee, operations)
        except asyncio.CancelledError:
            if watch.problem is not None and task.uncancel() <= watch.cancelling:
                raise DeviceCommandError(f"the command got no answer: {watch.problem}") from None
            raise
        finally:
            await watch.stop()

    def _lost_future(self) -> asyncio.Future[None]:
        """Resolved when the adapter is lost; one for all commands."""
        if self._lost_signal is None:
            self._lost_signal = asyncio.get_running_loop().create_future()
            if self._lost.is_set():
                self._lost_signal.set_result(None)
        return self._lost_signal

    async def _execute_once(self, ieee: str, operations: tuple[ZclOperation, ...]) -> tuple[Any, ...]:
        device = self._find(ieee)
        if device is None:
            raise DeviceCommandError(f"device {ieee} is not on the network")
        try:
            results = await execute(device, operations)
            self._refusal_means_reset = True
            return results
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling() or self._state != "restarting":
                raise
            # Shutting the old application down cancels the answers it was still waiting for.
            raise DeviceCommandError(
                "the adapter restarted while the command was under way; it may or may not have been"
                " carried out"
            ) from None

    async def permit_join(self, seconds: int) -> None:
        """Open (or with 0, close) the network for joining."""
        await self._until_serving()
        await self._app.permit(time_s=seconds)

    # --- device details and network management (bridge requests) -----------------------------

    def details(self, ieee: str) -> DeviceDetails | None:
        """What zigpy knows about one device, or None when it is not on the network."""
        found = self._find(ieee)
        return None if found is None else _details(found)

    def all_details(self) -> list[DeviceDetails]:
        """What zigpy knows about every device except the coordinator, in one pass."""
        return [_details(device) for device in self._devices()]

    def coordinator_details(self) -> DeviceDetails:
        """What zigpy knows about the coordinator."""
        ieee = self._app.state.node_info.ieee
        device = self._app.devices.get(ieee)
        if device is None:
            return DeviceDetails(
                ieee_string(ieee), 0, "Coordinator", None, None, None, None, None, True, False, ()
            )
        return _details(device, logical_type="Coordinator")

    def coordinator_meta(self) -> dict[str, Any]:
        """The adapter's firmware facts zigpy has (model, manufacturer, version), when known."""
        node = self._app.state.node_info
        meta = {"manufacturer": node.manufacturer, "model": node.model, "revision": node.version}
        return {key: str(value) for key, value in meta.items() if value not in (None, "")}

    async def permit_join_via(self, ieee: str, seconds: int) -> None:
        """Open (or with 0, close) joining through one router only; DeviceCommandError if it fails."""
        await self._until_serving()
        device = self._find(ieee)
        if device is None:
            raise DeviceCommandError(f"device {ieee} is not on the network")
        await self._zdo_request(device.zdo.permit(seconds), "the permit-join request")

    async def read_device_information(self, ieee: str) -> None:
        """Read Basic's date code, power source and build id into zigpy's attribute cache (kept in
        its database); attributes the device does not have are skipped."""
        await self._until_serving()
        device = self._find(ieee)
        if device is None:
            raise DeviceCommandError(f"device {ieee} is not on the network")
        cluster = basic_cluster(device)
        if cluster is None:
            return
        try:
            await cluster.read_attributes(list(_BASIC_DETAILS), allow_cache=False)
        except TimeoutError:
            raise DeviceCommandError("reading the Basic cluster failed: the device did not answer") from None
        except zigpy.exceptions.ZigbeeException as exc:
            raise DeviceCommandError(
                f"reading the Basic cluster failed: {exc or type(exc).__name__}"
            ) from None

    async def remove(self, ieee: str, *, force: bool) -> None:
        """Take a device off the network: a ZDO leave it must acknowledge, then out of zigpy's
        database. `force` skips the leave (database only: the device may still think it is
        joined). DeviceCommandError when the device does not leave."""
        await self._until_serving()
        device = self._find(ieee)
        if device is None:
            raise DeviceCommandError(f"device {ieee} is not on the network")
        if not force:
            await self._zdo_request(device.zdo.leave(remove_children=True, rejoin=False), "the leave request")
        device.cancel_initialization()
        for unsubscribe in self._unsubscribes.pop(ieee, []):
            unsubscribe()
        self._app.devices.pop(device.ieee, None)
        # zigpy's database listener deletes the device on this event.
        self._app.listener_event("device_removed", device)

    async def reinterview(self, ieee: str) -> None:
        """Interview a device again (zigpy keeps the old data if it fails), with the same events as
        a first interview; DeviceCommandError says why it failed."""
        await self._until_serving()
        device = self._find(ieee)
        if device is None:
            raise DeviceCommandError(f"device {ieee} is not on the network")
        if device.initializing or device.reinterviewing:
            raise DeviceCommandError("an interview of the device is already running")
        self.events.put_nowait(ev.DeviceInterviewStarted(ieee=ieee))
        # zigpy logs a failure and keeps the old device object; on success it swaps in a new one.
        await device.reinterview()
        new = self._find(ieee)
        if new is None or new is device:
            reason = "the device did not answer the interview"
            self.events.put_nowait(ev.DeviceInterviewFailed(ieee=ieee, reason=reason))
            raise DeviceCommandError(reason)
        self._subscribe(new)
        self.events.put_nowait(
            ev.DeviceInterviewed(ieee=ieee, model_id=new.model, manufacturer=new.manufacturer)
        )

    @staticmethod
    async def _zdo_request(request: Any, what: str) -> None:
        try:
            async with asyncio.timeout(ZDO_TIMEOUT_S):
                response = await request
        except TimeoutError:
            raise DeviceCommandError(f"{what} failed: the device did not answer") from None
        except zigpy.exceptions.ZigbeeException as exc:
            raise DeviceCommandError(f"{what} failed: {exc or type(exc).__name__}") from None
        status = response[0] if isinstance(response, (list, tuple)) and response else None
        if status is not None and int(status) != 0:
            raise DeviceCommandError(f"{what} failed: the device answered {getattr(status, 'name', status)}")

    # --- listeners -> events ------------------------------------------------------------------

    def _subscribe(self, device: Any) -> None:
        """Follow attribute reports and read answers of every input cluster of a device."""
        ieee = ieee_string(device.ieee)
        for unsubscribe in self._unsubscribes.pop(ieee, []):
            unsubscribe()
        unsubscribes = []
        listener = _AttributeListener(self.events, device, ieee)
        for endpoint_id, endpoint in device.endpoints.items():
            if endpoint_id == 0:
                continue
            for cluster in endpoint.in_clusters.values():
                for name in _ATTRIBUTE_EVENTS:
                    unsubscribes.append(cluster.on_event(name, listener, with_context=True))
        announce_listener = _AnnounceListener(self)
        device.zdo.add_listener(announce_listener)
        unsubscribes.append(lambda: device.zdo.remove_listener(announce_listener))
        self._unsubscribes[ieee] = unsubscribes


_ATTRIBUTE_EVENTS = ("attribute_report", "attribute_read")
"""zigpy's cluster events the radio follows: a report, or the answer to a read."""


class _AttributeListener:
    """One device's attribute reports and read answers, as `AttributeReceived` events.

    One object per device, registered on every cluster for both events: a closure per cluster
    and event cost about 10 kB a device (2 MB at 200 switches).
    """

    __slots__ = ("_device", "_events", "_ieee")

    def __init__(self, events: asyncio.Queue[ev.RadioEvent], device: Any, ieee: str) -> None:
        self._events = events
        self._device = device
        self._ieee = ieee

    def __call__(self, event_name: str, event: Any) -> None:
        self._events.put_nowait(
            ev.AttributeReceived(
                ieee=self._ieee,
                endpoint=int(event.endpoint_id),
                cluster_id=int(event.cluster_id),
                attribute_id=int(event.attribute_id),
                value=event.value,
                kind="read" if event_name == "attribute_read" else "report",
                linkquality=self._device.lqi,
            )
        )


class _CommandWatch:
    """Watches one command running in `task`: pings the coordinator every COORDINATOR_CHECK_AFTER_S
    while it runs, and cancels the task with the reason when the coordinator does not answer or
    the adapter is lost (`problem` says why; the command turns the cancellation into its error)."""

    def __init__(self, radio: Radio, task: asyncio.Task[Any]) -> None:
        self._radio = radio
        self._task = task
        self.cancelling = task.cancelling()
        self.problem: str | None = None
        self._done = False
        self._check: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = loop.call_later(
            COORDINATOR_CHECK_AFTER_S, self._start_check
        )
        self._lost = radio._lost_future()
        self._lost.add_done_callback(self._on_lost)

    def _fail(self, problem: str) -> None:
        if self._done or self.problem is not None:
            return
        self.problem = problem
        self._task.cancel()

    def _on_lost(self, _lost: asyncio.Future[None]) -> None:
        self._fail(self._radio._problem or "the adapter is lost")

    def _start_check(self) -> None:
        self._timer = None
        if not self._done:
            self._check = asyncio.get_running_loop().create_task(self._check_coordinator())

    async def _check_coordinator(self) -> None:
        try:
            problem = await self._radio.coordinator_problem()
        except Exception as exc:
            # Nobody awaits this task: what the check could not do fails the command, as it did
            # when the command awaited the check itself.
            _LOGGER.warning("Checking the coordinator failed", exc_info=True)
            problem = f"checking the coordinator failed: {exc or type(exc).__name__}"
        self._check = None
        if self._done:
            return
        if problem is not None:
            self._fail(problem)
            return
        self._timer = asyncio.get_running_loop().call_later(COORDINATOR_CHECK_AFTER_S, self._start_check)

    async def stop(self) -> None:
        """The command ended: no more checks (a ping under way is cancelled and awaited)."""
        self._done = True
        self._lost.remove_done_callback(self._on_lost)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        check, self._check = self._check, None
        if check is not None and not check.done():
            check.cancel()
            await asyncio.gather(check, return_exceptions=True)


def basic_cluster(device: Any) -> Any | None:
    """A zigpy device's Basic cluster (on its first endpoint that has one), or None."""
    for endpoint_id, endpoint in sorted(device.endpoints.items()):
        if endpoint_id != 0 and BASIC_CLUSTER_ID in endpoint.in_clusters:
            return endpoint.in_clusters[BASIC_CLUSTER_ID]
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip("\x00 ")
    return text or None


_LOGICAL_TYPES: dict[int, LogicalType] = {0: "Coordinator", 1: "Router", 2: "EndDevice"}


def _details(device: Any, logical_type: LogicalType | None = None) -> DeviceDetails:
    """A device's details from zigpy's objects (node descriptor, endpoints, Basic attribute cache)."""
    if logical_type is None and device.node_desc is not None:
        logical_type = _LOGICAL_TYPES.get(int(device.node_desc.logical_type))
    basic = basic_cluster(device)
    cached: dict[str, Any] = {}
    if basic is not None:
        cached = {name: basic.get(name) for name in _BASIC_DETAILS}
    power_source = cached.get("power_source")
    endpoints = tuple(
        EndpointDetails(
            endpoint_id=int(endpoint_id),
            profile_id=None if endpoint.profile_id is None else int(endpoint.profile_id),
            device_type=None if endpoint.device_type is None else int(endpoint.device_type),
            input_clusters=tuple(int(c) for c in endpoint.in_clusters),
            output_clusters=tuple(int(c) for c in endpoint.out_clusters),
        )
        for endpoint_id, endpoint in sorted(device.endpoints.items())
        if endpoint_id != 0
    )
    return DeviceDetails(
        ieee=ieee_string(device.ieee),
        nwk=int(device.nwk),
        logical_type=logical_type,
        manufacturer=_text(device.manufacturer),
        model_id=_text(device.model),
        power_source=None if power_source is None else int(power_source) & 0x7F,
        date_code=_text(cached.get("date_code")),
        software_build_id=_text(cached.get("sw_build_id")),
        interviewed=bool(device.is_initialized),
        interviewing=bool(getattr(device, "initializing", False) or getattr(device, "reinterviewing", False)),
        endpoints=endpoints,
    )


class _ZigpyListener:
    """zigpy's application listener; each call becomes one event. zigpy logs listener exceptions
    only at DEBUG, so every body is guarded and logged at ERROR."""

    def __init__(self, radio: Radio, app: Any) -> None:
        self._radio = radio
        self._app = app

    def _put(self, event: ev.RadioEvent) -> None:
        self._radio.events.put_nowait(event)

    def device_joined(self, device: Any) -> None:
        try:
            ieee = ieee_string(device.ieee)
            self._put(ev.DeviceJoined(ieee=ieee, nwk=int(device.nwk)))
            self._put(ev.DeviceInterviewStarted(ieee=ieee))
        except Exception:
            _LOGGER.exception("Handling a device join failed")

    def device_initialized(self, device: Any) -> None:
        try:
            if device.ieee == self._app.state.node_info.ieee:
                return
            self._radio._subscribe(device)
            self._put(
                ev.DeviceInterviewed(
                    ieee=ieee_string(device.ieee), model_id=device.model, manufacturer=device.manufacturer
                )
            )
        except Exception:
            _LOGGER.exception("Handling a finished interview failed")

    def device_init_failure(self, device: Any) -> None:
        try:
            self._put(ev.DeviceInterviewFailed(ieee=ieee_string(device.ieee), reason="interview failed"))
        except Exception:
            _LOGGER.exception("Handling a failed interview failed")

    def device_left(self, device: Any) -> None:
        try:
            self._put(ev.DeviceLeft(ieee=ieee_string(device.ieee)))
        except Exception:
            _LOGGER.exception("Handling a device leave failed")

    device_removed = device_left

    def handle_message(  # noqa: PLR0917 - zigpy's listener signature
        self, device: Any, profile: int, cluster: int, src_ep: int, dst_ep: int, message: bytes
    ) -> None:
        try:
            self._put(ev.FrameReceived(ieee=ieee_string(device.ieee), linkquality=device.lqi))
        except Exception:
            _LOGGER.exception("Handling a received frame failed")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._radio.state != "running" or self._radio._app is not self._app:
            # A start or re-initialisation under way fails on its own and says why.
            _LOGGER.debug("Connection lost while the radio is %s: %r", self._radio.state, exc)
            return
        detection = self._radio._detection
        rebooted = None if detection is None else detection.lost_means_reset(exc)
        if rebooted is not None:
            self._radio.restart(rebooted)
            return
        if exc is None:
            reason = "the connection to the adapter was closed"
        elif isinstance(exc, TimeoutError):
            # zigpy's watchdog pings the coordinator every 30 s and gives up on a missing answer.
            reason = "the coordinator stopped answering (zigpy's watchdog ping timed out)"
        else:
            reason = describe_failure(exc)
        self._radio._set_state("lost", f"the adapter is lost: {reason}")
        self._put(ev.RadioLost(reason=reason))


class _AnnounceListener:
    """Device-level ZDO listener: a known device announcing itself again (e.g. after power loss)."""

    def __init__(self, radio: Radio) -> None:
        self._radio = radio

    def device_announce(self, device: Any) -> None:
        try:
            self._radio.events.put_nowait(
                ev.DeviceAnnounced(ieee=ieee_string(device.ieee), nwk=int(device.nwk))
            )
        except Exception:
            _LOGGER.exception("Handling a device announcement failed")
