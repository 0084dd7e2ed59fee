"""The SYS subsystem's NV item commands, answered from an `Nvram` the way Z-Stack 3.30 does.

Statuses follow OSAL's NV driver: creating an item that did not exist answers NV_ITEM_UNINIT,
touching a missing item answers NV_ITEM_UNINIT, a write that does not fit NV_BAD_ITEM_LEN.

The Simple API's configuration commands (`ZB_READ_CONFIGURATION`, `ZB_WRITE_CONFIGURATION`) reach
the same OSAL items by a one-byte id; zigbee-herdsman uses them for PRECFGKEY on Z-Stack Home 1.2.
They are answered from their bytes: zigpy-znp describes the write request with a status field
Z-Stack does not have.
"""

# zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import zigpy_znp.commands as c
import zigpy_znp.types as t

from z2m_qbkg40lm.sim.znp.nvram import NvKey, Nvram, legacy
from z2m_qbkg40lm.sim.znp.raw_frames import RawCommand, srsp, status_srsp

LOGGER = logging.getLogger(__name__)

MAX_CHUNK: Final = 244
"""The most value bytes one read answer carries."""

Handler = Callable[[Any], list[Any]]
SAPI_READ_CONFIGURATION: Final = 0x04
SAPI_WRITE_CONFIGURATION: Final = 0x05


def handlers(nvram: Nvram) -> dict[type, Handler]:
    """Request class -> handler for every NV command zigpy-znp uses."""
    sys = c.SYS

    def length(key: NvKey) -> int:
        return nvram.length(key)

    def read(key: NvKey, offset: int, limit: int = MAX_CHUNK) -> tuple[t.Status, bytes]:
        value = nvram.get(key)
        if value is None:
            return t.Status.NV_ITEM_UNINIT, b""
        if offset > len(value):
            return t.Status.INVALID_PARAMETER, b""
        return t.Status.SUCCESS, value[offset : offset + min(limit, MAX_CHUNK)]

    def write(key: NvKey, offset: int, data: bytes) -> t.Status:
        if nvram.get(key) is None:
            return t.Status.NV_ITEM_UNINIT
        if not nvram.write(key, offset, data):
            LOGGER.warning("NV write of %d bytes at %d does not fit item %s", len(data), offset, key)
            return t.Status.NV_BAD_ITEM_LEN
        return t.Status.SUCCESS

    def create(key: NvKey, size: int, initial: bytes = b"") -> t.Status:
        return t.Status.NV_ITEM_UNINIT if nvram.create(key, size, initial) else t.Status.SUCCESS

    def delete(key: NvKey) -> t.Status:
        return t.Status.SUCCESS if nvram.delete(key) else t.Status.NV_ITEM_UNINIT

    def osal_read(req: Any) -> list[Any]:
        status, value = read(legacy(req.Id), int(req.Offset))
        return [type(req).Rsp(Status=status, Value=t.ShortBytes(value))]

    def osal_write(req: Any) -> list[Any]:
        return [type(req).Rsp(Status=write(legacy(req.Id), int(req.Offset), bytes(req.Value)))]

    def osal_delete(req: Any) -> list[Any]:
        key = legacy(req.Id)
        if nvram.get(key) is not None and length(key) != req.ItemLen:
            return [sys.OSALNVDelete.Rsp(Status=t.Status.NV_BAD_ITEM_LEN)]
        return [sys.OSALNVDelete.Rsp(Status=delete(key))]

    def nv_key(req: Any) -> NvKey:
        return (int(req.SysId), int(req.ItemId), int(req.SubId))

    return {
        sys.OSALNVLength.Req: lambda req: [sys.OSALNVLength.Rsp(ItemLen=length(legacy(req.Id)))],
        sys.OSALNVRead.Req: osal_read,
        sys.OSALNVReadExt.Req: osal_read,
        sys.OSALNVWrite.Req: osal_write,
        sys.OSALNVWriteExt.Req: osal_write,
        sys.OSALNVItemInit.Req: lambda req: [
            sys.OSALNVItemInit.Rsp(Status=create(legacy(req.Id), int(req.ItemLen), bytes(req.Value)))
        ],
        sys.OSALNVDelete.Req: osal_delete,
        sys.NVLength.Req: lambda req: [sys.NVLength.Rsp(Length=length(nv_key(req)))],
        sys.NVRead.Req: lambda req: [
            sys.NVRead.Rsp(
                Status=(result := read(nv_key(req), int(req.Offset), int(req.Length)))[0],
                Value=t.ShortBytes(result[1]),
            )
        ],
        sys.NVWrite.Req: lambda req: [
            sys.NVWrite.Rsp(Status=write(nv_key(req), int(req.Offset), bytes(req.Value)))
        ],
        sys.NVCreate.Req: lambda req: [sys.NVCreate.Rsp(Status=create(nv_key(req), int(req.Length)))],
        sys.NVDelete.Req: lambda req: [sys.NVDelete.Rsp(Status=delete(nv_key(req)))],
    }


def sapi_handlers(nvram: Nvram) -> dict[int, Callable[[bytes], list[RawCommand]]]:
    """SAPI command id -> handler of the raw request bytes, for the configuration commands."""
    sapi = t.Subsystem.SAPI

    def read(data: bytes) -> list[RawCommand]:
        config_id = data[0]
        value = nvram.get(legacy(config_id))
        if value is None:
            return [srsp(sapi, SAPI_READ_CONFIGURATION, bytes([t.Status.NV_ITEM_UNINIT, config_id, 0]))]
        value = value[:MAX_CHUNK]
        return [srsp(sapi, SAPI_READ_CONFIGURATION, bytes([t.Status.SUCCESS, config_id, len(value)]) + value)]

    def write(data: bytes) -> list[RawCommand]:
        config_id, length = data[0], data[1]
        value = data[2 : 2 + length]
        if len(value) != length:
            raise ValueError(f"{len(value)} value bytes, {length} announced")
        key = legacy(config_id)
        if nvram.get(key) is None:
            status = t.Status.NV_ITEM_UNINIT
        elif not nvram.write(key, 0, value):
            status = t.Status.NV_BAD_ITEM_LEN
        else:
            status = t.Status.SUCCESS
        return [status_srsp(sapi, SAPI_WRITE_CONFIGURATION, int(status))]

    return {SAPI_READ_CONFIGURATION: read, SAPI_WRITE_CONFIGURATION: write}
