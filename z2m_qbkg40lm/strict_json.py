"""Standard JSON only, in and out: what other programs (JavaScript, Home Assistant) can read.

Python's `json` accepts `NaN`, `Infinity` and numbers like `1e400` (read as infinity) and writes
them back out as `NaN` / `Infinity`, which no standard parser reads; and it parses by recursion, so
a payload nested ten thousand deep ends in a `RecursionError` instead of an answer. Every JSON
that arrives over MQTT is read with `loads` here, which refuses both with a message that says why.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

MAX_DEPTH = 32
"""Arrays and objects nested deeper than this are refused; real payloads use three or four levels."""
_MAX_INT_DIGITS = 309
"""A double's range ends near 1.8e308: no integer with more digits fits (and Python refuses to
read integers of more than 4300 digits at all)."""

# What the nesting count looks at: an escape (two characters, so that `\"` is no quote), a quote
# (strings begin and end there; brackets inside them do not count) or a bracket. Fixed-length
# tokens: the scan stays linear whatever the text (a pattern matching whole strings can take
# seconds on `"\"\"\"…`).
_TOKENS = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


class RefusedJson(ValueError):
    """Text that Python's parser would read but that is not acceptable JSON (too deep, non-finite).

    `document` is what could be read, with each non-finite number replaced by None (None when the
    nesting was too deep to read at all): callers may take an id from it to answer the sender.
    """

    def __init__(self, message: str, document: Any = None) -> None:
        super().__init__(message)
        self.document = document


class _NonFinite:
    """Stands for a number that is not finite while the document is read."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def loads(text: str) -> Any:
    """Parse standard JSON.

    RefusedJson when it nests deeper than MAX_DEPTH or holds NaN, Infinity or a number out of a
    double's range (`1e400`, an integer of 400 digits); ValueError (json.JSONDecodeError) when it
    is not JSON at all.
    """
    _check_depth(text)
    found: list[_NonFinite] = []

    def constant(name: str) -> _NonFinite:
        found.append(_NonFinite(name))
        return found[-1]

    def number(literal: str) -> float | _NonFinite:
        value = float(literal)
        if math.isfinite(value):
            return value
        return constant(literal)

    def integer(literal: str) -> int | _NonFinite:
        # Beyond a double's range no other program reads it as a number (and Python's own
        # arithmetic with floats overflows on it), like 1e400.
        digits = len(literal.lstrip("-"))
        if digits <= _MAX_INT_DIGITS and abs(value := int(literal)) <= sys.float_info.max:
            return value
        return constant(f"{literal[:12]}… ({digits} digits)")

    document = json.loads(text, parse_constant=constant, parse_float=number, parse_int=integer)
    if not found:
        return document
    first = _first_non_finite(document, ())
    assert first is not None, "a stand-in was made, so the document holds one"
    where, value = first
    location = f" (at '{'.'.join(where)}')" if where else ""
    if value.text in ("NaN", "Infinity", "-Infinity"):
        problem = f"{value.text} is not a JSON number{location}"
    else:
        problem = f"{value.text} is out of the range of a number{location}"
    raise RefusedJson(problem, _without_non_finite(document))


def _check_depth(text: str) -> None:
    depth = 0
    in_string = False
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or len(token) > 1:
            continue
        elif token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise RefusedJson(f"nested deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1


def _first_non_finite(value: Any, path: tuple[str, ...]) -> tuple[tuple[str, ...], _NonFinite] | None:
    """The path and stand-in of the first non-finite number, or None."""
    if isinstance(value, _NonFinite):
        return path, value
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(str(index), item) for index, item in enumerate(value)]
    for key, item in items:
        found = _first_non_finite(item, (*path, key))
        if found is not None:
            return found
    return None


def _without_non_finite(value: Any) -> Any:
    if isinstance(value, _NonFinite):
        return None
    if isinstance(value, dict):
        return {key: _without_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_non_finite(item) for item in value]
    return value


def finite_copy(value: Any) -> tuple[Any, list[str]]:
    """A copy of a tree for publishing, each non-finite float replaced by None, and their paths.

    JavaScript's JSON.stringify (and so Zigbee2MQTT) writes such numbers as `null`; doing the same
    keeps every message standard JSON.
    """
    replaced: list[str] = []

    def walk(item: Any, path: str) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            replaced.append(path or "(the whole message)")
            return None
        if isinstance(item, dict):
            return {key: walk(child, f"{path}.{key}" if path else str(key)) for key, child in item.items()}
        if isinstance(item, list | tuple):
            return [
                walk(child, f"{path}.{index}" if path else str(index)) for index, child in enumerate(item)
            ]
        return item

    return walk(value, ""), replaced
