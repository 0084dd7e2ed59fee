"""The EmberZNet network co-processor's command layer: EZSP commands in, responses out.

What it answers so far (more with the network front-end): the version exchange, `nop` and `echo`;
every other command gets the answer real firmware gives to a frame id it does not know, the
`invalidCommand` response with `ERROR_INVALID_FRAME_ID`, never silence.

Versions, from Silicon Labs' release notes: EmberZNet 7.4.x (the firmware of the Home Assistant
Connect ZBT-1 and the Sonoff ZBDongle-E today) speaks EZSP protocol version 13, with stack version
0x7440 for 7.4.4.0. The host's first `version` command, in the legacy frame format, is answered
with the NCP's own version whatever the host asked for; the host then sends `version` again with
that number (in the extended format from version 8 on), and the NCP speaks it from then on.

Parameter and result layouts come from bellows's command tables (`bellows.ezsp.v13.commands`),
which mirror the EmberZNet headers; no other bellows code is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import bellows.types as bt
from bellows.ezsp.v13.commands import COMMANDS

from z2m_qbkg40lm.sim.ezsp.frames import CommandFrame, FrameError, parse_command, response_frame

LOGGER = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 13
STACK_TYPE: Final = 2  # a mesh stack
STACK_VERSION: Final = 0x7440  # EmberZNet 7.4.4.0

_BY_ID: Final = {frame_id: (name, request, reply) for name, (frame_id, request, reply) in COMMANDS.items()}
_INVALID_COMMAND_ID, _, _INVALID_COMMAND_REPLY = COMMANDS["invalidCommand"]

Handler = Callable[[dict[str, Any]], tuple[Any, ...]]


class EzspNcp:
    """Answers EZSP command frames (the data of ASH DATA frames) with response frames."""

    def __init__(self) -> None:
        self.protocol_version: int | None = None
        """The version agreed with the host (None until its `version` named ours)."""
        self._handlers: dict[str, Handler] = {
            "version": self._version,
            "nop": lambda _params: (),
            "echo": lambda params: (params["data"],),
        }

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
        known = _BY_ID.get(command.frame_id)
        if known is None or known[0] not in self._handlers:
            return self._invalid(command)
        name, request, reply = known
        try:
            params, _rest = bt.deserialize_dict(command.parameters, request)
        except (ValueError, KeyError) as exc:
            LOGGER.warning("EZSP: %s with parameters it cannot read (%s): %s", name, exc, data.hex())
            return self._invalid(command)
        result = self._handlers[name](params)
        return response_frame(command, bt.serialize_dict(result, {}, reply))

    def _version(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if params["desiredProtocolVersion"] == PROTOCOL_VERSION:
            self.protocol_version = PROTOCOL_VERSION
        return (PROTOCOL_VERSION, STACK_TYPE, STACK_VERSION)

    def _invalid(self, command: CommandFrame) -> bytes:
        """What firmware answers to a frame id it does not know (in the command's own format)."""
        LOGGER.debug("EZSP: unknown or unsupported frame id 0x%04X", command.frame_id)
        body = bt.serialize_dict((bt.EzspStatus.ERROR_INVALID_FRAME_ID,), {}, _INVALID_COMMAND_REPLY)
        answer = CommandFrame(command.sequence, _INVALID_COMMAND_ID, b"", legacy=command.legacy)
        return response_frame(answer, body)
