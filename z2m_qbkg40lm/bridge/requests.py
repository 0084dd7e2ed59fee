"""`<base>/bridge/request/<path>` -> `<base>/bridge/response/<path>`, Zigbee2MQTT's request API.

This module dispatches requests and serves `health_check` and the virtual adapter's `simulation/*`;
the extensions register the rest (the bridge API: `permit_join`, `options`, `device/...`).

Responses are `{"data": {...}, "status": "ok"}` or `{"data": {}, "error": "...", "status": "error"}`,
with the request's `transaction` echoed. An unknown path gets an error response that lists the known
ones (Zigbee2MQTT stays silent; a script waiting for an answer is better served by an error). An
empty payload is never a request: it is how a client clears a retained one, so the bridge ignores
it before it gets here; a blank one (spaces only) is answered with an error. Neither changes
anything (Zigbee2MQTT restarts on an empty `restart`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from z2m_qbkg40lm.bridge.bridge import Bridge, Publisher, to_json
from z2m_qbkg40lm.bridge.extension import RequestError, RequestHandler
from z2m_qbkg40lm.bridge.heartbeats_request import StreamError, parse_stream
from z2m_qbkg40lm.bridge.topics import EmptyRequest, PayloadError, request_payload

_LOGGER = logging.getLogger(__name__)

Handler = RequestHandler


class Requests:
    """The bridge request handlers."""

    def __init__(self, bridge: Bridge, publisher: Publisher, base_topic: str, radio: Any) -> None:
        self._bridge = bridge
        self._publisher = publisher
        self._base = base_topic
        self._radio = radio
        self._handlers: dict[str, Handler] = {
            "health_check": self._health_check,
            "simulation/switches": self._sim_switches,
            "simulation/press": self._sim_press,
            "simulation/heartbeat": self._sim_heartbeat,
            "simulation/heartbeats": self._sim_heartbeats,
            "simulation/power_cycle": self._sim_power_cycle,
            "simulation/responsive": self._sim_responsive,
            "simulation/join": self._sim_join,
            "simulation/inject": self._sim_inject,
            "simulation/frames": self._sim_frames,
            "simulation/firmware": self._sim_firmware,
        }

    def register(self, handlers: dict[str, Handler]) -> None:
        """Add request handlers (an extension's), by lower-case path."""
        self._handlers.update({path.lower(): handler for path, handler in handlers.items()})

    async def handle(self, path: str, payload: bytes) -> None:
        """Serve one request and publish its response."""
        if path.lower().startswith("simulation/") and self._radio.simulation is None:
            # With a hardware adapter (or the Z-Stack emulator, which serves these requests itself
            # on the same topics) the daemon leaves simulation requests alone.
            _LOGGER.debug("Ignoring '%s': the adapter is not virtual", path)
            return
        response: dict[str, Any]
        message: Any = None
        try:
            message = request_payload(payload)
            handler = self._handlers.get(path.lower())
            if handler is None:
                known = ", ".join(sorted(self._handlers))
                raise RequestError(f"unknown request '{path}' (known: {known})")
            response = {"data": await handler(message), "status": "ok"}
        except EmptyRequest as exc:
            # Clearing a retained request is not a mistake, but it must not act (a restart, say).
            _LOGGER.warning("Ignoring '%s/bridge/request/%s': %s", self._base, path, exc)
            response = {"data": {}, "error": str(exc), "status": "error"}
        except PayloadError as exc:
            _LOGGER.error("Request '%s/bridge/request/%s' failed with error: '%s'", self._base, path, exc)
            response = {"data": {}, "error": str(exc), "status": "error"}
            # Refused JSON (NaN, say) whose object still had an id: the sender can match the answer.
            if exc.transaction is not None:
                message = {"transaction": exc.transaction}
        except RequestError as exc:
            _LOGGER.error("Request '%s/bridge/request/%s' failed with error: '%s'", self._base, path, exc)
            response = {"data": {}, "error": str(exc), "status": "error"}
        except Exception as exc:
            # Not foreseen (a radio that stopped answering, a bug): the caller still gets an answer.
            reason = str(exc) or type(exc).__name__
            _LOGGER.exception(
                "Request '%s/bridge/request/%s' failed with error: '%s'", self._base, path, reason
            )
            response = {"data": {}, "error": reason, "status": "error"}
        if isinstance(message, dict) and "transaction" in message:
            response["transaction"] = message["transaction"]
        await self._publisher.publish(f"{self._base}/bridge/response/{path}", to_json(response))

    async def _health_check(self, message: Any) -> dict[str, Any]:
        # Zigbee2MQTT answers {"healthy": bool}; "reason" is added only when it is false.
        problem = await self._radio.coordinator_problem()
        if problem is not None:
            return {"healthy": False, "reason": problem}
        return {"healthy": True}

    # --- the virtual adapter's simulated physical events -------------------------------------

    def _simulation(self) -> Any:
        return self._radio.simulation

    def _switch_ieee(self, message: Any) -> str:
        if isinstance(message, str):
            name = message
        elif isinstance(message, dict) and isinstance(message.get("id"), str):
            name = message["id"]
        else:
            raise RequestError('Invalid payload: expected {"id": "<friendly name or IEEE address>"}')
        device = self._bridge.resolve(name)
        if device is None:
            raise RequestError(f"Device '{name}' does not exist")
        return device.ieee

    async def _call(self, coroutine: Awaitable[Any]) -> Any:
        try:
            return await coroutine
        except ValueError as exc:  # SimulationError
            raise RequestError(str(exc)) from None

    async def _sim_switches(self, message: Any) -> dict[str, Any]:
        switches = await self._call(self._simulation().switches())
        for switch in switches:
            switch["friendly_name"] = self._bridge.friendly_name(switch["ieee"])
        return {"switches": switches}

    async def _sim_press(self, message: Any) -> dict[str, Any]:
        ieee = self._switch_ieee(message)
        kind = message.get("kind", "single") if isinstance(message, dict) else "single"
        if not isinstance(kind, str):
            raise RequestError("Invalid payload: kind must be one of single, double, hold, triple, release")
        await self._call(self._simulation().press(ieee, kind))
        return {"id": ieee, "kind": kind}

    async def _sim_heartbeat(self, message: Any) -> dict[str, Any]:
        ieee = self._switch_ieee(message)
        temperature = message.get("temperature") if isinstance(message, dict) else None
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, int | float)
        ):
            raise RequestError("Invalid payload: temperature must be a number (°C)")
        await self._call(self._simulation().heartbeat(ieee, temperature))
        return {"id": ieee, "temperature": temperature}

    async def _sim_heartbeats(self, message: Any) -> dict[str, Any]:
        try:
            stream = parse_stream(message)
        except StreamError as exc:
            raise RequestError(str(exc)) from None
        ieees = None if stream.ids is None else [self._switch_ieee(name) for name in stream.ids]
        # Without a rate, each heartbeat waits until the daemon has published the one before.
        result: dict[str, Any] = await self._call(
            self._simulation().heartbeats(
                stream.count, stream.rate, ieees, settled=self._bridge.radio_settled
            )
        )
        return result

    async def _sim_power_cycle(self, message: Any) -> dict[str, Any]:
        ieee = self._switch_ieee(message)
        await self._call(self._simulation().power_cycle(ieee))
        return {"id": ieee}

    async def _sim_responsive(self, message: Any) -> dict[str, Any]:
        ieee = self._switch_ieee(message)
        responsive = message.get("responsive") if isinstance(message, dict) else None
        if not isinstance(responsive, bool):
            raise RequestError('Invalid payload: expected {"id": …, "responsive": true|false}')
        await self._call(self._simulation().set_responsive(ieee, responsive))
        return {"id": ieee, "responsive": responsive}

    async def _sim_firmware(self, message: Any) -> dict[str, Any]:
        ieee = self._switch_ieee(message)
        result: dict[str, Any] = await self._call(self._simulation().firmware_request(ieee, message))
        return result

    async def _sim_join(self, message: Any) -> dict[str, Any]:
        ieee = await self._call(self._simulation().join_new_switch())
        return {"id": ieee}

    def _named_switch(self, message: Any) -> str:
        # inject and frames name the switch by "id" or "ieee"; the simulation checks the rest.
        name = message.get("id", message.get("ieee")) if isinstance(message, dict) else message
        return self._switch_ieee(name)

    async def _sim_inject(self, message: Any) -> dict[str, Any]:
        ieee = self._named_switch(message)
        answer: dict[str, Any] = await self._call(self._simulation().inject(ieee, message))
        return answer

    async def _sim_frames(self, message: Any) -> dict[str, Any]:
        ieee = self._named_switch(message)
        answer: dict[str, Any] = await self._call(self._simulation().received_frames(ieee, message))
        return answer
