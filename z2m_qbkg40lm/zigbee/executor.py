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

_DEFAULT_RESPONSE = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Default_Response].schema


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


async def _run(device: Any, operation: ZclOperation) -> Any:
    """Carry out one operation; returns what it brought back (see `execute`)."""
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
            return None if isinstance(result, _DEFAULT_RESPONSE) else result
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
                return None
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
            return None
        case ReadAttributes():
            if not _zigpy_reads_as_asked(cluster, operation):
                return await _read_raw(cluster, operation)
            read, failed = await cluster.read_attributes(
                list(operation.attribute_ids), allow_cache=False, manufacturer=operation.manufacturer
            )
            if failed:
                reasons = ", ".join(f"0x{int(a):04x}: {_status_name(s)}" for a, s in failed.items())
                raise DeviceCommandError(f"the device refused the read ({reasons})")
            return {int(attribute): value for attribute, value in read.items()}


def _zigpy_reads_as_asked(cluster: Any, operation: ReadAttributes) -> bool:
    """True when zigpy's read_attributes sends exactly this read: it knows every attribute and
    would use the operation's manufacturer code (it picks the code from its own definitions).
    Its answers then also reach the attribute listeners, and so the state."""
    for attribute_id in operation.attribute_ids:
        try:
            definition = cluster.find_attribute(attribute_id, manufacturer_code=operation.manufacturer)
        except (KeyError, ValueError):
            return False
        if operation.manufacturer is None:
            continue
        # zigpy 2.4 keeps the rule that picks a definition's code private; the edge to zigpy is here.
        if cluster._get_effective_manufacturer_code(definition) != operation.manufacturer:
            return False
    return True


async def _read_raw(cluster: Any, operation: ReadAttributes) -> dict[int, Any]:
    """A read zigpy has no definitions for (an attribute it does not know, another manufacturer
    code): one Read Attributes frame as asked, its answer decoded by the types the device gave."""
    response = await cluster.read_attributes_raw(
        list(operation.attribute_ids), manufacturer=operation.manufacturer
    )
    records = response[0] if response and isinstance(response[0], list) else None
    if records is None:
        status = getattr(response, "status", response[0] if response else None)
        raise DeviceCommandError(f"the device answered {_status_name(status)}")
    failed = [r for r in records if r.status != foundation.Status.SUCCESS]
    if failed:
        reasons = ", ".join(f"0x{int(r.attrid):04x}: {_status_name(r.status)}" for r in failed)
        raise DeviceCommandError(f"the device refused the read ({reasons})")
    return {int(r.attrid): r.value.value for r in records}


async def execute(device: Any, operations: tuple[ZclOperation, ...]) -> tuple[Any, ...]:
    """Run the operations in order; the first failure stops the plan with DeviceCommandError.

    Returns one result per operation: for a read {attribute id: value read}, for a write None, for
    a command its response (None when only a Default Response came, or none was asked for).
    """
    results: list[Any] = []
    for operation in operations:
        try:
            results.append(await _run(device, operation))
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
    return tuple(results)
