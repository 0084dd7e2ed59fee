"""One readable reason for an error from zigpy or a radio library.

Their exceptions often carry no text (`TransientConnectionError()`, `TimeoutError()`) and keep the
real cause further down the chain (`ConnectionRefusedError: [Errno 111] Connect call failed …`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import PurePath
from typing import Any

_LOGGER = logging.getLogger(__name__)


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def describe_failure(exc: BaseException) -> str:
    """The first exception of the chain that says something; a timeout without text says so."""
    chain = _chain(exc)
    for each in chain:
        if isinstance(each, asyncio.CancelledError):
            continue
        text = str(each).strip()
        if text:
            return text if isinstance(each, OSError) or each is exc else f"{type(each).__name__}: {text}"
    if any(isinstance(each, TimeoutError) for each in chain):
        return "no answer from the adapter in time"
    return type(exc).__name__


_RADIO_LIBRARIES = frozenset({"zigpy", "zigpy_znp", "bellows", "zigpy_deconz"})


def _radio_library_task(task: object) -> bool:
    if not isinstance(task, asyncio.Task):
        return False
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and not _RADIO_LIBRARIES.isdisjoint(PurePath(code.co_filename).parts)


def handle_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: a radio library's background task that failed unobserved
    becomes one WARNING line; anything else goes to asyncio's default handler.

    zigpy-znp shields the wait for a data confirm from cancellation; when the caller gives up (a
    muted coordinator), the shielded task later fails with nobody to read it, and asyncio would log
    "Task exception was never retrieved" with two tracebacks.
    """
    exc = context.get("exception")
    if exc is not None and _radio_library_task(context.get("future")):
        _LOGGER.warning("A radio library request was abandoned unanswered: %s", describe_failure(exc))
        return
    loop.default_exception_handler(context)
