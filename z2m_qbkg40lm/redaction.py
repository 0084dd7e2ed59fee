"""Secrets kept out of every log line, ours and the radio libraries', on the console and on MQTT.

At `log_level: debug` zigpy and its radio libraries print the network key in several forms
(`Key(key=aa:bb:…)`, `Value=b'\\xAA\\xBB…'`, backups as JSON), and any MQTT client may switch the
level to debug. A filter on the log handlers rewrites each record before it is written anywhere:
every registered secret is replaced, whatever form it is printed in.

Secrets are registered as soon as they are known (the configuration loaded, secrets.yaml read);
keys that a library prints in a recognisable `key=…` form are learnt on first sight, so that their
later byte-string forms are hidden too. Registration is global, like logging itself.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable

REDACTED = "<redacted>"

_MIN_TEXT_LENGTH = 4
"""Shorter secrets are not replaced: a password "ab" would blank out every "ab" of every line."""
_MAX_LEARNT_KEYS = 32
"""Keys learnt from log lines (bounded: anyone who can make us log a line could add one)."""
_KEY_LENGTH = 16

# `key=aa:bb:…`, `Key=AABB…`, `"key": "aa:bb:…"`, `"tclk_seed": "…"`: 16 bytes after a key's name.
# Also `networkKey=` (bellows' structs) and `network_key(None)=` (zigpy-deconz's parameters).
_NAMED_KEY = re.compile(
    r"((?:key|seed)[\w()]{0,12}['\"]?\s*[=:]\s*['\"]?)((?:[0-9a-f]{2}:?){15}[0-9a-f]{2})(?![0-9a-f])",
    re.IGNORECASE,
)
# zigpy-znp's NVRAM reads and writes print every byte as `\xHH`; a value of 16 bytes, or 17 (a key
# sequence number and a key), is a key (network, alternate, pre-configured, TCLK seed) or of no
# interest: hidden even when the key is not known yet (a stick formed elsewhere, no zigbee.db).
_ZNP_NVRAM_KEY = re.compile(r"(\bValue=b')((?:\\x[0-9A-Fa-f]{2}){16,17})(')")
# The password of a URL's user-info (`mqtt://user:password@host`).
_URL_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.\-]*://[^\s/@:]*:)([^\s/@]+)(@)", re.IGNORECASE)
# bellows dumps the serial bytes of its ASH layer, where the EZSP frame is XORed with a
# pseudo-random sequence and byte-stuffed: no key can be recognised there, so the bytes are not
# shown (the same frames are logged decoded, and redacted, as "Sending frame"/"Received frame").
_OPAQUE_DUMPS = {"bellows.ash": re.compile(r"^((?:Sending|Received) data\s+)([0-9a-f]+)$")}
_SEPARATOR = r"[:\s,\-]{0,2}"
_REPR_ESCAPES = {ord("\\"): r"\\\\", ord("\t"): r"\\t", ord("\n"): r"\\n", ord("\r"): r"\\r"}


def _byte_forms(value: int) -> str:
    """A regex for one byte as the libraries print it: `aa`, `AA`, `\\xaa`, `0xaa` or a repr char."""
    forms = [rf"(?:\\x|0x)?{value:02x}"]
    if value in _REPR_ESCAPES:
        forms.append(_REPR_ESCAPES[value])
    elif 0x20 <= value < 0x7F:
        char = chr(value)
        forms.append(rf"\\?{re.escape(char)}" if char in "'\"" else re.escape(char))
    return "(?:" + "|".join(forms) + ")"


def _key_pattern(key: bytes) -> str:
    """Every form of one key: hex with or without separators, byte-string reprs, a list of ints."""
    as_bytes = _SEPARATOR.join(_byte_forms(value) for value in key)
    as_ints = r",\s*".join(str(value) for value in key)
    return rf"{as_bytes}|(?<!\d){as_ints}(?!\d)"


class _Registry:
    """The secrets known so far and one compiled pattern for them all (swapped whole: thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[bytes] = set()
        self._learnt: set[bytes] = set()
        self._texts: set[str] = set()
        self._keys_pattern: re.Pattern[str] | None = None
        self._texts_pattern: re.Pattern[str] | None = None

    def add_key(self, key: bytes, *, learnt: bool = False) -> None:
        if len(key) != _KEY_LENGTH or not any(key):
            return
        with self._lock:
            if key in self._keys:
                return
            if learnt:
                if len(self._learnt) >= _MAX_LEARNT_KEYS:
                    return
                self._learnt.add(key)
            self._keys.add(key)
            alternatives = "|".join(f"(?:{_key_pattern(known)})" for known in sorted(self._keys))
            self._keys_pattern = re.compile(alternatives, re.IGNORECASE)

    def add_text(self, secret: str) -> None:
        if len(secret) < _MIN_TEXT_LENGTH:
            return
        with self._lock:
            # The secret as written, and as a repr or JSON would escape it.
            forms = {
                secret,
                repr(secret)[1:-1],
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
            }
            if forms <= self._texts:
                return
            self._texts |= forms
            ordered = sorted(self._texts, key=len, reverse=True)  # the longest form first
            self._texts_pattern = re.compile("|".join(re.escape(text) for text in ordered))

    def redact(self, text: str) -> str:
        text = _NAMED_KEY.sub(self._hide_named_key, text)
        keys = self._keys_pattern
        if keys is not None:
            text = keys.sub(REDACTED, text)
        text = _ZNP_NVRAM_KEY.sub(self._hide_nvram_value, text)
        texts = self._texts_pattern
        if texts is not None:
            text = texts.sub(REDACTED, text)
        return redact_url_passwords(text)

    def _hide_nvram_value(self, match: re.Match[str]) -> str:
        value = bytes.fromhex(match.group(2).replace("\\x", ""))
        self.add_key(value[-_KEY_LENGTH:], learnt=True)
        return match.group(1) + REDACTED + match.group(3)

    def _hide_named_key(self, match: re.Match[str]) -> str:
        self.add_key(bytes.fromhex(match.group(2).replace(":", "")), learnt=True)
        return match.group(1) + REDACTED


_REGISTRY = _Registry()


def register_key(key: bytes | Iterable[int]) -> None:
    """Hide a 16-byte key (network key, link key) from every log line from now on."""
    _REGISTRY.add_key(bytes(key))


def register_text(secret: str | None) -> None:
    """Hide a password or passphrase (at least 4 characters) from every log line from now on."""
    if secret:
        _REGISTRY.add_text(secret)


def redact(text: str) -> str:
    """`text` with every known secret, named key and URL password replaced by `<redacted>`."""
    return _REGISTRY.redact(text)


def redact_url_passwords(text: str) -> str:
    """`text` with the password of every `scheme://user:password@host` replaced."""
    return _URL_PASSWORD.sub(rf"\1{REDACTED}\3", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack with the secrets replaced; drops nothing."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed call: the handler reports it as such
        redacted = redact(_without_opaque_dump(record.name, message))
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _without_opaque_dump(logger: str, message: str) -> str:
    dump = _OPAQUE_DUMPS.get(logger)
    match = None if dump is None else dump.match(message)
    if match is None:
        return message
    return f"{match.group(1)}<{len(match.group(2)) // 2} bytes, not shown>"


_FILTER = RedactingFilter()


def protect(handler: logging.Handler) -> None:
    """Make `handler` write only redacted records (once per handler)."""
    if _FILTER not in handler.filters:
        handler.addFilter(_FILTER)
