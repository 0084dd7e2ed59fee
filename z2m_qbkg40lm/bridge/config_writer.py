"""Writes settings back into the user's configuration file, keeping its comments and key order.

PyYAML drops comments, so a load-and-dump would throw away everything the user wrote besides the
values. Instead the file is edited as lines: a value is replaced in place (its trailing comment
kept), a new key goes after the last key of its mapping, a removed key takes its lines with it.
The editor understands block mappings only; every edit is checked by loading the result and
comparing it with the intended data. When the check fails (flow style, anchors, tags or anything
else the editor does not follow) the file is rewritten in full with `yaml.safe_dump`, the previous
file is kept as `<name>.bak`, and a WARNING says so.

Only values the user asked to change are written: what the file holds comes from the file itself,
never from the running configuration, so a generated network key can never end up in it.
"""

from __future__ import annotations

import copy
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from z2m_qbkg40lm.atomic_file import keep_owner, write_atomically

_LOGGER = logging.getLogger(__name__)

_DEFAULT_INDENT = 2


class ConfigEditError(Exception):
    """The configuration file cannot take the change; the message says why (nothing was written)."""


class _LayoutError(Exception):
    """The file's layout is beyond the line editor; the caller falls back to a full rewrite."""


@dataclass(frozen=True)
class SetValue:
    """Set `path` (keys from the top of the file) to `value`, creating missing mappings."""

    path: tuple[str, ...]
    value: Any


@dataclass(frozen=True)
class Delete:
    """Remove `path` (and everything below it); nothing happens when it is absent."""

    path: tuple[str, ...]


Edit = SetValue | Delete


# --- the data the file should hold afterwards ------------------------------------------------------


def apply_to_data(data: Any, edits: Sequence[Edit]) -> dict[str, Any]:
    """A copy of the loaded document with the edits applied; ConfigEditError when a path crosses a
    value that is not a mapping."""
    result: Any = {} if data is None else copy.deepcopy(data)
    if not isinstance(result, dict):
        raise ConfigEditError("the configuration file does not hold a mapping of sections")
    for edit in edits:
        parent: dict[str, Any] | None = result
        for depth, key in enumerate(edit.path[:-1]):
            assert parent is not None
            child = parent.get(key)
            if child is None:
                if isinstance(edit, Delete):
                    parent = None
                    break
                child = parent[key] = {}
            if not isinstance(child, dict):
                where = ".".join(edit.path[: depth + 1])
                raise ConfigEditError(f"'{where}' in the configuration file is not a mapping")
            parent = child
        if parent is None:
            continue
        last = edit.path[-1]
        if isinstance(edit, SetValue):
            parent[last] = copy.deepcopy(edit.value)
        else:
            parent.pop(last, None)
    return result


# --- the line editor ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One line split into what the editor needs."""

    indent: int
    key: Any
    """The mapping key the line starts, or None for other lines."""
    value: str
    """The inline value after `key:`, without its comment."""
    comment: str
    """The trailing comment with the whitespace before it (`  # ...`), or ''."""


_MISSING = object()


def _is_blank_or_comment(line: str) -> bool:
    """Blank lines, comments and a document start marker carry no settings."""
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or stripped == "---"


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _load_scalar(token: str) -> Any:
    try:
        return yaml.safe_load(token)
    except yaml.YAMLError:
        return _MISSING


def _closing_quote(text: str) -> int:
    """The index of the quote closing the quoted scalar `text` starts with, or -1."""
    quote = text[0]
    position = 1
    while position < len(text):
        char = text[position]
        if quote == '"' and char == "\\":
            position += 2
            continue
        if char == quote:
            if quote == "'" and text[position + 1 : position + 2] == "'":
                position += 2
                continue
            return position
        position += 1
    return -1


def _split_comment(rest: str) -> tuple[str, str]:
    """(value, comment) of what follows `key:`. The comment keeps the spaces before its `#`, so
    that a replaced value keeps the user's alignment; a `#` starts a comment only after a space."""
    rest = rest.rstrip("\r\n")
    stripped = rest.lstrip()
    if not stripped:
        return "", ""
    if stripped.startswith("#"):
        return "", rest
    search_from = len(rest) - len(stripped)
    if stripped[0] in ("'", '"'):
        close = _closing_quote(stripped)
        if close < 0:
            return stripped.strip(), ""  # a quoted scalar continued on the next lines
        search_from += close + 1
    match = re.compile(r"[ \t]#").search(rest, search_from)
    if match is None:
        return stripped.strip(), ""
    value_part = rest[: match.start()]
    return value_part.strip(), rest[len(value_part.rstrip()) :]


def _parse(line: str) -> _Line:
    text = line.rstrip("\r\n")
    indent = _indent_of(text)
    body = text[indent:]
    if not body or body.startswith(("#", "- ", "-\t")) or body == "-":
        return _Line(indent, None, "", "")
    if body[0] in ("'", '"'):
        end = _closing_quote(body)
        if end < 0:
            return _Line(indent, None, "", "")
        token, after = body[: end + 1], body[end + 1 :].lstrip(" ")
        if not after.startswith(":") or after[1:2] not in ("", " ", "\t"):
            return _Line(indent, None, "", "")
        rest = after[1:]
    else:
        match = re.match(r"([^#{}\[\],&*!|>'\"%@`][^#]*?)\s*:(\s|$)", body)
        if match is None:
            return _Line(indent, None, "", "")
        token, rest = match.group(1), body[match.end(1) :].lstrip(" ")[1:]
    key = _load_scalar(token)
    if key is _MISSING or isinstance(key, (dict, list)):
        return _Line(indent, None, "", "")
    value, comment = _split_comment(rest)
    return _Line(indent, key, value, comment)


class _Document:
    """The file as a list of lines, with the block-mapping operations the edits need."""

    def __init__(self, text: str) -> None:
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.lines = text.splitlines(keepends=True)
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += self.newline
        self.unit = self._detect_indent_unit()

    def text(self) -> str:
        return "".join(self.lines)

    def _detect_indent_unit(self) -> int:
        for line in self.lines:
            if not _is_blank_or_comment(line):
                indent = _indent_of(line)
                if indent > 0:
                    return indent
        return _DEFAULT_INDENT

    def span_end(self, index: int) -> int:
        """One past the last line of the value of the key on line `index`."""
        indent = _indent_of(self.lines[index])
        last = index
        for position in range(index + 1, len(self.lines)):
            line = self.lines[position]
            if _is_blank_or_comment(line):
                continue
            line_indent = _indent_of(line)
            if line_indent > indent or (line_indent == indent and line.lstrip(" ").startswith("-")):
                last = position
                continue
            break
        return last + 1

    def children(self, start: int, end: int) -> tuple[int | None, list[int]]:
        """The indentation and key lines of the block mapping in lines [start, end)."""
        content = [i for i in range(start, end) if not _is_blank_or_comment(self.lines[i])]
        if not content:
            return None, []
        indent = _indent_of(self.lines[content[0]])
        keys: list[int] = []
        for i in content:
            parsed = _parse(self.lines[i])
            if parsed.indent == indent:
                if self.lines[i].lstrip(" ").startswith("-") and keys:
                    # `key:` then `- item` at the key's own indentation: a block sequence in the
                    # style PyYAML and many people write, part of the previous key's value.
                    continue
                if parsed.key is None:
                    raise _LayoutError(f"line {i + 1} is not a 'key: value' line")
                keys.append(i)
        return indent, keys

    def find(self, key: str, start: int, end: int) -> tuple[int | None, int | None]:
        """(child indentation, line index of `key`) in the mapping held by lines [start, end)."""
        indent, key_lines = self.children(start, end)
        for i in key_lines:
            if _parse(self.lines[i]).key == key:
                return indent, i
        return indent, None

    def render(self, key: str, value: Any, indent: int) -> list[str]:
        dumped = yaml.safe_dump(
            {key: value},
            default_flow_style=False,
            sort_keys=False,
            allow_unicode=True,
            indent=max(2, min(self.unit, 9)),
            width=1 << 20,
        )
        return [" " * indent + line + self.newline for line in dumped.splitlines()]

    def open_mapping(self, index: int) -> tuple[int, int]:
        """Make sure the key on line `index` holds a block mapping; (start, end) of its lines."""
        parsed = _parse(self.lines[index])
        start, end = index + 1, self.span_end(index)
        if parsed.value in ("", "{}", "null", "~", "Null", "NULL"):
            if (
                parsed.value
                and end > start
                and any(not _is_blank_or_comment(self.lines[i]) for i in range(start, end))
            ):
                raise _LayoutError(f"line {index + 1} has both an inline value and a block")
            if parsed.value:
                self.lines[index] = self._key_line(index, parsed) + parsed.comment + self.newline
            return start, end
        raise _LayoutError(f"line {index + 1}: '{parsed.value}' is not a block mapping")

    def _key_line(self, index: int, parsed: _Line) -> str:
        line = self.lines[index].rstrip("\r\n")
        without_comment = line[: len(line) - len(parsed.comment)] if parsed.comment else line
        without_value = without_comment.rstrip()
        if parsed.value and without_value.endswith(parsed.value):
            without_value = without_value[: -len(parsed.value)].rstrip()
        return without_value

    def set(self, path: tuple[str, ...], value: Any) -> None:
        start, end, indent = 0, len(self.lines), 0
        for depth, key in enumerate(path):
            child_indent, index = self.find(key, start, end)
            if child_indent is not None:
                indent = child_indent
            if index is None:
                rest: Any = value
                for inner in reversed(path[depth + 1 :]):
                    rest = {inner: rest}
                self.lines[end:end] = self.render(key, rest, indent)
                return
            if depth == len(path) - 1:
                self._replace(index, key, value)
                return
            parent_indent = indent
            start, end = self.open_mapping(index)
            first_child, _ = self.children(start, end)
            indent = first_child if first_child is not None else parent_indent + self.unit

    def _replace(self, index: int, key: str, value: Any) -> None:
        parsed = _parse(self.lines[index])
        new = self.render(key, value, parsed.indent)
        if len(new) == 1 and parsed.comment:
            new[0] = new[0].rstrip("\r\n") + parsed.comment + self.newline
        self.lines[index : self.span_end(index)] = new

    def delete(self, path: tuple[str, ...]) -> None:
        start, end = 0, len(self.lines)
        parent: int | None = None
        for depth, key in enumerate(path):
            _, index = self.find(key, start, end)
            if index is None:
                return
            if depth == len(path) - 1:
                del self.lines[index : self.span_end(index)]
                if parent is not None:
                    self._close_if_empty(parent)
                return
            parent = index
            parsed = _parse(self.lines[index])
            if parsed.value not in ("",):
                return  # an inline empty value: nothing below it to delete
            start, end = index + 1, self.span_end(index)

    def _close_if_empty(self, index: int) -> None:
        """A mapping whose last key went away becomes `key: {}` (a bare `key:` would mean null)."""
        start, end = index + 1, self.span_end(index)
        if any(not _is_blank_or_comment(self.lines[i]) for i in range(start, end)):
            return
        parsed = _parse(self.lines[index])
        self.lines[index] = self._key_line(index, parsed) + " {}" + parsed.comment + self.newline


def edit_text(text: str, edits: Sequence[Edit]) -> str:
    """The file's text with the edits made line by line; _LayoutError when beyond the editor."""
    document = _Document(text)
    for edit in edits:
        if isinstance(edit, SetValue):
            document.set(edit.path, edit.value)
        else:
            document.delete(edit.path)
    return document.text()


@dataclass(frozen=True)
class EditResult:
    """The new text of the file, and whether the user's layout (comments, order) was kept."""

    text: str
    preserved: bool
    reason: str = ""
    """Why the layout could not be kept (empty when it was)."""


def update_text(text: str, edits: Sequence[Edit]) -> EditResult:
    """Apply edits to a configuration file's text, keeping its layout when the editor can."""
    try:
        original = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigEditError(f"the configuration file is not valid YAML ({exc})") from None
    expected = apply_to_data(original, edits)
    try:
        edited = edit_text(text, edits)
        if yaml.safe_load(edited) == expected:
            return EditResult(edited, preserved=True)
        reason = "the line editor's result differed from the intended settings"
    except _LayoutError as exc:
        reason = str(exc)
    except yaml.YAMLError as exc:
        reason = f"the line editor's result is not valid YAML ({exc})"
    dumped = yaml.safe_dump(expected, default_flow_style=False, sort_keys=False, allow_unicode=True)
    return EditResult(dumped, preserved=False, reason=reason)


# --- the file -------------------------------------------------------------------------------------


def load_document(path: Path) -> dict[str, Any]:
    """The configuration file as plain data (no validation); ConfigEditError when unreadable."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigEditError(f"cannot read {path} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigEditError(f"{path} is not valid YAML ({exc})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigEditError(f"{path} does not hold a mapping of sections")
    return loaded


def device_key(document: dict[str, Any], ieee: str) -> str:
    """The key under `devices:` the file uses for a device (its own spelling of the address)."""
    devices = document.get("devices")
    if isinstance(devices, dict):
        for key in devices:
            if isinstance(key, str) and key.lower() == ieee.lower():
                return key
    return ieee


def backup_path(path: Path) -> Path:
    """Where the previous file is kept when it had to be rewritten in full."""
    return path.with_name(path.name + ".bak")


def save_edits(path: Path, edits: Sequence[Edit]) -> EditResult:
    """Apply edits to the configuration file, atomically; ConfigEditError says why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigEditError(f"cannot read {path} ({exc.strerror})") from None
    result = update_text(text, edits)
    if result.text == text:
        return result
    try:
        if not result.preserved:
            shutil.copy2(path, backup_path(path))
            keep_owner(backup_path(path), path.stat(), backup_path(path))
        write_atomically(path, result.text)
    except OSError as exc:
        raise ConfigEditError(f"cannot write {path} ({exc.strerror})") from None
    if not result.preserved:
        _LOGGER.warning(
            "Rewrote %s in full (comments and layout are lost: %s); the previous file is %s",
            path,
            result.reason,
            backup_path(path),
        )
    return result
