"""The radio layer's honest errors: start-up causes, reset signs, abandoned library tasks."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

import pytest
import zigpy.exceptions
import zigpy_znp.commands as c
import zigpy_znp.config
import zigpy_znp.types as t
from zigpy_znp.api import ZNP

from tests.support import free_port
from z2m_qbkg40lm.config import parse_config, resolve_network
from z2m_qbkg40lm.devices.registry import DEFINITIONS
from z2m_qbkg40lm.zigbee import znp_resets
from z2m_qbkg40lm.zigbee.adapters import reset_detection
from z2m_qbkg40lm.zigbee.failures import describe_failure, handle_loop_exception
from z2m_qbkg40lm.zigbee.radio import Radio, RadioError


async def test_starting_with_the_adapter_unreachable_gives_the_reason(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    raw = {
        "mqtt": {"server": "mqtt://localhost"},
        "serial": {"adapter": "zstack", "port": f"tcp://127.0.0.1:{port}"},
    }
    config = parse_config(raw, tmp_path / "configuration.yaml").config
    radio = Radio(config, tmp_path, resolve_network(config.advanced, tmp_path), DEFINITIONS)
    with pytest.raises(RadioError) as raised:
        await radio.start()
    message = str(raised.value)
    assert message.startswith(f"cannot start the zstack adapter on tcp://127.0.0.1:{port}: ")
    assert "Connect call failed" in message, message
    assert radio.state == "starting"
    assert await radio.coordinator_problem() == "the adapter is starting"


def test_the_reason_is_found_down_the_exception_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
        except OSError as exc:
            raise zigpy.exceptions.TransientConnectionError from exc
    except zigpy.exceptions.TransientConnectionError as outer:
        assert describe_failure(outer) == "[Errno 111] Connect call failed ('127.0.0.1', 1)"
    assert describe_failure(TimeoutError()) == "no answer from the adapter in time"
    assert describe_failure(zigpy.exceptions.ControllerException()) == "ControllerException"


def test_only_an_invalid_parameter_refusal_means_a_reset() -> None:
    refused = zigpy.exceptions.DeliveryError("Failed to send request", status=t.Status.INVALID_PARAMETER)
    no_ack = zigpy.exceptions.DeliveryError("Failed to send request", status=t.Status.MAC_NO_ACK)
    assert znp_resets.failure_means_reset(refused)
    assert not znp_resets.failure_means_reset(no_ack)
    assert not znp_resets.failure_means_reset(TimeoutError())


async def test_a_failed_radio_library_task_nobody_awaited_is_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(handle_loop_exception)
    try:
        znp = ZNP(zigpy_znp.config.CONFIG_SCHEMA({"device": {"path": "/dev/null"}}))
        # A real zigpy-znp coroutine failing in a task that nobody reads (disconnected ZNP).
        task = loop.create_task(znp.request(c.SYS.Ping.Req()))
        await asyncio.wait([task])
        del task
        with caplog.at_level(logging.WARNING):
            gc.collect()
    finally:
        loop.set_exception_handler(previous)
    warnings = [r for r in caplog.records if r.name == "z2m_qbkg40lm.zigbee.failures"]
    assert [r.levelno for r in warnings] == [logging.WARNING], caplog.text
    assert "abandoned unanswered" in warnings[0].getMessage()
    assert "never retrieved" not in caplog.text


def test_each_adapter_family_names_its_own_reset_detection() -> None:
    assert reset_detection("zstack") is znp_resets
    # No sign of a reset from these libraries yet: only a lost connection is noticed.
    for adapter in ("ezsp", "ember", "deconz", "virtual"):
        assert reset_detection(adapter) is None
