"""The EmberZNet network co-processor's command layer: EZSP commands in, responses and callbacks out.

The NCP speaks one protocol version, its firmware's: EZSP 13 (EmberZNet 7.4.4.0, the firmware of
the Home Assistant Connect ZBT-1 and the Sonoff ZBDongle-E as shipped) or EZSP 14 (EmberZNet
8.0.2.0, the 8.x release Zigbee2MQTT recommends for those sticks), chosen when it is made. The
host's first `version` command, in the legacy frame format, is answered with the NCP's own
version whatever the host asked for; the host then sends `version` again with that number (in
the extended format from version 8 on), and the two speak it from then on. Facts from Silicon
Labs' UG100 and the EmberZNet release notes (7.4.4.0: EZSP 13, 8.0.2.0: EZSP 14).

Commands are served by handlers the chip registers by name (`register`); a command nobody
serves gets the answer real firmware gives to a frame id it does not know: the `invalidCommand`
response with `ERROR_INVALID_FRAME_ID`, never silence. A handler returns its result as a tuple
in the reply's order, or as a dict by the reply's field names; statuses may be given as
`sl_Status` and are written in the type the protocol version uses (`EmberStatus` in EZSP 13).

Parameter and result layouts come from bellows's command tables (`bellows.ezsp.v13.commands`,
`v14.commands`), which mirror the EmberZNet headers; no other bellows code is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import bellows.types as bt
from bellows.ezsp.v13.commands import COMMANDS as COMMANDS_13
from bellows.ezsp.v14.commands import COMMANDS as COMMANDS_14
from bellows.types.named import SL_STATUS_MAP

from z2m_qbkg40lm.sim.ezsp.frames import (
    CommandFrame,
    FrameError,
    callback_frame,
    parse_command,
    response_frame,
)

LOGGER = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 13
"""The version the NCP speaks unless told otherwise."""
STACK_TYPE: Final = 2  # a mesh stack
STACK_VERSIONS: Final = {13: 0x7440, 14: 0x8020}
"""The EmberZNet release of each protocol version: 7.4.4.0 and 8.0.2.0."""
STACK_VERSION: Final = STACK_VERSIONS[PROTOCOL_VERSION]
SUPPORTED_VERSIONS: Final = tuple(STACK_VERSIONS)

_TABLES: Final = {13: COMMANDS_13, 14: COMMANDS_14}

Reply = tuple[Any, ...] | dict[str, Any]
Handler = Callable[[dict[str, Any]], Reply]

# EmberStatus and EzspStatus values for the sl_Status a handler gives (the first of bellows's
# mapping for each: it maps the older statuses onto sl_Status, this goes back).
_LEGACY_STATUS: Final[dict[type, dict[bt.sl_Status, Any]]] = {}
for (_kind, _legacy), _modern in SL_STATUS_MAP.items():
    _LEGACY_STATUS.setdefault(_kind, {}).setdefault(_modern, _legacy)


class EzspNcp:
    """Answers EZSP command frames (the data of ASH DATA frames) and sends callbacks."""

    def __init__(self, protocol_version: int = PROTOCOL_VERSION) -> None:
        if protocol_version not in _TABLES:
            raise ValueError(f"EZSP version {protocol_version}: this NCP speaks {SUPPORTED_VERSIONS}")
        self.version = protocol_version
        """The protocol version of the NCP's firmware."""
        self.protocol_version: int | None = None
        """The version agreed with the host (None until its `version` named ours)."""
        self._commands: Mapping[str, tuple[int, Any, Any]] = _TABLES[protocol_version]
        self._by_id = {frame_id: name for name, (frame_id, _req, _rsp) in self._commands.items()}
        self._handlers: dict[str, Handler] = {
            "version": self._version,
            "nop": lambda _params: (),
            "echo": lambda params: (params["data"],),
        }
        self._last_sequence = 0
        self.send_callback: Callable[[bytes], None] | None = None
        """Where callback frames go (the ASH link of the connected host); None: nowhere."""
        self.after_command: Callable[[], None] | None = None
        """Called after every command the NCP answered (the chip saves what changed)."""

    @property
    def stack_version(self) -> int:
        """The EmberZNet release, as `version` reports it (0x7440: 7.4.4.0)."""
        return STACK_VERSIONS[self.version]

    def has_command(self, name: str) -> bool:
        """True when the NCP's protocol version has a command of this (bellows's) name."""
        return name in self._commands

    def register(self, handlers: Mapping[str, Handler]) -> None:
        """Serve these commands (by bellows's names) from now on."""
        unknown = [name for name in handlers if name not in self._commands]
        if unknown:
            raise ValueError(f"EZSP {self.version} has no command {', '.join(unknown)}")
        self._handlers.update(handlers)

    def reset(self) -> None:
        """The NCP restarted: the host has to agree on a version again."""
        self.protocol_version = None

    def handle(self, data: bytes) -> bytes | None:
        """The response to one command frame; None for a frame that is no command (logged)."""
        try:
            command = parse_command(data)
        except FrameError as exc:
            LOGGER.warning("EZSP: a frame from the host that is no command: %s (%s)", exc, data.hex())
            return None
        self._last_sequence = command.sequence
        name = self._by_id.get(command.frame_id)
        if name is None or name not in self._handlers:
            return self._invalid(command)
        _frame_id, request, reply = self._commands[name]
        try:
            params, _rest = bt.deserialize_dict(command.parameters, request)
        except (ValueError, KeyError) as exc:
            LOGGER.warning("EZSP: %s with parameters it cannot read (%s): %s", name, exc, data.hex())
            return self._invalid(command)
        LOGGER.debug("EZSP <- %s %s", name, params)
        try:
            result = self._handlers[name](params)
            body = self._serialize(result, reply)
        except Exception:
            # A bug here must not take the link down: answer as firmware does to what it cannot do.
            LOGGER.exception("Emulating EZSP %s %s failed", name, params)
            return self._invalid(command)
        if self.after_command is not None:
            self.after_command()
        return response_frame(command, body)

    def callback(self, name: str, result: Reply) -> None:
        """Send a callback (e.g. `incomingMessageHandler`) to the host, if one is connected."""
        if self.send_callback is None or self.protocol_version is None:
            LOGGER.debug("EZSP callback %s not sent: no host speaking to the NCP", name)
            return
        frame_id, _request, reply = self._commands[name]
        LOGGER.debug("EZSP -> %s %s", name, result)
        # Callbacks carry the sequence number of the last command, long answered: a host tells
        # them from responses by that.
        self.send_callback(callback_frame(self._last_sequence, frame_id, self._serialize(result, reply)))

    def _serialize(self, result: Reply, reply: Any) -> bytes:
        if not isinstance(reply, Mapping):  # a reply that is one structure (getTokenData's)
            fields = [field.name for field in reply.fields]
            values = dict(zip(fields, result, strict=True)) if isinstance(result, tuple) else result
            structure = reply(**{name: values[name] for name in fields if values.get(name) is not None})
            return bytes(structure.serialize())
        values = dict(zip(reply, result, strict=True)) if isinstance(result, tuple) else result
        parts = []
        for field, kind in reply.items():
            value = values[field]
            if isinstance(value, bt.sl_Status) and kind is not bt.sl_Status:
                value = _LEGACY_STATUS[kind].get(value, _LEGACY_STATUS[kind][bt.sl_Status.FAIL])
            parts.append(kind(value).serialize())
        return b"".join(parts)

    def _version(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if params["desiredProtocolVersion"] == self.version:
            self.protocol_version = self.version
        return (self.version, STACK_TYPE, self.stack_version)

    def _invalid(self, command: CommandFrame) -> bytes:
        """What firmware answers to a frame id it does not know (in the command's own format)."""
        LOGGER.info(
            "EZSP: %s (frame id 0x%04X) is not emulated: invalidCommand",
            self._by_id.get(command.frame_id, "an unknown command"),
            command.frame_id,
        )
        frame_id, _request, reply = self._commands["invalidCommand"]
        # EZSP 14's tables give the reason as an sl_Status, which has no "invalid frame id": the
        # status bellows maps EZSP's invalid-id errors to stands in for it.
        reason = (
            bt.EzspStatus.ERROR_INVALID_FRAME_ID
            if reply["status"] is bt.EzspStatus
            else bt.sl_Status.INVALID_PARAMETER
        )
        body = self._serialize((reason,), reply)
        answer = CommandFrame(command.sequence, frame_id, b"", legacy=command.legacy)
        return response_frame(answer, body)
