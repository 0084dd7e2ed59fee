"""Runs a converter's plan of ZCL operations through zigpy, and says clearly when one fails."""

from __future__ import annotations

import logging
from typing import Any

import zigpy.exceptions
from zigpy.zcl import foundation

from z2m_qbkg40lm.devices.definition import (
    ClusterCommand,
    ReadAttributes,
    WriteAttribute,
    ZclOperation,
)

_LOGGER = logging.getLogger(__name__)


class DeviceCommandError(Exception):
    """A ZCL exchange with a device failed; the message says which and why, for users.

    `cause` keeps the radio library's own error, so that the radio layer can tell a failure that
    only a rebooted coordinator explains from one of the device.
    """

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class UnsupportedCommandError(DeviceCommandError):
    """The device answered a command with Default Response UNSUP_CLUSTER_COMMAND: its firmware
    does not implement it (a plan may have a fallback for that)."""


class NoAnswerError(DeviceCommandError):
    """Nothing answered in time: the device, or the coordinator itself (the radio layer checks)."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"{operation} failed: the device did not answer")
        self.operation = operation


def describe(operation: ZclOperation) -> str:
    """A short human description of an operation, for error messages."""
    match operation:
        case ClusterCommand():
            return f"command 0x{operation.command_id:02x} on cluster 0x{operation.cluster_id:04x}"
        case WriteAttribute():
            return f"write of 0x{operation.cluster_id:04x}/0x{operation.attribute_id:04x}"
        case ReadAttributes():
            ids = ", ".join(f"0x{a:04x}" for a in operation.attribute_ids)
            return f"read of 0x{operation.cluster_id:04x}/{ids}"


def _cluster(device: Any, operation: ZclOperation) -> Any:
    try:
        endpoint = device.endpoints[operation.endpoint]
    except KeyError:
        raise DeviceCommandError(f"the device has no endpoint {operation.endpoint}") from None
    cluster = endpoint.in_clusters.get(operation.cluster_id)
    if cluster is None:
        raise DeviceCommandError(
            f"endpoint {operation.endpoint} has no cluster 0x{operation.cluster_id:04x}"
        ) from None
    return cluster


def _status_name(status: Any) -> str:
    return getattr(status, "name", str(status))


async def _run(device: Any, operation: ZclOperation) -> None:
    cluster = _cluster(device, operation)
    match operation:
        case ClusterCommand():
            result = await cluster.command(
                operation.command_id,
                *operation.args,
                manufacturer=operation.manufacturer,
                disable_default_response=operation.disable_default_response,
            )
            status = getattr(result, "status", foundation.Status.SUCCESS)
            if status == foundation.Status.UNSUP_CLUSTER_COMMAND:
                raise UnsupportedCommandError(f"the device answered {_status_name(status)}")
            if status != foundation.Status.SUCCESS:
                raise DeviceCommandError(f"the device answered {_status_name(status)}")
        case WriteAttribute():
            type_id = foundation.DataTypeId(operation.zcl_type)  # type: ignore[no-untyped-call]
            python_type = foundation.DataType.from_type_id(type_id).python_type
            record = foundation.Attribute(
                operation.attribute_id, foundation.TypeValue(type_id, python_type(operation.value))
            )
            if not operation.await_response:
                # Zigbee2MQTT sends the configure write without waiting for the answer.
                await cluster.write_attributes_raw(
                    [record],
                    manufacturer_code=operation.manufacturer,
                    expect_reply=False,
                    disable_default_response=operation.disable_default_response,
                )
                return
            response = await cluster.write_attributes_raw(
                [record],
                manufacturer_code=operation.manufacturer,
                disable_default_response=operation.disable_default_response,
            )
            failures = [
                r for r in getattr(response, "status_records", []) if r.status != foundation.Status.SUCCESS
            ]
            if failures:
                raise DeviceCommandError(f"the device answered {_status_name(failures[0].status)}")
            # A device may refuse the whole write with a Default Response instead.
            status = getattr(response, "status", foundation.Status.SUCCESS)
            if status != foundation.Status.SUCCESS:
                raise DeviceCommandError(f"the device answered {_status_name(status)}")
        case ReadAttributes():
            _, failed = await cluster.read_attributes(
                list(operation.attribute_ids), allow_cache=False, manufacturer=operation.manufacturer
            )
            if failed:
                reasons = ", ".join(f"0x{int(a):04x}: {_status_name(s)}" for a, s in failed.items())
                raise DeviceCommandError(f"the device refused the read ({reasons})")


async def execute(device: Any, operations: tuple[ZclOperation, ...]) -> None:
    """Run the operations in order; the first failure stops the plan with DeviceCommandError."""
    for operation in operations:
        try:
            await _run(device, operation)
        except UnsupportedCommandError as exc:
            raise UnsupportedCommandError(f"{describe(operation)} failed: {exc}") from None
        except DeviceCommandError as exc:
            raise DeviceCommandError(f"{describe(operation)} failed: {exc}") from None
        except TimeoutError:
            raise NoAnswerError(describe(operation)) from None
        except zigpy.exceptions.ZigbeeException as exc:
            raise DeviceCommandError(
                f"{describe(operation)} failed: {exc or type(exc).__name__}", cause=exc
            ) from None
        except Exception as exc:
            # The edge to zigpy and the radio libraries: whatever else they raise (a coordinator that
            # went away, an unexpected answer, a frame that cannot be encoded) becomes one clear
            # error for the user; the traceback goes to the log for the developer.
            _LOGGER.warning("%s failed", describe(operation), exc_info=True)
            raise DeviceCommandError(
                f"{describe(operation)} failed: {exc or type(exc).__name__}", cause=exc
            ) from None
