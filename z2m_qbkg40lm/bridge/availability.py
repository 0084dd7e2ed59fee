"""<base>/<friendly_name>/availability: online/offline, with active checks of mains devices.

Every device this daemon serves is a mains-powered router, so every device is "active" in
Zigbee2MQTT's terms: any frame from it means online; after `availability.active.timeout`
minutes of silence it is pinged (a read of Basic 0x0004, one frame each way), once more after
`retry_delay` seconds, and declared offline when neither ping is answered. An offline device
keeps being pinged (with back-off) and is online again at the first frame it sends.

The schedule is the pure `AvailabilityTracker`; the `Availability` extension feeds it radio
events, runs the pings one at a time in a single task and publishes the result.

At the first connection it also clears the retained availability messages of names no device has
any more (left behind when the daemon was killed in the middle of a rename or a removal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from z2m_qbkg40lm import strict_json
from z2m_qbkg40lm.bridge.bridge import to_json
from z2m_qbkg40lm.bridge.extension import Context, Extension
from z2m_qbkg40lm.config import ActiveAvailabilityConfig, Config, DeviceConfig
from z2m_qbkg40lm.devices.definition import ReadAttributes
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError

_LOGGER = logging.getLogger(__name__)

State = Literal["online", "offline"]

# Basic cluster, attribute 0x0004 (manufacturer name): every Zigbee device answers it, one frame.
PING = (ReadAttributes(endpoint=1, cluster_id=0x0000, attribute_ids=(0x0004,)),)
PING_ATTEMPTS = 2
BACKOFF_STEP = 1.5
MAX_BACKOFF = 6.0
"""The wait between checks of an offline device grows to at most 6 x the timeout (1 h by default)."""

NAME_LEVELS = 5
"""Stale availability is looked for under friendly names of up to this many topic levels."""

# Events that prove the device is alive (every received frame also yields a FrameReceived).
_ALIVE_EVENTS = (ev.FrameReceived, ev.AttributeReceived, ev.DeviceAnnounced, ev.DeviceJoined)


def availability_enabled(config: Config, device: DeviceConfig) -> bool:
    """Whether a device has an availability topic: its own `availability` option, else the global one."""
    return device.availability if device.availability is not None else config.availability.enabled


def availability_topic(base_topic: str, friendly_name: str) -> str:
    """The device's availability topic."""
    return f"{base_topic}/{friendly_name}/availability"


def availability_payload(state: State) -> str:
    """Zigbee2MQTT 2.x payload: `{"state":"online"}` / `{"state":"offline"}`."""
    return to_json({"state": state})


def stale_filters(base_topic: str) -> list[str]:
    """The filters that reach every availability topic of names of up to NAME_LEVELS levels.

    One per depth rather than `base/#`, which would also bring every retained state message.
    """
    return [f"{base_topic}/{'+/' * levels}availability" for levels in range(1, NAME_LEVELS + 1)]


def stale_names(base_topic: str, retained: Iterable[tuple[str, bytes]], keep: set[str]) -> list[str]:
    """The names, other than those in `keep`, whose retained message is our availability.

    Only what this daemon publishes qualifies: `base/<name>/availability` whose payload is exactly
    the JSON `{"state": "online"|"offline"}`; the bridge's own topics never do.
    """
    prefix, suffix = f"{base_topic}/", "/availability"
    names = []
    for topic, payload in retained:
        name = topic.removeprefix(prefix).removesuffix(suffix)
        if len(name) + len(prefix) + len(suffix) != len(topic) or not name:
            continue
        if name in keep or name == "bridge" or name.startswith("bridge/"):
            continue
        try:
            # Anyone may have retained a message there: read it as strictly as a request.
            value = strict_json.loads(payload.decode("utf-8"))
        except ValueError:  # not UTF-8, not JSON, or refused (too deep, NaN)
            continue
        if isinstance(value, dict) and value.keys() == {"state"} and value["state"] in ("online", "offline"):
            names.append(name)
    return sorted(names)


@dataclass
class _Tracked:
    state: State | None = None
    next_check: float = 0.0
    factor: float = 1.0
    paused: bool = False
    last_frame: float | None = None


class AvailabilityTracker:
    """When each device is due for a ping and what its state is; no I/O, times in seconds.

    A device starts in an unknown state and is due at once. A frame (or an answered ping) makes
    it online and due `timeout + jitter` later; a check that failed makes it offline and due
    again after `timeout x factor`, the factor growing by 1.5 per failed check with back-off.
    """

    def __init__(
        self,
        settings: ActiveAvailabilityConfig,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._timeout = settings.timeout * 60.0
        self._max_jitter = settings.max_jitter / 1000.0
        self._backoff = settings.backoff
        self._pause_above = settings.pause_on_backoff_gt
        self._jitter = jitter
        self._devices: dict[str, _Tracked] = {}

    def __contains__(self, ieee: object) -> bool:
        return ieee in self._devices

    def devices(self) -> list[str]:
        """Every tracked device."""
        return list(self._devices)

    def state(self, ieee: str) -> State | None:
        """The device's state, None while it has not been checked."""
        tracked = self._devices.get(ieee)
        return None if tracked is None else tracked.state

    def last_frame(self, ieee: str) -> float | None:
        """When the device was last heard from (None: not since tracking began)."""
        tracked = self._devices.get(ieee)
        return None if tracked is None else tracked.last_frame

    def add(self, ieee: str, now: float) -> None:
        """Track a device whose state is unknown: it is due for a check at once."""
        self._devices.setdefault(ieee, _Tracked(next_check=now))

    def forget(self, ieee: str) -> None:
        """Stop tracking a device."""
        self._devices.pop(ieee, None)

    def alive(self, ieee: str, now: float) -> bool:
        """The device was heard from; True when that changed its state to online."""
        tracked = self._devices.setdefault(ieee, _Tracked())
        changed = tracked.state != "online"
        tracked.state = "online"
        tracked.last_frame = now
        tracked.factor = 1.0
        tracked.paused = False
        tracked.next_check = now + self._timeout + self._max_jitter * self._jitter()
        return changed

    def check_failed(self, ieee: str, now: float) -> bool:
        """A check found the device silent; True when that changed its state to offline."""
        tracked = self._devices.setdefault(ieee, _Tracked())
        changed = tracked.state != "offline"
        if not changed and self._backoff:
            tracked.factor = min(tracked.factor * BACKOFF_STEP, MAX_BACKOFF)
        tracked.state = "offline"
        tracked.paused = bool(self._pause_above) and tracked.factor > self._pause_above
        tracked.next_check = now + self._timeout * tracked.factor + self._max_jitter * self._jitter()
        return changed

    def due(self, now: float) -> list[str]:
        """Devices whose check is due, the most overdue first."""
        ready = [
            (t.next_check, ieee) for ieee, t in self._devices.items() if not t.paused and t.next_check <= now
        ]
        return [ieee for _, ieee in sorted(ready)]

    def next_due(self) -> float | None:
        """When the next check is due, None when nothing is scheduled."""
        times = [t.next_check for t in self._devices.values() if not t.paused]
        return min(times) if times else None


class Availability(Extension):
    """Publishes `<base>/<FN>/availability` and pings silent devices."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._config = context.config
        self._base = context.config.mqtt.base_topic
        self._settings = context.config.availability.active
        self._tracker = AvailabilityTracker(self._settings)
        # Where our retained message for each device is (its name when published), to move or clear it.
        self._retained: dict[str, str] = {}
        # One publish, move or clear per device at a time: the check loop, radio events and renames
        # all publish, and each must find `_retained` as the previous one left it.
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stale_cleared = False
        self._clearing: asyncio.Task[None] | None = None

    # --- which devices ---------------------------------------------------------------------------

    def enabled_for(self, ieee: str) -> bool:
        """Whether the device has an availability topic."""
        return availability_enabled(self._config, self.context.bridge.device_config(ieee))

    def state_of(self, ieee: str) -> State | None:
        """The device's current availability, None while unknown."""
        return self._tracker.state(ieee)

    def _track_all(self) -> None:
        now = asyncio.get_running_loop().time()
        for device in self.context.radio.devices():
            if self.enabled_for(device.ieee) and device.ieee not in self._tracker:
                self._tracker.add(device.ieee, now)
                self._wake.set()

    # --- hooks -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Track every device with availability on; each is checked at once (the state is unknown)."""
        self._track_all()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="availability checks")

    async def stop(self) -> None:
        """Stop the checks (and a clearing of stale messages still running)."""
        for task in (self._task, self._clearing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._clearing = None

    async def on_connected(self) -> None:
        """After every (re)connect: every known availability again (retained messages may be lost).

        After the first, stale availability of names no device has is cleared (in a task: the
        messages are read over a connection of their own, which must not hold up this one's set-up).
        """
        self._track_all()
        await self.republish()
        if not self._stale_cleared and (self._clearing is None or self._clearing.done()):
            self._clearing = asyncio.get_running_loop().create_task(
                self._clear_stale_logged(), name="availability: clear stale"
            )

    async def _clear_stale_logged(self) -> None:
        try:
            await self._clear_stale()
        except Exception:
            # Nobody awaits this task: its failure must still be seen.
            _LOGGER.exception("Clearing stale availability messages failed")

    def _devices_by_name(self) -> dict[str, str]:
        """Every device's topic names (friendly name and IEEE address), to its IEEE address."""
        bridge = self.context.bridge
        names = {ieee: ieee for ieee in bridge.settings}
        names.update((settings.friendly_name, ieee) for ieee, settings in bridge.settings.items())
        for device in self.context.radio.devices():
            names.update({device.ieee: device.ieee, bridge.friendly_name(device.ieee): device.ieee})
        return names

    async def _clear_stale(self) -> None:
        """Clear our retained availability where it is stale.

        Of a name no device has: `base/<name>/availability` and `base/<name>` (that name's state).
        Of a device whose availability is now off: its availability message only.
        """
        retained = await self.context.mqtt.read_retained(stale_filters(self._base))
        if retained is None:
            return  # warned; tried again at the next connection
        for name in stale_names(self._base, retained, set()):
            # Looked up now, not before the scan: a rename may have given a device this name meanwhile.
            ieee = self._devices_by_name().get(name)
            if ieee is None:
                _LOGGER.info(
                    "Clearing the retained availability and state of '%s': no device has that name", name
                )
                await self._send(availability_topic(self._base, name), "")
                await self._send(f"{self._base}/{name}", "")
            elif not self.enabled_for(ieee) and ieee not in self._retained:
                _LOGGER.info("Clearing the retained availability of '%s': its availability is off", name)
                await self._send(availability_topic(self._base, name), "")
        self._stale_cleared = True

    async def republish(self) -> None:
        """Publish the availability of every device whose state is known."""
        for ieee in self._tracker.devices():
            state = self._tracker.state(ieee)
            if state is not None:
                await self._publish(ieee, state)

    async def on_radio_event(self, event: ev.RadioEvent) -> None:
        """Any frame means online; a device that left is forgotten."""
        if isinstance(event, _ALIVE_EVENTS):
            await self._alive(event.ieee)
        elif isinstance(event, ev.DeviceLeft):
            await self._drop(event.ieee)

    async def on_device_options_changed(self, ieee: str) -> None:
        """Availability turned on or off for this device: publish or clear its message now."""
        if self.enabled_for(ieee):
            state = self._tracker.state(ieee)
            if state is not None:
                await self._publish(ieee, state)
            else:
                # Not tracked yet: checked at once, so a quiet device gets its topic now.
                self._track_all()
        else:
            async with self._lock(ieee):
                await self._clear_retained(ieee)

    async def on_device_renamed(
        self, ieee: str, old_name: str, new_name: str, homeassistant_rename: bool = False
    ) -> None:
        """Move the retained message: empty on the old topic, the state on the new one.

        Where it is comes from `_retained`, not from the arguments: with renames back to back, the
        message may still be under a name older than `old_name`.
        """
        async with self._lock(ieee):
            if self._retained.get(ieee, self._name(ieee)) != self._name(ieee):
                await self._clear_retained(ieee)
            state = self._tracker.state(ieee)
            if state is not None and self.enabled_for(ieee):
                await self._publish_unlocked(ieee, state)

    async def on_device_removed(self, ieee: str, name: str) -> None:
        """Clear the retained message of a removed device."""
        async with self._lock(ieee):
            self._tracker.forget(ieee)
            where = self._retained.pop(ieee, name)
            await self._send(availability_topic(self._base, where), "")
            if where != name:
                await self._send(availability_topic(self._base, name), "")

    # --- checks ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for ieee in self._tracker.due(loop.time()):
                try:
                    await self._check(ieee)
                except Exception:
                    # One device's failure must not end the checks of the others.
                    _LOGGER.exception("Availability check of '%s' failed", self._name(ieee))
                    self._tracker.check_failed(ieee, loop.time())
            self._wake.clear()
            next_due = self._tracker.next_due()
            timeout = None if next_due is None else max(0.0, next_due - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _check(self, ieee: str) -> None:
        loop = asyncio.get_running_loop()
        if self.context.radio.device(ieee) is None or not self.enabled_for(ieee):
            await self._drop(ieee)
            return
        started = loop.time()
        name = self._name(ieee)
        problem = ""
        for attempt in range(PING_ATTEMPTS):
            if attempt:
                await asyncio.sleep(self._settings.retry_delay)
                heard = self._tracker.last_frame(ieee)
                if heard is not None and heard >= started:
                    return  # it spoke up meanwhile: already online and rescheduled
            _LOGGER.debug("Pinging '%s' (attempt %d)", name, attempt + 1)
            try:
                await self.context.radio.execute(ieee, PING)
            except DeviceCommandError as exc:
                problem = str(exc)
                continue
            await self._alive(ieee)
            return
        if self._tracker.check_failed(ieee, loop.time()):
            _LOGGER.warning("Device '%s' did not answer %d pings (%s): offline", name, PING_ATTEMPTS, problem)
            await self._publish(ieee, "offline")

    async def _alive(self, ieee: str) -> None:
        new = ieee not in self._tracker
        # A frame from the coordinator itself (zigpy-znp reports some as the coordinator's) gives no
        # availability topic: Zigbee2MQTT has none for it, and its name is no device's.
        if new and (not self.enabled_for(ieee) or self.context.radio.device(ieee) is None):
            return
        changed = self._tracker.alive(ieee, asyncio.get_running_loop().time())
        if new:
            self._wake.set()  # the check loop may be waiting with no deadline at all
        if changed:
            _LOGGER.info("Device '%s' is online", self._name(ieee))
            await self._publish(ieee, "online")

    async def _drop(self, ieee: str) -> None:
        """Stop tracking a device and clear its retained message."""
        async with self._lock(ieee):
            self._tracker.forget(ieee)
            await self._clear_retained(ieee)

    async def _clear_retained(self, ieee: str) -> None:
        """Clear the device's retained message where it is; call with the device's lock held."""
        name = self._retained.pop(ieee, None)
        if name is not None:
            await self._send(availability_topic(self._base, name), "")

    # --- MQTT ------------------------------------------------------------------------------------

    def _name(self, ieee: str) -> str:
        return self.context.bridge.friendly_name(ieee)

    def _lock(self, ieee: str) -> asyncio.Lock:
        return self._locks.setdefault(ieee, asyncio.Lock())

    async def _publish(self, ieee: str, state: State) -> None:
        async with self._lock(ieee):
            await self._publish_unlocked(ieee, state)

    async def _publish_unlocked(self, ieee: str, state: State) -> None:
        name = self._name(ieee)
        where = self._retained.get(ieee)
        if where is not None and where != name:
            # Renamed since the last message: the old one must not stay behind.
            await self._clear_retained(ieee)
        if await self._send(availability_topic(self._base, name), availability_payload(state)):
            self._retained[ieee] = name

    async def _send(self, topic: str, payload: str) -> bool:
        """Retained, QoS 1; while disconnected nothing is sent (on_connected publishes it all)."""
        if not self.context.mqtt.can_publish:
            return False
        return await self.context.mqtt.publish(topic, payload, retain=True, qos=1)
