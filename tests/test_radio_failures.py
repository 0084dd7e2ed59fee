"""The radio layer's honest errors: start-up causes, reset signs, abandoned library tasks."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

import bellows.types as bt
import pytest
import zigpy.exceptions
import zigpy_znp.commands as c
import zigpy_znp.config
import zigpy_znp.types as t
from bellows.ash import NcpFailure
from zigpy_znp.api import ZNP

from tests.support import free_port
from z2m_qbkg40lm.config import parse_config, resolve_network
from z2m_qbkg40lm.devices.registry import DEFINITIONS
from z2m_qbkg40lm.zigbee import ezsp_resets, znp_resets
from z2m_qbkg40lm.zigbee.adapters import ADAPTERS, reset_detection
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError
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
    assert reset_detection("ezsp") is ezsp_resets and reset_detection("ember") is ezsp_resets
    # No sign of a reset from these libraries yet: only a lost connection is noticed.
    for adapter in ("deconz", "virtual"):
        assert reset_detection(adapter) is None


def test_an_emberznet_reset_reason_is_a_reboot_and_an_ash_error_a_lost_adapter() -> None:
    reboot = ezsp_resets.lost_means_reset(NcpFailure(bt.NcpResetCode.RESET_WATCHDOG))
    assert reboot == "the coordinator rebooted on its own (ASH RSTACK, reason RESET_WATCHDOG)"
    timeouts = NcpFailure(bt.NcpResetCode.ERROR_EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT)
    assert ezsp_resets.lost_means_reset(timeouts) is None
    assert ezsp_resets.lost_means_reset(ConnectionResetError(104, "reset by peer")) is None
    assert ezsp_resets.lost_means_reset(None) is None
    assert znp_resets.lost_means_reset(NcpFailure(bt.NcpResetCode.RESET_WATCHDOG)) is None


async def test_a_command_waiting_for_a_re_initialisation_that_fails_is_answered_at_once(
    tmp_path: Path,
) -> None:
    raw = {"mqtt": {"server": "mqtt://localhost"}, "serial": {"adapter": "virtual"}}
    config = parse_config(raw, tmp_path / "configuration.yaml").config
    radio = Radio(config, tmp_path, resolve_network(config.advanced, tmp_path), DEFINITIONS)
    # The states a coordinator reset goes through, without a coordinator: a command arrives
    # while the radio is re-initialised, then the re-initialisation fails.
    radio._set_state("restarting", "the adapter is restarting (a test)")
    waiting = asyncio.create_task(radio.permit_join(0))
    await asyncio.sleep(0)  # let it start waiting
    radio._set_state("lost", "the adapter is lost: re-initialising it failed: a test")
    async with asyncio.timeout(1):  # not the whole COMMAND_WAIT_S
        with pytest.raises(DeviceCommandError, match="re-initialising it failed: a test"):
            await waiting


def test_the_coordinator_type_follows_the_firmware_the_library_found() -> None:
    zstack = ADAPTERS["zstack"]
    assert zstack.type_of("Z-Stack Home 1.2 20211115") == "zStack12"
    assert zstack.type_of("Z-Stack 3.0.x 20190425") == "zStack30x"
    assert zstack.type_of("Z-Stack 20230507") == "zStack3x0"
    assert zstack.type_of(None) == "zStack3x0", "before the radio runs: the family's"
    assert ADAPTERS["ember"].type_of("7.4.4.0 build 0") == "EmberZNet"
