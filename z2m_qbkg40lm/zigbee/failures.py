"""One readable reason for an error from zigpy or a radio library.

Their exceptions often carry no text (`TransientConnectionError()`, `TimeoutError()`) and keep the
real cause further down the chain (`ConnectionRefusedError: [Errno 111] Connect call failed …`).
"""

from __future__ import annotations

import asyncio


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
