"""Pure parsing of the topics and payloads Zigbee2MQTT users publish."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from z2m_qbkg40lm import strict_json

MAX_PAYLOAD_BYTES = 64 * 1024
"""Commands are a few bytes; anything this large is a mistake and is refused unread."""

_PLAIN_STATE_COMMANDS = ("on", "off", "toggle")


class PayloadError(ValueError):
    """A command payload that cannot be understood; the message says what was expected.

    `transaction` is the sender's id when it could still be read, so that the refusal reaches it.
    """

    def __init__(self, message: str, transaction: Any = None) -> None:
        super().__init__(message)
        self.transaction = transaction


class EmptyRequest(PayloadError):
    """A bridge request with an empty payload: how a client clears a retained request."""


@dataclass(frozen=True)
class DeviceCommand:
    """`<base>/<device>/set[/<property>]` or `<base>/<device>/get[/<property>]`."""

    device: str
    action: Literal["set", "get"]
    property: str | None


@dataclass(frozen=True)
class BridgeRequest:
    """`<base>/bridge/request/<path>`."""

    path: str


def parse_topic(base_topic: str, topic: str) -> DeviceCommand | BridgeRequest | None:
    """Classify a topic under the base topic; None for topics the daemon does not act on."""
    prefix = base_topic + "/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix) :]
    if rest.startswith("bridge/"):
        if rest.startswith("bridge/request/") and len(rest) > len("bridge/request/"):
            return BridgeRequest(path=rest[len("bridge/request/") :])
        return None
    # Non-greedy, like Zigbee2MQTT: the first /set or /get splits the device from the property.
    # An empty property (`<device>/set/`) is kept: it gets an error, like any unknown property.
    match = re.fullmatch(r"(.+?)/(set|get)(?:/(.*))?", rest)
    if match is None:
        return None
    action: Literal["set", "get"] = "set" if match.group(2) == "set" else "get"
    return DeviceCommand(device=match.group(1), action=action, property=match.group(3))


def clears_retained(parsed: DeviceCommand | BridgeRequest, payload: bytes) -> bool:
    """True for an empty message, which a client publishes to clear a retained command or request.

    It is no command, so it is ignored without an error. Only a message of no bytes at all clears
    (a blank one is an ordinary mistake and gets an error). `/get/<property>` is the exception: it
    ignores its payload, and Zigbee2MQTT users read a property with an empty one (`-n`).
    """
    if payload:
        return False
    return not (isinstance(parsed, DeviceCommand) and parsed.action == "get" and parsed.property is not None)


def command_filters(base_topic: str, friendly_names: Iterable[str]) -> list[str]:
    """The subscriptions that reach every command topic, and nothing the daemon publishes itself.

    Zigbee2MQTT subscribes to `<base>/#` and so receives an echo of each of its own state messages;
    besides the wasted traffic, the echoes delay the next command (Nagle's algorithm on the broker
    meets delayed acknowledgements here: about 40 ms a command). `+` covers single-level names and
    IEEE addresses, names with a `/` get their own filters.
    """
    filters = [f"{base_topic}/bridge/request/#"]
    for name in ["+", *sorted({n for n in friendly_names if "/" in n})]:
        for action in ("set", "get"):
            filters += [f"{base_topic}/{name}/{action}", f"{base_topic}/{name}/{action}/+"]
    return filters


def decode_text(payload: bytes) -> str:
    """The payload as UTF-8 text."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("payload is not UTF-8 text") from None


def command_properties(command: DeviceCommand, payload: bytes) -> dict[str, Any]:
    """The properties a /set or /get payload names, with their values.

    `/set` takes a JSON object, or a bare on/off/toggle meaning `{"state": …}`; `/set/<property>`
    takes a JSON value or, failing that, the raw text (`ON`); `/get` takes a JSON object whose
    values are ignored, and `/get/<property>` anything. JSON that is not standard (NaN, Infinity,
    numbers out of range, nesting deeper than `strict_json.MAX_DEPTH`) is refused.
    """
    text = decode_text(payload)
    if command.property is not None:
        if command.action == "get":
            return {command.property: ""}
        try:
            return {command.property: strict_json.loads(text)}
        except strict_json.RefusedJson as exc:
            raise _refused(text, exc) from None
        except ValueError:
            return {command.property: text}
    try:
        value = strict_json.loads(text)
    except strict_json.RefusedJson as exc:
        raise _refused(text, exc) from None
    except ValueError:
        if command.action == "set" and text.strip().lower() in _PLAIN_STATE_COMMANDS:
            return {"state": text.strip()}
        raise PayloadError(
            f'payload {_preview(text)} is not JSON; expected an object like {{"state": "ON"}}'
        ) from None
    if not isinstance(value, dict):
        raise PayloadError(f'payload {_preview(text)} is not a JSON object; expected e.g. {{"state": "ON"}}')
    if not value:
        raise PayloadError("payload is an empty JSON object; name at least one property")
    return value


def request_payload(payload: bytes) -> Any:
    """A bridge request payload: JSON if it parses, else the raw text (Zigbee2MQTT's rule).

    An empty payload is refused (EmptyRequest): it is what a client sends to clear a retained
    request, never a request itself. Non-standard JSON is refused as in `command_properties`.
    """
    text = decode_text(payload)
    if not text.strip():
        raise EmptyRequest(
            "empty payload: not a request (an empty message clears a retained one); send {} or the "
            "request's JSON object"
        )
    try:
        return strict_json.loads(text)
    except strict_json.RefusedJson as exc:
        raise _refused(text, exc) from None
    except ValueError:
        return text


def _refused(text: str, exc: strict_json.RefusedJson) -> PayloadError:
    """Non-standard JSON as a PayloadError, with the transaction of the object if it has one."""
    document = exc.document
    transaction = document.get("transaction") if isinstance(document, dict) else None
    return PayloadError(f"payload {_preview(text)} is not standard JSON: {exc}", transaction)


def _preview(text: str, limit: int = 60) -> str:
    shown = text if len(text) <= limit else text[:limit] + "…"
    return repr(shown)
