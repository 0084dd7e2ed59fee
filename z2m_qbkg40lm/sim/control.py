"""Scripting the emulator while it runs: the switches' physical events, joins, and faults.

`EmulatorControl` is the Python API (tests use it directly); `MqttControl` serves it on
`<base>/bridge/request/simulation/<path>` with the daemon's request/response conventions
(`{"data": …, "status": "ok"}` or `{"data": {}, "error": "…", "status": "error"}`, the request's
`transaction` echoed on `<base>/bridge/response/simulation/<path>`), so scripts written for the
virtual adapter work unchanged. Switches are named by IEEE address, or by the friendly names of
the daemon's configuration file when the emulator was given one. The same API serves every
emulated chip (`sim.emulated_chip.EmulatedChip`); what differs between them (the names of a
failed delivery's status, the serial line's own faults) the chip says.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from z2m_qbkg40lm import strict_json
from z2m_qbkg40lm.config import ConfigError, MqttConfig, load_config
from z2m_qbkg40lm.mqtt.client import MqttClient, default_client_id
from z2m_qbkg40lm.sim import inspection
from z2m_qbkg40lm.sim.emulated_chip import EmulatedChip
from z2m_qbkg40lm.sim.firmware_settings import FirmwareSettingError, firmware_request
from z2m_qbkg40lm.sim.inspection import AttributeReport
from z2m_qbkg40lm.sim.switch import MODEL_ID
from z2m_qbkg40lm.sim.virtual_radio import SimulationError
from z2m_qbkg40lm.sim.world import Node

LOGGER = logging.getLogger(__name__)

SIMULATION_PREFIX: Final = "simulation/"
MAX_CONFIRM_DELAY_MS: Final = 60_000
MAX_SPOILED_FRAMES: Final = 100


class FriendlyNames:
    """IEEE address -> friendly name from the daemon's configuration file, re-read when it changes."""

    def __init__(self, config: Path | None) -> None:
        self._path = config
        self._stamp: float | None = None
        self._names: dict[str, str] = {}

    def names(self) -> dict[str, str]:
        """`{"0x54ef44…": "hall_switch"}` as the file says now."""
        if self._path is None:
            return {}
        try:
            stamp = self._path.stat().st_mtime
        except OSError as exc:
            LOGGER.warning("Cannot read %s for friendly names: %s", self._path, exc.strerror)
            return self._names
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                devices = load_config(self._path).config.devices
            except ConfigError as exc:
                LOGGER.warning(
                    "Friendly names not updated, %s is invalid: %s", self._path, "; ".join(exc.problems)
                )
            else:
                self._names = {_canonical(ieee): device.friendly_name for ieee, device in devices.items()}
        return self._names


def _canonical(ieee: str) -> str:
    """`0x54ef44…`, whichever of the usual spellings it came in."""
    return "0x" + ieee.strip().lower().removeprefix("0x").replace(":", "")


class EmulatorControl:
    """What a user does to the emulator's world: presses, heartbeats, joins, leaves, faults.

    Each method raises SimulationError with a message saying what would work instead.
    """

    def __init__(self, chip: EmulatedChip, names: FriendlyNames | None = None) -> None:
        self._chip = chip
        self._world = chip.world
        self._names = names or FriendlyNames(None)

    # --- the switches ----------------------------------------------------------------------------

    def switches(self) -> list[dict[str, Any]]:
        """Every simulated switch: addresses, network membership and firmware state."""
        names = self._names.names()
        world = self._world
        return [
            {
                "ieee": node.ieee_text,
                "friendly_name": names.get(node.ieee_text, node.ieee_text),
                "nwk": node.switch.nwk,
                "model": MODEL_ID,
                "joined": world.online(node),
                "pairing": node.pairing,
                "relay": node.switch.relay,
                "operation_mode": node.switch.operation_mode_name,
                "power_outage_memory": node.switch.power_outage_memory,
                "flip_indicator_light": node.switch.flip_indicator_light,
                "mode": node.switch.mode,
                "power_outages": node.switch.power_outages,
                "temperature": node.switch.temperature,
                "firmware_version": node.switch.firmware_version,
                "responsive": node.switch.responsive,
                "linkquality": world.linkquality,
            }
            for node in world.nodes.values()
        ]

    def node(self, name: str) -> Node:
        """A switch by IEEE address (`0x54ef44…`, `54:ef:44:…`) or configured friendly name."""
        names = self._names.names()
        by_name = {friendly: ieee for ieee, friendly in names.items()}
        wanted = by_name.get(name, _canonical(name))
        for node in self._world.nodes.values():
            if node.ieee_text == wanted:
                return node
        known = ", ".join(names.get(node.ieee_text, node.ieee_text) for node in self._world.nodes.values())
        raise SimulationError(
            f"no simulated switch '{name}'; "
            + (f"the simulated switches are {known}" if known else "there are none")
        )

    def _reachable(self, name: str) -> Node:
        node = self.node(name)
        if not self._chip.network_up:
            raise SimulationError(
                "the coordinator's network is not running: start the daemon (or another host) first"
            )
        if not self._world.online(node):
            raise SimulationError(
                f"switch {node.ieee_text} is not on the network: open permit join, then simulation/join it"
            )
        return node

    def press(self, name: str, kind: str = "single") -> str:
        """Press the rocker: `single`, `double`, `hold`, `triple` or `release`; returns the IEEE."""
        node = self._reachable(name)
        try:
            frames = node.switch.press(kind)
        except ValueError as exc:
            raise SimulationError(str(exc)) from exc
        LOGGER.info("Switch %s: %s press", node.ieee_text, kind)
        self._world.emit(node, frames)
        return node.ieee_text

    def heartbeat(self, name: str, temperature: float | None = None) -> str:
        """Send the FCC0 heartbeat now, optionally with a new chip temperature (°C)."""
        node = self._reachable(name)
        try:
            frames = node.switch.heartbeat(temperature)
        except ValueError as exc:
            raise SimulationError(str(exc)) from exc
        LOGGER.info("Switch %s: heartbeat", node.ieee_text)
        self._world.emit(node, frames)
        return node.ieee_text

    def power_cycle(self, name: str) -> str:
        """Cut mains power and restore it: the switch reboots, announces itself and reports."""
        node = self._reachable(name)
        LOGGER.info("Switch %s: power cycle", node.ieee_text)
        self._world.emit(node, node.switch.power_cycle())
        return node.ieee_text

    def revert_settings(self, name: str) -> str:
        """The switch's firmware silently forgets its settings (factory defaults, no report)."""
        node = self.node(name)
        node.switch.forget_settings()
        LOGGER.info("Switch %s silently reverted its settings to the factory defaults", node.ieee_text)
        self._chip.save()
        return node.ieee_text

    def set_responsive(self, name: str, responsive: bool) -> str:
        """Make a switch silent (it answers and reports nothing) or bring it back."""
        node = self.node(name)
        node.switch.responsive = responsive
        LOGGER.info("Switch %s is now %s", node.ieee_text, "responsive" if responsive else "silent")
        self._chip.save()
        return node.ieee_text

    def join(self, name: str | None = None) -> str:
        """A switch joins: the named one, else one in pairing mode, else a new one. Returns its IEEE."""
        world = self._world
        if not world.permit_join_open:
            raise SimulationError(
                "permit join is closed: open the network for joining first, then join again"
            )
        node: Node
        if name is not None:
            node = self.node(name)
            if world.online(node):
                raise SimulationError(f"switch {node.ieee_text} is already on the network")
        else:
            waiting = [each for each in world.nodes.values() if each.pairing and not world.online(each)]
            node = waiting[0] if waiting else world.add_switch(pairing=False)
        world.join(node)
        return node.ieee_text

    def leave(self, name: str) -> str:
        """The switch leaves the network (as after a factory reset on the device)."""
        node = self._reachable(name)
        self._world.leave(node)
        return node.ieee_text

    def inject(self, name: str, report: AttributeReport) -> dict[str, Any]:
        """The switch sends an attribute report of the caller's making (sim/inspection.py)."""
        node = self._reachable(name)
        frames, answer = inspection.inject(node.switch, report)
        LOGGER.info("Switch %s: injected report on cluster 0x%04X", node.ieee_text, report.cluster_id)
        self._world.emit(node, frames)
        return {"id": node.ieee_text, **answer}

    def received_frames(self, name: str, cluster_id: int | None = None) -> dict[str, Any]:
        """The ZCL frames the switch received since the last call, decoded (sim/inspection.py)."""
        node = self.node(name)
        return {"id": node.ieee_text, **inspection.take_frames(node.switch, cluster_id)}

    def firmware(
        self, name: str, changes: dict[str, Any] | None = None, *, send_prevent_reset: bool = False
    ) -> dict[str, Any]:
        """Read or change what the switch's firmware does (sim/firmware_settings.py), saved at once.

        Returns `id`, all `firmware` settings and the `prevent_reset` cycle; `send_prevent_reset`
        makes the switch send its Basic 0xFFF0 report now (it must be on the running network).
        """
        node = self._reachable(name) if send_prevent_reset else self.node(name)
        try:
            result = node.switch.set_firmware(changes or {}, send_prevent_reset=send_prevent_reset)
        except ValueError as exc:
            raise SimulationError(f"switch {node.ieee_text}: {exc}") from exc
        if changes:
            LOGGER.info("Switch %s firmware settings: %s", node.ieee_text, result["firmware"])
        self._chip.save()
        return {"id": node.ieee_text, **result}

    # --- faults ------------------------------------------------------------------------------------

    def drop_link(self) -> bool:
        """Cut the serial line; False when no host was connected."""
        return self._chip.drop_link()

    def mute(self, muted: bool) -> None:
        """The coordinator hangs (answers nothing, sends nothing) or comes back."""
        self._chip.faults.muted = muted
        LOGGER.warning("Fault: the coordinator is %s", "mute" if muted else "answering again")

    def delay_confirms(self, milliseconds: int) -> None:
        """Hold every delivery confirmation back by this long (0: no delay)."""
        if not 0 <= milliseconds <= MAX_CONFIRM_DELAY_MS:
            raise SimulationError(f"ms must be 0 to {MAX_CONFIRM_DELAY_MS}, not {milliseconds}")
        self._chip.faults.confirm_delay = milliseconds / 1000
        LOGGER.warning("Fault: data confirms delayed by %d ms", milliseconds)

    def fail_confirms(self, status: str | int | None) -> str | None:
        """Unicast deliveries fail with this status of the chip's (a name or number); None: succeed again."""
        if status is None:
            self._chip.faults.confirm_status = None
            LOGGER.warning("Fault cleared: data confirms succeed again")
            return None
        try:
            value = self._chip.failure_status(status)
        except ValueError as exc:
            raise SimulationError(str(exc)) from None
        self._chip.faults.confirm_status = value
        LOGGER.warning("Fault: unicast data confirms fail with %s", value.name)
        return str(value.name)

    def spoil_line(self, *, corrupt: int, lose: int, direction: str) -> None:
        """The serial line corrupts or loses the next `corrupt`/`lose` frames in one direction."""
        if direction not in ("to_host", "from_host"):
            raise SimulationError(f"direction must be to_host or from_host, not {direction!r}")
        if not (0 <= corrupt <= MAX_SPOILED_FRAMES and 0 <= lose <= MAX_SPOILED_FRAMES):
            raise SimulationError(f"corrupt and lose must be 0 to {MAX_SPOILED_FRAMES}")
        if direction == "from_host" and corrupt:
            raise SimulationError("frames from the host can be lost, not corrupted (the chip would NAK them)")
        try:
            if direction == "to_host":
                self._chip.spoil_frames(corrupt_to_host=corrupt, lose_to_host=lose)
            else:
                self._chip.spoil_frames(lose_from_host=lose)
        except ValueError as exc:
            raise SimulationError(str(exc)) from None
        LOGGER.warning(
            "Fault: the line spoils the next frames %s: %d corrupted, %d lost", direction, corrupt, lose
        )

    def reset(self) -> None:
        """The coordinator reboots on its own and tells its host: the host's registrations are lost."""
        self._chip.spontaneous_reset()

    def clear_faults(self) -> None:
        """Back to normal: answering, confirms on time and successful."""
        self._chip.faults.muted = False
        self._chip.faults.confirm_delay = 0.0
        self._chip.faults.confirm_status = None
        LOGGER.warning("Faults cleared")


Handler = Callable[[Any], dict[str, Any]]


class MqttControl:
    """`EmulatorControl` on MQTT, with the daemon's bridge-request conventions."""

    def __init__(self, control: EmulatorControl, config: MqttConfig, base_topic: str | None = None) -> None:
        self._control = control
        self._base = base_topic or config.base_topic
        # Never the daemon's client id (taken from the same configuration file): two clients with one
        # id throw each other off the broker in turn. And no kept session: a simulation request sent
        # while the emulator is away is of no use later.
        own = {
            "client_id": default_client_id(self._base, prefix="z2m_emulator_"),
            "session_expiry_interval": 0,
        }
        self.client = MqttClient(
            config.model_copy(update=own),
            will_topic=f"{self._base}/bridge/emulator",
            will_payload=_to_json({"state": "offline"}),
            on_connected=self._on_connected,
            on_message=self._on_message,
        )
        self.client.subscribe(f"{self._base}/bridge/request/{SIMULATION_PREFIX}#")
        self._handlers: dict[str, Handler] = {
            "switches": lambda _message: {"switches": control.switches()},
            "press": self._press,
            "heartbeat": self._heartbeat,
            "power_cycle": lambda message: {"id": control.power_cycle(_switch(message))},
            "responsive": self._responsive,
            "revert_settings": lambda message: {"id": control.revert_settings(_switch(message))},
            "join": self._join,
            "leave": lambda message: {"id": control.leave(_switch(message))},
            "inject": self._inject,
            "frames": self._frames,
            "firmware": self._firmware,
            "fault/drop_link": lambda _message: {"dropped": control.drop_link()},
            "fault/mute": self._mute,
            "fault/delay_confirms": self._delay_confirms,
            "fault/fail_confirms": self._fail_confirms,
            "fault/reset": self._reset,
            "fault/line": self._line,
            "fault/clear": self._clear,
        }

    async def run(self) -> None:
        """Serve until cancelled or `stop()`."""
        await self.client.run()

    async def stop(self) -> None:
        """Say offline and disconnect."""
        await self.client.stop([(f"{self._base}/bridge/emulator", _to_json({"state": "offline"}), True, 1)])

    async def _on_connected(self) -> None:
        await self.client.publish(
            f"{self._base}/bridge/emulator", _to_json({"state": "online"}), retain=True, qos=1
        )

    async def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        prefix = f"{self._base}/bridge/request/"
        if not topic.startswith(prefix + SIMULATION_PREFIX):
            return
        path = topic.removeprefix(prefix)
        if retain:
            LOGGER.warning("Ignoring retained request on %s (it would replay on every reconnect)", topic)
            return
        response: dict[str, Any]
        message: Any = None
        try:
            message = _payload(payload)
            handler = self._handlers.get(path.removeprefix(SIMULATION_PREFIX).lower())
            if handler is None:
                known = ", ".join(SIMULATION_PREFIX + name for name in sorted(self._handlers))
                raise SimulationError(f"unknown request '{path}' (the emulator serves {known})")
            response = {"data": handler(message), "status": "ok"}
        except SimulationError as exc:
            LOGGER.error("Request '%s%s' failed with error: '%s'", prefix, path, exc)
            response = {"data": {}, "error": str(exc), "status": "error"}
        if isinstance(message, dict) and "transaction" in message:
            response["transaction"] = message["transaction"]
        await self.client.publish(f"{self._base}/bridge/response/{path}", _to_json(response))

    def _press(self, message: Any) -> dict[str, Any]:
        kind = message.get("kind", "single") if isinstance(message, dict) else "single"
        if not isinstance(kind, str):
            raise SimulationError(
                "Invalid payload: kind must be one of single, double, hold, triple, release"
            )
        return {"id": self._control.press(_switch(message), kind), "kind": kind}

    def _heartbeat(self, message: Any) -> dict[str, Any]:
        temperature = message.get("temperature") if isinstance(message, dict) else None
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, int | float)
        ):
            raise SimulationError("Invalid payload: temperature must be a number (°C)")
        return {"id": self._control.heartbeat(_switch(message), temperature), "temperature": temperature}

    def _responsive(self, message: Any) -> dict[str, Any]:
        responsive = message.get("responsive") if isinstance(message, dict) else None
        if not isinstance(responsive, bool):
            raise SimulationError('Invalid payload: expected {"id": …, "responsive": true|false}')
        return {"id": self._control.set_responsive(_switch(message), responsive), "responsive": responsive}

    def _join(self, message: Any) -> dict[str, Any]:
        name = message.get("id") if isinstance(message, dict) else None
        if name is not None and not isinstance(name, str):
            raise SimulationError('Invalid payload: expected {} or {"id": "<IEEE address>"}')
        return {"id": self._control.join(name)}

    def _inject(self, message: Any) -> dict[str, Any]:
        try:
            request = inspection.parse_inject(message)
        except inspection.InspectionError as exc:
            raise SimulationError(str(exc)) from None
        return self._control.inject(request.switch, request.report)

    def _frames(self, message: Any) -> dict[str, Any]:
        try:
            request = inspection.parse_frames(message)
        except inspection.InspectionError as exc:
            raise SimulationError(str(exc)) from None
        return self._control.received_frames(request.switch, request.cluster_id)

    def _firmware(self, message: Any) -> dict[str, Any]:
        name = _switch(message)
        try:
            changes, send_now = firmware_request(message)
        except FirmwareSettingError as exc:
            raise SimulationError(str(exc)) from None
        return self._control.firmware(name, changes, send_prevent_reset=send_now)

    def _mute(self, message: Any) -> dict[str, Any]:
        muted = message.get("mute", True) if isinstance(message, dict) else True
        if not isinstance(muted, bool):
            raise SimulationError('Invalid payload: expected {"mute": true|false}')
        self._control.mute(muted)
        return {"mute": muted}

    def _delay_confirms(self, message: Any) -> dict[str, Any]:
        milliseconds = message.get("ms") if isinstance(message, dict) else message
        if isinstance(milliseconds, bool) or not isinstance(milliseconds, int):
            raise SimulationError('Invalid payload: expected {"ms": 0..60000}')
        self._control.delay_confirms(milliseconds)
        return {"ms": milliseconds}

    def _line(self, message: Any) -> dict[str, Any]:
        if not isinstance(message, dict):
            raise SimulationError(
                'Invalid payload: expected {"corrupt": n, "lose": n, "direction": "to_host"}'
            )
        counts = {key: message.get(key, 0) for key in ("corrupt", "lose")}
        if any(isinstance(value, bool) or not isinstance(value, int) for value in counts.values()):
            raise SimulationError("Invalid payload: corrupt and lose must be whole numbers")
        direction = message.get("direction", "to_host")
        if not isinstance(direction, str):
            raise SimulationError("Invalid payload: direction must be to_host or from_host")
        self._control.spoil_line(corrupt=counts["corrupt"], lose=counts["lose"], direction=direction)
        return {**counts, "direction": direction}

    def _reset(self, message: Any) -> dict[str, Any]:
        self._control.reset()
        return {}

    def _clear(self, message: Any) -> dict[str, Any]:
        self._control.clear_faults()
        return {}

    def _fail_confirms(self, message: Any) -> dict[str, Any]:
        status = message.get("status") if isinstance(message, dict) else None
        if isinstance(status, bool) or not (status is None or isinstance(status, str | int)):
            raise SimulationError('Invalid payload: expected {"status": "MAC_NO_ACK"} or {"status": null}')
        return {"status": self._control.fail_confirms(status)}


def _switch(message: Any) -> str:
    if isinstance(message, str) and message:
        return message
    if isinstance(message, dict) and isinstance(message.get("id"), str):
        return str(message["id"])
    raise SimulationError('Invalid payload: expected {"id": "<IEEE address or friendly name>"}')


def _payload(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SimulationError("Invalid payload: not UTF-8") from None
    if not text.strip():
        # How a client clears a retained request; acting on it would drop the link, say.
        raise SimulationError(
            "empty payload: not a request (an empty message clears a retained one); send {} or the "
            "request's JSON object"
        )
    try:
        return strict_json.loads(text)
    except strict_json.RefusedJson as exc:
        raise SimulationError(f"Invalid payload: not standard JSON: {exc}") from None
    except ValueError:
        return text


def _to_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
