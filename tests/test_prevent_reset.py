"""Prevent reset: the switch's Basic 0xFFF0 "may I reset?" report is answered as the Aqara hub does.

Trigger: a report of Basic 0x0000 attribute 0xFFF0 whose value starts `aa 10 05 41 87`. Answer: a
write of Basic 0xFFF0 on endpoint 1, octet string `aa 10 05 41 47 01 01 10 01`, manufacturer code
0x115F, with the disable-default-response bit (frame `14 5F 11 tt 02 F0 FF 41 09 AA …`).
First the pure responder, then the daemon against the virtual adapter and the real broker.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from zigpy.zcl import foundation

from tests.in_process import InProcess, ReceivedFrame, daemon_in_process
from z2m_qbkg40lm.devices.definition import (
    AttributeMessage,
    DeviceDefinition,
    Responder,
    Response,
    WriteAttribute,
)
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM
from z2m_qbkg40lm.devices.registry import responses
from z2m_qbkg40lm.sim.frames import ApsFrame

BASIC = 0x0000
MFR = 0x115F
ASK = bytes.fromhex("aa 10 05 41 87 01 01 10 00")
ANSWER = bytes.fromhex("aa 10 05 41 47 01 01 10 01")
THE_WRITE = WriteAttribute(1, BASIC, 0xFFF0, 0x41, ANSWER, manufacturer=MFR)


def report(
    value: Any, *, attribute: int = 0xFFF0, cluster: int = BASIC, endpoint: int = 1
) -> AttributeMessage:
    return AttributeMessage(endpoint, cluster, attribute, value, "report")


# --- The responder, pure -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [ASK, ASK[:5], ASK[:5] + b"\xff\xff", bytearray(ASK), memoryview(ASK)],
    ids=["example", "prefix-only", "other-tail", "bytearray", "memoryview"],
)
def test_the_trigger_prefix_is_answered_with_the_hubs_write(value: Any) -> None:
    assert responses(QBKG40LM, report(value)) == (Response("prevent reset", (THE_WRITE,)),)


def test_the_write_is_an_octet_string_with_lumis_code_and_no_default_response() -> None:
    [response] = responses(QBKG40LM, report(ASK))
    [write] = response.operations
    assert isinstance(write, WriteAttribute)
    assert (write.endpoint, write.cluster_id, write.attribute_id) == (1, BASIC, 0xFFF0)
    assert (write.zcl_type, write.value, write.manufacturer) == (0x41, ANSWER, MFR)
    assert write.disable_default_response is True
    assert write.await_response is True  # Zigbee2MQTT waits for the Write Attributes Response too


@pytest.mark.parametrize("endpoint", [1, 2, 41])
def test_the_answer_goes_to_endpoint_1_whichever_endpoint_asked(endpoint: int) -> None:
    [response] = responses(QBKG40LM, report(ASK, endpoint=endpoint))
    assert response.operations == (THE_WRITE,)


@pytest.mark.parametrize(
    "value",
    [
        ANSWER,  # the hub's own answer read back
        bytes.fromhex("aa 10 05 41"),  # too short to be the question
        bytes.fromhex("aa 80 05 d1 47 07 01 10 01"),  # another Lumi 0xFFF0 exchange
        bytes.fromhex("ab 10 05 41 87 01 01 10 00"),
        b"",
        "aa10054187",  # text, not bytes
        [0xAA, 0x10, 0x05, 0x41, 0x87],
        None,
        0xAA10054187,
    ],
)
def test_other_0xfff0_values_are_not_answered(value: Any) -> None:
    assert responses(QBKG40LM, report(value)) == ()


@pytest.mark.parametrize(
    ("cluster", "attribute"),
    [(BASIC, 0x0005), (BASIC, 0xFFF1), (BASIC, 0xFF01), (0xFCC0, 0xFFF0), (0xFCC0, 0x00F7), (0x0006, 0xFFF0)],
)
def test_other_attributes_are_not_answered(cluster: int, attribute: int) -> None:
    assert responses(QBKG40LM, report(ASK, cluster=cluster, attribute=attribute)) == ()


def test_a_read_answer_is_not_a_request() -> None:
    # Zigbee2MQTT answers attribute reports only; a read answer is the coordinator's own question.
    assert responses(QBKG40LM, AttributeMessage(1, BASIC, 0xFFF0, ASK, "read")) == ()


def _definition_with(*responders: Responder) -> DeviceDefinition:
    return DeviceDefinition(
        ("test.model",), "TEST", "Test", "test", (), (), (), (), (), responders=responders
    )


def test_a_raising_responder_is_logged_and_the_others_still_answer(caplog: pytest.LogCaptureFixture) -> None:
    def broken(message: AttributeMessage) -> tuple[WriteAttribute, ...]:
        raise IndexError("bug")

    definition = _definition_with(
        Responder("broken", BASIC, frozenset({0xFFF0}), broken),
        Responder("fine", BASIC, frozenset({0xFFF0}), lambda m: (THE_WRITE,)),
    )
    assert responses(definition, report(ASK)) == (Response("fine", (THE_WRITE,)),)
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "TEST: responder 'broken' failed on 0x0000/0xFFF0" in record.getMessage()
    assert record.exc_info is not None


def test_a_definition_without_responders_answers_nothing() -> None:
    assert _definition_with().responders == ()
    assert responses(_definition_with(), report(ASK)) == ()


# --- End to end: the daemon answers the simulated switch ----------------------------------------------


def _trigger(running: InProcess, *, manufacturer: int | None = None) -> ApsFrame:
    """The switch's "may I reset?" report, as the real one sends it."""
    return running.switch._report(1, BASIC, [(0xFFF0, 0x41, ASK)], manufacturer=manufacturer)


def _is_the_answer(received: ReceivedFrame) -> bool:
    return (
        received.frame.cluster_id == BASIC
        and received.header.command_id == foundation.GeneralCommand.Write_Attributes
    )


def _write_response(
    frame: ApsFrame, header: foundation.ZCLHeader, status: foundation.Status
) -> list[ApsFrame]:
    """A Write Attributes Response to a manufacturer-specific write, as the switch would send it."""
    body = bytes([status]) if status == foundation.Status.SUCCESS else bytes([status, 0xF0, 0xFF])
    payload = bytes([0x1C, 0x5F, 0x11, header.tsn, foundation.GeneralCommand.Write_Attributes_rsp]) + body
    return [ApsFrame(frame.dst_endpoint, frame.src_endpoint, frame.profile_id, frame.cluster_id, payload)]


def _answer_0xfff0_writes(status: foundation.Status) -> Any:
    def answer(frame: ApsFrame, header: foundation.ZCLHeader) -> list[ApsFrame] | None:
        if frame.cluster_id == BASIC and header.command_id == foundation.GeneralCommand.Write_Attributes:
            return _write_response(frame, header, status)
        return None

    return answer


@pytest.mark.parametrize("manufacturer", [None, MFR], ids=["plain-report", "manufacturer-specific-report"])
async def test_the_daemon_answers_the_reset_request_on_the_wire(
    tmp_path: Path, manufacturer: int | None
) -> None:
    async with daemon_in_process(tmp_path) as running:
        # The switch's firmware model is tested on its own; here the test answers the write as a
        # switch that takes it, so that the daemon's side is checked alone.
        running.answers.append(_answer_0xfff0_writes(foundation.Status.SUCCESS))
        position, sent = running.watcher.mark(), running.mark()
        running.send_from_switch([_trigger(running, manufacturer=manufacturer)])

        received = await running.wait_received(_is_the_answer, after=sent)
        assert received.frame.dst_endpoint == 1
        assert received.frame.profile_id == 0x0104
        assert received.header.frame_control.is_manufacturer_specific
        assert received.header.manufacturer == MFR
        assert received.header.frame_control.disable_default_response
        assert received.header.direction == foundation.Direction.Client_to_Server
        # The whole frame, byte for byte: 14 5F 11 tt 02 F0 FF 41 09 AA 10 05 41 47 01 01 10 01.
        payload = received.frame.payload
        assert payload[:3] == bytes.fromhex("14 5F 11")
        assert payload[4:] == bytes.fromhex("02 F0 FF 41 09") + ANSWER

        record = await running.watcher.wait_log(
            lambda r: r["level"] == "info" and "prevent reset" in r["message"], after=position
        )
        assert record["message"].startswith(f"Answered the prevent reset request of '{running.ieee}'")
        assert ASK.hex(" ") in record["message"]
        assert ANSWER.hex(" ") in record["message"]
        assert len(running.received_since(sent, _is_the_answer)) == 1


async def test_a_failed_answer_is_a_warning_and_the_daemon_serves_on(tmp_path: Path) -> None:
    async with daemon_in_process(tmp_path) as running:
        running.answers.append(_answer_0xfff0_writes(foundation.Status.UNSUPPORTED_ATTRIBUTE))
        position = running.watcher.mark()
        running.send_from_switch([_trigger(running)])
        record = await running.watcher.wait_log(lambda r: "prevent reset" in r["message"], after=position)
        assert record["level"] == "warning"
        assert record["message"].startswith("Could not answer the prevent reset request of ")
        assert "UNSUPPORTED_ATTRIBUTE" in record["message"]

        # Still serving: a /set is carried out and published.
        position = running.watcher.mark()
        await running.watcher.publish(f"{running.ieee}/set", '{"state": "ON"}')
        await running.watcher.wait_state(running.ieee, lambda s: s.get("state") == "ON", after=position)
        assert running.switch.relay is True


async def test_a_report_that_is_not_the_request_gets_no_answer(tmp_path: Path) -> None:
    async with daemon_in_process(tmp_path) as running:
        other = running.switch._report(1, BASIC, [(0xFFF0, 0x41, ANSWER)])
        sent = running.mark()
        running.send_from_switch([other])
        # A request after it is answered; the other report before it was not.
        running.answers.append(_answer_0xfff0_writes(foundation.Status.SUCCESS))
        running.send_from_switch([_trigger(running)])
        await running.wait_received(_is_the_answer, after=sent)
        assert len(running.received_since(sent, _is_the_answer)) == 1


async def test_one_answer_at_a_time_and_none_left_running_at_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="z2m_qbkg40lm.bridge.device_responders")

    def swallow(frame: ApsFrame, header: foundation.ZCLHeader) -> list[ApsFrame] | None:
        # A switch that takes the write but does not (yet) answer it: the answer stays under way.
        if frame.cluster_id == BASIC and header.command_id == foundation.GeneralCommand.Write_Attributes:
            return []
        return None

    async with daemon_in_process(tmp_path) as running:
        running.answers.append(swallow)
        sent = running.mark()
        running.send_from_switch([_trigger(running)])
        await running.wait_received(_is_the_answer, after=sent)

        # Asked again while the first answer waits: the press behind it in the same burst shows
        # that the daemon has seen the second request.
        position = running.watcher.mark()
        press = running.switch._report(41, 0x0012, [(0x0055, 0x21, 2)])
        running.send_from_switch([_trigger(running), press])
        await running.watcher.wait_state(running.ieee, lambda s: s.get("action") == "double", after=position)
        assert len(running.received_since(sent, _is_the_answer)) == 1
        [again] = [r for r in caplog.records if "asked again" in r.getMessage()]
        assert (
            again.getMessage()
            == f"'{running.ieee}' asked again (prevent reset) while the answer is under way"
        )
    # Leaving the context stopped the daemon with exit code 0 while the answer was under way; the
    # test's fixture fails it if a task was left running.
