"""Secrets out of log lines: every form the radio libraries print a key in, passwords, URLs."""

from __future__ import annotations

import logging
import secrets

import pytest

from z2m_qbkg40lm.redaction import (
    REDACTED,
    RedactingFilter,
    protect,
    redact,
    redact_url_passwords,
    register_key,
    register_text,
)


def key_forms(key: bytes) -> list[str]:
    """The key as zigpy, zigpy-znp, bellows, zigpy-deconz, aiosqlite and Python print it."""
    return [
        ":".join(f"{b:02x}" for b in key),  # zigpy KeyData, backups as JSON
        ":".join(f"{b:02X}" for b in key),
        key.hex(),  # hexlify of frames (deCONZ, bellows)
        key.hex().upper(),
        " ".join(f"{b:02x}" for b in key),
        "".join(f"\\x{b:02X}" for b in key),  # zigpy-znp's bytes repr
        repr(key)[2:-1],  # Python's bytes repr
        repr(list(key))[1:-1],  # a list of ints
        ", ".join(f"0x{b:02x}" for b in key),
    ]


# Printable bytes, a quote, a backslash and a new line: the repr forms differ from plain hex.
AWKWARD_KEY = bytes(
    [0x41, 0x27, 0x5C, 0x0A, 0x22, 0xAB, 0xCD, 0xEF, 0x10, 0x20, 0x30, 0x7F, 0x80, 0xFE, 0x61, 0x62]
)


@pytest.mark.parametrize("key", [AWKWARD_KEY, secrets.token_bytes(16)])
def test_every_form_of_a_registered_key_is_replaced(key: bytes) -> None:
    register_key(key)
    for form in key_forms(key):
        line = f"Sending request: SYS.OSALNVWriteExt.Req(Value=[{form}]) and more"
        redacted = redact(line)
        assert REDACTED in redacted, form
        for other in key_forms(key):
            assert other not in redacted, (form, redacted)
        assert redacted == f"Sending request: SYS.OSALNVWriteExt.Req(Value=[{REDACTED}]) and more"


def test_a_key_named_in_a_line_is_replaced_and_learnt_before_it_is_registered() -> None:
    key = secrets.token_bytes(16)
    colon = ":".join(f"{b:02x}" for b in key)
    assert redact(f"NetworkInfo(network_key=Key(key={colon}, tx_counter=0)") == (
        f"NetworkInfo(network_key=Key(key={REDACTED}, tx_counter=0)"
    )
    assert redact(f'{{"tclk_seed": "{key.hex()}"}}') == f'{{"tclk_seed": "{REDACTED}"}}'
    # Learnt: its byte-string form in a later line is hidden too.
    raw = "".join(f"\\x{b:02X}" for b in key)
    assert redact(f"Value=b'\\x00{raw}'") == f"Value=b'\\x00{REDACTED}'"


def test_other_data_is_left_alone() -> None:
    register_key(secrets.token_bytes(16))
    line = "Read NVRAM[0x0021] = NIB(SequenceNum=0, nwkPanId=0x1A62, extendedPANID=dd:dd:dd:dd:dd:dd:dd:dd)"
    assert redact(line) == line


def test_passwords_are_replaced_as_written_and_as_escaped() -> None:
    register_text("pa'ss\\wörd-42")
    assert redact("login with pa'ss\\wörd-42 now") == f"login with {REDACTED} now"
    assert redact(repr("pa'ss\\wörd-42")) == f'"{REDACTED}"'
    assert redact('{"password": "pa\'ss\\\\w\\u00f6rd-42"}') == f'{{"password": "{REDACTED}"}}'


def test_short_passwords_are_not_replaced_everywhere() -> None:
    register_text("abc")
    assert redact("abcdef") == "abcdef"


def test_url_passwords_are_replaced_even_when_unknown() -> None:
    text = "cannot connect to mqtts://zigbee:s3cr3t%21@broker.lan:8883 (refused)"
    assert (
        redact_url_passwords(text) == f"cannot connect to mqtts://zigbee:{REDACTED}@broker.lan:8883 (refused)"
    )
    assert redact("mqtt://broker.lan:1883 and mqtt://user@broker.lan") == (
        "mqtt://broker.lan:1883 and mqtt://user@broker.lan"
    )


def test_the_filter_rewrites_message_arguments_and_tracebacks() -> None:
    key = secrets.token_bytes(16)
    register_key(key)
    handler = logging.Handler()
    protect(handler)
    protect(handler)
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    try:
        raise ValueError(f"bad key {key.hex()}")
    except ValueError as exc:
        failure = (type(exc), exc, exc.__traceback__)
    record = logging.LogRecord("zigpy", logging.DEBUG, __file__, 1, "key %s (%r)", (key.hex(), key), failure)
    assert handler.filter(record)
    text = logging.Formatter().format(record)
    assert "ValueError: bad key" in text
    for form in key_forms(key):
        assert form not in text, form
    assert text.count(REDACTED) == 3


def test_a_malformed_log_call_is_passed_on_for_the_handler_to_report() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    assert RedactingFilter().filter(record)
    assert record.args == ("not a number",)


def test_a_key_sized_nvram_value_of_zigpy_znp_is_hidden_before_the_key_is_known() -> None:
    key = secrets.token_bytes(16)
    raw = "".join(f"\\x{b:02X}" for b in key)
    line = f"Received command: SYS.OSALNVReadExt.Rsp(Status=<Status.SUCCESS: 0>, Value=b'\\x00{raw}')"
    assert (
        redact(line)
        == f"Received command: SYS.OSALNVReadExt.Rsp(Status=<Status.SUCCESS: 0>, Value=b'{REDACTED}')"
    )
    assert redact(f"Key={key.hex(':')}") == f"Key={REDACTED}"
    assert redact(f"frame {key.hex()}") == f"frame {REDACTED}", "learnt"
    nib = "".join(f"\\x{b:02X}" for b in secrets.token_bytes(40))
    assert redact(f"Value=b'{nib}'") == f"Value=b'{nib}'"


def test_keys_named_by_bellows_and_zigpy_deconz_are_hidden() -> None:
    key = secrets.token_bytes(16)
    colon = key.hex(":")
    assert redact(f"EmberInitialSecurityState(bitmask=1, networkKey={colon}, seq=0)") == (
        f"EmberInitialSecurityState(bitmask=1, networkKey={REDACTED}, seq=0)"
    )
    assert (
        redact(f"Read parameter network_key(None)={colon}") == f"Read parameter network_key(None)={REDACTED}"
    )


def test_bellows_randomised_serial_dumps_are_not_shown() -> None:
    record = logging.LogRecord(
        "bellows.ash", logging.DEBUG, __file__, 1, "Sending data  %s", (secrets.token_bytes(40).hex(),), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "Sending data  <40 bytes, not shown>"
    other = logging.LogRecord(
        "zigpy_deconz.uart", logging.DEBUG, __file__, 1, "Frame received: 0x%s", ("0a0b",), None
    )
    assert RedactingFilter().filter(other)
    assert other.getMessage() == "Frame received: 0x0a0b"
