"""What a normalised MQTT transcript says, as facts two programs can be compared on.

A fact is a key (what: a topic, a payload path) and a value (JSON text, so its type counts:
`1`, `"1"` and `true` differ). Timing is left out on purpose: which step a message fell into, or
how many intermediate states were published, is how busy the machine was, not behaviour.

- `topic <T>`: whether messages on T were retained (`retained`, `not retained`, or both); `clear
  <T>`: T's retained message was removed (an empty retained payload).
- Snapshots (bridge/state, bridge/info, bridge/devices, bridge/groups, bridge/definitions,
  availability and every discovery config): the last payload, path by path: `<T> <path>`.
- `event <type>[<status>] <path>`: each kind of bridge/event, its last occurrence.
- `<T>#<n> <path>`: the n-th response on each bridge/response topic.
- `state-key <key>`: the types a key of the device's state took; `checkpoint <label> <path>`: the
  state each command of the scenario waited for; `<FN>/action payloads`: the presses published
  there, in order.

Left out: what the scenario sent itself (requests, `/set`, `/get`), what the emulator publishes
(`bridge/emulator`, the `simulation/…` responses) and bridge/logging (free text, not an API).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

DEVICE = "hall_switch"
IGNORED = re.compile(
    r"BASE/bridge/request/.*|BASE/bridge/response/simulation/.*|BASE/bridge/emulator|BASE/bridge/logging"
    r"|BASE/(hall_switch|IEEE_DEVICE)/(set|get)(/.*)?"
)
SNAPSHOT = re.compile(
    r"BASE/bridge/(state|info|devices|groups|definitions|extensions)|BASE/.*/availability|HA/.*"
)
STATE = re.compile(r"BASE/(hall_switch|IEEE_DEVICE)")
RESPONSE = re.compile(r"BASE/bridge/response/.*")
ACTION = re.compile(r"BASE/(hall_switch|IEEE_DEVICE)/action")
IDENTITIES = ("ieee_address", "property", "name", "topic", "type")
"""Keys that name a list's items (each item by the first of them it has), so that lists compare
item by item; their order is a fact of its own (`<path>[]`)."""
SUMMARISED = frozenset({"BASE/bridge/definitions"})
"""Topics compared by their top-level keys only (Zigbee2MQTT's ZCL dictionary for its frontend:
thousands of leaves that say nothing about the API)."""


def _label(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    return next((item[key] for key in IDENTITIES if isinstance(item.get(key), str)), None)


def _labels(items: list[Any]) -> list[str] | None:
    labels = [_label(item) for item in items]
    if not all(labels) or len(set(labels)) != len(labels):
        return None
    return [label for label in labels if label]


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every leaf of a JSON value as (path, JSON text); empty objects and lists are leaves too.
    A list of named items (`IDENTITIES`) is flattened by name, with its order as `<path>[]`."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from flatten(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        labels = _labels(value)
        if labels and len(labels) > 1:
            yield f"{path}[]", json.dumps(labels, ensure_ascii=False)
        for index, item in enumerate(value):
            yield from flatten(item, f"{path}[{labels[index] if labels else index}]")
    else:
        yield path or ".", json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Sent:
    """One message of a transcript."""

    topic: str
    retain: bool
    payload: Any


def messages(transcript: dict[str, Any]) -> list[Sent]:
    """A transcript's messages in order, without its steps."""
    return [
        Sent(message["topic"], message["retain"], message["payload"])
        for step in transcript["steps"]
        for message in step["messages"]
    ]


def _retain_facts(sent: Iterable[Sent]) -> dict[str, str]:
    flags: dict[str, set[bool]] = defaultdict(set)
    cleared: set[str] = set()
    for message in sent:
        if message.payload == "":
            cleared.add(message.topic)
        else:
            flags[message.topic].add(message.retain)
    facts = {f"topic {topic}": _retained(seen) for topic, seen in flags.items()}
    facts.update({f"clear {topic}": "yes" for topic in cleared})
    return facts


def _retained(seen: set[bool]) -> str:
    return "retained and not retained" if len(seen) == 2 else "retained" if True in seen else "not retained"


def facts(transcript: dict[str, Any]) -> dict[str, str]:
    """Everything a transcript shows about the program's MQTT behaviour, as comparable facts."""
    sent = [m for m in messages(transcript) if not IGNORED.fullmatch(m.topic)]
    result = _retain_facts(sent)
    last: dict[str, Any] = {}
    events: dict[str, Any] = {}
    responses: dict[str, list[Any]] = defaultdict(list)
    state_types: dict[str, set[str]] = defaultdict(set)
    actions: dict[str, list[Any]] = defaultdict(list)
    for message in sent:
        if message.payload == "":
            continue
        if SNAPSHOT.fullmatch(message.topic):
            last[message.topic] = message.payload
        elif message.topic == "BASE/bridge/event":
            data = message.payload.get("data", {})
            events[f"{message.payload.get('type')}[{data.get('status', '')}]"] = message.payload
        elif RESPONSE.fullmatch(message.topic):
            responses[message.topic].append(message.payload)
        elif ACTION.fullmatch(message.topic):
            actions[message.topic].append(message.payload)
        elif STATE.fullmatch(message.topic) and isinstance(message.payload, dict):
            for key, value in message.payload.items():
                state_types[key].add(type(value).__name__)
    for topic, payload in last.items():
        if topic in SUMMARISED:
            result[f"{topic} keys"] = json.dumps(sorted(payload) if isinstance(payload, dict) else payload)
            continue
        result.update({f"{topic} {path}": value for path, value in flatten(payload)})
    for kind, payload in events.items():
        result.update({f"event {kind} {path}": value for path, value in flatten(payload)})
    for topic, answers in responses.items():
        for number, payload in enumerate(answers):
            result.update({f"{topic}#{number} {path}": value for path, value in flatten(payload)})
    result.update({f"state-key {key}": ",".join(sorted(types)) for key, types in state_types.items()})
    result.update({f"{topic} payloads": json.dumps(sent) for topic, sent in actions.items()})
    for label, state in transcript.get("checkpoints", {}).items():
        result.update({f"checkpoint {label} {path}": value for path, value in flatten(state)})
    return result


@dataclass(frozen=True)
class Difference:
    """One fact on which the two programs disagree (None: the fact is absent on that side)."""

    key: str
    zigbee2mqtt: str | None
    daemon: str | None

    def __str__(self) -> str:
        return f"{self.key}: Zigbee2MQTT {self.zigbee2mqtt}, daemon {self.daemon}"


def differences(zigbee2mqtt: dict[str, str], daemon: dict[str, str]) -> list[Difference]:
    """Every fact that is not the same on both sides, sorted by key."""
    return [
        Difference(key, zigbee2mqtt.get(key), daemon.get(key))
        for key in sorted(zigbee2mqtt.keys() | daemon.keys())
        if zigbee2mqtt.get(key) != daemon.get(key)
    ]


ABSENT = "ABSENT"
"""How a missing fact shows to an `Explained` entry's value patterns."""


@dataclass(frozen=True)
class Explained:
    """A reviewed difference: the facts it covers and why.

    `pattern` is a regular expression over the fact's key; `zigbee2mqtt` and `daemon` over each
    side's value (its JSON text, or `ABSENT`), so that an entry covers the difference it was
    written for and not any change of the same fact. `readme` is a phrase of the README's
    "Differences from Zigbee2MQTT" entry that tells users.
    """

    pattern: str
    reason: str
    readme: str
    zigbee2mqtt: str = ".*"
    daemon: str = ".*"

    def covers(self, difference: Difference) -> bool:
        """True when the difference's key and both values are this entry's."""
        z2m = ABSENT if difference.zigbee2mqtt is None else difference.zigbee2mqtt
        ours = ABSENT if difference.daemon is None else difference.daemon
        return (
            re.fullmatch(self.pattern, difference.key) is not None
            and re.fullmatch(self.zigbee2mqtt, z2m, re.DOTALL) is not None
            and re.fullmatch(self.daemon, ours, re.DOTALL) is not None
        )


def unexplained(found: list[Difference], explained: Iterable[Explained]) -> list[Difference]:
    """The differences no entry covers."""
    entries = list(explained)
    return [difference for difference in found if not any(entry.covers(difference) for entry in entries)]


def unused(found: list[Difference], explained: Iterable[Explained]) -> list[Explained]:
    """The entries that cover no difference any more (fixed since: the entry should go)."""
    return [entry for entry in explained if not any(entry.covers(difference) for difference in found)]
