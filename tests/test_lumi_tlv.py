"""The Lumi TLV heartbeat codec: the reference's decoded samples and every way a body can go wrong."""

from __future__ import annotations

import logging
import math

import pytest

from z2m_qbkg40lm.devices.lumi_tlv import TlvError, TlvValue, decode_tlv, encode_tlv, parse_tlv

# Koenkk/zigbee2mqtt #17946, QBKG41LM 2-gang, 34 bytes (reference §6.4).
QBKG41LM_BODY = bytes.fromhex(
    "64 10 00 65 10 01 03 28 21 05 21 04 00 9A 20 00 08 21 19 01 09 21 00 0C 0B 20 00 0A 21 00 00 0C 20 01"
)
# The constructed QBKG40LM body of reference §6.4, 31 bytes: relay on, 31 °C, counter 2.
QBKG40LM_BODY = bytes.fromhex(
    "64 10 01 03 28 1F 05 21 02 00 9A 20 00 08 21 14 01 09 21 00 01 0B 20 00 0A 21 00 00 0C 20 01"
)
# H1 sample (home-assistant/core #73591): the attribute record minus `F7 00 41 23`.
H1_BODY = bytes.fromhex(
    "64 10 00 65 10 00 03 28 19 05 21 03 00 9A 20 00 0A 21 A4 C7 0B 20 00 0D 23 0B 0E 00 00 0E 23 00 00 00 00"
)


def test_qbkg41lm_capture_decodes_to_the_documented_values() -> None:
    assert len(QBKG41LM_BODY) == 34
    decoded = decode_tlv(QBKG41LM_BODY)
    assert decoded.complete
    assert decoded.items == {
        100: False,
        101: True,
        3: 33,
        5: 4,
        154: 0,
        8: 281,
        9: 3072,
        11: 0,
        10: 0x0000,
        12: 1,
    }


def test_constructed_qbkg40lm_body_decodes_to_the_documented_values() -> None:
    assert len(QBKG40LM_BODY) == 31
    assert parse_tlv(QBKG40LM_BODY, strict=True) == {
        100: True,
        3: 31,
        5: 2,
        154: 0,
        8: 276,
        9: 256,
        11: 0,
        10: 0,
        12: 1,
    }


def test_h1_sample_with_parent_address_and_firmware() -> None:
    items = parse_tlv(H1_BODY, strict=True)
    assert items[3] == 25
    assert items[5] == 3
    assert items[10] == 0xC7A4
    assert items[13] == 0x00000E0B
    assert items[100] is False
    assert items[101] is False


def test_bool_items_are_bools() -> None:
    items = parse_tlv(QBKG40LM_BODY)
    assert items[100] is True
    assert isinstance(items[3], int)
    assert not isinstance(items[3], bool)


def test_empty_body_is_complete_and_empty() -> None:
    decoded = decode_tlv(b"")
    assert decoded.complete
    assert decoded.items == {}


def test_one_trailing_null_is_tolerated() -> None:
    decoded = decode_tlv(QBKG40LM_BODY + b"\x00")
    assert decoded.complete
    assert decoded.items == parse_tlv(QBKG40LM_BODY)


def test_a_lone_null_is_an_empty_body() -> None:
    assert decode_tlv(b"\x00").complete


def test_two_trailing_nulls_stop_with_a_reason_and_keep_the_items() -> None:
    decoded = decode_tlv(QBKG40LM_BODY + b"\x00\x00")
    assert not decoded.complete
    assert decoded.problem is not None
    assert "0x00" in decoded.problem
    assert decoded.items == parse_tlv(QBKG40LM_BODY)


def test_unknown_type_mid_body_keeps_what_came_before() -> None:
    body = bytes.fromhex("64 10 01 03 28 1F 07 99 01 02 05 21 02 00")
    decoded = decode_tlv(body)
    assert decoded.items == {100: True, 3: 31}
    assert decoded.problem is not None
    assert "0x99" in decoded.problem
    assert "item 7" in decoded.problem


def test_truncated_value_keeps_what_came_before() -> None:
    body = bytes.fromhex("64 10 01 03 28 1F 05 21 02")
    decoded = decode_tlv(body)
    assert decoded.items == {100: True, 3: 31}
    assert decoded.problem is not None
    assert "truncated item 5" in decoded.problem
    assert "needs 2 byte(s), 1 left" in decoded.problem


def test_index_without_type_at_the_end_is_truncated() -> None:
    decoded = decode_tlv(QBKG40LM_BODY + b"\x0d")
    assert decoded.items == parse_tlv(QBKG40LM_BODY)
    assert decoded.problem is not None
    assert "without a type" in decoded.problem


def test_truncated_string_keeps_what_came_before() -> None:
    decoded = decode_tlv(bytes.fromhex("03 28 1F 07 41 05 01 02"))
    assert decoded.items == {3: 31}
    assert decoded.problem is not None
    assert "string of 5 byte(s), 2 left" in decoded.problem


def test_string_without_its_length_is_truncated() -> None:
    decoded = decode_tlv(bytes.fromhex("03 28 1F 07 41"))
    assert decoded.items == {3: 31}
    assert decoded.problem is not None
    assert "length missing" in decoded.problem


def test_char_string_0x42_decodes_to_str() -> None:
    body = bytes.fromhex("06 42 05") + b"E1-v2" + bytes.fromhex("03 28 1F")
    assert parse_tlv(body, strict=True) == {6: "E1-v2", 3: 31}


def test_char_string_with_invalid_utf8_does_not_raise() -> None:
    items = parse_tlv(bytes.fromhex("06 42 02 FF FE"), strict=True)
    assert isinstance(items[6], str)


def test_octet_string_0x41_decodes_to_bytes() -> None:
    assert parse_tlv(bytes.fromhex("07 41 03 00 01 FF 03 28 1F"), strict=True) == {7: b"\x00\x01\xff", 3: 31}


def test_long_strings_have_a_two_byte_length() -> None:
    body = bytes.fromhex("07 43 02 00 AA BB 08 44 01 00") + b"x"
    assert parse_tlv(body, strict=True) == {7: b"\xaa\xbb", 8: "x"}


def test_invalid_string_length_0xff_is_an_empty_string() -> None:
    assert parse_tlv(bytes.fromhex("07 41 FF 03 28 1F"), strict=True) == {7: b"", 3: 31}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("03 28 FF", -1),
        ("03 28 80", -128),
        ("03 29 00 80", -32768),
        ("03 29 FE FF", -2),
        ("03 2A FF FF FF", -1),
        ("03 2B 00 00 00 80", -(2**31)),
        ("03 2F FF FF FF FF FF FF FF FF", -1),
        ("03 21 34 12", 0x1234),
        ("03 22 56 34 12", 0x123456),
        ("03 23 78 56 34 12", 0x12345678),
        ("03 24 01 00 00 00 80", 0x8000000001),
        ("03 25 01 00 00 00 00 80", 0x800000000001),
        ("03 26 01 00 00 00 00 00 80", 0x80000000000001),
        ("03 27 01 00 00 00 00 00 00 80", 0x8000000000000001),
        ("03 30 07", 7),
        ("03 31 01 02", 0x0201),
        ("03 18 81", 0x81),
        ("03 19 01 80", 0x8001),
    ],
)
def test_integers_are_little_endian_and_signed_types_signed(body: str, expected: int) -> None:
    assert parse_tlv(bytes.fromhex(body), strict=True) == {3: expected}


def test_floats_are_little_endian() -> None:
    items = parse_tlv(
        bytes.fromhex("01 39 00 00 C0 3F")
        + bytes.fromhex("02 3A 00 00 00 00 00 00 F8 3F")
        + bytes.fromhex("03 38 00 3E"),
        strict=True,
    )
    assert items == {1: 1.5, 2: 1.5, 3: 1.5}


def test_bool_only_true_for_one() -> None:
    assert parse_tlv(bytes.fromhex("64 10 00 65 10 01 66 10 FF"), strict=True) == {
        100: False,
        101: True,
        102: False,
    }


def test_a_repeated_index_keeps_the_last_value() -> None:
    assert parse_tlv(bytes.fromhex("03 28 1F 03 28 20"), strict=True) == {3: 32}


def test_strict_mode_raises_tlv_error_naming_the_problem() -> None:
    with pytest.raises(TlvError, match="truncated item 5"):
        parse_tlv(bytes.fromhex("03 28 1F 05 21 02"), strict=True)
    assert issubclass(TlvError, ValueError)


def test_tolerant_mode_logs_a_warning_and_returns_the_items(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="z2m_qbkg40lm.devices.lumi_tlv"):
        items = parse_tlv(bytes.fromhex("03 28 1F 05 99 02"))
    assert items == {3: 31}
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "unknown ZCL type 0x99" in record.getMessage()
    assert "1 item(s)" in record.getMessage()


def test_a_complete_body_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        parse_tlv(QBKG41LM_BODY)
    assert caplog.records == []


# --- Encoding --------------------------------------------------------------------------------------


def test_encode_builds_the_constructed_body_byte_for_byte() -> None:
    items: list[tuple[int, int, TlvValue]] = [
        (100, 0x10, True),
        (3, 0x28, 31),
        (5, 0x21, 2),
        (154, 0x20, 0),
        (8, 0x21, 276),
        (9, 0x21, 256),
        (11, 0x20, 0),
        (10, 0x21, 0),
        (12, 0x20, 1),
    ]
    assert encode_tlv(items) == QBKG40LM_BODY


@pytest.mark.parametrize(
    ("type_id", "value"),
    [
        (0x08, 0xAB),
        (0x0F, 2**64 - 1),
        (0x10, False),
        (0x18, 0xFF),
        (0x1F, 1),
        (0x20, 255),
        (0x21, 65535),
        (0x22, 2**24 - 1),
        (0x23, 2**32 - 1),
        (0x24, 2**40 - 1),
        (0x25, 2**48 - 1),
        (0x26, 2**56 - 1),
        (0x27, 2**64 - 1),
        (0x28, -128),
        (0x29, -32768),
        (0x2A, -(2**23)),
        (0x2B, -(2**31)),
        (0x2C, -(2**39)),
        (0x2D, -(2**47)),
        (0x2E, -(2**55)),
        (0x2F, -(2**63)),
        (0x30, 3),
        (0x31, 0x1234),
        (0x38, -2.5),
        (0x39, 0.25),
        (0x3A, math.pi),
        (0xE0, 0x01020304),
        (0xE1, 1),
        (0xE2, 1),
        (0xE8, 0xFCC0),
        (0xE9, 0x00F7),
        (0xEA, 7),
        (0xF0, 0x54EF441000ABCDEF),
        (0xF1, bytes(range(16))),
        (0x41, b"\x00\x01"),
        (0x42, "text"),
        (0x43, b"long"),
        (0x44, "long text"),
    ],
)
def test_every_type_round_trips(type_id: int, value: TlvValue) -> None:
    body = encode_tlv([(7, type_id, value), (3, 0x28, 31)])
    assert parse_tlv(body, strict=True) == {7: value, 3: 31}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([(3, 0x28, 128)], "does not fit"),
        ([(3, 0x20, -1)], "does not fit"),
        ([(3, 0x20, True)], "needs an int"),
        ([(3, 0x20, "1")], "needs an int"),
        ([(3, 0x10, 2)], "bool needs"),
        ([(3, 0x10, "yes")], "bool needs"),
        ([(3, 0x39, "1.5")], "needs a number"),
        ([(3, 0x38, 1e10)], "does not fit"),
        ([(3, 0xF1, b"short")], "needs 16 bytes"),
        ([(3, 0x41, 5)], "needs bytes or str"),
        ([(3, 0x41, b"x" * 255)], "too long"),
        ([(3, 0x99, 1)], "unsupported ZCL type 0x99"),
        ([(256, 0x20, 1)], "does not fit one byte"),
    ],
)
def test_encode_refuses_bad_items(items: list[tuple[int, int, TlvValue]], message: str) -> None:
    with pytest.raises(TlvError, match=message):
        encode_tlv(items)


def test_encode_longest_short_string() -> None:
    body = encode_tlv([(1, 0x41, b"x" * 254)])
    assert body[:3] == bytes([1, 0x41, 254])
    assert parse_tlv(body, strict=True) == {1: b"x" * 254}
