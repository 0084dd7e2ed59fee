"""The deCONZ serial protocol's command layer: a host's frame in, the firmware's answer out.

Facts from dresden elektronik's serial protocol document as zigpy-deconz's `api` mirrors it (its
`CommandId`, `COMMAND_SCHEMAS` and types are used here to read requests and write answers):

- Every frame starts with the command id, a sequence number, a status (reserved, 0, in a request)
  and the frame's length (16 bits, checksum excluded); most commands then carry the length of the
  payload that follows. An answer repeats the request's command id and sequence number.
- The firmware's own notifications (`device_state_changed`) are not answers to anything. zigpy-
  deconz matches frames to its requests by sequence number and numbers its requests 1 to 255, so
  the emulator sends its notifications with sequence number 0, which never matches one (the
  emulator's choice: the document leaves the firmware's numbering of notifications open).
- A command the firmware does not know, or only sends itself, is answered with its id and
  sequence number, status UNSUPPORTED and no payload. A frame whose length field disagrees with
  its size is dropped, as a damaged one.
"""

# zigpy-deconz's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import zigpy_deconz.types as dt
from zigpy_deconz.api import COMMAND_SCHEMAS, FRAME_LENGTH, PAYLOAD_LENGTH, CommandId, Status

LOGGER = logging.getLogger(__name__)

HEADER: Final = 5
"""Command id, sequence number, status, frame length."""
NOTIFICATION_SEQ: Final = 0
LENGTHS: Final = ("status", "frame_length", "payload_length")


@dataclass(frozen=True)
class Request:
    """One command from the host."""

    command: CommandId
    seq: int
    params: dict[str, Any]
    """The request's fields after the lengths, read with the command's schema (None: absent)."""


@dataclass(frozen=True)
class Reply:
    """The firmware's answer: a status and the answer's fields after the lengths, in order.

    Fields stop at the first one not given: the firmware's short answers to failed requests."""

    status: Status
    fields: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Request], Reply]


def request_schema(command: CommandId) -> dict[str, Any] | None:
    """The types of a request's fields after the lengths; None for a command the host cannot send."""
    sent, _answer = COMMAND_SCHEMAS[command]
    if sent is None:
        return None
    schema: dict[str, Any] = {}
    for name, kind in sent.items():
        if name in LENGTHS or kind is FRAME_LENGTH or kind is PAYLOAD_LENGTH:
            continue
        # A parameter id is read as a number: an unknown one must reach the handler, not fail here.
        schema[name] = (
            dt.uint8_t if name == "parameter_id" else kind if isinstance(kind, type) else type(kind)
        )
    return schema


def encode_answer(command: CommandId | int, seq: int, reply: Reply) -> bytes:
    """The frame (unframed) of an answer or notification: header, payload length, fields."""
    fields = b""
    has_payload_length = False
    if command in COMMAND_SCHEMAS:
        _sent, schema = COMMAND_SCHEMAS[CommandId(command)]
        has_payload_length = "payload_length" in schema
        chunks = []
        for name, kind in schema.items():
            if name in LENGTHS:
                continue
            if name not in reply.fields:
                break
            value = reply.fields[name]
            chunks.append((value if isinstance(value, kind) else kind(value)).serialize())
        fields = b"".join(chunks)
    if has_payload_length:  # even when empty: zigpy-deconz checks it against the frame's size
        fields = dt.uint16_t(len(fields)).serialize() + fields
    length: bytes = dt.uint16_t(HEADER + len(fields)).serialize()
    return bytes([int(command), seq, int(reply.status)]) + length + fields


class DeconzProtocol:
    """Commands to their handlers; answers and notifications as frames."""

    def __init__(self) -> None:
        self.handlers: dict[CommandId, Handler] = {}
        self.dropped = 0
        """Frames dropped as damaged (too short, or a length field that disagrees)."""

    def handle(self, frame: bytes) -> bytes | None:
        """The answer to one frame from the host (checksum already checked); None: none is sent."""
        if len(frame) < HEADER or int.from_bytes(frame[3:5], "little") != len(frame):
            self.dropped += 1
            LOGGER.warning("Dropping a damaged frame from the host: %s", frame.hex(" "))
            return None
        command_id, seq = frame[0], frame[1]
        known = command_id in CommandId._value2member_map_ and CommandId(command_id) in COMMAND_SCHEMAS
        schema = request_schema(CommandId(command_id)) if known else None
        handler = self.handlers.get(CommandId(command_id)) if known else None
        if schema is None or handler is None:
            LOGGER.info("Unknown command 0x%02X (seq %d): UNSUPPORTED", command_id, seq)
            return encode_answer(command_id, seq, Reply(Status.UNSUPPORTED))
        command = CommandId(command_id)
        sent, _answer = COMMAND_SCHEMAS[command]
        body = frame[HEADER:]
        if sent is not None and "payload_length" in sent:
            body = body[2:]  # the payload length; the frame length already vouched for the size
        try:
            params, _rest = dt.deserialize_dict(body, schema)
        except (ValueError, KeyError) as exc:
            LOGGER.info("Malformed %s from the host (%s): INVALID_VALUE", command.name, exc)
            return encode_answer(command, seq, Reply(Status.INVALID_VALUE))
        reply = handler(Request(command, seq, params))
        return encode_answer(command, seq, reply)

    @staticmethod
    def notification(command: CommandId, reply: Reply) -> bytes:
        """A frame the firmware sends on its own."""
        return encode_answer(command, NOTIFICATION_SEQ, reply)
