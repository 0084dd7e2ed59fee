"""Hypothesis strategies for hostile MQTT input, and the replay that holds each input to an answer.

A case is a topic (below the base topic) and a payload; `@TX@` in a payload is replaced by a
transaction id unique to the case at replay, so that its response can be told from the others.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.faults.harness import Running, scale
from z2m_qbkg40lm.bridge.topics import MAX_PAYLOAD_BYTES
from z2m_qbkg40lm.devices.lumi_tlv import TlvError, encode_tlv

TX = "@TX@"
MAX_JSON_DEPTH = 32
"""README: JSON nested deeper is refused unread, so its transaction cannot be known."""
_JSON_TOKENS = re.compile(rb'\\.|"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
BATCH = scale(ci=50, full=200)
"""Inputs published without waiting before the daemon must show it still serves."""
PROPERTIES = (
    "state",
    "operation_mode",
    "power_outage_memory",
    "flip_indicator_light",
    "action",
    "linkquality",
    "device_temperature",
    "power_outage_count",
    "brightness",
    "transaction",
    "",
)
VALUES: tuple[Any, ...] = (
    "ON",
    "OFF",
    "TOGGLE",
    "toggle",
    "on",
    "decoupled",
    "control_relay",
    True,
    False,
    "",
    0,
    1,
)
CONSTANTS = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e309", "-0", "1E+999")


@dataclass(frozen=True)
class Case:
    """One hostile input: the topic under the base topic, the payload, and what kind it is."""

    topic: str
    payload: bytes
    kind: str

    def materialise(self, transaction: str) -> tuple[str, bytes]:
        """Topic and payload with the case's own transaction id in place of the marker."""
        return self.topic, self.payload.replace(TX.encode(), transaction.encode())

    @property
    def has_transaction(self) -> bool:
        return TX.encode() in self.payload

    @property
    def readable(self) -> bool:
        """UTF-8 within 64 KiB and, if JSON, not nested beyond what a parser takes: a command could
        be made of it (the others must be refused, in the log)."""
        if len(self.payload) > MAX_PAYLOAD_BYTES:
            return False
        try:
            text = self.payload.decode("utf-8")
            if "/get/" not in self.topic:  # `/get/<attr>` ignores its payload once it is text
                json.loads(text)
        except UnicodeDecodeError:
            return False
        except RecursionError:
            return False
        except ValueError:
            return True
        return True

    @property
    def clears_retained(self) -> bool:
        """An empty message (what clears a retained command or request): ignored without a word,
        except on `/get/<attr>`, which reads the property whatever its payload."""
        return not self.payload and "/get/" not in self.topic

    @property
    def standard_json_object(self) -> bool:
        """True when the payload is a JSON object of standard JSON that Python parses, within the
        daemon's 64 KiB (a larger one is refused unread, so its transaction cannot be known)."""
        if len(self.payload) > MAX_PAYLOAD_BYTES or _nesting(self.payload) > MAX_JSON_DEPTH:
            return False
        try:
            value = json.loads(self.payload, parse_constant=_refuse, parse_float=_finite, parse_int=_finite)
            return isinstance(value, dict)
        except (ValueError, RecursionError):
            return False


def _nesting(payload: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    deepest = depth = 0
    for token in _JSON_TOKENS.findall(payload):
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _refuse(token: str) -> Any:
    raise ValueError(token)


def _finite(token: str) -> float:
    """A number as read, refused when a double cannot hold it (also one a duplicate key hides)."""
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(token)
    return value


def topic_safe(text: str) -> bool:
    """Usable as one topic level: Mosquitto cuts off a client publishing control characters."""
    return bool(text) and not any(
        c in "/+#"
        or ord(c) < 0x20
        or 0x7F <= ord(c) <= 0x9F
        or 0xFDD0 <= ord(c) <= 0xFDEF
        or (ord(c) & 0xFFFE) == 0xFFFE
        for c in text
    )


levels = st.text(min_size=1, max_size=24).filter(topic_safe)

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
property_names = st.sampled_from(PROPERTIES) | st.text(max_size=20)
property_values = st.sampled_from(VALUES) | json_values


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _deep(depth: int, shape: str, transaction: bool) -> bytes:
    inner = {"list": "[" * depth + "]" * depth, "object": '{"a":' * depth + "1" + "}" * depth}[shape]
    return (f'{{"transaction":"{TX}","state":{inner}}}' if transaction else inner).encode()


def payloads(*, objects: bool, transaction: bool) -> st.SearchStrategy[tuple[bytes, str]]:
    """(payload, kind) pairs: JSON objects (with `@TX@` when `transaction`), bytes, text, non-UTF-8,
    huge, deeply nested, non-standard numbers and bare JSON values."""

    def with_transaction(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "transaction": TX} if transaction else body

    options = [
        st.binary(max_size=300).map(lambda b: (b, "bytes")),
        st.binary(max_size=100).map(lambda b: (b"\xff" + b + b"\xc3", "not utf-8")),
        st.text(max_size=100).map(lambda s: (s.encode("utf-8", "surrogatepass"), "text")),
        st.tuples(
            st.sampled_from(["on", "OFF", " toggle ", "Toggle", "onn", ""]), st.sampled_from(["", " ", "\n"])
        ).map(lambda p: ((p[0] + p[1]).encode(), "bare word")),
        st.integers(min_value=64 * 1024 - 16, max_value=140_000).map(
            lambda n: (('{"state":"' + "A" * n + f'","transaction":"{TX}"}}').encode(), "huge")
        ),
        st.tuples(
            st.integers(min_value=20, max_value=20_000), st.sampled_from(["list", "object"]), st.booleans()
        ).map(lambda p: (_deep(p[0], p[1], p[2] and transaction), "deep")),
        st.tuples(st.sampled_from(PROPERTIES), st.sampled_from(CONSTANTS)).map(
            lambda p: (
                (
                    f'{{"{p[0]}":{p[1]},"transaction":"{TX}"}}' if transaction else f'{{"{p[0]}":{p[1]}}}'
                ).encode(),
                "constant",
            )
        ),
        json_values.map(lambda v: (_dumps(v), "json value")),
    ]
    if objects:
        body = st.dictionaries(property_names, property_values, max_size=5)
        options += [
            body.map(lambda d: (_dumps(with_transaction(d)), "object")),
            body.map(lambda d: (_dumps(with_transaction(d)), "object")),
            body.map(lambda d: (_dumps(d), "object without transaction")),
        ]
    return st.one_of(*options)


# --- heartbeat bodies: random bytes, and valid TLV bodies cut and extended -------------------------

tlv_items = st.lists(
    st.tuples(
        st.integers(0, 255),
        st.sampled_from([0x10, 0x20, 0x21, 0x23, 0x28, 0x39, 0x3A, 0x41, 0x42]),
        st.one_of(st.integers(0, 255), st.booleans(), st.floats(allow_nan=False), st.binary(max_size=8)),
    ),
    max_size=8,
)


def _valid_bodies(items: list[tuple[int, int, int | float | bytes]]) -> bytes:
    try:
        return encode_tlv(items)
    except TlvError:
        return b""


tlv_bodies = st.binary(max_size=300) | tlv_items.map(_valid_bodies).flatmap(
    lambda body: st.tuples(st.integers(0, max(len(body), 1)), st.binary(max_size=4)).map(
        lambda cut: body[: cut[0]] + cut[1]
    )
)


@dataclass
class Outcome:
    """What a surface's replay found."""

    cases: int = 0
    answered: int = 0
    problems: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)

    def problem(self, text: str) -> None:
        if len(self.problems) < 40:
            self.problems.append(text)


ResponseTopic = Callable[[Case], str | None]


async def replay(
    run: Running,
    cases: list[Case],
    *,
    response_topic: ResponseTopic,
    batch: int = BATCH,
    grace: float = 3.0,
    after_batch: Callable[[], Any] | None = None,
) -> Outcome:
    """Publish the cases in batches without waiting; after each batch the next valid command must be
    served, and every case must have been answered: a publish or a WARNING+ log line caused by it,
    and for a case that names a response topic exactly one message there (with its transaction,
    when it carries one)."""
    outcome = Outcome()
    trace = run.trace
    for start in range(0, len(cases), batch):
        first = len(trace.received)
        # (case, the number the daemon gives it on arrival, its transaction, topic and payload sent)
        batch_cases: list[tuple[Case, int, str, str, bytes]] = []
        for offset, case in enumerate(cases[start : start + batch]):
            transaction = f"f{start + offset}"
            topic, payload = case.materialise(transaction)
            batch_cases.append((case, first + offset, transaction, f"{run.base}/{topic}", payload))
            await run.client.publish(f"{run.base}/{topic}", payload, qos=1)
        await run.serves()
        if after_batch is not None:
            await after_batch()

        def missing(case: Case, index: int, transaction: str) -> str | None:
            return _answer(case, index, transaction, run=run, response_topic=response_topic)

        def settled(batch_cases: list[tuple[Case, int, str, str, bytes]] = batch_cases) -> bool:
            return all(missing(case, index, tx) is None for case, index, tx, _, _ in batch_cases)

        with contextlib.suppress(AssertionError):  # what is still missing is reported below
            await trace.wait(settled, grace, "answers")
        for case, index, transaction, topic, payload in batch_cases:
            outcome.cases += 1
            outcome.kinds[case.kind] = outcome.kinds.get(case.kind, 0) + 1
            if index >= len(trace.received) or trace.received[index] != (topic, payload):
                got = trace.received[index] if index < len(trace.received) else None
                outcome.problem(f"input {topic} {payload[:80]!r} not received in order (got {got!r:.120})")
                continue
            problem = missing(case, index, transaction)
            if problem is None:
                outcome.answered += 1
            else:
                outcome.problem(f"{case.kind} on {case.topic} {payload[:100]!r}: {problem}")
    return outcome


def _state_published_after(run: Running, index: int) -> bool:
    state_topic = f"{run.base}/{run.name}"
    since = run.trace.received_at[index]
    return any(m.topic == state_topic for m in run.trace.published[since:])


def _answer(
    case: Case, index: int, transaction: str, *, run: Running, response_topic: ResponseTopic
) -> str | None:
    """None when the case was answered as it must be, else what is missing."""
    out = run.trace.published_by_input.get(index, [])
    logged = run.trace.records_by_input.get(index, [])
    if case.clears_retained:
        return None if not out and not logged else "an empty message was answered; it must be ignored"
    topic = response_topic(case)
    if topic is not None:
        full = f"{run.base}/{topic}"
        answers = [m for m in out if m.topic == full]
        if case.has_transaction and case.standard_json_object:
            # Found by transaction (unique per case), not by the input a publish is traced to: a
            # device's command line is worked through by one task, which carries the context of
            # the command that started it, so later commands' results are traced to that one.
            since = run.trace.received_at[index]
            echoed = [
                m
                for m in run.trace.published[since:]
                if m.topic == full and json.loads(m.payload).get("transaction") == transaction
            ]
            if len(echoed) == 1:
                return None
            return f"{len(echoed)} responses with its transaction on {topic}"
        if topic.startswith("bridge/response/"):
            # Every bridge request is answered on its response topic, whatever its payload.
            return None if len(answers) == 1 else f"{len(answers)} responses on {topic}"
    if out or logged:
        return None
    if case.readable and _state_published_after(run, index):
        # An accepted command without a transaction whose state message was the device's own
        # report, published by the radio's task (the bridge leaves out an identical second one).
        return None
    return "no answer: nothing published, nothing logged"
